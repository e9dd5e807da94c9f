//! Reading events from SQS: bodies are either EventBridge envelopes (the
//! rule's target) or bare events (sent to the queue directly).

use aws_sdk_sqs::Client;
use serde::Deserialize;
use wca_core::{Event, PortError};

use crate::unavailable;

#[derive(Deserialize)]
struct Envelope {
    detail: Event,
}

/// The event in an SQS message body.
pub fn event_from_body(body: &str) -> Result<Event, serde_json::Error> {
    match serde_json::from_str::<Envelope>(body) {
        Ok(envelope) => Ok(envelope.detail),
        Err(_) => serde_json::from_str::<Event>(body),
    }
}

/// Runs `one` on the body of every record of an SQS batch, in order, and
/// lists the records it failed for Lambda's partial batch response (with
/// `ReportBatchItemFailures`, SQS then retries only those, and parks them
/// in the dead-letter queue after `maxReceiveCount`). Each outcome is
/// logged with the SQS message id, never the body.
pub async fn for_each_record<F, Fut, T, E>(
    batch: aws_lambda_events::event::sqs::SqsEvent,
    mut one: F,
) -> aws_lambda_events::event::sqs::SqsBatchResponse
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    T: std::fmt::Debug,
    E: std::fmt::Display,
{
    let mut response = aws_lambda_events::event::sqs::SqsBatchResponse::default();
    for record in batch.records {
        let id = record.message_id.unwrap_or_default();
        match one(record.body.unwrap_or_default()).await {
            Ok(outcome) => tracing::info!(sqs_message_id = %id, ?outcome, "record handled"),
            Err(e) => {
                tracing::warn!(sqs_message_id = %id, error = %e, "record failed");
                let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
    }
    response
}

/// A received message: its handle and its body.
#[derive(Debug, Clone)]
pub struct Received {
    /// SQS message id.
    pub message_id: String,
    /// Receipt handle, for delete or visibility changes.
    pub receipt_handle: String,
    /// The raw body.
    pub body: String,
}

/// A small SQS client for tests, tools and the local stand-in.
#[derive(Debug, Clone)]
pub struct SqsEventQueue {
    client: Client,
    queue_url: String,
}

impl SqsEventQueue {
    /// A queue by URL.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.queue_url
    }

    /// Receives up to 10 messages, waiting up to `wait_secs` for the first.
    pub async fn receive(&self, wait_secs: i32) -> Result<Vec<Received>, PortError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_secs)
            .send()
            .await
            .map_err(|e| unavailable("receive_message", e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| Received {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), PortError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| unavailable("delete_message", e))?;
        Ok(())
    }

    /// Makes a received message visible again at once (a failed attempt).
    pub async fn retry_now(&self, receipt_handle: &str) -> Result<(), PortError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| unavailable("change_message_visibility", e))?;
        Ok(())
    }

    /// Sends a raw body (tests use it to inject poison messages).
    pub async fn send_raw(&self, body: &str) -> Result<(), PortError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| unavailable("send_message", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_from_eventbridge_envelopes_and_bare_bodies() {
        let event = Event::reply_sent("msg:1", "o", "text", 5);
        let bare = serde_json::to_string(&event).expect("json");
        let envelope = format!(
            r#"{{"version":"0","id":"x","detail-type":"ReplySent","source":"wca","detail":{bare}}}"#
        );
        assert_eq!(event_from_body(&bare).expect("bare"), event);
        assert_eq!(event_from_body(&envelope).expect("envelope"), event);
        assert!(event_from_body("not json").is_err());
        assert!(event_from_body(r#"{"detail":{"nope":1}}"#).is_err());
    }
}
