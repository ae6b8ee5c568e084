//! The projector Lambda: SQS batches of projector commands in, partial
//! batch failures out.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let cli = openfloor_lambda::config_from_env()?;
    let service = openfloor_lambda::projector_service(&cli).await;
    let service = &service;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(
            openfloor_lambda::handle_sqs_event(service, event.payload).await,
        )
    }))
    .await
}
