//! The filter function: `{"text": ...}` by direct invoke, or an SQS batch of
//! `MessageReceived` events from the bus for the compliance scan.

use std::{sync::Arc, time::Duration, time::Instant};

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wca_aws::FunctionEnv;
use wca_aws::metrics::{Emf, Metrics};
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
    let emf = Emf::from_env("filter");
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (service, emf) = (service.clone(), emf.clone());
        async move {
            let started = Instant::now();
            let result = service.handle(event.payload).await;
            let mut metrics = Metrics::default();
            metrics.add_latency(started);
            emf.emit(&metrics);
            result
        }
    }))
    .await
}
