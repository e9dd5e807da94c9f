//! Triggered campaigns: fired by what a user writes instead of by the
//! clock (a coupon for a `promotion` question, 「有优惠券吗」).
//!
//! [`Triggers::fired`] matches a message against the active triggered
//! campaigns, takes the user's cooldown ([`CampaignStore::claim_cooldown`]:
//! at most once per user per period, racing messages included) and hands
//! back a [`DeliveryBatch`] of one, which the caller delivers like any
//! other: the day's occurrence (`{campaign}@{midnight UTC}`) keeps the
//! delivery claim and the report.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Campaign, CampaignStore, DeliveryBatch, Occurrence, OccurrenceState, Status};
use crate::PortError;

/// Where the webhook reports each text it handled, after it committed
/// it. Implementations never fail the message: a trigger that cannot run
/// is logged.
#[async_trait]
pub trait MessageTriggers: Send + Sync {
    /// `openid` wrote `text`, understood as `intent` (when the models ran),
    /// at `now`.
    async fn on_message(&self, openid: &str, text: &str, intent: Option<&str>, now: i64);
}

/// Matches messages against the triggered campaigns.
pub struct Triggers {
    store: Arc<dyn CampaignStore>,
    /// The triggered campaigns, read at most every `refresh`.
    cache: Mutex<Option<(Instant, Arc<Vec<Campaign>>)>>,
    refresh: Duration,
}

impl Triggers {
    /// Over `store`, re-reading the campaign list at most every `refresh`
    /// (a new or paused campaign takes effect within it).
    pub fn new(store: Arc<dyn CampaignStore>, refresh: Duration) -> Self {
        Self {
            store,
            cache: Mutex::new(None),
            refresh,
        }
    }

    async fn triggered(&self) -> Result<Arc<Vec<Campaign>>, PortError> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((read, list)) = cache.as_ref()
                && read.elapsed() < self.refresh
            {
                return Ok(list.clone());
            }
        }
        let list: Vec<Campaign> = self
            .store
            .list()
            .await?
            .into_iter()
            .filter(|c| matches!(c.schedule, super::Schedule::Trigger { .. }))
            .collect();
        let list = Arc::new(list);
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// The deliveries `openid`'s message fires: one batch of one per
    /// matching active campaign whose cooldown this call took.
    pub async fn fired(
        &self,
        openid: &str,
        text: &str,
        intent: Option<&str>,
        now: i64,
    ) -> Result<Vec<DeliveryBatch>, PortError> {
        let mut fired = Vec::new();
        for campaign in self.triggered().await?.iter() {
            let super::Schedule::Trigger { cooldown_secs, .. } = campaign.schedule else {
                continue;
            };
            if campaign.status != Status::Active
                || campaign.starts_at.is_some_and(|s| now < s)
                || campaign.ends_at.is_some_and(|e| now > e)
                || !campaign.schedule.fired_by(text, intent)
            {
                continue;
            }
            if !self
                .store
                .claim_cooldown(&campaign.id, openid, now, cooldown_secs)
                .await?
            {
                tracing::debug!(campaign_id = %campaign.id, "triggered campaign in its cooldown for this user");
                continue;
            }
            let day = now - now.rem_euclid(86_400);
            let mut occurrence = Occurrence::start(&campaign.id, day, now);
            occurrence.state = OccurrenceState::Expanded;
            occurrence.expanded_at = Some(now);
            // The day's first trigger makes it; later ones find it.
            self.store.claim_occurrence(&occurrence).await?;
            fired.push(DeliveryBatch {
                campaign_id: campaign.id.clone(),
                scheduled_at: day,
                openids: vec![openid.to_owned()],
                waits: 0,
            });
        }
        Ok(fired)
    }
}
