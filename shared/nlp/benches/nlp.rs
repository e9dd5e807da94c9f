//! Cold start and per-message cost of the default models.
//!
//! - `load/default_models`: parse, check and optimise both embedded ONNX
//!   files (what a Lambda pays once per sandbox).
//! - `message/classify+sentiment`: both models on one message, cycling
//!   through every line of the intent data, so short and long texts mix as
//!   they do in traffic.
//!
//! `wca bench nlp` reports p50/p99 over a file of messages instead, for the
//! side-by-side run against onnxruntime (`infra/bench/onnxruntime_vs_wca.py`).

// criterion's macros generate functions without docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wca_nlp::Nlp;

fn messages() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/intent");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("data/intent")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    assert!(!out.is_empty(), "no messages in {}", dir.display());
    out
}

fn bench(c: &mut Criterion) {
    let mut load = c.benchmark_group("load");
    load.sample_size(20);
    load.bench_function("default_models", |b| {
        b.iter(|| Nlp::default_models().expect("load"))
    });
    load.finish();

    let nlp = Nlp::default_models().expect("load");
    let messages = messages();
    let mut group = c.benchmark_group("message");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("classify+sentiment", |b| {
        b.iter(|| {
            let text = &messages[i % messages.len()];
            i += 1;
            let intent = nlp.classify(black_box(text)).expect("classify");
            let sentiment = nlp.sentiment(black_box(text)).expect("sentiment");
            (intent, sentiment)
        })
    });
    let mut i = 0;
    group.bench_function("featurise_only", |b| {
        b.iter(|| {
            let text = &messages[i % messages.len()];
            i += 1;
            nlp.intent_model().featuriser().ids(black_box(text))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
