//! What the webhook's two Lambda binaries share: the settings and ports
//! wired from AWS ([`wire`]), and the responder of async replies
//! ([`Responder`]), which answers the messages the webhook queued on SQS
//! FIFO through the customer-service API.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use wca_aws::{DynamoDbStore, EventBridgeSink, FunctionEnv, Secrets, SqsEventQueue};
use wca_core::{ArchivedMessage, Outbound, SystemClock};

use crate::settings::{Env, FileSettings, ProcessEnv, Settings};
use crate::shop::{Platform, ShopSource};
use crate::{Ports, Webhook};

/// Selects how replies go out: `passive` (the default) or `async`.
pub const REPLY_MODE_VAR: &str = "WCA_REPLY_MODE";
/// The SQS FIFO queue of async mode, between webhook and responder.
pub const REPLY_QUEUE_VAR: &str = "WCA_REPLY_QUEUE_URL";

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

/// Answers the messages of an SQS FIFO batch in order. A message that
/// cannot be answered now is reported for retry (`ReportBatchItemFailures`)
/// with the later messages of its user, which must not overtake it; it
/// comes back when WeChat can take it (the breaker's wait), not at the end
/// of the visibility timeout.
pub struct Responder {
    hook: Webhook,
    outbound: Arc<Outbound>,
    queue: Option<SqsEventQueue>,
}

impl Responder {
    /// Answers with `hook`'s pipeline and sends through `outbound`.
    pub fn new(hook: Webhook, outbound: Arc<Outbound>) -> Self {
        Self {
            hook,
            outbound,
            queue: None,
        }
    }

    /// Sets when a message that failed comes back, on `queue` (the one the
    /// batch came from).
    pub fn with_queue(mut self, queue: SqsEventQueue) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Handles one batch.
    pub async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        // Users with a message left for later: their next ones wait too.
        let mut held: HashSet<String> = HashSet::new();
        for record in batch.records {
            let id = record.message_id.clone().unwrap_or_default();
            let group = record
                .attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_default();
            let comes_back_in = if held.contains(&group) {
                tracing::info!(sqs_message_id = %id, "held behind an earlier message of the same user");
                Some(0)
            } else {
                match self.one(&record).await {
                    Ok(()) => continue,
                    Err(retry_in) => {
                        held.insert(group);
                        retry_in
                    }
                }
            };
            if let (Some(queue), Some(handle), Some(secs)) =
                (&self.queue, &record.receipt_handle, comes_back_in)
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

    /// One record: `Err` with when it should come back (in seconds, if
    /// known) when it must be retried.
    async fn one(&self, record: &SqsMessage) -> Result<(), Option<i32>> {
        let id = record.message_id.as_deref().unwrap_or_default();
        let message: ArchivedMessage = match serde_json::from_str(
            record.body.as_deref().unwrap_or_default(),
        ) {
            Ok(message) => message,
            Err(e) => {
                // Retried, then kept in the dead-letter queue.
                tracing::error!(sqs_message_id = %id, error = %e, "the queued body is not a message");
                return Err(None);
            }
        };
        match self.hook.respond(&message, &self.outbound).await {
            Ok(outcome) => {
                tracing::info!(sqs_message_id = %id, msg_key = %message.key, ?outcome, "responded");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(sqs_message_id = %id, msg_key = %message.key, error = %e, "not answered now; it comes back");
                // SQS takes at most 12 hours.
                Err(e
                    .retry_in()
                    .map(|d| i32::try_from(d.as_secs().clamp(1, 43_200)).unwrap_or(43_200)))
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
