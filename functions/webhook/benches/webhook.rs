//! The webhook's whole POST path in-process, with memory ports, with and
//! without the sensitive-word filter: what the filter adds per message.
//!
//! Each iteration posts a fresh safe-mode text message (a new MsgId, so
//! dedup never short-circuits it): verify, decrypt, parse, claim, archive,
//! inbound check, keyword rules, outbound check of the reply, seal,
//! events. "no_filter" is the same webhook with an empty dictionary.

// criterion's macros generate functions without docs.
#![allow(missing_docs)]

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use wca_core::{
    SystemClock,
    memory::{MemoryArchive, MemoryEventSink, MemoryIdempotency},
};
use wca_webhook::{
    Ports, Webhook,
    settings::{FileSettings, Settings},
};
use wca_wechat::{AesKey, Token, callback::Query, client_side};

const TOKEN: &str = "benchToken123";
const APP_ID: &str = "wxbench000000000001";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const TEXTS: [&str; 4] = [
    "你好",
    "我上周买的那件外套到现在还没发货，能帮我查一下物流吗？",
    "这个理财产品是不是稳赚不赔啊",
    "谢谢",
];

fn webhook(builtin: &str) -> Webhook {
    let env = [
        ("WECHAT_TOKEN", TOKEN),
        ("WECHAT_APP_ID", APP_ID),
        ("WECHAT_AES_KEY", AES_KEY),
        ("WCA_FILTER_BUILTIN", builtin),
        ("WCA_TIMESTAMP_WINDOW_SECS", "0"),
    ];
    let settings = Settings::resolve(FileSettings::default(), &env, None).expect("settings");
    Webhook::new(
        settings,
        Ports {
            archive: Arc::new(MemoryArchive::default()),
            dedup: Arc::new(MemoryIdempotency::default()),
            events: Arc::new(MemoryEventSink::default()),
            clock: Arc::new(SystemClock),
            conversations: Arc::new(wca_core::memory::MemoryConversationStore::default()),
            shop: wca_dialog::Shop::default(),
            commit: None,
        },
    )
}

fn post_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let token = Token::new(TOKEN).expect("token");
    let key = AesKey::parse(AES_KEY).expect("key");
    let next = AtomicU64::new(1);
    let mut group = c.benchmark_group("webhook_post");
    for (name, builtin) in [("with_filter", "true"), ("no_filter", "false")] {
        let hook = webhook(builtin);
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let text = TEXTS[(n % 4) as usize];
                    let inner = client_side::text_message_xml(
                        "gh_bench",
                        "oBenchUser",
                        1_700_000_000,
                        &n.to_string(),
                        text,
                    );
                    let sealed = client_side::seal_request(
                        &token,
                        Some(&key),
                        APP_ID,
                        "gh_bench",
                        "oBenchUser",
                        &inner,
                        1_700_000_000,
                        "nonce",
                        [3u8; 16],
                    );
                    (Query::from_pairs(&sealed.query), sealed.body)
                },
                |(query, body)| rt.block_on(hook.handle_post(&query, body.as_bytes())),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, post_path);
criterion_main!(benches);
