//! The classify function: intent and sentiment for received texts that
//! arrive unclassified (async mode, or a webhook with classification
//! off), and for re-classifying archived messages.
//!
//! An EventBridge rule sends every text and voice `MessageReceived` event
//! to its queue. For each one without an intent it loads the archived
//! message, runs both models and publishes `MessageClassified` (id
//! `classified:{msg_key}`, so a redelivery is counted once); the analytics
//! function counts it per intent and per sentiment on the message's day.
//! An event that already carries an intent was classified by the webhook
//! and is skipped. To re-classify an archived message, put a
//! `MessageReceived`-shaped event for its key (without `intent`) on the
//! queue. Failed records are reported as batch item failures.
//!
//! ```
//! use std::sync::Arc;
//! use wca_classify::{Classifier, Outcome};
//! use wca_core::{ArchivedMessage, Event, ManualClock, MessageArchive, memory::{MemoryArchive, MemoryEventSink}};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let archive = Arc::new(MemoryArchive::default());
//! archive.put(&ArchivedMessage {
//!     key: "msg:1".into(), openid: "o".into(), msg_type: "text".into(),
//!     create_time: 0, received_at: 0, raw_xml: String::new(),
//!     parsed: serde_json::json!({"type": "text", "content": "我要退货"}),
//!     expires_at: 3600,
//! }).await.unwrap();
//! let classifier = Classifier {
//!     nlp: Arc::new(wca_nlp::Nlp::default_models().unwrap()),
//!     archive,
//!     events: Arc::new(MemoryEventSink::default()),
//!     clock: Arc::new(ManualClock::new(0)),
//! };
//! let body = serde_json::to_string(&Event::message_received("msg:1", "o", "text", 0, None)).unwrap();
//! assert!(matches!(classifier.one(&body).await.unwrap(), Outcome::Classified(ref i) if i == "return_refund"));
//! # });
//! ```

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use wca_core::{Clock, Event, EventKind, EventSink, MessageArchive, PortError};
use wca_nlp::Nlp;

/// Why one record failed.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// The body is not a wca event (retries will not help).
    #[error("record is not a wca event: {0}")]
    Poison(String),
    /// A model failed on this text.
    #[error("classification failed: {0}")]
    Model(#[from] wca_nlp::NlpError),
    /// A store or the bus failed; a retry may succeed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Classified; the intent.
    Classified(String),
    /// The webhook had classified it already.
    AlreadyClassified,
    /// Not a text or voice message.
    NotText,
    /// No longer (or never) in the archive.
    NotArchived,
}

/// The handler with its models and ports.
#[derive(Clone)]
pub struct Classifier {
    /// Intent and sentiment models.
    pub nlp: Arc<Nlp>,
    /// Where the webhook archived the messages.
    pub archive: Arc<dyn MessageArchive>,
    /// Where `MessageClassified` goes.
    pub events: Arc<dyn EventSink>,
    /// Now.
    pub clock: Arc<dyn Clock>,
}

impl Classifier {
    /// Handles one SQS batch; failed records are listed for retry.
    pub async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        wca_aws::for_each_record(batch, |body| async move { self.one(&body).await }).await
    }

    /// Handles one record's body.
    pub async fn one(&self, body: &str) -> Result<Outcome, ClassifyError> {
        let event =
            wca_aws::event_from_body(body).map_err(|e| ClassifyError::Poison(e.to_string()))?;
        let EventKind::MessageReceived {
            msg_key,
            openid,
            msg_type,
            intent,
            ..
        } = &event.kind
        else {
            return Ok(Outcome::NotText);
        };
        if intent.is_some() {
            return Ok(Outcome::AlreadyClassified);
        }
        if msg_type != "text" && msg_type != "voice" {
            return Ok(Outcome::NotText);
        }
        let now = self.clock.now();
        let Some(message) = self.archive.get(openid, msg_key, now).await? else {
            tracing::warn!(msg_key = %msg_key, "message not in the archive; not classified");
            return Ok(Outcome::NotArchived);
        };
        let Some(text) = message.text() else {
            return Ok(Outcome::NotText);
        };
        let intent = self.nlp.classify(text)?;
        let sentiment = self.nlp.sentiment(text)?;
        let classified = Event::message_classified(
            msg_key,
            &message.openid,
            message.create_time,
            &intent.label,
            intent.confidence,
            &sentiment.label,
            sentiment.score,
            now,
        );
        self.events.emit(&[classified]).await?;
        Ok(Outcome::Classified(intent.label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wca_core::{
        ArchivedMessage, ManualClock, Understanding,
        memory::{MemoryArchive, MemoryEventSink},
    };

    struct Fixture {
        classifier: Classifier,
        archive: Arc<MemoryArchive>,
        events: Arc<MemoryEventSink>,
    }

    fn fixture() -> Fixture {
        let archive = Arc::new(MemoryArchive::default());
        let events = Arc::new(MemoryEventSink::default());
        Fixture {
            classifier: Classifier {
                nlp: Arc::new(Nlp::default_models().expect("embedded models")),
                archive: archive.clone(),
                events: events.clone(),
                clock: Arc::new(ManualClock::new(1_700_000_000)),
            },
            archive,
            events,
        }
    }

    async fn archive(f: &Fixture, key: &str, parsed: serde_json::Value) {
        let msg = ArchivedMessage {
            key: key.into(),
            openid: "o-user".into(),
            msg_type: "text".into(),
            create_time: 1_700_000_000,
            received_at: 1_700_000_000,
            raw_xml: String::new(),
            parsed,
            expires_at: 1_800_000_000,
        };
        f.archive.put(&msg).await.expect("archive");
    }

    fn received(key: &str, msg_type: &str, understood: Option<Understanding>) -> String {
        let e = Event::message_received(key, "o-user", msg_type, 1_700_000_000, understood);
        serde_json::to_string(&e).expect("json")
    }

    #[tokio::test]
    async fn an_unclassified_text_is_classified_once_per_message_id() {
        let f = fixture();
        archive(
            &f,
            "msg:1",
            serde_json::json!({"type": "text", "content": "转人工"}),
        )
        .await;
        let body = received("msg:1", "text", None);
        let outcome = f.classifier.one(&body).await.expect("one");
        assert_eq!(outcome, Outcome::Classified("human_agent".into()));
        f.classifier.one(&body).await.expect("redelivery");
        let events = f.events.take();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id, "classified:msg:1");
        assert_eq!(
            events[0], events[1],
            "a redelivery publishes the identical event"
        );
        let EventKind::MessageClassified {
            confidence,
            sentiment_score,
            sentiment,
            ..
        } = &events[0].kind
        else {
            panic!("expected MessageClassified, got {:?}", events[0]);
        };
        assert!((0.0..=1.0).contains(confidence));
        assert!((-1.0..=1.0).contains(sentiment_score));
        assert!(["negative", "neutral", "positive"].contains(&sentiment.as_str()));
    }

    #[tokio::test]
    async fn a_recognised_voice_message_is_classified_from_its_recognition() {
        let f = fixture();
        archive(
            &f,
            "msg:2",
            serde_json::json!({"type": "voice", "media_id": "m", "recognition": "我要退货"}),
        )
        .await;
        let outcome = f
            .classifier
            .one(&received("msg:2", "voice", None))
            .await
            .expect("one");
        assert_eq!(outcome, Outcome::Classified("return_refund".into()));
    }

    #[tokio::test]
    async fn classified_events_other_kinds_and_missing_messages_are_acknowledged_without_work() {
        let f = fixture();
        let c = &f.classifier;
        let done = received(
            "msg:3",
            "text",
            Some(Understanding::new("greeting", "neutral")),
        );
        assert_eq!(c.one(&done).await.expect("one"), Outcome::AlreadyClassified);
        assert_eq!(
            c.one(&received("msg:4", "image", None)).await.expect("one"),
            Outcome::NotText
        );
        assert_eq!(
            c.one(&received("msg:404", "text", None))
                .await
                .expect("one"),
            Outcome::NotArchived
        );
        assert!(f.events.take().is_empty());
    }

    #[tokio::test]
    async fn a_poison_record_fails_alone() {
        let f = fixture();
        archive(
            &f,
            "msg:5",
            serde_json::json!({"type": "text", "content": "你好"}),
        )
        .await;
        let batch: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "good", "body": received("msg:5", "text", None)},
            {"messageId": "bad", "body": "{}"},
        ]}))
        .expect("batch");
        let response = f.classifier.handle(batch).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["bad"]);
        assert_eq!(f.events.take().len(), 1);
    }
}
