//! Turns events into counters, once per event id.
//!
//! The same logic serves the in-process consumer of `wca serve` and the
//! SQS-driven analytics function: only the [`Counters`] adapter differs.

use jiff::{Timestamp, tz::TimeZone};

use crate::{Counters, Event, EventKind, PortError};

/// How long a consumer remembers an event id (SQS keeps a message at most
/// 14 days, so a redelivery cannot come later than that).
pub const EVENT_MARKER_SECS: i64 = 14 * 24 * 3600;

/// The counter keys an event adds 1 to. Days and hours are local to `tz`.
///
/// - received messages: `msgs:day:D`, `msgs:day:D:type:T`, `msgs:hour:DTHH`
/// - replies: `replies:day:D`, `replies:day:D:type:T`
/// - intents and sentiments of received texts (on `MessageReceived` when
///   the webhook classified it, else on `MessageClassified`):
///   `msgs:day:D:intent:I`, `msgs:day:D:sentiment:S`
/// - refused requests: `rejected:day:D`, `rejected:day:D:reason:R`
/// - hand-overs to people: `handoffs:day:D`, `handoffs:day:D:reason:R`
/// - after-sales tickets: `tickets:day:D`, `tickets:day:D:kind:K`
/// - messages we started: `outbound:day:D:sent`,
///   `outbound:day:D:sent:type:T`, and for those not sent
///   `outbound:day:D:failed`, `outbound:day:D:failed:F` (F the
///   [`crate::outbound::Failure`]) and `outbound:day:D:failed:reason:R`
/// - breaker state changes: `breaker:day:D:to:S`
/// - kinds this build does not know: `unknown:day:D:type:T` (counted so
///   that an operator sees them, otherwise skipped)
/// - compliance hits: `compliance:day:D`, `compliance:day:D:dir:inbound`,
///   `compliance:day:D:outcome:O`, and `compliance:day:D:category:C` once
///   per category hit
pub fn counter_keys(event: &Event, tz: &TimeZone) -> Vec<String> {
    match &event.kind {
        EventKind::MessageReceived {
            msg_type,
            create_time,
            intent,
            sentiment,
            ..
        } => {
            let (day, hour) = day_hour(*create_time, tz);
            let mut keys = vec![
                format!("msgs:day:{day}"),
                format!("msgs:day:{day}:type:{msg_type}"),
                format!("msgs:hour:{day}T{hour}"),
            ];
            if let Some(intent) = intent {
                keys.push(format!("msgs:day:{day}:intent:{intent}"));
            }
            if let Some(sentiment) = sentiment {
                keys.push(format!("msgs:day:{day}:sentiment:{sentiment}"));
            }
            keys
        }
        EventKind::ReplySent { reply_type, .. } => {
            let (day, _) = day_hour(event.at, tz);
            vec![
                format!("replies:day:{day}"),
                format!("replies:day:{day}:type:{reply_type}"),
            ]
        }
        EventKind::RequestRejected { reason, .. } => {
            let (day, _) = day_hour(event.at, tz);
            vec![
                format!("rejected:day:{day}"),
                format!("rejected:day:{day}:reason:{reason}"),
            ]
        }
        EventKind::MessageClassified {
            create_time,
            intent,
            sentiment,
            ..
        } => {
            let (day, _) = day_hour(*create_time, tz);
            vec![
                format!("msgs:day:{day}:intent:{intent}"),
                format!("msgs:day:{day}:sentiment:{sentiment}"),
            ]
        }
        EventKind::ComplianceHit {
            direction,
            outcome,
            hits,
            ..
        } => {
            let (day, _) = day_hour(event.at, tz);
            let mut keys = vec![
                format!("compliance:day:{day}"),
                format!("compliance:day:{day}:dir:{}", direction.as_str()),
                format!("compliance:day:{day}:outcome:{outcome}"),
            ];
            for hit in hits {
                let key = format!("compliance:day:{day}:category:{}", hit.category);
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            keys
        }
        EventKind::HandoffRequested { reason, .. } => {
            let (day, _) = day_hour(event.at, tz);
            vec![
                format!("handoffs:day:{day}"),
                format!("handoffs:day:{day}:reason:{}", reason.as_str()),
            ]
        }
        EventKind::TicketCreated { ticket_kind, .. } => {
            let (day, _) = day_hour(event.at, tz);
            vec![
                format!("tickets:day:{day}"),
                format!("tickets:day:{day}:kind:{ticket_kind}"),
            ]
        }
        EventKind::OutboundSent { msg_type, .. } => {
            let (day, _) = day_hour(event.at, tz);
            vec![
                format!("outbound:day:{day}:sent"),
                format!("outbound:day:{day}:sent:type:{msg_type}"),
            ]
        }
        EventKind::OutboundFailed {
            failure, reason, ..
        } => {
            let (day, _) = day_hour(event.at, tz);
            vec![
                format!("outbound:day:{day}:failed"),
                format!("outbound:day:{day}:failed:{}", failure.as_str()),
                format!("outbound:day:{day}:failed:reason:{reason}"),
            ]
        }
        EventKind::BreakerChanged { state } => {
            let (day, _) = day_hour(event.at, tz);
            vec![format!("breaker:day:{day}:to:{}", state.as_str())]
        }
        EventKind::Unknown { type_name, .. } => {
            let (day, _) = day_hour(event.at, tz);
            vec![format!("unknown:day:{day}:type:{type_name}")]
        }
    }
}

/// What counting one event does: add `by` to every key, once per `once_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// The event's id: it counts once.
    pub once_id: String,
    /// The counters it adds to ([`counter_keys`]).
    pub keys: Vec<String>,
    /// How much: 1, or the tally a `RequestRejected` event stands for.
    pub by: u64,
    /// When the once-marker may be forgotten.
    pub marker_expires_at: i64,
}

impl Count {
    /// How `event` is counted, with days and hours local to `tz`.
    pub fn of(event: &Event, tz: &TimeZone) -> Self {
        let by = match &event.kind {
            EventKind::RequestRejected { count, .. } => *count,
            _ => 1,
        };
        Self {
            once_id: event.id.clone(),
            keys: counter_keys(event, tz),
            by,
            marker_expires_at: event.at.saturating_add(EVENT_MARKER_SECS),
        }
    }
}

/// Applies `event` to `counters` unless its id was applied before.
/// Returns `true` when it counted.
pub async fn apply(
    counters: &dyn Counters,
    event: &Event,
    tz: &TimeZone,
) -> Result<bool, PortError> {
    let count = Count::of(event, tz);
    counters
        .add_once_by(
            &count.once_id,
            &count.keys,
            count.by,
            count.marker_expires_at,
        )
        .await
}

/// `("YYYY-MM-DD", "HH")` of a Unix time in `tz`. Out-of-range times fall
/// back to the epoch rather than failing the whole event.
pub fn day_hour(unix_secs: i64, tz: &TimeZone) -> (String, String) {
    let ts = Timestamp::from_second(unix_secs).unwrap_or(Timestamp::UNIX_EPOCH);
    let zoned = ts.to_zoned(tz.clone());
    (
        zoned.strftime("%Y-%m-%d").to_string(),
        zoned.strftime("%H").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryCounters;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").expect("bundled tzdb has Asia/Shanghai")
    }

    #[test]
    fn days_and_hours_follow_the_configured_time_zone() {
        // 2023-11-14 22:13:20 UTC is 06:13 the next morning in Shanghai.
        assert_eq!(
            day_hour(1_700_000_000, &TimeZone::UTC),
            ("2023-11-14".into(), "22".into())
        );
        assert_eq!(
            day_hour(1_700_000_000, &shanghai()),
            ("2023-11-15".into(), "06".into())
        );
    }

    #[test]
    fn a_received_message_counts_per_day_type_and_hour() {
        let e = Event::message_received("msg:1", "o", "text", 1_700_000_000, None);
        assert_eq!(
            counter_keys(&e, &TimeZone::UTC),
            vec![
                "msgs:day:2023-11-14",
                "msgs:day:2023-11-14:type:text",
                "msgs:hour:2023-11-14T22"
            ]
        );
    }

    #[test]
    fn an_intent_adds_a_per_intent_counter() {
        let understood = crate::Understanding {
            intent: Some("greeting".into()),
            sentiment: Some("positive".into()),
        };
        let e = Event::message_received("msg:1", "o", "text", 0, Some(understood));
        let keys = counter_keys(&e, &TimeZone::UTC);
        assert!(keys.contains(&"msgs:day:1970-01-01:intent:greeting".into()));
        assert!(keys.contains(&"msgs:day:1970-01-01:sentiment:positive".into()));
    }

    #[test]
    fn a_compliance_hit_counts_each_category_once_per_event() {
        let word = |w: &str, c: &str| crate::ComplianceWord {
            word: w.into(),
            category: c.into(),
            action: "block".into(),
            start: 0,
            end: 3,
        };
        let e = Event::compliance_hit(
            "msg:1",
            "o",
            crate::Direction::Outbound,
            "block",
            "blocked",
            vec![
                word("稳赚不赔", "fraud"),
                word("保本", "fraud"),
                word("sb", "abuse"),
            ],
            0,
        );
        assert_eq!(e.id, "compliance:outbound:msg:1");
        assert_eq!(
            counter_keys(&e, &TimeZone::UTC),
            vec![
                "compliance:day:1970-01-01",
                "compliance:day:1970-01-01:dir:outbound",
                "compliance:day:1970-01-01:outcome:blocked",
                "compliance:day:1970-01-01:category:fraud",
                "compliance:day:1970-01-01:category:abuse",
            ]
        );
    }

    #[tokio::test]
    async fn applying_the_same_event_twice_counts_it_once() {
        let counters = MemoryCounters::default();
        let e = Event::reply_sent("msg:1", "o", "text", 0);
        assert!(apply(&counters, &e, &TimeZone::UTC).await.expect("apply"));
        assert!(!apply(&counters, &e, &TimeZone::UTC).await.expect("apply"));
        assert_eq!(
            counters.get("replies:day:1970-01-01").await.expect("get"),
            1
        );
        assert_eq!(
            counters
                .get("replies:day:1970-01-01:type:text")
                .await
                .expect("get"),
            1
        );
    }

    #[test]
    fn handoffs_and_tickets_count_per_day_and_reason_or_kind() {
        let openid = crate::OpenId::parse("o-1").expect("openid");
        let handoff = Event::handoff_requested(
            "msg:1",
            &openid,
            crate::HandoffReason::Unanswered,
            false,
            1_700_000_000,
        );
        assert_eq!(
            counter_keys(&handoff, &TimeZone::UTC),
            [
                "handoffs:day:2023-11-14",
                "handoffs:day:2023-11-14:reason:unanswered"
            ]
        );
        let ticket =
            Event::ticket_created("msg:2", &openid, "AS1", "2026", "return", 1_700_000_000);
        assert_eq!(
            counter_keys(&ticket, &TimeZone::UTC),
            [
                "tickets:day:2023-11-14",
                "tickets:day:2023-11-14:kind:return"
            ]
        );
    }

    #[test]
    fn an_event_kind_from_a_newer_version_is_counted_as_unknown_and_nothing_else() {
        let event: Event = serde_json::from_str(
            r#"{"id":"x:1","at":1700000000,"type":"CampaignSent","campaign":"c1"}"#,
        )
        .expect("unknown kinds parse");
        assert_eq!(
            counter_keys(&event, &TimeZone::UTC),
            ["unknown:day:2023-11-14:type:CampaignSent"]
        );
    }
}
