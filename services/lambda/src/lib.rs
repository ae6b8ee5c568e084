//! The Lambda entry points' shared parts. Configuration comes from the same
//! environment variables as the service binary (`OPENFLOOR_*`, `AWS_*`),
//! parsed by the same definitions (`openfloor-config`), so a Lambda and
//! `openfloor --backend aws` cannot disagree about a setting.

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use openfloor_api::{AppState, SystemClock, VIEW_REUSE_BEHIND_A_CDN};
use openfloor_aws::queue::TRACEPARENT;
use openfloor_aws::stream::{
    event_of_partition, record_of_image, RecordsStreamTrigger, StreamRereader,
};
use openfloor_aws::Aws;
pub use openfloor_config::LambdaSettings;
use openfloor_projector::service::{Incoming, ProjectorService};
use openfloor_store::Touched;
use openfloor_telemetry::Telemetry;
use serde_json::Value;

/// Telemetry for a Lambda: JSON logs, as CloudWatch reads them; traces and
/// metrics over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (e.g. the
/// AWS Distro for OpenTelemetry layer's collector on localhost). A frozen
/// function exports nothing: [`Telemetry::flush`] before each answer.
pub fn init_telemetry(name: &'static str) -> anyhow::Result<Arc<Telemetry>> {
    Ok(Arc::new(openfloor_telemetry::init(
        openfloor_telemetry::Service {
            name,
            json_logs_by_default: true,
        },
    )?))
}

/// The API's router, flushing telemetry once each answer is complete: the
/// body is gathered first, so the request's span has ended and is sent
/// before Lambda freezes the function. (Answers are small JSON documents
/// or views, which the runtime gathers anyway.)
pub fn flushing(router: axum::Router, telemetry: Arc<Telemetry>) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let telemetry = telemetry.clone();
            async move {
                let (parts, body) = next.run(request).await.into_parts();
                let body = match axum::body::to_bytes(body, usize::MAX).await {
                    Ok(bytes) => axum::body::Body::from(bytes),
                    Err(error) => {
                        tracing::error!(%error, "the answer's body failed");
                        axum::body::Body::empty()
                    }
                };
                telemetry.flush();
                axum::response::Response::from_parts(parts, body)
            }
        },
    ))
}

/// The service's configuration, read from the environment alone.
pub fn config_from_env() -> anyhow::Result<LambdaSettings> {
    Ok(LambdaSettings::from_env()?)
}

/// The API's state on AWS: the DynamoDB store. Its records table's stream
/// tells the projector, so the API sends nothing after it answers (and
/// needs no access to the queue).
pub async fn api_state(cli: &LambdaSettings) -> anyhow::Result<AppState> {
    let aws = Aws::connect(cli.store.aws.settings()).await;
    Ok(api_state_on(&aws, cli))
}

/// [`api_state`] on an existing connection.
pub fn api_state_on(aws: &Aws, cli: &LambdaSettings) -> AppState {
    let salt = cli.serve.client_salt(None);
    let mut config = cli
        .serve
        .api_config(aws.settings.region.clone(), cli.serve.shards, salt);
    // Behind CloudFront: the client's address is the one CloudFront
    // reports, else the X-Forwarded-For entry the trusted proxies say
    // (OPENFLOOR_TRUSTED_PROXIES; the stack sets two), for requests that
    // carry the CDN's secret (OPENFLOOR_CDN_SECRET); a direct caller is the
    // address API Gateway saw.
    config.client_address.cloudfront_viewer_address = true;
    // API Gateway and the CDN serve HTTPS only.
    config.secure_cookies = true;
    config.view_reuse = VIEW_REUSE_BEHIND_A_CDN;
    AppState::new(
        aws.store(),
        Arc::new(RecordsStreamTrigger),
        config,
        Arc::new(SystemClock),
    )
}

/// The projector on AWS.
pub async fn projector_service(cli: &LambdaSettings) -> ProjectorService {
    let aws = Aws::connect(cli.store.aws.settings()).await;
    projector_service_on(&aws)
}

/// [`projector_service`] on an existing connection: it also takes the
/// descriptions of stream batches its event source mapping gave up on (the
/// mapping's failure destination is the projector's queue) and projects
/// their changes again.
pub fn projector_service_on(aws: &Aws) -> ProjectorService {
    ProjectorService::new(aws.store(), aws.settings.region.clone())
        .rereading(Arc::new(StreamRereader::new(aws)))
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
            sent_at: m
                .attributes
                .get("SentTimestamp")
                .and_then(|at| at.parse().ok()),
            traceparent: m
                .message_attributes
                .get(TRACEPARENT)
                .and_then(|a| a.string_value.clone()),
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

/// Handles whatever the projector function is invoked with: a batch of the
/// records table's stream (its event source mapping), or a batch of the
/// command queue (SQS, which also carries the scheduled sweep). Both answer
/// with the failed items only, so that only those are retried.
pub async fn handle_projector_event(
    service: &ProjectorService,
    payload: Value,
) -> Result<Value, serde_json::Error> {
    // A warm instance keeps the states of the events it projected (so a
    // load reads only what changed); those idle for ten minutes go, as in
    // the service binary's projector loop.
    let evicted = service.projector.evict_idle();
    if evicted > 0 {
        tracing::debug!(evicted, "dropped idle event states");
    }
    let source = payload
        .pointer("/Records/0/eventSource")
        .and_then(Value::as_str);
    if source == Some("aws:dynamodb") {
        let event: StreamEvent = serde_json::from_value(payload)?;
        serde_json::to_value(handle_stream_event(service, event).await)
    } else {
        let event: SqsEvent = serde_json::from_value(payload)?;
        serde_json::to_value(handle_sqs_event(service, event).await)
    }
}

/// Handles one batch of the records stream: each event with new records is
/// projected once. The changes of a failed event are reported by their
/// sequence numbers; the stream redelivers from the lowest of them (and,
/// with bisect-on-error, splits a batch that keeps failing), and after the
/// mapping's retries the batch's description goes to its failure
/// destination.
pub async fn handle_stream_event(
    service: &ProjectorService,
    event: StreamEvent,
) -> DynamoDbEventResponse {
    let changes: Vec<Touched> = event
        .records
        .into_iter()
        .filter(|r| r.event_name == "INSERT")
        .filter_map(|r| {
            // Absent from the event, the time reads as the epoch: unknown.
            let created_at =
                u64::try_from(r.change.approximate_creation_date_time.timestamp_millis())
                    .ok()
                    .filter(|&at| at > 0);
            let position = r.change.sequence_number?;
            let pk = match r.change.keys.get("pk") {
                Some(serde_dynamo::AttributeValue::S(pk)) => pk.clone(),
                _ => {
                    tracing::warn!(%position, "stream change without a records key; skipped");
                    return None;
                }
            };
            let Some(event) = event_of_partition(&pk) else {
                tracing::warn!(%position, %pk, "stream change of no event; skipped");
                return None;
            };
            let text = |name: &str| match r.change.new_image.get(name) {
                Some(serde_dynamo::AttributeValue::S(text)) => Some(text.as_str()),
                _ => None,
            };
            Some(Touched {
                event,
                record: record_of_image(event, text("body")),
                traceparent: text("trace").map(str::to_owned),
                position,
                created_at,
            })
        })
        .collect();
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = service
        .handle_touched(&changes)
        .await
        .into_iter()
        .map(|change| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(change.position);
            failure
        })
        .collect();
    response
}
