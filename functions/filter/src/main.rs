//! The filter function: `{"text": ...}` by direct invoke, or an SQS batch of
//! `MessageReceived` events from the bus for the compliance scan.

use std::{sync::Arc, time::Duration};

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wca_aws::FunctionEnv;
use wca_core::SystemClock;
use wca_filter::{DictionaryFiles, ReloadingFilter};
use wca_filter_fn::{FilterService, paths_from_env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    let source = DictionaryFiles {
        builtin: std::env::var("WCA_FILTER_BUILTIN").map_or(true, |v| v != "false"),
        deny: paths_from_env("WCA_FILTER_DENY"),
        allow: paths_from_env("WCA_FILTER_ALLOW"),
        options: wca_filter::Options::default(),
    };
    let filter = ReloadingFilter::new(source, Duration::from_secs(30))?
        .on_error(|e| tracing::error!(error = %e, "dictionary reload failed; the old one stays"));
    let aws = FunctionEnv::load().await?;
    let service = FilterService {
        filter,
        archive: Arc::new(aws.store),
        events: Arc::new(aws.bus),
        clock: Arc::new(SystemClock),
    };
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let service = service.clone();
        async move { service.handle(event.payload).await }
    }))
    .await
}
