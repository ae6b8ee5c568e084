//! The Lambda entry points' shared parts. Configuration comes from the same
//! environment variables as the service binary (`OPENFLOOR_*`, `AWS_*`),
//! parsed by the same definitions (`openfloor-config`), so a Lambda and
//! `openfloor --backend aws` cannot disagree about a setting.

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use openfloor_api::{AppState, SystemClock};
use openfloor_aws::queue::{Queue, SqsTrigger};
use openfloor_aws::Aws;
pub use openfloor_config::LambdaSettings;
use openfloor_projector::service::{Incoming, ProjectorService};

/// JSON logs on standard output, as CloudWatch reads them (it stamps the
/// time itself).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
}

/// The service's configuration, read from the environment alone.
pub fn config_from_env() -> anyhow::Result<LambdaSettings> {
    Ok(LambdaSettings::from_env()?)
}

/// The API's state on AWS: DynamoDB store, SQS trigger.
pub async fn api_state(cli: &LambdaSettings) -> anyhow::Result<AppState> {
    let aws = Aws::connect(cli.store.aws.settings()).await;
    let queue = Queue::open(aws.sqs.clone(), &aws.settings.queue_name).await?;
    let salt = cli.serve.client_salt(None);
    let mut config = cli
        .serve
        .api_config(aws.settings.region.clone(), cli.serve.shards, salt);
    // Behind API Gateway or CloudFront, the client is the first
    // X-Forwarded-For address.
    config.trust_forwarded_for = true;
    Ok(AppState::new(
        aws.store(),
        Arc::new(SqsTrigger::new(queue)),
        config,
        Arc::new(SystemClock),
    ))
}

/// The projector on AWS.
pub async fn projector_service(cli: &LambdaSettings) -> ProjectorService {
    let aws = Aws::connect(cli.store.aws.settings()).await;
    ProjectorService::new(aws.store(), aws.settings.region.clone())
}

/// Handles one SQS batch; the failed messages are reported so that only
/// they are retried (ReportBatchItemFailures), and go to the dead-letter
/// queue after their receives run out.
pub async fn handle_sqs_event(service: &ProjectorService, event: SqsEvent) -> SqsBatchResponse {
    let incoming: Vec<Incoming> = event
        .records
        .into_iter()
        .map(|m| Incoming {
            id: m.message_id.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
        })
        .collect();
    let failed = service.handle(&incoming).await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}
