//! AWS adapters of the `wca-core` ports: DynamoDB for the archive, the
//! dedup keys, the event log, the counters and the campaigns; EventBridge
//! for the event sink; SQS for reading events back. Beside them, what every function's
//! `main` needs from AWS: [`Secrets`] from SSM at cold start,
//! [`init_tracing`] for Lambda's log formats, and [`metrics`] in
//! CloudWatch's embedded metric format.
//!
//! Item mapping lives here and nowhere else: the core sees only its own
//! types and [`wca_core::PortError`]. Clients are built once per process
//! from [`sdk_config`], which honours `AWS_ENDPOINT_URL` (or an explicit
//! endpoint) so the same code runs against the local AWS stand-in.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wca_core::PortError> {
//! use wca_aws::{DynamoDbStore, sdk_config};
//! use wca_core::MessageArchive;
//!
//! let config = sdk_config(Some("http://127.0.0.1:5000")).await;
//! let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&config), "wca");
//! let missing = store.get("oSomeUser", "msg:1", 1_700_000_000).await?;
//! assert!(missing.is_none());
//! # Ok(()) }
//! ```

mod campaigns;
mod dynamodb;
mod eventbridge;
mod logs;
pub mod metrics;
mod secrets;
mod sqs;

pub use dynamodb::DynamoDbStore;
pub use eventbridge::EventBridgeSink;
pub use logs::init_tracing;
pub use secrets::{PARAM_SUFFIX, SECRET_VARS, SecretError, Secrets};
pub use sqs::{
    Received, SqsDeliveryQueue, SqsEventQueue, SqsMessageQueue, event_from_body, fifo_id,
    for_each_record,
};

/// What a function's `main` wires from the environment Lambda gives it:
/// the table named by `TABLE_NAME` and the bus named by `EVENT_BUS_NAME`,
/// on clients built once from [`sdk_config`].
#[derive(Debug, Clone)]
pub struct FunctionEnv {
    /// The app's DynamoDB table.
    pub store: DynamoDbStore,
    /// The app's event bus.
    pub bus: EventBridgeSink,
}

impl FunctionEnv {
    /// Reads `TABLE_NAME` and `EVENT_BUS_NAME`; the error names what is
    /// missing.
    pub async fn load() -> Result<Self, String> {
        Self::from_config(&sdk_config(None).await)
    }

    /// [`FunctionEnv::load`] on an SDK configuration `main` has loaded
    /// already (for [`Secrets`] too), so it is loaded once.
    pub fn from_config(config: &aws_config::SdkConfig) -> Result<Self, String> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} is not set"))
        };
        let (table, bus) = (var("TABLE_NAME")?, var("EVENT_BUS_NAME")?);
        Ok(Self {
            store: DynamoDbStore::new(aws_sdk_dynamodb::Client::new(config), table),
            bus: EventBridgeSink::new(aws_sdk_eventbridge::Client::new(config), bus),
        })
    }
}

/// Loads the shared SDK configuration once per process. `endpoint`
/// overrides `AWS_ENDPOINT_URL` (the local stand-in in tests).
pub async fn sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// SDK configuration for a local AWS stand-in (moto_server) at `endpoint`:
/// fixed fake credentials and `us-east-1`, nothing read from the machine.
pub async fn stand_in_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "stand-in",
        ))
        .load()
        .await
}

/// The variable the test command sets to the stand-in's URL.
pub const STAND_IN_ENDPOINT_VAR: &str = "WCA_MOTO_ENDPOINT";

/// The local stand-in's URL from [`STAND_IN_ENDPOINT_VAR`], if set.
pub fn stand_in_endpoint() -> Option<String> {
    std::env::var(STAND_IN_ENDPOINT_VAR)
        .ok()
        .filter(|v| !v.is_empty())
}

/// A resource name no other user of the same stand-in has (process id,
/// a per-process sequence number, the time), so tests can share one
/// stand-in without cleaning up.
pub fn unique_name(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        wca_core::Clock::now(&wca_core::SystemClock)
    )
}

/// Maps an SDK failure to a port error, keeping the operation's name and
/// the service's error code but never request data.
pub(crate) fn unavailable<E>(op: &str, err: E) -> wca_core::PortError
where
    E: std::error::Error + Send + Sync + 'static,
{
    wca_core::PortError::Unavailable(format!(
        "{op}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(err)
    ))
}
