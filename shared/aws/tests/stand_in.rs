//! The AWS adapters against a real local AWS stand-in (`moto_server`,
//! started by `infra/test.sh`, address in `WCA_MOTO_ENDPOINT`), through the
//! real SDK: the same contract suites the memory and redb adapters pass.

use aws_sdk_eventbridge::types::Target;
use wca_aws::{
    DynamoDbStore, EventBridgeSink, SqsEventQueue, event_from_body, stand_in_config, unique_name,
};
use wca_core::contract;

fn endpoint() -> String {
    wca_aws::stand_in_endpoint().expect(
        "WCA_MOTO_ENDPOINT is not set: run the tests with infra/test.sh, which starts moto_server",
    )
}

async fn store() -> DynamoDbStore {
    let config = stand_in_config(&endpoint()).await;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&config), unique_name("wca"));
    store.create_table().await.expect("create table");
    store
}

#[tokio::test]
async fn dynamodb_archive_keeps_the_archive_contract() {
    contract::archive(&store().await).await;
}

#[tokio::test]
async fn dynamodb_archive_keeps_both_sides_in_each_users_history() {
    contract::archive_history(&store().await).await;
}

#[tokio::test]
async fn dynamodb_idempotency_keeps_the_idempotency_contract() {
    contract::idempotency(&store().await).await;
}

#[tokio::test]
async fn dynamodb_counters_keep_the_counters_contract() {
    contract::counters(&store().await).await;
}

#[tokio::test]
async fn dynamodb_event_log_keeps_the_event_log_contract() {
    contract::event_log(&store().await).await;
}

// Several worker threads, so the contract's concurrent writers really
// race each other to the stand-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_conversation_store_keeps_the_conversation_store_contract() {
    contract::conversation_store(std::sync::Arc::new(store().await)).await;
}

#[tokio::test]
async fn dynamodb_keeps_the_token_store_contract() {
    contract::token_store(&store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_keeps_the_window_and_budget_contract_under_concurrent_senders() {
    contract::contact_windows(std::sync::Arc::new(store().await)).await;
}

#[tokio::test]
async fn a_conversation_item_with_a_broken_state_or_version_reads_as_corrupt() {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    use wca_core::{ConversationStore, OpenId, PortError};
    let config = stand_in_config(&endpoint()).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("wca");
    let store = DynamoDbStore::new(client.clone(), &table);
    store.create_table().await.expect("create table");
    let now = 1_700_000_000;
    for (user, ver, state) in [
        ("o-bad-json", "3", r#"{"turns": "many"}"#),
        ("o-bad-ver", "-1", "{}"),
    ] {
        client
            .put_item()
            .table_name(&table)
            .item("pk", S(format!("user#{user}")))
            .item("sk", S("conv".to_owned()))
            .item("ver", N(ver.to_owned()))
            .item("state", S(state.to_owned()))
            .item("expires_at", N((now + 600).to_string()))
            .send()
            .await
            .expect("put raw item");
        let got = store.get(&OpenId::parse(user).expect("valid"), now).await;
        assert!(matches!(got, Err(PortError::Corrupt(_))), "{user}: {got:?}");
    }
}

#[tokio::test]
async fn counters_refuse_more_keys_than_one_transaction_holds() {
    use wca_core::Counters;
    let store = store().await;
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let err = store
        .add_once("e", &keys, 2_000_000_000)
        .await
        .expect_err("too many");
    assert!(matches!(err, wca_core::PortError::Rejected(_)), "{err}");
    assert_eq!(
        store.get("k0").await.expect("get"),
        0,
        "nothing was applied"
    );
}

#[tokio::test]
async fn concurrent_claims_of_one_key_have_exactly_one_winner() {
    use wca_core::{Begin, IdempotencyStore};
    let store = store().await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.begin("same", 1_700_000_000, 30).await
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        if t.await.expect("join").expect("begin") == Begin::Fresh {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1);
}

/// A custom bus with a rule routing wca's events to a fresh queue.
pub async fn bus_to_queue() -> (EventBridgeSink, SqsEventQueue) {
    let config = stand_in_config(&endpoint()).await;
    let eb = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = unique_name("bus");
    eb.create_event_bus().name(&bus).send().await.expect("bus");
    let queue_url = sqs
        .create_queue()
        .queue_name(unique_name("q"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attrs")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("arn");
    eb.put_rule()
        .name("to-analytics")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["wca"]}"#)
        .send()
        .await
        .expect("rule");
    eb.put_targets()
        .rule("to-analytics")
        .event_bus_name(&bus)
        .targets(Target::builder().id("q").arn(arn).build().expect("target"))
        .send()
        .await
        .expect("targets");
    (
        EventBridgeSink::new(eb, bus),
        SqsEventQueue::new(sqs, queue_url),
    )
}

#[tokio::test]
async fn eventbridge_sink_keeps_the_event_sink_contract_through_a_rule_to_sqs() {
    let (sink, queue) = bus_to_queue().await;
    contract::event_sink(&sink, || async {
        let mut events = Vec::new();
        for m in queue.receive(1).await.expect("receive") {
            events.push(event_from_body(&m.body).expect("an event"));
            queue.delete(&m.receipt_handle).await.expect("delete");
        }
        events
    })
    .await;
}

#[tokio::test]
async fn more_than_ten_events_are_published_in_chunks() {
    use wca_core::{Event, EventSink};
    let (sink, queue) = bus_to_queue().await;
    let events: Vec<Event> = (0..23)
        .map(|i| Event::reply_sent(&format!("msg:{i}"), "o", "text", 1))
        .collect();
    sink.emit(&events).await.expect("emit 23");
    let mut got = 0;
    for _ in 0..10 {
        let batch = queue.receive(1).await.expect("receive");
        for m in &batch {
            queue.delete(&m.receipt_handle).await.expect("delete");
        }
        got += batch.len();
        if got >= 23 {
            break;
        }
    }
    assert_eq!(got, 23);
}

#[tokio::test]
async fn dynamodb_profiles_keep_the_profile_contract() {
    let store = store().await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/demo-shop/users.jsonl"
    ))
    .expect("demo users");
    let profiles: Vec<wca_core::Profile> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("profile"))
        .collect();
    for profile in &profiles {
        store.put_profile(profile).await.expect("put profile");
    }
    contract::profile_store(&store, &profiles).await;
}

#[tokio::test]
async fn dynamodb_tickets_keep_the_ticket_contract() {
    contract::ticket_sink(std::sync::Arc::new(store().await)).await;
}

/// An SSM client on the stand-in, and a `SecureString` parameter holding
/// `value` under a fresh name.
async fn secure_parameter(value: &str) -> (aws_sdk_ssm::Client, String) {
    let config = stand_in_config(&endpoint()).await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let name = format!("/{}/secret", unique_name("wca"));
    ssm.put_parameter()
        .name(&name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("put parameter");
    (ssm, name)
}

/// An environment of fixed variables.
fn vars(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

#[tokio::test]
async fn a_secret_named_by_its_parameter_is_read_from_ssm_with_decryption() {
    let (ssm, token_param) = secure_parameter("ssmToken123").await;
    let env = vars(vec![
        ("WECHAT_TOKEN", String::new()),
        ("WECHAT_TOKEN_PARAM", token_param),
    ]);
    let secrets = wca_aws::Secrets::read(&ssm, &env).await.expect("read");
    // Without decryption the stand-in, like SSM, gives back a wrapped
    // ciphertext, not the value.
    assert_eq!(secrets.get("WECHAT_TOKEN"), Some("ssmToken123"));
    assert_eq!(secrets.names().collect::<Vec<_>>(), ["WECHAT_TOKEN"]);
    assert!(!format!("{secrets:?}").contains("ssmToken123"));
}

#[tokio::test]
async fn a_secret_set_in_the_environment_is_not_read_from_its_parameter() {
    let (ssm, _) = secure_parameter("unused").await;
    let env = vars(vec![
        ("WECHAT_AES_KEY", "set-directly".to_owned()),
        ("WECHAT_AES_KEY_PARAM", "/wca/no/such/parameter".to_owned()),
    ]);
    let secrets = wca_aws::Secrets::read(&ssm, &env)
        .await
        .expect("the missing parameter is never asked for");
    assert_eq!(secrets.get("WECHAT_AES_KEY"), None, "the variable stays");
    assert_eq!(secrets.names().count(), 0);
}

#[tokio::test]
async fn a_missing_secret_parameter_fails_naming_the_parameter_not_the_value() {
    let (ssm, token_param) = secure_parameter("ssmToken456").await;
    let missing = format!("/{}/absent", unique_name("wca"));
    let env = vars(vec![
        ("WECHAT_TOKEN_PARAM", token_param),
        ("WECHAT_AES_KEY_PARAM", missing.clone()),
    ]);
    let err = wca_aws::Secrets::read(&ssm, &env)
        .await
        .expect_err("a missing parameter stops the cold start");
    let (msg, dbg) = (err.to_string(), format!("{err:?}"));
    assert!(
        msg.contains("WECHAT_AES_KEY") && msg.contains(&missing),
        "{msg}"
    );
    assert!(msg.contains("no such parameter"), "{msg}");
    assert!(
        !msg.contains("ssmToken456") && !dbg.contains("ssmToken456"),
        "{msg} / {dbg}"
    );
}

#[tokio::test]
async fn dynamodb_user_data_exports_and_erases_exactly_one_users_data() {
    let store = store().await;
    contract::user_data(&store, &store, &store, &store, &store).await;
}

#[tokio::test]
async fn a_users_profile_and_tickets_in_the_table_are_exported_and_erased_with_them() {
    use wca_core::{NewTicket, OpenId, Profile, TicketSink, UserData};
    let store = store().await;
    let now = 1_700_000_000;
    let (alice, bob) = (
        OpenId::parse("oErase_alice1").expect("openid"),
        OpenId::parse("oErase_bob22").expect("openid"),
    );
    let profile = |openid: &OpenId| Profile {
        openid: openid.clone(),
        name: "小满".to_owned(),
        vip_level: 2,
        tags: vec!["VIP".to_owned()],
        last_order_id: None,
    };
    let ticket = |openid: &OpenId, key: &str| NewTicket {
        openid: openid.clone(),
        order_id: "2026111305517".to_owned(),
        kind: "return".to_owned(),
        reason: "尺码不合适".to_owned(),
        created_at: now,
        request_key: key.to_owned(),
    };
    for user in [&alice, &bob] {
        store.put_profile(&profile(user)).await.expect("profile");
    }
    let id = store
        .create(&ticket(&alice, "msg:1"))
        .await
        .expect("ticket");
    store.create(&ticket(&bob, "msg:2")).await.expect("ticket");
    wca_core::ContactWindows::touch(&store, alice.as_str(), now - 10)
        .await
        .expect("window");

    let record = store.export(&alice, now).await.expect("export");
    assert_eq!(record.profile, Some(profile(&alice)));
    assert_eq!(
        record.window.map(|w| w.last_interaction),
        Some(now - 10),
        "the window for messages we start"
    );
    assert_eq!(record.tickets.len(), 1);
    assert_eq!(record.tickets[0].ticket_id, id);
    assert_eq!(record.tickets[0].request, ticket(&alice, "msg:1"));

    let erased = store.erase(&alice).await.expect("erase");
    assert_eq!(
        (erased.profile, erased.tickets, erased.other, erased.total()),
        (1, 1, 1, 3)
    );
    let after = store.export(&alice, now).await.expect("export");
    assert_eq!(
        (after.profile, after.tickets.len(), after.window),
        (None, 0, None)
    );
    let theirs = store.export(&bob, now).await.expect("export");
    assert_eq!(
        (theirs.profile, theirs.tickets.len()),
        (Some(profile(&bob)), 1),
        "the other user's profile and tickets stay"
    );
}

fn queued(key: &str, openid: &str, n: i64) -> wca_core::ArchivedMessage {
    wca_core::ArchivedMessage {
        key: key.into(),
        openid: openid.into(),
        msg_type: "text".into(),
        create_time: n,
        received_at: n,
        raw_xml: format!("<xml><Content>{n}</Content></xml>"),
        parsed: serde_json::json!({"type": "text", "content": n.to_string()}),
        expires_at: n + 100,
    }
}

#[tokio::test]
async fn the_fifo_message_queue_keeps_each_users_order_and_drops_a_key_queued_twice() {
    use wca_core::MessageQueue;
    let config = stand_in_config(&endpoint()).await;
    let queue = wca_aws::SqsMessageQueue::create(
        aws_sdk_sqs::Client::new(&config),
        &unique_name("replies"),
        30,
    )
    .await
    .expect("fifo queue");
    let sent = [
        queued("msg:1", "oAlice", 1),
        queued("msg:2", "oBob", 2),
        queued("msg:3", "oAlice", 3),
        queued("msg:1", "oAlice", 1), // WeChat's retry of the first
        queued("msg:4", "oAlice", 4),
    ];
    for m in &sent {
        queue.enqueue(m).await.expect("enqueue");
    }
    let reader = queue.reader();
    let mut got = Vec::new();
    for _ in 0..5 {
        for r in reader.receive(0).await.expect("receive") {
            let m: wca_core::ArchivedMessage = serde_json::from_str(&r.body).expect("a message");
            assert_eq!(
                r.group_id.as_deref(),
                Some(m.openid.as_str()),
                "grouped by sender"
            );
            reader.delete(&r.receipt_handle).await.expect("delete");
            got.push(m);
        }
    }
    let keys = |openid: &str| -> Vec<String> {
        got.iter()
            .filter(|m| m.openid == openid)
            .map(|m| m.key.clone())
            .collect()
    };
    assert_eq!(
        keys("oAlice"),
        ["msg:1", "msg:3", "msg:4"],
        "in order, once each"
    );
    assert_eq!(keys("oBob"), ["msg:2"]);
    assert_eq!(got[0], sent[0], "the body is the archived message");
}
