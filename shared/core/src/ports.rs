//! The ports: narrow traits for everything that stores or moves data.
//!
//! Each takes and returns domain types and [`PortError`], never a client
//! library's types, so adapters can be swapped without touching the logic.
//! Times are Unix seconds passed in by the caller (from a [`crate::Clock`]),
//! which keeps adapters free of hidden clocks and lets tests move time.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{ConversationState, Direction, Event, OpenId, Outgoing, Profile, Ticket};

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
    ) -> Result<bool, PortError> {
        self.add_once_by(once_id, keys, 1, marker_expires_at).await
    }
    /// [`Counters::add_once`] adding `by` instead of 1: one event standing
    /// for many (the refused requests of a minute, tallied in the function).
    async fn add_once_by(
        &self,
        once_id: &str,
        keys: &[String],
        by: u64,
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

/// A user's conversation as it is held, expired or not (an export shows
/// what is stored, not what the dialog would read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldConversation {
    /// The compare-and-set version.
    pub version: u64,
    /// When the state may be forgotten (Unix seconds).
    pub expires_at: i64,
    /// What the dialog engine remembers.
    pub state: ConversationState,
}

/// Everything wca's stores hold about one user: what
/// [`UserData::export`] returns, and (as JSON) what `wca user export`
/// prints. Field names are stable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRecord {
    /// Whose data it is.
    pub openid: OpenId,
    /// When it was read (Unix seconds).
    pub exported_at: i64,
    /// Every archived message from the user, expired ones not yet purged
    /// included, oldest first.
    pub messages: Vec<ArchivedMessage>,
    /// Every archived reply to the user, oldest first.
    pub replies: Vec<ArchivedReply>,
    /// The conversation state, if one is stored.
    pub conversation: Option<HeldConversation>,
    /// Since when the user is on the board of unresolved conversations
    /// ([`crate::BOARD_KEY`]), if they are.
    pub unresolved_since: Option<i64>,
    /// Event-log entries about the user's messages (classification,
    /// compliance hits, hand-overs, tickets), oldest first.
    pub events: Vec<Event>,
    /// The profile, where the store holds profiles (DynamoDB with
    /// `users = "dynamodb"`); `None` elsewhere.
    pub profile: Option<Profile>,
    /// After-sales tickets the store holds for the user, oldest first.
    pub tickets: Vec<Ticket>,
    /// The user's campaign delivery records, where the store holds
    /// campaigns: each a JSON object `{"occurrence", "openid", "outcome",
    /// "at"}`, the occurrence id (`{campaign}@{scheduled_at}`) with the
    /// [`crate::campaign::Delivery`] (what was sent to, or skipped for,
    /// the user, and when). Empty where the store holds no campaigns.
    pub campaign_claims: Vec<serde_json::Value>,
    /// What is recorded of the user's 48-hour window for messages we
    /// start (their last interaction, what we sent since), if anything.
    pub window: Option<crate::outbound::ContactWindow>,
    /// Replies to the user waiting to be sent through the
    /// customer-service API (`wca serve`'s outbox), oldest first.
    pub pending_replies: Vec<ArchivedReply>,
}

impl UserRecord {
    /// An empty record of `openid` read at `now`.
    pub fn empty(openid: &OpenId, now: i64) -> Self {
        Self {
            openid: openid.clone(),
            exported_at: now,
            messages: Vec::new(),
            replies: Vec::new(),
            conversation: None,
            unresolved_since: None,
            events: Vec::new(),
            profile: None,
            tickets: Vec::new(),
            campaign_claims: Vec::new(),
            window: None,
            pending_replies: Vec::new(),
        }
    }

    /// The keys of the user's messages and replies, each once: what their
    /// dedup records and events are keyed by.
    pub fn message_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .messages
            .iter()
            .map(|m| m.key.clone())
            .chain(self.replies.iter().map(|r| r.key.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Puts every list in its documented order.
    pub fn sort(&mut self) {
        self.messages
            .sort_by(|a, b| (a.received_at, &a.key).cmp(&(b.received_at, &b.key)));
        self.replies
            .sort_by(|a, b| (a.sent_at, &a.key).cmp(&(b.sent_at, &b.key)));
        self.events
            .sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        self.tickets.sort_by(|a, b| {
            (a.request.created_at, &a.ticket_id).cmp(&(b.request.created_at, &b.ticket_id))
        });
        self.campaign_claims
            .sort_by(|a, b| a["occurrence"].as_str().cmp(&b["occurrence"].as_str()));
    }
}

/// What one [`UserData::erase`] removed, by kind. Indexes (history and
/// expiry rows) go with the entries they point to and are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// Archived messages.
    pub messages: u64,
    /// Archived replies.
    pub replies: u64,
    /// The conversation state (0 or 1).
    pub conversation: u64,
    /// The user's entry on the board of unresolved conversations (0 or 1).
    pub unresolved_board: u64,
    /// Dedup records of the user's messages (they hold reply bodies).
    pub dedup_records: u64,
    /// Event-log entries about the user's messages.
    pub events: u64,
    /// Counter once-markers of those events (the counters, aggregates
    /// without OpenIDs, stay).
    pub counter_markers: u64,
    /// The profile, where the store holds it (0 or 1).
    pub profile: u64,
    /// After-sales tickets.
    pub tickets: u64,
    /// Campaign delivery records of the user (one per occurrence they
    /// were claimed, sent or skipped in); see
    /// [`UserRecord::campaign_claims`].
    pub campaign_claims: u64,
    /// Everything else of the user's: the window and unsent replies of
    /// messages we start, and items this version of wca does not know (a
    /// newer version's), erased all the same.
    pub other: u64,
}

impl Erased {
    /// Everything removed, all kinds together.
    pub fn total(&self) -> u64 {
        self.messages
            + self.replies
            + self.conversation
            + self.unresolved_board
            + self.dedup_records
            + self.events
            + self.counter_markers
            + self.profile
            + self.tickets
            + self.campaign_claims
            + self.other
    }
}

/// Personal data on request (PIPL): everything a store holds about one
/// user, read out or removed. Counters are aggregates without OpenIDs and
/// are neither exported nor erased.
#[async_trait]
pub trait UserData: Send + Sync {
    /// Everything held about `openid`, read at `now`.
    async fn export(&self, openid: &OpenId, now: i64) -> Result<UserRecord, PortError>;
    /// Removes everything held about `openid`: the archive both ways, the
    /// conversation and the user's board entry, the dedup records, events
    /// and once-markers of their messages, and (where the store holds
    /// them) profile, tickets and campaign claims. Erasing what is already
    /// gone removes nothing and is not an error; a failure part-way leaves
    /// the rest for the next call.
    async fn erase(&self, openid: &OpenId) -> Result<Erased, PortError>;
}

/// The dedup records kept under a message's key `msg_key`: WeChat's
/// retries (`msg_key`), and async replies' decision (`respond:`) and send
/// (`sent:`), which carry the reply. Erasing a user removes them all.
pub fn message_dedup_keys(msg_key: &str) -> [String; 3] {
    [
        msg_key.to_owned(),
        format!("respond:{msg_key}"),
        format!("sent:{msg_key}"),
    ]
}

/// The ids of every event that can be about the message `msg_key` (see the
/// constructors of [`Event`]: ids are derived from the message's key), so
/// that an erasure finds them without scanning the event log.
pub fn message_event_ids(msg_key: &str) -> Vec<String> {
    [
        "received",
        "reply",
        "classified",
        "handoff",
        "ticket",
        "compliance:inbound",
        "compliance:outbound",
    ]
    .iter()
    .map(|kind| format!("{kind}:{msg_key}"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HandoffReason, Understanding};

    #[test]
    fn every_event_about_a_message_has_an_id_an_erasure_looks_for() {
        let key = "evt:o-1:1700000000";
        let user = OpenId::parse("o-1").expect("openid");
        let events = [
            Event::message_received(key, "o-1", "text", 1, Some(Understanding::new("a", "b"))),
            Event::reply_sent(key, "o-1", "text", 1),
            Event::message_classified(key, "o-1", 1, "greeting", 0.9, "neutral", 0.0, 1),
            Event::compliance_hit(
                key,
                "o-1",
                Direction::Inbound,
                "flag",
                "recorded",
                vec![],
                1,
            ),
            Event::compliance_hit(key, "o-1", Direction::Outbound, "mask", "masked", vec![], 1),
            Event::handoff_requested(key, &user, HandoffReason::Keyword, false, 1),
            Event::ticket_created(key, &user, "AS000001", "2026111305517", "return", 1),
        ];
        let ids = message_event_ids(key);
        for event in events {
            assert!(ids.contains(&event.id), "{} is not looked for", event.id);
        }
    }
}
