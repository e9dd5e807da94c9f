//! The webhook as an AWS Lambda function behind an API Gateway HTTP API:
//! DynamoDB for the archive and dedup, the app's EventBridge bus for events.
//!
//! Secrets named by `NAME_PARAM` are read from SSM before the settings;
//! the function refuses to start without an AES key (safe mode) unless
//! `WCA_ALLOW_PLAINTEXT=true`; each invocation's latency goes out as an
//! embedded-metric-format line. With `WCA_REPLY_MODE=async` it archives
//! each message, queues it on `WCA_REPLY_QUEUE_URL` (SQS FIFO) for the
//! `respond` function, and answers `success`.

use std::sync::Arc;
use std::time::Instant;

use axum::{extract::Request, middleware::Next};
use lambda_http::{Error, run};
use wca_aws::SqsMessageQueue;
use wca_aws::metrics::{Emf, Metrics};
use wca_webhook::lambda::{QueuedTriggers, REPLY_MODE_VAR, REPLY_QUEUE_VAR, async_mode, wire};
use wca_webhook::settings::Env;
use wca_webhook::{AsyncReplies, Webhook, router};

/// Opts in to plaintext mode (no AES key), which WeChat allows but which
/// sends every message in the clear through API Gateway and the logs of
/// anything in between.
const ALLOW_PLAINTEXT_VAR: &str = "WCA_ALLOW_PLAINTEXT";

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    let wired = wire().await?;
    require_safe_mode(
        wired.settings.callback.aes_key.is_some(),
        wired.env.var(ALLOW_PLAINTEXT_VAR).as_deref(),
    )?;
    let triggers = QueuedTriggers::from_env(&wired);
    let mut hook = Webhook::new(wired.settings, wired.ports);
    if let Some(triggers) = triggers {
        hook = hook.with_triggers(triggers);
    }
    // Async mode: archive, queue for the responder, answer `success`.
    if async_mode(wired.env.var(REPLY_MODE_VAR).as_deref())? {
        let url = wired
            .env
            .var(REPLY_QUEUE_VAR)
            .ok_or_else(|| format!("{REPLY_MODE_VAR}=async needs {REPLY_QUEUE_VAR}"))?;
        let queue = SqsMessageQueue::new(aws_sdk_sqs::Client::new(&wired.config), url);
        hook = hook.with_async_replies(AsyncReplies {
            contacts: wired.store.clone(),
            wake: Arc::default(),
            queue: Some(Arc::new(queue)),
            late_after: None,
        });
    }
    let emf = Emf::from_env("webhook");
    let app = router(hook).layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let emf = emf.clone();
            async move {
                let started = Instant::now();
                let response = next.run(request).await;
                let mut metrics = Metrics::default();
                metrics.add_latency(started);
                emf.emit(&metrics);
                response
            }
        },
    ));
    run(app).await
}

/// Safe mode unless the operator asked for plaintext: without an AES key
/// the function starts only when `WCA_ALLOW_PLAINTEXT` is `true`. Any
/// value but `true`, `false` or none is an error, so a typo never turns
/// encryption off.
fn require_safe_mode(has_aes_key: bool, allow_plaintext: Option<&str>) -> Result<(), String> {
    let allowed = match allow_plaintext.map(str::trim).filter(|v| !v.is_empty()) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err(format!("{ALLOW_PLAINTEXT_VAR} must be true or false")),
    };
    if has_aes_key || allowed {
        Ok(())
    } else {
        Err(format!(
            "no AES key: set WECHAT_AES_KEY (or WECHAT_AES_KEY_PARAM) to the EncodingAESKey \
             for safe mode, or {ALLOW_PLAINTEXT_VAR}=true to accept plaintext messages"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_aes_key_the_webhook_starts_only_when_plaintext_is_allowed() {
        for (has_key, allow, starts) in [
            (true, None, true),
            (true, Some("false"), true),
            (true, Some("true"), true),
            (false, None, false),
            (false, Some(""), false),
            (false, Some("false"), false),
            (false, Some("true"), true),
            (false, Some(" TRUE "), true),
        ] {
            assert_eq!(
                require_safe_mode(has_key, allow).is_ok(),
                starts,
                "key: {has_key}, {ALLOW_PLAINTEXT_VAR}={allow:?}"
            );
        }
    }

    #[test]
    fn the_refusal_says_how_to_give_a_key_or_allow_plaintext() {
        let err = require_safe_mode(false, None).expect_err("refused");
        assert!(
            err.contains("WECHAT_AES_KEY") && err.contains("WCA_ALLOW_PLAINTEXT=true"),
            "{err}"
        );
    }

    #[test]
    fn a_plaintext_switch_that_is_not_true_or_false_is_an_error_even_with_a_key() {
        for value in ["1", "yes", "ture"] {
            let err = require_safe_mode(true, Some(value)).expect_err(value);
            assert!(err.contains(ALLOW_PLAINTEXT_VAR), "{err}");
        }
    }
}
