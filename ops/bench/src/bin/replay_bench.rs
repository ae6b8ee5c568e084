//! Replay benchmark: how fast an event's views are rebuilt from its log.
//!
//! Builds an event with N votes (default one million, from distinct voters,
//! over 20 questions) in a fresh SQLite store, then times, in one run:
//! reading the whole log, folding and rendering it, a complete replay (both),
//! and a verify (replay plus comparison with the stored views).
//!
//! Usage:
//! `cargo run --release -p openfloor-bench --bin openfloor-replay-bench [-- --votes 1000000]`

use std::time::Instant;

use clap::Parser;
use openfloor_domain::fold::EventState;
use openfloor_domain::ids::{EventId, QuestionId, RecordId, VoterId};
use openfloor_domain::input::{QuestionText, Title};
use openfloor_domain::record::{Record, RecordBody};
use openfloor_domain::secret::HostSecret;
use openfloor_domain::view::render;
use openfloor_ops::replay::replay_records;
use openfloor_projector::verify::verify_event;
use openfloor_store::sqlite::SqliteStore;
use openfloor_store::EventMeta;
use ulid::Ulid;

#[derive(Parser)]
struct Args {
    /// Votes in the event.
    #[arg(long, default_value_t = 1_000_000)]
    votes: u64,
    /// Questions the votes spread over.
    #[arg(long, default_value_t = 20)]
    questions: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let sqlite = SqliteStore::open(dir.path())?;
    let store = sqlite.store();
    let t0 = 1_790_000_000_000u64;
    let meta = EventMeta {
        id: EventId::from_ulid(Ulid::from_parts(t0, 1)),
        title: Title::parse("replay benchmark")?,
        region: "local".into(),
        shards: 1,
        secret_hash: HostSecret::generate().hash(),
        created_at: t0,
        expires_at: u64::MAX,
    };
    store.directory.create(&meta).await?;
    let question = |i: u64| QuestionId::from_ulid(Ulid::from_parts(t0, 1_000 + u128::from(i)));
    let mut batch = Vec::new();
    batch.push(Record {
        id: RecordId::from_ulid(Ulid::from_parts(t0, 2)),
        event: meta.id,
        client: None,
        body: RecordBody::EventCreated {
            title: meta.title.clone(),
        },
    });
    for i in 0..args.questions {
        batch.push(Record {
            id: RecordId::from_ulid(Ulid::from_parts(t0 + 1, u128::from(i))),
            event: meta.id,
            client: None,
            body: RecordBody::QuestionAsked {
                question: question(i),
                asker: VoterId::parse("00000000000000000001")?,
                text: QuestionText::parse(&format!("Question {i} of the replay benchmark?"))?,
                author: None,
            },
        });
    }
    let build = Instant::now();
    for v in 0..args.votes {
        batch.push(Record {
            id: RecordId::from_ulid(Ulid::from_parts(t0 + 2 + v / 100, u128::from(v))),
            event: meta.id,
            client: None,
            body: RecordBody::Vote {
                question: question(v % args.questions),
                voter: VoterId::parse(&format!("{v:020x}"))?,
                n: 1,
            },
        });
        if batch.len() == 50_000 {
            store
                .log
                .append_batch(meta.log(), std::mem::take(&mut batch))
                .await?;
        }
    }
    store.log.append_batch(meta.log(), batch).await?;
    eprintln!(
        "built {} votes in {:.1} s",
        args.votes,
        build.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let records = store.log.read_event(meta.log()).await?;
    let read = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let state = EventState::fold(meta.id, &records);
    let fold = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let views = render(&state);
    let render_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let replayed = replay_records(meta.id, &store.log.read_event(meta.log()).await?, None);
    let replay = t.elapsed().as_secs_f64();
    assert_eq!(replayed.guest, views.guest);
    store
        .views
        .put(meta.id, std::sync::Arc::new(replayed))
        .await?;
    let t = Instant::now();
    let verified = verify_event(&store, &meta, false).await?;
    let verify = t.elapsed().as_secs_f64();
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);

    let n = records.len() as f64;
    println!(
        "replay benchmark: {} records ({} votes over {} questions)",
        records.len(),
        args.votes,
        args.questions
    );
    println!(
        "read whole log from SQLite   {read:>7.3} s   {:>10.0} records/s",
        n / read
    );
    println!(
        "fold                         {fold:>7.3} s   {:>10.0} records/s",
        n / fold
    );
    println!("render both views            {render_s:>7.3} s");
    println!(
        "replay (read + fold + render){replay:>7.3} s   {:>10.0} records/s",
        n / replay
    );
    println!("verify (replay + compare)    {verify:>7.3} s");
    Ok(())
}
