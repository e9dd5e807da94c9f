//! The retention sweeper: deletes what has expired, on a timer, so the
//! store file of a long-running `wca serve` does not grow without bound.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use wca_core::Clock;

use crate::RedbStore;

/// The shortest interval honoured; tokio's interval panics on zero.
const MIN_EVERY: Duration = Duration::from_millis(1);

/// Spawns the sweeper: [`RedbStore::purge`] at `clock.now()` once at start
/// and then every `every`, logging how much was deleted. A failed pass is
/// logged and tried again at the next tick. The task runs until aborted.
pub fn spawn_retention(store: RedbStore, clock: Arc<dyn Clock>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every.max(MIN_EVERY));
        // After a stall (a laptop asleep), one pass is enough: do not run a
        // burst of catch-up passes.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = clock.now();
            match store.purge(now).await {
                Ok(purged) => tracing::info!(
                    now,
                    messages = purged.messages,
                    replies = purged.replies,
                    idempotency_keys = purged.idempotency_keys,
                    counter_markers = purged.counter_markers,
                    events = purged.events,
                    conversations = purged.conversations,
                    "retention pass purged {} expired entries",
                    purged.total()
                ),
                Err(err) => {
                    tracing::warn!(now, error = %err, "retention pass failed; retrying next interval");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use wca_core::{ArchivedMessage, ManualClock, MessageArchive};

    use super::*;

    fn message(key: &str, expires_at: i64) -> ArchivedMessage {
        ArchivedMessage {
            key: key.to_owned(),
            openid: "o-user".to_owned(),
            msg_type: "text".to_owned(),
            create_time: 0,
            received_at: 0,
            raw_xml: "<xml/>".to_owned(),
            parsed: serde_json::Value::Null,
            expires_at,
        }
    }

    /// Polls the number of archived messages until it is `want`, for at
    /// most 10 s of real time (the store's writes run on their own thread,
    /// so paused tokio time cannot order them); returns the last count.
    async fn stored_becomes(store: &RedbStore, want: u64) -> u64 {
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = store.stored_messages().await.expect("count");
            if now == want || std::time::Instant::now() > give_up {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn retention_purges_expired_messages_at_start_and_every_interval() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RedbStore::open(&dir.path().join("wca.redb")).expect("open");
        let clock = Arc::new(ManualClock::new(1_000));
        assert!(store.put(&message("msg:old", 900)).await.expect("put"));
        assert!(store.put(&message("msg:later", 1_500)).await.expect("put"));

        let every = Duration::from_millis(20);
        let sweeper = spawn_retention(store.clone(), clock.clone(), every);

        assert_eq!(
            stored_becomes(&store, 1).await,
            1,
            "the first pass runs at once and removes the expired message"
        );
        // Several more passes at the same time remove nothing else.
        tokio::time::sleep(every * 5).await;
        assert_eq!(store.stored_messages().await.expect("count"), 1);
        assert!(
            store
                .get("o-user", "msg:later", clock.now())
                .await
                .expect("get")
                .is_some()
        );

        clock.set(2_000);
        assert_eq!(
            stored_becomes(&store, 0).await,
            0,
            "a later pass sees the new time"
        );

        sweeper.abort();
    }
}
