//! Nothing is lost when the sender hangs up or a delivery dies: WeChat
//! drops the connection after 5 s and retries twice, 5 s apart.
//!
//! Hanging up is played by dropping the request future, which is what the
//! HTTP server does when the client goes away.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wca_core::memory::{
    MemoryArchive, MemoryConversationStore, MemoryEventSink, MemoryIdempotency,
};
use wca_core::{
    EventKind, IdempotencyStore, ManualClock, OpenId, PortError, Profile, ProfileStore,
};
use wca_webhook::settings::{FileSettings, Settings};
use wca_webhook::{Ports, Webhook, router};
use wca_wechat::{Token, client_side, reply};

const TOKEN: &str = "hangUpToken1";
const NOW: i64 = 1_700_000_000;
const OPENID: &str = "oHangUp000000000000000001";

/// A profile system that takes its time.
struct SlowProfiles(Duration);

#[async_trait]
impl ProfileStore for SlowProfiles {
    async fn profile(&self, _openid: &OpenId) -> Result<Option<Profile>, PortError> {
        tokio::time::sleep(self.0).await;
        Ok(None)
    }
}

struct Fixture {
    hook: Webhook,
    app: axum::Router,
    archive: Arc<MemoryArchive>,
    events: Arc<MemoryEventSink>,
    dedup: Arc<MemoryIdempotency>,
    clock: Arc<ManualClock>,
}

fn fixture(slow: Duration, file: &str) -> Fixture {
    let file = FileSettings::parse(file).expect("settings file");
    let settings = Settings::resolve(file, &[("WECHAT_TOKEN", TOKEN)], None).expect("settings");
    let archive = Arc::new(MemoryArchive::default());
    let events = Arc::new(MemoryEventSink::default());
    let dedup = Arc::new(MemoryIdempotency::default());
    let clock = Arc::new(ManualClock::new(NOW));
    let shop = wca_dialog::Shop {
        profiles: Some(Arc::new(SlowProfiles(slow))),
        ..wca_dialog::Shop::default()
    };
    let ports = Ports {
        archive: archive.clone(),
        dedup: dedup.clone(),
        events: events.clone(),
        clock: clock.clone(),
        conversations: Arc::new(MemoryConversationStore::default()),
        shop,
        commit: None,
    };
    let hook = Webhook::new(settings, ports);
    Fixture {
        app: router(hook.clone()),
        hook,
        archive,
        events,
        dedup,
        clock,
    }
}

fn request(msg_id: &str, text: &str) -> Request<Body> {
    let xml = client_side::text_message_xml("gh_hangup", OPENID, NOW, msg_id, text);
    let token = Token::new(TOKEN).expect("token");
    let sealed = client_side::seal_request(
        &token,
        None,
        "",
        "gh_hangup",
        OPENID,
        &xml,
        NOW,
        "n0nce",
        [1u8; 16],
    );
    let qs = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&sealed.query)
        .finish();
    Request::post(format!("/wechat?{qs}"))
        .header("content-type", "text/xml")
        .body(Body::from(sealed.body))
        .expect("request")
}

async fn answer(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn replies_sent(events: &MemoryEventSink) -> usize {
    events
        .take()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ReplySent { .. }))
        .count()
}

#[tokio::test]
async fn a_message_whose_sender_hangs_up_is_still_answered_and_its_retry_gets_that_reply() {
    let f = fixture(Duration::from_millis(300), "");
    let hung_up = tokio::time::timeout(
        Duration::from_millis(50),
        answer(&f.app, request("9001", "你好")),
    )
    .await;
    assert!(hung_up.is_err(), "the sender hung up before the reply");
    assert!(
        f.hook.drain(Duration::from_secs(10)).await,
        "processing finished"
    );

    let archived = f.archive.reply("msg:9001").expect("the reply was archived");
    assert_eq!(replies_sent(&f.events), 1, "and counted once");

    let (status, body) = answer(&f.app, request("9001", "你好")).await;
    assert_eq!(status, StatusCode::OK);
    let parsed = reply::parse_reply(&body).expect("a reply, not `success`");
    let wca_core::Outgoing::Text { content } = archived.reply else {
        panic!("a text reply was archived");
    };
    assert_eq!(
        parsed.content,
        Some(content),
        "the retry gets the same reply"
    );
    assert_eq!(replies_sent(&f.events), 0, "the retry counts nothing more");
}

#[tokio::test]
async fn a_retry_during_the_first_delivery_waits_for_its_reply() {
    let f = fixture(Duration::from_millis(300), "");
    let first = tokio::spawn({
        let app = f.app.clone();
        async move { answer(&app, request("9002", "你好")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let retry = answer(&f.app, request("9002", "你好")).await;
    let first = first.await.expect("first delivery");
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(
        retry, first,
        "the retry answers with the first delivery's reply"
    );
    assert_ne!(retry.1, "success");
}

#[tokio::test]
async fn a_retry_never_answers_success_for_a_claim_it_has_not_seen_finish() {
    let f = fixture(Duration::ZERO, "[webhook]\ninflight_wait_ms = 100\n");
    // A first delivery that claimed the message and then died.
    f.dedup.begin("msg:9003", NOW, 8).await.expect("claim");
    let (status, body) = answer(&f.app, request("9003", "你好")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_ne!(body, "success", "WeChat must keep retrying");
}

#[tokio::test]
async fn a_retry_after_the_lease_takes_over_a_delivery_that_died() {
    let f = fixture(Duration::ZERO, "[webhook]\ninflight_wait_ms = 100\n");
    f.dedup.begin("msg:9004", NOW, 8).await.expect("claim");
    // WeChat's last retry comes about 10 s after the first delivery.
    f.clock.advance(9);
    let (status, body) = answer(&f.app, request("9004", "你好")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(reply::parse_reply(&body).is_ok(), "answered: {body}");
    assert!(f.archive.reply("msg:9004").is_some());
}

#[tokio::test]
async fn drain_waits_for_messages_in_progress() {
    let f = fixture(Duration::from_millis(300), "");
    let running = tokio::spawn({
        let app = f.app.clone();
        async move { answer(&app, request("9005", "你好")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.hook.in_flight(), 1);
    assert!(
        !f.hook.drain(Duration::from_millis(10)).await,
        "not done within 10 ms"
    );
    assert!(f.hook.drain(Duration::from_secs(10)).await);
    assert_eq!(f.hook.in_flight(), 0);
    running.await.expect("request");
}

#[test]
fn the_default_lease_ends_before_wechats_last_retry() {
    let settings = Settings::resolve(FileSettings::default(), &[("WECHAT_TOKEN", TOKEN)], None)
        .expect("settings");
    assert!(settings.lease_secs < 10, "{}", settings.lease_secs);
    assert!(settings.lease_secs > 5, "longer than one delivery may take");
}

#[tokio::test]
async fn a_delivery_slower_than_its_lease_gives_up_and_lets_go_of_its_claim_before_a_retry_could_take_over()
 {
    // A 3 s lease: the delivery may work one second; the profile system
    // takes five.
    let f = fixture(Duration::from_secs(5), "[webhook]\nlease_secs = 3\n");
    let (status, body) = answer(&f.app, request("9006", "你好")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(!body.contains("lease"), "no detail in the body: {body}");
    assert_eq!(
        f.dedup.begin("msg:9006", NOW, 3).await.expect("begin"),
        wca_core::Begin::Fresh,
        "the claim was let go at once: the retry need not wait for the lease, and never runs beside it"
    );
    assert!(
        f.archive.reply("msg:9006").is_none(),
        "nothing was answered"
    );
    assert_eq!(replies_sent(&f.events), 0, "nothing was counted as sent");
}
