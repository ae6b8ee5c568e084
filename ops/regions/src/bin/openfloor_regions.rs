//! `openfloor-regions`: several regions of openfloor on one machine, against
//! an AWS stand-in (moto's server). See the README's "Regions" section.
//!
//! - `up`: everything at once: one `openfloor --backend aws` server per
//!   region, the directory replicator and the edge; Ctrl-C stops them all.
//! - `edge`: only the one address, in front of servers started by hand.
//! - `replicate`: only the directory replicator.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use openfloor_regions::edge::{self, EdgeRoutes};
use openfloor_regions::replicator::Replicator;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "openfloor-regions",
    about = "Several openfloor regions on one machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a server per region, the replicator and the edge.
    Up {
        /// The AWS stand-in (moto's server).
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        aws_endpoint_url: String,
        /// The regions; the first is the default one of unprefixed paths.
        #[arg(long, value_delimiter = ',', default_value = "eu-west-1,us-east-1")]
        regions: Vec<String>,
        /// Where the edge (the one address for browsers) listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The `openfloor` binary (default: next to this one).
        #[arg(long)]
        openfloor: Option<PathBuf>,
        /// The events table (each region has one of this name).
        #[arg(
            long,
            env = "OPENFLOOR_EVENTS_TABLE",
            default_value = "openfloor-events"
        )]
        events_table: String,
        /// Run no replicator (start `openfloor-regions replicate` apart, to
        /// pause it with a signal and watch replication lag).
        #[arg(long)]
        no_replicator: bool,
    },
    /// Route the one address to servers already running.
    Edge {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// A region's server, as NAME=URL (repeatable).
        #[arg(long = "region", value_parser = name_and_url, required = true)]
        regions: Vec<(String, String)>,
        /// The region of unprefixed paths (default: the first).
        #[arg(long)]
        default: Option<String>,
    },
    /// Copy new entries of the events table between regions.
    Replicate {
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        aws_endpoint_url: String,
        #[arg(long, value_delimiter = ',', required = true)]
        regions: Vec<String>,
        #[arg(
            long,
            env = "OPENFLOOR_EVENTS_TABLE",
            default_value = "openfloor-events"
        )]
        events_table: String,
        /// Pause between rounds, in milliseconds.
        #[arg(long, default_value_t = 250)]
        every_ms: u64,
    },
}

fn name_and_url(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, url)) if !name.is_empty() && url.starts_with("http://") => {
            Ok((name.to_owned(), url.to_owned()))
        }
        _ => Err(format!("{s:?} is not NAME=http://HOST:PORT")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPENFLOOR_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            // Ctrl-C or a plain `kill`: either way the servers are stopped.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            stop.cancel();
        }
    });
    match Cli::parse().command {
        Cmd::Edge {
            listen,
            regions,
            default,
        } => {
            let default = default.unwrap_or_else(|| regions[0].0.clone());
            let routes = EdgeRoutes::new(regions.into_iter().collect(), default)?;
            serve_edge(listen, routes, stop).await
        }
        Cmd::Replicate {
            aws_endpoint_url,
            regions,
            events_table,
            every_ms,
        } => {
            let replicator =
                Replicator::connect(Some(&aws_endpoint_url), &regions, &events_table).await;
            println!("replicating {events_table} between {}", regions.join(", "));
            replicator.run(Duration::from_millis(every_ms), stop).await;
            Ok(())
        }
        Cmd::Up {
            aws_endpoint_url,
            regions,
            listen,
            openfloor,
            events_table,
            no_replicator,
        } => {
            let servers = Servers {
                endpoint: aws_endpoint_url,
                regions,
                events_table,
                openfloor,
            };
            up(servers, listen, !no_replicator, stop).await
        }
    }
}

async fn serve_edge(
    listen: SocketAddr,
    routes: EdgeRoutes,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    println!("openfloor edge on http://{}", listener.local_addr()?);
    edge::serve(listener, routes, stop).await?;
    Ok(())
}

/// A region's server process; killed when dropped, so none outlives `up`.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What `up` starts: a server per region, on one AWS stand-in.
struct Servers {
    endpoint: String,
    regions: Vec<String>,
    events_table: String,
    /// The `openfloor` binary (default: next to this one).
    openfloor: Option<PathBuf>,
}

async fn up(
    Servers {
        endpoint,
        regions,
        events_table,
        openfloor,
    }: Servers,
    listen: SocketAddr,
    replicate: bool,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    anyhow::ensure!(regions.len() >= 2, "name at least two regions");
    let binary = match openfloor {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("openfloor"),
    };
    anyhow::ensure!(
        binary.exists(),
        "no openfloor binary at {} (run `cargo build` first, or pass --openfloor)",
        binary.display()
    );
    // One salt for every region, so address hashes can be correlated.
    let salt = format!("local-regions-{}", std::process::id());
    let mut servers = Vec::new();
    let mut routes = BTreeMap::new();
    for region in &regions {
        let mut child = Command::new(&binary)
            .args([
                "--backend",
                "aws",
                "--create-resources",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--aws-region", region, "--aws-endpoint-url", &endpoint])
            .args(["--regions", &regions.join(","), "--client-salt", &salt])
            .args(["--events-table", &events_table])
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let server = ServerProcess(child);
        let base = line
            .trim()
            .strip_prefix("openfloor listening on ")
            .with_context(|| format!("the {region} server said {line:?}"))?
            .to_owned();
        println!("{region}: {base}");
        routes.insert(region.clone(), base);
        servers.push(server);
    }
    if replicate {
        let replicator = Replicator::connect(Some(&endpoint), &regions, &events_table).await;
        let stop = stop.clone();
        tokio::spawn(async move { replicator.run(Duration::from_millis(250), stop).await });
    }
    let routes = EdgeRoutes::new(routes, regions[0].clone())?;
    let served = serve_edge(listen, routes, stop).await;
    drop(servers);
    served
}
