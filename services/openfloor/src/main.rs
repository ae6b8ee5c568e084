//! `openfloor`: parses the command line and composes; the work lives in
//! the library crates.

use std::process::ExitCode;

use clap::Parser;
use openfloor::cli::{Backend, Cli, Command, StoreArgs};
use openfloor::server::{serve, shutdown_signal};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = match openfloor_telemetry::init(openfloor_telemetry::Service {
        name: "openfloor",
        json_logs_by_default: false,
    }) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("openfloor: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        None | Some(Command::Serve) => run_server(&cli, telemetry.metrics()).await,
        Some(Command::Ops(op)) => run_ops(op, &cli.store).await,
    };
    telemetry.shutdown();
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("openfloor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_server(cli: &Cli, metrics: openfloor_telemetry::Metrics) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(cli.serve.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cli.serve.listen))?;
    serve(
        listener,
        &cli.store,
        &cli.serve,
        Some(metrics),
        shutdown_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn run_ops(
    op: openfloor_ops::cli::OpsCommand,
    store: &StoreArgs,
) -> anyhow::Result<ExitCode> {
    let backend = match store.backend {
        Backend::Embedded => openfloor_ops::cli::OpsBackend::Embedded(store.data.clone()),
        Backend::Aws => {
            let aws = openfloor_aws::Aws::connect(store.aws.settings()).await;
            openfloor_ops::cli::OpsBackend::Aws(aws.store())
        }
    };
    openfloor_ops::cli::run(op, backend).await
}
