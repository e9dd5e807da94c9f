//! The analytics function: SQS (from the event bus rule) -> DynamoDB.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wca_analytics::Analytics;
use wca_aws::{DynamoDbStore, sdk_config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let tz_name = std::env::var("WCA_TIMEZONE").unwrap_or_else(|_| "Asia/Shanghai".into());
    let tz = jiff::tz::TimeZone::get(&tz_name)
        .map_err(|_| format!("unknown WCA_TIMEZONE {tz_name:?}"))?;
    let config = sdk_config(None).await;
    let store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        table,
    ));
    let analytics = Analytics::new(store.clone(), store, tz);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let analytics = analytics.clone();
        async move { Ok::<_, Error>(analytics.handle(event.payload).await) }
    }))
    .await
}
