//! The broadcast function: EventBridge's one-minute schedule in; due
//! campaign occurrences claimed and expanded onto the delivery queue.
//! Outside Lambda it ticks by itself every `WCA_CAMPAIGN_TICK_SECS`
//! (default 60).

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wca_broadcast::Stack;
use wca_core::{Clock, SystemClock};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    let stack = Stack::load().await?;
    let broadcast = std::sync::Arc::new(stack.broadcast());
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        let every = std::env::var("WCA_CAMPAIGN_TICK_SECS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(60);
        loop {
            match broadcast.tick(SystemClock.now()).await {
                Ok(summary) => tracing::info!(?summary, "tick"),
                Err(e) => tracing::warn!(error = %e, "tick failed; the next one tries again"),
            }
            tokio::time::sleep(Duration::from_secs(every)).await;
        }
    }
    run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let broadcast = broadcast.clone();
        async move {
            let summary = broadcast.tick(SystemClock.now()).await?;
            tracing::info!(?summary, "tick");
            Ok::<_, Error>(serde_json::to_value(summary)?)
        }
    }))
    .await
}
