//! The analytics function: SQS (from the event bus rule) -> DynamoDB, and
//! one line of CloudWatch metrics per batch.

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wca_analytics::{Analytics, RETENTION_VAR, retention_days};
use wca_aws::metrics::Emf;
use wca_aws::{DynamoDbStore, sdk_config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let tz_name = std::env::var("WCA_TIMEZONE").unwrap_or_else(|_| "Asia/Shanghai".into());
    let tz = jiff::tz::TimeZone::get(&tz_name)
        .map_err(|_| format!("unknown WCA_TIMEZONE {tz_name:?}"))?;
    let days = retention_days(std::env::var(RETENTION_VAR).ok().as_deref())?;
    let config = sdk_config(None).await;
    let store = Arc::new(DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        table,
    ));
    let analytics = Analytics::new(store.clone(), store, tz).with_retention_days(days);
    let emf = Emf::from_env("analytics");
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (analytics, emf) = (analytics.clone(), emf.clone());
        async move {
            let started = Instant::now();
            let (response, mut metrics) = analytics.handle_counted(event.payload).await;
            metrics.add_latency(started);
            emf.emit(&metrics);
            Ok::<_, Error>(response)
        }
    }))
    .await
}
