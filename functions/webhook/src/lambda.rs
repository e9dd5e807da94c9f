//! What the webhook's two Lambda binaries share: the settings and ports
//! wired from AWS ([`wire`]), and the responder of async replies
//! ([`Responder`]), which answers the messages the webhook queued on SQS
//! FIFO through the customer-service API.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use wca_aws::{DynamoDbStore, EventBridgeSink, FunctionEnv, Secrets, SqsEventQueue};
use wca_core::campaign::DeliveryQueue as _;
use wca_core::{ArchivedMessage, Outbound, SystemClock};

use crate::settings::{Env, FileSettings, ProcessEnv, Settings};
use crate::shop::{Platform, ShopSource};
use crate::{Ports, Webhook};

/// Selects how replies go out: `passive` (the default) or `async`.
pub const REPLY_MODE_VAR: &str = "WCA_REPLY_MODE";
/// The SQS FIFO queue of async mode, between webhook and responder.
pub const REPLY_QUEUE_VAR: &str = "WCA_REPLY_QUEUE_URL";
/// Its dead-letter queue, where the responder moves a body that is not a
/// message at once.
pub const REPLY_DEAD_LETTERS_VAR: &str = "WCA_REPLY_DLQ_URL";

/// The campaign delivery queue: with it, the webhook queues what a
/// message fires of the triggered campaigns for the `deliver` function.
pub const DELIVERY_QUEUE_VAR: &str = "WCA_DELIVERY_QUEUE_URL";

/// Triggered campaigns on Lambda: a text that fires one opens the user's
/// window (they just wrote), takes their cooldown and queues a batch of
/// one for the `deliver` function; the reply does not wait for WeChat.
pub struct QueuedTriggers {
    triggers: wca_core::campaign::Triggers,
    contacts: Arc<DynamoDbStore>,
    queue: wca_aws::SqsDeliveryQueue,
}

impl QueuedTriggers {
    /// From `WCA_DELIVERY_QUEUE_URL`, when it is set: the webhook (passive
    /// mode) and the responder (async mode) both decide replies, so both
    /// report texts to the triggers.
    pub fn from_env(wired: &Wired) -> Option<Arc<Self>> {
        let url = wired
            .env
            .var(DELIVERY_QUEUE_VAR)
            .filter(|u| !u.is_empty())?;
        Some(Arc::new(Self::new(
            wired.store.clone(),
            wca_aws::SqsDeliveryQueue::new(aws_sdk_sqs::Client::new(&wired.config), url),
        )))
    }

    /// Over the stack's table; the campaign list is read at most once a
    /// minute per sandbox.
    pub fn new(store: Arc<DynamoDbStore>, queue: wca_aws::SqsDeliveryQueue) -> Self {
        Self {
            triggers: wca_core::campaign::Triggers::new(store.clone(), Duration::from_secs(60)),
            contacts: store,
            queue,
        }
    }
}

#[async_trait::async_trait]
impl wca_core::campaign::MessageTriggers for QueuedTriggers {
    async fn on_message(&self, openid: &str, text: &str, intent: Option<&str>, now: i64) {
        use wca_core::ContactWindows as _;
        let batches = match self.triggers.fired(openid, text, intent, now).await {
            Ok(batches) if batches.is_empty() => return,
            Ok(batches) => batches,
            Err(e) => {
                tracing::warn!(error = %e, "triggered campaigns could not be checked for a message");
                return;
            }
        };
        if let Err(e) = self.contacts.touch(openid, now).await {
            tracing::warn!(error = %e, "the window of a user a campaign fired for could not be opened");
        }
        if let Err(e) = self.queue.enqueue(&batches, Duration::ZERO).await {
            // The cooldown is taken: this user gets no coupon from this
            // message, never two.
            tracing::error!(error = %e, fired = batches.len(), "a triggered campaign could not be queued; dropped");
        }
    }
}

/// The process environment, with the secrets read from SSM standing in
/// for their unset variables.
pub struct LambdaEnv(pub Secrets);

impl Env for LambdaEnv {
    fn var(&self, name: &str) -> Option<String> {
        ProcessEnv
            .var(name)
            .or_else(|| self.0.get(name).map(str::to_owned))
    }
}

/// A function's settings and ports, wired from its environment.
pub struct Wired {
    /// The SDK configuration, loaded once.
    pub config: aws_config::SdkConfig,
    /// The environment with the secrets from SSM.
    pub env: LambdaEnv,
    /// The webhook's settings (`WCA_CONFIG` and the variables).
    pub settings: Settings,
    /// The stack's table.
    pub store: Arc<DynamoDbStore>,
    /// The stack's event bus.
    pub bus: Arc<EventBridgeSink>,
    /// The ports over them, with the shop's systems.
    pub ports: Ports,
}

/// Reads the secrets from SSM, the settings, and wires the ports on the
/// stack's table and bus.
pub async fn wire() -> Result<Wired, lambda_http::Error> {
    let config = wca_aws::sdk_config(None).await;
    let env = LambdaEnv(Secrets::load(&config).await?);
    let file = match env.var("WCA_CONFIG") {
        Some(path) => FileSettings::load(Path::new(&path))?,
        None => FileSettings::default(),
    };
    let settings = Settings::resolve(file, &env, None)?;
    let aws = FunctionEnv::from_config(&config)?;
    let store = Arc::new(aws.store);
    let bus = Arc::new(aws.bus);
    // Profiles and tickets may live in the stack's table; tickets do when
    // the config names no other place (the config layer is read-only).
    let platform = Platform {
        dynamodb_profiles: Some(store.clone()),
        dynamodb_tickets: Some(store.clone()),
        default_tickets: Some(ShopSource::DynamoDb),
    };
    let shop = crate::shop::build(&settings, &env, platform)?;
    let ports = Ports {
        archive: store.clone(),
        dedup: store.clone(),
        events: bus.clone(),
        clock: Arc::new(SystemClock),
        conversations: store.clone(),
        shop,
        commit: None,
    };
    Ok(Wired {
        config,
        env,
        settings,
        store,
        bus,
        ports,
    })
}

/// `true` for async mode, `false` for passive; anything else is an error,
/// so a typo never changes how customers are answered.
pub fn async_mode(value: Option<&str>) -> Result<bool, String> {
    match value.map(str::trim).unwrap_or_default() {
        "" | "passive" => Ok(false),
        "async" => Ok(true),
        other => Err(format!(
            "{REPLY_MODE_VAR} must be passive or async, not {other:?}"
        )),
    }
}

/// Time one message may take in the responder: deciding (within the
/// claim's lease, 6 s by default) and sending (3 tries of at most 5 s with
/// back-off). A message is started only with this much of the
/// invocation's time left, so Lambda never stops one mid-send.
pub const MESSAGE_BUDGET: Duration = Duration::from_secs(25);

/// The longest wait before a message WeChat could not take comes back:
/// the waits double from 5 s with each receive up to this. The template's
/// `maxReceiveCount` of 150 then moves a message to the dead-letter queue
/// after about 36 hours of trying, before the queue's 48-hour retention
/// would drop it.
pub const MAX_COMEBACK_SECS: u64 = 900;

/// How long a message that could not be answered stays hidden, in
/// seconds: at least `retry_in` (the breaker's wait), doubling from 5 s
/// with each receive up to [`MAX_COMEBACK_SECS`]. `None`: the queue's
/// visibility timeout.
pub fn comes_back_in(retry_in: Option<Duration>, receives: u32) -> Option<i32> {
    let retry_in = retry_in?.as_secs().max(1);
    let backoff = 5u64
        .saturating_mul(1u64 << receives.saturating_sub(1).min(20))
        .min(MAX_COMEBACK_SECS);
    // SQS takes at most 12 hours.
    Some(i32::try_from(retry_in.max(backoff).min(43_200)).unwrap_or(43_200))
}

/// Answers the messages of an SQS FIFO batch in order. A message that
/// cannot be answered now is reported for retry (`ReportBatchItemFailures`)
/// with the later messages of its user, which must not overtake it; it
/// comes back when WeChat can take it (the breaker's wait, growing with
/// each receive), not at the end of the visibility timeout.
pub struct Responder {
    hook: Webhook,
    outbound: Arc<Outbound>,
    queue: Option<SqsEventQueue>,
    dead_letters: Option<SqsEventQueue>,
}

impl Responder {
    /// Answers with `hook`'s pipeline and sends through `outbound`.
    pub fn new(hook: Webhook, outbound: Arc<Outbound>) -> Self {
        Self {
            hook,
            outbound,
            queue: None,
            dead_letters: None,
        }
    }

    /// Sets when a message that failed comes back, on `queue` (the one the
    /// batch came from).
    pub fn with_queue(mut self, queue: SqsEventQueue) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Moves a body that is not a message to `queue` at once (the
    /// dead-letter queue), instead of holding its user's queue through
    /// every retry.
    pub fn with_dead_letters(mut self, queue: SqsEventQueue) -> Self {
        self.dead_letters = Some(queue);
        self
    }

    /// Handles one batch, with no time limit.
    pub async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        self.handle_until(batch, None).await
    }

    /// Handles one batch; a message is started only while
    /// [`MESSAGE_BUDGET`] is left before `deadline` (the invocation's).
    pub async fn handle_until(
        &self,
        batch: SqsEvent,
        deadline: Option<Instant>,
    ) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        // Users with a message left for later: their next ones wait too.
        // They are made visible again at once: SQS FIFO hands out none of
        // a group while its first message is hidden, so they come after
        // it.
        let mut held: HashSet<String> = HashSet::new();
        for record in batch.records {
            let id = record.message_id.clone().unwrap_or_default();
            let group = record
                .attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_default();
            let out_of_time = deadline
                .is_some_and(|d| d.saturating_duration_since(Instant::now()) < MESSAGE_BUDGET);
            let comes_back = if held.contains(&group) {
                tracing::info!(sqs_message_id = %id, "held behind an earlier message of the same user");
                Some(0)
            } else if out_of_time {
                tracing::info!(sqs_message_id = %id, "left for the next invocation: too little time to answer it");
                Some(0)
            } else {
                match self.one(&record).await {
                    Ok(()) => continue,
                    Err(retry_in) => {
                        let receives = record
                            .attributes
                            .get("ApproximateReceiveCount")
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(1);
                        held.insert(group);
                        comes_back_in(retry_in, receives)
                    }
                }
            };
            if let (Some(queue), Some(handle), Some(secs)) =
                (&self.queue, &record.receipt_handle, comes_back)
                && let Err(e) = queue.retry_after(handle, secs).await
            {
                tracing::warn!(sqs_message_id = %id, error = %e, "could not set when the message comes back");
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
        response
    }

    /// One record: `Err` with when trying again is worth it, if known,
    /// when it must come back.
    async fn one(&self, record: &SqsMessage) -> Result<(), Option<Duration>> {
        let id = record.message_id.as_deref().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        let message: ArchivedMessage = match serde_json::from_str(body) {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(sqs_message_id = %id, error = %e, "the queued body is not a message");
                let Some(dead) = &self.dead_letters else {
                    // Retried, then kept in the dead-letter queue.
                    return Err(None);
                };
                return match dead.send_fifo(body, "unreadable", id).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        tracing::error!(sqs_message_id = %id, error = %e, "could not move it to the dead-letter queue");
                        Err(None)
                    }
                };
            }
        };
        match self.hook.respond(&message, &self.outbound).await {
            Ok(outcome) => {
                tracing::info!(sqs_message_id = %id, msg_key = %message.key, ?outcome, "responded");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(sqs_message_id = %id, msg_key = %message.key, error = %e, "not answered now; it comes back");
                Err(e.retry_in())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_mode_is_passive_by_default_and_a_typo_is_an_error() {
        assert_eq!(async_mode(None), Ok(false));
        assert_eq!(async_mode(Some("")), Ok(false));
        assert_eq!(async_mode(Some("passive")), Ok(false));
        assert_eq!(async_mode(Some(" async ")), Ok(true));
        let err = async_mode(Some("asynch")).expect_err("typo");
        assert!(
            err.contains(REPLY_MODE_VAR) && err.contains("asynch"),
            "{err}"
        );
    }
}
