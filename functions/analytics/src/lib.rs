//! The analytics function: an SQS consumer that writes every event once
//! into the event log and adds it to the daily counters.
//!
//! Each record is handled on its own; a record that fails (unreadable
//! body, store unavailable) is reported as a batch item failure so SQS
//! retries only that record, and after `maxReceiveCount` attempts moves it
//! to the dead-letter queue. Both writes are idempotent on the event id, so
//! a redelivered record changes nothing.
//!
//! ```
//! use std::sync::Arc;
//! use aws_lambda_events::event::sqs::SqsEvent;
//! use wca_analytics::Analytics;
//! use wca_core::{Counters, memory::{MemoryCounters, MemoryEventLog}};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let counters = Arc::new(MemoryCounters::default());
//! let analytics = Analytics::new(counters.clone(), Arc::new(MemoryEventLog::default()), jiff::tz::TimeZone::UTC);
//! let batch: SqsEvent = serde_json::from_str(r#"{"Records":[
//!   {"messageId":"m1","body":"{\"id\":\"reply:msg:1\",\"at\":0,\"type\":\"ReplySent\",\"msg_key\":\"msg:1\",\"openid\":\"o\",\"reply_type\":\"text\"}"},
//!   {"messageId":"m2","body":"not an event"}]}"#).unwrap();
//! let response = analytics.handle(batch).await;
//! assert_eq!(response.batch_item_failures.len(), 1);
//! assert_eq!(response.batch_item_failures[0].item_identifier, "m2");
//! assert_eq!(counters.get("replies:day:1970-01-01").await.unwrap(), 1);
//! # });
//! ```

use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use wca_aws::metrics::{Metric, Metrics};
use wca_core::{Counters, EventKind, EventLog, PortError, analytics};

/// Days the event log keeps an event unless told otherwise: the stack's
/// `RetentionDays` default, the same as the message archive's, so the
/// log never outlives the messages it describes.
pub const DEFAULT_RETENTION_DAYS: i64 = 180;

/// The variable the stack sets to its `RetentionDays`.
pub const RETENTION_VAR: &str = "WCA_RETENTION_DAYS";

/// Reads the retention in days from [`RETENTION_VAR`]'s value
/// ([`DEFAULT_RETENTION_DAYS`] when unset or empty); anything but a whole
/// number from 1 to 36500 (a century, far from overflowing the expiry) is
/// an error that names the variable.
pub fn retention_days(value: Option<&str>) -> Result<i64, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_RETENTION_DAYS),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=36_500).contains(d))
            .ok_or_else(|| {
                format!("{RETENTION_VAR} must be a whole number of days from 1 to 36500")
            }),
    }
}

/// Why one record failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The body is not an event (a poison message: retries will not help).
    #[error("record is not a wca event: {0}")]
    Poison(String),
    /// A store failed; a retry may succeed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The handler with its ports.
#[derive(Clone)]
pub struct Analytics {
    counters: Arc<dyn Counters>,
    log: Arc<dyn EventLog>,
    tz: jiff::tz::TimeZone,
    retention_secs: i64,
}

/// The metrics a batch reports, all of them every time (a zero is a data
/// point too).
const BATCH_METRICS: [Metric; 4] = [
    Metric::Messages,
    Metric::Replies,
    Metric::Handoffs,
    Metric::ComplianceHits,
];

impl Analytics {
    /// A handler over these ports; days are counted in `tz`, and events
    /// are kept [`DEFAULT_RETENTION_DAYS`] unless
    /// [`Analytics::with_retention_days`] says otherwise.
    pub fn new(
        counters: Arc<dyn Counters>,
        log: Arc<dyn EventLog>,
        tz: jiff::tz::TimeZone,
    ) -> Self {
        Self {
            counters,
            log,
            tz,
            retention_secs: DEFAULT_RETENTION_DAYS * 24 * 3600,
        }
    }

    /// Keeps each event `days` days after it happened (at least one).
    pub fn with_retention_days(mut self, days: i64) -> Self {
        self.retention_secs = days.max(1).saturating_mul(24 * 3600);
        self
    }

    /// Handles one SQS batch; failed records are listed for retry.
    pub async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        self.handle_counted(batch).await.0
    }

    /// [`Analytics::handle`], also counting the batch's messages, replies,
    /// handoffs and compliance hits for CloudWatch. An event is counted
    /// when it is first logged, so a redelivered record counts once.
    pub async fn handle_counted(&self, batch: SqsEvent) -> (SqsBatchResponse, Metrics) {
        let mut metrics = Metrics::default();
        for metric in BATCH_METRICS {
            metrics.add(metric, 0.0);
        }
        let tally = Mutex::new(metrics);
        let response = wca_aws::for_each_record(batch, |body| {
            let tally = &tally;
            async move {
                let (stored, metric) = self.apply(&body).await?;
                if let (true, Some(metric)) = (stored, metric) {
                    tally
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .add(metric, 1.0);
                }
                Ok::<_, AnalyticsError>(())
            }
        })
        .await;
        let metrics = tally
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (response, metrics)
    }

    /// Handles one record's body.
    pub async fn one(&self, body: &str) -> Result<(), AnalyticsError> {
        self.apply(body).await.map(|_| ())
    }

    /// Logs and counts one record's event; whether it was new to the log,
    /// and the metric it adds to.
    async fn apply(&self, body: &str) -> Result<(bool, Option<Metric>), AnalyticsError> {
        let event =
            wca_aws::event_from_body(body).map_err(|e| AnalyticsError::Poison(e.to_string()))?;
        let stored = self
            .log
            .record(&event, event.at.saturating_add(self.retention_secs))
            .await?;
        let counted = analytics::apply(self.counters.as_ref(), &event, &self.tz).await?;
        tracing::info!(event_id = %event.id, stored, counted, "event applied");
        Ok((stored, metric_of(&event.kind)))
    }
}

/// The CloudWatch metric an event kind adds to, if any.
fn metric_of(kind: &EventKind) -> Option<Metric> {
    match kind {
        EventKind::MessageReceived { .. } => Some(Metric::Messages),
        EventKind::ReplySent { .. } => Some(Metric::Replies),
        EventKind::HandoffRequested { .. } => Some(Metric::Handoffs),
        EventKind::ComplianceHit { .. } => Some(Metric::ComplianceHits),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wca_core::{
        Event,
        memory::{MemoryCounters, MemoryEventLog},
    };

    fn batch(bodies: &[(&str, String)]) -> SqsEvent {
        let records: Vec<serde_json::Value> = bodies
            .iter()
            .map(|(id, body)| serde_json::json!({"messageId": id, "body": body}))
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).expect("sqs event")
    }

    /// An event log that remembers the expiry each event was given.
    #[derive(Default)]
    struct ExpiryLog(Mutex<Vec<(String, i64)>>);

    // `EventLog` is an `async_trait`; this crate does not depend on the
    // macro, so the boxed future it would write is spelled out.
    impl EventLog for ExpiryLog {
        fn record<'s, 'e, 'f>(
            &'s self,
            event: &'e Event,
            expires_at: i64,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<bool, PortError>> + Send + 'f>>
        where
            's: 'f,
            'e: 'f,
            Self: 'f,
        {
            Box::pin(async move {
                let mut seen = self.0.lock().expect("lock");
                seen.push((event.id.clone(), expires_at));
                Ok(true)
            })
        }

        fn get<'s, 'i, 'f>(
            &'s self,
            _id: &'i str,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<Option<Event>, PortError>> + Send + 'f>>
        where
            's: 'f,
            'i: 'f,
            Self: 'f,
        {
            Box::pin(async { Ok(None) })
        }
    }

    fn fixture() -> (Analytics, Arc<MemoryCounters>, Arc<MemoryEventLog>) {
        let counters = Arc::new(MemoryCounters::default());
        let log = Arc::new(MemoryEventLog::default());
        let a = Analytics::new(counters.clone(), log.clone(), jiff::tz::TimeZone::UTC);
        (a, counters, log)
    }

    #[tokio::test]
    async fn a_redelivered_record_is_logged_and_counted_once() {
        let (a, counters, log) = fixture();
        let e = Event::message_received("msg:1", "o", "text", 0, None);
        let body = serde_json::to_string(&e).expect("json");
        let first = a.handle(batch(&[("m1", body.clone())])).await;
        let again = a.handle(batch(&[("m1", body)])).await;
        assert!(first.batch_item_failures.is_empty() && again.batch_item_failures.is_empty());
        assert_eq!(counters.get("msgs:day:1970-01-01").await.expect("get"), 1);
        assert_eq!(log.get(&e.id).await.expect("get"), Some(e));
    }

    #[tokio::test]
    async fn a_poison_record_fails_alone_and_the_rest_of_its_batch_succeeds() {
        let (a, counters, _) = fixture();
        let good = |i: u32| {
            serde_json::to_string(&Event::reply_sent(&format!("msg:{i}"), "o", "text", 0))
                .expect("json")
        };
        let resp = a
            .handle(batch(&[
                ("m1", good(1)),
                ("m2", "{\"id\": 3}".to_owned()),
                ("m3", good(3)),
                ("m4", String::new()),
            ]))
            .await;
        let failed: Vec<&str> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m2", "m4"]);
        assert_eq!(
            counters.get("replies:day:1970-01-01").await.expect("get"),
            2
        );
    }

    #[tokio::test]
    async fn a_record_of_a_kind_this_build_does_not_know_is_kept_counted_and_not_retried() {
        let (a, counters, log) = fixture();
        let body = r#"{"id":"campaign:c1:o","at":0,"type":"CampaignDelivered","campaign":"c1"}"#;
        let resp = a.handle(batch(&[("m1", body.to_owned())])).await;
        assert!(
            resp.batch_item_failures.is_empty(),
            "no DLQ for a newer kind"
        );
        let kept = log
            .get("campaign:c1:o")
            .await
            .expect("get")
            .expect("logged");
        assert_eq!(
            serde_json::to_value(&kept).expect("json"),
            serde_json::from_str::<serde_json::Value>(body).expect("json"),
            "the record is kept as it came"
        );
        assert_eq!(
            counters
                .get("unknown:day:1970-01-01:type:CampaignDelivered")
                .await
                .expect("get"),
            1
        );
    }
    #[tokio::test]
    async fn the_event_log_keeps_events_as_many_days_as_the_retention_setting_says() {
        const DAY: i64 = 24 * 3600;
        let at = 1_700_000_000;
        let e = Event::reply_sent("msg:1", "o", "text", at);
        let body = serde_json::to_string(&e).expect("json");
        for (value, days) in [(None, 180), (Some("30"), 30), (Some(" 7 "), 7)] {
            let log = Arc::new(ExpiryLog::default());
            let days_read = retention_days(value).expect("valid");
            assert_eq!(days_read, days, "{value:?}");
            let a = Analytics::new(
                Arc::new(MemoryCounters::default()),
                log.clone(),
                jiff::tz::TimeZone::UTC,
            )
            .with_retention_days(days_read);
            let resp = a.handle(batch(&[("m1", body.clone())])).await;
            assert!(resp.batch_item_failures.is_empty());
            let seen = log.0.lock().expect("lock").clone();
            assert_eq!(seen, [(e.id.clone(), at + days * DAY)], "{value:?}");
        }
    }

    #[test]
    fn a_retention_that_is_not_a_whole_number_of_days_is_an_error_naming_the_variable() {
        assert_eq!(retention_days(Some("")), Ok(DEFAULT_RETENTION_DAYS));
        for bad in ["0", "-3", "two", "1.5", "99999"] {
            let err = retention_days(Some(bad)).expect_err(bad);
            assert!(err.contains(RETENTION_VAR), "{err}");
        }
    }

    #[tokio::test]
    async fn a_batch_counts_messages_replies_handoffs_and_compliance_hits_once_each() {
        let (a, _, _) = fixture();
        let openid = wca_core::OpenId::parse("o").expect("openid");
        let events = [
            Event::message_received("msg:1", "o", "text", 0, None),
            Event::message_received("msg:2", "o", "text", 0, None),
            Event::reply_sent("msg:1", "o", "text", 0),
            Event::handoff_requested("msg:2", &openid, wca_core::HandoffReason::Keyword, false, 0),
        ];
        let mut bodies: Vec<(&str, String)> = events
            .iter()
            .map(|e| ("m", serde_json::to_string(e).expect("json")))
            .collect();
        // A redelivery of the first message, and a poison record.
        bodies.push(("m-again", bodies[0].1.clone()));
        bodies.push(("m-bad", "not an event".to_owned()));
        let (resp, metrics) = a.handle_counted(batch(&bodies)).await;
        assert_eq!(resp.batch_item_failures.len(), 1);
        assert_eq!(metrics.get(Metric::Messages), Some(2.0));
        assert_eq!(metrics.get(Metric::Replies), Some(1.0));
        assert_eq!(metrics.get(Metric::Handoffs), Some(1.0));
        assert_eq!(
            metrics.get(Metric::ComplianceHits),
            Some(0.0),
            "zero, not absent"
        );
        assert_eq!(metrics.get(Metric::LatencyMs), None);
    }
}
