//! Load benchmark of a running openfloor server (loopback only).
//!
//! Reports, in one run so that ratios are comparable on a noisy machine:
//! - the HTTP ceiling: an unknown route answered 404 by the router;
//! - durable votes accepted per second (each from a fresh voter, so each is
//!   one record, acknowledged only after its SQLite commit);
//! - guest-view GETs per second, without and with `If-None-Match`;
//! - the delay from a vote's acknowledgement to the first guest view that
//!   shows it (p50/p99), measured while background votes load the server.
//!
//! Usage: `openfloor-bench --target http://127.0.0.1:3000 [--seconds 10] [--connections 64]`
//! (`ops/bench/run.sh` builds, starts a fresh server, runs this and stops it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// Base URL of the server; must be a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    target: String,
    /// Seconds per throughput phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections per throughput phase.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Vote-to-view samples.
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// Questions in the benchmark event (the peer's figure is for 20).
    #[arg(long, default_value_t = 20)]
    questions: usize,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Http {
    client: HttpClient,
    base: String,
}

impl Http {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, hyper::HeaderMap, Bytes)> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let resp = self.client.request(req.body(Full::new(body))?).await?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }

    /// An up-vote by the voter holding `token`; the answer's status.
    async fn vote(&self, event: &str, question: &str, token: &str) -> anyhow::Result<StatusCode> {
        let path = format!("/api/events/{event}/questions/{question}/vote");
        let (status, _, _) = self
            .send(
                Method::PUT,
                &path,
                &[("x-voter", token)],
                Some(json!({"up": true})),
            )
            .await?;
        Ok(status)
    }
}

/// Runs `work` on `connections` tasks for `seconds`; returns successes/s and
/// latency percentiles (µs) of successful requests.
async fn phase<F, Fut>(name: &str, seconds: u64, connections: usize, work: F) -> anyhow::Result<f64>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<bool>> + Send,
{
    let work = Arc::new(work);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..connections {
        let (work, stop, ok, failed) = (work.clone(), stop.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match work(c, i).await {
                    Ok(true) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        latencies.push(t.elapsed().as_micros() as u64);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let rate = ok.load(Ordering::Relaxed) as f64 / elapsed;
    println!(
        "{name:<34} {rate:>10.0} /s   p50 {:>6.2} ms   p99 {:>6.2} ms   failures {}",
        percentile(&latencies, 0.50) as f64 / 1000.0,
        percentile(&latencies, 0.99) as f64 / 1000.0,
        failed.load(Ordering::Relaxed)
    );
    Ok(rate)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let uri: hyper::Uri = args.target.parse().context("--target must be a URL")?;
    let host = uri.host().unwrap_or_default();
    if !(host == "localhost" || host == "[::1]" || host.starts_with("127.")) {
        bail!("the benchmark only loads loopback addresses, not {host}");
    }
    let http = Arc::new(Http {
        client: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(args.connections * 2)
            .build_http(),
        base: args.target.trim_end_matches('/').to_owned(),
    });

    let (status, _, body) = http
        .send(
            Method::POST,
            "/api/events",
            &[],
            Some(json!({"title": "bench"})),
        )
        .await?;
    if status != StatusCode::CREATED {
        bail!("creating the event answered {status}");
    }
    let created: Value = serde_json::from_slice(&body)?;
    let eid = created["id"].as_str().context("event id")?.to_owned();
    let mut questions = Vec::new();
    for i in 0..args.questions {
        let text = format!(
            "Benchmark question number {i}: what is the meaning of a fairly ordinary sentence?"
        );
        // One asker per question: asking is rate limited per voter.
        let asker = format!("bench-asker-{i:08}");
        let (_, _, body) = http
            .send(
                Method::POST,
                &format!("/api/events/{eid}/questions"),
                &[("x-voter", &asker)],
                Some(json!({"text": text})),
            )
            .await?;
        questions.push(
            serde_json::from_slice::<Value>(&body)?["id"]
                .as_str()
                .context("question id")?
                .to_owned(),
        );
    }
    let probe_question = questions.pop().context("need at least two questions")?;
    let questions = Arc::new(questions);
    println!(
        "openfloor-bench: {} s per phase, {} connections, event {eid} with {} questions",
        args.seconds, args.connections, args.questions
    );

    let h = http.clone();
    phase(
        "http ceiling (404 route)",
        args.seconds,
        args.connections,
        move |_, _| {
            let h = h.clone();
            async move {
                Ok(h.send(Method::GET, "/api/nope", &[], None).await?.0 == StatusCode::NOT_FOUND)
            }
        },
    )
    .await?;

    let (h, e, q) = (http.clone(), eid.clone(), questions.clone());
    phase(
        "votes accepted (durable)",
        args.seconds,
        args.connections,
        move |c, i| {
            let (h, e, q) = (h.clone(), e.clone(), q.clone());
            async move {
                let token = format!("bench-{c:04}-{i:010}");
                let qid = &q[(i as usize + c) % q.len()];
                Ok(h.vote(&e, qid, &token).await? == StatusCode::ACCEPTED)
            }
        },
    )
    .await?;

    let (h, e) = (http.clone(), eid.clone());
    phase(
        "guest view GET (200)",
        args.seconds,
        args.connections,
        move |_, _| {
            let (h, e) = (h.clone(), e.clone());
            async move {
                Ok(h.send(
                    Method::GET,
                    &format!("/api/events/{e}/questions"),
                    &[],
                    None,
                )
                .await?
                .0 == StatusCode::OK)
            }
        },
    )
    .await?;

    let (_, headers, _) = http
        .send(
            Method::GET,
            &format!("/api/events/{eid}/questions"),
            &[],
            None,
        )
        .await?;
    let etag = headers.get("etag").context("etag")?.to_str()?.to_owned();
    let (h, e) = (http.clone(), eid.clone());
    phase(
        "guest view GET If-None-Match (304)",
        args.seconds,
        args.connections,
        move |_, _| {
            let (h, e, etag) = (h.clone(), e.clone(), etag.clone());
            async move {
                Ok(h.send(
                    Method::GET,
                    &format!("/api/events/{e}/questions"),
                    &[("if-none-match", &etag)],
                    None,
                )
                .await?
                .0 == StatusCode::NOT_MODIFIED)
            }
        },
    )
    .await?;

    vote_to_view(&http, &eid, &questions, &probe_question, &args).await
}

/// Votes on a question nobody else votes on, one at a time, and polls the
/// guest view until it shows the new count; background tasks keep voting on
/// the other questions meanwhile.
async fn vote_to_view(
    http: &Arc<Http>,
    eid: &str,
    questions: &Arc<Vec<String>>,
    probe: &str,
    args: &Args,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let background_votes = Arc::new(AtomicU64::new(0));
    let mut background = Vec::new();
    for c in 0..(args.connections / 4).max(1) {
        let (h, e, q, stop, n) = (
            http.clone(),
            eid.to_owned(),
            questions.clone(),
            stop.clone(),
            background_votes.clone(),
        );
        background.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let token = format!("bg-{c:04}-{i:010}");
                let qid = &q[(i as usize) % q.len()];
                if let Ok(StatusCode::ACCEPTED) = h.vote(&e, qid, &token).await {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    let started = Instant::now();
    let mut delays = Vec::with_capacity(args.samples);
    for s in 0..args.samples {
        let token = format!("probe-{s:010}-voter");
        let status = http.vote(eid, probe, &token).await?;
        if status != StatusCode::ACCEPTED {
            bail!("probe vote answered {status}");
        }
        let acked = Instant::now();
        let want = s as u64 + 1;
        loop {
            let (_, _, body) = http
                .send(
                    Method::GET,
                    &format!("/api/events/{eid}/questions"),
                    &[],
                    None,
                )
                .await?;
            let view: Value = serde_json::from_slice(&body)?;
            let votes = view["questions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|q| q["id"] == probe)
                .and_then(|q| q["votes"].as_u64())
                .unwrap_or(0);
            if votes >= want {
                delays.push(acked.elapsed().as_micros() as u64);
                break;
            }
            if acked.elapsed() > Duration::from_secs(10) {
                bail!("vote {s} not visible after 10 s");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for b in background {
        b.await?;
    }
    delays.sort_unstable();
    println!(
        "{:<34} p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>6.2} ms   \
         ({} samples; background {:.0} votes/s)",
        "vote ack -> visible in guest view",
        percentile(&delays, 0.50) as f64 / 1000.0,
        percentile(&delays, 0.99) as f64 / 1000.0,
        delays.last().copied().unwrap_or(0) as f64 / 1000.0,
        delays.len(),
        background_votes.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}
