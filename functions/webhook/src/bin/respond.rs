//! The responder of async replies as an AWS Lambda function: an SQS FIFO
//! event source (the queue the webhook fills in async mode) in, replies
//! out through WeChat's customer-service API.
//!
//! It reads the webhook's settings and secrets (`WECHAT_APP_SECRET` from
//! SSM through `WECHAT_APP_SECRET_PARAM`), keeps the access token and each
//! user's window in the stack's table, and sends to `WECHAT_API_BASE`
//! (default `https://api.weixin.qq.com`). With the template's
//! `FixedEgressIp`, its calls leave from the IP to whitelist.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wca_aws::SqsEventQueue;
use wca_aws::metrics::{Emf, Metrics};
use wca_core::outbound::OutboundPolicy;
use wca_core::{Outbound, SystemClock};
use wca_webhook::Webhook;
use wca_webhook::lambda::{
    QueuedTriggers, REPLY_DEAD_LETTERS_VAR, REPLY_QUEUE_VAR, Responder, wire,
};
use wca_webhook::settings::Env;
use wca_wechat::api::{ApiConfig, AppSecret, DEFAULT_BASE, HttpWeChatApi};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    let wired = wire().await?;
    let secret = wired
        .env
        .var("WECHAT_APP_SECRET")
        .and_then(|s| AppSecret::new(&s))
        .ok_or("the responder sends through the WeChat API: set WECHAT_APP_SECRET_PARAM")?;
    let base = wired
        .env
        .var("WECHAT_API_BASE")
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_BASE.to_owned());
    let clock = Arc::new(SystemClock);
    let api = HttpWeChatApi::new(
        ApiConfig::new(&base, &wired.settings.callback.app_id, secret),
        wired.store.clone(),
        clock.clone(),
    )?;
    let outbound = Outbound::new(
        Arc::new(api),
        wired.store.clone(),
        wired.bus.clone(),
        clock,
        OutboundPolicy::default(),
    );
    // In async mode the replies are decided here, so the triggered
    // campaigns hear of each text here.
    let triggers = QueuedTriggers::from_env(&wired);
    let sqs = aws_sdk_sqs::Client::new(&wired.config);
    let (reply_queue, dead_letters) = (
        wired.env.var(REPLY_QUEUE_VAR),
        wired.env.var(REPLY_DEAD_LETTERS_VAR),
    );
    let mut hook = Webhook::new(wired.settings, wired.ports);
    if let Some(triggers) = triggers {
        hook = hook.with_triggers(triggers);
    }
    let mut responder = Responder::new(hook, Arc::new(outbound));
    if let Some(url) = reply_queue {
        responder = responder.with_queue(SqsEventQueue::new(sqs.clone(), url));
    }
    if let Some(url) = dead_letters {
        responder = responder.with_dead_letters(SqsEventQueue::new(sqs, url));
    }
    let responder = Arc::new(responder);
    let emf = Emf::from_env("respond");
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (responder, emf) = (responder.clone(), emf.clone());
        async move {
            let started = Instant::now();
            // The invocation's deadline, as an instant of this clock.
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let deadline =
                started + Duration::from_millis(event.context.deadline.saturating_sub(now_ms));
            let response = responder.handle_until(event.payload, Some(deadline)).await;
            let mut metrics = Metrics::default();
            metrics.add_latency(started);
            emf.emit(&metrics);
            Ok::<_, Error>(response)
        }
    }))
    .await
}
