//! The event sink on a custom EventBridge bus. A rule on the bus routes the
//! events to the analytics queue (see `template.yaml`); keeping them off the
//! default bus keeps them apart from schedule rules.

use async_trait::async_trait;
use aws_sdk_eventbridge::{Client, types::PutEventsRequestEntry};
use wca_core::{Event, EventSink, PortError};

use crate::unavailable;

/// EventBridge accepts at most this many entries per `PutEvents`.
const MAX_ENTRIES: usize = 10;

/// The `source` of every event wca publishes.
pub const SOURCE: &str = "wca";

/// Publishes events to a custom EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: Client,
    bus: String,
}

impl EventBridgeSink {
    /// A sink publishing to the bus named `bus`.
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn emit(&self, events: &[Event]) -> Result<(), PortError> {
        for chunk in events.chunks(MAX_ENTRIES) {
            let mut entries = Vec::with_capacity(chunk.len());
            for event in chunk {
                let detail = serde_json::to_string(event)
                    .map_err(|e| PortError::Rejected(format!("event not serialisable: {e}")))?;
                entries.push(
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(SOURCE)
                        .detail_type(event.kind.type_name())
                        .detail(detail)
                        .build(),
                );
            }
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| unavailable("put_events", e))?;
            let failed = out.failed_entry_count();
            if failed > 0 {
                let codes: Vec<&str> = out
                    .entries()
                    .iter()
                    .filter_map(|e| e.error_code())
                    .collect();
                return Err(PortError::Unavailable(format!(
                    "put_events: {failed} of {} entries refused ({})",
                    chunk.len(),
                    codes.join(", ")
                )));
            }
        }
        Ok(())
    }
}
