//! The ports: narrow traits for everything that stores or moves data.
//!
//! Each takes and returns domain types and [`PortError`], never a client
//! library's types, so adapters can be swapped without touching the logic.
//! Times are Unix seconds passed in by the caller (from a [`crate::Clock`]),
//! which keeps adapters free of hidden clocks and lets tests move time.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Direction, Event, OpenId, Outgoing};

/// What can go wrong behind a port.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The backing store or queue could not be reached or refused the call;
    /// retrying later may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store refused this input (too large, bad key); retrying will not help.
    #[error("rejected by the store: {0}")]
    Rejected(String),
}

/// One inbound message as it arrived, kept for audit and re-processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedMessage {
    /// The deduplication key (`msg:{MsgId}` or `evt:{openid}:{CreateTime}`).
    pub key: String,
    /// The sender's OpenID.
    pub openid: String,
    /// The message kind label, e.g. `text` or `event:subscribe`.
    pub msg_type: String,
    /// WeChat's `CreateTime`.
    pub create_time: i64,
    /// When we received it.
    pub received_at: i64,
    /// The decrypted XML exactly as WeChat sent it.
    pub raw_xml: String,
    /// The parsed fields, as JSON.
    pub parsed: serde_json::Value,
    /// After this instant the message is deleted (retention).
    pub expires_at: i64,
}

impl ArchivedMessage {
    /// The text a customer wrote: a text message's content, or a voice
    /// message's speech recognition; `None` for anything else.
    pub fn text(&self) -> Option<&str> {
        let field = match self.parsed.get("type")?.as_str()? {
            "text" => "content",
            "voice" => "recognition",
            _ => return None,
        };
        self.parsed.get(field)?.as_str().filter(|t| !t.is_empty())
    }
}

/// A reply we sent, archived beside the message it answers so that the
/// audit trail holds both sides of every conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedReply {
    /// The key of the message it answers (one reply per message).
    pub key: String,
    /// The recipient's OpenID.
    pub openid: String,
    /// When we sent it.
    pub sent_at: i64,
    /// What we sent, after the outbound filter.
    pub reply: Outgoing,
    /// How the dialog chose it (`faq:shipping-fee`, `flow:return:done`,
    /// `handoff:keyword`, ...): why the bot said what it said.
    pub route: String,
    /// After this instant the reply is deleted (retention).
    pub expires_at: i64,
}

/// One entry of a user's history: a message they sent or a reply we sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Archived {
    /// From the customer.
    Message(ArchivedMessage),
    /// From us.
    Reply(ArchivedReply),
}

impl Archived {
    /// Which way it went.
    pub fn direction(&self) -> Direction {
        match self {
            Archived::Message(_) => Direction::Inbound,
            Archived::Reply(_) => Direction::Outbound,
        }
    }

    /// The key of the inbound message (for a reply: the one it answers).
    pub fn key(&self) -> &str {
        match self {
            Archived::Message(m) => &m.key,
            Archived::Reply(r) => &r.key,
        }
    }

    /// When it was received or sent: the time history is ordered by.
    pub fn at(&self) -> i64 {
        match self {
            Archived::Message(m) => m.received_at,
            Archived::Reply(r) => r.sent_at,
        }
    }

    /// The customer's text, or our reply's text; `None` for anything else.
    pub fn text(&self) -> Option<&str> {
        match self {
            Archived::Message(m) => m.text(),
            Archived::Reply(r) => match &r.reply {
                Outgoing::Text { content } => Some(content),
                Outgoing::TransferToAgent { .. } => None,
            },
        }
    }

    /// The order of history: by time, then message key, a reply after the
    /// message it answers.
    pub fn sort_key(&self) -> (i64, &str, u8) {
        let side = match self {
            Archived::Message(_) => 0,
            Archived::Reply(_) => 1,
        };
        (self.at(), self.key(), side)
    }
}

/// Keeps every inbound message and every reply for a configurable
/// retention, and each user's history in both directions.
#[async_trait]
pub trait MessageArchive: Send + Sync {
    /// Stores `msg` unless one with the same key is already archived.
    /// Returns `true` when this call stored it.
    async fn put(&self, msg: &ArchivedMessage) -> Result<bool, PortError>;
    /// Stores the reply to the message `reply.key` unless one is already
    /// archived (a retried message keeps its first reply). Returns `true`
    /// when this call stored it.
    async fn put_reply(&self, reply: &ArchivedReply) -> Result<bool, PortError>;
    /// The message archived under `key` from `openid`, unless it has
    /// expired at `now`.
    async fn get(
        &self,
        openid: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<ArchivedMessage>, PortError>;
    /// The latest `limit` messages and replies of `openid` that have not
    /// expired at `now`, newest first (see [`Archived::sort_key`]).
    /// Messages from a sender that is not a valid [`OpenId`] are archived
    /// but have no history.
    async fn history(
        &self,
        openid: &OpenId,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Archived>, PortError>;
    /// Deletes messages and replies that expired at or before `now`;
    /// returns how many. Stores with native expiry (DynamoDB TTL) may
    /// return 0.
    async fn purge_expired(&self, now: i64) -> Result<u64, PortError>;
}

/// The state of an idempotency key after [`IdempotencyStore::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Nobody had claimed the key (or a claim's lease ran out): the caller
    /// now owns it and must `complete` or `release` it.
    Fresh,
    /// Another delivery holds the key and has not finished.
    InFlight,
    /// The work was done; here is its recorded result.
    Done(String),
}

/// Makes repeated deliveries of the same thing do the work once.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for `lease_secs` unless it is claimed or done.
    async fn begin(&self, key: &str, now: i64, lease_secs: i64) -> Result<Begin, PortError>;
    /// Records the result of the work under `key`, kept `ttl_secs`.
    async fn complete(
        &self,
        key: &str,
        result: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<(), PortError>;
    /// Gives up a claim after a failure, so a retry can take it at once.
    async fn release(&self, key: &str) -> Result<(), PortError>;
}

/// Named counters (messages per day, type, hour, ...).
#[async_trait]
pub trait Counters: Send + Sync {
    /// Adds 1 to every key in `keys`, atomically and at most once per
    /// `once_id`. Returns `false` when `once_id` was already applied. The
    /// marker for `once_id` may be forgotten after `marker_expires_at`.
    async fn add_once(
        &self,
        once_id: &str,
        keys: &[String],
        marker_expires_at: i64,
    ) -> Result<bool, PortError>;
    /// The value of one counter (0 when never incremented).
    async fn get(&self, key: &str) -> Result<u64, PortError>;
}

/// Where every step publishes what happened.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes `events`; returns once they are durably accepted.
    async fn emit(&self, events: &[Event]) -> Result<(), PortError>;
}

/// The record of every event, each id written once (analytics' audit trail).
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Stores `event` unless an event with its id is stored; `true` when
    /// this call stored it. It may be forgotten after `expires_at`.
    async fn record(&self, event: &Event, expires_at: i64) -> Result<bool, PortError>;
    /// The event stored under `id`.
    async fn get(&self, id: &str) -> Result<Option<Event>, PortError>;
}
