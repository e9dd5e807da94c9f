//! The deliver function: the campaign delivery queue in; each recipient
//! claimed, rendered, screened and sent through WeChat, exactly once.
//! Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`) it polls the queue named
//! by `WCA_DELIVERY_QUEUE_URL` itself until SIGTERM or Ctrl-C.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wca_broadcast::Stack;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    let stack = Stack::load().await?;
    let deliver = Arc::new(stack.deliver()?);
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        let stop = Arc::new(tokio::sync::Notify::new());
        let signal = stop.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = term => {}
            }
            signal.notify_one();
        });
        tracing::info!(queue = %stack.queue.reader().url(), "delivering from the queue");
        deliver.poll(&stack.queue.reader(), stop).await;
        return Ok(());
    }
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deliver = deliver.clone();
        async move { Ok::<_, Error>(deliver.handle_event(event.payload).await) }
    }))
    .await
}
