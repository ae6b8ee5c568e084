//! Command-line interface: `openfloor` serves; its subcommands are the
//! operator tools. The settings themselves are defined once, in
//! `openfloor-config`, and shared with the Lambdas.

use clap::{Parser, Subcommand};
pub use openfloor_config::{AwsArgs, Backend, ServeArgs, StoreArgs};

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API, projector and web client (the default).
    Serve,
    #[command(flatten)]
    Ops(openfloor_ops::cli::OpsCommand),
}
