//! The filter function, two ways in:
//!
//! - **Direct invoke** with `{"text": "..."}` returns the check as JSON, the
//!   same shape as one line of `wca filter`:
//!   `{"text", "hits": [{"word", "category", "action", "start", "end"}], "action", "masked"}`
//!   (`action` is `pass` when clean; `start`/`end` are byte offsets).
//! - **SQS**: the compliance scan. An EventBridge rule sends every
//!   `MessageReceived` event to a queue; for each text (or recognised
//!   voice) message this loads the archived message, checks it with the
//!   current dictionary and, when it holds dictionary words, publishes a
//!   `ComplianceHit` event, which the analytics function writes to the
//!   audit log and counts. The event id is `compliance:inbound:{msg_key}`,
//!   so redeliveries and the webhook's own check of the same message are
//!   recorded once. Failed records are reported as batch item failures.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use wca_core::{ManualClock, memory::{MemoryArchive, MemoryEventSink}};
//! use wca_filter::{DictionaryFiles, ReloadingFilter};
//! use wca_filter_fn::FilterService;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let source = DictionaryFiles { builtin: true, ..Default::default() };
//! let service = FilterService {
//!     filter: ReloadingFilter::new(source, Duration::from_secs(30)).unwrap(),
//!     archive: Arc::new(MemoryArchive::default()),
//!     events: Arc::new(MemoryEventSink::default()),
//!     clock: Arc::new(ManualClock::new(0)),
//! };
//! let out = service.handle(serde_json::json!({"text": "稳 赚 不 赔"})).await.unwrap();
//! assert_eq!(out["action"], "block");
//! assert_eq!(out["masked"], "*******");
//! # });
//! ```

use std::{path::PathBuf, sync::Arc};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::Deserialize;
use wca_core::{Clock, Direction, Event, EventKind, EventSink, MessageArchive, PortError};
use wca_filter::ReloadingFilter;

/// Why an invocation or one SQS record failed.
#[derive(Debug, thiserror::Error)]
pub enum FilterFnError {
    /// The payload is neither `{"text": ...}` nor an SQS batch.
    #[error("expected {{\"text\": \"...\"}} or an SQS batch: {0}")]
    BadRequest(String),
    /// A record's body is not a wca event (retries will not help; after
    /// `maxReceiveCount` it moves to the dead-letter queue).
    #[error("record is not a wca event: {0}")]
    Poison(String),
    /// A store or the bus failed; a retry may succeed.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl From<FilterFnError> for lambda_runtime::Diagnostic {
    /// `BadRequest` and `Poison` are the caller's mistakes (retrying the
    /// same payload fails again); `Retryable` may succeed later.
    fn from(e: FilterFnError) -> Self {
        let error_type = match e {
            FilterFnError::BadRequest(_) => "BadRequest",
            FilterFnError::Poison(_) => "NonRetryable",
            FilterFnError::Port(_) => "Retryable",
        };
        Self {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// The function's state: the dictionary and the ports of the scan.
#[derive(Clone)]
pub struct FilterService {
    /// The filter, following its dictionary files.
    pub filter: ReloadingFilter,
    /// Where the webhook archived the messages.
    pub archive: Arc<dyn MessageArchive>,
    /// Where `ComplianceHit` events go.
    pub events: Arc<dyn EventSink>,
    /// Now (archive expiry).
    pub clock: Arc<dyn Clock>,
}

#[derive(Deserialize)]
struct Direct {
    text: String,
}

/// What the scan did with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// Not a text message event: nothing to scan.
    NotText,
    /// The message is no longer (or was never) in the archive.
    NotArchived,
    /// Scanned, no dictionary word.
    Clean,
    /// Scanned; this many hits were published.
    Hits(usize),
}

impl FilterService {
    /// Handles one invocation: a direct check or an SQS batch.
    pub async fn handle(
        &self,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value, FilterFnError> {
        let bad = |e: serde_json::Error| FilterFnError::BadRequest(e.to_string());
        if payload.get("Records").is_some() {
            let batch: SqsEvent = serde_json::from_value(payload).map_err(bad)?;
            let response = self.handle_batch(batch).await;
            return serde_json::to_value(response).map_err(bad);
        }
        let direct: Direct = serde_json::from_value(payload).map_err(bad)?;
        Ok(self.check(&direct.text))
    }

    /// The check of one text, as JSON.
    pub fn check(&self, text: &str) -> serde_json::Value {
        let filter = self.filter.current();
        let report = filter.check(text).report(text);
        serde_json::to_value(report).unwrap_or(serde_json::Value::Null)
    }

    /// The compliance scan of one SQS batch; failed records are listed.
    pub async fn handle_batch(&self, batch: SqsEvent) -> SqsBatchResponse {
        wca_aws::for_each_record(batch, |body| async move { self.scan(&body).await }).await
    }

    /// Scans the message behind one record's `MessageReceived` event.
    pub async fn scan(&self, body: &str) -> Result<Scanned, FilterFnError> {
        let event =
            wca_aws::event_from_body(body).map_err(|e| FilterFnError::Poison(e.to_string()))?;
        let EventKind::MessageReceived {
            msg_key,
            openid,
            msg_type,
            ..
        } = &event.kind
        else {
            return Ok(Scanned::NotText);
        };
        if msg_type != "text" && msg_type != "voice" {
            return Ok(Scanned::NotText);
        }
        let now = self.clock.now();
        let Some(message) = self.archive.get(openid, msg_key, now).await? else {
            tracing::warn!(msg_key = %msg_key, "message not in the archive; not scanned");
            return Ok(Scanned::NotArchived);
        };
        let Some(text) = message.text() else {
            return Ok(Scanned::NotText);
        };
        let filter = self.filter.current();
        let verdict = filter.check(text);
        let Some(action) = verdict.action() else {
            return Ok(Scanned::Clean);
        };
        let hits = verdict.compliance_words();
        let count = hits.len();
        let event = Event::compliance_hit(
            msg_key,
            &message.openid,
            Direction::Inbound,
            action.as_str(),
            "recorded",
            hits,
            now,
        );
        self.events.emit(&[event]).await?;
        Ok(Scanned::Hits(count))
    }
}

/// Comma-separated paths from an environment variable (empty when unset).
pub fn paths_from_env(var: &str) -> Vec<PathBuf> {
    std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests;
