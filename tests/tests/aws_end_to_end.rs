//! End to end on the local AWS stand-in (moto_server, started by
//! `infra/test.sh`): a signed WeChat message into the webhook handler ->
//! EventBridge bus -> rule -> SQS -> analytics handler -> DynamoDB, all
//! through the real AWS SDK.

use std::sync::Arc;

use aws_sdk_eventbridge::types::Target;
use aws_sdk_sqs::types::QueueAttributeName;
use wca_analytics::Analytics;
use wca_aws::{
    DynamoDbStore, EventBridgeSink, Received, SqsEventQueue, stand_in_config, unique_name,
};
use wca_core::{Counters, EventLog, MessageArchive, SystemClock, analytics::day_hour};
use wca_filter::{DictionaryFiles, ReloadingFilter};
use wca_filter_fn::FilterService;
use wca_webhook::{
    Ports, Webhook, router,
    settings::{FileSettings, Settings},
};
use wca_wechat::{AesKey, Token, reply};

const TOKEN: &str = "e2eToken1234";
const APP_ID: &str = "wxe2e0000000000001";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const OPENID: &str = "oE2EUser000000000000000001";

mod common;

use common::{as_sqs_event, endpoint};

struct Stack {
    config: aws_config::SdkConfig,
    bus: String,
    store: DynamoDbStore,
    sink: EventBridgeSink,
    queue: SqsEventQueue,
    dlq: SqsEventQueue,
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn")
}

/// The resources `template.yaml` declares, made on the stand-in.
async fn stack() -> Stack {
    let config = stand_in_config(&endpoint()).await;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&config), unique_name("wca"));
    store.create_table().await.expect("table");

    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq_url = sqs
        .create_queue()
        .queue_name(unique_name("dlq"))
        .send()
        .await
        .expect("dlq")
        .queue_url
        .expect("url");
    let redrive = serde_json::json!({
        "deadLetterTargetArn": queue_arn(&sqs, &dlq_url).await,
        "maxReceiveCount": 2,
    });
    let queue_url = sqs
        .create_queue()
        .queue_name(unique_name("analytics"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");

    let eb = aws_sdk_eventbridge::Client::new(&config);
    let bus = unique_name("bus");
    eb.create_event_bus().name(&bus).send().await.expect("bus");
    eb.put_rule()
        .name("events-to-analytics")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["wca"]}"#)
        .send()
        .await
        .expect("rule");
    eb.put_targets()
        .rule("events-to-analytics")
        .event_bus_name(&bus)
        .targets(
            Target::builder()
                .id("analytics")
                .arn(queue_arn(&sqs, &queue_url).await)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");
    Stack {
        config: config.clone(),
        bus: bus.clone(),
        store,
        sink: EventBridgeSink::new(eb, bus),
        queue: SqsEventQueue::new(sqs.clone(), queue_url),
        dlq: SqsEventQueue::new(sqs, dlq_url),
    }
}

/// Receives until `n` messages arrived (or a few empty polls passed).
async fn receive_n(queue: &SqsEventQueue, n: usize) -> Vec<Received> {
    let mut got = Vec::new();
    for _ in 0..10 {
        got.extend(queue.receive(1).await.expect("receive"));
        if got.len() >= n {
            break;
        }
    }
    got
}

/// Posts an encrypted text from `OPENID` to the webhook as WeChat would;
/// returns the time it used, the message XML and the response body.
async fn post_text(app: &axum::Router, msg_id: &str, content: &str) -> (i64, String, Vec<u8>) {
    let (now, inner, status, body) =
        common::post_text(app, (TOKEN, APP_ID, AES_KEY), OPENID, msg_id, content).await;
    assert_eq!(status, 200);
    (now, inner, body)
}

/// A webhook over the stack's DynamoDB table and bus.
fn webhook(stack: &Stack) -> (axum::Router, jiff::tz::TimeZone) {
    let env = [
        ("WECHAT_TOKEN", TOKEN),
        ("WECHAT_APP_ID", APP_ID),
        ("WECHAT_AES_KEY", AES_KEY),
        // The stand-in serves one request at a time to every test at once:
        // a delivery may need longer than the default lease's 6 s.
        ("WCA_LEASE_SECS", "60"),
    ];
    let settings = Settings::resolve(FileSettings::default(), &env, None).expect("settings");
    let tz = settings.timezone.clone();
    let store = Arc::new(stack.store.clone());
    let app = router(Webhook::new(
        settings,
        Ports {
            archive: store.clone(),
            dedup: store.clone(),
            events: Arc::new(stack.sink.clone()),
            clock: Arc::new(SystemClock),
            conversations: store,
            shop: wca_dialog::Shop::default(),
            commit: None,
        },
    ));
    (app, tz)
}

#[tokio::test]
async fn a_signed_message_is_archived_and_counted_in_dynamodb_once_even_when_sqs_redelivers() {
    let stack = stack().await;
    let (app, tz) = webhook(&stack);
    let store = Arc::new(stack.store.clone());

    // WeChat posts an encrypted "你好".
    let (now, inner, body) = post_text(&app, "88001", "你好").await;
    let token = Token::new(TOKEN).expect("token");
    let key = AesKey::parse(AES_KEY).expect("key");
    let reply_xml = reply::open_encrypted_reply(
        &token,
        &key,
        APP_ID,
        std::str::from_utf8(&body).expect("utf-8"),
    )
    .expect("reply opens");
    assert!(
        reply::parse_reply(&reply_xml)
            .expect("reply")
            .content
            .unwrap_or_default()
            .contains("你好")
    );

    // Archived in DynamoDB by the webhook itself.
    let archived = MessageArchive::get(&stack.store, OPENID, "msg:88001", now)
        .await
        .expect("get")
        .expect("archived");
    assert_eq!(archived.raw_xml, inner);
    // With its reply beside it, in the user's history.
    let user = wca_core::OpenId::parse(OPENID).expect("openid");
    let history = MessageArchive::history(&stack.store, &user, 10, now)
        .await
        .expect("history");
    let sides: Vec<_> = history.iter().map(|e| (e.direction(), e.key())).collect();
    assert_eq!(
        sides,
        vec![
            (wca_core::Direction::Outbound, "msg:88001"),
            (wca_core::Direction::Inbound, "msg:88001"),
        ]
    );

    // The bus rule delivered MessageReceived and ReplySent to the queue.
    let messages = receive_n(&stack.queue, 2).await;
    assert_eq!(messages.len(), 2, "two events reached the analytics queue");
    let analytics = Analytics::new(store.clone(), store.clone(), tz.clone());
    let batch = as_sqs_event(&messages);
    let response = analytics.handle(batch.clone()).await;
    assert!(response.batch_item_failures.is_empty());

    let (day, hour) = day_hour(now, &tz);
    let count = |k: String| {
        let store = stack.store.clone();
        async move { Counters::get(&store, &k).await.expect("counter") }
    };
    assert_eq!(count(format!("msgs:day:{day}:type:text")).await, 1);
    assert_eq!(count(format!("msgs:hour:{day}T{hour}")).await, 1);
    assert_eq!(count(format!("replies:day:{day}")).await, 1);
    assert!(
        EventLog::get(&stack.store, "received:msg:88001")
            .await
            .expect("log")
            .is_some(),
        "the event itself is written to the log"
    );

    // SQS redelivers the same batch (at-least-once): nothing changes.
    let response = analytics.handle(batch).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(count(format!("msgs:day:{day}:type:text")).await, 1);
    assert_eq!(count(format!("replies:day:{day}")).await, 1);
}

#[tokio::test]
async fn a_poison_message_ends_in_the_dead_letter_queue_and_the_rest_of_its_batch_succeeds() {
    let stack = stack().await;
    let store = Arc::new(stack.store.clone());
    let analytics = Analytics::new(store.clone(), store.clone(), jiff::tz::TimeZone::UTC);
    let good = wca_core::Event::reply_sent("msg:5", OPENID, "text", 1_700_000_000);
    stack
        .queue
        .send_raw(&serde_json::to_string(&good).expect("json"))
        .await
        .expect("send good");
    stack
        .queue
        .send_raw("{\"not\": \"an event\"}")
        .await
        .expect("send poison");

    let mut attempts = 0;
    loop {
        let messages = receive_n(&stack.queue, 1).await;
        if messages.is_empty() {
            break;
        }
        attempts += 1;
        assert!(attempts <= 5, "the poison message never left the queue");
        let response = analytics.handle(as_sqs_event(&messages)).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        // What Lambda's SQS integration does with a partial batch response.
        for m in &messages {
            if failed.contains(&m.message_id.as_str()) {
                assert!(m.body.contains("not"), "only the poison fails");
                stack
                    .queue
                    .retry_now(&m.receipt_handle)
                    .await
                    .expect("retry");
            } else {
                stack.queue.delete(&m.receipt_handle).await.expect("delete");
            }
        }
    }
    assert_eq!(
        Counters::get(&stack.store, "replies:day:2023-11-14")
            .await
            .expect("counter"),
        1,
        "the good message in the batch was counted"
    );
    let dead = receive_n(&stack.dlq, 1).await;
    assert_eq!(dead.len(), 1, "the poison message is in the DLQ");
    assert!(dead[0].body.contains("not"));
}

/// The compliance queue and the rule that feeds it, as in `template.yaml`.
async fn compliance_queue(stack: &Stack) -> SqsEventQueue {
    let sqs = aws_sdk_sqs::Client::new(&stack.config);
    let url = sqs
        .create_queue()
        .queue_name(unique_name("compliance"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let eb = aws_sdk_eventbridge::Client::new(&stack.config);
    eb.put_rule()
        .name("messages-to-compliance")
        .event_bus_name(&stack.bus)
        .event_pattern(
            r#"{"source":["wca"],"detail-type":["MessageReceived"],"detail":{"msg_type":["text","voice"]}}"#,
        )
        .send()
        .await
        .expect("rule");
    eb.put_targets()
        .rule("messages-to-compliance")
        .event_bus_name(&stack.bus)
        .targets(
            Target::builder()
                .id("compliance")
                .arn(queue_arn(&sqs, &url).await)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");
    SqsEventQueue::new(sqs, url)
}

#[tokio::test]
async fn a_denied_word_in_a_message_is_scanned_by_the_filter_function_and_recorded_once() {
    let stack = stack().await;
    let compliance = compliance_queue(&stack).await;
    let (app, tz) = webhook(&stack);
    let (now, _, _) = post_text(&app, "88101", "加我微信，私下转账给你打折").await;

    // Only the MessageReceived event of the text reaches the compliance queue.
    let scanned = receive_n(&compliance, 1).await;
    assert_eq!(scanned.len(), 1);
    assert!(
        scanned[0].body.contains("MessageReceived"),
        "{}",
        scanned[0].body
    );
    let store = Arc::new(stack.store.clone());
    let filter = FilterService {
        filter: ReloadingFilter::new(
            DictionaryFiles {
                builtin: true,
                ..Default::default()
            },
            std::time::Duration::from_secs(30),
        )
        .expect("builtin dictionary"),
        archive: store.clone(),
        events: Arc::new(stack.sink.clone()),
        clock: Arc::new(SystemClock),
    };
    let response = filter.handle_batch(as_sqs_event(&scanned)).await;
    assert!(response.batch_item_failures.is_empty());

    // Analytics gets MessageReceived, the clarifying reply's ReplySent and
    // two copies of the same ComplianceHit (the webhook's and the scan's):
    // it records one.
    let events = receive_n(&stack.queue, 4).await;
    assert_eq!(events.len(), 4, "{events:?}");
    let hits = events
        .iter()
        .filter(|e| e.body.contains("\"detail-type\": \"ComplianceHit\""))
        .count();
    assert_eq!(hits, 2, "{events:?}");
    let analytics = Analytics::new(store.clone(), store, tz.clone());
    assert!(
        analytics
            .handle(as_sqs_event(&events))
            .await
            .batch_item_failures
            .is_empty()
    );
    let (day, _) = day_hour(now, &tz);
    let count = |k: String| {
        let store = stack.store.clone();
        async move { Counters::get(&store, &k).await.expect("counter") }
    };
    assert_eq!(count(format!("compliance:day:{day}")).await, 1);
    assert_eq!(
        count(format!("compliance:day:{day}:category:diversion")).await,
        1
    );
    let logged = EventLog::get(&stack.store, "compliance:inbound:msg:88101")
        .await
        .expect("log")
        .expect("the hit is in the audit log");
    let wca_core::EventKind::ComplianceHit { hits, action, .. } = logged.kind else {
        panic!("expected a compliance hit, got {logged:?}");
    };
    assert_eq!(action, "flag");
    let words: Vec<&str> = hits.iter().map(|h| h.word.as_str()).collect();
    assert_eq!(words, ["加我微信", "私下转账"]);
}
