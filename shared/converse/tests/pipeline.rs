//! The whole conversation pipeline on the demo shop: the real models, the
//! built-in dictionary, the demo dialog and data, memory and redb stores.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wca_converse::{Message, Outcome, Pipeline};
use wca_core::{
    ConversationStore, EventKind, HandoffReason, OpenId, Outgoing, memory::MemoryConversationStore,
};
use wca_dialog::{Dialog, Input, Shop};
use wca_filter::{DictionaryFiles, ReloadingFilter};
use wca_local::{JsonlOrders, JsonlProfiles, JsonlTickets, RedbStore};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo-shop");
const SNAPSHOT: i64 = 1_795_140_000;

fn filter() -> ReloadingFilter {
    ReloadingFilter::new(
        DictionaryFiles {
            builtin: true,
            deny: vec![],
            allow: vec![],
            options: Default::default(),
        },
        Duration::from_secs(3600),
    )
    .expect("built-in dictionary")
}

fn demo_shop() -> Shop {
    Shop {
        orders: Some(Arc::new(
            JsonlOrders::load(&Path::new(DEMO).join("orders.jsonl")).expect("orders"),
        )),
        tickets: Some(Arc::new(JsonlTickets::in_memory())),
        profiles: Some(Arc::new(
            JsonlProfiles::load(&Path::new(DEMO).join("users.jsonl")).expect("users"),
        )),
        history: None,
    }
}

fn pipeline(nlp: bool, store: Arc<dyn ConversationStore>) -> Pipeline {
    let dialog = Dialog::load_section(&Path::new(DEMO).join("wca.toml")).expect("demo dialog");
    let nlp = nlp.then(|| Arc::new(wca_nlp::Nlp::default_models().expect("models")));
    Pipeline::new(
        Arc::new(dialog),
        filter(),
        "抱歉，请稍候。".to_owned(),
        nlp,
        demo_shop(),
        store,
    )
}

async fn send(p: &Pipeline, key: &str, openid: &str, text: &str, now: i64) -> Outcome {
    let message = Message {
        msg_key: key,
        openid,
        msg_type: "text",
        create_time: now,
        input: Input::Text(text),
    };
    p.handle(&message, now).await.expect("handle")
}

fn reply_text(o: &Outcome) -> &str {
    match &o.reply {
        Some(Outgoing::Text { content }) => content,
        other => panic!("expected text, got {other:?} ({})", o.route),
    }
}

#[tokio::test]
async fn a_new_users_questions_get_answers_the_old_keyword_rules_never_gave() {
    let p = pipeline(true, Arc::new(MemoryConversationStore::default()));
    let o = send(&p, "msg:1", "o_demo_user03", "快递怎么还没到", SNAPSHOT).await;
    assert!(o.route.starts_with("flow:order_lookup"), "{}", o.route);
    let o = send(&p, "msg:2", "o_demo_user05", "可以开票吗", SNAPSHOT).await;
    assert_eq!(o.route, "faq:invoice", "{}", reply_text(&o));
    let o = send(&p, "msg:3", "o_demo_user06", "拜托转个人工", SNAPSHOT).await;
    assert!(
        matches!(o.reply, Some(Outgoing::TransferToAgent { .. })),
        "{o:?}"
    );
    let handoffs: Vec<_> = o
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::HandoffRequested { .. }))
        .collect();
    assert_eq!(handoffs.len(), 1);
}

#[tokio::test]
async fn every_text_gets_received_and_reply_events_with_its_intent() {
    let p = pipeline(true, Arc::new(MemoryConversationStore::default()));
    let o = send(&p, "msg:9", "o_demo_user01", "你好", SNAPSHOT).await;
    assert!(reply_text(&o).starts_with("陈静您好"), "{}", reply_text(&o));
    let kinds: Vec<&str> = o.events.iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(kinds, ["MessageReceived", "ReplySent"]);
    let EventKind::MessageReceived { intent, .. } = &o.events[0].kind else {
        unreachable!()
    };
    assert_eq!(intent.as_deref(), Some("greeting"));
}

#[tokio::test]
async fn a_sender_that_is_not_an_openid_is_counted_but_gets_no_dialog() {
    let p = pipeline(false, Arc::new(MemoryConversationStore::default()));
    let o = send(&p, "msg:1", "not an openid", "你好", SNAPSHOT).await;
    assert_eq!(o.reply, None);
    assert_eq!(o.events.len(), 1);
    assert_eq!(o.events[0].kind.type_name(), "MessageReceived");
}

async fn concurrent_messages_of_one_user_lose_no_update(store: Arc<dyn ConversationStore>) {
    let p = pipeline(false, store.clone());
    let mut tasks = Vec::new();
    for i in 0..12 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            send(
                &p,
                &format!("msg:{i}"),
                "o_demo_user02",
                "你好",
                SNAPSHOT + i,
            )
            .await
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    let openid = OpenId::parse("o_demo_user02").expect("openid");
    let state = store.get(&openid, SNAPSHOT + 20).await.expect("get");
    assert_eq!(
        state.state.turns, 12,
        "every message counted in the conversation"
    );
    assert_eq!(state.version, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_messages_of_one_user_lose_no_update_in_memory() {
    concurrent_messages_of_one_user_lose_no_update(Arc::new(MemoryConversationStore::default()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_messages_of_one_user_lose_no_update_in_redb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("wca.redb")).expect("open");
    concurrent_messages_of_one_user_lose_no_update(Arc::new(store)).await;
}

#[tokio::test]
async fn when_five_conversations_are_unresolved_the_sixth_goes_to_a_person_at_once() {
    let p = pipeline(false, Arc::new(MemoryConversationStore::default()));
    for i in 1..=5 {
        let o = send(
            &p,
            &format!("msg:{i}"),
            &format!("o_demo_user0{i}"),
            "呜啦啦啦",
            SNAPSHOT,
        )
        .await;
        assert_eq!(o.route, "clarify", "user {i}");
    }
    let o = send(&p, "msg:6", "o_demo_user06", "嘀嘀嗒嗒", SNAPSHOT + 1).await;
    assert_eq!(o.route, "handoff:backlog");
    let reason = o.events.iter().find_map(|e| match &e.kind {
        EventKind::HandoffRequested { reason, .. } => Some(*reason),
        _ => None,
    });
    assert_eq!(reason, Some(HandoffReason::Backlog));

    // One of the five is answered: the board has room again.
    let o = send(&p, "msg:7", "o_demo_user01", "你们发什么快递", SNAPSHOT + 2).await;
    assert_eq!(o.route, "faq:courier");
    let o = send(&p, "msg:8", "o_demo_user07", "嘀嘀嗒嗒", SNAPSHOT + 3).await;
    assert_eq!(o.route, "clarify");
}

#[tokio::test]
async fn unresolved_conversations_that_went_idle_leave_the_board() {
    let p = pipeline(false, Arc::new(MemoryConversationStore::default()));
    for i in 1..=5 {
        send(
            &p,
            &format!("msg:{i}"),
            &format!("o_demo_user0{i}"),
            "呜啦啦啦",
            SNAPSHOT,
        )
        .await;
    }
    let later = SNAPSHOT + p.dialog().idle_timeout_secs() + 1;
    let o = send(&p, "msg:6", "o_demo_user06", "嘀嘀嗒嗒", later).await;
    assert_eq!(o.route, "clarify");
}

#[tokio::test]
async fn a_message_handled_again_after_later_ones_is_answered_as_the_first_time_and_takes_no_second_turn()
 {
    let store = Arc::new(MemoryConversationStore::default());
    let p = pipeline(false, store.clone());
    let user = "o_demo_user03";
    // A moves the conversation on (its events then fail to publish, so
    // WeChat will retry it); B and C take their turns meanwhile.
    let a = send(&p, "msg:a", user, "快递怎么还没到", SNAPSHOT).await;
    let b = send(&p, "msg:b", user, "你好", SNAPSHOT + 1).await;
    let _c = send(&p, "msg:c", user, "谢谢", SNAPSHOT + 2).await;
    let before = store
        .get(&OpenId::parse(user).expect("openid"), SNAPSHOT + 3)
        .await
        .expect("get");

    let again = send(&p, "msg:a", user, "快递怎么还没到", SNAPSHOT + 3).await;
    assert_eq!(again.reply, a.reply, "answered as the first time");
    assert_eq!(again.route, a.route);
    let after = store
        .get(&OpenId::parse(user).expect("openid"), SNAPSHOT + 3)
        .await
        .expect("get");
    assert_eq!(after, before, "the conversation did not move");
    assert_ne!(b.route, a.route, "B was a turn of its own");
}

#[tokio::test]
async fn a_conversation_remembers_only_its_last_turns() {
    let store = Arc::new(MemoryConversationStore::default());
    let p = pipeline(false, store.clone());
    let user = "o_demo_user03";
    for n in 0..20 {
        send(&p, &format!("msg:{n}"), user, "你好", SNAPSHOT + n).await;
    }
    let state = store
        .get(&OpenId::parse(user).expect("openid"), SNAPSHOT + 20)
        .await
        .expect("get")
        .state;
    assert_eq!(state.last_turns.len(), wca_core::LastTurn::KEPT);
    assert!(state.turn_of("msg:19").is_some(), "the newest is kept");
    assert!(state.turn_of("msg:0").is_none(), "the oldest are forgotten");
    assert_eq!(state.turns, 20);
}
