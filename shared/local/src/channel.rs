//! [`ChannelEventSink`]: the in-process stand-in for the SQS queue that
//! carries events from the webhook to the analytics consumer.
//!
//! The channel is bounded, so a consumer that falls behind slows the
//! producers down instead of letting memory grow. Unlike SQS it is not
//! durable: events still queued when the process stops are lost, which is
//! acceptable for `wca serve` (counters are statistics, the archive is the
//! record).

use async_trait::async_trait;
use tokio::sync::mpsc;
use wca_core::{Event, EventSink, PortError};

/// An [`EventSink`] that sends every event into a bounded channel.
#[derive(Debug, Clone)]
pub struct ChannelEventSink {
    tx: mpsc::Sender<Event>,
}

/// A sink and the receiver that gets what it emits, holding at most
/// `capacity` events in between (a `capacity` of 0 is taken as 1).
///
/// The receiver's `recv` returns `None` once every clone of the sink is
/// dropped, which is how the consumer learns to stop.
pub fn event_channel(capacity: usize) -> (ChannelEventSink, mpsc::Receiver<Event>) {
    // tokio panics on a zero-capacity channel; a config typo must not.
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (ChannelEventSink { tx }, rx)
}

#[async_trait]
impl EventSink for ChannelEventSink {
    /// Sends the events in order, waiting while the channel is full. Fails
    /// with [`PortError::Unavailable`] once the receiver is gone; events
    /// sent before that stay delivered.
    async fn emit(&self, events: &[Event]) -> Result<(), PortError> {
        for event in events {
            self.tx
                .send(event.clone())
                .await
                .map_err(|_| PortError::Unavailable("the event consumer has stopped".to_owned()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wca_core::contract;

    #[tokio::test]
    async fn channel_sink_keeps_the_event_sink_contract() {
        let (sink, mut rx) = event_channel(16);
        contract::event_sink(&sink, || {
            let mut got = Vec::new();
            while let Ok(event) = rx.try_recv() {
                got.push(event);
            }
            std::future::ready(got)
        })
        .await;
    }

    #[tokio::test]
    async fn emitting_after_the_consumer_stopped_is_unavailable() {
        let (sink, rx) = event_channel(4);
        drop(rx);
        let event = Event::requests_rejected("bad_signature", 1, "r-1", 0);
        let err = sink.emit(&[event]).await.expect_err("nobody is listening");
        assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_full_channel_makes_the_producer_wait_instead_of_dropping_events() {
        let (sink, mut rx) = event_channel(1);
        let events: Vec<Event> = (0..3)
            .map(|i| Event::requests_rejected("bad_signature", 1, &format!("r-{i}"), i))
            .collect();
        let producer = tokio::spawn({
            let events = events.clone();
            async move { sink.emit(&events).await }
        });
        let mut got = Vec::new();
        while let Some(event) = rx.recv().await {
            got.push(event);
        }
        producer.await.expect("producer task").expect("emit");
        assert_eq!(got, events, "all arrive, in order");
    }

    #[test]
    fn a_zero_capacity_is_taken_as_one_rather_than_panicking() {
        let (sink, _rx) = event_channel(0);
        assert_eq!(sink.tx.max_capacity(), 1);
    }
}
