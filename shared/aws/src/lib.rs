//! openfloor on AWS (DESIGN.md, "Storage roles", aws column):
//!
//! - [`dynamo`]: the directory (a global `events` table, written once per
//!   event), the log (a regional records table; one event's records spread
//!   over `{event}#{shard}` partitions; sort key = the record's deterministic
//!   key, written with `attribute_not_exists`), and the views (a regional
//!   table, written with a guard on how many records a view folds);
//! - [`queue`]: the SQS projector queue (commands: project, verify, sweep;
//!   a dead-letter queue behind it) and the trigger that nudges it.
//!
//! This crate adapts the storage roles to AWS and nothing more: it depends
//! on the domain and the store only. What the projector does with a queued
//! command lives with the projector.
//!
//! Nothing here needs to reach AWS: `endpoint_url` points it at a stand-in
//! (moto's server) for development and tests.

pub mod dynamo;
pub mod meter;
pub mod queue;
pub mod states;
pub mod stream;
pub mod views;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use openfloor_store::{Store, StoreError};

/// Where openfloor's AWS resources are.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// The region this deployment serves (its home region for new events).
    pub region: String,
    /// A stand-in's endpoint (moto's server); `None` for AWS itself.
    pub endpoint_url: Option<String>,
    pub events_table: String,
    pub records_table: String,
    pub views_table: String,
    pub queue_name: String,
    /// The S3 bucket of projection states ([`states`]); `None`: projectors
    /// fold the whole log each time (tools that do not project).
    pub states_bucket: Option<String>,
}

impl AwsSettings {
    /// The dead-letter queue's name: the queue's, with `-dlq`.
    pub fn dlq_name(&self) -> String {
        format!("{}-dlq", self.queue_name)
    }
}

/// Connected clients plus the names of the resources.
#[derive(Clone)]
pub struct Aws {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The records table's stream (the projector's trigger).
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// The projection states' bucket.
    pub s3: aws_sdk_s3::Client,
    pub settings: AwsSettings,
    /// What the stores of this connection read and write in DynamoDB.
    pub meter: std::sync::Arc<meter::Meter>,
}

/// How many times the SDK tries a call (with exponential backoff and
/// jitter) before the failure reaches the API as a 503.
const MAX_ATTEMPTS: u32 = 3;
/// How long one attempt of a call may take before it is retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

impl Aws {
    /// Loads credentials the standard way (`AWS_*` variables, profiles,
    /// instance roles). With a stand-in endpoint and no credentials in the
    /// environment, uses static test credentials.
    pub async fn connect(settings: AwsSettings) -> Self {
        Self::connect_with_timeout(settings, ATTEMPT_TIMEOUT).await
    }

    /// [`Aws::connect`] with another limit on each call's attempt: tools
    /// that read large events from the slow stand-in need more than a
    /// request path may wait.
    pub async fn connect_with_timeout(settings: AwsSettings, attempt: Duration) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(attempt)
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint_url {
            loader = loader.endpoint_url(endpoint);
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "test",
                    "test",
                    None,
                    None,
                    "openfloor-stand-in",
                ));
            }
        }
        let config = loader.load().await;
        Self {
            dynamo: aws_sdk_dynamodb::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            streams: aws_sdk_dynamodbstreams::Client::new(&config),
            // A stand-in serves buckets by path, not by host name.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(settings.endpoint_url.is_some())
                    .build(),
            ),
            settings,
            meter: std::sync::Arc::default(),
        }
    }

    /// The storage roles on DynamoDB.
    pub fn store(&self) -> Store {
        let store = std::sync::Arc::new(dynamo::DynamoStore::new(
            self.dynamo.clone(),
            self.s3.clone(),
            &self.settings,
            self.meter.clone(),
        ));
        let states = self
            .settings
            .states_bucket
            .is_some()
            .then(|| store.clone() as std::sync::Arc<dyn openfloor_store::ProjectionStates>);
        Store {
            directory: store.clone(),
            log: store.clone(),
            views: store,
            states,
            damage: openfloor_store::DamagedEvents::new(),
        }
    }

    /// Creates missing tables and queues (development and tests only: in
    /// production the CloudFormation template in `ops/aws/` owns them).
    pub async fn create_resources(&self) -> Result<(), StoreError> {
        dynamo::create_tables(&self.dynamo, &self.settings).await?;
        queue::create_queues(&self.sqs, &self.settings).await?;
        if let Some(bucket) = &self.settings.states_bucket {
            states::create_bucket(&self.s3, bucket).await?;
        }
        Ok(())
    }
}

/// An SDK request builder refused its input (a required field unset): a bug
/// here rather than a client's, surfaced like any failed call.
pub(crate) fn build_error(what: &str, error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::unavailable(format!("building {what}"), error)
}

/// Maps a DynamoDB or SQS failure (both SDKs share one `SdkError`) to the
/// store's errors: throttling means "overloaded", anything else the SDK
/// could not get through (after its retries) means "unavailable"; both
/// become 503 with `Retry-After` at the API. `what` says what was being
/// done; the SDK's error stays the source.
pub(crate) fn sdk_error<E>(
    what: impl Into<String>,
    error: aws_sdk_dynamodb::error::SdkError<E>,
) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    let throttled = matches!(
        error.code(),
        Some(
            "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "ThrottledException"
        )
    );
    if throttled {
        StoreError::overloaded(what, error)
    } else {
        StoreError::unavailable(what, error)
    }
}
