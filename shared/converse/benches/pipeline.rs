//! The whole conversation pipeline per text message with the demo shop's
//! configuration (FAQ, flows, intent and sentiment models, built-in
//! dictionary) on memory ports: what one message costs between the
//! webhook's protocol work and its reply.

// criterion's macros generate functions without docs.
#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use wca_converse::{Message, Pipeline};
use wca_core::memory::{MemoryArchive, MemoryConversationStore};
use wca_dialog::{Dialog, Input, Shop};
use wca_filter::{DictionaryFiles, ReloadingFilter};
use wca_local::{JsonlOrders, JsonlProfiles, JsonlTickets};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo-shop");
const SNAPSHOT: i64 = 1_795_140_000;

fn pipeline() -> Pipeline {
    let dialog = Dialog::load_section(&Path::new(DEMO).join("wca.toml")).expect("demo dialog");
    let filter = ReloadingFilter::new(
        DictionaryFiles {
            builtin: true,
            deny: vec![],
            allow: vec![],
            options: Default::default(),
        },
        Duration::from_secs(3600),
    )
    .expect("filter");
    let shop = Shop {
        orders: Some(Arc::new(
            JsonlOrders::load(&Path::new(DEMO).join("orders.jsonl")).expect("orders"),
        )),
        tickets: Some(Arc::new(JsonlTickets::in_memory())),
        profiles: Some(Arc::new(
            JsonlProfiles::load(&Path::new(DEMO).join("users.jsonl")).expect("users"),
        )),
        history: Some(Arc::new(MemoryArchive::default())),
    };
    Pipeline::new(
        Arc::new(dialog),
        filter,
        "抱歉，请稍候。".to_owned(),
        Some(Arc::new(wca_nlp::Nlp::default_models().expect("models"))),
        shop,
        Arc::new(MemoryConversationStore::default()),
    )
}

fn per_message(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let p = pipeline();
    let mut group = c.benchmark_group("pipeline");
    // (name, text): an FAQ question, a greeting by name, an order lookup
    // that lists the customer's orders.
    for (name, text) in [
        ("faq", "你们一般发什么快递呀"),
        ("greeting", "你好"),
        ("order_lookup", "我的快递到哪了"),
    ] {
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                // A fresh user per message: every iteration starts the
                // same conversation instead of continuing one.
                let openid = if name == "order_lookup" {
                    "o_demo_user01".to_owned()
                } else {
                    format!("o_bench_{n}")
                };
                let key = format!("msg:{n}");
                let message = Message {
                    msg_key: &key,
                    openid: &openid,
                    msg_type: "text",
                    create_time: SNAPSHOT,
                    input: Input::Text(text),
                };
                // Order lookups for one user: each starts 2 h after the
                // last, past the idle timeout, so it is a new lookup.
                let now = SNAPSHOT + n as i64 * 7200;
                rt.block_on(p.handle(&message, now)).expect("handled")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, per_message);
criterion_main!(benches);
