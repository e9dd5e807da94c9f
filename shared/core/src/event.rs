//! Events: what every step reports, for analytics and audit.
//!
//! Event ids are derived from what happened (the message's dedup key), not
//! random, so a step that runs twice emits the same id and every consumer
//! can ignore the second copy.

use serde::{Deserialize, Serialize};

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Stable id; consumers are idempotent on it.
    pub id: String,
    /// When it happened (Unix seconds).
    pub at: i64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The kinds of event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
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
    /// A request was refused before it was trusted (bad signature, bad XML).
    RequestRejected {
        /// A short machine-readable reason, e.g. `bad_signature`.
        reason: String,
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

    /// The event for a refused request. `unique` must differ per request.
    pub fn request_rejected(reason: &str, unique: &str, at: i64) -> Self {
        Self {
            id: format!("rejected:{unique}"),
            at,
            kind: EventKind::RequestRejected {
                reason: reason.to_owned(),
            },
        }
    }
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

    #[test]
    fn the_same_message_always_gets_the_same_event_ids() {
        let a = Event::message_received("msg:42", "o-1", "text", 1, None);
        let b = Event::message_received("msg:42", "o-1", "text", 1, None);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, Event::reply_sent("msg:42", "o-1", "text", 1).id);
    }
}
