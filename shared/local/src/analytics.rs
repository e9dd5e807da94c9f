//! The in-process analytics consumer: events from [`crate::event_channel`]
//! into [`Counters`], through the same `wca_core::analytics::apply` the
//! SQS-driven analytics function uses.

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;
use wca_core::{Counters, Event, EventSink, PortError, analytics};

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

/// An [`EventSink`] that counts each event in the store as it is emitted,
/// through the same `wca_core::analytics::apply`: `wca serve`'s events are
/// on disk before the webhook acknowledges the message, so a process that
/// dies (kill -9, power cut) loses no count, and a retry after a crash
/// counts nothing twice (each event is counted once by id).
///
/// With the redb store's group commit, the counting of concurrent messages
/// shares their commits, so this costs no extra `fsync` per message.
pub struct CountingSink {
    counters: Arc<dyn Counters>,
    tz: TimeZone,
}

impl CountingSink {
    /// A sink counting into `counters`, with days and hours local to `tz`.
    pub fn new(counters: Arc<dyn Counters>, tz: TimeZone) -> Self {
        Self { counters, tz }
    }
}

#[async_trait::async_trait]
impl EventSink for CountingSink {
    /// Counts the events in order; the first that cannot be counted fails
    /// the call (the ones before it stay counted, and counting them again
    /// on a retry changes nothing).
    async fn emit(&self, events: &[Event]) -> Result<(), PortError> {
        for event in events {
            analytics::apply(self.counters.as_ref(), event, &self.tz).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use wca_core::memory::MemoryCounters;

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
        async fn add_once_by(
            &self,
            once_id: &str,
            keys: &[String],
            by: u64,
            marker_expires_at: i64,
        ) -> Result<bool, PortError> {
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err((self.error)());
            }
            self.inner
                .add_once_by(once_id, keys, by, marker_expires_at)
                .await
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

    #[tokio::test]
    async fn the_counting_sink_has_counted_an_event_on_disk_when_emit_returns() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wca.redb");
        let store = RedbStore::open(&path).expect("open");
        let sink = CountingSink::new(Arc::new(store.clone()), TimeZone::UTC);
        let event = Event::message_received("msg:1", "o-user", "text", 1_700_000_000, None);
        sink.emit(std::slice::from_ref(&event)).await.expect("emit");
        sink.emit(&[event]).await.expect("emit the retry's event");
        // No consumer to wait for: close the file and read it afresh.
        drop((sink, store));
        let reopened = RedbStore::open(&path).expect("reopen");
        assert_eq!(reopened.get("msgs:day:2023-11-14").await.expect("get"), 1);
    }

    #[tokio::test]
    async fn the_counting_sink_fails_the_emit_when_the_store_cannot_count() {
        let counters = Arc::new(Flaky {
            failures: AtomicU32::new(1),
            error: || PortError::Unavailable("disk full".into()),
            inner: MemoryCounters::default(),
        });
        let sink = CountingSink::new(counters.clone(), TimeZone::UTC);
        let err = sink
            .emit(&[Event::reply_sent("msg:1", "o", "text", 0)])
            .await
            .expect_err("an uncounted event is an error for the webhook to see");
        assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
        assert_eq!(
            counters.get("replies:day:1970-01-01").await.expect("get"),
            0
        );
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
