//! What DynamoDB (and S3) read and write for openfloor's two hot paths,
//! counted by the store's own meter (`openfloor_aws::meter`) against the
//! AWS stand-in (moto's server): a projection, by the size of the event,
//! and a vote.
//! Moto's consumed-capacity figures mean nothing; bytes and items are
//! counted in the code and turned into units as DynamoDB bills them.
//!
//! Usage (moto on 127.0.0.1:5300):
//! `cargo run --release -p openfloor-bench --bin openfloor-aws-cost --
//!  --endpoint http://127.0.0.1:5300 --sizes 1000,20000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use openfloor_aws::meter::Usage;
use openfloor_aws::{Aws, AwsSettings};
use openfloor_commands::{Executor, NewEvent};
use openfloor_domain::clock::SystemClock;
use openfloor_domain::command::{Ask, Command, Vote};
use openfloor_domain::ids::RecordId;
use openfloor_domain::ids::{QuestionId, VoterId};
use openfloor_domain::input::{QuestionText, Title};
use openfloor_domain::record::{Record, RecordBody};
use openfloor_projector::service::ProjectorService;
use openfloor_projector::Projector;
use openfloor_store::LocalTrigger;
use ulid::Ulid;

#[derive(Parser)]
struct Args {
    /// The stand-in's address.
    #[arg(long, default_value = "http://127.0.0.1:5300")]
    endpoint: String,
    /// Event sizes to project, in records (one question per 100 records,
    /// the rest votes).
    #[arg(long, value_delimiter = ',', default_value = "1000,20000")]
    sizes: Vec<u64>,
    /// Votes cast through the executor for the vote path's figures.
    #[arg(long, default_value_t = 200)]
    votes: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let suffix = Ulid::new().to_string().to_lowercase();
    // The stand-in scans its whole table for each page of a query: give a
    // large event's reads the time they take there.
    let aws = Aws::connect_with_timeout(
        AwsSettings {
            region: "eu-west-1".into(),
            endpoint_url: Some(args.endpoint.clone()),
            events_table: format!("cost-events-{suffix}"),
            records_table: format!("cost-records-{suffix}"),
            views_table: format!("cost-views-{suffix}"),
            queue_name: format!("cost-queue-{suffix}"),
            states_bucket: Some(format!("cost-states-{suffix}")),
        },
        Duration::from_secs(300),
    )
    .await;
    aws.create_resources()
        .await
        .context("creating tables on the stand-in")?;
    let store = aws.store();
    let executor = Executor::new(
        store.clone(),
        Arc::new(LocalTrigger::new()),
        Arc::new(SystemClock),
    );
    let event = |shards| NewEvent {
        title: Title::parse("cost").expect("a title"),
        region: "eu-west-1".into(),
        shards,
        retention: Duration::from_secs(86_400),
    };

    println!(
        "== votes through the executor (DynamoDB store, {} votes)",
        args.votes
    );
    let created = executor.create_event(event(8)).await?;
    let meta = created.meta;
    let question = QuestionId::from_ulid(Ulid::new());
    let asker = voter(0);
    executor
        .execute(
            &meta,
            &Command::Ask(Ask {
                question,
                asker,
                text: QuestionText::parse("What does a vote cost?").expect("a question"),
                author: None,
            }),
            None,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (label, up) in [("first vote of a voter", true), ("withdrawal", false)] {
        let before = aws.meter.usage();
        for n in 1..=args.votes {
            let command = Command::Vote(Vote {
                question,
                voter: voter(n),
                up,
            });
            executor
                .execute(&meta, &command, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        report_per(label, aws.meter.usage() - before, args.votes);
    }

    println!("== one projection, by event size (4 shards; views stored each time)");
    println!(
        "   'whole log': told nothing (a sweep, or the event's first projection); \
         'stream, warm/cold': fed 10 new votes as the records stream carries them, \
         by the instance that projected before / by a fresh one (a Lambda after a freeze)"
    );
    for &size in &args.sizes {
        let created = executor.create_event(event(4)).await?;
        let meta = created.meta;
        let questions: Vec<QuestionId> = (0..size.div_ceil(100).max(1))
            .map(|_| QuestionId::from_ulid(Ulid::new()))
            .collect();
        let text = QuestionText::parse("How does the cost grow?").expect("a question");
        let start = meta.created_at + 1;
        let records: Vec<Record> = (0..size.saturating_sub(1))
            .map(|i| {
                let body = if i < questions.len() as u64 {
                    RecordBody::QuestionAsked {
                        question: questions[i as usize],
                        asker: voter(0),
                        text: text.clone(),
                        author: None,
                    }
                } else {
                    RecordBody::Vote {
                        question: questions[(i % questions.len() as u64) as usize],
                        voter: voter(i),
                        n: 1,
                    }
                };
                Record {
                    id: RecordId::from_ulid(Ulid::from_parts(start + i, u128::from(i))),
                    event: meta.id,
                    client: None,
                    body,
                }
            })
            .collect();
        let loading = Instant::now();
        store.log.append_batch(meta.log(), records).await?;
        eprintln!("  loaded {size} records in {:.1?}", loading.elapsed());
        let projector = Projector::new(store.clone());
        let before = aws.meter.usage();
        projector.project(meta.id).await?;
        let first = aws.meter.usage() - before;
        report(&format!("{size} records, whole log"), first);
        // Ten more votes at a time, then the projection a guest waits for,
        // fed those records as the stream's batch carries them.
        for (label, cold, round) in [("warm", false, 0), ("cold", true, 1)] {
            let votes: Vec<Record> = (0..10)
                .map(|n| Record {
                    id: RecordId::from_ulid(Ulid::new()),
                    event: meta.id,
                    client: None,
                    body: RecordBody::Vote {
                        question: questions[0],
                        voter: voter(1_000_000 + round * 10 + n),
                        n: 1,
                    },
                })
                .collect();
            store.log.append_batch(meta.log(), votes.clone()).await?;
            let fresh;
            let projecting = if cold {
                fresh = Projector::new(store.clone());
                &fresh
            } else {
                &projector
            };
            let before = aws.meter.usage();
            projecting
                .project_news(meta.id, Vec::new(), Some(votes))
                .await?;
            let next = aws.meter.usage() - before;
            report(&format!("{size} records, stream, {label}"), next);
        }
        // The views serve, as a poll reads them, and exactly what a full
        // recompute of the log gives.
        let served = store
            .views
            .get_recent(meta.id)
            .await?
            .context("no views stored")?;
        let logged = store.log.read_event(meta.log()).await?;
        let full = openfloor_projector::project_records(meta.id, &logged, logged.len() as u64);
        anyhow::ensure!(*served == full, "the views differ from a full recompute");
        println!(
            "{size} records: views served ({} B guest, {} B host), equal to a full recompute",
            served.guest.json.len(),
            served.host.json.len()
        );
    }
    // The sweep (an audit of a sample) runs over every event above.
    let service = ProjectorService::new(store.clone(), "eu-west-1".into());
    let report = service.sweep().await?;
    println!("sweep over these events: {report:?}");
    anyhow::ensure!(
        report.failed == 0 && report.differed == 0,
        "the sweep failed"
    );
    Ok(())
}

fn voter(n: u64) -> VoterId {
    VoterId::parse(&format!("{n:020x}")).expect("20 hex digits are a voter id")
}

fn report(label: &str, usage: Usage) {
    println!(
        "{label:<34} DynamoDB reads: {:>4} requests {:>6} items {:>10} bytes {:>8.1} RU; \
         writes: {:>3} items {:>8} bytes {:>5} WU | \
         S3: {:>3} GETs {:>9} bytes, {:>3} PUTs {:>9} bytes",
        usage.read_requests,
        usage.items_read,
        usage.bytes_read,
        usage.read_units(),
        usage.items_written,
        usage.bytes_written,
        usage.write_units,
        usage.object_reads,
        usage.object_bytes_read,
        usage.object_writes,
        usage.object_bytes_written,
    );
}

fn report_per(label: &str, usage: Usage, count: u64) {
    let per = |n: u64| n as f64 / count as f64;
    println!(
        "{label:<42} per vote: {:.2} read requests, {:.0} bytes read, {:.2} RU; \
         {:.2} items written, {:.0} bytes, {:.2} WU",
        per(usage.read_requests),
        per(usage.bytes_read),
        usage.read_units() / count as f64,
        per(usage.items_written),
        per(usage.bytes_written),
        per(usage.write_units),
    );
}
