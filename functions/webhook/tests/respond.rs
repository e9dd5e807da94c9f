//! The responder of async replies with memory adapters and the WeChat
//! stand-in: what a queued message becomes when it is delivered once,
//! twice, after a crash, or to a user WeChat will not let us reach.
//! (The same path on the AWS stand-in, through SQS FIFO, is in
//! `tests/tests/async_replies_on_aws.rs`.)

mod common;

use std::sync::Arc;

use wca_core::memory::{
    MemoryArchive, MemoryContactWindows, MemoryConversationStore, MemoryEventSink,
    MemoryIdempotency, MemoryTokenStore,
};
use wca_core::outbound::OutboundPolicy;
use wca_core::{ArchivedMessage, Begin, EventKind, IdempotencyStore, Outbound, SystemClock};
use wca_fake_wechat::{FakeWeChat, Options};
use wca_webhook::settings::{FileSettings, Settings};
use wca_webhook::{AsyncReplies, Ports, Responded, Webhook};
use wca_wechat::api::{ApiConfig, AppSecret, HttpWeChatApi};

const TOKEN: &str = "respondToken1";
const APP_ID: &str = "wxrespond000000001";
const USER: &str = "oRespond00000000000000001";

/// A queue that keeps every message it is given, repeats too (unlike SQS
/// FIFO), so that a test sees what the webhook itself queues.
#[derive(Default)]
struct Recording(std::sync::Mutex<Vec<ArchivedMessage>>);

impl Recording {
    fn take(&self) -> Vec<ArchivedMessage> {
        std::mem::take(&mut *self.0.lock().expect("queue"))
    }
}

#[async_trait::async_trait]
impl wca_core::MessageQueue for Recording {
    async fn enqueue(&self, message: &ArchivedMessage) -> Result<(), wca_core::PortError> {
        self.0.lock().expect("queue").push(message.clone());
        Ok(())
    }
}

struct Rig {
    webhook: Webhook,
    responder: Webhook,
    queue: Arc<Recording>,
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
    let queue = Arc::new(Recording::default());
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
    let mut config = ApiConfig::new(
        &format!("http://{addr}"),
        APP_ID,
        AppSecret::new(&opts.secret).expect("secret"),
    );
    // A lost answer is noticed quickly.
    config.timeout = std::time::Duration::from_millis(500);
    let api = HttpWeChatApi::new(
        config,
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

async fn post(hook: &Webhook, msg_id: &str, text: &str) -> String {
    common::post_text(hook, (TOKEN, APP_ID, "gh_respond"), USER, msg_id, text).await
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
    assert_eq!(queued.len(), 1, "the webhook queued it once: {queued:?}");
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

#[tokio::test]
async fn when_wechat_refuses_the_accounts_setup_the_reply_waits_and_goes_once_it_is_fixed() {
    let rig = rig().await;
    rig.fake.interact(USER);
    let message = queued_one(&rig, "506").await;
    // The server's IP is not on the account's whitelist, until an
    // operator adds it.
    rig.fake.inject(wca_fake_wechat::Fault {
        errcode: 40164,
        path: "custom/send".into(),
        until_ms: None,
        calls: Some(1),
    });
    let refused = rig.responder.respond(&message, &rig.outbound).await;
    let error = refused.expect_err("waits");
    assert_eq!(
        error.retry_in(),
        Some(std::time::Duration::from_secs(300)),
        "{error}"
    );
    let fixed = rig.responder.respond(&message, &rig.outbound).await;
    assert_eq!(fixed.expect("sent"), Responded::Sent);
    assert_eq!(rig.fake.sent().len(), 1);
}

#[tokio::test]
async fn a_reply_whose_answer_is_lost_is_not_sent_again_on_redelivery() {
    let rig = rig().await;
    rig.fake.interact(USER);
    let message = queued_one(&rig, "507").await;
    rig.fake.lose_answers(1);
    let first = rig.responder.respond(&message, &rig.outbound).await;
    assert_eq!(first.expect("final"), Responded::Interrupted);
    let again = rig.responder.respond(&message, &rig.outbound).await;
    assert_eq!(again.expect("final"), Responded::Interrupted);
    assert_eq!(rig.fake.sent().len(), 1, "delivered once, never twice");
}

/// An SQS batch of `messages`, each in its sender's group.
fn batch(messages: &[ArchivedMessage]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            serde_json::json!({
                "messageId": format!("m{i}"),
                "body": serde_json::to_string(m).expect("json"),
                "attributes": {"MessageGroupId": m.openid, "ApproximateReceiveCount": "1"},
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("batch")
}

#[tokio::test]
async fn a_users_later_message_waits_behind_one_that_could_not_be_answered() {
    let rig = rig().await;
    rig.fake.interact(USER);
    let first = queued_one(&rig, "508").await;
    let second = queued_one(&rig, "509").await;
    // Another delivery is deciding the first (its claim is in flight).
    let now = wca_core::Clock::now(&SystemClock);
    assert_eq!(
        rig.dedup
            .begin("respond:msg:508", now, 3600)
            .await
            .expect("claim"),
        Begin::Fresh
    );
    let responder =
        wca_webhook::lambda::Responder::new(rig.responder.clone(), Arc::new(rig.outbound));
    let response = responder.handle(batch(&[first, second])).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m0", "m1"], "the second comes back with the first");
    assert!(rig.fake.sent().is_empty(), "nothing overtook the first");
}
