//! Campaigns on Lambda: the design card's scheduled broadcasts.
//!
//! - **`broadcast`**, invoked by one EventBridge rule every minute:
//!   [`Broadcast::tick`] claims each due occurrence in the stack's table
//!   (a conditional write, so overlapping ticks never run one twice) and
//!   expands its audience page by page onto the delivery queue, keeping a
//!   cursor so an expansion cut off by the function's timeout resumes on
//!   the next tick.
//! - **`deliver`**, on the delivery queue: [`Deliver::handle`] claims
//!   each recipient before calling WeChat, so SQS's at-least-once
//!   delivery and a worker that dies mid-batch never send anyone the same
//!   occurrence twice. Recipients that must wait (WeChat busy, a paused
//!   campaign, quiet hours) are queued again with a delay instead of
//!   failing the message, so they never reach the dead-letter queue for
//!   waiting. Outside Lambda the same binary polls the queue itself
//!   ([`Deliver::poll`]).
//!
//! - **`admin`**, the admin API (`/admin/...` on the webhook's HTTP API):
//!   the same routes as `wca serve` ([`wca_admin::router`]), with the
//!   named tokens from `WCA_ADMIN_TOKENS` (or its SSM parameter).
//!
//! The event-source mapping's `MaximumConcurrency` is the stack-wide rate
//! valve; a campaign's own `rate_per_sec` holds per worker.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::Serialize;
use wca_aws::{SqsDeliveryQueue, SqsEventQueue, for_each_record};
use wca_core::campaign::{
    AbortAfterSends, Approval, Audiences, BatchDeliverer, Campaigns, Deliverer, DeliveryBatch,
    DeliveryQueue, INTERRUPTED_AFTER_SECS, MAX_WAITS, RunEnd, Runner,
};
use wca_core::outbound::OutboundPolicy;
use wca_core::{Clock, Outbound, PortError, SystemClock, WeChatApi};
use wca_webhook::lambda::{LambdaEnv, wire};
use wca_webhook::settings::Env;
use wca_wechat::api::{ApiConfig, AppSecret, DEFAULT_BASE, HttpWeChatApi};

/// The delivery queue's URL.
pub const DELIVERY_QUEUE_VAR: &str = "WCA_DELIVERY_QUEUE_URL";
/// Recipients one `deliver` worker sends to at once (default 16).
pub const CONCURRENCY_VAR: &str = "WCA_CAMPAIGN_CONCURRENCY";
/// Seconds after which a claim still `Sending` was cut off by a dead
/// worker (default [`INTERRUPTED_AFTER_SECS`]); longer than the `deliver`
/// function's timeout.
pub const INTERRUPTED_AFTER_VAR: &str = "WCA_INTERRUPTED_AFTER_SECS";
/// A campaign to more users than this waits for a second admin (default
/// 1,000); one to every follower always does.
pub const APPROVAL_ABOVE_VAR: &str = "WCA_APPROVAL_ABOVE";
/// The crash-test hook: abort after this many accepted sends.
pub const ABORT_VAR: &str = "WCA_TEST_ABORT_AFTER_SENDS";

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct TickSummary {
    /// Occurrences that fell due and were claimed by this tick.
    pub started: usize,
    /// Occurrences fully handed over to the queue (or mass-sent) by it.
    pub expanded: usize,
    /// Occurrences still open, and why (paused, quiet hours, WeChat busy).
    pub waiting: Vec<String>,
}

/// The `broadcast` function's work.
pub struct Broadcast {
    campaigns: Arc<Campaigns>,
    runner: Runner,
}

impl Broadcast {
    /// Ticks `campaigns`, expanding with `runner` (which has a queue).
    pub fn new(campaigns: Arc<Campaigns>, runner: Runner) -> Self {
        Self { campaigns, runner }
    }

    /// Claims what is due at `now`, then expands every open occurrence
    /// (this tick's and any an earlier tick left unfinished).
    pub async fn tick(&self, now: i64) -> Result<TickSummary, PortError> {
        let started = self.campaigns.tick(now).await?;
        let mut summary = TickSummary {
            started: started.len(),
            ..TickSummary::default()
        };
        for (campaign, occurrence) in self.campaigns.unfinished().await? {
            // One occurrence that fails (a throttled store, the queue
            // refusing) leaves the others to run; the next tick resumes it.
            match self.runner.run(&campaign.id, occurrence.scheduled_at).await {
                Ok(RunEnd::Finished) => summary.expanded += 1,
                Ok(other) => summary
                    .waiting
                    .push(format!("{}: {other:?}", occurrence.id())),
                Err(e) => {
                    tracing::warn!(occurrence_id = %occurrence.id(), error = %e, "an occurrence could not be expanded; the next tick resumes it");
                    summary
                        .waiting
                        .push(format!("{}: failed ({e})", occurrence.id()));
                }
            }
        }
        Ok(summary)
    }
}

/// What one queue message came to, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Handled {
    /// Sent now.
    pub sent: u64,
    /// Recorded before (a redelivery).
    pub already: u64,
    /// Skipped or failed now, or settled as interrupted.
    pub other: u64,
    /// Queued again to wait.
    pub requeued: u64,
}

/// The `deliver` function's work.
pub struct Deliver {
    batches: BatchDeliverer,
    queue: Arc<dyn DeliveryQueue>,
}

impl Deliver {
    /// Delivers with `batches`; what must wait goes back on `queue`.
    pub fn new(batches: BatchDeliverer, queue: Arc<dyn DeliveryQueue>) -> Self {
        Self { batches, queue }
    }

    /// Handles one message body. An error leaves the message on the queue
    /// for SQS to try again (and, after `maxReceiveCount`, to park in the
    /// dead-letter queue); a body that is not a batch is such an error.
    pub async fn handle(&self, body: &str) -> Result<Handled, String> {
        let batch: DeliveryBatch =
            serde_json::from_str(body).map_err(|e| format!("not a delivery batch: {e}"))?;
        let mut outcome = self
            .batches
            .deliver(batch)
            .await
            .map_err(|e| e.to_string())?;
        let mut handled = Handled {
            sent: outcome.sent,
            already: outcome.already,
            other: outcome.skipped + outcome.failed + outcome.settled,
            requeued: 0,
        };
        if let Some((again, delay, why)) = outcome.later.take() {
            if again.waits > MAX_WAITS {
                // A day of waiting on something that is not a pause: an
                // operator should look (the dead-letter queue's alarm).
                return Err(format!(
                    "{} recipients of campaign {} waited {} times ({why}); left for the dead-letter queue",
                    again.openids.len(),
                    again.campaign_id,
                    again.waits
                ));
            }
            handled.requeued = u64::try_from(again.openids.len()).unwrap_or(u64::MAX);
            tracing::info!(
                campaign_id = %again.campaign_id,
                waiting = again.openids.len(),
                delay_secs = delay.as_secs(),
                why,
                "campaign recipients queued again"
            );
            self.queue
                .enqueue(&[again], delay)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(handled)
    }

    /// A Lambda batch: each record handled in turn; the failed ones are
    /// reported for SQS to retry.
    pub async fn handle_event(&self, event: SqsEvent) -> SqsBatchResponse {
        for_each_record(event, |body| async move { self.handle(&body).await }).await
    }

    /// Outside Lambda: receives from `queue` until `stop` is notified,
    /// deleting each message once handled. A message that failed comes
    /// back after the queue's visibility timeout.
    pub async fn poll(&self, queue: &SqsEventQueue, stop: Arc<tokio::sync::Notify>) {
        loop {
            let received = tokio::select! {
                () = stop.notified() => return,
                r = queue.receive(2) => r,
            };
            let messages = match received {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "the delivery queue could not be read; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for message in messages {
                match self.handle(&message.body).await {
                    Ok(handled) => {
                        tracing::debug!(sqs_message_id = %message.message_id, ?handled, "batch delivered");
                        if let Err(e) = queue.delete(&message.receipt_handle).await {
                            tracing::warn!(error = %e, "a delivered batch could not be deleted; its redelivery sends nothing");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(sqs_message_id = %message.message_id, error = %e, "batch failed; SQS retries it");
                    }
                }
            }
        }
    }
}

/// Both functions' wiring from the Lambda environment (or a shell with
/// the same variables): the table, the queue, the WeChat API.
pub struct Stack {
    /// The campaigns in the stack's table.
    pub campaigns: Arc<Campaigns>,
    /// Audiences from the WeChat API (tags, all followers).
    pub audiences: Arc<Audiences>,
    /// Renders, screens and sends one recipient.
    pub deliverer: Arc<Deliverer>,
    /// The delivery queue.
    pub queue: SqsDeliveryQueue,
    /// The environment, with the secrets read from SSM.
    pub env: LambdaEnv,
}

fn number<T: std::str::FromStr>(env: &dyn Env, name: &str, default: T) -> Result<T, String> {
    match env.var(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a whole number, not {v:?}")),
    }
}

impl Stack {
    /// Reads the webhook's settings and secrets (the filter, the shop's
    /// profiles, `WECHAT_APP_SECRET` from SSM) and the campaign
    /// variables.
    pub async fn load() -> Result<Self, lambda_runtime::Error> {
        let wired = wire().await?;
        let queue_url = wired
            .env
            .var(DELIVERY_QUEUE_VAR)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{DELIVERY_QUEUE_VAR} is not set"))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let api: Option<Arc<dyn WeChatApi>> = match wired
            .env
            .var("WECHAT_APP_SECRET")
            .and_then(|s| AppSecret::new(&s))
        {
            Some(secret) => {
                let base = wired
                    .env
                    .var("WECHAT_API_BASE")
                    .filter(|b| !b.trim().is_empty())
                    .unwrap_or_else(|| DEFAULT_BASE.to_owned());
                let api = HttpWeChatApi::new(
                    ApiConfig::new(&base, &wired.settings.callback.app_id, secret),
                    wired.store.clone(),
                    clock.clone(),
                )?;
                let after: u64 = number(&wired.env, ABORT_VAR, 0)?;
                Some(AbortAfterSends::wrap(Arc::new(api), after))
            }
            None => {
                tracing::warn!("WECHAT_APP_SECRET is not set: campaigns wait until it is");
                None
            }
        };
        let outbound = api.clone().map(|api| {
            Arc::new(Outbound::new(
                api,
                wired.store.clone(),
                wired.bus.clone(),
                clock.clone(),
                OutboundPolicy::default(),
            ))
        });
        let screen: Arc<dyn wca_core::OutboundScreen> = Arc::new(wired.settings.filter.clone());
        let store: Arc<dyn wca_core::campaign::CampaignStore> = wired.store.clone();
        let audiences = Arc::new(Audiences {
            api: api.clone(),
            profiles: None,
            contacts: Some(wired.store.clone()),
            segment_page: 500,
        });
        let deliverer = Arc::new(Deliverer {
            store: store.clone(),
            outbound,
            api,
            profiles: wired.ports.shop.profiles.clone(),
            screen: Some(screen.clone()),
            clock: clock.clone(),
        });
        let campaigns = Arc::new(
            Campaigns::new(store, clock, Some(screen))
                .with_approval(Approval {
                    above: number(&wired.env, APPROVAL_ABOVE_VAR, 1000)?,
                    audiences: audiences.clone(),
                })
                // No profile directory on AWS yet: segments are refused
                // when created, not failed when run.
                .with_segments(false)
                .with_interrupted_after(number(
                    &wired.env,
                    INTERRUPTED_AFTER_VAR,
                    INTERRUPTED_AFTER_SECS,
                )?),
        );
        let queue = SqsDeliveryQueue::new(aws_sdk_sqs::Client::new(&wired.config), queue_url);
        Ok(Self {
            campaigns,
            audiences,
            deliverer,
            queue,
            env: wired.env,
        })
    }

    /// The `broadcast` function's work on this stack.
    pub fn broadcast(&self) -> Broadcast {
        let runner = Runner {
            store: self.deliverer.store.clone(),
            audiences: self.audiences.clone(),
            deliverer: self.deliverer.clone(),
            concurrency: 1,
            queue: Some(Arc::new(self.queue.clone())),
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        Broadcast::new(self.campaigns.clone(), runner)
    }

    /// The `deliver` function's work on this stack.
    pub fn deliver(&self) -> Result<Deliver, String> {
        let batches = BatchDeliverer::new(
            self.deliverer.clone(),
            number(&self.env, CONCURRENCY_VAR, 16)?,
        )
        .interrupted_after(number(
            &self.env,
            INTERRUPTED_AFTER_VAR,
            INTERRUPTED_AFTER_SECS,
        )?);
        Ok(Deliver::new(batches, Arc::new(self.queue.clone())))
    }
}
