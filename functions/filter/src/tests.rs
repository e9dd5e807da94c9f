use std::time::Duration;

use wca_core::{
    ArchivedMessage, ManualClock,
    memory::{MemoryArchive, MemoryEventSink},
};
use wca_filter::DictionaryFiles;

use super::*;

const NOW: i64 = 1_700_000_000;

struct Fixture {
    service: FilterService,
    archive: Arc<MemoryArchive>,
    events: Arc<MemoryEventSink>,
}

fn fixture() -> Fixture {
    let source = DictionaryFiles {
        builtin: true,
        ..Default::default()
    };
    let archive = Arc::new(MemoryArchive::default());
    let events = Arc::new(MemoryEventSink::default());
    let service = FilterService {
        filter: ReloadingFilter::new(source, Duration::from_secs(30)).expect("builtin loads"),
        archive: archive.clone(),
        events: events.clone(),
        clock: Arc::new(ManualClock::new(NOW)),
    };
    Fixture {
        service,
        archive,
        events,
    }
}

async fn archive_text(f: &Fixture, key: &str, content: &str) {
    let msg = ArchivedMessage {
        key: key.to_owned(),
        openid: "o-user".to_owned(),
        msg_type: "text".to_owned(),
        create_time: NOW,
        received_at: NOW,
        raw_xml: String::new(),
        parsed: serde_json::json!({"category": "message", "type": "text", "content": content}),
        expires_at: NOW + 3600,
    };
    f.archive.put(&msg).await.expect("archive");
}

fn received(key: &str, msg_type: &str) -> String {
    let event = Event::message_received(key, "o-user", msg_type, NOW, None);
    // As EventBridge delivers it to SQS: the event is the envelope's detail.
    serde_json::json!({
        "version": "0", "id": "eb-1", "detail-type": "MessageReceived", "source": "wca",
        "detail": event,
    })
    .to_string()
}

fn batch(bodies: &[(&str, String)]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .map(|(id, body)| serde_json::json!({"messageId": id, "body": body}))
        .collect();
    serde_json::json!({ "Records": records })
}

#[tokio::test]
async fn a_direct_invoke_returns_hits_with_byte_offsets_and_the_masked_text() {
    let f = fixture();
    let text = "理财？稳 赚 不 赔！";
    let out = f
        .service
        .handle(serde_json::json!({ "text": text }))
        .await
        .expect("checked");
    assert_eq!(out["text"], text);
    assert_eq!(out["action"], "block");
    let hit = &out["hits"][0];
    assert_eq!(hit["word"], "稳赚不赔");
    assert_eq!(hit["category"], "fraud");
    let (start, end) = (
        hit["start"].as_u64().expect("start") as usize,
        hit["end"].as_u64().expect("end") as usize,
    );
    assert_eq!(&text[start..end], "稳 赚 不 赔");
    assert_eq!(out["masked"], "理财？*******！");
}

#[tokio::test]
async fn a_clean_text_passes_with_no_hits() {
    let f = fixture();
    let out = f
        .service
        .handle(serde_json::json!({ "text": "我的快递到哪了" }))
        .await
        .expect("checked");
    assert_eq!(out["action"], "pass");
    assert_eq!(out["hits"], serde_json::json!([]));
    assert_eq!(out["masked"], "我的快递到哪了");
}

#[tokio::test]
async fn a_payload_without_text_is_a_clear_error() {
    let f = fixture();
    for payload in [
        serde_json::json!({}),
        serde_json::json!({"text": 42}),
        serde_json::json!("just a string"),
    ] {
        let err = f
            .service
            .handle(payload.clone())
            .await
            .expect_err("refused");
        assert!(
            err.to_string().starts_with("expected {\"text\": \"...\"}"),
            "{payload}: {err}"
        );
    }
}

#[tokio::test]
async fn the_scan_publishes_a_compliance_hit_for_an_archived_text_with_the_same_id_on_redelivery() {
    let f = fixture();
    archive_text(&f, "msg:1", "加我微信，私下转账更便宜").await;
    let body = received("msg:1", "text");
    assert_eq!(f.service.scan(&body).await.expect("scan"), Scanned::Hits(2));
    assert_eq!(
        f.service.scan(&body).await.expect("rescan"),
        Scanned::Hits(2)
    );
    let events = f.events.take();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id, "compliance:inbound:msg:1");
    assert_eq!(
        events[0], events[1],
        "a redelivery publishes the identical event"
    );
    let EventKind::ComplianceHit {
        action,
        hits,
        openid,
        ..
    } = &events[0].kind
    else {
        panic!("expected a compliance hit, got {:?}", events[0]);
    };
    assert_eq!(action, "flag");
    assert_eq!(openid, "o-user");
    assert_eq!(hits[0].word, "加我微信");
    assert_eq!(hits[1].word, "私下转账");
}

#[tokio::test]
async fn clean_texts_other_kinds_and_expired_messages_are_acknowledged_without_an_event() {
    let f = fixture();
    archive_text(&f, "msg:2", "什么时候发货").await;
    assert_eq!(
        f.service
            .scan(&received("msg:2", "text"))
            .await
            .expect("scan"),
        Scanned::Clean
    );
    assert_eq!(
        f.service
            .scan(&received("msg:3", "image"))
            .await
            .expect("scan"),
        Scanned::NotText
    );
    assert_eq!(
        f.service
            .scan(&received("msg:404", "text"))
            .await
            .expect("scan"),
        Scanned::NotArchived
    );
    let other = Event::reply_sent("msg:2", "o-user", "text", NOW);
    assert_eq!(
        f.service
            .scan(&serde_json::to_string(&other).expect("json"))
            .await
            .expect("scan"),
        Scanned::NotText
    );
    assert!(f.events.take().is_empty());
}

#[tokio::test]
async fn a_poison_record_fails_alone_and_the_rest_of_its_batch_is_scanned() {
    let f = fixture();
    archive_text(&f, "msg:5", "稳赚不赔的项目").await;
    let out = f
        .service
        .handle(batch(&[
            ("good", received("msg:5", "text")),
            ("poison", "not an event".to_owned()),
        ]))
        .await
        .expect("batch");
    assert_eq!(
        out,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "poison"}]})
    );
    assert_eq!(f.events.take().len(), 1);
}

#[tokio::test]
async fn the_sample_events_in_infra_give_a_block_and_name_only_the_poison_record() {
    let f = fixture();
    let direct: serde_json::Value =
        serde_json::from_str(include_str!("../../../infra/events/filter-direct.json"))
            .expect("direct sample is JSON");
    let out = f.service.handle(direct).await.expect("checked");
    assert_eq!(out["action"], "block");
    let scan: serde_json::Value =
        serde_json::from_str(include_str!("../../../infra/events/filter-scan.json"))
            .expect("scan sample is JSON");
    let out = f.service.handle(scan).await.expect("batch");
    assert_eq!(
        out["batchItemFailures"],
        serde_json::json!([{"itemIdentifier": "5f1d2c3b-0002-4000-8000-000000000002"}])
    );
}
