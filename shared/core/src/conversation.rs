//! Conversations: who a user is ([`OpenId`]), what the dialog engine
//! remembers about them between messages ([`ConversationState`]), and the
//! port that keeps it ([`ConversationStore`]).
//!
//! Two messages from one user can be handled at the same time (two
//! Lambda instances, or two requests in `wca serve`). The store therefore
//! offers compare-and-set on a version instead of a plain put: a writer
//! that read version 3 can only write version 4, and a writer that lost the
//! race is told so and reads again, so no update is lost.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::PortError;

/// The longest OpenID we accept (WeChat's are 28 characters; the demo's
/// are shorter).
pub const MAX_OPENID_LEN: usize = 128;

/// A WeChat user's OpenID: the sender of a message, the key of their
/// conversation, profile and orders.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OpenId(String);

/// A string that is not an acceptable id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {what}: {reason}")]
pub struct IdError {
    /// Which kind of id.
    pub what: &'static str,
    /// Why it was refused.
    pub reason: &'static str,
}

impl OpenId {
    /// Accepts 1 to [`MAX_OPENID_LEN`] bytes of printable ASCII without
    /// spaces and not starting with `~`: what WeChat sends, and what can be
    /// a store key on every adapter (`~` keys are reserved for records such
    /// as [`BOARD_KEY`], which no sender may write).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bad = |reason| IdError {
            what: "OpenID",
            reason,
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > MAX_OPENID_LEN {
            return Err(bad("longer than 128 bytes"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("holds characters other than printable ASCII"));
        }
        if s.starts_with('~') {
            return Err(bad("starts with `~`, which is reserved"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The key of the board of unresolved conversations ([`BOARD_KEY`]).
    pub fn board() -> Self {
        Self(BOARD_KEY.to_owned())
    }

    /// Whether this is [`OpenId::board`], not a user.
    pub fn is_board(&self) -> bool {
        self.0 == BOARD_KEY
    }

    /// The id as WeChat spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OpenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for OpenId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<OpenId> for String {
    fn from(id: OpenId) -> String {
        id.0
    }
}

/// What the bot sends back: the domain's reply, which the protocol layer
/// maps to a passive XML reply now and to a customer-service API message
/// later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outgoing {
    /// A text message.
    Text {
        /// What it says.
        content: String,
    },
    /// Hand the conversation to human agents (WeChat's
    /// `transfer_customer_service`).
    TransferToAgent {
        /// A specific agent account (`kf2001@gh_...`), e.g. the VIP desk;
        /// any free agent when `None`.
        kf_account: Option<String>,
    },
}

impl Outgoing {
    /// A text reply.
    pub fn text(content: impl Into<String>) -> Self {
        Outgoing::Text {
            content: content.into(),
        }
    }

    /// `text` or `transfer_customer_service`, as counted in events.
    pub fn kind_label(&self) -> &'static str {
        match self {
            Outgoing::Text { .. } => "text",
            Outgoing::TransferToAgent { .. } => "transfer_customer_service",
        }
    }
}

/// A multi-turn flow in progress (order lookup, a return, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlowState {
    /// The flow's name in the dialog configuration.
    pub flow: String,
    /// The slot the bot last asked for; `None` before the first question.
    #[serde(default)]
    pub slot: Option<String>,
    /// Slots filled so far, by name.
    #[serde(default)]
    pub slots: BTreeMap<String, String>,
    /// Invalid answers given to the current slot's question.
    #[serde(default)]
    pub retries: u32,
}

/// What the dialog engine remembers about one user between messages.
/// Every field has a default, so state written by an older version of wca
/// still loads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConversationState {
    /// The flow in progress, if any.
    pub flow: Option<FlowState>,
    /// Consecutive turns the bot could not answer.
    pub unanswered: u32,
    /// Consecutive turns with negative sentiment.
    pub negative_run: u32,
    /// When the conversation was last handed to a person (Unix seconds).
    pub handed_off_at: Option<i64>,
    /// When the user last wrote (Unix seconds).
    pub last_active: i64,
    /// Messages handled in this conversation.
    pub turns: u64,
    /// Only on the shared board record ([`BOARD_KEY`]): the conversations
    /// the bot has left unresolved, by OpenID, with when they became so.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unresolved: BTreeMap<String, i64>,
    /// The last messages that advanced the conversation (at most
    /// [`LastTurn::KEPT`], oldest first), each with what the dialog
    /// answered it with.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub last_turns: Vec<LastTurn>,
}

/// A message that advanced a conversation, with the dialog's answer.
///
/// Where a message's writes are not one transaction (DynamoDB beside
/// EventBridge), a failure after the conversation was written but before
/// the answer was recorded makes WeChat retry a message whose turn is
/// already taken, perhaps after more messages of the same user took
/// theirs. The retry finds its own key among the last turns and is answered
/// as the first delivery was, instead of moving the conversation on a
/// second time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTurn {
    /// The message's dedup key.
    pub msg_key: String,
    /// The reply the dialog chose (before the outbound filter, which is
    /// applied again).
    pub reply: Option<Outgoing>,
    /// The dialog's events (hand-overs, tickets), as JSON.
    pub events: Vec<serde_json::Value>,
    /// How the reply was chosen.
    pub route: String,
}

impl LastTurn {
    /// How many turns a conversation remembers: more than a user sends
    /// within WeChat's retries of one message.
    pub const KEPT: usize = 8;

    /// The turn `msg_key` took: its reply, events and route.
    pub fn new(
        msg_key: &str,
        reply: Option<Outgoing>,
        events: &[crate::Event],
        route: &str,
    ) -> Result<Self, PortError> {
        Ok(Self {
            msg_key: msg_key.to_owned(),
            reply,
            events: events
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()
                .map_err(|e| PortError::Rejected(format!("an event as JSON: {e}")))?,
            route: route.to_owned(),
        })
    }

    /// The reply, events and route, as recorded.
    pub fn answer(&self) -> Result<(Option<Outgoing>, Vec<crate::Event>, String), PortError> {
        let events = self
            .events
            .iter()
            .map(|event| serde_json::from_value(event.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| PortError::Corrupt(format!("the last turn's events: {e}")))?;
        Ok((self.reply.clone(), events, self.route.clone()))
    }
}

impl ConversationState {
    /// The turn `msg_key` took, if it is among the last ones.
    pub fn turn_of(&self, msg_key: &str) -> Option<&LastTurn> {
        self.last_turns.iter().find(|turn| turn.msg_key == msg_key)
    }

    /// Remembers `turn`, forgetting the oldest beyond [`LastTurn::KEPT`].
    pub fn remember(&mut self, turn: LastTurn) {
        self.last_turns.push(turn);
        let excess = self.last_turns.len().saturating_sub(LastTurn::KEPT);
        self.last_turns.drain(..excess);
    }
}

/// The reserved key under which the board of unresolved conversations is
/// kept in the [`ConversationStore`] (`~` never occurs in an OpenID WeChat
/// issues).
pub const BOARD_KEY: &str = "~unresolved-board";

/// A conversation as read from the store: its state and the version a
/// [`ConversationStore::compare_and_set`] must name to replace it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Versioned {
    /// 0 when nothing was ever stored for the user; each successful write
    /// adds one.
    pub version: u64,
    /// The stored state, or the default one when there is none or it
    /// expired.
    pub state: ConversationState,
}

/// The version a [`ConversationStore::compare_and_set`] writes over
/// `expected`; every adapter refuses the one write that would overflow.
pub fn next_version(expected: u64) -> Result<u64, PortError> {
    expected
        .checked_add(1)
        .ok_or_else(|| PortError::Rejected("conversation version overflows".to_owned()))
}

/// Keeps each user's [`ConversationState`], versioned, until it expires.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// The user's conversation at `now`. An expired one reads as the
    /// default state but keeps its version, so a writer that read it before
    /// it expired still conflicts with one that read it after.
    async fn get(&self, openid: &OpenId, now: i64) -> Result<Versioned, PortError>;

    /// Stores `state` as version `expected + 1` if the stored version is
    /// still `expected` (0: nothing stored); `Ok(false)`, changing nothing,
    /// when another writer got there first. The state may be forgotten
    /// after `expires_at`.
    async fn compare_and_set(
        &self,
        openid: &OpenId,
        expected: u64,
        state: &ConversationState,
        expires_at: i64,
    ) -> Result<bool, PortError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openids_are_printable_ascii_of_bounded_length() {
        assert!(OpenId::parse("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o").is_ok());
        assert!(OpenId::parse("o_demo_user01").is_ok());
        for bad in ["", "o user", "o\nuser", "用户", &"x".repeat(129), BOARD_KEY] {
            assert!(OpenId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn openids_refuse_bad_values_when_deserialised() {
        let ok: OpenId = serde_json::from_str("\"o_demo_user01\"").expect("valid");
        assert_eq!(ok.as_str(), "o_demo_user01");
        assert!(serde_json::from_str::<OpenId>("\"a b\"").is_err());
    }

    #[test]
    fn state_written_without_newer_fields_still_loads() {
        let state: ConversationState =
            serde_json::from_str(r#"{"unanswered": 2}"#).expect("old state loads");
        assert_eq!(state.unanswered, 2);
        assert_eq!(state.flow, None);
    }
}
