//! The conversation use case: everything that decides what wca says.
//!
//! The webhook owns the protocol (verify, decrypt, parse, dedup, archive,
//! seal the reply); the later async responder and the tests call the same
//! [`Pipeline::handle`]:
//!
//! ```text
//! message + conversation state (per OpenID, versioned)
//!   -> filter(in)    ComplianceHit recorded; the message is still answered
//!   -> understand    intent + sentiment (tract)
//!   -> decide        wca_dialog: flow, rules, intent route, FAQ, hand-over
//!   -> store         compare-and-set of the new state; a lost race decides again
//!   -> filter(out)   block -> fallback, mask -> masked
//!   = Outcome        reply, events, route
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use wca_converse::{Message, Pipeline};
//! use wca_core::{Outgoing, memory::MemoryConversationStore};
//! use wca_dialog::{Dialog, Input, Shop};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let pipeline = Pipeline::new(
//!     Arc::new(Dialog::defaults()),
//!     wca_filter::ReloadingFilter::new(
//!         wca_filter::DictionaryFiles { builtin: true, deny: vec![], allow: vec![], options: Default::default() },
//!         std::time::Duration::from_secs(60),
//!     ).unwrap(),
//!     "稍后由人工客服回复您。".to_owned(),
//!     None, // no intent model: rules, FAQ and clarifying questions only
//!     Shop::default(),
//!     Arc::new(MemoryConversationStore::default()),
//! );
//! let message = Message {
//!     msg_key: "msg:1",
//!     openid: "o_demo_user01",
//!     msg_type: "text",
//!     create_time: 1_795_140_000,
//!     input: Input::Text("你好"),
//! };
//! let outcome = pipeline.handle(&message, 1_795_140_000).await.unwrap();
//! assert!(matches!(outcome.reply, Some(Outgoing::Text { .. })));
//! # });
//! ```

use std::sync::Arc;

use wca_core::{
    ConversationState, ConversationStore, Direction, Event, LastTurn, OpenId, Outgoing, PortError,
    Understanding,
};
use wca_dialog::{Dialog, Input, Shop, Turn};
use wca_filter::{Action, ReloadingFilter};

/// How many times a turn is decided again after losing a race for the
/// conversation to a concurrent message of the same user. Between attempts
/// the loser backs off for a jittered, doubling pause (1 ms up to 64 ms),
/// so a burst of messages from one user is decided one after another
/// instead of all retrying in lockstep.
const MAX_ATTEMPTS: u32 = 16;

/// The pause before attempt `attempt` (1-based) of the message `key`.
fn backoff(key: &str, attempt: u32) -> std::time::Duration {
    let cap_ms = 1u64 << attempt.min(6);
    // FNV-1a of the key and attempt: a spread that differs per message
    // without a random number generator.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain(attempt.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let micros = cap_ms * 500 + h % (cap_ms * 500);
    std::time::Duration::from_micros(micros)
}

/// One inbound message, protocol-free.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The dedup key (`msg:{MsgId}`, ...): event ids derive from it.
    pub msg_key: &'a str,
    /// The sender as WeChat wrote it (checked here: a sender that is not a
    /// valid OpenID is archived and counted, but gets no dialog).
    pub openid: &'a str,
    /// The kind label (`text`, `event:subscribe`, ...).
    pub msg_type: &'a str,
    /// WeChat's CreateTime.
    pub create_time: i64,
    /// What was sent.
    pub input: Input<'a>,
}

/// What the pipeline decided for one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The reply, already through the outbound filter.
    pub reply: Option<Outgoing>,
    /// `MessageReceived`, `ComplianceHit`, `HandoffRequested`,
    /// `TicketCreated`, `ReplySent`: for the event sink.
    pub events: Vec<Event>,
    /// How the reply was chosen (see [`wca_dialog::Decision::route`]).
    pub route: String,
}

/// The conversation use case with its models, filter and ports.
#[derive(Clone)]
pub struct Pipeline {
    dialog: Arc<Dialog>,
    filter: ReloadingFilter,
    fallback: String,
    nlp: Option<Arc<wca_nlp::Nlp>>,
    shop: Shop,
    conversations: Arc<dyn ConversationStore>,
}

/// Intent and sentiment of a text, as far as the models could tell.
struct Understood {
    intent: Option<(String, f32)>,
    sentiment: Option<(String, f32)>,
}

impl Pipeline {
    /// A pipeline over a dialog, a filter (with the text sent instead of a
    /// blocked reply), optional models, the shop's systems and the
    /// conversation store.
    pub fn new(
        dialog: Arc<Dialog>,
        filter: ReloadingFilter,
        fallback: String,
        nlp: Option<Arc<wca_nlp::Nlp>>,
        shop: Shop,
        conversations: Arc<dyn ConversationStore>,
    ) -> Self {
        Self {
            dialog,
            filter,
            fallback,
            nlp,
            shop,
            conversations,
        }
    }

    /// This pipeline over another conversation store (a message's
    /// [`wca_core::StagedConversations`]); everything else is shared.
    pub fn with_conversations(&self, conversations: Arc<dyn ConversationStore>) -> Self {
        Self {
            conversations,
            ..self.clone()
        }
    }

    /// The dialog in force.
    pub fn dialog(&self) -> &Dialog {
        &self.dialog
    }

    /// Decides the reply to `message` at `now` and writes the conversation
    /// to the pipeline's store (the webhook gives it a
    /// [`wca_core::StagedConversations`], which only records the write for
    /// the message's commit). Fails only when a port does; nothing is
    /// half-stored then except idempotent writes (a ticket for this message
    /// key, the state, the advisory board), so the caller can let WeChat
    /// retry.
    pub async fn handle(&self, message: &Message<'_>, now: i64) -> Result<Outcome, PortError> {
        let text = match message.input {
            Input::Text(t) => Some(t),
            _ => None,
        };
        let understood = text.map(|t| self.understand(message.msg_key, t));
        let mut events = vec![Event::message_received(
            message.msg_key,
            message.openid,
            message.msg_type,
            message.create_time,
            understood.as_ref().map(|u| Understanding {
                intent: u.intent.as_ref().map(|(l, _)| l.clone()),
                sentiment: u.sentiment.as_ref().map(|(l, _)| l.clone()),
            }),
        )];
        let filter = self.filter.current();
        if let Some(text) = text {
            let verdict = filter.check(text);
            if let Some(action) = verdict.action() {
                events.push(Event::compliance_hit(
                    message.msg_key,
                    message.openid,
                    Direction::Inbound,
                    action.as_str(),
                    "recorded",
                    verdict.compliance_words(),
                    now,
                ));
            }
        }
        let Ok(openid) = OpenId::parse(message.openid) else {
            tracing::warn!(
                msg_key = message.msg_key,
                "sender is not a valid OpenID; no dialog"
            );
            return Ok(Outcome {
                reply: None,
                events,
                route: "none".to_owned(),
            });
        };
        let (mut reply, dialog_events, route) = self
            .decide(message, &openid, understood.as_ref(), now)
            .await?;
        events.extend(dialog_events);

        // Outbound: nothing we send carries a blocked word.
        if let Some(Outgoing::Text { content }) = &mut reply {
            let verdict = filter.check(content);
            if let Some(action) = verdict.action() {
                let outcome = match action {
                    Action::Block => "blocked",
                    Action::Mask => "masked",
                    Action::Flag => "flagged",
                };
                events.push(Event::compliance_hit(
                    message.msg_key,
                    message.openid,
                    Direction::Outbound,
                    action.as_str(),
                    outcome,
                    verdict.compliance_words(),
                    now,
                ));
                tracing::warn!(
                    msg_key = message.msg_key,
                    outcome,
                    "reply held dictionary words"
                );
                match action {
                    Action::Block => self.fallback.clone_into(content),
                    Action::Mask => *content = verdict.masked(content),
                    Action::Flag => {}
                }
            }
        }
        if let Some(reply) = &reply {
            events.push(Event::reply_sent(
                message.msg_key,
                message.openid,
                reply.kind_label(),
                now,
            ));
        }
        Ok(Outcome {
            reply,
            events,
            route,
        })
    }

    /// Runs the dialog on the stored conversation and writes the result,
    /// deciding again when a concurrent message of the same user changed
    /// the conversation in between. A message that already took its turn
    /// (it is among the conversation's last turns) is answered as then.
    async fn decide(
        &self,
        message: &Message<'_>,
        openid: &OpenId,
        understood: Option<&Understood>,
        now: i64,
    ) -> Result<(Option<Outgoing>, Vec<Event>, String), PortError> {
        let ttl = self.dialog.conversation_ttl_secs();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(message.msg_key, attempt)).await;
            }
            let stored = self.conversations.get(openid, now).await?;
            if let Some(turn) = stored.state.turn_of(message.msg_key) {
                tracing::info!(
                    msg_key = message.msg_key,
                    "this message already took its turn; answered as before"
                );
                return turn.answer();
            }
            let backlog = match message.input {
                Input::Text(_) => self.backlog(now).await?,
                _ => 0,
            };
            let turn = Turn {
                msg_key: message.msg_key,
                openid,
                input: message.input,
                intent: understood.and_then(|u| u.intent.as_ref().map(|(l, p)| (l.as_str(), *p))),
                sentiment_score: understood.and_then(|u| u.sentiment.as_ref().map(|(_, s)| *s)),
                backlog,
                now,
            };
            let was_unresolved = stored.state.unanswered > 0;
            let mut decision = self.dialog.respond(&turn, stored.state, &self.shop).await?;
            let is_unresolved = decision.state.unanswered > 0;
            decision.state.remember(LastTurn::new(
                message.msg_key,
                decision.reply.clone(),
                &decision.events,
                &decision.route,
            )?);
            if self
                .conversations
                .compare_and_set(openid, stored.version, &decision.state, now + ttl)
                .await?
            {
                // The board is advisory: the turn is decided and stored, so
                // a failure to update it must not make WeChat retry it.
                if was_unresolved != is_unresolved
                    && let Err(e) = self.mark_unresolved(openid, is_unresolved, now).await
                {
                    tracing::warn!(msg_key = message.msg_key, error = %e, "board of unresolved conversations not updated");
                }
                tracing::info!(msg_key = message.msg_key, route = %decision.route, "decided");
                return Ok((decision.reply, decision.events, decision.route));
            }
            tracing::debug!(
                msg_key = message.msg_key,
                "conversation changed meanwhile; deciding again"
            );
        }
        Err(PortError::Unavailable(format!(
            "conversation kept changing under {MAX_ATTEMPTS} attempts"
        )))
    }

    /// How many conversations the bot has left unresolved and that are
    /// still live (active within the dialog's idle timeout).
    async fn backlog(&self, now: i64) -> Result<usize, PortError> {
        if self.dialog.backlog_limit() == 0 {
            return Ok(0);
        }
        let board = self.conversations.get(&OpenId::board(), now).await?;
        let live_after = now - self.dialog.idle_timeout_secs();
        Ok(board
            .state
            .unresolved
            .values()
            .filter(|since| **since > live_after)
            .count())
    }

    /// Adds or removes `openid` on the board of unresolved conversations,
    /// dropping entries that went idle.
    async fn mark_unresolved(
        &self,
        openid: &OpenId,
        unresolved: bool,
        now: i64,
    ) -> Result<(), PortError> {
        if self.dialog.backlog_limit() == 0 {
            return Ok(());
        }
        let key = OpenId::board();
        let live_after = now - self.dialog.idle_timeout_secs();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(openid.as_str(), attempt)).await;
            }
            let stored = self.conversations.get(&key, now).await?;
            let mut board: ConversationState = stored.state;
            board.unresolved.retain(|_, since| *since > live_after);
            if unresolved {
                board.unresolved.insert(openid.as_str().to_owned(), now);
            } else {
                board.unresolved.remove(openid.as_str());
            }
            let expires = now + self.dialog.conversation_ttl_secs();
            if self
                .conversations
                .compare_and_set(&key, stored.version, &board, expires)
                .await?
            {
                return Ok(());
            }
        }
        // The board is advisory: a busy board must not fail a message.
        tracing::warn!("board of unresolved conversations too busy to update");
        Ok(())
    }

    /// Intent and sentiment of a text. A model failure is logged, never
    /// fatal: the message is still archived, answered and counted.
    fn understand(&self, key: &str, text: &str) -> Understood {
        let Some(nlp) = self.nlp.as_ref() else {
            return Understood {
                intent: None,
                sentiment: None,
            };
        };
        let intent = nlp.classify(text);
        let sentiment = nlp.sentiment(text);
        if let Err(e) = intent.as_ref().and(sentiment.as_ref()) {
            tracing::warn!(msg_key = %key, error = %e, "classification failed");
        }
        Understood {
            intent: intent.ok().map(|i| (i.label, i.confidence)),
            sentiment: sentiment.ok().map(|s| (s.label, s.score)),
        }
    }
}
