//! The classify function: SQS (from the bus rule on `MessageReceived`) ->
//! archive -> intent and sentiment -> `MessageClassified` on the bus.

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wca_aws::FunctionEnv;
use wca_aws::metrics::{Emf, Metrics};
use wca_classify::Classifier;
use wca_core::SystemClock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wca_aws::init_tracing();
    // Loaded once per sandbox: the embedded models, or WCA_MODEL_DIR's.
    let nlp = match std::env::var("WCA_MODEL_DIR") {
        Ok(dir) if !dir.is_empty() => wca_nlp::Nlp::load_dir(dir)?,
        _ => wca_nlp::Nlp::default_models()?,
    };
    let aws = FunctionEnv::load().await?;
    let classifier = Classifier {
        nlp: Arc::new(nlp),
        archive: Arc::new(aws.store),
        events: Arc::new(aws.bus),
        clock: Arc::new(SystemClock),
    };
    let emf = Emf::from_env("classify");
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (classifier, emf) = (classifier.clone(), emf.clone());
        async move {
            let started = Instant::now();
            let response = classifier.handle(event.payload).await;
            let mut metrics = Metrics::default();
            metrics.add_latency(started);
            emf.emit(&metrics);
            Ok::<_, Error>(response)
        }
    }))
    .await
}
