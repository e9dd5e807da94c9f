//! The webhook as an AWS Lambda function behind an API Gateway HTTP API:
//! DynamoDB for the archive and dedup, the app's EventBridge bus for events.

use std::sync::Arc;

use lambda_http::{Error, run};
use wca_aws::FunctionEnv;
use wca_core::SystemClock;
use wca_webhook::{Ports, Webhook, router, settings::Settings};

/// Orders and profiles from the JSONL files the config layer names. A
/// ticket sink on Lambda (DynamoDB) is not built yet, so return requests
/// are answered from the FAQ there.
fn shop(settings: &Settings) -> Result<wca_dialog::Shop, Error> {
    let base = &settings.base_dir;
    let mut shop = wca_dialog::Shop::default();
    if let Some(path) = settings.shop.orders_path(base) {
        shop.orders = Some(Arc::new(wca_local::JsonlOrders::load(&path)?));
    }
    if let Some(path) = settings.shop.users_path(base) {
        shop.profiles = Some(Arc::new(wca_local::JsonlProfiles::load(&path)?));
    }
    Ok(shop)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    let settings = Settings::from_env()?;
    let aws = FunctionEnv::load().await?;
    let store = Arc::new(aws.store);
    let ports = Ports {
        archive: store.clone(),
        dedup: store.clone(),
        events: Arc::new(aws.bus),
        clock: Arc::new(SystemClock),
        conversations: store,
        shop: shop(&settings)?,
    };
    run(router(Webhook::new(settings, ports))).await
}
