//! Campaigns over a queue, as the AWS stack runs them: the `broadcast`
//! function expands each due occurrence into [`DeliveryBatch`]es on a
//! [`DeliveryQueue`], and the `deliver` function hands each batch to a
//! [`BatchDeliverer`].
//!
//! The queue delivers at least once; the delivery claims make each
//! recipient's message go out at most once. A claim that a dead worker
//! left `Sending` is recorded as `interrupted` once it is older than any
//! live worker's send could be, and never sent again: WeChat may have it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    Campaign, Delivered, Deliverer, Deliveries, Delivery, INTERRUPTED_AFTER_SECS, Outcome, Status,
    occurrence_id,
};
use crate::PortError;
use crate::outbound::RateLimit;

/// Recipients per queued batch: about 3 KB of JSON, far below SQS's
/// 256 KB, and a few seconds of sending.
pub const BATCH: usize = 100;

/// The longest a queue holds a message back (SQS's `DelaySeconds`).
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

/// Recipients of one occurrence, handed from the expansion to a delivery
/// worker: the body of one queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryBatch {
    /// The campaign.
    pub campaign_id: String,
    /// The occurrence's scheduled time (Unix seconds).
    pub scheduled_at: i64,
    /// Who gets it.
    pub openids: Vec<String>,
    /// How many times it was queued again to wait (WeChat busy, a setup
    /// error); see [`MAX_WAITS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waits: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Waits after which a batch that is not held by a pause or quiet hours
/// is an error for the queue's dead-letter queue (and its alarm) instead
/// of waiting again: 288 waits are a day of 5-minute waits.
pub const MAX_WAITS: u32 = 288;

/// `openids` in batches of [`BATCH`].
pub fn batches_of(
    campaign_id: &str,
    scheduled_at: i64,
    openids: Vec<String>,
) -> Vec<DeliveryBatch> {
    openids
        .chunks(BATCH)
        .map(|chunk| DeliveryBatch {
            campaign_id: campaign_id.to_owned(),
            scheduled_at,
            openids: chunk.to_vec(),
            waits: 0,
        })
        .collect()
}

/// Where expanded pages wait for a delivery worker.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Queues `batches`, each to be delivered after `delay` (at most
    /// [`MAX_QUEUE_DELAY`]). Once this returns `Ok`, every batch is
    /// delivered at least once.
    async fn enqueue(&self, batches: &[DeliveryBatch], delay: Duration) -> Result<(), PortError>;
}

/// What one batch came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Sent now.
    pub sent: u64,
    /// Skipped now, with a reason in their records.
    pub skipped: u64,
    /// Failed now, with an errcode in their records.
    pub failed: u64,
    /// Already recorded (a redelivered batch): nothing sent.
    pub already: u64,
    /// Claims a dead worker left `Sending`, now recorded as `interrupted`.
    pub settled: u64,
    /// Recipients that must wait (WeChat busy, the campaign paused, quiet
    /// hours): queue this batch again after the delay. The text says why.
    pub later: Option<(DeliveryBatch, Duration, String)>,
}

/// Delivers queued batches: the `deliver` function's work.
pub struct BatchDeliverer {
    deliverer: Arc<Deliverer>,
    concurrency: usize,
    interrupted_after: i64,
    /// One rate limit per campaign and rate, shared by the batches this
    /// worker runs.
    limits: Mutex<HashMap<(String, u32), Arc<RateLimit>>>,
}

impl BatchDeliverer {
    /// Sends through `deliverer`, `concurrency` recipients at once.
    pub fn new(deliverer: Arc<Deliverer>, concurrency: usize) -> Self {
        Self {
            deliverer,
            concurrency: concurrency.max(1),
            interrupted_after: INTERRUPTED_AFTER_SECS,
            limits: Mutex::new(HashMap::new()),
        }
    }

    /// A claim still `Sending` after `secs` was cut off by a dead worker
    /// (default [`INTERRUPTED_AFTER_SECS`]; it must be longer than a live
    /// worker's longest send).
    #[must_use]
    pub fn interrupted_after(mut self, secs: i64) -> Self {
        self.interrupted_after = secs.max(0);
        self
    }

    fn limit(&self, campaign: &Campaign) -> Option<Arc<RateLimit>> {
        let rate = campaign.rate_per_sec?;
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            limits
                .entry((campaign.id.clone(), rate))
                .or_insert_with(|| Arc::new(RateLimit::new(rate, 1)))
                .clone(),
        )
    }

    /// Delivers `batch`: each recipient at most once, whatever happened to
    /// earlier copies of it.
    pub async fn deliver(&self, batch: DeliveryBatch) -> Result<BatchOutcome, PortError> {
        let store = self.deliverer.store.clone();
        let clock = self.deliverer.clock.clone();
        let mut out = BatchOutcome::default();
        let Some(campaign) = store.get(&batch.campaign_id).await? else {
            tracing::warn!(campaign_id = %batch.campaign_id, "a queued batch's campaign is gone; dropped");
            return Ok(out);
        };
        if matches!(campaign.status, Status::Paused | Status::PendingApproval) {
            out.later = Some((batch, MAX_QUEUE_DELAY, "the campaign is paused".to_owned()));
            return Ok(out);
        }
        if campaign.is_quiet(clock.now()) {
            out.later = Some((batch, MAX_QUEUE_DELAY, "quiet hours".to_owned()));
            return Ok(out);
        }
        let occurrence = occurrence_id(&batch.campaign_id, batch.scheduled_at);
        let limit = self.limit(&campaign);
        let permits = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        let campaign = Arc::new(campaign);
        let mut tasks = Deliveries::new();
        for openid in batch.openids.iter().cloned() {
            self.deliverer
                .spawn_paced(
                    &mut tasks,
                    limit.as_deref(),
                    &permits,
                    &campaign,
                    &occurrence,
                    openid,
                )
                .await?;
        }
        // Whoever is not accounted for below (a task that panicked) is
        // tried again: their claim, if any, keeps them from a second send.
        let mut unaccounted: BTreeSet<String> = batch.openids.iter().cloned().collect();
        let mut retry = Vec::new();
        let mut wait = Duration::ZERO;
        let mut why = String::new();
        // A store error while settling is returned once every send of the
        // batch has ended: dropping them mid-send would cut them off.
        let mut store_error = None;
        while let Some(joined) = tasks.join_next().await {
            let Ok((openid, result)) = joined else {
                continue;
            };
            unaccounted.remove(&openid);
            match result {
                Ok(Delivered::Done(Outcome::Sent)) => out.sent += 1,
                Ok(Delivered::Done(Outcome::Skipped { .. })) => out.skipped += 1,
                Ok(Delivered::Done(Outcome::Failed { .. } | Outcome::Sending)) => out.failed += 1,
                Ok(Delivered::AlreadyRecorded(claim)) if claim.outcome == Outcome::Sending => {
                    let age = clock.now() - claim.at;
                    if age >= self.interrupted_after {
                        tracing::warn!(occurrence_id = %occurrence, "a campaign send was cut off by a worker's end; not sent again");
                        let failed = Delivery {
                            outcome: Outcome::Failed {
                                errcode: "interrupted".to_owned(),
                            },
                            ..claim
                        };
                        match store.finish_delivery(&occurrence, &failed).await {
                            Ok(()) => out.settled += 1,
                            Err(e) => store_error = Some(e),
                        }
                    } else {
                        let left = u64::try_from(self.interrupted_after - age).unwrap_or(0) + 1;
                        wait = wait.max(Duration::from_secs(left));
                        why = "another worker may be sending it now".to_owned();
                        retry.push(openid);
                    }
                }
                Ok(Delivered::AlreadyRecorded(_)) => out.already += 1,
                Err(not_now) => {
                    wait = wait.max(not_now.retry_in);
                    why = not_now.why;
                    retry.push(openid);
                }
            }
        }
        if let Some(e) = store_error {
            return Err(e);
        }
        retry.extend(unaccounted);
        if !retry.is_empty() {
            let again = DeliveryBatch {
                openids: retry,
                waits: batch.waits + 1,
                ..batch
            };
            out.later = Some((
                again,
                wait.clamp(Duration::from_secs(1), MAX_QUEUE_DELAY),
                why,
            ));
        }
        Ok(out)
    }
}
