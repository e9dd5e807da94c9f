//! Contract suites: the behaviour every adapter of a port must show.
//!
//! Each adapter's tests call these with a fresh, empty instance (memory,
//! redb in a temp dir, DynamoDB/SQS on the local AWS stand-in), so the
//! adapters cannot drift apart. They panic with a message on the first
//! broken promise, like any assertion.

use std::future::Future;

use crate::{
    ArchivedMessage, Begin, Counters, Event, EventLog, EventSink, IdempotencyStore, MessageArchive,
};

fn sample(key: &str, expires_at: i64) -> ArchivedMessage {
    ArchivedMessage {
        key: key.to_owned(),
        openid: "oUser-合同_1".to_owned(),
        msg_type: "text".to_owned(),
        create_time: 1_700_000_000,
        received_at: 1_700_000_001,
        raw_xml: "<xml><Content><![CDATA[你好 ]]></Content></xml>".to_owned(),
        parsed: serde_json::json!({"kind": "text", "content": "你好 "}),
        expires_at,
    }
}

/// [`MessageArchive`]: first write wins, reads hide expired messages,
/// purge removes exactly the expired ones.
pub async fn archive(store: &dyn MessageArchive) {
    let now = 1_700_000_000;
    let first = sample("msg:1001", now + 100);
    assert!(store.put(&first).await.expect("put"), "a new key is stored");

    let mut second = first.clone();
    second.raw_xml = "<xml>changed</xml>".to_owned();
    assert!(
        !store.put(&second).await.expect("put again"),
        "a second put of the same key reports it was already there"
    );
    assert_eq!(
        store.get("msg:1001", now).await.expect("get"),
        Some(first.clone()),
        "the first write is kept unchanged, byte for byte"
    );
    assert_eq!(store.get("msg:missing", now).await.expect("get"), None);

    assert!(store.put(&sample("msg:1002", now + 10)).await.expect("put"));
    assert_eq!(
        store.get("msg:1002", now + 10).await.expect("get"),
        None,
        "an expired message is not returned even before it is purged"
    );
    let purged = store.purge_expired(now + 50).await.expect("purge");
    assert!(
        purged <= 1,
        "purge removes only expired messages, removed {purged}"
    );
    assert_eq!(
        store.get("msg:1001", now + 50).await.expect("get"),
        Some(first),
        "an unexpired message survives a purge"
    );
}

/// [`IdempotencyStore`]: one claimant at a time, results replayed,
/// leases expire, release frees the key.
pub async fn idempotency(store: &dyn IdempotencyStore) {
    let now = 1_700_000_000;
    assert_eq!(
        store.begin("k1", now, 30).await.expect("begin"),
        Begin::Fresh
    );
    assert_eq!(
        store.begin("k1", now + 1, 30).await.expect("begin"),
        Begin::InFlight,
        "a second delivery while the first works is told so"
    );
    store
        .complete("k1", "<xml>答复</xml>", now + 2, 600)
        .await
        .expect("complete");
    assert_eq!(
        store.begin("k1", now + 3, 30).await.expect("begin"),
        Begin::Done("<xml>答复</xml>".to_owned()),
        "a retry after completion gets the recorded result"
    );
    assert_eq!(
        store.begin("k1", now + 2 + 601, 30).await.expect("begin"),
        Begin::Fresh,
        "a result past its ttl is forgotten"
    );

    assert_eq!(
        store.begin("k2", now, 30).await.expect("begin"),
        Begin::Fresh
    );
    assert_eq!(
        store.begin("k2", now + 31, 30).await.expect("begin"),
        Begin::Fresh,
        "a claim whose lease ran out (a crashed worker) can be taken over"
    );

    assert_eq!(
        store.begin("k3", now, 30).await.expect("begin"),
        Begin::Fresh
    );
    store.release("k3").await.expect("release");
    assert_eq!(
        store.begin("k3", now + 1, 30).await.expect("begin"),
        Begin::Fresh,
        "a released key can be claimed again at once"
    );
    store
        .complete("k3", "r", now + 1, 600)
        .await
        .expect("complete");
    store.release("k3").await.expect("release");
    assert_eq!(
        store.begin("k3", now + 2, 30).await.expect("begin"),
        Begin::Done("r".to_owned()),
        "release does not undo completed work"
    );
}

/// [`Counters`]: each once-id counts once, all its keys together.
pub async fn counters(store: &dyn Counters) {
    let keys = vec!["c:day".to_owned(), "c:day:type:text".to_owned()];
    assert_eq!(
        store.get("c:day").await.expect("get"),
        0,
        "unknown counters read 0"
    );
    assert!(
        store
            .add_once("e1", &keys, 2_000_000_000)
            .await
            .expect("add")
    );
    assert!(
        !store
            .add_once("e1", &keys, 2_000_000_000)
            .await
            .expect("add"),
        "the same once-id is not applied twice"
    );
    assert!(
        store
            .add_once("e2", &keys[..1], 2_000_000_000)
            .await
            .expect("add")
    );
    assert_eq!(store.get("c:day").await.expect("get"), 2);
    assert_eq!(store.get("c:day:type:text").await.expect("get"), 1);
}

/// [`EventSink`]: what is emitted can be read back unchanged. `drain`
/// returns everything the sink has delivered so far (in any order).
pub async fn event_sink<F, Fut>(sink: &dyn EventSink, mut drain: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Vec<Event>>,
{
    let events = vec![
        Event::message_received(
            "msg:1",
            "o-1",
            "text",
            1_700_000_000,
            Some(crate::Understanding::new("greeting", "neutral")),
        ),
        Event::reply_sent("msg:1", "o-1", "text", 1_700_000_001),
        Event::request_rejected("bad_signature", "r-1", 1_700_000_002),
        Event::compliance_hit(
            "msg:1",
            "o-1",
            crate::Direction::Outbound,
            "mask",
            "masked",
            vec![crate::ComplianceWord {
                word: "傻逼".into(),
                category: "abuse".into(),
                action: "mask".into(),
                start: 3,
                end: 9,
            }],
            1_700_000_003,
        ),
    ];
    sink.emit(&events).await.expect("emit");
    sink.emit(&[]).await.expect("emitting nothing is fine");
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(drain().await);
        if got.len() >= events.len() {
            break;
        }
    }
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let mut want = events;
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, want, "every emitted event arrives once, unchanged");
}

/// [`EventLog`]: the first record of an id wins and reads back unchanged.
pub async fn event_log(log: &dyn EventLog) {
    let event = Event::message_received(
        "msg:9",
        "o-9",
        "text",
        1_700_000_000,
        Some(crate::Understanding::new("payment", "negative")),
    );
    assert_eq!(log.get(&event.id).await.expect("get"), None);
    assert!(log.record(&event, 2_000_000_000).await.expect("record"));
    let mut changed = event.clone();
    changed.at += 1;
    assert!(
        !log.record(&changed, 2_000_000_000)
            .await
            .expect("record again"),
        "a second record of the same id reports it was already there"
    );
    assert_eq!(
        log.get(&event.id).await.expect("get"),
        Some(event),
        "the first record is kept unchanged"
    );
}
