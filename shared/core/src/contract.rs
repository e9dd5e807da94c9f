//! Contract suites: the behaviour every adapter of a port must show.
//!
//! Each adapter's tests call these with a fresh, empty instance (memory,
//! redb in a temp dir, DynamoDB/SQS on the local AWS stand-in), so the
//! adapters cannot drift apart. They panic with a message on the first
//! broken promise, like any assertion.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use crate::{
    Archived, ArchivedMessage, ArchivedReply, Begin, ConversationState, ConversationStore,
    Counters, Erased, Event, EventLog, EventSink, FlowState, HeldConversation, IdempotencyStore,
    MessageArchive, NewTicket, OpenId, Order, OrderSystem, Outgoing, Profile, ProfileStore,
    TicketSink, UserData, UserRecord, Versioned,
};

/// The sender of [`sample`]: any string is archived as it came, even one
/// that is not a valid [`OpenId`].
const OWNER: &str = "oUser-合同_1";

fn sample(key: &str, expires_at: i64) -> ArchivedMessage {
    ArchivedMessage {
        key: key.to_owned(),
        openid: OWNER.to_owned(),
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
        store.get(OWNER, "msg:1001", now).await.expect("get"),
        Some(first.clone()),
        "the first write is kept unchanged, byte for byte"
    );
    assert_eq!(
        store.get(OWNER, "msg:missing", now).await.expect("get"),
        None
    );
    assert_eq!(
        store
            .get("oSomeoneElse", "msg:1001", now)
            .await
            .expect("get"),
        None,
        "a message is found only under its own sender"
    );

    assert!(store.put(&sample("msg:1002", now + 10)).await.expect("put"));
    assert_eq!(
        store.get(OWNER, "msg:1002", now + 10).await.expect("get"),
        None,
        "an expired message is not returned even before it is purged"
    );
    let purged = store.purge_expired(now + 50).await.expect("purge");
    assert!(
        purged <= 1,
        "purge removes only expired messages, removed {purged}"
    );
    assert_eq!(
        store.get(OWNER, "msg:1001", now + 50).await.expect("get"),
        Some(first),
        "an unexpired message survives a purge"
    );
}

fn said(openid: &OpenId, key: &str, at: i64, text: &str, expires_at: i64) -> ArchivedMessage {
    ArchivedMessage {
        key: key.to_owned(),
        openid: openid.to_string(),
        msg_type: "text".to_owned(),
        create_time: at - 1,
        received_at: at,
        raw_xml: format!("<xml><Content><![CDATA[{text}]]></Content></xml>"),
        parsed: serde_json::json!({"type": "text", "content": text}),
        expires_at,
    }
}

fn answered(
    openid: &OpenId,
    key: &str,
    at: i64,
    reply: Outgoing,
    expires_at: i64,
) -> ArchivedReply {
    ArchivedReply {
        key: key.to_owned(),
        openid: openid.to_string(),
        sent_at: at,
        route: "faq:shipping-fee".to_owned(),
        reply,
        expires_at,
    }
}

/// [`MessageArchive`] history: both directions of one user, newest first,
/// a reply right after the message it answers, expired entries and other
/// users left out, the first reply to a message kept.
pub async fn archive_history(store: &dyn MessageArchive) {
    let now = 1_700_000_000;
    let user = OpenId::parse("oHistory_user1").expect("openid");
    let other = OpenId::parse("oHistory_user2").expect("openid");
    let keep = now + 1000;
    assert_eq!(
        store.history(&user, 10, now).await.expect("history"),
        vec![],
        "a user who never wrote has no history"
    );

    let m1 = said(&user, "msg:2001", now - 60, "运费怎么算", keep);
    let r1 = answered(
        &user,
        "msg:2001",
        now - 60,
        Outgoing::text("满99元包邮"),
        keep,
    );
    let m2 = said(&user, "msg:2002", now - 30, "转人工", keep);
    let r2 = answered(
        &user,
        "msg:2002",
        now - 29,
        Outgoing::TransferToAgent { kf_account: None },
        keep,
    );
    let gone = said(&user, "msg:2003", now - 10, "过期了", now + 5);
    let theirs = said(&other, "msg:2004", now - 5, "别人的消息", keep);
    // Stored out of order: history orders by time, not by arrival.
    for msg in [&m2, &gone, &theirs, &m1] {
        assert!(store.put(msg).await.expect("put"));
    }
    for reply in [&r2, &r1] {
        assert!(store.put_reply(reply).await.expect("put reply"));
    }
    let mut second = r1.clone();
    second.reply = Outgoing::text("changed");
    assert!(
        !store.put_reply(&second).await.expect("put reply again"),
        "a second reply to one message reports the first is kept"
    );

    let later = now + 10;
    let expected = vec![
        Archived::Reply(r2.clone()),
        Archived::Message(m2.clone()),
        Archived::Reply(r1.clone()),
        Archived::Message(m1.clone()),
    ];
    assert_eq!(
        store.history(&user, 10, later).await.expect("history"),
        expected,
        "both directions, newest first, expired and other users' entries left out"
    );
    assert_eq!(
        store.history(&user, 3, later).await.expect("history"),
        expected[..3].to_vec(),
        "the limit keeps the newest"
    );
    assert_eq!(
        store.history(&other, 10, later).await.expect("history"),
        vec![Archived::Message(theirs)],
    );
    assert_eq!(
        expected[2].text(),
        Some("满99元包邮"),
        "the reply kept is the first one"
    );

    let purged = store.purge_expired(later).await.expect("purge");
    assert!(
        purged <= 1,
        "purge removed only the expired entry, {purged}"
    );
    assert_eq!(
        store.history(&user, 10, later).await.expect("history"),
        expected,
        "a purge keeps what has not expired"
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
    // One event can stand for many: it adds its count, once.
    for _ in 0..2 {
        store
            .add_once_by("tally-1", &keys[..1], 40, 2_000_000_000)
            .await
            .expect("add by");
    }
    assert_eq!(
        store.get("c:day").await.expect("get"),
        42,
        "add_once_by adds its amount once"
    );
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
        Event::requests_rejected("bad_signature", 1, "r-1", 1_700_000_002),
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

fn openid(s: &str) -> OpenId {
    OpenId::parse(s).expect("the contract's OpenIDs are valid")
}

/// A state with every field set, non-ASCII included, so an adapter that
/// drops or mangles a field fails the round trip.
fn conversation(turns: u64) -> ConversationState {
    ConversationState {
        flow: Some(FlowState {
            flow: "order_lookup".to_owned(),
            slot: Some("order_no".to_owned()),
            slots: BTreeMap::from([("phone".to_owned(), "138 0013 8000（手机）".to_owned())]),
            retries: 2,
        }),
        unanswered: 1,
        negative_run: 3,
        handed_off_at: Some(1_699_999_000),
        last_active: 1_700_000_000,
        turns,
        unresolved: BTreeMap::from([("oUser-合同_9".to_owned(), 1_699_999_999)]),
        last_turns: vec![crate::LastTurn {
            msg_key: format!("msg:{turns}"),
            reply: Some(crate::Outgoing::text("您的订单已发货（顺丰）")),
            events: vec![serde_json::json!({"id": "handoff:msg:1", "at": 1_700_000_000})],
            route: "flow:order_lookup:done".to_owned(),
        }],
    }
}

/// Concurrent writers of one conversation in the no-lost-update check of
/// [`conversation_store`].
const WRITERS: u64 = 16;

/// Attempts one writer makes before the contract gives up on the store.
const MAX_ATTEMPTS: u32 = 1000;

/// [`ConversationStore`]: versions start at 0 and grow by one per write,
/// compare-and-set refuses stale versions without changing anything,
/// expired state reads as the default but keeps its version, users are
/// independent, and concurrent read-modify-write loops lose no update.
///
/// Takes an [`Arc`] because it spawns 16 tokio tasks on the
/// current runtime; run it on a multi-threaded runtime
/// (`#[tokio::test(flavor = "multi_thread")]`) for real parallelism.
pub async fn conversation_store(store: Arc<dyn ConversationStore>) {
    let now = 1_700_000_000;
    let expires_at = now + 600;
    let user = openid("oUser-contract_1");

    assert_eq!(
        store.get(&user, now).await.expect("get"),
        Versioned::default(),
        "a user never seen reads version 0 and the default state"
    );

    let first = conversation(1);
    assert!(
        store
            .compare_and_set(&user, 0, &first, expires_at)
            .await
            .expect("compare_and_set"),
        "the first write, expecting version 0, is stored"
    );
    assert_eq!(
        store.get(&user, now + 1).await.expect("get"),
        Versioned {
            version: 1,
            state: first.clone(),
        },
        "the first write reads back as version 1, unchanged"
    );

    let mut rival = conversation(99);
    rival.flow = None;
    for stale in [0, 2, 7] {
        assert!(
            !store
                .compare_and_set(&user, stale, &rival, expires_at)
                .await
                .expect("compare_and_set"),
            "a write expecting version {stale} is refused while version 1 is stored"
        );
    }
    assert_eq!(
        store.get(&user, now + 1).await.expect("get"),
        Versioned {
            version: 1,
            state: first.clone(),
        },
        "refused writes change nothing"
    );

    let mut second = first.clone();
    second.turns = 2;
    second.flow = None;
    assert!(
        store
            .compare_and_set(&user, 1, &second, expires_at)
            .await
            .expect("compare_and_set"),
        "a write expecting the stored version is stored"
    );
    assert!(
        !store
            .compare_and_set(&user, 1, &rival, expires_at)
            .await
            .expect("compare_and_set"),
        "version 1 is stale once version 2 is stored"
    );
    assert_eq!(
        store.get(&user, expires_at - 1).await.expect("get"),
        Versioned {
            version: 2,
            state: second.clone(),
        },
        "a state is read until the second before it expires"
    );

    assert_eq!(
        store.get(&user, expires_at).await.expect("get"),
        Versioned {
            version: 2,
            state: ConversationState::default(),
        },
        "at expires_at the state reads as the default but keeps its version"
    );
    assert!(
        !store
            .compare_and_set(&user, 0, &rival, expires_at + 600)
            .await
            .expect("compare_and_set"),
        "an expired conversation still refuses a write that assumes nothing is stored"
    );
    let third = conversation(3);
    assert!(
        store
            .compare_and_set(&user, 2, &third, expires_at + 600)
            .await
            .expect("compare_and_set"),
        "a write expecting the expired conversation's version replaces it"
    );
    assert_eq!(
        store.get(&user, expires_at + 1).await.expect("get"),
        Versioned {
            version: 3,
            state: third.clone(),
        },
        "the state written over an expired one is read with its new expiry"
    );

    let other = openid("oUser-contract_2");
    assert_eq!(
        store.get(&other, now).await.expect("get"),
        Versioned::default(),
        "another user does not see the first user's conversation"
    );
    assert!(
        store
            .compare_and_set(&other, 0, &rival, expires_at + 600)
            .await
            .expect("compare_and_set"),
        "another user's versions start at 0 of their own"
    );
    assert_eq!(
        store.get(&user, expires_at + 1).await.expect("get"),
        Versioned {
            version: 3,
            state: third,
        },
        "writing another user's conversation leaves this one alone"
    );

    no_lost_update(store, openid("oUser-contract_race"), now).await;
}

/// [`WRITERS`] tasks each add one turn to the same conversation with a
/// read-modify-write loop; every increment must survive.
async fn no_lost_update(store: Arc<dyn ConversationStore>, user: OpenId, now: i64) {
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let store = Arc::clone(&store);
        let user = user.clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..MAX_ATTEMPTS {
                let Versioned { version, mut state } = store.get(&user, now).await.expect("get");
                state.turns += 1;
                // Let the other writers read the same version before this
                // one writes, so the race is run even on one thread.
                tokio::task::yield_now().await;
                if store
                    .compare_and_set(&user, version, &state, now + 600)
                    .await
                    .expect("compare_and_set")
                {
                    return true;
                }
            }
            false
        }));
    }
    for writer in writers {
        assert!(
            writer.await.expect("a writer task panicked"),
            "a writer lost {MAX_ATTEMPTS} races in a row"
        );
    }
    let last = store.get(&user, now).await.expect("get");
    assert_eq!(
        (last.version, last.state.turns),
        (WRITERS, WRITERS),
        "{WRITERS} concurrent writers each stored one turn as one version: a lost update otherwise"
    );
}

/// [`OrderSystem`] holding exactly `known`: every order found by its
/// number, a customer's orders (theirs only) newest first, nothing for an
/// unknown number or customer.
pub async fn order_system(orders: &dyn OrderSystem, known: &[Order]) {
    assert!(!known.is_empty(), "the suite needs some orders");
    for order in known {
        assert_eq!(
            orders.order(&order.order_id).await.expect("order"),
            Some(order.clone()),
            "order {} as stored",
            order.order_id
        );
    }
    assert_eq!(orders.order("0000000000000").await.expect("order"), None);
    let mut customers: Vec<&OpenId> = known.iter().map(|o| &o.openid).collect();
    customers.sort();
    customers.dedup();
    for customer in customers {
        let mut theirs: Vec<Order> = known
            .iter()
            .filter(|o| &o.openid == customer)
            .cloned()
            .collect();
        theirs.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        assert_eq!(
            orders.orders_of(customer).await.expect("orders_of"),
            theirs,
            "the orders of {customer}, newest first"
        );
    }
    let stranger = OpenId::parse("o_nobody_at_all").expect("openid");
    assert_eq!(
        orders.orders_of(&stranger).await.expect("orders_of"),
        vec![]
    );
}

/// [`ProfileStore`] holding exactly `known`.
pub async fn profile_store(profiles: &dyn ProfileStore, known: &[Profile]) {
    for profile in known {
        assert_eq!(
            profiles.profile(&profile.openid).await.expect("profile"),
            Some(profile.clone())
        );
    }
    let stranger = OpenId::parse("o_nobody_at_all").expect("openid");
    assert_eq!(profiles.profile(&stranger).await.expect("profile"), None);
}

fn ticket(request_key: &str, order_id: &str) -> NewTicket {
    NewTicket {
        openid: OpenId::parse("o_ticket_user").expect("openid"),
        order_id: order_id.to_owned(),
        kind: "return".to_owned(),
        reason: "尺码不合适 \"偏小\"".to_owned(),
        created_at: 1_700_000_000,
        request_key: request_key.to_owned(),
    }
}

/// [`TicketSink`]: a ticket per request, the same request (a retry, even
/// many at once) always its first ticket.
pub async fn ticket_sink(sink: Arc<dyn TicketSink>) {
    let first = sink
        .create(&ticket("msg:1", "2026111305517"))
        .await
        .expect("create");
    assert!(!first.is_empty(), "a ticket has an id");
    assert_eq!(
        sink.create(&ticket("msg:1", "2026111305517"))
            .await
            .expect("create"),
        first,
        "a retried request gets its first ticket"
    );
    let second = sink
        .create(&ticket("msg:2", "2026111305517"))
        .await
        .expect("create");
    assert_ne!(second, first, "another request opens another ticket");

    let handles: Vec<_> = (0..8)
        .map(|_| {
            let sink = sink.clone();
            tokio::spawn(async move { sink.create(&ticket("msg:3", "2026091408816")).await })
        })
        .collect();
    let mut ids = Vec::new();
    for handle in handles {
        ids.push(handle.await.expect("task").expect("create"));
    }
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "one ticket for one request sent at once: {ids:?}"
    );
    assert!(ids[0] != first && ids[0] != second);
}

/// [`UserData`], given the same store behind the other ports it reads:
/// after writes for two users, the export of one holds exactly its
/// messages, replies, conversation, board entry and events and nothing of
/// the other's; erasing it removes all of that (and its dedup records),
/// leaves the other user as they were, and a second erasure removes
/// nothing.
pub async fn user_data(
    data: &dyn UserData,
    archive: &dyn MessageArchive,
    conversations: &dyn ConversationStore,
    dedup: &dyn IdempotencyStore,
    events: &dyn EventLog,
) {
    let now = 1_700_000_000;
    let keep = now + 1000;
    let alice = openid("oErase_alice1");
    let bob = openid("oErase_bob22");
    let event_key = format!("evt:{alice}:{}", now - 11);

    let m1 = said(&alice, "msg:3001", now - 60, "运费怎么算", keep);
    let r1 = answered(
        &alice,
        "msg:3001",
        now - 59,
        Outgoing::text("满99元包邮"),
        keep,
    );
    // Expired but not yet purged: still held, so still exported and erased.
    let m2 = said(&alice, "msg:3002", now - 30, "过期了", now - 1);
    let mut m3 = said(&alice, &event_key, now - 10, "", keep);
    m3.msg_type = "event:subscribe".to_owned();
    m3.parsed = serde_json::json!({"type": "event", "event": "subscribe"});
    let m4 = said(&bob, "msg:3004", now - 20, "别人的消息", keep);
    let r4 = answered(&bob, "msg:3004", now - 19, Outgoing::text("好的"), keep);
    for msg in [&m3, &m1, &m4, &m2] {
        assert!(archive.put(msg).await.expect("put"));
    }
    for reply in [&r4, &r1] {
        assert!(archive.put_reply(reply).await.expect("put reply"));
    }

    let theirs = |turns| ConversationState {
        turns,
        last_active: now - 10,
        ..ConversationState::default()
    };
    for (user, state) in [(&alice, theirs(3)), (&bob, theirs(1))] {
        assert!(
            conversations
                .compare_and_set(user, 0, &state, keep)
                .await
                .expect("compare_and_set")
        );
    }
    let board = ConversationState {
        unresolved: BTreeMap::from([(alice.to_string(), now - 5), (bob.to_string(), now - 3)]),
        ..ConversationState::default()
    };
    assert!(
        conversations
            .compare_and_set(&OpenId::board(), 0, &board, keep)
            .await
            .expect("board")
    );

    // The async responder's records of a decision and a send carry the
    // reply too.
    for key in ["msg:3001", "msg:3004", "respond:msg:3001", "sent:msg:3001"] {
        dedup
            .complete(key, "<xml>答复</xml>", now, 600)
            .await
            .expect("complete");
    }
    assert_eq!(
        dedup.begin("msg:3002", now, 30).await.expect("begin"),
        Begin::Fresh
    );

    let alices_events = vec![
        Event::message_received("msg:3001", alice.as_str(), "text", now - 60, None),
        Event::message_classified(
            "msg:3001",
            alice.as_str(),
            now - 61,
            "shipping",
            0.9,
            "neutral",
            0.0,
            now - 58,
        ),
        Event::reply_sent("msg:3001", alice.as_str(), "text", now - 59),
    ];
    let bobs_event = Event::message_received("msg:3004", bob.as_str(), "text", now - 20, None);
    for event in alices_events.iter().chain([&bobs_event]) {
        assert!(events.record(event, keep).await.expect("record"));
    }

    let record = data.export(&alice, now).await.expect("export");
    assert_eq!(record.openid, alice);
    assert_eq!(record.exported_at, now);
    assert_eq!(
        record.messages,
        vec![m1.clone(), m2.clone(), m3.clone()],
        "every message the user sent, expired ones not yet purged included, oldest first"
    );
    assert_eq!(record.replies, vec![r1.clone()]);
    assert_eq!(
        record.conversation,
        Some(HeldConversation {
            version: 1,
            expires_at: keep,
            state: theirs(3),
        })
    );
    assert_eq!(record.unresolved_since, Some(now - 5));
    let mut want_events = alices_events.clone();
    want_events.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    assert_eq!(
        record.events, want_events,
        "the events of the user's messages"
    );
    assert!(record.campaign_claims.is_empty());
    let json = serde_json::to_string(&record).expect("a record serialises");
    assert!(
        !json.contains(bob.as_str()) && !json.contains("别人的消息"),
        "nothing of another user is exported: {json}"
    );

    let erased = data.erase(&alice).await.expect("erase");
    assert_eq!(
        erased,
        Erased {
            messages: 3,
            replies: 1,
            conversation: 1,
            unresolved_board: 1,
            dedup_records: 4,
            events: 3,
            ..Erased::default()
        },
        "everything held about the user is erased, and counted"
    );
    assert_eq!(
        archive.history(&alice, 10, now).await.expect("history"),
        vec![],
        "no history is left"
    );
    for key in ["msg:3001", "msg:3002", event_key.as_str()] {
        assert_eq!(
            archive
                .get(alice.as_str(), key, now - 100)
                .await
                .expect("get"),
            None,
            "message {key} is gone"
        );
    }
    assert_eq!(
        conversations.get(&alice, now).await.expect("get"),
        Versioned::default(),
        "the conversation is forgotten, version and all"
    );
    let board_now = conversations
        .get(&OpenId::board(), now)
        .await
        .expect("board");
    assert_eq!(
        board_now.state.unresolved,
        BTreeMap::from([(bob.to_string(), now - 3)]),
        "the user is off the board, the other user still on it"
    );
    assert!(
        board_now.version > 1,
        "the board's version moves, so a writer that read it before the erasure must read again"
    );
    for event in &alices_events {
        assert_eq!(events.get(&event.id).await.expect("get"), None);
    }
    assert_eq!(
        data.erase(&alice).await.expect("erase again"),
        Erased::default(),
        "erasing twice is fine, and the second time removes nothing"
    );
    assert_eq!(
        data.export(&alice, now).await.expect("export"),
        UserRecord::empty(&alice, now),
        "an export after the erasure is empty"
    );
    for key in ["msg:3001", "msg:3002"] {
        assert_eq!(
            dedup.begin(key, now + 1, 30).await.expect("begin"),
            Begin::Fresh,
            "the dedup record of {key}, which held the reply, is gone"
        );
    }

    assert_eq!(
        archive.history(&bob, 10, now).await.expect("history"),
        vec![Archived::Reply(r4), Archived::Message(m4)],
        "the other user's history is intact"
    );
    assert_eq!(
        conversations.get(&bob, now).await.expect("get"),
        Versioned {
            version: 1,
            state: theirs(1),
        }
    );
    assert_eq!(
        dedup.begin("msg:3004", now + 1, 30).await.expect("begin"),
        Begin::Done("<xml>答复</xml>".to_owned())
    );
    assert_eq!(
        events.get(&bobs_event.id).await.expect("get"),
        Some(bobs_event)
    );
    assert_eq!(
        data.export(&bob, now).await.expect("export").messages.len(),
        1
    );
}

/// [`crate::TokenStore`]: a token is kept per app, replaced by the next
/// put, and survives being read.
pub async fn token_store(store: &dyn crate::TokenStore) {
    use crate::CachedToken;
    assert_eq!(store.get("wxapp1").await.expect("get"), None);
    let first = CachedToken {
        token: "ACCESS_TOKEN_1".to_owned(),
        expires_at: 1_700_007_200,
    };
    store.put("wxapp1", &first).await.expect("put");
    assert_eq!(store.get("wxapp1").await.expect("get"), Some(first.clone()));
    assert_eq!(
        store.get("wxapp2").await.expect("get"),
        None,
        "each app has its own token"
    );
    let second = CachedToken {
        token: "ACCESS_TOKEN_2".to_owned(),
        expires_at: 1_700_014_400,
    };
    store.put("wxapp1", &second).await.expect("put again");
    assert_eq!(
        store.get("wxapp1").await.expect("get"),
        Some(second),
        "a refreshed token replaces the old one"
    );
}

/// [`crate::ContactWindows`]: the 48-hour window, the budget taken
/// atomically under concurrency, give-back, and unreachable users.
pub async fn contact_windows(windows: Arc<dyn crate::ContactWindows>) {
    use crate::{Refusal, Reserved, WindowRules};
    let rules = WindowRules {
        window_secs: 48 * 3600,
        budget: 5,
    };
    let t0 = 1_700_000_000;
    assert_eq!(
        windows.reserve("oNever", t0, rules).await.expect("reserve"),
        Reserved::Refused(Refusal::OutsideWindow {
            last_interaction: None
        }),
        "a user who never wrote cannot be sent to"
    );
    assert_eq!(windows.get("oNever").await.expect("get"), None);

    windows.touch("oBusy", t0).await.expect("touch");
    let mut racers = Vec::new();
    for _ in 0..20 {
        let w = Arc::clone(&windows);
        racers.push(tokio::spawn(async move {
            w.reserve("oBusy", t0 + 60, rules).await
        }));
    }
    let mut granted = 0;
    for r in racers {
        match r.await.expect("join").expect("reserve") {
            Reserved::Granted { window } => {
                assert_eq!(window, t0);
                granted += 1;
            }
            Reserved::Refused(Refusal::OverBudget { sent }) => assert_eq!(sent, 5),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        granted, 5,
        "20 concurrent sends share a budget of 5: exactly 5 go"
    );
    windows.give_back("oBusy", t0).await.expect("give back");
    assert_eq!(
        windows
            .reserve("oBusy", t0 + 61, rules)
            .await
            .expect("reserve"),
        Reserved::Granted { window: t0 },
        "a message given back can be sent again"
    );
    windows.give_back("oBusy", t0 - 1).await.expect("give back");
    assert!(
        matches!(
            windows
                .reserve("oBusy", t0 + 62, rules)
                .await
                .expect("reserve"),
            Reserved::Refused(Refusal::OverBudget { .. })
        ),
        "a give-back for another window changes nothing"
    );
    windows.touch("oBusy", t0 + 100).await.expect("touch");
    assert_eq!(
        windows
            .reserve("oBusy", t0 + 100 + 48 * 3600 - 1, rules)
            .await
            .expect("reserve"),
        Reserved::Granted { window: t0 + 100 },
        "a new message opens a new window with a full budget"
    );
    windows.touch("oBusy", t0 + 50).await.expect("older touch");
    assert_eq!(
        windows
            .get("oBusy")
            .await
            .expect("get")
            .map(|w| (w.last_interaction, w.sent)),
        Some((t0 + 100, 1)),
        "a late, older interaction does not reopen the budget"
    );
    assert_eq!(
        windows
            .reserve("oBusy", t0 + 100 + 48 * 3600, rules)
            .await
            .expect("reserve"),
        Reserved::Refused(Refusal::OutsideWindow {
            last_interaction: Some(t0 + 100)
        }),
        "48 hours after the last message the window is closed"
    );

    windows.touch("oGone", t0).await.expect("touch");
    windows
        .undeliverable("oGone", t0, 43004)
        .await
        .expect("undeliverable");
    assert_eq!(
        windows
            .reserve("oGone", t0 + 1, rules)
            .await
            .expect("reserve"),
        Reserved::Refused(Refusal::Undeliverable { code: 43004 }),
        "a user WeChat called unreachable is not sent to"
    );
    windows.touch("oGone", t0 + 2).await.expect("touch");
    assert!(
        matches!(
            windows
                .reserve("oGone", t0 + 3, rules)
                .await
                .expect("reserve"),
            Reserved::Granted { .. }
        ),
        "until they write again"
    );
}

/// [`crate::campaign::CampaignStore`]: ids are taken once, replaces are
/// compare-and-set on the version, an occurrence and a delivery are each
/// claimed once, and deliveries list per occurrence.
pub async fn campaign_store(store: &dyn crate::campaign::CampaignStore) {
    use crate::campaign::{Delivery, NewCampaign, Occurrence, OccurrenceState, Outcome};
    let now = 1_800_000_000;
    let campaign = NewCampaign {
        name: "会员日".to_owned(),
        cron: Some("0 9 * * 1".to_owned()),
        tz: Some("Asia/Shanghai".to_owned()),
        audience: "segment:vip>=2,tag=复购".to_owned(),
        channel: "custom".to_owned(),
        text: "{{name}}，本周会员日".to_owned(),
        defaults: BTreeMap::from([("name".to_owned(), "亲".to_owned())]),
        quiet_hours: Some("22-8".to_owned()),
        ..NewCampaign::default()
    }
    .build("c0000000000a1".to_owned(), "alice", now, None)
    .expect("valid campaign");
    assert!(store.insert(&campaign).await.expect("insert"));
    assert!(
        !store.insert(&campaign).await.expect("insert again"),
        "an id is taken once"
    );
    assert_eq!(
        store.get(&campaign.id).await.expect("get"),
        Some(campaign.clone()),
        "every field comes back as written"
    );
    assert_eq!(store.get("c-missing").await.expect("get"), None);

    let mut paused = campaign.clone();
    paused.status = crate::campaign::Status::Paused;
    paused.version = campaign.version + 1;
    assert!(store.replace(&paused).await.expect("replace"));
    assert!(
        !store.replace(&paused).await.expect("stale replace"),
        "a replace based on an old version is refused"
    );
    let mut ghost = campaign.clone();
    ghost.id = "c-ghost".to_owned();
    ghost.version = 2;
    assert!(
        !store.replace(&ghost).await.expect("replace missing"),
        "a replace does not create"
    );
    let mut second = campaign.clone();
    second.id = "c0000000000a0".to_owned();
    assert!(store.insert(&second).await.expect("insert"));
    let ids: Vec<String> = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec!["c0000000000a0", "c0000000000a1"], "listed by id");

    let first = Occurrence::start(&campaign.id, now + 600, now + 601);
    assert!(store.claim_occurrence(&first).await.expect("claim"));
    let mut twice = first.clone();
    twice.started_at += 5;
    assert!(
        !store.claim_occurrence(&twice).await.expect("claim again"),
        "an occurrence is claimed once"
    );
    let earlier = Occurrence::start(&campaign.id, now, now);
    assert!(store.claim_occurrence(&earlier).await.expect("claim"));
    let other = Occurrence::start(&second.id, now, now);
    assert!(
        store.claim_occurrence(&other).await.expect("claim"),
        "the same time of another campaign is its own occurrence"
    );
    let mut progressed = first.clone();
    progressed.cursor = Some("oCursor-1".to_owned());
    progressed.pages = 3;
    progressed.audience = 2500;
    progressed.state = OccurrenceState::Expanded;
    progressed.expanded_at = Some(now + 700);
    store.save_occurrence(&progressed).await.expect("save");
    assert_eq!(
        store
            .occurrence(&campaign.id, now + 600)
            .await
            .expect("occurrence"),
        Some(progressed.clone())
    );
    assert_eq!(
        store.occurrences(&campaign.id).await.expect("occurrences"),
        vec![earlier.clone(), progressed.clone()],
        "oldest first, this campaign's only"
    );

    let occ = progressed.id();
    assert_eq!(
        store
            .claim_delivery(&occ, "oUser-1", now + 610)
            .await
            .expect("claim"),
        None,
        "the first claim wins"
    );
    assert_eq!(
        store
            .claim_delivery(&occ, "oUser-1", now + 611)
            .await
            .expect("claim again"),
        Some(Delivery {
            openid: "oUser-1".to_owned(),
            outcome: Outcome::Sending,
            at: now + 610,
        }),
        "a second claim gets the first one's record"
    );
    let sent = Delivery {
        openid: "oUser-1".to_owned(),
        outcome: Outcome::Sent,
        at: now + 612,
    };
    store.finish_delivery(&occ, &sent).await.expect("finish");
    assert_eq!(
        store
            .claim_delivery(&occ, "oUser-1", now + 700)
            .await
            .expect("claim after send"),
        Some(sent.clone()),
        "a sent recipient is never claimed again"
    );
    assert_eq!(
        store
            .claim_delivery(&occ, "oUser-2", now + 613)
            .await
            .expect("claim"),
        None
    );
    store
        .release_delivery(&occ, "oUser-2")
        .await
        .expect("release");
    assert_eq!(
        store
            .claim_delivery(&occ, "oUser-2", now + 614)
            .await
            .expect("claim after release"),
        None,
        "a released claim can be taken again"
    );
    let skipped = Delivery {
        openid: "oUser-2".to_owned(),
        outcome: Outcome::Skipped {
            reason: "missing:name".to_owned(),
        },
        at: now + 615,
    };
    store.finish_delivery(&occ, &skipped).await.expect("finish");
    assert_eq!(
        store
            .claim_delivery(&earlier.id(), "oUser-1", now)
            .await
            .expect("claim in another occurrence"),
        None,
        "each occurrence has its own claims"
    );
    assert_eq!(
        store.deliveries(&occ).await.expect("deliveries"),
        vec![sent, skipped],
        "this occurrence's records, by OpenID"
    );

    // A triggered campaign's cooldown: once per user per period, each
    // user and campaign on its own.
    let week = 7 * 86_400;
    let cool = |openid: &'static str, campaign: &'static str, at: i64| async move {
        store
            .claim_cooldown(campaign, openid, at, week)
            .await
            .expect("cooldown")
    };
    assert!(
        cool("oCoupon", "c0000000000t1", now).await,
        "the first fires"
    );
    assert!(!cool("oCoupon", "c0000000000t1", now).await, "not twice");
    assert!(
        !cool("oCoupon", "c0000000000t1", now + week - 1).await,
        "not within the cooldown"
    );
    assert!(
        cool("oOther", "c0000000000t1", now + 5).await,
        "another user"
    );
    assert!(
        cool("oCoupon", "c0000000000t2", now + 5).await,
        "another campaign"
    );
    assert!(
        cool("oCoupon", "c0000000000t1", now + week).await,
        "again once the cooldown has passed"
    );
    assert!(!cool("oCoupon", "c0000000000t1", now + week + 1).await);
}

/// Personal data on request over campaign deliveries: a user's export
/// shows their delivery records (claimed, finished), by occurrence, and
/// nobody else's; erasure removes them and leaves others'; a released
/// claim is gone from both.
pub async fn campaign_user_data<S>(store: &S)
where
    S: crate::campaign::CampaignStore + crate::UserData,
{
    use crate::campaign::{Delivery, Occurrence, Outcome};
    let now = 1_800_000_000;
    let first = Occurrence::start("c0000000000c1", now, now).id();
    let second = Occurrence::start("c0000000000c1", now + 86_400, now).id();
    let third = Occurrence::start("c0000000000c1", now + 2 * 86_400, now).id();
    for (occ, openid) in [
        (&first, "oGone"),
        (&first, "oStays"),
        (&second, "oGone"),
        (&third, "oGone"),
    ] {
        assert_eq!(
            store.claim_delivery(occ, openid, now).await.expect("claim"),
            None
        );
    }
    // WeChat was busy: the claim was given back.
    store
        .release_delivery(&third, "oGone")
        .await
        .expect("release");
    store
        .finish_delivery(
            &first,
            &Delivery {
                openid: "oGone".to_owned(),
                outcome: Outcome::Sent,
                at: now + 1,
            },
        )
        .await
        .expect("finish");

    let gone = OpenId::parse("oGone").expect("openid");
    let record = store.export(&gone, now + 10).await.expect("export");
    assert_eq!(
        record.campaign_claims,
        vec![
            serde_json::json!({
                "occurrence": first,
                "openid": "oGone",
                "outcome": {"state": "sent"},
                "at": now + 1,
            }),
            serde_json::json!({
                "occurrence": second,
                "openid": "oGone",
                "outcome": {"state": "sending"},
                "at": now,
            }),
        ],
        "the user's records only, by occurrence"
    );

    let erased = store.erase(&gone).await.expect("erase");
    assert_eq!(erased.campaign_claims, 2);
    assert_eq!(erased.total(), 2, "nothing else was held");
    let left: Vec<String> = store
        .deliveries(&first)
        .await
        .expect("deliveries")
        .into_iter()
        .map(|d| d.openid)
        .collect();
    assert_eq!(left, ["oStays"], "another user's record stays");
    assert!(
        store
            .deliveries(&second)
            .await
            .expect("deliveries")
            .is_empty()
    );
    let again = store.erase(&gone).await.expect("erase again");
    assert_eq!(again.campaign_claims, 0, "nothing left to erase");
    let after = store.export(&gone, now + 20).await.expect("export");
    assert!(after.campaign_claims.is_empty());
    let stays = OpenId::parse("oStays").expect("openid");
    let theirs = store.export(&stays, now + 20).await.expect("export");
    assert_eq!(
        theirs.campaign_claims.len(),
        1,
        "the other user keeps theirs"
    );
}

#[cfg(test)]
mod tests {
    //! The conversation contract must catch the adapters it exists to
    //! catch: these deliberately broken stores fail it.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::PortError;
    use crate::memory::MemoryConversationStore;

    /// Writes whatever it is given, ignoring the expected version.
    #[derive(Default)]
    struct BlindPut(Mutex<HashMap<OpenId, (u64, ConversationState)>>);

    #[async_trait]
    impl ConversationStore for BlindPut {
        async fn get(&self, openid: &OpenId, _now: i64) -> Result<Versioned, PortError> {
            let map = self.0.lock().expect("lock");
            Ok(map
                .get(openid)
                .map(|(version, state)| Versioned {
                    version: *version,
                    state: state.clone(),
                })
                .unwrap_or_default())
        }

        async fn compare_and_set(
            &self,
            openid: &OpenId,
            expected: u64,
            state: &ConversationState,
            _expires_at: i64,
        ) -> Result<bool, PortError> {
            let mut map = self.0.lock().expect("lock");
            map.insert(openid.clone(), (expected + 1, state.clone()));
            Ok(true)
        }
    }

    /// Checks the version, then writes later: right one call at a time,
    /// wrong when two writers check before either writes.
    #[derive(Default)]
    struct CheckThenSet(MemoryConversationStore);

    #[async_trait]
    impl ConversationStore for CheckThenSet {
        async fn get(&self, openid: &OpenId, now: i64) -> Result<Versioned, PortError> {
            self.0.get(openid, now).await
        }

        async fn compare_and_set(
            &self,
            openid: &OpenId,
            expected: u64,
            state: &ConversationState,
            expires_at: i64,
        ) -> Result<bool, PortError> {
            let stored = self.0.get(openid, i64::MIN).await?.version;
            if stored != expected {
                return Ok(false);
            }
            tokio::task::yield_now().await;
            // Overwrite whatever is there now, as a racy adapter would.
            let current = self.0.get(openid, i64::MIN).await?.version;
            self.0
                .compare_and_set(openid, current, state, expires_at)
                .await
        }
    }

    #[tokio::test]
    #[should_panic(expected = "is refused while version 1 is stored")]
    async fn the_conversation_contract_fails_a_store_that_ignores_the_expected_version() {
        conversation_store(Arc::new(BlindPut::default())).await;
    }

    #[tokio::test]
    #[should_panic(expected = "a lost update otherwise")]
    async fn the_conversation_contract_fails_a_store_whose_compare_and_set_is_not_atomic() {
        conversation_store(Arc::new(CheckThenSet::default())).await;
    }
}
