use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum OpsCommand {}

pub async fn run(op: OpsCommand, _data: &Path) -> anyhow::Result<ExitCode> {
    match op {}
}
