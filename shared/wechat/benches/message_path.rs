//! The full per-message protocol path of the webhook, safe mode and
//! plaintext: verify the signatures, decrypt, parse the XML into a typed
//! message, build a text reply, encrypt and sign it.

// criterion's macros generate functions without docs.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use wca_wechat::callback::CallbackConfig;
use wca_wechat::reply::Reply;
use wca_wechat::{AesKey, Token, client_side};

const APP_ID: &str = "wx1234567890abcdef";
const NOW: i64 = 1_700_000_000;

fn bench(c: &mut Criterion) {
    let token = Token::new("wcaBenchToken123").expect("token");
    let key = AesKey::parse("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").expect("key");
    let inner = client_side::text_message_xml(
        "gh_0123456789ab",
        "oWcaBenchUser0000000000001",
        NOW,
        "6054768590064713728",
        "你好，我想问一下我昨天买的衣服什么时候发货？order 20231114-001",
    );
    let reply = Reply::Text {
        content: "您好，请问有什么可以帮您？".to_owned(),
    };
    let mut group = c.benchmark_group("message_path");
    group.throughput(Throughput::Elements(1));
    for safe in [true, false] {
        let config = CallbackConfig {
            token: token.clone(),
            app_id: APP_ID.to_owned(),
            aes_key: safe.then(|| key.clone()),
            max_body_bytes: 64 * 1024,
            timestamp_window_secs: Some(300),
        };
        let sealed = client_side::seal_request(
            &token,
            config.aes_key.as_ref(),
            APP_ID,
            "gh_0123456789ab",
            "oWcaBenchUser0000000000001",
            &inner,
            NOW,
            "1320562132",
            [7; 16],
        );
        let q = sealed.parsed_query();
        let name = if safe { "safe_mode" } else { "plaintext" };
        group.bench_function(name, |b| {
            b.iter(|| {
                let opened = config
                    .open_request(black_box(&q), black_box(sealed.body.as_bytes()), NOW)
                    .expect("valid request");
                let xml = reply.to_xml(
                    &opened.inbound.from_user_name,
                    &opened.inbound.to_user_name,
                    NOW,
                );
                black_box(config.seal_reply(&opened, &xml, NOW))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
