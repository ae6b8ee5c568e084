//! An acknowledged vote survives `kill -9`: a child server takes votes from
//! concurrent clients, is killed with SIGKILL mid-load, and after a restart
//! every vote answered 2xx is in the log and counted in the views.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openfloor_domain::ids::{EventId, VoterId, VoterToken};
use openfloor_testing::api::ApiClient;
use serde_json::Value;

use openfloor_testing::process::Server;

/// The binary under test.
const OPENFLOOR: &str = env!("CARGO_BIN_EXE_openfloor");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_votes_survive_sigkill() {
    let data = tempfile::tempdir().unwrap();
    // Sixteen workers on loopback: one address, whose limits would hold them.
    let mut server = Server::start(OPENFLOOR, data.path(), &["--limit-by-address", "false"]);
    let api = ApiClient::new(&server.base);
    let event = api.create_event("crash").await;
    let eid = event.id.clone();
    let mut questions = Vec::new();
    for i in 0..4 {
        questions.push(
            api.ask_as(&eid, "asker-0000000000000000", &format!("question {i}"))
                .await,
        );
    }

    // Each vote comes from a fresh voter, so each acknowledgement is one record.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..16 {
        let (api, eid, questions, acked) =
            (api.clone(), eid.clone(), questions.clone(), acked.clone());
        workers.push(tokio::spawn(async move {
            for i in 0.. {
                let token = format!("crash-voter-{w:04}-{i:08}");
                let q = &questions[i % questions.len()];
                let sent = api
                    .vote_request(&eid, q, &token, true)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        acked.lock().unwrap().push((token, q.clone()))
                    }
                    Ok(r) => panic!("unexpected status {} before the kill", r.status()),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "the load acknowledged only {} votes",
        acked.len()
    );

    let server = Server::start(OPENFLOOR, data.path(), &[]);
    let api = ApiClient::new(&server.base);
    let mut logged = HashSet::new();
    let mut after = String::new();
    loop {
        let page = api
            .records(&eid, &event.secret, &format!("?limit=10000{after}"))
            .await
            .text()
            .await
            .unwrap();
        let records: Vec<Value> = page
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let Some(last) = records.last() else { break };
        after = format!("&after={}", last["id"].as_str().unwrap());
        for r in &records {
            if r["kind"] == "vote" {
                logged.insert((
                    r["voter"].as_str().unwrap().to_owned(),
                    r["question"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    let event: EventId = eid.parse().unwrap();
    let mut expected_per_question: BTreeMap<String, usize> = BTreeMap::new();
    for (token, q) in &acked {
        let voter = VoterId::derive(event, &VoterToken::parse(token).unwrap()).to_string();
        assert!(
            logged.contains(&(voter, q.clone())),
            "acknowledged vote of {token} on {q} was lost"
        );
    }
    for (_, q) in &logged {
        *expected_per_question.entry(q.clone()).or_default() += 1;
    }

    // The views count every logged vote (the restart catches the projector up).
    let shown = |view: &Value| -> BTreeMap<String, usize> {
        view["questions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| {
                (
                    q["id"].as_str().unwrap().to_owned(),
                    q["votes"].as_u64().unwrap() as usize,
                )
            })
            .filter(|(_, v)| *v > 0)
            .collect()
    };
    api.wait_for_guest_within(&eid, Duration::from_secs(10), |view| {
        shown(view) == expected_per_question
    })
    .await;
    eprintln!(
        "{} votes acknowledged before SIGKILL, {} in the log after restart",
        acked.len(),
        logged.len()
    );
}
