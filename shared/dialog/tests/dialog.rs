//! The dialog engine on the demo shop's configuration and data: every flow
//! transition, timeout, retry, cancel and topic switch, every hand-over
//! reason, and the rule that nobody sees another customer's order.
//!
//! Intents are given by the tests (no model runs here), so each case pins
//! the dialog's own logic.

use std::path::Path;
use std::sync::Arc;

use wca_core::{
    ArchivedMessage, ArchivedReply, ConversationState, EventKind, HandoffReason, MessageArchive,
    OpenId, Outgoing, memory::MemoryArchive,
};
use wca_dialog::{Decision, Dialog, Input, Shop, Turn};
use wca_local::{JsonlOrders, JsonlProfiles, JsonlTickets};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo-shop");
/// 2026-11-20 10:00 +08:00, the demo snapshot.
const SNAPSHOT: i64 = 1_795_140_000;

fn demo_dialog() -> Dialog {
    Dialog::load_section(&Path::new(DEMO).join("wca.toml")).expect("demo dialog loads")
}

struct Chat {
    dialog: Arc<Dialog>,
    shop: Shop,
    archive: Arc<MemoryArchive>,
    tickets: Arc<JsonlTickets>,
    openid: OpenId,
    state: ConversationState,
    now: i64,
    seq: u32,
    backlog: usize,
}

impl Chat {
    fn new(dialog: Arc<Dialog>, openid: &str) -> Self {
        let tickets = Arc::new(JsonlTickets::in_memory());
        let archive = Arc::new(MemoryArchive::default());
        let shop = Shop {
            orders: Some(Arc::new(
                JsonlOrders::load(&Path::new(DEMO).join("orders.jsonl")).expect("orders"),
            )),
            tickets: Some(tickets.clone()),
            profiles: Some(Arc::new(
                JsonlProfiles::load(&Path::new(DEMO).join("users.jsonl")).expect("users"),
            )),
            history: Some(archive.clone()),
        };
        Self {
            dialog,
            shop,
            archive,
            tickets,
            openid: OpenId::parse(openid).expect("openid"),
            state: ConversationState::default(),
            now: SNAPSHOT,
            seq: 0,
            backlog: 0,
        }
    }

    /// Sends `text` with a given intent and sentiment score, archiving
    /// both sides as the webhook does.
    async fn send(&mut self, text: &str, intent: Option<(&str, f32)>, score: f32) -> Decision {
        self.seq += 1;
        self.now += 30;
        let key = format!("msg:{}", self.seq);
        let message = ArchivedMessage {
            key: key.clone(),
            openid: self.openid.to_string(),
            msg_type: "text".to_owned(),
            create_time: self.now,
            received_at: self.now,
            raw_xml: String::new(),
            parsed: serde_json::json!({"type": "text", "content": text}),
            expires_at: self.now + 86_400 * 30,
        };
        self.archive.put(&message).await.expect("archive");
        let turn = Turn {
            msg_key: &key,
            openid: &self.openid,
            input: Input::Text(text),
            intent,
            sentiment_score: Some(score),
            backlog: self.backlog,
            now: self.now,
        };
        let decision = self
            .dialog
            .respond(&turn, self.state.clone(), &self.shop)
            .await
            .expect("respond");
        self.state = decision.state.clone();
        if let Some(reply) = &decision.reply {
            let archived = ArchivedReply {
                key,
                openid: self.openid.to_string(),
                sent_at: self.now,
                reply: reply.clone(),
                route: decision.route.clone(),
                expires_at: self.now + 86_400 * 30,
            };
            self.archive.put_reply(&archived).await.expect("archive");
        }
        decision
    }

    /// A neutral message with a confident intent.
    async fn say(&mut self, text: &str, intent: &str) -> Decision {
        self.send(text, Some((intent, 0.95)), 0.0).await
    }
}

fn text(d: &Decision) -> &str {
    match &d.reply {
        Some(Outgoing::Text { content }) => content,
        other => panic!("expected a text reply, got {other:?} (route {})", d.route),
    }
}

fn handoff_reason(d: &Decision) -> (HandoffReason, bool) {
    assert!(
        matches!(d.reply, Some(Outgoing::TransferToAgent { .. })),
        "{d:?}"
    );
    let reasons: Vec<(HandoffReason, bool)> = d
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::HandoffRequested {
                reason, priority, ..
            } => Some((*reason, *priority)),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 1, "{:?}", d.events);
    reasons[0]
}

#[tokio::test]
async fn a_greeting_is_answered_by_name_and_vip_members_get_their_own_greeting() {
    let dialog = Arc::new(demo_dialog());
    let mut vip = Chat::new(dialog.clone(), "o_demo_user01");
    let d = vip.say("你好", "greeting").await;
    assert!(text(&d).starts_with("陈静您好"), "{}", text(&d));
    assert!(text(&d).contains("黑金会员"), "{}", text(&d));

    let mut plain = Chat::new(dialog.clone(), "o_demo_user02");
    let d = plain.say("你好", "greeting").await;
    assert!(text(&d).starts_with("王浩然您好"), "{}", text(&d));
    assert!(!text(&d).contains("会员"), "{}", text(&d));

    let mut stranger = Chat::new(dialog, "o_not_a_customer");
    let d = stranger.say("你好", "greeting").await;
    assert!(text(&d).starts_with("亲您好"), "{}", text(&d));
}

#[tokio::test]
async fn a_returning_customer_is_greeted_with_the_question_they_asked_last_time() {
    let dialog = Arc::new(demo_dialog());
    let mut chat = Chat::new(dialog.clone(), "o_demo_user02");
    let d = chat.send("运费怎么算？满多少包邮", None, 0.0).await;
    assert_eq!(d.route, "faq:shipping-fee");
    let d = chat.say("谢谢", "thanks_bye").await;
    assert!(d.reply.is_some());
    let d = chat.say("你好", "greeting").await;
    assert_eq!(
        d.route, "intent:greeting",
        "within one conversation a greeting is the usual one"
    );

    chat.now += dialog.idle_timeout_secs() + 1;
    let d = chat.say("你好", "greeting").await;
    assert_eq!(d.route, "intent:greeting:returning");
    assert!(text(&d).starts_with("王浩然您好，欢迎回来"), "{}", text(&d));
    assert!(
        text(&d).contains("「运费怎么算？满多少包邮」"),
        "{}",
        text(&d)
    );
}

#[tokio::test]
async fn a_customer_whose_history_holds_no_faq_answer_gets_the_usual_greeting() {
    let dialog = Arc::new(demo_dialog());
    let mut chat = Chat::new(dialog.clone(), "o_demo_user02");
    let d = chat.say("我的快递到哪了", "order_status").await;
    assert!(d.route.starts_with("flow:order_lookup"), "{}", d.route);
    chat.now += dialog.idle_timeout_secs() + 1;
    let d = chat.say("你好", "greeting").await;
    assert_eq!(d.route, "intent:greeting");
    assert!(!text(&d).contains("欢迎回来"), "{}", text(&d));
}

#[tokio::test]
async fn order_lookup_lists_several_orders_then_answers_the_one_picked() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    let d = chat.say("我的快递到哪了", "order_status").await;
    assert_eq!(d.route, "flow:order_lookup:ask:order_id");
    assert!(text(&d).contains("1. 2026112000958"), "{}", text(&d));
    assert!(text(&d).contains("2. 2026111803302"), "{}", text(&d));
    let d = chat.say("2", "other").await;
    assert_eq!(d.route, "flow:order_lookup:done");
    assert!(text(&d).contains("2026111803302"), "{}", text(&d));
    assert!(text(&d).contains("已发货"), "{}", text(&d));
    assert!(text(&d).contains("SF1436620958177"), "{}", text(&d));
    assert_eq!(chat.state.flow, None, "the flow ends with its answer");
}

#[tokio::test]
async fn an_order_number_in_the_first_message_is_answered_at_once() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    let d = chat
        .say("查一下订单2026111305517到哪了", "order_status")
        .await;
    assert_eq!(d.route, "flow:order_lookup:done");
    assert!(text(&d).contains("已签收"), "{}", text(&d));
}

#[tokio::test]
async fn another_customers_order_is_never_revealed() {
    // 2026090307412 belongs to o_demo_user07.
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    let d = chat
        .say("帮我查下2026090307412这个订单", "order_status")
        .await;
    assert_eq!(d.route, "flow:order_lookup:ask:order_id");
    let d = chat.say("2026090307412", "other").await;
    assert_eq!(d.route, "flow:order_lookup:retry");
    let reply = text(&d);
    assert!(reply.contains("没有在您的账户下找到"), "{reply}");
    for secret in ["SF1400471189532", "羊毛混纺开衫 燕麦", "北京", "顺丰"] {
        assert!(!reply.contains(secret), "leaked {secret}: {reply}");
    }
}

#[tokio::test]
async fn a_wrong_answer_is_retried_and_the_flow_gives_up_after_its_retries() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    chat.say("查订单", "order_status").await;
    let d = chat.say("9999999999999", "other").await;
    assert_eq!(d.route, "flow:order_lookup:retry");
    assert_eq!(chat.state.flow.as_ref().map(|f| f.retries), Some(1));
    let d = chat.say("1234567890123", "other").await;
    assert_eq!(d.route, "flow:order_lookup:retry");
    let d = chat.say("0000000000000", "other").await;
    assert_eq!(d.route, "flow:order_lookup:failed");
    assert_eq!(chat.state.flow, None);
    assert_eq!(
        chat.state.unanswered, 1,
        "a failed flow is an unanswered turn"
    );
}

#[tokio::test]
async fn a_cancel_word_ends_the_flow_in_progress() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    chat.say("我要退货", "return_refund").await;
    assert!(chat.state.flow.is_some());
    let d = chat.say("算了，不退了", "other").await;
    assert_eq!(d.route, "flow:return:cancelled");
    assert!(text(&d).contains("已为您取消"), "{}", text(&d));
    assert_eq!(chat.state.flow, None);
}

#[tokio::test]
async fn a_question_mid_flow_is_answered_and_the_slot_asked_again() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    chat.say("我的快递到哪了", "order_status").await;
    let d = chat
        .say("你们发什么快递？能发顺丰吗", "product_inquiry")
        .await;
    assert_eq!(d.route, "flow:order_lookup:faq:courier");
    assert!(text(&d).contains("中通"), "{}", text(&d));
    assert!(text(&d).contains("请回复序号"), "the slot is asked again");
    let flow = chat.state.flow.as_ref().expect("still in the flow");
    assert_eq!(flow.retries, 0, "a topic switch is not a wrong answer");
    let d = chat.say("1", "other").await;
    assert_eq!(d.route, "flow:order_lookup:done");
}

#[tokio::test]
async fn asking_for_the_same_flow_again_asks_again_without_counting_a_retry() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    chat.say("我的快递到哪了", "order_status").await;
    let d = chat.say("帮我查一下订单", "order_status").await;
    assert_eq!(d.route, "flow:order_lookup:ask:order_id");
    assert!(!text(&d).contains("没有在您的账户下找到"), "{}", text(&d));
    assert_eq!(chat.state.flow.as_ref().map(|f| f.retries), Some(0));
}

#[tokio::test]
async fn asking_for_another_flow_mid_flow_switches_to_it() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    chat.say("我的快递到哪了", "order_status").await;
    let d = chat.say("不查了我想退货", "return_refund").await;
    // "不查了" is a cancel word of the demo: cancelling wins.
    assert_eq!(d.route, "flow:order_lookup:cancelled");
    chat.say("我的快递到哪了", "order_status").await;
    let d = chat.say("我想退货", "return_refund").await;
    assert_eq!(d.route, "flow:return:ask:order_id");
    assert_eq!(
        chat.state.flow.as_ref().map(|f| f.flow.as_str()),
        Some("return")
    );
}

#[tokio::test]
async fn an_unsure_flow_intent_that_the_faq_answers_gets_the_faq_answer() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    let d = chat
        .send("你们一般发什么快递", Some(("order_status", 0.77)), 0.0)
        .await;
    assert_eq!(d.route, "faq:courier");
    assert_eq!(chat.state.flow, None);
    let d = chat
        .send("我要查订单", Some(("order_status", 0.68)), 0.0)
        .await;
    assert_eq!(
        d.route, "flow:order_lookup:ask:order_id",
        "the FAQ has nothing here"
    );
}

#[tokio::test]
async fn a_request_for_a_person_holds_in_the_middle_of_a_flow() {
    let dialog = Arc::new(demo_dialog());
    let mut chat = Chat::new(dialog.clone(), "o_demo_user01");
    chat.say("我要退货", "return_refund").await;
    let d = chat.say("能不能让客服小姐姐来处理", "human_agent").await;
    assert_eq!(handoff_reason(&d), (HandoffReason::Intent, true));
    let mut chat = Chat::new(dialog, "o_demo_user02");
    chat.say("我要退货", "return_refund").await;
    // The demo's own replies tell customers to send 人工.
    let d = chat.say("人工", "other").await;
    assert_eq!(handoff_reason(&d), (HandoffReason::Keyword, false));
}

#[tokio::test]
async fn a_question_at_a_free_text_slot_is_answered_not_taken_as_the_answer() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    chat.say("我要退货", "return_refund").await;
    let d = chat.say("2026111305517", "other").await;
    assert_eq!(d.route, "flow:return:ask:reason");
    let d = chat.say("可以开发票吗", "payment").await;
    assert_eq!(d.route, "flow:return:faq:invoice");
    assert!(
        text(&d).ends_with("不想要了。"),
        "the reason is asked again: {}",
        text(&d)
    );
    assert!(chat.tickets.tickets().is_empty());
    let d = chat.say("颜色不喜欢算了还是退吧", "return_refund").await;
    assert_eq!(
        d.route, "flow:return:done",
        "a reason that mentions 算了 is no cancel"
    );
    assert_eq!(chat.tickets.tickets()[0].1.reason, "颜色不喜欢算了还是退吧");
}

#[tokio::test]
async fn the_return_window_is_judged_at_the_message_time_when_no_time_is_pinned() {
    let config = std::fs::read_to_string(Path::new(DEMO).join("wca.toml"))
        .expect("demo config")
        .replace("policy_time = \"2026-11-20T10:00:00+08:00\"\n", "");
    let dialog = Arc::new(
        Dialog::from_toml(
            &config[config.find("[dialog]").expect("dialog table") + "[dialog]".len()..]
                .replace("[dialog.", "["),
            "wca.toml",
            Path::new(DEMO),
        )
        .expect("the demo dialog without a pinned time"),
    );
    // Delivered 2026-11-15 11:38 +08:00.
    let mut early = Chat::new(dialog.clone(), "o_demo_user01");
    early.say("我要退货", "return_refund").await;
    let d = early.say("2026111305517", "other").await;
    assert_eq!(
        d.route, "flow:return:ask:reason",
        "five days after delivery"
    );
    let mut late = Chat::new(dialog, "o_demo_user01");
    late.now = SNAPSHOT + 30 * 86_400;
    late.say("我要退货", "return_refund").await;
    let d = late.say("2026111305517", "other").await;
    assert_eq!(d.route, "flow:return:not_returnable");
    assert!(text(&d).contains("超过7天"), "{}", text(&d));
}

#[tokio::test]
async fn a_flow_left_idle_past_its_timeout_is_forgotten() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    chat.say("我的快递到哪了", "order_status").await;
    assert!(chat.state.flow.is_some());
    chat.now += 3600;
    let d = chat.say("2", "other").await;
    assert_ne!(
        d.route, "flow:order_lookup:done",
        "an hour later, 2 is not a pick"
    );
    assert_eq!(chat.state.flow, None);
}

#[tokio::test]
async fn a_return_collects_order_and_reason_and_opens_one_ticket() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user01");
    let d = chat.say("我要退货", "return_refund").await;
    assert_eq!(d.route, "flow:return:ask:order_id");
    // 2026111305517 was delivered on 11-15: inside the 7-day window.
    let d = chat.say("2026111305517", "other").await;
    assert_eq!(d.route, "flow:return:ask:reason");
    let d = chat.say("耳机有杂音", "return_refund").await;
    assert_eq!(d.route, "flow:return:done");
    let tickets = chat.tickets.tickets();
    assert_eq!(tickets.len(), 1);
    let (ticket_id, ticket) = &tickets[0];
    assert_eq!(ticket.order_id, "2026111305517");
    assert_eq!(ticket.reason, "耳机有杂音");
    assert!(text(&d).contains(ticket_id.as_str()), "{}", text(&d));
    let created: Vec<_> = d
        .events
        .iter()
        .filter(
            |e| matches!(&e.kind, EventKind::TicketCreated { ticket_id: t, .. } if t == ticket_id),
        )
        .collect();
    assert_eq!(created.len(), 1, "{:?}", d.events);
}

#[tokio::test]
async fn orders_that_cannot_be_returned_end_the_flow_with_the_reason() {
    let table = [
        // shipped, not delivered
        ("2026111803302", "还在运输途中"),
        // delivered 2026-09-16: long past the window
        ("2026091408816", "超过7天"),
        // already refunded
        ("2026101702231", "已退款"),
        // not paid yet
        ("2026112000958", "还没有发货"),
    ];
    let dialog = Arc::new(demo_dialog());
    for (order, says) in table {
        let mut chat = Chat::new(dialog.clone(), "o_demo_user01");
        chat.say("我要退货", "return_refund").await;
        let d = chat.say(order, "other").await;
        assert_eq!(d.route, "flow:return:not_returnable", "{order}");
        assert!(text(&d).contains(says), "{order}: {}", text(&d));
        assert_eq!(chat.state.flow, None);
        assert!(chat.tickets.tickets().is_empty());
    }
}

#[tokio::test]
async fn a_customer_with_one_order_is_not_asked_which() {
    // o_demo_user02 has a single order.
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user02");
    let d = chat.say("我买的东西发货了吗", "order_status").await;
    assert_eq!(d.route, "flow:order_lookup:done", "{}", text(&d));
    assert!(text(&d).contains("2026111904410"), "{}", text(&d));
}

#[tokio::test]
async fn an_faq_question_is_answered_from_the_faq() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user03");
    let d = chat.say("可以开发票吗", "payment").await;
    assert_eq!(d.route, "faq:invoice");
    assert!(text(&d).contains("电子普通发票"), "{}", text(&d));
}

#[tokio::test]
async fn a_handoff_keyword_hands_over_even_mid_flow() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user02");
    chat.say("我要退货", "return_refund").await;
    let d = chat.say("拜托转个人工", "human_agent").await;
    assert_eq!(handoff_reason(&d), (HandoffReason::Keyword, false));
    assert_eq!(chat.state.flow, None);
    assert!(chat.state.handed_off_at.is_some());
}

#[tokio::test]
async fn asking_when_people_are_there_gets_the_hours_but_asking_for_one_hands_over() {
    let dialog = Arc::new(demo_dialog());
    let mut chat = Chat::new(dialog.clone(), "o_demo_user02");
    let d = chat.say("人工客服几点上班", "human_agent").await;
    assert_eq!(d.route, "faq:store-hours");
    assert!(text(&d).contains("9:00-22:00"), "{}", text(&d));
    for request in ["我要人工客服", "人工客服，我的快递丢了"] {
        let mut chat = Chat::new(dialog.clone(), "o_demo_user02");
        let d = chat.say(request, "human_agent").await;
        assert_eq!(
            handoff_reason(&d),
            (HandoffReason::Keyword, false),
            "{request}"
        );
    }
}

#[tokio::test]
async fn the_human_agent_intent_hands_over_and_vip_members_first() {
    let dialog = Arc::new(demo_dialog());
    let mut chat = Chat::new(dialog.clone(), "o_demo_user02");
    let d = chat.say("能不能让客服小姐姐来回答", "human_agent").await;
    assert_eq!(handoff_reason(&d), (HandoffReason::Intent, false));
    let mut vip = Chat::new(dialog, "o_demo_user04");
    let d = vip.say("我要投诉你们", "complaint").await;
    assert_eq!(handoff_reason(&d), (HandoffReason::Intent, true));
}

#[tokio::test]
async fn two_unanswered_turns_in_a_row_hand_over() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user02");
    let d = chat.send("呜啦啦啦", Some(("other", 0.3)), 0.0).await;
    assert_eq!(d.route, "clarify");
    assert_eq!(chat.state.unanswered, 1);
    let d = chat.send("嘀嘀嗒嗒", Some(("other", 0.3)), 0.0).await;
    assert_eq!(handoff_reason(&d), (HandoffReason::Unanswered, false));
    assert_eq!(chat.state.unanswered, 0);
}

#[tokio::test]
async fn an_answer_resets_the_unanswered_count() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user02");
    chat.send("呜啦啦啦", Some(("other", 0.3)), 0.0).await;
    chat.say("你好", "greeting").await;
    assert_eq!(chat.state.unanswered, 0);
    let d = chat.send("嘀嘀嗒嗒", Some(("other", 0.3)), 0.0).await;
    assert_eq!(d.route, "clarify");
}

#[tokio::test]
async fn a_run_of_negative_messages_hands_over() {
    let mut chat = Chat::new(Arc::new(demo_dialog()), "o_demo_user02");
    let d = chat.send("你好", Some(("greeting", 0.9)), -0.9).await;
    assert_eq!(d.route, "intent:greeting");
    let d = chat.send("你好", Some(("greeting", 0.9)), -0.9).await;
    assert_eq!(
        handoff_reason(&d),
        (HandoffReason::NegativeSentiment, false)
    );
}

#[tokio::test]
async fn a_full_backlog_sends_a_new_unanswered_conversation_to_a_person_at_once() {
    let dialog = Arc::new(demo_dialog());
    let mut calm = Chat::new(dialog.clone(), "o_demo_user05");
    calm.backlog = 4;
    assert_eq!(
        calm.send("呜啦啦啦", Some(("other", 0.3)), 0.0).await.route,
        "clarify",
        "under the limit the bot asks again"
    );
    let mut busy = Chat::new(dialog, "o_demo_user06");
    busy.backlog = 5;
    let d = busy.send("呜啦啦啦", Some(("other", 0.3)), 0.0).await;
    assert_eq!(handoff_reason(&d), (HandoffReason::Backlog, false));
}

#[tokio::test]
async fn a_new_follower_gets_the_welcome_and_other_input_is_silent() {
    let dialog = Arc::new(demo_dialog());
    let chat = Chat::new(dialog.clone(), "o_demo_user01");
    let openid = chat.openid.clone();
    let turn = |input| Turn {
        msg_key: "evt:1",
        openid: &openid,
        input,
        intent: None,
        sentiment_score: None,
        backlog: 0,
        now: SNAPSHOT,
    };
    let d = dialog
        .respond(
            &turn(Input::Subscribe),
            ConversationState::default(),
            &chat.shop,
        )
        .await
        .expect("respond");
    assert!(
        matches!(&d.reply, Some(Outgoing::Text { content }) if content.starts_with("欢迎关注小满优选")),
        "{d:?}"
    );
    let with_rules = demo_dialog()
        .with_rules(wca_dialog::Rules::from_toml("welcome = \"欢迎{name}\"").expect("rules"));
    let d = with_rules
        .respond(
            &turn(Input::Subscribe),
            ConversationState::default(),
            &chat.shop,
        )
        .await
        .expect("respond");
    assert_eq!(d.reply, Some(Outgoing::text("欢迎陈静")));
    let d = dialog
        .respond(
            &turn(Input::Other),
            ConversationState::default(),
            &chat.shop,
        )
        .await
        .expect("respond");
    assert_eq!((d.reply, d.route.as_str()), (None, "none"));
}

#[test]
fn a_bad_dialog_config_names_the_file_and_the_line_or_key() {
    let table = [
        ("min_confidence = \"high\"", "wca.toml:1:"),
        (
            "clarify = \"x\"\n[handoff]\nunanswered_turns = -1",
            "wca.toml:3:",
        ),
        ("idle_timeout_secs = 0", "idle_timeout_secs"),
        ("cancel_words = [\"算了\", \" \"]", "empty word"),
        (
            "[[flow]]\nname = \"f\"\naction = \"order_status\"\n[[flow.slot]]\nname = \"order_id\"\nkind = \"order\"\nprompt = \"?\"\n[[flow.slot]]\nname = \"order_id\"\nkind = \"order\"\nprompt = \"?\"",
            "appears twice",
        ),
        (
            "[intents]\nx = { flow = \"nope\" }",
            "[intents.x] names flow \"nope\"",
        ),
        (
            "[intents]\nx = { faq = true, handoff = true }",
            "[intents.x] needs exactly one",
        ),
        (
            "[intents]\nx = { reply = \"{nmae}\" }",
            "[intents.x] reply uses {nmae}",
        ),
        ("colour = 1", "unknown field `colour`"),
        ("policy_time = \"yesterday\"", "policy_time"),
        (
            "[[flow]]\nname = \"f\"\naction = \"order_status\"\n[[flow.slot]]\nname = \"why\"\nprompt = \"?\"",
            "needs an order slot",
        ),
        (
            "[[flow]]\nname = \"f\"\naction = \"order_status\"\n[[flow.slot]]\nname = \"order_id\"\nkind = \"order\"\nprompt = \"?\"\n[[flow.slot]]\nname = \"x\"\nprompt = \"?\"\npattern = \"(\"",
            "pattern",
        ),
        ("faq = [\"missing.tsv\"]", "missing.tsv"),
    ];
    for (text, says) in table {
        let err = Dialog::from_toml(text, "wca.toml", Path::new(DEMO)).expect_err(text);
        let msg = err.to_string();
        assert!(msg.contains(says), "{text:?} -> {msg}");
        assert!(
            msg.contains("wca.toml") || msg.contains("missing.tsv"),
            "{msg}"
        );
    }
}

#[test]
fn the_shipped_dialog_and_the_demo_config_load() {
    let dialog = Dialog::from_toml(
        wca_dialog::DEFAULT_DIALOG,
        "default-dialog.toml",
        Path::new("."),
    )
    .expect("the shipped dialog parses");
    assert!(dialog.faq().is_none());
    assert!(demo_dialog().faq().is_some_and(|f| f.len() >= 40));
}
