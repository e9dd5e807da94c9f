//! The webhook as an AWS Lambda function behind an API Gateway HTTP API:
//! DynamoDB for the archive and dedup, the app's EventBridge bus for events.

use std::sync::Arc;

use lambda_http::{Error, run};
use wca_aws::FunctionEnv;
use wca_core::SystemClock;
use wca_webhook::settings::{ProcessEnv, Settings};
use wca_webhook::shop::{Platform, ShopSource};
use wca_webhook::{Ports, Webhook, router};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    let settings = Settings::from_env()?;
    let aws = FunctionEnv::load().await?;
    let store = Arc::new(aws.store);
    // Profiles and tickets may live in the stack's table; tickets do when
    // the config names no other place (the config layer is read-only).
    let platform = Platform {
        dynamodb_profiles: Some(store.clone()),
        dynamodb_tickets: Some(store.clone()),
        default_tickets: Some(ShopSource::DynamoDb),
    };
    let shop = wca_webhook::shop::build(&settings, &ProcessEnv, platform)?;
    let ports = Ports {
        archive: store.clone(),
        dedup: store.clone(),
        events: Arc::new(aws.bus),
        clock: Arc::new(SystemClock),
        conversations: store,
        shop,
    };
    run(router(Webhook::new(settings, ports))).await
}
