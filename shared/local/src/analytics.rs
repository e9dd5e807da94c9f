//! The in-process analytics consumer: events from [`crate::event_channel`]
//! into [`Counters`], through the same `wca_core::analytics::apply` the
//! SQS-driven analytics function uses.

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;
use wca_core::{Counters, Event, PortError, analytics};

/// How many times one event is tried before it is given up on.
const ATTEMPTS: u32 = 4;
/// The wait before the first retry; it doubles after each.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Spawns the consumer: every event received is counted once (by id) in
/// `counters`, with days and hours local to `tz`.
///
/// A counter store that is briefly unavailable is retried a few times with
/// a short backoff; after that, or on an error retrying cannot fix, the
/// event is logged (by id) and skipped, so one bad event never stalls the
/// queue. The task ends once every sender of `rx` is dropped and the queue
/// is drained.
pub fn spawn_analytics(
    mut rx: Receiver<Event>,
    counters: Arc<dyn Counters>,
    tz: TimeZone,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            count(counters.as_ref(), &event, &tz).await;
        }
        tracing::debug!("analytics consumer stopped: no event sender is left");
    })
}

/// Applies one event, retrying while the store is unavailable.
async fn count(counters: &dyn Counters, event: &Event, tz: &TimeZone) {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        match analytics::apply(counters, event, tz).await {
            Ok(counted) => {
                tracing::debug!(event_id = %event.id, counted, "event applied to counters");
                return;
            }
            Err(PortError::Unavailable(reason)) if attempt < ATTEMPTS => {
                tracing::debug!(event_id = %event.id, attempt, %reason, "counters unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(err) => {
                tracing::warn!(
                    event_id = %event.id,
                    attempts = attempt,
                    error = %err,
                    "event not counted; skipping it"
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use wca_core::{EventSink, memory::MemoryCounters};

    use super::*;
    use crate::{RedbStore, event_channel};

    /// Counters that fail the first `failures` calls with `error`, then
    /// behave like memory counters.
    struct Flaky {
        failures: AtomicU32,
        error: fn() -> PortError,
        inner: MemoryCounters,
    }

    #[async_trait]
    impl Counters for Flaky {
        async fn add_once(
            &self,
            once_id: &str,
            keys: &[String],
            marker_expires_at: i64,
        ) -> Result<bool, PortError> {
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err((self.error)());
            }
            self.inner.add_once(once_id, keys, marker_expires_at).await
        }

        async fn get(&self, key: &str) -> Result<u64, PortError> {
            self.inner.get(key).await
        }
    }

    #[tokio::test]
    async fn the_analytics_consumer_counts_a_duplicated_event_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RedbStore::open(&dir.path().join("wca.redb")).expect("open");
        let (sink, rx) = event_channel(8);
        let consumer = spawn_analytics(rx, Arc::new(store.clone()), TimeZone::UTC);

        let event = Event::message_received("msg:1", "o-user", "text", 1_700_000_000, None);
        sink.emit(std::slice::from_ref(&event)).await.expect("emit");
        sink.emit(&[event]).await.expect("emit the redelivery");
        drop(sink);
        consumer
            .await
            .expect("consumer ends once the sender is dropped");

        for key in [
            "msgs:day:2023-11-14",
            "msgs:day:2023-11-14:type:text",
            "msgs:hour:2023-11-14T22",
        ] {
            assert_eq!(store.get(key).await.expect("get"), 1, "{key}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_briefly_unavailable_store_is_retried_until_the_event_counts() {
        let counters = Arc::new(Flaky {
            failures: AtomicU32::new(ATTEMPTS - 1),
            error: || PortError::Unavailable("throttled".into()),
            inner: MemoryCounters::default(),
        });
        let (sink, rx) = event_channel(8);
        let consumer = spawn_analytics(rx, counters.clone(), TimeZone::UTC);
        sink.emit(&[Event::reply_sent("msg:1", "o", "text", 0)])
            .await
            .expect("emit");
        drop(sink);
        consumer.await.expect("consumer");
        assert_eq!(
            counters.get("replies:day:1970-01-01").await.expect("get"),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_that_keeps_failing_is_skipped_and_the_next_one_still_counts() {
        let counters = Arc::new(Flaky {
            failures: AtomicU32::new(1),
            error: || PortError::Rejected("too large".into()),
            inner: MemoryCounters::default(),
        });
        let (sink, rx) = event_channel(8);
        let consumer = spawn_analytics(rx, counters.clone(), TimeZone::UTC);
        sink.emit(&[
            Event::reply_sent("msg:1", "o", "text", 0),
            Event::reply_sent("msg:2", "o", "text", 0),
        ])
        .await
        .expect("emit");
        drop(sink);
        consumer.await.expect("consumer");
        assert_eq!(
            counters.get("replies:day:1970-01-01").await.expect("get"),
            1,
            "a rejected event is not retried; the one after it counts"
        );
    }
}
