//! The webhook as an AWS Lambda function behind an API Gateway HTTP API:
//! DynamoDB for the archive and dedup, the app's EventBridge bus for events.

use std::sync::Arc;

use lambda_http::{Error, run};
use wca_aws::{DynamoDbStore, EventBridgeSink, sdk_config};
use wca_core::SystemClock;
use wca_webhook::{Ports, Webhook, router, settings::Settings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .without_time()
        .with_ansi(false)
        .init();
    let settings = Settings::from_env()?;
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let bus = std::env::var("EVENT_BUS_NAME").map_err(|_| "EVENT_BUS_NAME is not set")?;
    let config = sdk_config(None).await;
    let store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        table,
    ));
    let ports = Ports {
        archive: store.clone(),
        dedup: store,
        events: Arc::new(EventBridgeSink::new(
            aws_sdk_eventbridge::Client::new(&config),
            bus,
        )),
        clock: Arc::new(SystemClock),
    };
    run(router(Webhook::new(settings, ports))).await
}
