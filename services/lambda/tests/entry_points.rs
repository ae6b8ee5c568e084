//! The Lambda handlers, fed the fixtures in `fixtures/` (what API Gateway
//! and SQS deliver), over the in-memory store.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use http_body_util::BodyExt;
use openfloor_api::{ApiConfig, AppState, Regions, SystemClock};
use openfloor_domain::ids::EventId;
use openfloor_domain::record::RecordBody;
use openfloor_projector::service::ProjectorService;
use openfloor_store::memory::MemoryStore;
use openfloor_store::{Directory, EventMeta, LocalTrigger, Store, StoreError, StoreResult};
use openfloor_testing::fixtures;
use tower::ServiceExt;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Registers `event` (of this region, four shards) with its creation
/// record, as the fixtures name it.
async fn created(store: &Store, event: &str) -> EventId {
    let event: EventId = event.parse().unwrap();
    let meta = fixtures::event_meta(event)
        .title("fixture")
        .region("eu-west-1")
        .shards(4)
        .build();
    store.directory.create(&meta).await.unwrap();
    let created = fixtures::record(
        event,
        ulid::Ulid::from_parts(1, 1),
        RecordBody::EventCreated {
            title: meta.title.clone(),
        },
    );
    store.log.append(meta.log(), created).await.unwrap();
    event
}

#[tokio::test]
async fn the_projector_handler_reports_only_the_poison_message() {
    let store = MemoryStore::store();
    let event = created(&store, "01JD0000000000000000000001").await;

    let batch: SqsEvent = serde_json::from_str(&fixture("sqs-batch.json")).unwrap();
    let service = ProjectorService::new(store.clone(), "eu-west-1".into());
    let response = openfloor_lambda::handle_sqs_event(&service, batch).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["22222222-2222-4222-8222-222222222222"]);
    let view = store.views.get(event).await.unwrap().unwrap();
    assert_eq!(view.records, 1);
    // The response is what Lambda expects for ReportBatchItemFailures.
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(
        json["batchItemFailures"][0]["itemIdentifier"],
        "22222222-2222-4222-8222-222222222222"
    );
}

fn app() -> AppState {
    let config = ApiConfig {
        regions: Regions::single("eu-west-1"),
        client_address: openfloor_api::ClientAddressSource {
            trusted_proxies: 2,
            cloudfront_viewer_address: true,
            cdn_secret: None,
        },
        secure_cookies: true,
        ..ApiConfig::default()
    };
    AppState::new(
        MemoryStore::store(),
        Arc::new(LocalTrigger::new()),
        config,
        Arc::new(SystemClock),
    )
}

#[tokio::test]
async fn the_api_handler_serves_api_gateway_requests_through_the_shared_router() {
    let request = lambda_http::request::from_str(&fixture("apigw-v2-create-event.json")).unwrap();
    let response = openfloor_api::router(app()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 201);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.starts_with("__Host-openfloor_voter=") && cookie.contains("; Secure"),
        "HTTPS behind the gateway: {cookie}"
    );
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["title"], "From a Lambda fixture");
    assert_eq!(body["region"], "eu-west-1");

    let request = lambda_http::request::from_str(&fixture("apigw-v2-bad-id.json")).unwrap();
    let response = openfloor_api::router(app()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 400);
}

#[test]
fn lambda_configuration_comes_from_the_services_own_variables() {
    // No flags: everything from the environment (defaults here).
    let cli = openfloor_lambda::config_from_env().unwrap();
    assert_eq!(
        cli.store.aws.queue_name,
        std::env::var("OPENFLOOR_QUEUE").unwrap_or_else(|_| "openfloor-projector".into())
    );
    assert!(cli.serve.shards >= 1);
}

/// A directory that cannot be read for one event, as when DynamoDB keeps
/// throttling it: the projection of that event fails, and only that one.
struct UnreadableFor {
    inner: Arc<dyn Directory>,
    event: EventId,
}

#[async_trait::async_trait]
impl Directory for UnreadableFor {
    async fn create(&self, meta: &EventMeta) -> StoreResult<()> {
        self.inner.create(meta).await
    }

    async fn get(&self, id: EventId) -> StoreResult<Option<EventMeta>> {
        if id == self.event {
            return Err(StoreError::unavailable_msg("throttled"));
        }
        self.inner.get(id).await
    }

    async fn list(&self) -> StoreResult<Vec<EventMeta>> {
        self.inner.list().await
    }
}

#[tokio::test]
async fn the_projector_handler_projects_streamed_events_and_reports_only_the_failed_changes() {
    let mut store = MemoryStore::store();
    let good = created(&store, "01JD0000000000000000000001").await;
    let failing = created(&store, "01JD0000000000000000000002").await;
    store.directory = Arc::new(UnreadableFor {
        inner: store.directory.clone(),
        event: failing,
    });
    let service = ProjectorService::new(store.clone(), "eu-west-1".into());

    let payload: serde_json::Value =
        serde_json::from_str(&fixture("dynamodb-stream-batch.json")).unwrap();
    let response = openfloor_lambda::handle_projector_event(&service, payload)
        .await
        .unwrap();

    // The failing event's change is reported by its sequence number, in the
    // shape Lambda reads for ReportBatchItemFailures; the others are done.
    assert_eq!(
        response,
        serde_json::json!({
            "batchItemFailures": [{"itemIdentifier": "4421584500000000017450439092"}]
        })
    );
    assert_eq!(store.views.get(good).await.unwrap().unwrap().records, 1);
    assert!(store.views.get(failing).await.unwrap().is_none());
}

#[tokio::test]
async fn the_projector_handler_still_takes_queue_batches() {
    let store = MemoryStore::store();
    let service = ProjectorService::new(store, "eu-west-1".into());
    let payload: serde_json::Value = serde_json::from_str(&fixture("sqs-batch.json")).unwrap();
    let response = openfloor_lambda::handle_projector_event(&service, payload)
        .await
        .unwrap();
    assert_eq!(
        response["batchItemFailures"][0]["itemIdentifier"],
        "22222222-2222-4222-8222-222222222222"
    );
}
