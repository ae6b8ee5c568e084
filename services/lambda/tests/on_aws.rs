//! The Lambda handlers on the AWS stand-in: a vote reaches the view through
//! the records stream alone.

use http_body_util::BodyExt;
use openfloor_aws::stream::StreamReader;
use openfloor_aws::Aws;
use openfloor_domain::ids::{EventId, QuestionId};
use openfloor_domain::input::{QuestionText, Title};
use openfloor_domain::record::{Record, RecordBody};
use openfloor_lambda::LambdaSettings;
use openfloor_projector::project_records;
use openfloor_projector::service::ProjectorService;
use openfloor_store::{EventMeta, Touched};
use openfloor_testing::aws as stand_in;
use openfloor_testing::fixtures;
use proptest::prelude::*;
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

/// A live event of the stand-in's region, in its directory.
async fn live_event(aws: &Aws) -> EventMeta {
    let meta = fixtures::event_meta(EventId::from_ulid(ulid::Ulid::new()))
        .region(&aws.settings.region)
        .live_for(std::time::Duration::from_secs(3600))
        .build();
    aws.store().directory.create(&meta).await.unwrap();
    meta
}

/// A history as the service writes it: the event, four questions, and each
/// (question, voter) pair's toggles numbered 1, 2, … in the order given.
fn history(event: &EventMeta, toggles: &[(u8, u8)]) -> Vec<Record> {
    let question =
        |i: u8| QuestionId::from_ulid(ulid::Ulid::from_parts(event.created_at, i.into()));
    let at = |i: usize| ulid::Ulid::from_parts(event.created_at + i as u64, i as u128);
    let mut out = vec![fixtures::record(
        event.id,
        at(0),
        RecordBody::EventCreated {
            title: Title::parse("Streamed").unwrap(),
        },
    )];
    for q in 0..4 {
        out.push(fixtures::record(
            event.id,
            at(out.len()),
            RecordBody::QuestionAsked {
                question: question(q),
                asker: fixtures::voter_id(1000),
                text: QuestionText::parse(&format!("question {q}")).unwrap(),
                author: None,
            },
        ));
    }
    let mut numbers = std::collections::HashMap::new();
    for &(q, v) in toggles {
        let n = numbers.entry((q, v)).or_insert(0u32);
        *n += 1;
        let body = RecordBody::Vote {
            question: question(q),
            voter: fixtures::voter_id(v.into()),
            n: *n,
        };
        out.push(fixtures::record(event.id, at(out.len()), body));
    }
    out
}

/// One batch of the records stream as the event source mapping delivers it
/// to the projector Lambda: each change with its keys and its new image.
fn stream_batch(region: &str, changes: &[Touched]) -> Value {
    json!({
        "Records": changes.iter().map(|change| {
            let record = change.record.as_ref().expect("the stream carries the record");
            json!({
                "eventID": change.position,
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "awsRegion": region,
                "dynamodb": {
                    "Keys": {"pk": {"S": format!("{}#0", change.event)}},
                    "NewImage": {
                        "pk": {"S": format!("{}#0", change.event)},
                        "sk": {"S": record.key().as_str()},
                        "body": {"S": serde_json::to_string(record).unwrap()},
                    },
                    "SequenceNumber": change.position,
                    "SizeBytes": 300,
                    "StreamViewType": "NEW_IMAGE",
                },
            })
        }).collect::<Vec<_>>(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// On the AWS backend (moto), the projector Lambda fed the records
    /// stream's batches, some of them twice and all of them out of order,
    /// by instances cold (a fresh state, as after a freeze) and warm,
    /// stores the views a full recompute of the log gives, reading nothing
    /// of the log: its state lives in the views table and the bucket.
    #[test]
    fn stream_fed_projection_on_aws_equals_a_full_recompute(
        toggles in prop::collection::vec((0u8..4, 0u8..12), 10..50),
        seed in any::<u64>(),
        batch in 1usize..9,
        cold_every in 1usize..4,
    ) {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let Some(aws) = stand_in::fresh().await else { return };
            let store = aws.store();
            let meta = live_event(&aws).await;
            let records = history(&meta, &toggles);
            // The event's first projection (of its creation alone) stores
            // its state; everything after is applied to stored versions.
            store.log.append(meta.log(), records[0].clone()).await.unwrap();
            let first = ProjectorService::new(store.clone(), aws.settings.region.clone());
            first.projector.project(meta.id).await.unwrap();
            store.log.append_batch(meta.log(), records[1..].to_vec()).await.unwrap();

            let mut stream = StreamReader::from_start(&aws).await.unwrap();
            let mut changes = Vec::new();
            while changes.len() < records.len() {
                changes.extend(stream.poll().await.unwrap());
            }
            assert!(changes.iter().all(|c| c.record.is_some()), "new images carry records");
            // Redelivered and scrambled.
            let again: Vec<Touched> = changes.iter().step_by(3).cloned().collect();
            changes.extend(again);
            let len = changes.len();
            let mut x = seed | 1;
            for i in (1..len).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                changes.swap(i, (x % (i as u64 + 1)) as usize);
            }

            let region = aws.settings.region.clone();
            let warm = ProjectorService::new(store.clone(), region.clone());
            let log_reads_before = aws.meter.usage();
            for (i, changes) in changes.chunks(batch).enumerate() {
                let cold;
                let service = if i % cold_every == 0 {
                    cold = ProjectorService::new(store.clone(), region.clone());
                    &cold
                } else {
                    &warm
                };
                let response = openfloor_lambda::handle_projector_event(
                    service,
                    stream_batch(&region, changes),
                )
                .await
                .unwrap();
                assert_eq!(response, json!({"batchItemFailures": []}));
            }
            let used = aws.meter.usage() - log_reads_before;

            let logged = store.log.read_event(meta.log()).await.unwrap();
            let full = project_records(meta.id, &logged, logged.len() as u64);
            let stored = store.views.get(meta.id).await.unwrap().unwrap();
            assert_eq!(*stored, full);
            // Per batch: the directory entry (cold instances only) and the
            // state's item (twice after a lost race); never the records.
            let batches = len.div_ceil(batch) as u64;
            assert!(
                used.items_read <= 3 * batches,
                "{} items read for {batches} batches",
                used.items_read
            );
            // Each replaced version's pieces are gone: the bucket holds the
            // current head and its one toggle chunk, nothing else.
            let listed = aws
                .s3
                .list_objects_v2()
                .bucket(aws.settings.states_bucket.as_deref().unwrap())
                .prefix(format!("states/{}/", meta.id))
                .send()
                .await
                .unwrap();
            let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
            assert_eq!(keys.len(), 2, "{keys:?}");
        });
    }
}

/// A stream batch the event source mapping gave up on is described to the
/// projector's queue (its failure destination, in the mapping's own
/// format: `fixtures/dynamodb-stream-failure.json`). The projector Lambda,
/// handed that message, reads the batch's changes again from the stream
/// and projects them: the views catch up without waiting for a sweep.
#[tokio::test]
async fn a_given_up_stream_batch_is_read_again_and_projected() {
    let Some(aws) = stand_in::fresh().await else {
        return;
    };
    let store = aws.store();
    let meta = live_event(&aws).await;
    let records = history(&meta, &[(0, 1), (1, 2), (0, 3), (0, 1)]);
    // Its creation is projected (a state is stored), the rest is not: the
    // stream's batch of it was given up on.
    store
        .log
        .append(meta.log(), records[0].clone())
        .await
        .unwrap();
    let service = openfloor_lambda::projector_service_on(&aws);
    service.projector.project(meta.id).await.unwrap();
    store
        .log
        .append_batch(meta.log(), records[1..].to_vec())
        .await
        .unwrap();

    // Where the batch is: the stream's one shard, first to last change.
    let arn = aws
        .dynamo
        .describe_table()
        .table_name(&aws.settings.records_table)
        .send()
        .await
        .unwrap()
        .table()
        .and_then(|t| t.latest_stream_arn())
        .unwrap()
        .to_owned();
    let shards = aws
        .streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    let shard = shards.stream_description().unwrap().shards()[0]
        .shard_id()
        .unwrap()
        .to_owned();
    let mut stream = StreamReader::from_start(&aws).await.unwrap();
    let mut changes = Vec::new();
    while changes.len() < records.len() {
        changes.extend(stream.poll().await.unwrap());
    }
    let fixture = format!(
        "{}/fixtures/dynamodb-stream-failure.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut notice: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let info = &mut notice["DDBStreamBatchInfo"];
    info["shardId"] = json!(shard);
    info["startSequenceNumber"] = json!(changes[0].position);
    info["endSequenceNumber"] = json!(changes.last().unwrap().position);
    info["streamArn"] = json!(arn);
    let message = json!({"Records": [{
        "messageId": "given-up-1",
        "receiptHandle": "receipt",
        "body": notice.to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795330000000"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:openfloor-projector",
        "awsRegion": "eu-west-1",
    }]});

    assert_eq!(store.views.get(meta.id).await.unwrap().unwrap().records, 1);
    let response = openfloor_lambda::handle_projector_event(&service, message)
        .await
        .unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    let stored = store.views.get(meta.id).await.unwrap().unwrap();
    let logged = store.log.read_event(meta.log()).await.unwrap();
    assert_eq!(
        *stored,
        project_records(meta.id, &logged, logged.len() as u64)
    );

    // A service that cannot read given-up batches (no stream) refuses the
    // message, which the queue then retries and dead-letters.
    let plain = ProjectorService::new(store.clone(), aws.settings.region.clone());
    let message = json!({"Records": [{
        "messageId": "given-up-2",
        "body": notice.to_string(),
        "attributes": {},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }]});
    let response = openfloor_lambda::handle_projector_event(&plain, message)
        .await
        .unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "given-up-2"}]})
    );
}
