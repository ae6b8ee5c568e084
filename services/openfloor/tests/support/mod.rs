//! A real `openfloor` process for tests that need one (crash, CLI).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    /// A failing assertion must not leave a server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the service on a free loopback port over `data` and waits until it
/// prints its address.
#[allow(dead_code)] // not every test binary starts an embedded server
pub fn start(data: &Path) -> Server {
    start_with(data, &[])
}

/// [`start`] with more arguments (another backend, say).
pub fn start_with(data: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_openfloor"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .env("OPENFLOOR_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("openfloor listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, base }
}

/// Runs `openfloor --data DATA ARGS…` to completion, feeding `stdin`.
#[allow(dead_code)] // not every test binary runs commands
pub fn openfloor(data: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_openfloor"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env("OPENFLOOR_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        std::io::Write::write_all(&mut input, bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}
