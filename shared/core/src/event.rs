//! Events: what every step reports, for analytics and audit.
//!
//! Event ids are derived from what happened (the message's dedup key), not
//! random, so a step that runs twice emits the same id and every consumer
//! can ignore the second copy.
//!
//! Events are forward compatible: a consumer built before a new kind was
//! added reads it as [`EventKind::Unknown`], keeps the record exactly as it
//! came (it serialises back unchanged) and skips it, instead of failing the
//! batch and parking the record in a dead-letter queue.

use serde::{Deserialize, Serialize, de::Error as _};

use crate::OpenId;
use crate::outbound::{BreakerState, Failure};

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Stable id; consumers are idempotent on it.
    pub id: String,
    /// When it happened (Unix seconds).
    pub at: i64,
    /// What happened (written flattened, beside `id` and `at`, with a
    /// `type` tag).
    pub kind: EventKind,
}

/// The kinds of event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// A kind this build does not know, written by a newer one: kept as it
    /// came and skipped.
    #[serde(skip)]
    Unknown {
        /// Its `type` tag.
        type_name: String,
        /// Every field of the record, `id`, `at` and `type` included.
        fields: serde_json::Map<String, serde_json::Value>,
    },
    /// A user's message or event was accepted and archived.
    MessageReceived {
        /// Dedup key of the message.
        msg_key: String,
        /// Sender.
        openid: String,
        /// Kind label (`text`, `event:subscribe`, `unsupported:foo`).
        msg_type: String,
        /// WeChat's CreateTime.
        create_time: i64,
        /// The intent, once classification runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        intent: Option<String>,
        /// The sentiment (`negative`, `neutral`, `positive`), once
        /// classification runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sentiment: Option<String>,
    },
    /// We answered a message.
    ReplySent {
        /// Dedup key of the message answered.
        msg_key: String,
        /// Recipient.
        openid: String,
        /// Reply kind (`text`, `transfer_customer_service`, ...).
        reply_type: String,
    },
    /// Requests refused before they were trusted (bad signature, bad XML),
    /// tallied by the function: one event for every `count` refusals of
    /// one reason in a window, so junk traffic costs one event a minute,
    /// not one per request.
    RequestRejected {
        /// A short machine-readable reason, e.g. `bad_signature`.
        reason: String,
        /// How many requests this event stands for (1 in events written
        /// before tallies existed).
        #[serde(default = "one")]
        count: u64,
    },
    /// A message classified after it was received (the classify function:
    /// async mode, or a webhook that did not classify).
    MessageClassified {
        /// Dedup key of the message.
        msg_key: String,
        /// Sender.
        openid: String,
        /// WeChat's CreateTime of the message (the day it counts on).
        create_time: i64,
        /// The intent label.
        intent: String,
        /// Its probability.
        confidence: f32,
        /// The sentiment label.
        sentiment: String,
        /// p(positive) - p(negative), in [-1, 1].
        sentiment_score: f32,
    },
    /// A text held dictionary words: what a compliance officer reviews.
    ComplianceHit {
        /// Dedup key of the message the text belongs to (the inbound
        /// message, or the message an outbound reply answers).
        msg_key: String,
        /// The customer.
        openid: String,
        /// `inbound` (the customer wrote it) or `outbound` (we were about
        /// to send it).
        direction: Direction,
        /// The strictest action of the hits: `block`, `mask` or `flag`.
        action: String,
        /// What was done: `recorded` (inbound: archived and answered as
        /// usual), `blocked` (a safe fallback was sent instead), `masked`
        /// (sent with the words masked), `flagged` (sent unchanged).
        outcome: String,
        /// The hits, in text order.
        hits: Vec<ComplianceWord>,
    },
    /// The conversation was handed to human agents.
    HandoffRequested {
        /// Dedup key of the message that led to it.
        msg_key: String,
        /// The customer.
        openid: OpenId,
        /// Why.
        reason: HandoffReason,
        /// A VIP customer: agents should take them first.
        priority: bool,
    },
    /// An after-sales ticket was opened for a customer.
    TicketCreated {
        /// Dedup key of the message that completed the request.
        msg_key: String,
        /// The customer.
        openid: OpenId,
        /// The ticket's id in the shop's system.
        ticket_id: String,
        /// The order it is about.
        order_id: String,
        /// What kind of request (`return`, ...).
        ticket_kind: String,
    },
    /// A message we started (customer-service API) was accepted by WeChat.
    OutboundSent {
        /// Why it was sent: the message key it answers, `campaign:...`.
        reference: String,
        /// The recipient.
        openid: String,
        /// `text`, `image`, `news`, `template`.
        msg_type: String,
    },
    /// A message we started was not sent, by WeChat's answer or by a
    /// guard in front of it.
    OutboundFailed {
        /// Why it was being sent.
        reference: String,
        /// The recipient.
        openid: String,
        /// `text`, `image`, `news`, `template`.
        msg_type: String,
        /// What to do about it: `retry`, `refresh_token`, `recipient`,
        /// `config`, `rejected`.
        failure: Failure,
        /// The failure, or the guard that refused (`outside_window`,
        /// `over_budget`, `undeliverable`, `circuit_open`).
        reason: String,
        /// WeChat's errcode, 0 when WeChat did not answer.
        code: i64,
    },
    /// The breaker in front of the WeChat API changed state.
    BreakerChanged {
        /// The new state.
        state: BreakerState,
    },
}

/// The `type` tags of the kinds this build knows.
const KNOWN_KINDS: [&str; 10] = [
    "MessageReceived",
    "ReplySent",
    "RequestRejected",
    "MessageClassified",
    "ComplianceHit",
    "HandoffRequested",
    "TicketCreated",
    "OutboundSent",
    "OutboundFailed",
    "BreakerChanged",
];

impl EventKind {
    /// The `type` tag this kind is written with.
    pub fn type_name(&self) -> &str {
        match self {
            EventKind::Unknown { type_name, .. } => type_name,
            EventKind::MessageReceived { .. } => "MessageReceived",
            EventKind::ReplySent { .. } => "ReplySent",
            EventKind::RequestRejected { .. } => "RequestRejected",
            EventKind::MessageClassified { .. } => "MessageClassified",
            EventKind::ComplianceHit { .. } => "ComplianceHit",
            EventKind::HandoffRequested { .. } => "HandoffRequested",
            EventKind::TicketCreated { .. } => "TicketCreated",
            EventKind::OutboundSent { .. } => "OutboundSent",
            EventKind::OutboundFailed { .. } => "OutboundFailed",
            EventKind::BreakerChanged { .. } => "BreakerChanged",
        }
    }
}

/// Why a conversation went to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffReason {
    /// The customer used a hand-over keyword (转人工, ...).
    Keyword,
    /// The intent model read the message as a request for a person or a
    /// complaint.
    Intent,
    /// The bot could not answer several turns in a row.
    Unanswered,
    /// The customer was unhappy several turns in a row.
    NegativeSentiment,
    /// Too many conversations were already left unresolved by the bot, so
    /// this one went to a person at its first unanswered turn.
    Backlog,
}

impl HandoffReason {
    /// The snake_case name, as written in events and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffReason::Keyword => "keyword",
            HandoffReason::Intent => "intent",
            HandoffReason::Unanswered => "unanswered",
            HandoffReason::NegativeSentiment => "negative_sentiment",
            HandoffReason::Backlog => "backlog",
        }
    }
}

#[derive(Serialize)]
struct KnownRef<'a> {
    id: &'a str,
    at: i64,
    #[serde(flatten)]
    kind: &'a EventKind,
}

#[derive(Deserialize)]
struct KnownOwned {
    id: String,
    at: i64,
    #[serde(flatten)]
    kind: EventKind,
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.kind {
            EventKind::Unknown { fields, .. } => fields.serialize(s),
            kind => KnownRef {
                id: &self.id,
                at: self.at,
                kind,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fields = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let type_name = match fields.get("type") {
            Some(serde_json::Value::String(t)) => t.clone(),
            _ => return Err(D::Error::custom("event without a string `type`")),
        };
        if KNOWN_KINDS.contains(&type_name.as_str()) {
            let known: KnownOwned = serde_json::from_value(serde_json::Value::Object(fields))
                .map_err(D::Error::custom)?;
            return Ok(Event {
                id: known.id,
                at: known.at,
                kind: known.kind,
            });
        }
        let id = fields
            .get("id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| D::Error::custom("event without a string `id`"))?
            .to_owned();
        let at = fields
            .get("at")
            .and_then(|v| v.as_i64())
            .ok_or_else(|| D::Error::custom("event without an integer `at`"))?;
        Ok(Event {
            id,
            at,
            kind: EventKind::Unknown { type_name, fields },
        })
    }
}

/// Which way a checked text was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the customer to us.
    Inbound,
    /// From us to the customer.
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// One dictionary word found in a text, as recorded for audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceWord {
    /// The dictionary entry as written.
    pub word: String,
    /// Its category.
    pub category: String,
    /// Its action: `block`, `mask` or `flag`.
    pub action: String,
    /// Byte offset of the hit in the checked text.
    pub start: usize,
    /// Byte offset just past the hit.
    pub end: usize,
}

/// What classification made of a text message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Understanding {
    /// The intent label.
    pub intent: Option<String>,
    /// The sentiment label.
    pub sentiment: Option<String>,
}

impl Understanding {
    /// Both labels known.
    pub fn new(intent: &str, sentiment: &str) -> Self {
        Self {
            intent: Some(intent.to_owned()),
            sentiment: Some(sentiment.to_owned()),
        }
    }
}

impl Event {
    /// The event for an accepted inbound message; id `received:{msg_key}`.
    pub fn message_received(
        msg_key: &str,
        openid: &str,
        msg_type: &str,
        create_time: i64,
        understanding: Option<Understanding>,
    ) -> Self {
        let Understanding { intent, sentiment } = understanding.unwrap_or_default();
        Self {
            id: format!("received:{msg_key}"),
            at: create_time,
            kind: EventKind::MessageReceived {
                msg_key: msg_key.to_owned(),
                openid: openid.to_owned(),
                msg_type: msg_type.to_owned(),
                create_time,
                intent,
                sentiment,
            },
        }
    }

    /// The event for a reply to `msg_key`; id `reply:{msg_key}`.
    pub fn reply_sent(msg_key: &str, openid: &str, reply_type: &str, at: i64) -> Self {
        Self {
            id: format!("reply:{msg_key}"),
            at,
            kind: EventKind::ReplySent {
                msg_key: msg_key.to_owned(),
                openid: openid.to_owned(),
                reply_type: reply_type.to_owned(),
            },
        }
    }

    /// The event for words found in a text of message `msg_key`; id
    /// `compliance:{direction}:{msg_key}`, so a re-scan of the same message
    /// is recorded once.
    pub fn compliance_hit(
        msg_key: &str,
        openid: &str,
        direction: Direction,
        action: &str,
        outcome: &str,
        hits: Vec<ComplianceWord>,
        at: i64,
    ) -> Self {
        Self {
            id: format!("compliance:{}:{msg_key}", direction.as_str()),
            at,
            kind: EventKind::ComplianceHit {
                msg_key: msg_key.to_owned(),
                openid: openid.to_owned(),
                direction,
                action: action.to_owned(),
                outcome: outcome.to_owned(),
                hits,
            },
        }
    }

    /// The event for a message classified after it was received; id
    /// `classified:{msg_key}`.
    #[allow(clippy::too_many_arguments)]
    pub fn message_classified(
        msg_key: &str,
        openid: &str,
        create_time: i64,
        intent: &str,
        confidence: f32,
        sentiment: &str,
        sentiment_score: f32,
        at: i64,
    ) -> Self {
        Self {
            id: format!("classified:{msg_key}"),
            at,
            kind: EventKind::MessageClassified {
                msg_key: msg_key.to_owned(),
                openid: openid.to_owned(),
                create_time,
                intent: intent.to_owned(),
                confidence,
                sentiment: sentiment.to_owned(),
                sentiment_score,
            },
        }
    }

    /// The event for a hand-over to people; id `handoff:{msg_key}`.
    pub fn handoff_requested(
        msg_key: &str,
        openid: &OpenId,
        reason: HandoffReason,
        priority: bool,
        at: i64,
    ) -> Self {
        Self {
            id: format!("handoff:{msg_key}"),
            at,
            kind: EventKind::HandoffRequested {
                msg_key: msg_key.to_owned(),
                openid: openid.clone(),
                reason,
                priority,
            },
        }
    }

    /// The event for a ticket opened by message `msg_key`; id
    /// `ticket:{msg_key}`.
    pub fn ticket_created(
        msg_key: &str,
        openid: &OpenId,
        ticket_id: &str,
        order_id: &str,
        ticket_kind: &str,
        at: i64,
    ) -> Self {
        Self {
            id: format!("ticket:{msg_key}"),
            at,
            kind: EventKind::TicketCreated {
                msg_key: msg_key.to_owned(),
                openid: openid.clone(),
                ticket_id: ticket_id.to_owned(),
                order_id: order_id.to_owned(),
                ticket_kind: ticket_kind.to_owned(),
            },
        }
    }

    /// The event for `count` refused requests of one `reason`. `unique`
    /// must differ per tally (window and process).
    pub fn requests_rejected(reason: &str, count: u64, unique: &str, at: i64) -> Self {
        Self {
            id: format!("rejected:{unique}:{reason}"),
            at,
            kind: EventKind::RequestRejected {
                reason: reason.to_owned(),
                count,
            },
        }
    }
}

impl Event {
    /// The event for a message we started that WeChat accepted; id
    /// `sent:{reference}:{openid}`, so a repeated report counts once.
    pub fn outbound_sent(reference: &str, openid: &str, msg_type: &str, at: i64) -> Self {
        Self {
            id: format!("sent:{reference}:{openid}"),
            at,
            kind: EventKind::OutboundSent {
                reference: reference.to_owned(),
                openid: openid.to_owned(),
                msg_type: msg_type.to_owned(),
            },
        }
    }

    /// The event for a message we started that was not sent. Each try is
    /// its own event (id `failed:{reference}:{openid}:{at}:{n}`).
    pub fn outbound_failed(
        reference: &str,
        openid: &str,
        msg_type: &str,
        failure: Failure,
        reason: &str,
        code: i64,
        at: i64,
    ) -> Self {
        Self {
            id: format!("failed:{reference}:{openid}:{at}:{}", next_serial()),
            at,
            kind: EventKind::OutboundFailed {
                reference: reference.to_owned(),
                openid: openid.to_owned(),
                msg_type: msg_type.to_owned(),
                failure,
                reason: reason.to_owned(),
                code,
            },
        }
    }

    /// The event for a breaker state change; `unique` must differ per
    /// process.
    pub fn breaker_changed(state: BreakerState, at: i64, unique: &str) -> Self {
        Self {
            id: format!("breaker:{unique}:{at}:{}:{}", state.as_str(), next_serial()),
            at,
            kind: EventKind::BreakerChanged { state },
        }
    }
}

/// A number that differs for every call in this process.
fn next_serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn one() -> u64 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json_with_a_type_tag() {
        let e = Event::message_received("msg:42", "o-1", "text", 1_700_000_000, None);
        let json = serde_json::to_string(&e).expect("serialise");
        assert!(json.contains(r#""type":"MessageReceived""#), "{json}");
        let back: Event = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, e);
    }

    fn one_of_each_kind() -> Vec<Event> {
        let openid = OpenId::parse("o-1").expect("openid");
        vec![
            Event::message_received(
                "msg:1",
                "o-1",
                "text",
                1,
                Some(Understanding::new("greeting", "neutral")),
            ),
            Event::reply_sent("msg:1", "o-1", "text", 2),
            Event::requests_rejected("bad_signature", 1, "r1", 3),
            Event::message_classified("msg:1", "o-1", 1, "greeting", 0.9, "neutral", 0.0, 4),
            Event::compliance_hit(
                "msg:1",
                "o-1",
                Direction::Inbound,
                "flag",
                "recorded",
                vec![],
                5,
            ),
            Event::handoff_requested("msg:1", &openid, HandoffReason::Backlog, true, 6),
            Event::ticket_created("msg:1", &openid, "AS000001", "2026112000958", "return", 7),
            Event::outbound_sent("msg:1", "o-1", "text", 8),
            Event::outbound_failed(
                "campaign:vip:1",
                "o-2",
                "text",
                Failure::Recipient,
                "outside_window",
                45015,
                9,
            ),
            Event::breaker_changed(BreakerState::Open, 10, "p1"),
        ]
    }

    #[test]
    fn every_known_kind_round_trips_and_is_listed_as_known() {
        for event in one_of_each_kind() {
            let json = serde_json::to_value(&event).expect("serialise");
            assert_eq!(json["type"], event.kind.type_name(), "{json}");
            assert!(KNOWN_KINDS.contains(&event.kind.type_name()));
            let back: Event = serde_json::from_value(json).expect("parse");
            assert_eq!(back, event);
        }
        assert_eq!(one_of_each_kind().len(), KNOWN_KINDS.len());
    }

    #[test]
    fn a_kind_from_a_newer_version_is_kept_unchanged_as_unknown() {
        let text = r#"{"id":"refund:msg:9","at":1700000000,"type":"RefundIssued","amount_cents":6900,"openid":"o-9"}"#;
        let event: Event = serde_json::from_str(text).expect("an unknown kind still parses");
        assert_eq!(event.id, "refund:msg:9");
        assert_eq!(event.kind.type_name(), "RefundIssued");
        assert!(matches!(event.kind, EventKind::Unknown { .. }));
        let again: serde_json::Value = serde_json::to_value(&event).expect("serialise");
        let original: serde_json::Value = serde_json::from_str(text).expect("json");
        assert_eq!(again, original, "the record is written back as it came");
    }

    #[test]
    fn a_known_kind_with_broken_fields_is_still_an_error() {
        let text = r#"{"id":"reply:x","at":1,"type":"ReplySent","msg_key":"x"}"#;
        assert!(serde_json::from_str::<Event>(text).is_err());
        assert!(serde_json::from_str::<Event>(r#"{"id":"x","at":1}"#).is_err());
    }

    #[test]
    fn the_same_message_always_gets_the_same_event_ids() {
        let a = Event::message_received("msg:42", "o-1", "text", 1, None);
        let b = Event::message_received("msg:42", "o-1", "text", 1, None);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, Event::reply_sent("msg:42", "o-1", "text", 1).id);
    }
}
