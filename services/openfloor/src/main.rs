//! `openfloor`: parses the command line and composes; the work lives in
//! the library crates.

use std::process::ExitCode;

use clap::Parser;
use openfloor::cli::{Cli, Command};
use openfloor::server::{serve, shutdown_signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("OPENFLOOR_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        None | Some(Command::Serve) => run_server(&cli).await,
        Some(Command::Ops(op)) => openfloor_ops::cli::run(op, &cli.store.data).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("openfloor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_server(cli: &Cli) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(cli.serve.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cli.serve.listen))?;
    serve(listener, &cli.store.data, &cli.serve, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
