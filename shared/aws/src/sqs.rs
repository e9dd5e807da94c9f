//! Reading events from SQS: bodies are either EventBridge envelopes (the
//! rule's target) or bare events (sent to the queue directly); campaign
//! delivery batches on their own queue.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use wca_core::campaign::{DeliveryBatch, DeliveryQueue, MAX_QUEUE_DELAY};
use wca_core::{ArchivedMessage, Event, MessageQueue, PortError};

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
    /// A FIFO queue's message group.
    pub group_id: Option<String>,
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
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
            )
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
                group_id: m
                    .attributes()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                    })
                    .cloned(),
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
        self.retry_after(receipt_handle, 0).await
    }

    /// Makes a received message visible again in `secs` seconds instead
    /// of at the end of the queue's visibility timeout.
    pub async fn retry_after(&self, receipt_handle: &str, secs: i32) -> Result<(), PortError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(|e| unavailable("change_message_visibility", e))?;
        Ok(())
    }

    /// Sends a raw body to a FIFO queue, in `group`, deduplicated by
    /// `dedup` (both made acceptable by [`fifo_id`]).
    pub async fn send_fifo(&self, body: &str, group: &str, dedup: &str) -> Result<(), PortError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(fifo_id(group))
            .message_deduplication_id(fifo_id(dedup))
            .message_body(body)
            .send()
            .await
            .map_err(|e| unavailable("send_message", e))?;
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

/// [`MessageQueue`] on an SQS FIFO queue (async replies on Lambda): the
/// group is the sender's openid, so each user's messages reach the
/// responder in order while users go in parallel; the deduplication id is
/// the message key, so a WeChat retry queued again within SQS's five
/// minutes is dropped. The body is the archived message as JSON.
#[derive(Debug, Clone)]
pub struct SqsMessageQueue {
    client: Client,
    queue_url: String,
}

impl SqsMessageQueue {
    /// The FIFO queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Creates the FIFO queue `{name}.fifo` (the stand-in, tools), whose
    /// messages are hidden `visibility_secs` once received.
    pub async fn create(
        client: Client,
        name: &str,
        visibility_secs: u32,
    ) -> Result<Self, PortError> {
        let url = create_queue(&client, &format!("{name}.fifo"), visibility_secs, true).await?;
        Ok(Self::new(client, url))
    }

    /// The queue for reading back (tests, tools).
    pub fn reader(&self) -> SqsEventQueue {
        SqsEventQueue::new(self.client.clone(), self.queue_url.clone())
    }
}

/// Creates queue `name` (FIFO when `fifo`, and then `name` ends in
/// `.fifo`) and returns its URL.
async fn create_queue(
    client: &Client,
    name: &str,
    visibility_secs: u32,
    fifo: bool,
) -> Result<String, PortError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let mut create = client.create_queue().queue_name(name).attributes(
        QueueAttributeName::VisibilityTimeout,
        visibility_secs.to_string(),
    );
    if fifo {
        create = create.attributes(QueueAttributeName::FifoQueue, "true");
    }
    create
        .send()
        .await
        .map_err(|e| unavailable("create_queue", e))?
        .queue_url
        .ok_or_else(|| PortError::Unavailable("create_queue: no queue URL".into()))
}

/// `id` as SQS takes a FIFO group or deduplication id (1 to 128 printable
/// ASCII characters, no space); anything else becomes its SHA-1 in hex,
/// the same for the same id.
pub fn fifo_id(id: &str) -> String {
    if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
        return id.to_owned();
    }
    Sha1::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[async_trait]
impl MessageQueue for SqsMessageQueue {
    async fn enqueue(&self, message: &ArchivedMessage) -> Result<(), PortError> {
        let body = serde_json::to_string(message)
            .map_err(|e| PortError::Rejected(format!("message as JSON: {e}")))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(fifo_id(&message.openid))
            .message_deduplication_id(fifo_id(&message.key))
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

    #[test]
    fn fifo_ids_keep_keys_sqs_accepts_and_hash_the_others_stably() {
        assert_eq!(fifo_id("msg:1234567890"), "msg:1234567890");
        assert_eq!(fifo_id("oUser-0_1"), "oUser-0_1");
        let long = "x".repeat(129);
        for odd in ["", "evt:o u:1", long.as_str(), "evt:用户:1"] {
            let id = fifo_id(odd);
            assert_eq!(id.len(), 40, "{odd:?} -> {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            assert_eq!(fifo_id(odd), id, "the same id each time");
        }
        assert_ne!(fifo_id("evt:o u:1"), fifo_id("evt:o u:2"));
    }
}

/// [`DeliveryQueue`] on a standard SQS queue (campaigns on Lambda): one
/// message per [`DeliveryBatch`], sent ten to a call. Standard, not FIFO:
/// order does not matter, duplicates are harmless (the delivery claims
/// drop them), and the `deliver` function scales out on it.
#[derive(Debug, Clone)]
pub struct SqsDeliveryQueue {
    client: Client,
    queue_url: String,
}

impl SqsDeliveryQueue {
    /// The queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Creates the standard queue `name` (the stand-in, tools), whose
    /// messages are hidden `visibility_secs` once received.
    pub async fn create(
        client: Client,
        name: &str,
        visibility_secs: u32,
    ) -> Result<Self, PortError> {
        let url = create_queue(&client, name, visibility_secs, false).await?;
        Ok(Self::new(client, url))
    }

    /// The queue for receiving (the local worker, tests).
    pub fn reader(&self) -> SqsEventQueue {
        SqsEventQueue::new(self.client.clone(), self.queue_url.clone())
    }
}

#[async_trait]
impl DeliveryQueue for SqsDeliveryQueue {
    async fn enqueue(&self, batches: &[DeliveryBatch], delay: Duration) -> Result<(), PortError> {
        let delay = i32::try_from(delay.min(MAX_QUEUE_DELAY).as_secs()).unwrap_or(0);
        for ten in batches.chunks(10) {
            let mut entries = Vec::with_capacity(ten.len());
            for (i, batch) in ten.iter().enumerate() {
                let body = serde_json::to_string(batch)
                    .map_err(|e| PortError::Unavailable(format!("a delivery batch: {e}")))?;
                entries.push(
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .delay_seconds(delay)
                        .build()
                        .map_err(|e| PortError::Unavailable(format!("send_message_batch: {e}")))?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| unavailable("send_message_batch", e))?;
            // A partly failed call is failed as a whole: sending all ten
            // again only duplicates batches, which the claims absorb.
            if let Some(first) = out.failed.first() {
                return Err(PortError::Unavailable(format!(
                    "send_message_batch: {} of {} refused ({})",
                    out.failed.len(),
                    ten.len(),
                    first.code
                )));
            }
        }
        Ok(())
    }
}
