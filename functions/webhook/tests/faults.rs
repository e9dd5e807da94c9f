//! The webhook while its ports throttle, fail or are slow (issue #13).
//!
//! One port at a time is wrapped in [`Faulty`]; 50 distinct messages are
//! then delivered as WeChat delivers them: up to three times while the
//! answer is not 200, the clock 5 s further on each time, hanging up on a
//! delivery that takes too long. Whatever the faults, every answer is a 200
//! or a clean 500/503 that gives nothing away; every answered message is
//! archived once, with the reply it got, and a later retry gets the same
//! bytes; and the analytics fed by the emitted events count each answered
//! message exactly once: nothing doubled by a retry, nothing lost.
//!
//! Time is squeezed: WeChat's 5 s patience is [`HANG_UP`] here, and the
//! plans' slow calls outlast it. A delivery is assumed to end before
//! WeChat's last retry takes its claim over (what the 8 s lease assumes),
//! so the last retry waits for earlier deliveries to finish.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;
use wca_core::faults::{Fault, Faults, Faulty, Rule, When};
use wca_core::memory::{
    MemoryArchive, MemoryConversationStore, MemoryCounters, MemoryEventSink, MemoryIdempotency,
};
use wca_core::{
    Archived, Clock, ConversationStore, Counters, Event, EventKind, EventSink, IdempotencyStore,
    ManualClock, MessageArchive, OpenId, analytics,
};
use wca_webhook::settings::{FileSettings, Settings};
use wca_webhook::{Ports, Webhook, router};
use wca_wechat::{AesKey, Inbound, Token, client_side, reply};

const TOKEN: &str = "faultToken42";
const APP_ID: &str = "wxfaultsapp000001";
const AES_KEY: &str = "Zyxwvutsrqponmlkjihgfedcba9876543210ZYXWVUT";
const GH: &str = "gh_faults";
const NOW: i64 = 1_700_000_000;
/// Distinct messages per run.
const MESSAGES: usize = 50;
/// WeChat delivers a message at most this often.
const DELIVERIES: usize = 3;
/// How long WeChat waits for an answer (5 s in real life).
const HANG_UP: Duration = Duration::from_millis(200);
/// A slow call: longer than WeChat waits.
const SLOW: Duration = Duration::from_millis(250);
/// What the customers write, in turn (greetings, FAQ, a flow, nonsense).
const TEXTS: [&str; 6] = [
    "你好",
    "运费怎么算",
    "我要退货",
    "我的订单到哪了",
    "谢谢",
    "qwrtzp",
];
/// Words no answer may hold: the secrets, and the details of a failure.
const NEVER_SHOWN: [&str; 6] = [
    TOKEN,
    AES_KEY,
    "throttled",
    "injected",
    "unavailable",
    "ProvisionedThroughput",
];

/// The ports the webhook writes to.
#[derive(Clone)]
struct Stores {
    archive: Arc<dyn MessageArchive>,
    dedup: Arc<dyn IdempotencyStore>,
    events: Arc<dyn EventSink>,
    conversations: Arc<dyn ConversationStore>,
}

/// The one port a run wraps in [`Faulty`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Archive,
    Dedup,
    Events,
    Conversations,
}

/// The webhook's [`Ports`]: the only place they are built.
fn ports(stores: &Stores, clock: Arc<ManualClock>) -> Ports {
    Ports {
        archive: stores.archive.clone(),
        dedup: stores.dedup.clone(),
        events: stores.events.clone(),
        clock,
        conversations: stores.conversations.clone(),
        shop: wca_dialog::Shop::default(),
        commit: None,
    }
}

/// `stores` with `target` seen through `faults`.
fn faulted(stores: &Stores, target: Target, faults: &Faults) -> Stores {
    let mut seen = stores.clone();
    match target {
        Target::Archive => {
            seen.archive = Arc::new(Faulty::new(stores.archive.clone(), faults.clone()));
        }
        Target::Dedup => {
            seen.dedup = Arc::new(Faulty::new(stores.dedup.clone(), faults.clone()));
        }
        Target::Events => {
            seen.events = Arc::new(Faulty::new(stores.events.clone(), faults.clone()));
        }
        Target::Conversations => {
            seen.conversations =
                Arc::new(Faulty::new(stores.conversations.clone(), faults.clone()));
        }
    }
    seen
}

fn settings() -> Settings {
    // A retry finding the first delivery still at work waits less than
    // WeChat does, then asks for another retry (503).
    let file = FileSettings::parse("[webhook]\ninflight_wait_ms = 150\n").expect("settings file");
    let env = [
        ("WECHAT_TOKEN", TOKEN),
        ("WECHAT_APP_ID", APP_ID),
        ("WECHAT_AES_KEY", AES_KEY),
    ];
    Settings::resolve(file, &env, None).expect("settings")
}

/// A webhook in safe mode writing through `faulty`, the stores behind
/// it (to look at them without faults), and the sink its events go to.
struct Rig {
    hook: Webhook,
    app: axum::Router,
    clock: Arc<ManualClock>,
    stores: Stores,
    sink: Arc<MemoryEventSink>,
    /// How long WeChat waits for an answer.
    patience: Duration,
}

fn rig(stores: Stores, sink: Arc<MemoryEventSink>, faulty: Stores) -> Rig {
    let clock = Arc::new(ManualClock::new(NOW));
    let hook = Webhook::new(settings(), ports(&faulty, clock.clone()));
    Rig {
        app: router(hook.clone()),
        hook,
        clock,
        stores,
        sink,
        patience: HANG_UP,
    }
}

/// Memory adapters of every port, and the sink behind `events`.
fn memory_stores() -> (Stores, Arc<MemoryEventSink>) {
    let sink = Arc::new(MemoryEventSink::default());
    let stores = Stores {
        archive: Arc::new(MemoryArchive::default()),
        dedup: Arc::new(MemoryIdempotency::default()),
        events: sink.clone(),
        conversations: Arc::new(MemoryConversationStore::default()),
    };
    (stores, sink)
}

/// One message a customer sends.
#[derive(Debug, Clone)]
struct Msg {
    openid: String,
    /// The dedup key the webhook files it under.
    key: String,
    xml: String,
}

/// `MESSAGES` messages from five customers: texts, and now and then a
/// new follower (an event, keyed by sender and time).
fn messages() -> Vec<Msg> {
    (0..MESSAGES)
        .map(|i| {
            let openid = format!("oFaultUser{:015}", i % 5);
            let create_time = NOW + i as i64;
            let xml = if i % 10 == 9 {
                client_side::event_xml(GH, &openid, create_time, "subscribe", None)
            } else {
                let text = TEXTS[i % TEXTS.len()];
                client_side::text_message_xml(
                    GH,
                    &openid,
                    create_time,
                    &format!("{}", 7_000_000 + i),
                    text,
                )
            };
            let key = Inbound::parse(&xml).expect("inbound xml").dedup_key();
            Msg { openid, key, xml }
        })
        .collect()
}

/// What one delivery got back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Status and body.
    Got(u16, String),
    /// WeChat stopped waiting.
    HungUp,
}

impl Rig {
    /// One delivery of `msg`, signed afresh at the current time, waited
    /// for `patience`.
    async fn deliver(&self, msg: &Msg, nonce: &str, patience: Duration) -> Answer {
        let key = AesKey::parse(AES_KEY).expect("key");
        let sealed = client_side::seal_request(
            &Token::new(TOKEN).expect("token"),
            Some(&key),
            APP_ID,
            GH,
            &msg.openid,
            &msg.xml,
            self.clock.now(),
            nonce,
            [3u8; 16],
        );
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&sealed.query)
            .finish();
        let request = Request::post(format!("/wechat?{qs}"))
            .header("content-type", "text/xml")
            .body(Body::from(sealed.body))
            .expect("request");
        let answer = async {
            let response = self.app.clone().oneshot(request).await.expect("infallible");
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            Answer::Got(status, String::from_utf8_lossy(&bytes).into_owned())
        };
        tokio::time::timeout(patience, answer)
            .await
            .unwrap_or(Answer::HungUp)
    }

    /// `msg` delivered as WeChat does: again, 5 s later, while the answer
    /// is not a 200, at most [`DELIVERIES`] times.
    async fn as_wechat(&self, msg: &Msg) -> Vec<Answer> {
        let mut answers = Vec::new();
        for delivery in 0..DELIVERIES {
            if delivery > 0 {
                self.clock.advance(5);
            }
            if delivery + 1 == DELIVERIES {
                // The last retry comes after the lease: by then the first
                // delivery has ended (see the module doc).
                assert!(self.hook.drain(Duration::from_secs(30)).await, "drained");
            }
            let answer = self
                .deliver(msg, &format!("n{delivery}"), self.patience)
                .await;
            let done = matches!(answer, Answer::Got(200, _));
            answers.push(answer);
            if done {
                break;
            }
        }
        answers
    }

    /// The reply's text, opening the body as WeChat does; `None` for
    /// `success` and for a hand-over to a person.
    fn reply_text(&self, body: &str) -> Option<String> {
        if body == "success" {
            return None;
        }
        let xml = reply::open_encrypted_reply(
            &Token::new(TOKEN).expect("token"),
            &AesKey::parse(AES_KEY).expect("key"),
            APP_ID,
            body,
        )
        .expect("a sealed reply");
        reply::parse_reply(&xml).expect("reply xml").content
    }
}

/// What a run saw.
struct Run {
    /// Per message, the answers of its deliveries.
    answers: Vec<(Msg, Vec<Answer>)>,
    /// The body of each answered message's 200, by key.
    answered: BTreeMap<String, String>,
    /// Every event the webhook emitted, retries' duplicates included.
    events: Vec<Event>,
}

impl Run {
    /// What happened, for the log of a passing run.
    fn summary(&self, faults: &Faults) -> String {
        let all = || self.answers.iter().flat_map(|(_, got)| got);
        let hung_up = all().filter(|a| **a == Answer::HungUp).count();
        let failed = all()
            .filter(|a| matches!(a, Answer::Got(status, _) if *status != 200))
            .count();
        format!(
            "{} faults in {} calls; {} deliveries ({hung_up} hung up, {failed} 5xx); \
             {} of {MESSAGES} answered; \
             {} events emitted",
            faults.injected(),
            faults.calls(),
            all().count(),
            self.answered.len(),
            self.events.len()
        )
    }
}

/// Sends every message as WeChat would, then, with the faults cleared,
/// once more each answered one (a late retry), and checks the answers.
async fn run(rig: &Rig, faults: &Faults) -> Run {
    let mut answers = Vec::new();
    for msg in messages() {
        let got = rig.as_wechat(&msg).await;
        answers.push((msg, got));
    }
    assert!(rig.hook.drain(Duration::from_secs(30)).await, "drained");
    faults.clear();

    let mut answered = BTreeMap::new();
    for (msg, got) in &answers {
        for answer in got {
            match answer {
                Answer::HungUp => {}
                Answer::Got(status, body) => {
                    assert!(
                        matches!(status, 200 | 500 | 503),
                        "{}: status {status}: {body}",
                        msg.key
                    );
                    for word in NEVER_SHOWN {
                        assert!(
                            !body.to_lowercase().contains(&word.to_lowercase()),
                            "{}: {status} body gives away {word:?}: {body}",
                            msg.key
                        );
                    }
                    if *status != 200 {
                        assert!(body.len() < 64, "{}: a short error: {body}", msg.key);
                    }
                }
            }
        }
        if let Some(Answer::Got(200, body)) = got.last() {
            // Readable by WeChat: `success` or a reply it can open.
            let _ = rig.reply_text(body);
            answered.insert(msg.key.clone(), body.clone());
        }
    }
    let history = histories(rig, &answers).await;
    let unarchived: Vec<&String> = answered
        .iter()
        .filter(|(key, body)| {
            *body != "success"
                && !history
                    .values()
                    .flatten()
                    .any(|e| matches!(e, Archived::Reply(r) if &r.key == *key))
        })
        .map(|(key, _)| key)
        .collect();
    assert!(
        unarchived.is_empty(),
        "a reply is sent only once it is on record; not archived: {unarchived:?}"
    );
    for (msg, _) in &answers {
        let Some(body) = answered.get(&msg.key) else {
            continue;
        };
        rig.clock.advance(1);
        // However long it takes: what it answers is the point here.
        let late = rig.deliver(msg, "late", Duration::from_secs(30)).await;
        assert_eq!(
            late,
            Answer::Got(200, body.clone()),
            "{}: a late retry gets the very bytes of the answer",
            msg.key
        );
    }
    assert!(rig.hook.drain(Duration::from_secs(30)).await, "drained");
    Run {
        answers,
        answered,
        events: rig.sink.take(),
    }
}

/// The archived history of every sender of `answers`, by OpenID.
async fn histories(rig: &Rig, answers: &[(Msg, Vec<Answer>)]) -> BTreeMap<String, Vec<Archived>> {
    let now = rig.clock.now();
    let mut history = BTreeMap::new();
    for (msg, _) in answers {
        if !history.contains_key(&msg.openid) {
            let user = OpenId::parse(&msg.openid).expect("openid");
            let entries = rig
                .stores
                .archive
                .history(&user, 10_000, now)
                .await
                .expect("history");
            history.insert(msg.openid.clone(), entries);
        }
    }
    history
}

/// Every answered message is archived once, with the reply it got beside
/// it (once the late retries are in).
async fn check_archive(rig: &Rig, run: &Run) {
    let now = rig.clock.now();
    let history = histories(rig, &run.answers).await;
    for (msg, _) in &run.answers {
        let Some(body) = run.answered.get(&msg.key) else {
            continue;
        };
        let entries: Vec<&Archived> = history[&msg.openid]
            .iter()
            .filter(|e| e.key() == msg.key)
            .collect();
        let messages = entries
            .iter()
            .filter(|e| matches!(e, Archived::Message(_)))
            .count();
        assert_eq!(messages, 1, "{}: archived once", msg.key);
        assert!(
            rig.stores
                .archive
                .get(&msg.openid, &msg.key, now)
                .await
                .expect("get")
                .is_some(),
            "{}: found by key",
            msg.key
        );
        let replies: Vec<&&Archived> = entries
            .iter()
            .filter(|e| matches!(e, Archived::Reply(_)))
            .collect();
        if body == "success" {
            assert!(replies.is_empty(), "{}: no reply was sent", msg.key);
        } else {
            assert_eq!(replies.len(), 1, "{}: its reply archived once", msg.key);
            assert_eq!(
                replies[0].text().map(str::to_owned),
                rig.reply_text(body),
                "{}: the archived reply is the one sent",
                msg.key
            );
        }
    }
}

/// Feeds `events` to `counters` as the analytics consumer does, each
/// event retried (as SQS redelivers it) until it is applied.
async fn count(events: &[Event], counters: &dyn Counters) {
    let tz = jiff::tz::TimeZone::UTC;
    for event in events {
        let mut tries = 0;
        while let Err(e) = analytics::apply(counters, event, &tz).await {
            tries += 1;
            assert!(tries < 20, "{}: never counted: {e}", event.id);
        }
    }
}

/// The counters count each answered message exactly once: its received
/// event (and its reply's) is there, and no message counts twice however
/// often its events were emitted.
async fn check_counts(run: &Run, counters: &dyn Counters) {
    let mut received = BTreeSet::new();
    let mut replied = BTreeSet::new();
    for event in &run.events {
        match &event.kind {
            EventKind::MessageReceived { msg_key, .. } => {
                received.insert(msg_key.clone());
            }
            EventKind::ReplySent { msg_key, .. } => {
                replied.insert(msg_key.clone());
            }
            _ => {}
        }
    }
    for (key, body) in &run.answered {
        assert!(received.contains(key), "{key}: its received event was lost");
        if body != "success" {
            assert!(replied.contains(key), "{key}: its reply event was lost");
        }
    }
    let day = analytics::day_hour(NOW, &jiff::tz::TimeZone::UTC).0;
    let msgs = counters
        .get(&format!("msgs:day:{day}"))
        .await
        .expect("counter");
    let replies = counters
        .get(&format!("replies:day:{day}"))
        .await
        .expect("counter");
    assert_eq!(
        msgs,
        received.len() as u64,
        "each received message counted once"
    );
    assert_eq!(replies, replied.len() as u64, "each reply counted once");
    assert!(msgs <= MESSAGES as u64, "no more messages than were sent");
    assert!(msgs >= run.answered.len() as u64);
    let mut by_type = 0;
    for kind in ["text", "event:subscribe"] {
        by_type += counters
            .get(&format!("msgs:day:{day}:type:{kind}"))
            .await
            .expect("counter");
    }
    assert_eq!(by_type, msgs, "counted once per type too");
}

/// A fault plan, by name.
fn plan(kind: &str, seed: u64) -> Faults {
    match kind {
        // Down for a moment at the start, throttled now and then after.
        "throttle" => {
            let faults = Faults::new(Rule::new(Fault::Outage, When::Next(6)));
            faults.add(Rule::new(Fault::Throttle, When::Every(4)));
            faults
        }
        "chance" => Faults::new(Rule::new(Fault::Outage, When::Chance { p: 0.3, seed })),
        "after" => Faults::new(Rule::new(
            Fault::AfterSuccess,
            When::Chance { p: 0.3, seed },
        )),
        "slow" => Faults::new(Rule::new(Fault::Slow(SLOW), When::Every(7))),
        // One refusal, of the first call.
        "once" => Faults::new(Rule::new(Fault::Outage, When::Next(1))),
        other => panic!("no plan {other}"),
    }
}

/// The whole check: `target` faulted by the plan `kind`.
async fn survives(target: Target, kind: &str) {
    let what = format!("{target:?} {kind}");
    // A seed of its own for each scenario, the same on every run.
    let seed = what.bytes().fold(0x5eed_u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let faults = plan(kind, seed);
    let (stores, sink) = memory_stores();
    let rig = rig(stores.clone(), sink, faulted(&stores, target, &faults));
    let run = run(&rig, &faults).await;
    assert!(faults.injected() > 0, "{what}: no fault fired");
    assert!(!run.answered.is_empty(), "{what}: nothing was answered");
    check_archive(&rig, &run).await;
    let counters = MemoryCounters::default();
    count(&run.events, &counters).await;
    check_counts(&run, &counters).await;
    eprintln!("{what}: {}", run.summary(&faults));
}

#[tokio::test]
async fn a_throttled_archive_loses_and_doubles_nothing() {
    survives(Target::Archive, "throttle").await;
}

#[tokio::test]
async fn an_archive_failing_at_random_loses_and_doubles_nothing() {
    survives(Target::Archive, "chance").await;
}

#[tokio::test]
async fn an_archive_failing_after_its_writes_loses_and_doubles_nothing() {
    survives(Target::Archive, "after").await;
}

#[tokio::test]
async fn a_slow_archive_loses_and_doubles_nothing() {
    survives(Target::Archive, "slow").await;
}

#[tokio::test]
async fn a_throttled_dedup_store_loses_and_doubles_nothing() {
    survives(Target::Dedup, "throttle").await;
}

#[tokio::test]
async fn a_dedup_store_failing_at_random_loses_and_doubles_nothing() {
    survives(Target::Dedup, "chance").await;
}

#[tokio::test]
async fn a_dedup_store_failing_after_its_writes_loses_and_doubles_nothing() {
    survives(Target::Dedup, "after").await;
}

#[tokio::test]
async fn a_slow_dedup_store_loses_and_doubles_nothing() {
    survives(Target::Dedup, "slow").await;
}

#[tokio::test]
async fn a_throttled_event_sink_loses_and_doubles_nothing() {
    survives(Target::Events, "throttle").await;
}

#[tokio::test]
async fn an_event_sink_failing_at_random_loses_and_doubles_nothing() {
    survives(Target::Events, "chance").await;
}

#[tokio::test]
async fn an_event_sink_failing_after_accepting_the_events_loses_and_doubles_nothing() {
    survives(Target::Events, "after").await;
}

#[tokio::test]
async fn a_slow_event_sink_loses_and_doubles_nothing() {
    survives(Target::Events, "slow").await;
}

#[tokio::test]
async fn a_throttled_conversation_store_loses_and_doubles_nothing() {
    survives(Target::Conversations, "throttle").await;
}

#[tokio::test]
async fn a_conversation_store_failing_at_random_loses_and_doubles_nothing() {
    survives(Target::Conversations, "chance").await;
}

#[tokio::test]
async fn a_conversation_store_failing_after_its_writes_loses_and_doubles_nothing() {
    survives(Target::Conversations, "after").await;
}

#[tokio::test]
async fn a_slow_conversation_store_loses_and_doubles_nothing() {
    survives(Target::Conversations, "slow").await;
}

#[tokio::test]
async fn counters_that_throttle_or_fail_after_applying_count_each_answered_message_once() {
    // The events path fails after accepting, so the webhook emits the
    // same events again on retries; then the counters fail too, before
    // and after applying, and the consumer retries.
    let faults = plan("after", 11);
    let (stores, sink) = memory_stores();
    let rig = rig(
        stores.clone(),
        sink,
        faulted(&stores, Target::Events, &faults),
    );
    let run = run(&rig, &faults).await;
    assert!(faults.injected() > 0);
    let counter_faults = Faults::new(Rule::new(
        Fault::AfterSuccess,
        When::Chance { p: 0.3, seed: 12 },
    ));
    counter_faults.add(Rule::new(Fault::Throttle, When::Every(5)));
    let counters = Arc::new(MemoryCounters::default());
    count(
        &run.events,
        &Faulty::new(counters.clone(), counter_faults.clone()),
    )
    .await;
    assert!(counter_faults.injected_on("counters") > 10, "faults fired");
    check_counts(&run, &*counters).await;
}

/// The conversation of `openid` as stored.
async fn conversation(stores: &Stores, openid: &str) -> wca_core::ConversationState {
    let user = OpenId::parse(openid).expect("openid");
    stores
        .conversations
        .get(&user, NOW + 3600)
        .await
        .expect("conversation")
        .state
}

#[tokio::test]
async fn a_message_retried_after_its_events_were_refused_is_one_turn_of_the_conversation() {
    // Two messages the bot cannot answer (the default dialog hands over
    // after two in a row), once without faults and once with the event
    // sink refusing the first message's events once. WeChat's retry of
    // the first must not play its turn a second time.
    let openid = "oFaultTurns00000000000001";
    let msgs: Vec<Msg> = [("7100001", "qwrtzp"), ("7100002", "zxcvbn")]
        .iter()
        .enumerate()
        .map(|(i, (msg_id, text))| {
            let xml = client_side::text_message_xml(GH, openid, NOW + i as i64, msg_id, text);
            let key = Inbound::parse(&xml).expect("inbound xml").dedup_key();
            Msg {
                openid: openid.to_owned(),
                key,
                xml,
            }
        })
        .collect();
    let mut outcomes = Vec::new();
    for faults in [Faults::default(), plan("once", 0)] {
        let (stores, sink) = memory_stores();
        let mut rig = rig(
            stores.clone(),
            sink,
            faulted(&stores, Target::Events, &faults),
        );
        // Nothing is slow here: no delivery needs to be hung up on.
        rig.patience = Duration::from_secs(30);
        let mut replies = Vec::new();
        for msg in &msgs {
            let answers = rig.as_wechat(msg).await;
            let Some(Answer::Got(200, body)) = answers.last() else {
                panic!("{}: not answered: {answers:?}", msg.key);
            };
            replies.push(rig.reply_text(body));
        }
        let state = conversation(&rig.stores, openid).await;
        outcomes.push((faults.injected(), replies, state.turns));
    }
    let [(_, calm_replies, calm_turns), (injected, replies, turns)] = &outcomes[..] else {
        unreachable!("two runs");
    };
    assert_eq!(*injected, 1, "the fault fired");
    assert_eq!(replies, calm_replies, "the replies of a calm day");
    assert_eq!(turns, calm_turns, "one turn per message");
}

/// The DynamoDB adapter on the local AWS stand-in (`moto_server`, started
/// by `infra/test.sh`), throttled as a hot table is: the same promises.
#[cfg(feature = "lambda")]
mod dynamodb {
    use super::*;
    use wca_aws::DynamoDbStore;

    fn endpoint() -> String {
        wca_aws::stand_in_endpoint().expect(
            "WCA_MOTO_ENDPOINT is not set: run the tests with infra/test.sh, which starts moto_server",
        )
    }

    #[test]
    fn a_throttled_dynamodb_table_loses_and_doubles_nothing() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let config = wca_aws::stand_in_config(&endpoint()).await;
            let store = Arc::new(DynamoDbStore::with_config(
                &config,
                wca_aws::unique_name("wca-faults"),
            ));
            store.create_table().await.expect("create table");
            // Down for a moment, then a tenth of the calls throttled:
            // each message makes several calls to the one table.
            let faults = Faults::new(Rule::new(Fault::Outage, When::Next(3)));
            faults.add(Rule::new(
                Fault::Throttle,
                When::Chance { p: 0.1, seed: 13 },
            ));
            let table = Arc::new(Faulty::new(store.clone(), faults.clone()));
            let sink = Arc::new(MemoryEventSink::default());
            let stores = Stores {
                archive: store.clone(),
                dedup: store.clone(),
                events: sink.clone(),
                conversations: store.clone(),
            };
            let faulty = Stores {
                archive: table.clone(),
                dedup: table.clone(),
                events: sink.clone(),
                conversations: table,
            };
            let mut rig = rig(stores, sink, faulty);
            // The stand-in answers far slower than DynamoDB in the region.
            rig.patience = Duration::from_secs(2);
            let run = run(&rig, &faults).await;
            assert!(faults.injected() > 0, "no fault fired");
            assert!(!run.answered.is_empty(), "nothing was answered");
            check_archive(&rig, &run).await;
            // The counters on the same table, throttled too.
            let counter_faults = Faults::new(Rule::new(Fault::Throttle, When::Every(3)));
            count(
                &run.events,
                &Faulty::new(store.clone(), counter_faults.clone()),
            )
            .await;
            assert!(counter_faults.injected() > 0, "no counter fault fired");
            check_counts(&run, &*store).await;
            eprintln!("dynamodb: {}", run.summary(&faults));
        });
    }
}
