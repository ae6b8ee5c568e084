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

/// Creates an event through the API; returns its id, host secret and the
/// whole answer.
#[allow(dead_code)] // not every test binary creates events this way
pub async fn create_event(
    client: &reqwest::Client,
    base: &str,
    title: &str,
) -> (String, String, serde_json::Value) {
    let created: serde_json::Value = client
        .post(format!("{base}/api/events"))
        .json(&serde_json::json!({"title": title}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    (id, secret, created)
}

/// Asks `text` as the voter holding `token`; returns the question id.
#[allow(dead_code)]
pub async fn ask(
    client: &reqwest::Client,
    base: &str,
    event: &str,
    token: &str,
    text: &str,
) -> String {
    let asked: serde_json::Value = client
        .post(format!("{base}/api/events/{event}/questions"))
        .header("x-voter", token)
        .json(&serde_json::json!({"text": text}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    asked["id"].as_str().unwrap().to_owned()
}
