//! The dialog engine: what to say to one message, given what the bot
//! remembers of the conversation.
//!
//! Per text message, in this order:
//!
//! 1. a hand-over keyword (转人工) goes to a person;
//! 2. a flow in progress takes the message: cancel words end it, a valid
//!    answer fills the slot, a question the FAQ answers is answered and
//!    the slot asked again (a topic switch), anything else is retried and,
//!    after the slot's retries, the flow gives up;
//! 3. a run of negative sentiment goes to a person;
//! 4. the operator's keyword rules;
//! 5. the intent, when the model is confident enough, picks a route: a
//!    reply, a flow, the FAQ or a person;
//! 6. otherwise the FAQ, and when it has nothing, a clarifying question.
//!
//! A turn the bot could not answer counts; at `unanswered_turns` in a row
//! the conversation goes to a person, and so it does at once when the
//! conversations the bot has left unresolved already reach
//! `backlog_limit`. Every hand-over emits `HandoffRequested` and replies
//! `transfer_customer_service`.
//!
//! A reply route may have a greeting for a returning customer: one who
//! starts a new conversation and whose history (the archive of both sides)
//! holds a question the FAQ answered before. It can quote that question,
//! `{last_question}`. The history is read only for such a route, and a
//! history that cannot be read gives the usual greeting, not an error.
//!
//! The engine reads the shop's systems through ports ([`Shop`]) and never
//! shows a customer anything about an order that is not theirs: another
//! customer's order number gets the same answer as a wrong one.

use std::collections::HashMap;
use std::sync::Arc;

use wca_core::{
    Archived, ConversationState, Event, FlowState, HandoffReason, MessageArchive, NewTicket,
    OpenId, Order, OrderStatus, OrderSystem, Outgoing, PortError, Profile, ProfileStore,
    TicketSink,
};

use crate::config::{Action, Flow, Handoff, Route, Slot, SlotKind};
use crate::template::Vars;
use crate::{Answer, Faq, Rules, template};

/// The shop's systems the dialog may use; a missing one turns the flows
/// that need it off.
#[derive(Clone, Default)]
pub struct Shop {
    /// Orders, for order lookup and returns.
    pub orders: Option<Arc<dyn OrderSystem>>,
    /// Where return requests go.
    pub tickets: Option<Arc<dyn TicketSink>>,
    /// Customer profiles, for personal replies.
    pub profiles: Option<Arc<dyn ProfileStore>>,
    /// The archive of both sides of every conversation, for replies that
    /// recall what a customer asked before.
    pub history: Option<Arc<dyn MessageArchive>>,
}

/// What arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input<'a> {
    /// A text (or a voice message's recognised speech).
    Text(&'a str),
    /// A new follower.
    Subscribe,
    /// Anything else (pictures, clicks, ...): acknowledged without a reply.
    Other,
}

/// One message as the dialog sees it.
#[derive(Debug, Clone)]
pub struct Turn<'a> {
    /// The message's dedup key: event ids and ticket requests derive from
    /// it, so a retried message never opens a second ticket.
    pub msg_key: &'a str,
    /// The customer.
    pub openid: &'a OpenId,
    /// What they sent.
    pub input: Input<'a>,
    /// The intent label and its probability, when classified.
    pub intent: Option<(&'a str, f32)>,
    /// p(positive) - p(negative) of the text, when classified.
    pub sentiment_score: Option<f32>,
    /// How many conversations the bot has left unresolved right now.
    pub backlog: usize,
    /// Now (Unix seconds).
    pub now: i64,
}

/// What the dialog decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The reply, if any.
    pub reply: Option<Outgoing>,
    /// `HandoffRequested`, `TicketCreated`.
    pub events: Vec<Event>,
    /// The conversation as it stands after this message.
    pub state: ConversationState,
    /// How the reply was chosen, for logs and tests: `rule`, `faq:ID`,
    /// `intent:LABEL`, `intent:LABEL:returning`, `flow:NAME:ask:SLOT`, `flow:NAME:done`,
    /// `flow:NAME:cancelled`, `flow:NAME:retry`, `flow:NAME:failed`,
    /// `flow:NAME:faq:ID`, `handoff:REASON`, `clarify`, `welcome`, `none`.
    pub route: String,
}

/// The dialog: rules, routes, flows, FAQ and hand-over policy, built from
/// configuration by [`crate::config`].
#[derive(Debug)]
pub struct Dialog {
    pub(crate) rules: Rules,
    pub(crate) faq: Option<Faq>,
    pub(crate) min_confidence: f32,
    pub(crate) flow_confidence: f32,
    pub(crate) negative_score: f32,
    pub(crate) clarify: String,
    pub(crate) welcome: Option<String>,
    pub(crate) anonymous_name: String,
    pub(crate) vip_min_level: u8,
    pub(crate) cancel_words: Vec<String>,
    pub(crate) cancelled: String,
    pub(crate) flow_failed: String,
    pub(crate) idle_timeout_secs: i64,
    pub(crate) policy_time: Option<i64>,
    pub(crate) return_window_days: i64,
    pub(crate) handoff: Handoff,
    pub(crate) routes: HashMap<String, Route>,
    pub(crate) flows: HashMap<String, Flow>,
}

/// The working state of one turn.
struct Ctx<'t, 'a> {
    turn: &'t Turn<'a>,
    shop: &'t Shop,
    profile: Option<Profile>,
    state: ConversationState,
    events: Vec<Event>,
    /// This message starts a new conversation (the first, or after the
    /// idle timeout).
    fresh: bool,
}

impl Ctx<'_, '_> {
    fn vip(&self, min_level: u8) -> bool {
        self.profile
            .as_ref()
            .is_some_and(|p| p.vip_level >= min_level)
    }
}

/// How long a conversation's state is kept after its last message (its
/// hand-over time and counters outlive the idle timeout of its flows).
const CONVERSATION_TTL_SECS: i64 = 7 * 24 * 3600;

/// A reply and its route label.
type Said = (Option<Outgoing>, String);

/// Words that make a message mentioning a hand-over keyword a question
/// about opening hours rather than a request for a person.
const WHEN_WORDS: [&str; 7] = ["几点", "什么时候", "时间", "上班", "下班", "营业", "多久"];

/// How many history entries (messages and replies) are read to find a
/// returning customer's last question.
const HISTORY_LOOKBACK: usize = 20;

/// The longest `{last_question}`, in characters; longer ones are cut with
/// an ellipsis.
const LAST_QUESTION_CHARS: usize = 20;

/// The customer's latest message, other than `current`, that the bot
/// answered from the FAQ (route `faq:ID` or, mid-flow, `flow:NAME:faq:ID`),
/// cut to [`LAST_QUESTION_CHARS`]. `entries` are newest first.
fn last_faq_question(entries: &[Archived], current: &str) -> Option<String> {
    let asked = entries.iter().find_map(|e| match e {
        Archived::Reply(r)
            if r.key != current && (r.route.starts_with("faq:") || r.route.contains(":faq:")) =>
        {
            Some(r.key.as_str())
        }
        _ => None,
    })?;
    let text = entries.iter().find_map(|e| match e {
        Archived::Message(m) if m.key == asked => m.text(),
        _ => None,
    })?;
    let text = text.trim();
    Some(match text.char_indices().nth(LAST_QUESTION_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    })
}

/// The first run of exactly 13 ASCII digits in `text`: how the demo shop's
/// order numbers look, and not a phone number (11) or a tracking number
/// (14) next to them.
fn order_number(text: &str) -> Option<&str> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 13)
}

impl Dialog {
    /// How long a conversation is kept after its last message.
    pub fn conversation_ttl_secs(&self) -> i64 {
        CONVERSATION_TTL_SECS.max(self.idle_timeout_secs)
    }

    /// After this long without a message, a conversation starts afresh.
    pub fn idle_timeout_secs(&self) -> i64 {
        self.idle_timeout_secs
    }

    /// Unresolved conversations at which new ones go straight to people
    /// (0: off).
    pub fn backlog_limit(&self) -> usize {
        self.handoff.backlog_limit
    }

    /// The FAQ, if one is configured.
    pub fn faq(&self) -> Option<&Faq> {
        self.faq.as_ref()
    }

    /// Decides the reply to `turn`. Fails only when a shop system is
    /// unavailable; the caller then answers as it does for any internal
    /// failure (WeChat retries).
    pub async fn respond(
        &self,
        turn: &Turn<'_>,
        state: ConversationState,
        shop: &Shop,
    ) -> Result<Decision, PortError> {
        let profile = match &shop.profiles {
            Some(p) => p.profile(turn.openid).await?,
            None => None,
        };
        let idle = turn.now - state.last_active > self.idle_timeout_secs;
        let mut ctx = Ctx {
            turn,
            shop,
            profile,
            fresh: idle || state.turns == 0,
            state,
            events: Vec::new(),
        };
        if idle && ctx.state.turns > 0 {
            // A new conversation: nothing of the old one carries over.
            ctx.state.flow = None;
            ctx.state.unanswered = 0;
            ctx.state.negative_run = 0;
        }
        ctx.state.turns += 1;
        ctx.state.last_active = turn.now;
        let (reply, route) = match turn.input {
            Input::Subscribe => match &self.welcome {
                Some(w) => (Some(self.say(&ctx, w)), "welcome".to_owned()),
                None => (None, "none".to_owned()),
            },
            Input::Other => (None, "none".to_owned()),
            Input::Text(text) => self.text(&mut ctx, text.trim()).await?,
        };
        Ok(Decision {
            reply,
            events: ctx.events,
            state: ctx.state,
            route,
        })
    }

    async fn text(&self, ctx: &mut Ctx<'_, '_>, text: &str) -> Result<Said, PortError> {
        let negative = ctx
            .turn
            .sentiment_score
            .is_some_and(|s| s <= self.negative_score);
        ctx.state.negative_run = if negative {
            ctx.state.negative_run + 1
        } else {
            0
        };
        let folded = text.to_lowercase();
        if let Some(keyword) = self
            .handoff
            .keywords
            .iter()
            .find(|k| folded.contains(k.as_str()))
        {
            if let Some((id, answer)) = self.when_is_a_person_there(&folded, keyword) {
                return Ok(self.plain(ctx, answer.to_owned(), format!("faq:{id}")));
            }
            return Ok(self.hand_over(ctx, HandoffReason::Keyword));
        }
        if ctx.state.flow.is_some() {
            return self.flow_step(ctx, text).await;
        }
        if self.handoff.negative_turns > 0 && ctx.state.negative_run >= self.handoff.negative_turns
        {
            return Ok(self.hand_over(ctx, HandoffReason::NegativeSentiment));
        }
        match self.rules.answer(text) {
            Some(Answer::Text(t)) => return Ok(self.answered(ctx, t, "rule".to_owned())),
            Some(Answer::Transfer) => return Ok(self.hand_over(ctx, HandoffReason::Keyword)),
            None => {}
        }
        if let Some((label, confidence)) = ctx.turn.intent
            && confidence >= self.min_confidence
            && let Some(route) = self.routes.get(label)
        {
            match route {
                Route::Reply {
                    text: t,
                    vip_text,
                    returning_text,
                } => {
                    let route = format!("intent:{label}");
                    if let Some(returning) = returning_text
                        && ctx.fresh
                        && let Some(question) = self.last_question(ctx).await
                    {
                        ctx.state.unanswered = 0;
                        let vars = Vars {
                            last_question: Some(&question),
                            ..self.vars(ctx)
                        };
                        let text = template::render(returning, vars);
                        return Ok((Some(Outgoing::text(text)), format!("{route}:returning")));
                    }
                    let template = match vip_text {
                        Some(v) if ctx.vip(self.vip_min_level) => v,
                        _ => t,
                    };
                    return Ok(self.answered(ctx, template, route));
                }
                Route::Handoff => return Ok(self.hand_over(ctx, HandoffReason::Intent)),
                Route::Flow(name) => {
                    // A flow starts on a sure intent; a less sure one that
                    // the FAQ answers ("你们一般发什么快递" reads a little
                    // like order_status) gets the FAQ's answer.
                    if confidence < self.flow_confidence
                        && let Some((id, answer)) = self.faq_answer(text)
                    {
                        return Ok(self.plain(ctx, answer.to_owned(), format!("faq:{id}")));
                    }
                    if let Some(flow) = self.flows.get(name)
                        && self.flow_available(flow, ctx.shop)
                    {
                        return self.start_flow(ctx, flow, text).await;
                    }
                }
                Route::Faq => {}
            }
        }
        if let Some((id, answer)) = self.faq_answer(text) {
            return Ok(self.plain(ctx, answer.to_owned(), format!("faq:{id}")));
        }
        Ok(self.unanswered(ctx, None))
    }

    /// A hand-over keyword in a question about *when* people are there
    /// (「人工客服几点上班」): the FAQ's answer, when its entry is about that
    /// keyword. A request for a person (「我要人工客服」) has no such word
    /// and is handed over.
    fn when_is_a_person_there(&self, folded: &str, keyword: &str) -> Option<(&str, &str)> {
        let rest = folded.replace(keyword, "");
        if !WHEN_WORDS.iter().any(|w| rest.contains(w)) {
            return None;
        }
        let entry = self.faq.as_ref()?.best(folded).entry?;
        let about = std::iter::once(&entry.question)
            .chain(&entry.examples)
            .chain(std::iter::once(&entry.answer))
            .any(|t| t.contains(keyword));
        about.then_some((entry.id.as_str(), entry.answer.as_str()))
    }

    fn faq_answer(&self, text: &str) -> Option<(&str, &str)> {
        let faq = self.faq.as_ref()?;
        let found = faq.best(text);
        let entry = found.entry?;
        Some((entry.id.as_str(), entry.answer.as_str()))
    }

    fn vars<'c>(&'c self, ctx: &'c Ctx<'_, '_>) -> Vars<'c> {
        Vars {
            profile: ctx.profile.as_ref(),
            anonymous: &self.anonymous_name,
            last_question: None,
        }
    }

    fn say(&self, ctx: &Ctx<'_, '_>, template: &str) -> Outgoing {
        Outgoing::text(template::render(template, self.vars(ctx)))
    }

    /// A returning customer's last question answered from the FAQ, read
    /// from their history; `None` when there is none, no history is
    /// configured, or it cannot be read (logged: a greeting must not fail).
    async fn last_question(&self, ctx: &Ctx<'_, '_>) -> Option<String> {
        let archive = ctx.shop.history.as_ref()?;
        let turn = ctx.turn;
        match archive
            .history(turn.openid, HISTORY_LOOKBACK, turn.now)
            .await
        {
            Ok(entries) => last_faq_question(&entries, turn.msg_key),
            Err(e) => {
                tracing::warn!(openid = %turn.openid, error = %e, "history unavailable; usual greeting");
                None
            }
        }
    }

    fn answered(&self, ctx: &mut Ctx<'_, '_>, template: &str, route: String) -> Said {
        ctx.state.unanswered = 0;
        (Some(self.say(ctx, template)), route)
    }

    /// An answer that is not a template (FAQ answers, order details): sent
    /// as it is, braces and all.
    fn plain(&self, ctx: &mut Ctx<'_, '_>, text: String, route: String) -> Said {
        ctx.state.unanswered = 0;
        (Some(Outgoing::text(text)), route)
    }

    fn render(&self, ctx: &Ctx<'_, '_>, template: &str) -> String {
        template::render(template, self.vars(ctx))
    }

    /// A cancel word, in a message that says little else ("算了，不退了"),
    /// so that a reason such as "订单取消不了" does not cancel.
    fn is_cancel(&self, text: &str) -> bool {
        let said = text.chars().filter(|c| c.is_alphanumeric()).count();
        self.cancel_words
            .iter()
            .any(|w| text.contains(w.as_str()) && said <= w.chars().count() + 4)
    }

    /// A request for a person that holds even in the middle of a flow: a
    /// transfer rule, an intent routed to people, a run of unhappy
    /// messages.
    fn wants_person(&self, ctx: &Ctx<'_, '_>, text: &str) -> Option<HandoffReason> {
        if self.rules.answer(text) == Some(Answer::Transfer) {
            return Some(HandoffReason::Keyword);
        }
        if let Some((label, confidence)) = ctx.turn.intent
            && confidence >= self.min_confidence
            && matches!(self.routes.get(label), Some(Route::Handoff))
        {
            return Some(HandoffReason::Intent);
        }
        let h = &self.handoff;
        (h.negative_turns > 0 && ctx.state.negative_run >= h.negative_turns)
            .then_some(HandoffReason::NegativeSentiment)
    }

    /// The flow a confident intent asks for, if it can run.
    fn requested_flow(&self, ctx: &Ctx<'_, '_>) -> Option<&Flow> {
        let (label, confidence) = ctx.turn.intent?;
        if confidence < self.min_confidence {
            return None;
        }
        let Some(Route::Flow(name)) = self.routes.get(label) else {
            return None;
        };
        self.flows
            .get(name)
            .filter(|f| self.flow_available(f, ctx.shop))
    }

    /// A turn the bot could not answer: a clarifying question (or `reply`),
    /// or a person when too many turns or conversations are unanswered.
    fn unanswered(&self, ctx: &mut Ctx<'_, '_>, reply: Option<String>) -> Said {
        ctx.state.unanswered += 1;
        let h = &self.handoff;
        if h.unanswered_turns > 0 && ctx.state.unanswered >= h.unanswered_turns {
            return self.hand_over(ctx, HandoffReason::Unanswered);
        }
        if h.backlog_limit > 0 && ctx.turn.backlog >= h.backlog_limit {
            return self.hand_over(ctx, HandoffReason::Backlog);
        }
        let text = reply.unwrap_or_else(|| self.clarify.clone());
        (Some(self.say(ctx, &text)), "clarify".to_owned())
    }

    fn hand_over(&self, ctx: &mut Ctx<'_, '_>, reason: HandoffReason) -> Said {
        let priority = ctx.vip(self.vip_min_level);
        ctx.events.push(Event::handoff_requested(
            ctx.turn.msg_key,
            ctx.turn.openid,
            reason,
            priority,
            ctx.turn.now,
        ));
        ctx.state.flow = None;
        ctx.state.unanswered = 0;
        ctx.state.negative_run = 0;
        ctx.state.handed_off_at = Some(ctx.turn.now);
        let kf_account = if priority {
            self.handoff.vip_kf_account.clone()
        } else {
            None
        };
        (
            Some(Outgoing::TransferToAgent { kf_account }),
            format!("handoff:{}", reason.as_str()),
        )
    }

    fn flow_available(&self, flow: &Flow, shop: &Shop) -> bool {
        match flow.action {
            Action::OrderStatus => shop.orders.is_some(),
            Action::ReturnTicket => shop.orders.is_some() && shop.tickets.is_some(),
        }
    }

    async fn start_flow(
        &self,
        ctx: &mut Ctx<'_, '_>,
        flow: &Flow,
        text: &str,
    ) -> Result<Said, PortError> {
        ctx.state.flow = Some(FlowState {
            flow: flow.name.clone(),
            ..FlowState::default()
        });
        // An order number in the opening message fills the order slot.
        if let Some(slot) = flow.slots.iter().find(|s| s.kind == SlotKind::Order)
            && let Some(number) = order_number(text)
            && let Some(order) = self.own_order(ctx, number).await?
        {
            self.fill(ctx, &slot.name, order.order_id);
        }
        self.advance(ctx, flow).await
    }

    /// Asks for the next empty slot, or runs the flow's action when all
    /// are filled.
    async fn advance(&self, ctx: &mut Ctx<'_, '_>, flow: &Flow) -> Result<Said, PortError> {
        loop {
            let filled = ctx.state.flow.as_ref().map(|f| f.slots.clone());
            let filled = filled.unwrap_or_default();
            let Some(slot) = flow.slots.iter().find(|s| !filled.contains_key(&s.name)) else {
                return self.run_action(ctx, flow).await;
            };
            if slot.kind == SlotKind::Order {
                let orders = self.orders_of(ctx).await?;
                match orders.as_slice() {
                    [] => {
                        ctx.state.flow = None;
                        let text = "没有查到您名下的订单。如果是用其他微信号下的单，请用下单的微信号联系我们，或回复「人工」。";
                        return Ok(self.answered(
                            ctx,
                            text,
                            format!("flow:{}:no_orders", flow.name),
                        ));
                    }
                    [only] => {
                        let id = only.order_id.clone();
                        self.fill(ctx, &slot.name, id);
                        if let Some(done) = self.after_fill(ctx, flow, slot).await? {
                            return Ok(done);
                        }
                        continue;
                    }
                    several => {
                        let prompt = order_list_prompt(&self.render(ctx, &slot.prompt), several);
                        return Ok(self.ask(ctx, flow, slot, prompt));
                    }
                }
            }
            let prompt = self.render(ctx, &slot.prompt);
            return Ok(self.ask(ctx, flow, slot, prompt));
        }
    }

    fn ask(&self, ctx: &mut Ctx<'_, '_>, flow: &Flow, slot: &Slot, prompt: String) -> Said {
        if let Some(f) = ctx.state.flow.as_mut() {
            f.slot = Some(slot.name.clone());
        }
        let route = format!("flow:{}:ask:{}", flow.name, slot.name);
        self.plain(ctx, prompt, route)
    }

    fn fill(&self, ctx: &mut Ctx<'_, '_>, slot: &str, value: String) {
        if let Some(f) = ctx.state.flow.as_mut() {
            f.slots.insert(slot.to_owned(), value);
            f.retries = 0;
            f.slot = None;
        }
    }

    /// Checks that may end a flow as soon as a slot is filled (a return
    /// for an order that cannot be returned ends before asking why).
    async fn after_fill(
        &self,
        ctx: &mut Ctx<'_, '_>,
        flow: &Flow,
        slot: &Slot,
    ) -> Result<Option<Said>, PortError> {
        if flow.action != Action::ReturnTicket || slot.kind != SlotKind::Order {
            return Ok(None);
        }
        let Some(order) = self.slot_order(ctx).await? else {
            return Ok(None);
        };
        match self.return_refusal(&order, ctx.turn.now) {
            Some(why) => {
                ctx.state.flow = None;
                let route = format!("flow:{}:not_returnable", flow.name);
                Ok(Some(self.plain(ctx, why, route)))
            }
            None => Ok(None),
        }
    }

    async fn flow_step(&self, ctx: &mut Ctx<'_, '_>, text: &str) -> Result<Said, PortError> {
        let Some(state) = ctx.state.flow.clone() else {
            return Ok(self.unanswered(ctx, None));
        };
        let Some(flow) = self.flows.get(&state.flow) else {
            // The flow was removed from the configuration since.
            ctx.state.flow = None;
            return Ok(self.unanswered(ctx, None));
        };
        if self.is_cancel(text) {
            ctx.state.flow = None;
            let route = format!("flow:{}:cancelled", flow.name);
            return Ok(self.answered(ctx, &self.cancelled.clone(), route));
        }
        if let Some(reason) = self.wants_person(ctx, text) {
            return Ok(self.hand_over(ctx, reason));
        }
        let Some(slot) = state
            .slot
            .as_ref()
            .and_then(|name| flow.slots.iter().find(|s| &s.name == name))
        else {
            return self.advance(ctx, flow).await;
        };
        let faq = self.faq_answer(text);
        let other = self.requested_flow(ctx).filter(|f| f.name != flow.name);
        // A free-text slot takes almost anything, so a question the FAQ
        // answers or a sure request for another flow is not taken as the
        // answer ("运费谁出？" is not a return reason).
        let free_text = matches!(slot.kind, SlotKind::Text { .. });
        let value = if free_text && (faq.is_some() || other.is_some()) {
            None
        } else {
            self.validate(ctx, slot, text).await?
        };
        if let Some(value) = value {
            self.fill(ctx, &slot.name, value);
            if let Some(done) = self.after_fill(ctx, flow, slot).await? {
                return Ok(done);
            }
            return self.advance(ctx, flow).await;
        }
        if let Some(other) = other {
            return self.start_flow(ctx, other, text).await;
        }
        // Not an answer to the question: maybe a question of its own.
        let prompt = self.slot_prompt(ctx, slot).await?;
        if let Some((id, answer)) = faq {
            let route = format!("flow:{}:faq:{id}", flow.name);
            return Ok(self.plain(ctx, format!("{answer}\n\n{prompt}"), route));
        }
        // Asking for the same flow again: asked again, not a wrong answer.
        if self
            .requested_flow(ctx)
            .is_some_and(|f| f.name == flow.name)
        {
            return Ok(self.ask(ctx, flow, slot, prompt));
        }
        let retries = state.retries + 1;
        if retries > slot.retries {
            ctx.state.flow = None;
            let (reply, route) = self.unanswered(ctx, Some(self.flow_failed.clone()));
            let route = if route == "clarify" {
                format!("flow:{}:failed", flow.name)
            } else {
                route
            };
            return Ok((reply, route));
        }
        if let Some(f) = ctx.state.flow.as_mut() {
            f.retries = retries;
        }
        let reply = format!("{}\n{prompt}", self.render(ctx, &slot.invalid));
        // A retry is an answer (the bot asked something), not an
        // unanswered turn.
        Ok(self.plain(ctx, reply, format!("flow:{}:retry", flow.name)))
    }

    /// The slot's question; for an order slot with the customer's recent
    /// orders listed to pick from.
    async fn slot_prompt(&self, ctx: &Ctx<'_, '_>, slot: &Slot) -> Result<String, PortError> {
        if slot.kind != SlotKind::Order {
            return Ok(self.render(ctx, &slot.prompt));
        }
        let orders = self.orders_of(ctx).await?;
        Ok(order_list_prompt(&self.render(ctx, &slot.prompt), &orders))
    }

    /// The slot's value in `text`, if it holds one.
    async fn validate(
        &self,
        ctx: &mut Ctx<'_, '_>,
        slot: &Slot,
        text: &str,
    ) -> Result<Option<String>, PortError> {
        match &slot.kind {
            SlotKind::Order => {
                if let Some(number) = order_number(text) {
                    return Ok(self.own_order(ctx, number).await?.map(|o| o.order_id));
                }
                // A position in the list we showed.
                let Ok(pick) = text.trim_end_matches(['.', '。', '号']).parse::<usize>() else {
                    return Ok(None);
                };
                let orders = self.orders_of(ctx).await?;
                Ok(pick
                    .checked_sub(1)
                    .filter(|i| *i < LISTED_ORDERS)
                    .and_then(|i| orders.get(i))
                    .map(|o| o.order_id.clone()))
            }
            SlotKind::Text { pattern, choices } => {
                if !choices.is_empty() {
                    return Ok(choices
                        .iter()
                        .find(|c| text.contains(c.as_str()))
                        .cloned()
                        .or_else(|| {
                            let n = text.parse::<usize>().ok()?;
                            choices.get(n.checked_sub(1)?).cloned()
                        }));
                }
                match pattern {
                    Some(re) if !re.is_match(text) => Ok(None),
                    _ if text.is_empty() => Ok(None),
                    _ => Ok(Some(text.to_owned())),
                }
            }
        }
    }

    async fn orders_of(&self, ctx: &Ctx<'_, '_>) -> Result<Vec<Order>, PortError> {
        match &ctx.shop.orders {
            Some(orders) => orders.orders_of(ctx.turn.openid).await,
            None => Ok(Vec::new()),
        }
    }

    /// The order, only if it belongs to this customer.
    async fn own_order(&self, ctx: &Ctx<'_, '_>, id: &str) -> Result<Option<Order>, PortError> {
        let Some(orders) = &ctx.shop.orders else {
            return Ok(None);
        };
        Ok(orders
            .order(id)
            .await?
            .filter(|o| &o.openid == ctx.turn.openid))
    }

    async fn slot_order(&self, ctx: &Ctx<'_, '_>) -> Result<Option<Order>, PortError> {
        let id = ctx
            .state
            .flow
            .as_ref()
            .and_then(|f| f.slots.get("order_id"))
            .cloned();
        match id {
            Some(id) => self.own_order(ctx, &id).await,
            None => Ok(None),
        }
    }

    async fn run_action(&self, ctx: &mut Ctx<'_, '_>, flow: &Flow) -> Result<Said, PortError> {
        let order = self.slot_order(ctx).await?;
        let slots = ctx.state.flow.take().map(|f| f.slots).unwrap_or_default();
        let route = format!("flow:{}:done", flow.name);
        let Some(order) = order else {
            return Ok(self.unanswered(ctx, None));
        };
        let text = match flow.action {
            Action::OrderStatus => order_status_text(&order),
            Action::ReturnTicket => {
                if let Some(why) = self.return_refusal(&order, ctx.turn.now) {
                    why
                } else {
                    let Some(tickets) = &ctx.shop.tickets else {
                        return Ok(self.unanswered(ctx, None));
                    };
                    let reason = slots.get("reason").cloned().unwrap_or_default();
                    let ticket = NewTicket {
                        openid: ctx.turn.openid.clone(),
                        order_id: order.order_id.clone(),
                        kind: "return".to_owned(),
                        reason,
                        created_at: ctx.turn.now,
                        request_key: ctx.turn.msg_key.to_owned(),
                    };
                    let id = tickets.create(&ticket).await?;
                    ctx.events.push(Event::ticket_created(
                        ctx.turn.msg_key,
                        ctx.turn.openid,
                        &id,
                        &order.order_id,
                        "return",
                        ctx.turn.now,
                    ));
                    format!(
                        "已为您提交订单 {} 的退货申请，售后单号 {id}。审核一般在24小时内完成，通过后请按「我的订单」里显示的地址寄回，并填写快递单号。",
                        order.order_id
                    )
                }
            }
        };
        Ok(self.plain(ctx, text, route))
    }

    /// Why `order` cannot be returned now, or `None` when it can. "Now" is
    /// the configured policy time when one is pinned (the demo shop's
    /// snapshot), else the message's time.
    fn return_refusal(&self, order: &Order, message_time: i64) -> Option<String> {
        let id = &order.order_id;
        match order.status {
            OrderStatus::PendingPayment | OrderStatus::Paid => Some(format!(
                "订单 {id} 还没有发货，不需要退货：在「我的订单」里直接取消即可，已付的款会原路退回。"
            )),
            OrderStatus::Shipped => Some(format!(
                "订单 {id} 还在运输途中，可以拒收包裹，退回仓库后即原路退款；也可以签收后再申请退货。"
            )),
            OrderStatus::Refunding | OrderStatus::Refunded | OrderStatus::Cancelled => {
                Some(format!(
                    "订单 {id} {}，不需要再申请退货。",
                    order.status.display_zh()
                ))
            }
            OrderStatus::Other => Some(format!(
                "订单 {id} 正在处理中，退货需要客服核实，请回复「人工」由客服为您办理。"
            )),
            OrderStatus::Delivered => {
                let Some(delivered) = order
                    .delivered_at
                    .as_deref()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                else {
                    // The window cannot be judged: a person decides.
                    return Some(format!(
                        "订单 {id} 的签收时间暂时查不到，请回复「人工」由客服为您办理退货。"
                    ));
                };
                let now = self.policy_time.unwrap_or(message_time);
                let days = (now - delivered.as_second()) / 86_400;
                (days >= self.return_window_days).then(|| {
                    format!(
                        "订单 {id} 签收已超过{}天，不能申请无理由退货了；如果是质量问题，请回复「人工」由客服为您处理。",
                        self.return_window_days
                    )
                })
            }
        }
    }
}

/// How many recent orders an order question lists.
const LISTED_ORDERS: usize = 5;

fn order_list_prompt(prompt: &str, orders: &[Order]) -> String {
    let list = orders
        .iter()
        .take(LISTED_ORDERS)
        .enumerate()
        .map(|(i, o)| {
            format!(
                "{}. {} {}（{}）",
                i + 1,
                o.order_id,
                items_summary(o),
                o.status.display_zh()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    if list.is_empty() {
        return prompt.to_owned();
    }
    format!("{prompt}\n{list}\n请回复序号或13位订单号。")
}

fn items_summary(order: &Order) -> String {
    let names: Vec<&str> = order.items.iter().map(|i| i.name.as_str()).collect();
    match names.as_slice() {
        [] => "（无商品）".to_owned(),
        [one] => (*one).to_owned(),
        [first, rest @ ..] => format!("{first} 等{}件", rest.len() + 1),
    }
}

fn order_status_text(order: &Order) -> String {
    let mut text = format!(
        "您的订单 {}（{}）：{}。",
        order.order_id,
        items_summary(order),
        order.status.display_zh()
    );
    if let (Some(courier), Some(tracking)) = (&order.courier, &order.tracking_no) {
        text.push_str(&format!("{courier}快递，运单号 {tracking}。"));
    }
    match order.status {
        OrderStatus::PendingPayment => {
            text.push_str("下单后30分钟内未付款会自动取消，请尽快完成支付哦。")
        }
        OrderStatus::Paid => text.push_str("现货商品付款后48小时内发货，请耐心等待。"),
        OrderStatus::Shipped => text.push_str("可以在快递公司的官网或小程序用运单号查看实时物流。"),
        _ => {}
    }
    text
}
