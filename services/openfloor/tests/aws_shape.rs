//! openfloor's AWS shape against the stand-in: the HTTP API on DynamoDB,
//! the projector fed by the records stream and by the command queue, and
//! the failure paths.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use openfloor::poller::{handle_received, incoming};
use openfloor_api::{ApiConfig, AppState, Regions, SystemClock};
use openfloor_aws::queue::{Command, Queue, MAX_RECEIVES};
use openfloor_aws::stream::{RecordsStreamTrigger, StreamReader};
use openfloor_aws::{Aws, AwsSettings};
use openfloor_domain::ids::{EventId, QuestionId, VoterId};
use openfloor_domain::input::QuestionText;
use openfloor_domain::record::{Record, RecordBody};
use openfloor_domain::view::RenderedView;
use openfloor_projector::service::ProjectorService;
use openfloor_store::memory::MemoryStore;
use openfloor_store::{EventMeta, Store, StoredView};
use openfloor_testing::api::ApiClient;
use openfloor_testing::aws as stand_in;
use openfloor_testing::fixtures;
use serde_json::{json, Value};
use ulid::Ulid;

fn config(region: &str) -> ApiConfig {
    ApiConfig {
        regions: Regions::single(region),
        shards: 4,
        ..ApiConfig::default()
    }
}

/// The API on the AWS backend, on a real socket.
async fn serve(aws: &Aws) -> ApiClient {
    serve_app(AppState::new(
        aws.store(),
        Arc::new(RecordsStreamTrigger),
        config(&aws.settings.region),
        Arc::new(SystemClock),
    ))
    .await
}

/// `app` on a real socket, and a client of it.
async fn serve_app(app: AppState) -> ApiClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(openfloor_api::serve(listener, app, std::future::pending()));
    ApiClient::new(base)
}

/// Feeds the projector what the records stream delivers until `done` holds.
async fn project_until(
    service: &ProjectorService,
    stream: &mut StreamReader,
    done: impl AsyncFn() -> bool,
) {
    for _ in 0..40 {
        let changes = stream.poll().await.unwrap();
        assert!(service.handle_touched(&changes).await.is_empty());
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the projector never caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_dynamodb_serves_views_the_stream_fed_projector_renders() {
    let Some(aws) = stand_in::fresh().await else {
        return;
    };
    let queue = Queue::open(aws.sqs.clone(), &aws.settings.queue_name)
        .await
        .unwrap();
    let mut stream = StreamReader::open(&aws).await.unwrap();
    let api = serve(&aws).await;
    let service = ProjectorService::new(aws.store(), aws.settings.region.clone());

    let created = api.create_event("On AWS").await;
    assert_eq!(created.body["region"], "eu-west-1");
    let eid = created.id.as_str();
    let mut questions = Vec::new();
    for text in ["first", "second", "third"] {
        questions.push(api.ask_as(eid, "asker-token-000000000", text).await);
    }
    let vote = async |q: &str, voter: &str, up: bool| {
        let r = api.vote(eid, q, voter, up).await;
        assert_eq!(r.status(), 202);
        r.json::<Value>().await.unwrap()["record"].clone()
    };
    for voter in [
        "voter-aaaaaaaaaaaaaaaa",
        "voter-bbbbbbbbbbbbbbbb",
        "voter-cccccccccccccccc",
    ] {
        vote(&questions[1], voter, true).await;
    }
    // A retry is success, not an error: the conditional write finds its key.
    let first = vote(&questions[2], "voter-aaaaaaaaaaaaaaaa", true).await;
    let again = vote(&questions[2], "voter-aaaaaaaaaaaaaaaa", true).await;
    assert_eq!(first, again);
    let r = api
        .host_put(
            &created,
            &format!("/questions/{}/answered", questions[0]),
            json!({"value": true}),
        )
        .await;
    assert_eq!(r.status(), 202);

    let expected = |v: &Value| {
        v["questions"]
            .as_array()
            .is_some_and(|q| q.len() == 2 && q[0]["votes"] == 3 && q[1]["votes"] == 1)
            && v["answered"].as_array().is_some_and(|a| a.len() == 1)
    };
    project_until(&service, &mut stream, async || {
        expected(&api.guest_view(eid).await)
    })
    .await;
    // The stream carried the news: the API sent no message.
    assert!(queue
        .receive(Duration::from_secs(1))
        .await
        .unwrap()
        .is_empty());

    // The same records on the embedded backend render byte-identical views.
    let event: EventId = eid.parse().unwrap();
    let store = aws.store();
    let meta = store.directory.get(event).await.unwrap().unwrap();
    assert_eq!(meta.shards, 4);
    let records = store.log.read_event(meta.log()).await.unwrap();
    let embedded = MemoryStore::store();
    embedded.directory.create(&meta).await.unwrap();
    embedded
        .log
        .append_batch(meta.log(), records.clone())
        .await
        .unwrap();
    openfloor_projector::Projector::new(embedded.clone())
        .project(event)
        .await
        .unwrap();
    let on_aws = store.views.get(event).await.unwrap().unwrap();
    let local = embedded.views.get(event).await.unwrap().unwrap();
    assert_eq!(on_aws, local);
    // And the records really are spread over shards.
    let shards: std::collections::HashSet<u16> = records.iter().map(|r| r.shard(4)).collect();
    assert!(shards.len() > 1, "{shards:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_the_dead_letter_queue_while_its_batch_succeeds() {
    let Some(aws) = stand_in::fresh().await else {
        return;
    };
    let queue = Queue::open(aws.sqs.clone(), &aws.settings.queue_name)
        .await
        .unwrap();
    let dlq = Queue::open(aws.sqs.clone(), &aws.settings.dlq_name())
        .await
        .unwrap();
    let store = aws.store();
    let meta = event_with_records(&store, 3).await;
    let service = ProjectorService::new(store.clone(), "eu-west-1".into());

    stand_in::send_raw(&queue, "this is not a command").await;
    queue
        .send(&[Command::Project { event: meta.id }])
        .await
        .unwrap();
    // One batch holding both: the good one is done, the poison one fails alone.
    let mut batch = Vec::new();
    for _ in 0..10 {
        batch.extend(queue.receive(Duration::from_secs(1)).await.unwrap());
        if batch.len() == 2 {
            break;
        }
    }
    assert_eq!(batch.len(), 2);
    let failed = service.handle(&incoming(&batch)).await;
    let poison = batch.iter().find(|m| m.body.starts_with("this")).unwrap();
    assert_eq!(failed, vec![poison.id.clone()]);
    handle_received(&service, &queue, &batch).await;
    assert_eq!(store.views.get(meta.id).await.unwrap().unwrap().records, 4);

    // Retried until its receives run out, then redriven to the DLQ.
    for _ in 0..(MAX_RECEIVES * 4) {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let again = queue.receive(Duration::from_secs(1)).await.unwrap();
        handle_received(&service, &queue, &again).await;
    }
    let dead = dlq.receive(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        dead.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["this is not a command"]
    );
    assert!(
        queue
            .receive(Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty(),
        "nothing left in the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notification_is_repaired_by_the_sweep() {
    let Some(aws) = stand_in::fresh().await else {
        return;
    };
    let store = aws.store();
    // Records appended and acknowledged, but the nudge never sent.
    let meta = event_with_records(&store, 5).await;
    let mut elsewhere = meta.clone();
    elsewhere.id = EventId::from_ulid(Ulid::new());
    elsewhere.region = "us-east-1".into();
    store.directory.create(&elsewhere).await.unwrap();
    assert!(store.views.get(meta.id).await.unwrap().is_none());

    let service = ProjectorService::new(store.clone(), "eu-west-1".into());
    assert_eq!(
        service.sweep().await.unwrap().changed,
        1,
        "only this region's event, once"
    );
    assert_eq!(store.views.get(meta.id).await.unwrap().unwrap().records, 6);
    assert!(
        store.views.get(elsewhere.id).await.unwrap().is_none(),
        "another region's event is not touched"
    );
    assert_eq!(
        service.sweep().await.unwrap().changed,
        0,
        "nothing behind any more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_dynamodb_answers_503_with_retry_after() {
    if stand_in::endpoint().is_none() {
        return;
    }
    // Nothing listens on port 9 of loopback: every call fails, is retried
    // with backoff by the SDK, and then surfaces.
    let settings = AwsSettings {
        endpoint_url: Some("http://127.0.0.1:9".into()),
        ..stand_in::fresh_settings("http://127.0.0.1:9")
    };
    let aws = Aws::connect(settings).await;
    let api = serve_app(AppState::new(
        aws.store(),
        Arc::new(openfloor_store::LocalTrigger::new()),
        config("eu-west-1"),
        Arc::new(SystemClock),
    ))
    .await;
    for r in [
        api.post("/api/events")
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        api.get(&format!("/api/events/{}", Ulid::new()))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
        assert!(
            !body.to_string().contains("127.0.0.1:9"),
            "infrastructure details stay in the logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_follow_every_page_of_a_large_partition() {
    let Some(aws) = stand_in::fresh().await else {
        return;
    };
    let store = aws.store();
    let mut meta = event_meta();
    meta.shards = 1;
    store.directory.create(&meta).await.unwrap();
    let text = QuestionText::parse(&"y".repeat(1000)).unwrap();
    let records: Vec<Record> = (0..1500u64)
        .map(|i| {
            record(
                &meta,
                i,
                RecordBody::QuestionAsked {
                    question: QuestionId::from_ulid(Ulid::from_parts(1, u128::from(i))),
                    asker: VoterId::parse("00000000000000000001").unwrap(),
                    text: text.clone(),
                    author: None,
                },
            )
        })
        .collect();
    store.log.append_batch(meta.log(), records).await.unwrap();
    // The partition is over 1 MB, so one query page cannot hold it ...
    let page = aws
        .dynamo
        .query()
        .table_name(&aws.settings.records_table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("{}#0", meta.id)))
        .send()
        .await
        .unwrap();
    assert!(
        page.last_evaluated_key().is_some(),
        "the stand-in paged at {} items",
        page.items().len()
    );
    assert!(page.items().len() < 1500);
    // ... and a read of the event still gets every record.
    assert_eq!(store.log.read_event(meta.log()).await.unwrap().len(), 1500);
}

/// The stored items' attribute names and types are a contract with the
/// CloudFormation template and with data already stored: pin them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_keep_their_attribute_names_and_types() {
    let Some(aws) = stand_in::fresh().await else {
        return;
    };
    let store = aws.store();
    let meta = event_meta();
    let log = meta.log();
    store.directory.create(&meta).await.unwrap();
    let created = record(
        &meta,
        0,
        RecordBody::EventCreated {
            title: meta.title.clone(),
        },
    );
    store.log.append(log, created.clone()).await.unwrap();
    let view = |json: &[u8]| RenderedView {
        json: json.to_vec(),
        version: "\"v1\"".into(),
    };
    let stored = StoredView {
        records: 1,
        guest: view(b"{}"),
        host: view(b"{\"host\":true}"),
        projected_at: meta.created_at + 5,
        questions: 0,
    };
    assert!(store.views.put(meta.id, Arc::new(stored)).await.unwrap());

    let get = |table: &str, key: Vec<(&str, String)>| {
        let request = key.into_iter().fold(
            aws.dynamo
                .get_item()
                .table_name(table)
                .consistent_read(true),
            |r, (name, value)| r.key(name, AttributeValue::S(value)),
        );
        async move { request.send().await.unwrap().item.unwrap() }
    };
    let shape = |item: &HashMap<String, AttributeValue>| {
        item.iter()
            .map(|(name, value)| {
                let kind = match value {
                    AttributeValue::S(_) => "S",
                    AttributeValue::N(_) => "N",
                    AttributeValue::B(_) => "B",
                    _ => "other",
                };
                (name.clone(), kind)
            })
            .collect::<BTreeMap<_, _>>()
    };
    let expected = |pairs: &[(&str, &'static str)]| {
        pairs
            .iter()
            .map(|(name, kind)| (name.to_string(), *kind))
            .collect::<BTreeMap<_, _>>()
    };

    let settings = &aws.settings;
    let event = get(&settings.events_table, vec![("id", meta.id.to_string())]).await;
    assert_eq!(
        shape(&event),
        expected(&[
            ("id", "S"),
            ("meta", "S"),
            ("region", "S"),
            ("expires_at", "N"),
            ("ttl", "N"),
        ])
    );
    assert_eq!(
        event["ttl"],
        AttributeValue::N((meta.expires_at / 1000).to_string())
    );
    let key = created.key();
    let shard = key.shard(meta.id, meta.shards);
    let stored_record = get(
        &settings.records_table,
        vec![
            ("pk", format!("{}#{shard}", meta.id)),
            ("sk", key.as_str().to_owned()),
        ],
    )
    .await;
    assert_eq!(
        shape(&stored_record),
        expected(&[
            ("pk", "S"),
            ("sk", "S"),
            ("id", "S"),
            ("body", "S"),
            ("ttl", "N"),
        ])
    );
    let views = get(&settings.views_table, vec![("event", meta.id.to_string())]).await;
    assert_eq!(
        shape(&views),
        expected(&[
            ("event", "S"),
            ("records", "N"),
            ("guest", "B"),
            ("guest_version", "S"),
            ("host", "B"),
            ("host_version", "S"),
            ("ttl", "N"),
            ("projected_at", "N"),
        ])
    );
    assert_eq!(
        views["projected_at"],
        AttributeValue::N((meta.created_at + 5).to_string())
    );
    assert_eq!(
        views["host"],
        AttributeValue::B(b"{\"host\":true}".to_vec().into())
    );
    // Views expire with their event's records.
    assert_eq!(views["ttl"], event["ttl"]);
}

/// A live event of this region, with four shards.
fn event_meta() -> EventMeta {
    fixtures::event_meta(EventId::from_ulid(Ulid::new()))
        .region("eu-west-1")
        .shards(4)
        .live_for(Duration::from_secs(86_400))
        .build()
}

/// The event's record `i`, `i` milliseconds after its creation.
fn record(meta: &EventMeta, i: u64, body: RecordBody) -> Record {
    fixtures::record(
        meta.id,
        Ulid::from_parts(meta.created_at + i, u128::from(i)),
        body,
    )
}

/// A live event with its creation record and `votes` votes on one question.
async fn event_with_records(store: &Store, votes: u8) -> EventMeta {
    let meta = event_meta();
    store.directory.create(&meta).await.unwrap();
    let q = QuestionId::from_ulid(Ulid::new());
    let mut records = vec![record(
        &meta,
        0,
        RecordBody::EventCreated {
            title: meta.title.clone(),
        },
    )];
    for v in 0..votes {
        records.push(record(
            &meta,
            u64::from(v) + 1,
            RecordBody::Vote {
                question: q,
                voter: fixtures::voter_id(u64::from(v)),
                n: 1,
            },
        ));
    }
    store.log.append_batch(meta.log(), records).await.unwrap();
    meta
}

/// An event of 2,000 maximum-length questions in a non-Latin script has
/// views of megabytes, far past DynamoDB's 400 KB item. They are stored in
/// parts, served whole and byte-identical to the embedded backend's, and
/// replaced cleanly as the event moves on; the sweep goes on past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_two_thousand_long_questions_projects_serves_and_moves_on() {
    let Some(aws) = stand_in::fresh().await else {
        return;
    };
    let store = aws.store();
    let meta = event_meta();
    store.directory.create(&meta).await.unwrap();
    let text = QuestionText::parse(&"質".repeat(QuestionText::MAX_CHARS)).unwrap();
    let asker = fixtures::voter_id(1);
    let mut records = vec![record(
        &meta,
        0,
        RecordBody::EventCreated {
            title: meta.title.clone(),
        },
    )];
    let questions: Vec<QuestionId> = (1..=2000u64)
        .map(|i| QuestionId::from_ulid(Ulid::from_parts(meta.created_at + i, u128::from(i))))
        .collect();
    for (i, question) in (1..).zip(&questions) {
        records.push(record(
            &meta,
            i,
            RecordBody::QuestionAsked {
                question: *question,
                asker,
                text: text.clone(),
                author: None,
            },
        ));
    }
    store.log.append_batch(meta.log(), records).await.unwrap();
    let small = event_with_records(&store, 2).await;

    let service = ProjectorService::new(store.clone(), "eu-west-1".into());
    let report = service.sweep().await.unwrap();
    assert_eq!((report.changed, report.failed), (2, 0), "{report:?}");
    assert_eq!(store.views.get(small.id).await.unwrap().unwrap().records, 3);

    // Stored in parts, read back whole, equal to the embedded projection.
    let stored = store.views.get(meta.id).await.unwrap().unwrap();
    // The host view lists every question; the guest view, the top of the
    // ranking.
    assert!(stored.host.json.len() > 10 * openfloor_aws::dynamo::MAX_ITEM_BYTES);
    assert!(stored.guest.json.len() > openfloor_aws::dynamo::MAX_ITEM_BYTES);
    let local = MemoryStore::store();
    local.directory.create(&meta).await.unwrap();
    let all = store.log.read_event(meta.log()).await.unwrap();
    local.log.append_batch(meta.log(), all).await.unwrap();
    openfloor_projector::Projector::new(local.clone())
        .project(meta.id)
        .await
        .unwrap();
    assert_eq!(stored, local.views.get(meta.id).await.unwrap().unwrap());

    // Served by the API like any other view.
    let api = serve(&aws).await;
    let guest = api.guest_view(&meta.id.to_string()).await;
    let shown = openfloor_domain::view::GUEST_VIEW_QUESTIONS;
    assert_eq!(guest["questions"].as_array().unwrap().len(), shown);
    assert_eq!(guest["more"]["questions"], 2000 - shown);

    // The event moves on: a vote; the new views replace the old, whose
    // parts are deleted. (The projector's state item, `{event}#state`,
    // expires with its event too.)
    let own = format!("{}#", meta.id);
    let parts = async || {
        let items: Vec<_> = aws
            .dynamo
            .scan()
            .table_name(&aws.settings.views_table)
            .projection_expression("event, #ttl")
            .expression_attribute_names("#ttl", "ttl")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .unwrap();
        items
            .into_iter()
            .filter(
                |item| matches!(&item["event"], AttributeValue::S(key) if key.starts_with(&own)),
            )
            .collect::<Vec<_>>()
    };
    let stored_parts = parts().await;
    let before = stored_parts.len();
    // The host view alone is over ten items' worth.
    assert!(before > 10, "{before} parts");
    // Each part expires with its event, as the head does.
    let expiry = AttributeValue::N((meta.expires_at / 1000).to_string());
    for part in &stored_parts {
        assert_eq!(part.get("ttl"), Some(&expiry), "{part:?}");
    }
    let vote = record(
        &meta,
        5000,
        RecordBody::Vote {
            question: questions[1999],
            voter: fixtures::voter_id(2),
            n: 1,
        },
    );
    store.log.append(meta.log(), vote).await.unwrap();
    openfloor_projector::Projector::new(store.clone())
        .project(meta.id)
        .await
        .unwrap();
    let guest = api.guest_view(&meta.id.to_string()).await;
    assert_eq!(guest["questions"][0]["id"], questions[1999].to_string());
    assert_eq!(guest["questions"][0]["votes"], 1);
    assert_eq!(
        parts().await.len(),
        before,
        "the old parts are gone, the new in place"
    );
}

/// A poll that names the view it has (`If-None-Match`) is answered `304`
/// from the views' versions item, a few hundred bytes, without reading the
/// views (on DynamoDB a read is billed by the whole item: up to 390 KB for
/// a head that holds both views). A changed view is read and sent whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_reads_only_the_views_versions() {
    let Some(aws) = stand_in::fresh().await else {
        return;
    };
    let store = aws.store();
    let meta = event_with_records(&store, 0).await;
    let text = QuestionText::parse(&"How large is a view? ".repeat(20)).unwrap();
    let asks: Vec<Record> = (1..=20)
        .map(|i| {
            let body = RecordBody::QuestionAsked {
                question: QuestionId::from_ulid(Ulid::new()),
                asker: fixtures::voter_id(i),
                text: text.clone(),
                author: None,
            };
            record(&meta, i, body)
        })
        .collect();
    store.log.append_batch(meta.log(), asks).await.unwrap();
    openfloor_projector::Projector::new(store.clone())
        .project(meta.id)
        .await
        .unwrap();
    let api = serve(&aws).await;
    let path = format!("/api/events/{}/questions", meta.id);

    let before = aws.meter.usage();
    let first = api.get(&path).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let full_read = aws.meter.usage() - before;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();

    let before = aws.meter.usage();
    let again = api
        .get(&path)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    let unchanged = aws.meter.usage() - before;
    assert_eq!(unchanged.read_requests, 1, "{unchanged:?}");
    let head = store.views.get(meta.id).await.unwrap().unwrap();
    assert!(
        unchanged.bytes_read < 300 && full_read.bytes_read > head.guest.json.len() as u64,
        "a 304 read {} bytes, a 200 {} bytes",
        unchanged.bytes_read,
        full_read.bytes_read
    );

    // The view changes: the same poll gets the new view, whole.
    let asked = record(
        &meta,
        1000,
        RecordBody::QuestionAsked {
            question: QuestionId::from_ulid(Ulid::new()),
            asker: fixtures::voter_id(999),
            text: QuestionText::parse("Has it changed?").unwrap(),
            author: None,
        },
    );
    store.log.append(meta.log(), asked).await.unwrap();
    openfloor_projector::Projector::new(store.clone())
        .project(meta.id)
        .await
        .unwrap();
    let changed = api
        .get(&path)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
}
