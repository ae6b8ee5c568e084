//! The service binary with `--backend aws` against the AWS stand-in (moto's
//! server at `OPENFLOOR_TEST_AWS_ENDPOINT`): a complete working service on
//! one machine, with the projector fed from SQS; and the operator commands
//! on the same backend.

use std::time::Duration;

use openfloor_aws::AwsSettings;
use openfloor_testing::api::ApiClient;
use openfloor_testing::aws as stand_in;
use openfloor_testing::process::{self, Server};
use serde_json::Value;

/// The binary under test.
const OPENFLOOR: &str = env!("CARGO_BIN_EXE_openfloor");

/// The command-line flags that put `openfloor` on the AWS backend `settings`.
fn aws_flags(settings: &AwsSettings) -> Vec<String> {
    let mut flags = vec![
        format!("--events-table={}", settings.events_table),
        format!("--records-table={}", settings.records_table),
        format!("--views-table={}", settings.views_table),
        format!("--queue-name={}", settings.queue_name),
        format!("--aws-region={}", settings.region),
        "--backend=aws".to_owned(),
    ];
    if let Some(endpoint) = &settings.endpoint_url {
        flags.push(format!("--aws-endpoint-url={endpoint}"));
    }
    if let Some(bucket) = &settings.states_bucket {
        flags.push(format!("--states-bucket={bucket}"));
    }
    flags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_on_dynamodb_and_sqs_and_the_ops_commands_work_there() {
    let Some(endpoint) = stand_in::endpoint() else {
        return;
    };
    let settings = AwsSettings {
        region: "ap-southeast-2".into(),
        ..stand_in::fresh_settings(&endpoint)
    };
    let names = aws_flags(&settings);
    let mut args: Vec<&str> = names.iter().map(String::as_str).collect();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        OPENFLOOR,
        data.path(),
        &[args.as_slice(), &["--create-resources"]].concat(),
    );
    let api = ApiClient::new(&server.base);

    let created = api.create_event("Sydney").await;
    assert_eq!(created.body["region"], "ap-southeast-2");
    let eid = created.id.as_str();
    let qid = api
        .ask_as(eid, "aws-asker-000000000000", "Does it work on DynamoDB?")
        .await;
    for voter in ["aws-voter-a-0000000000", "aws-voter-b-0000000000"] {
        let r = api.vote(eid, &qid, voter, true).await;
        assert_eq!(r.status(), 202);
    }
    // The in-process projector polls SQS, as the projector Lambda is fed.
    let view = api
        .wait_for_guest_within(eid, Duration::from_secs(10), |v| {
            v["questions"][0]["votes"] == 2
        })
        .await;

    // The stream's changes and a queued command are timed as they are
    // taken (the ages an operator watches).
    let queue = openfloor_aws::queue::Queue::open(
        openfloor_aws::Aws::connect(settings.clone()).await.sqs,
        &settings.queue_name,
    )
    .await
    .unwrap();
    queue
        .send(&[openfloor_aws::queue::Command::Project {
            event: eid.parse().unwrap(),
        }])
        .await
        .unwrap();
    let count = |metrics: &str, name: &str| -> u64 {
        let series = format!("{name}_count");
        metrics
            .lines()
            .filter(|line| line.split([' ', '{']).next() == Some(series.as_str()))
            .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = reqwest::get(format!("{}/metrics", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if count(&metrics, "openfloor_queue_age_seconds") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        count(&metrics, "openfloor_queue_age_seconds") >= 1,
        "{metrics}"
    );
    // The records of the create, the question and the two votes.
    assert!(
        count(&metrics, "openfloor_stream_age_seconds") >= 4,
        "{metrics}"
    );
    drop(server);

    // Operator commands on the same backend.
    args.extend(["verify", eid]);
    let out = process::run(OPENFLOOR, data.path(), &args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{eid}: ok (4 records)")));
    let replay_args: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .chain(["replay", eid])
        .collect();
    let out = process::run(OPENFLOOR, data.path(), &replay_args, None);
    let replayed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replayed["guest"], view);
}
