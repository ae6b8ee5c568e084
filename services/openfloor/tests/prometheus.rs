//! A real Prometheus (Debian's package) scrapes `/metrics` of a real
//! `openfloor` during a short load, and its query API then has the
//! projection-lag histogram. Needs `prometheus` on the PATH
//! (`scripts/setup-test-deps` installs it); without it the test says so and
//! passes, unless `OPENFLOOR_REQUIRE_PROMETHEUS` is set (as `scripts/test`
//! does).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openfloor_testing::api::ApiClient;
use openfloor_testing::process::Server;
use serde_json::Value;

const OPENFLOOR: &str = env!("CARGO_BIN_EXE_openfloor");

/// A Prometheus process, killed when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One instant query's first value, if any.
async fn query(http: &reqwest::Client, prometheus: &str, promql: &str) -> Option<f64> {
    let answer: Value = http
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_projection_lag() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("OPENFLOOR_REQUIRE_PROMETHEUS").is_none(),
            "OPENFLOOR_REQUIRE_PROMETHEUS is set but prometheus is not installed"
        );
        eprintln!("skipped: no prometheus on the PATH");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(OPENFLOOR, &data.path().join("openfloor"), &[]);
    let target = server.base.trim_start_matches("http://").to_owned();
    let config = data.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: openfloor\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    let prometheus = format!("http://127.0.0.1:{port}");

    // A short load: questions and votes from many guests, for 3 seconds.
    let api = ApiClient::new(&server.base);
    let created = api.create_event("Scraped").await;
    let questions = [
        api.ask(&created.id, "First?").await,
        api.ask(&created.id, "Second?").await,
    ];
    let until = Instant::now() + Duration::from_secs(3);
    let mut voters = 0;
    while Instant::now() < until {
        voters += 1;
        let qid = &questions[voters % questions.len()];
        let voter = format!("scraped-voter-{voters:010}");
        assert_eq!(api.vote(&created.id, qid, &voter, true).await.status(), 202);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Prometheus has scraped the lag histogram: its count covers the load.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let folded = query(
            &http,
            &prometheus,
            "sum(openfloor_projection_lag_seconds_count)",
        )
        .await;
        let buckets = query(
            &http,
            &prometheus,
            "count(openfloor_projection_lag_seconds_bucket)",
        )
        .await;
        if let (Some(folded), Some(buckets)) = (folded, buckets) {
            // Every vote and question, and the event, were each projected.
            if folded >= (voters + 3) as f64 {
                assert!(buckets >= 2.0, "the histogram's buckets are scraped");
                let p99 = "histogram_quantile(0.99, \
                           sum by (le) (openfloor_projection_lag_seconds_bucket))";
                let p99 = query(&http, &prometheus, p99)
                    .await
                    .expect("a quantile of the lag");
                assert!(p99 > 0.0 && p99 < 60.0, "p99 lag {p99} s");
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus has {folded:?} lag samples of {} records",
            voters + 3
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
