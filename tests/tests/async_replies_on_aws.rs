//! Async replies on Lambda, on the local AWS stand-in and the WeChat
//! stand-in: the webhook archives a signed message, queues it on SQS FIFO
//! and answers `success`; the responder decides the reply with the same
//! pipeline and sends it through the customer-service API, once, however
//! often WeChat retries or SQS redelivers.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use wca_aws::{DynamoDbStore, Received, SqsEventQueue, SqsMessageQueue, stand_in_config};
use wca_core::memory::{
    MemoryArchive, MemoryConversationStore, MemoryEventSink, MemoryIdempotency,
};
use wca_core::outbound::{BreakerConfig, BreakerState, OutboundPolicy};
use wca_core::{EventKind, MessageArchive, Outbound, SystemClock};
use wca_fake_wechat::{FakeWeChat, Options};
use wca_webhook::lambda::Responder;
use wca_webhook::settings::{FileSettings, Settings};
use wca_webhook::{AsyncReplies, Ports, Webhook, router};
use wca_wechat::api::{ApiConfig, AppSecret, HttpWeChatApi};
use wca_wechat::{AesKey, Token, reply};

const TOKEN: &str = "asyncToken1234";
const APP_ID: &str = "wxasync00000000001";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const SIGNING: (&str, &str, &str) = (TOKEN, APP_ID, AES_KEY);

/// The stack's table and reply queue on moto, the WeChat stand-in, and
/// the events both functions publish.
struct Rig {
    store: Arc<DynamoDbStore>,
    queue: SqsMessageQueue,
    fake: FakeWeChat,
    base: String,
    secret: String,
    events: Arc<MemoryEventSink>,
}

async fn rig() -> Rig {
    let config = stand_in_config(&common::endpoint()).await;
    let store = DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        wca_aws::unique_name("wca"),
    );
    store.create_table().await.expect("table");
    let queue = SqsMessageQueue::create(
        aws_sdk_sqs::Client::new(&config),
        &wca_aws::unique_name("replies"),
        30,
    )
    .await
    .expect("fifo queue");
    let opts = Options {
        app_id: APP_ID.into(),
        ..Options::default()
    };
    let (fake, addr) = FakeWeChat::start(opts.clone()).await.expect("stand-in");
    Rig {
        store: Arc::new(store),
        queue,
        fake,
        base: format!("http://{addr}"),
        secret: opts.secret,
        events: Arc::default(),
    }
}

fn settings() -> Settings {
    let env = [
        ("WECHAT_TOKEN", TOKEN),
        ("WECHAT_APP_ID", APP_ID),
        ("WECHAT_AES_KEY", AES_KEY),
        // The stand-in serves one request at a time to every test at once.
        ("WCA_LEASE_SECS", "60"),
    ];
    Settings::resolve(FileSettings::default(), &env, None).expect("settings")
}

/// The functions' ports, as `wca_webhook::lambda::wire` makes them, with
/// the events kept in memory to be read back.
fn ports(rig: &Rig) -> Ports {
    Ports {
        archive: rig.store.clone(),
        dedup: rig.store.clone(),
        events: rig.events.clone(),
        clock: Arc::new(SystemClock),
        conversations: rig.store.clone(),
        shop: wca_dialog::Shop::default(),
        commit: None,
    }
}

/// The webhook function with `WCA_REPLY_MODE=async`.
fn async_webhook(rig: &Rig) -> axum::Router {
    router(
        Webhook::new(settings(), ports(rig)).with_async_replies(AsyncReplies {
            contacts: rig.store.clone(),
            wake: Arc::default(),
            queue: Some(Arc::new(rig.queue.clone())),
            late_after: None,
        }),
    )
}

/// The respond function, sending to the WeChat stand-in.
fn responder(rig: &Rig, policy: OutboundPolicy) -> Responder {
    let api = HttpWeChatApi::new(
        ApiConfig::new(
            &rig.base,
            APP_ID,
            AppSecret::new(&rig.secret).expect("secret"),
        ),
        rig.store.clone(),
        Arc::new(SystemClock),
    )
    .expect("client");
    let outbound = Outbound::new(
        Arc::new(api),
        rig.store.clone(),
        rig.events.clone(),
        Arc::new(SystemClock),
        policy,
    );
    Responder::new(Webhook::new(settings(), ports(rig)), Arc::new(outbound))
        .with_queue(rig.queue.reader())
}

/// What Lambda's poller does once: receive a batch, hand it to the
/// function, delete what it did not report failed. Returns the batch and
/// the response.
async fn poll_once(
    queue: &SqsEventQueue,
    responder: &Responder,
) -> (Vec<Received>, SqsBatchResponse) {
    let batch = queue.receive(1).await.expect("receive");
    if batch.is_empty() {
        return (batch, SqsBatchResponse::default());
    }
    let response = responder.handle(common::as_sqs_event(&batch)).await;
    for m in &batch {
        let failed = response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == m.message_id);
        if !failed {
            queue.delete(&m.receipt_handle).await.expect("delete");
        }
    }
    (batch, response)
}

/// The passive reply the same text gets from a webhook in passive mode.
async fn passive_reply(text: &str) -> String {
    let hook = Webhook::new(
        settings(),
        Ports {
            archive: Arc::new(MemoryArchive::default()),
            dedup: Arc::new(MemoryIdempotency::default()),
            events: Arc::new(MemoryEventSink::default()),
            clock: Arc::new(SystemClock),
            conversations: Arc::new(MemoryConversationStore::default()),
            shop: wca_dialog::Shop::default(),
            commit: None,
        },
    );
    let (_, _, status, body) = common::post_text(
        &router(hook),
        SIGNING,
        "oPassive000000000000000001",
        "1",
        text,
    )
    .await;
    assert_eq!(status, 200);
    let xml = reply::open_encrypted_reply(
        &Token::new(TOKEN).expect("token"),
        &AesKey::parse(AES_KEY).expect("key"),
        APP_ID,
        std::str::from_utf8(&body).expect("utf-8"),
    )
    .expect("a sealed reply");
    reply::parse_reply(&xml)
        .expect("reply")
        .content
        .expect("a text reply")
}

#[tokio::test]
async fn a_signed_message_reaches_wechat_once_through_sqs_despite_three_retries_and_a_redelivery() {
    let rig = rig().await;
    let user = "oAsyncAws0000000000000001";
    // WeChat saw the user's message: its window is open.
    rig.fake.interact(user);
    let expected = passive_reply("你好").await;

    let app = async_webhook(&rig);
    // The first delivery and WeChat's three retries.
    for attempt in 0..4 {
        let (_, _, status, body) = common::post_text(&app, SIGNING, user, "77001", "你好").await;
        assert_eq!(
            (status, body.as_slice()),
            (200, b"success".as_slice()),
            "attempt {attempt}"
        );
    }

    let reader = rig.queue.reader();
    let first = reader.receive(1).await.expect("receive");
    assert_eq!(first.len(), 1, "one queued message for four deliveries");
    let queued: wca_core::ArchivedMessage =
        serde_json::from_str(&first[0].body).expect("an archived message");
    assert_eq!(
        (queued.key.as_str(), queued.openid.as_str()),
        ("msg:77001", user)
    );
    assert_eq!(first[0].group_id.as_deref(), Some(user), "grouped by user");
    // Archived by the webhook before it answered.
    let archived = MessageArchive::get(rig.store.as_ref(), user, "msg:77001", queued.received_at)
        .await
        .expect("get");
    assert_eq!(archived, Some(queued.clone()));

    let responder = responder(&rig, OutboundPolicy::default());
    let response = responder.handle(common::as_sqs_event(&first)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    // The function's sandbox dies before Lambda deletes the message: SQS
    // delivers it again.
    reader
        .retry_now(&first[0].receipt_handle)
        .await
        .expect("visible again");
    let again = reader.receive(1).await.expect("receive");
    assert_eq!(again.len(), 1, "redelivered");
    assert_eq!(again[0].body, first[0].body);
    let response = responder.handle(common::as_sqs_event(&again)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    reader
        .delete(&again[0].receipt_handle)
        .await
        .expect("delete");
    assert!(reader.receive(0).await.expect("receive").is_empty());

    let sent = rig.fake.sent();
    assert_eq!(sent.len(), 1, "exactly one message: {sent:?}");
    assert_eq!(
        (
            sent[0].api.as_str(),
            sent[0].openid.as_str(),
            sent[0].msgtype.as_str()
        ),
        ("custom", user, "text")
    );
    assert_eq!(sent[0].content, expected, "the reply the dialog chose");
    assert_eq!(rig.fake.stats().stable_token_calls, 1);
    let outbound_sent = rig
        .events
        .take()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::OutboundSent { .. }))
        .count();
    assert_eq!(outbound_sent, 1);
    // The reply is in the user's history beside the message.
    let openid = wca_core::OpenId::parse(user).expect("openid");
    let history = MessageArchive::history(rig.store.as_ref(), &openid, 10, queued.received_at)
        .await
        .expect("history");
    let sides: Vec<_> = history.iter().map(|e| (e.direction(), e.key())).collect();
    assert_eq!(
        sides,
        [
            (wca_core::Direction::Outbound, "msg:77001"),
            (wca_core::Direction::Inbound, "msg:77001"),
        ]
    );
}

#[tokio::test]
async fn while_wechat_is_busy_the_breaker_opens_and_messages_wait_on_the_queue_then_go_once_in_order()
 {
    let rig = rig().await;
    let users = [
        "oBreakerAws00000000000001",
        "oBreakerAws00000000000002",
        "oBreakerAws00000000000003",
    ];
    for user in users {
        rig.fake.interact(user);
    }
    // 3 s here; `WCA_OUTAGE_SECS=30` for the figures of the closing note.
    let outage = Duration::from_secs(
        std::env::var("WCA_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    rig.fake.fail_for(-1, "custom/send", outage);
    let app = async_webhook(&rig);
    // Two messages from each user, the first ones first.
    let mut posted: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for round in 0..2 {
        for (i, user) in users.iter().enumerate() {
            let msg_id = format!("7800{round}{i}");
            let (_, _, status, _) = common::post_text(&app, SIGNING, user, &msg_id, "你好").await;
            assert_eq!(status, 200);
            posted
                .entry(user)
                .or_default()
                .push(format!("msg:{msg_id}"));
        }
    }

    let responder = responder(
        &rig,
        OutboundPolicy {
            attempts: 1,
            breaker: BreakerConfig {
                consecutive_failures: 2,
                open_for: Duration::from_secs(1),
                ..BreakerConfig::default()
            },
            ..OutboundPolicy::default()
        },
    );
    let reader = rig.queue.reader();
    let started = std::time::Instant::now();
    let mut polls_with_failures = 0;
    while rig.fake.sent().len() < 6 && started.elapsed() < outage + Duration::from_secs(60) {
        let (_, response) = poll_once(&reader, &responder).await;
        if !response.batch_item_failures.is_empty() {
            polls_with_failures += 1;
        }
    }
    let sent = rig.fake.sent();
    eprintln!(
        "outage {} s: all sent after {:.1} s, {} calls reached WeChat while busy, {} polls sent messages back",
        outage.as_secs(),
        started.elapsed().as_secs_f64(),
        rig.fake.stats().injected_errors,
        polls_with_failures
    );
    assert_eq!(sent.len(), 6, "every message went: {sent:?}");
    assert!(
        polls_with_failures > 0,
        "the outage sent messages back to the queue"
    );

    let events = rig.events.take();
    let mut sent_keys: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in &events {
        if let EventKind::OutboundSent {
            reference, openid, ..
        } = &e.kind
        {
            let user = users.iter().find(|u| *u == openid).expect("a known user");
            sent_keys.entry(user).or_default().push(reference.clone());
        }
    }
    assert_eq!(sent_keys, posted, "each message once, each user's in order");
    let opened = events.iter().any(|e| {
        matches!(
            e.kind,
            EventKind::BreakerChanged {
                state: BreakerState::Open
            }
        )
    });
    assert!(opened, "the breaker opened");
    // Calls stopped: two busy answers open the breaker, then one probe per
    // second of the outage at most.
    let busy = rig.fake.stats().injected_errors;
    assert!(
        busy <= 2 + outage.as_secs() + 2,
        "{busy} calls reached WeChat during a {}-second outage",
        outage.as_secs()
    );
    for user in users {
        assert!(
            rig.fake.sent().iter().filter(|s| s.openid == user).count() == 2,
            "two replies for {user}"
        );
    }
}

#[tokio::test]
async fn a_queued_body_that_is_not_a_message_goes_to_the_dead_letter_queue_at_once() {
    let rig = rig().await;
    let config = stand_in_config(&common::endpoint()).await;
    let dead = SqsMessageQueue::create(
        aws_sdk_sqs::Client::new(&config),
        &wca_aws::unique_name("replies-dlq"),
        30,
    )
    .await
    .expect("dead-letter queue");
    let reader = rig.queue.reader();
    reader
        .send_fifo("not a message", "oSomeone", "junk-1")
        .await
        .expect("send");
    let responder = responder(&rig, OutboundPolicy::default()).with_dead_letters(dead.reader());
    let (batch, response) = poll_once(&reader, &responder).await;
    assert_eq!(batch.len(), 1);
    assert!(
        response.batch_item_failures.is_empty(),
        "acknowledged, not retried: {response:?}"
    );
    let parked = dead.reader().receive(1).await.expect("receive");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body, "not a message", "kept as it came");
    assert!(reader.receive(0).await.expect("receive").is_empty());
}
