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

    // Time is paused: tokio only moves it forward when every task is idle
    // (a `spawn_blocking` store call in progress holds it back), so each
    // `sleep` below returns exactly after the passes due before it have
    // finished. The sleeps order the steps; they do not wait for luck.
    #[tokio::test(start_paused = true)]
    async fn retention_purges_expired_messages_at_start_and_every_interval() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RedbStore::open(&dir.path().join("wca.redb")).expect("open");
        let clock = Arc::new(ManualClock::new(1_000));
        assert!(store.put(&message("msg:old", 900)).await.expect("put"));
        assert!(store.put(&message("msg:later", 1_500)).await.expect("put"));

        let every = Duration::from_secs(60);
        let sweeper = spawn_retention(store.clone(), clock.clone(), every);

        tokio::time::sleep(every / 2).await;
        assert_eq!(
            store.stored_messages().await.expect("count"),
            1,
            "the first pass runs at once and removes only the expired message"
        );
        assert!(
            store
                .get("o-user", "msg:later", clock.now())
                .await
                .expect("get")
                .is_some()
        );

        clock.set(2_000);
        tokio::time::sleep(every).await;
        assert_eq!(
            store.stored_messages().await.expect("count"),
            0,
            "the next pass, one interval later, sees the new time"
        );

        sweeper.abort();
    }
}
