//! The service binary with `--backend aws` against the AWS stand-in (moto's
//! server at `OPENFLOOR_TEST_AWS_ENDPOINT`): a complete working service on
//! one machine, with the projector fed from SQS; and the operator commands
//! on the same backend.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{ask, create_event, openfloor, start_with};

fn endpoint() -> Option<String> {
    match std::env::var("OPENFLOOR_TEST_AWS_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            assert!(
                std::env::var_os("OPENFLOOR_REQUIRE_AWS_TESTS").is_none(),
                "OPENFLOOR_REQUIRE_AWS_TESTS is set but OPENFLOOR_TEST_AWS_ENDPOINT is not"
            );
            eprintln!("skipped: set OPENFLOOR_TEST_AWS_ENDPOINT to a moto server");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_on_dynamodb_and_sqs_and_the_ops_commands_work_there() {
    let Some(endpoint) = endpoint() else { return };
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let names = [
        format!("--events-table=ev-{suffix}"),
        format!("--records-table=rec-{suffix}"),
        format!("--views-table=views-{suffix}"),
        format!("--queue-name=q-{suffix}"),
        format!("--aws-endpoint-url={endpoint}"),
        "--aws-region=ap-southeast-2".to_owned(),
        "--backend=aws".to_owned(),
    ];
    let mut args: Vec<&str> = names.iter().map(String::as_str).collect();
    let data = tempfile::tempdir().unwrap();
    let server = start_with(
        data.path(),
        &[args.as_slice(), &["--create-resources"]].concat(),
    );
    let http = reqwest::Client::new();
    let base = &server.base;

    let (eid, _, created) = create_event(&http, base, "Sydney").await;
    assert_eq!(created["region"], "ap-southeast-2");
    let qid = ask(
        &http,
        base,
        &eid,
        "aws-asker-000000000000",
        "Does it work on DynamoDB?",
    )
    .await;
    for voter in ["aws-voter-a-0000000000", "aws-voter-b-0000000000"] {
        let r = http
            .put(format!("{base}/api/events/{eid}/questions/{qid}/vote"))
            .header("x-voter", voter)
            .json(&json!({"up": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    // The in-process projector polls SQS, as the projector Lambda is fed.
    let mut view = Value::Null;
    for _ in 0..100 {
        view = http
            .get(format!("{base}/api/events/{eid}/questions"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["questions"][0]["votes"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(view["questions"][0]["votes"], 2, "{view}");
    drop(server);

    // Operator commands on the same backend.
    args.extend(["verify", &eid]);
    let out = openfloor(data.path(), &args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{eid}: ok (4 records)")));
    let replay_args: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .chain(["replay", eid.as_str()])
        .collect();
    let out = openfloor(data.path(), &replay_args, None);
    let replayed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replayed["guest"], view);
}
