//! The responder of async replies with memory adapters and the WeChat
//! stand-in: what a queued message becomes when it is delivered once,
//! twice, after a crash, or to a user WeChat will not let us reach.
//! (The same path on the AWS stand-in, through SQS FIFO, is in
//! `tests/tests/async_replies_on_aws.rs`.)

use std::sync::Arc;

use wca_core::memory::{
    MemoryArchive, MemoryContactWindows, MemoryConversationStore, MemoryEventSink,
    MemoryIdempotency, MemoryMessageQueue, MemoryTokenStore,
};
use wca_core::outbound::OutboundPolicy;
use wca_core::{ArchivedMessage, Begin, EventKind, IdempotencyStore, Outbound, SystemClock};
use wca_fake_wechat::{FakeWeChat, Options};
use wca_webhook::settings::{FileSettings, Settings};
use wca_webhook::{AsyncReplies, Ports, Responded, Webhook};
use wca_wechat::api::{ApiConfig, AppSecret, HttpWeChatApi};
use wca_wechat::{Token, client_side};

const TOKEN: &str = "respondToken1";
const APP_ID: &str = "wxrespond000000001";
const USER: &str = "oRespond00000000000000001";

struct Rig {
    webhook: Webhook,
    responder: Webhook,
    queue: Arc<MemoryMessageQueue>,
    dedup: Arc<MemoryIdempotency>,
    events: Arc<MemoryEventSink>,
    outbound: Outbound,
    fake: FakeWeChat,
}

async fn rig() -> Rig {
    let settings = || {
        Settings::resolve(
            FileSettings::default(),
            &[("WECHAT_TOKEN", TOKEN), ("WECHAT_APP_ID", APP_ID)],
            None,
        )
        .expect("settings")
    };
    let dedup = Arc::new(MemoryIdempotency::default());
    let events = Arc::new(MemoryEventSink::default());
    let windows = Arc::new(MemoryContactWindows::default());
    let ports = Ports {
        archive: Arc::new(MemoryArchive::default()),
        dedup: dedup.clone(),
        events: events.clone(),
        clock: Arc::new(SystemClock),
        conversations: Arc::new(MemoryConversationStore::default()),
        shop: wca_dialog::Shop::default(),
        commit: None,
    };
    let queue = Arc::new(MemoryMessageQueue::default());
    let webhook = Webhook::new(settings(), ports.clone()).with_async_replies(AsyncReplies {
        contacts: windows.clone(),
        wake: Arc::default(),
        queue: Some(queue.clone()),
        late_after: None,
    });
    let opts = Options {
        app_id: APP_ID.into(),
        ..Options::default()
    };
    let (fake, addr) = FakeWeChat::start(opts.clone()).await.expect("stand-in");
    let api = HttpWeChatApi::new(
        ApiConfig::new(
            &format!("http://{addr}"),
            APP_ID,
            AppSecret::new(&opts.secret).expect("secret"),
        ),
        Arc::new(MemoryTokenStore::default()),
        Arc::new(SystemClock),
    )
    .expect("client");
    let outbound = Outbound::new(
        Arc::new(api),
        windows,
        events.clone(),
        Arc::new(SystemClock),
        OutboundPolicy::default(),
    );
    Rig {
        webhook,
        responder: Webhook::new(settings(), ports),
        queue,
        dedup,
        events,
        outbound,
        fake,
    }
}

/// Posts a signed plaintext text from `USER`, as WeChat would; returns the
/// response body.
async fn post(hook: &Webhook, msg_id: &str, text: &str) -> String {
    let now = wca_core::Clock::now(&SystemClock);
    let inner = client_side::text_message_xml("gh_respond", USER, now, msg_id, text);
    let sealed = client_side::seal_request(
        &Token::new(TOKEN).expect("token"),
        None,
        APP_ID,
        "gh_respond",
        USER,
        &inner,
        now,
        "77",
        [0; 16],
    );
    let response = hook
        .handle_post(&sealed.parsed_query(), sealed.body.as_bytes())
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

async fn queued_one(rig: &Rig, msg_id: &str) -> ArchivedMessage {
    assert_eq!(post(&rig.webhook, msg_id, "你好").await, "success");
    let mut queued = rig.queue.take();
    assert_eq!(queued.len(), 1);
    queued.remove(0)
}

#[tokio::test]
async fn in_queue_mode_the_webhook_queues_a_message_once_however_often_wechat_retries() {
    let rig = rig().await;
    for _ in 0..4 {
        assert_eq!(post(&rig.webhook, "501", "你好").await, "success");
    }
    let queued = rig.queue.take();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(
        (queued[0].key.as_str(), queued[0].openid.as_str()),
        ("msg:501", USER)
    );
    assert!(
        rig.fake.sent().is_empty(),
        "the webhook itself sends nothing"
    );
}

#[tokio::test]
async fn a_redelivered_message_is_answered_once() {
    let rig = rig().await;
    rig.fake.interact(USER);
    let message = queued_one(&rig, "502").await;
    let first = rig.responder.respond(&message, &rig.outbound).await;
    let second = rig.responder.respond(&message, &rig.outbound).await;
    assert_eq!(first.expect("sent"), Responded::Sent);
    assert_eq!(second.expect("redelivery"), Responded::AlreadySent);
    assert_eq!(rig.fake.sent().len(), 1);
}

#[tokio::test]
async fn a_send_claimed_by_a_delivery_that_died_is_reported_interrupted_and_not_sent_again() {
    let rig = rig().await;
    rig.fake.interact(USER);
    let message = queued_one(&rig, "503").await;
    // A delivery claimed the send, then its sandbox died.
    let now = wca_core::Clock::now(&SystemClock);
    assert_eq!(
        rig.dedup
            .begin("sent:msg:503", now, 3600)
            .await
            .expect("claim"),
        Begin::Fresh
    );
    let outcome = rig.responder.respond(&message, &rig.outbound).await;
    assert_eq!(outcome.expect("final"), Responded::Interrupted);
    assert!(rig.fake.sent().is_empty(), "not sent a second time");
    let reported = rig.events.take().into_iter().any(|e| {
        matches!(&e.kind, EventKind::OutboundFailed { reason, reference, .. }
            if reason == "interrupted" && reference == "msg:503")
    });
    assert!(reported, "the interrupted send is on record");
}

#[tokio::test]
async fn a_user_wechat_calls_unreachable_is_given_up_and_not_retried_on_redelivery() {
    let rig = rig().await;
    // On WeChat's side the user's window closed (its clock is two days
    // on): it answers 45015, whatever our own record says.
    rig.fake.interact(USER);
    rig.fake.advance(std::time::Duration::from_secs(49 * 3600));
    let message = queued_one(&rig, "504").await;
    let first = rig.responder.respond(&message, &rig.outbound).await;
    assert!(
        matches!(&first, Ok(Responded::Dropped(why)) if why.contains("45015")),
        "{first:?}"
    );
    let calls = rig.fake.stats().api_calls;
    let again = rig.responder.respond(&message, &rig.outbound).await;
    assert!(matches!(again, Ok(Responded::Dropped(_))), "{again:?}");
    assert_eq!(
        rig.fake.stats().api_calls,
        calls,
        "WeChat is not asked again"
    );
}

#[tokio::test]
async fn while_wechat_is_busy_the_reply_comes_back_later_and_then_goes_once() {
    let rig = rig().await;
    rig.fake.interact(USER);
    let message = queued_one(&rig, "505").await;
    rig.fake.inject(wca_fake_wechat::Fault {
        errcode: -1,
        path: "custom/send".into(),
        until_ms: None,
        calls: Some(3),
    });
    let busy = rig.responder.respond(&message, &rig.outbound).await;
    let error = busy.expect_err("not now");
    assert!(error.retry_in().is_some(), "{error}");
    assert!(rig.fake.sent().is_empty());
    let later = rig.responder.respond(&message, &rig.outbound).await;
    assert_eq!(later.expect("sent"), Responded::Sent);
    assert_eq!(rig.fake.sent().len(), 1);
}
