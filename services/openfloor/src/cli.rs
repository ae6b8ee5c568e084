//! Command-line interface: `openfloor` serves; its subcommands are the
//! operator tools. Every flag also reads an `OPENFLOOR_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "openfloor",
    version,
    about = "Live audience Q&A: ask, upvote, moderate, audit."
)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,

    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Where the data lives (shared by the server and the operator tools).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory of the embedded store (created if missing).
    #[arg(
        long = "data",
        env = "OPENFLOOR_DATA",
        default_value = "openfloor-data",
        global = true
    )]
    pub data: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "OPENFLOOR_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// This deployment's region name (new events live here).
    #[arg(long, env = "OPENFLOOR_REGION", default_value = "local")]
    pub region: String,

    /// How many days an event and its records are kept.
    #[arg(long, env = "OPENFLOOR_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub retention_days: u32,

    /// Take client addresses (hashed for abuse audits) from X-Forwarded-For;
    /// only behind a proxy that sets it.
    #[arg(long, env = "OPENFLOOR_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API, projector and web client (the default).
    Serve,
    #[command(flatten)]
    Ops(openfloor_ops::cli::OpsCommand),
}
