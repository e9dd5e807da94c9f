//! Criterion benchmarks of the filter: one customer message against the
//! built-in dictionary (the webhook's per-message cost), the same against a
//! 50,000-word dictionary, throughput over a long text, and build time.
//!
//! The 50,000 words are generated (two to four characters drawn from the
//! 3,500 most common CJK range with a fixed seed) so the bench needs no
//! files; `infra/bench/filter_vs_python.py` runs the real-dictionary,
//! real-corpus comparison.

// criterion's macros generate functions without docs.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wca_filter::{Dictionary, Filter, Scratch};

/// A tiny deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn cjk(&mut self) -> char {
        // U+4E00.. is where the common characters are densest.
        char::from_u32(0x4E00 + (self.next() % 3500) as u32).unwrap_or('中')
    }
}

fn big_dictionary(words: usize) -> String {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut out = String::new();
    for i in 0..words {
        let len = 2 + (rng.next() % 3) as usize;
        for _ in 0..len {
            out.push(rng.cjk());
        }
        out.push_str(if i % 3 == 0 {
            "\tfraud\n"
        } else {
            "\tabuse\tflag\n"
        });
    }
    out
}

fn text(chars: usize) -> String {
    let mut rng = Rng(42);
    let mut out = String::new();
    for i in 0..chars {
        out.push(rng.cjk());
        if i % 17 == 16 {
            out.push('，');
        }
    }
    out
}

const MESSAGE: &str = "你好，我上周买的那件外套到现在还没发货，能帮我查一下物流吗？谢谢🙏";

fn per_message(c: &mut Criterion) {
    let builtin = Dictionary::builtin().build().expect("builtin builds");
    let mut big = Dictionary::builtin();
    big.add_deny("generated", &big_dictionary(50_000))
        .expect("generated parses");
    let big = big.build().expect("big builds");
    let mut group = c.benchmark_group("check_message");
    for (name, filter) in [("builtin", &builtin), ("50k_words", &big)] {
        let mut scratch = Scratch::default();
        group.bench_function(name, |b| {
            b.iter(|| {
                filter
                    .check_with(black_box(MESSAGE), &mut scratch)
                    .hits
                    .len()
            })
        });
    }
    group.finish();
}

fn throughput(c: &mut Criterion) {
    let mut dict = Dictionary::new();
    dict.add_deny("generated", &big_dictionary(50_000))
        .expect("generated parses");
    let filter: Filter = dict.build().expect("builds");
    let corpus = text(300_000);
    let mut group = c.benchmark_group("check_text");
    group.throughput(Throughput::Bytes(corpus.len() as u64));
    group.sample_size(10);
    let mut scratch = Scratch::default();
    group.bench_with_input(
        BenchmarkId::new("50k_words", corpus.len()),
        &corpus,
        |b, t| b.iter(|| filter.check_with(t, &mut scratch).hits.len()),
    );
    group.finish();
}

fn build(c: &mut Criterion) {
    let words = big_dictionary(50_000);
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.bench_function("50k_words", |b| {
        b.iter(|| {
            let mut dict = Dictionary::new();
            dict.add_deny("generated", black_box(&words))
                .expect("parses");
            dict.build().expect("builds").deny_len()
        })
    });
    group.finish();
}

criterion_group!(benches, per_message, throughput, build);
criterion_main!(benches);
