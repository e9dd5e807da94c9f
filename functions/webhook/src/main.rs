//! The webhook as an AWS Lambda function behind an API Gateway HTTP API:
//! DynamoDB for the archive and dedup, the app's EventBridge bus for events.

use std::sync::Arc;

use lambda_http::{Error, run};
use wca_aws::FunctionEnv;
use wca_core::SystemClock;
use wca_webhook::{Ports, Webhook, router, settings::Settings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    let settings = Settings::from_env()?;
    let aws = FunctionEnv::load().await?;
    let store = Arc::new(aws.store);
    let ports = Ports {
        archive: store.clone(),
        dedup: store,
        events: Arc::new(aws.bus),
        clock: Arc::new(SystemClock),
    };
    run(router(Webhook::new(settings, ports))).await
}
