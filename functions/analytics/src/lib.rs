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

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use wca_core::{Counters, EventLog, PortError, analytics};

/// How long the event log keeps an event.
pub const EVENT_RETENTION_SECS: i64 = 400 * 24 * 3600;

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
}

impl Analytics {
    /// A handler over these ports; days are counted in `tz`.
    pub fn new(
        counters: Arc<dyn Counters>,
        log: Arc<dyn EventLog>,
        tz: jiff::tz::TimeZone,
    ) -> Self {
        Self { counters, log, tz }
    }

    /// Handles one SQS batch; failed records are listed for retry.
    pub async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        wca_aws::for_each_record(batch, |body| async move { self.one(&body).await }).await
    }

    /// Handles one record's body.
    pub async fn one(&self, body: &str) -> Result<(), AnalyticsError> {
        let event =
            wca_aws::event_from_body(body).map_err(|e| AnalyticsError::Poison(e.to_string()))?;
        let stored = self
            .log
            .record(&event, event.at.saturating_add(EVENT_RETENTION_SECS))
            .await?;
        let counted = analytics::apply(self.counters.as_ref(), &event, &self.tz).await?;
        tracing::info!(event_id = %event.id, stored, counted, "event applied");
        Ok(())
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
}
