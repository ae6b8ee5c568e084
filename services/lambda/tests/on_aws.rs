//! The Lambda handlers on the AWS stand-in: a vote reaches the view through
//! the records stream alone.

use http_body_util::BodyExt;
use openfloor_aws::stream::StreamReader;
use openfloor_aws::Aws;
use openfloor_lambda::LambdaSettings;
use openfloor_projector::service::ProjectorService;
use openfloor_testing::aws as stand_in;
use serde_json::{json, Value};
use tower::ServiceExt;

/// An API Gateway (HTTP API, payload 2.0) request, as the API Lambda is
/// invoked with it: the create-event fixture with another method, path,
/// voter and body.
fn gateway_request(method: &str, path: &str, voter: &str, body: Value) -> lambda_http::Request {
    let fixture = format!(
        "{}/fixtures/apigw-v2-create-event.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["headers"]["x-voter"] = json!(voter);
    event["body"] = json!(body.to_string());
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// Runs one request through the API Lambda's router and returns its status
/// and JSON body.
async fn invoke(app: &openfloor_api::AppState, request: lambda_http::Request) -> (u16, Value) {
    let response = openfloor_api::router(app.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A Lambda is frozen the moment it answers, so nothing the API handler
/// leaves running may be needed for a vote to be seen. Here the handler's
/// runtime is shut down right after the last response, cancelling any task
/// it spawned; the projector then learns of the vote from the records
/// stream alone, delivered to its handler as the event source mapping
/// would.
#[test]
fn a_vote_through_the_api_handler_reaches_the_view_by_the_records_stream_alone() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let settings = LambdaSettings::from_env().unwrap();

    // The API Lambda's invocations, on a runtime that ends with them.
    let api_runtime = runtime();
    let answered = api_runtime.block_on(async {
        let aws = stand_in::fresh().await?;
        let app = openfloor_lambda::api_state_on(&aws, &settings);
        let voter = "a-phone-in-the-room-0001";
        let (status, created) = invoke(
            &app,
            gateway_request("POST", "/api/events", voter, json!({"title": "Frozen"})),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let event = created["id"].as_str().unwrap().to_owned();
        let (status, asked) = invoke(
            &app,
            gateway_request(
                "POST",
                &format!("/api/events/{event}/questions"),
                voter,
                json!({"text": "Does the vote survive the freeze?"}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{asked}");
        let question = asked["id"].as_str().unwrap().to_owned();
        let (status, voted) = invoke(
            &app,
            gateway_request(
                "PUT",
                &format!("/api/events/{event}/questions/{question}/vote"),
                "another-phone-in-the-room-02",
                json!({"up": true}),
            ),
        )
        .await;
        assert_eq!(status, 202, "{voted}");
        Some((aws.settings.clone(), event, question))
    });
    // Frozen: whatever the handler spawned dies with its runtime.
    api_runtime.shutdown_background();
    let Some((aws_settings, event, question)) = answered else {
        return; // no stand-in here (allowed only outside CI)
    };

    // The projector Lambda, invoked with what the stream holds.
    runtime().block_on(async {
        let aws = Aws::connect(aws_settings).await;
        let service = ProjectorService::new(aws.store(), aws.settings.region.clone());
        let mut stream = StreamReader::from_start(&aws).await.unwrap();
        let changes = stream.poll().await.unwrap();
        assert!(
            changes.iter().all(|c| c.event.to_string() == event),
            "only this event's records: {changes:?}"
        );
        assert_eq!(changes.len(), 3, "created, asked, voted: {changes:?}");
        let batch = json!({
            "Records": changes.iter().map(|change| json!({
                "eventID": change.position,
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "awsRegion": aws.settings.region,
                "dynamodb": {
                    "Keys": {"pk": {"S": format!("{}#0", change.event)}},
                    "SequenceNumber": change.position,
                    "SizeBytes": 60,
                    "StreamViewType": "KEYS_ONLY",
                },
            })).collect::<Vec<_>>(),
        });
        let response = openfloor_lambda::handle_projector_event(&service, batch)
            .await
            .unwrap();
        assert_eq!(response, json!({"batchItemFailures": []}));

        let view = aws
            .store()
            .views
            .get(event.parse().unwrap())
            .await
            .unwrap()
            .expect("the stream's batch projected the event");
        let guest: Value = serde_json::from_slice(&view.guest.json).unwrap();
        assert_eq!(guest["questions"][0]["id"], question);
        assert_eq!(guest["questions"][0]["votes"], 1);
    });
}
