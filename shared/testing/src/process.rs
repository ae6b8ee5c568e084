//! A real `openfloor` process for tests that need one (crash, CLI, the
//! binary on the AWS stand-in). The caller passes the binary's path, which
//! only the binary's own tests know (`env!("CARGO_BIN_EXE_openfloor")`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// A running server; dropping it kills it, so that a failing assertion
/// never leaves a server behind.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `binary` on a free loopback port over `data`, with `extra`
    /// arguments (another backend, say), and waits until it prints its
    /// address.
    pub fn start(binary: &str, data: &Path, extra: &[&str]) -> Server {
        Self::start_with_env(binary, data, extra, &[])
    }

    /// [`Server::start`] with `env` added to its environment.
    pub fn start_with_env(
        binary: &str,
        data: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env("OPENFLOOR_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("the server prints its address");
        let base = line
            .trim()
            .strip_prefix("openfloor listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, base }
    }

    /// Stops the server as an operator would (SIGTERM) and waits for it to
    /// finish: requests in flight, the projector, the telemetry's flush.
    pub fn stop_gracefully(&mut self) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(terminated.success(), "SIGTERM was delivered");
        let status = self.child.wait().expect("the server ends");
        assert!(status.success(), "the server stopped cleanly: {status}");
    }
}

/// Runs `binary --data DATA ARGS…` to completion, feeding it `stdin`.
pub fn run(binary: &str, data: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(binary)
        .arg("--data")
        .arg(data)
        .args(args)
        .env("OPENFLOOR_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("the command reads its input");
    }
    drop(input);
    child.wait_with_output().expect("the command ends")
}
