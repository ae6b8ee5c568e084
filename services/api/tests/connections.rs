//! The serving loop's limits, tried with a raw socket as a slow, idle or
//! oversized client would use one: none of them can hold a connection, or
//! a stop, for longer than the limits allow, and each refusal the server
//! can answer itself comes in the error envelope.

use std::sync::Arc;
use std::time::Duration;

use openfloor_api::extract::MAX_BODY_BYTES;
use openfloor_api::head_limits::{
    HEADER_FIELDS_HARD_LIMIT, HEAD_BYTES_HARD_LIMIT, MAX_HEADER_BYTES, MAX_HEADER_FIELDS,
    MAX_URI_BYTES,
};
use openfloor_api::{serve_with, ApiConfig, AppState, ConnectionLimits, SystemClock};
use openfloor_store::memory::MemoryStore;
use openfloor_store::{LocalTrigger, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Short limits, so that the tests wait little.
fn limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read: Duration::from_millis(300),
        body_read: Duration::from_millis(300),
        max_connections: 64,
        shutdown_grace: Duration::from_millis(300),
    }
}

/// A server with `limits` on a free port over `store`; its address, a stop
/// switch, and the task that ends when serving has ended.
async fn server_on(
    store: Store,
    limits: ConnectionLimits,
) -> (
    std::net::SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = AppState::new(
        store,
        Arc::new(LocalTrigger::new()),
        ApiConfig::default(),
        Arc::new(SystemClock),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve_with(listener, app, limits, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop, task)
}

async fn server(
    limits: ConnectionLimits,
) -> (
    std::net::SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    server_on(MemoryStore::store(), limits).await
}

/// Reads until the server closes the connection; what it sent. Gives up
/// (failing the test) after five seconds, far beyond every limit here.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut seen))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&seen).into_owned()
}

/// Sends `request` on a new connection; what the server sent until it
/// closed.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    until_closed(&mut stream).await
}

/// The fields every request of [`get`] carries first.
const BASE_FIELDS: [(&str, &str); 2] = [("Host", "x"), ("Connection", "close")];

/// A raw `GET` of `target` with [`BASE_FIELDS`] and `fields`: the server
/// closes the connection after answering it.
fn get(target: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!("GET {target} HTTP/1.1\r\n");
    for (name, value) in BASE_FIELDS.iter().chain(fields) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// The bytes of names and values that `fields` add to [`BASE_FIELDS`].
fn field_bytes(fields: &[(&str, &str)]) -> usize {
    BASE_FIELDS
        .iter()
        .chain(fields)
        .map(|(name, value)| name.len() + value.len())
        .sum()
}

/// Asserts that a raw answer has `status` and the error envelope of `code`,
/// and was made by the service (which gives every answer a request id).
fn assert_envelope(answer: &str, status: u16, code: &str) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "{answer}"
    );
    assert!(answer.contains("\r\nx-request-id: "), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").expect("a whole head");
    let body: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|error| panic!("not JSON ({error}): {answer}"));
    assert_eq!(body["error"]["code"], code, "{answer}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
}

#[tokio::test]
async fn half_sent_headers_are_cut_off() {
    let (addr, _stop, _task) = server(limits()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert_eq!(until_closed(&mut stream).await, "", "no answer, closed");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (addr, _stop, _task) = server(limits()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let seen = until_closed(&mut stream).await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_gets_408_and_stores_nothing() {
    let store = MemoryStore::store();
    let (addr, _stop, _task) = server_on(store.clone(), limits()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"title\":",
        )
        .await
        .unwrap();
    let seen = until_closed(&mut stream).await;
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
    assert!(seen.contains("request_timeout"), "{seen}");
    assert!(store.directory.list().await.unwrap().is_empty());
}

/// A body sent a byte at a time, each within any pause limit, still has
/// to be whole by its deadline.
#[tokio::test]
async fn a_body_trickled_slowly_is_cut_off_at_its_deadline() {
    let (addr, _stop, _task) = server(limits()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n",
        )
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut seen))
        .await
        .expect("the server answers and closes before the trickle ends")
        .ok();
    trickle.abort();
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_and_are_then_served() {
    let (addr, _stop, _task) = server(ConnectionLimits {
        max_connections: 1,
        ..limits()
    })
    .await;
    // The one place is taken by a client that sends nothing...
    let mut idle = TcpStream::connect(addr).await.unwrap();
    // ... so this one waits until the idle one is cut off, then is served.
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Not served while the place is taken (the idle one is cut off only
    // after 300 ms)...
    let mut first = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(100), waiting.read(&mut first))
            .await
            .is_err(),
        "served beyond the limit"
    );
    // ... and served once it is free.
    let seen = until_closed(&mut waiting).await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert_eq!(until_closed(&mut idle).await, "");
}

#[tokio::test]
async fn a_stop_waits_for_slow_clients_no_longer_than_its_grace() {
    let (addr, stop, task) = server(ConnectionLimits {
        // Headers may take a minute: only the grace can end this stop.
        header_read: Duration::from_secs(60),
        ..limits()
    })
    .await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Let the server take the connection before stopping it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serving ends once the grace is over")
        .unwrap();
}

/// The path and query may be [`MAX_URI_BYTES`] long, a region prefix
/// included; longer is a 414 in the envelope.
#[tokio::test]
async fn a_uri_over_the_limit_is_414_in_the_envelope() {
    let (addr, _stop, _task) = server(limits()).await;
    let target = |path: &str, len: usize| format!("{path}?{}", "a".repeat(len - path.len() - 1));
    let answer = exchange(addr, &get(&target("/healthz", MAX_URI_BYTES), &[])).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = exchange(addr, &get(&target("/healthz", MAX_URI_BYTES + 1), &[])).await;
    assert_envelope(&answer, 414, "uri_too_long");
    // Counted as sent, before the prefix comes off.
    let target = target("/r/local/healthz", MAX_URI_BYTES + 1);
    assert_envelope(
        &exchange(addr, &get(&target, &[])).await,
        414,
        "uri_too_long",
    );
}

/// Header names and values may come to [`MAX_HEADER_BYTES`]; more is a
/// 431 in the envelope.
#[tokio::test]
async fn header_fields_over_the_limit_are_431_in_the_envelope() {
    let (addr, _stop, _task) = server(limits()).await;
    let padding = |total: usize| "a".repeat(total - field_bytes(&[("X-Pad", "")]));
    let at_limit = padding(MAX_HEADER_BYTES);
    let answer = exchange(addr, &get("/healthz", &[("X-Pad", &at_limit)])).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let over = padding(MAX_HEADER_BYTES + 1);
    let answer = exchange(addr, &get("/healthz", &[("X-Pad", &over)])).await;
    assert_envelope(&answer, 431, "headers_too_large");
}

/// A request may have [`MAX_HEADER_FIELDS`] header fields; more, up to
/// hyper's own limit, is a 431 in the envelope (hyper alone would answer
/// without a body).
#[tokio::test]
async fn more_header_fields_than_allowed_are_431_in_the_envelope() {
    let (addr, _stop, _task) = server(limits()).await;
    let numbers: Vec<String> = (0..HEADER_FIELDS_HARD_LIMIT)
        .map(|n| n.to_string())
        .collect();
    let fields: Vec<(&str, &str)> = numbers.iter().map(|n| ("X-N", n.as_str())).collect();
    let with_base = |count: usize| &fields[..count - BASE_FIELDS.len()];
    let answer = exchange(addr, &get("/healthz", with_base(MAX_HEADER_FIELDS))).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for count in [MAX_HEADER_FIELDS + 1, HEADER_FIELDS_HARD_LIMIT] {
        let answer = exchange(addr, &get("/healthz", with_base(count))).await;
        assert_envelope(&answer, 431, "headers_too_large");
    }
}

/// Up to [`HEAD_BYTES_HARD_LIMIT`], a head over the limits gets the
/// server's answer in the envelope; a head that reaches it is refused by
/// hyper alone, before any of the service runs: a 431 without a body, and
/// the connection closed.
#[tokio::test]
async fn a_head_at_hypers_hard_limit_is_a_bare_431() {
    let (addr, _stop, _task) = server(limits()).await;
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    let end = b"\r\n\r\n";
    head.resize(HEAD_BYTES_HARD_LIMIT - 1 - end.len(), b'a');
    head.extend_from_slice(end);
    assert_envelope(&exchange(addr, &head).await, 431, "headers_too_large");
    // One byte more, and not even complete: hyper stops reading.
    head.truncate(HEAD_BYTES_HARD_LIMIT - end.len());
    head.resize(HEAD_BYTES_HARD_LIMIT, b'a');
    let answer = exchange(addr, &head).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(
        answer.split_once("\r\n\r\n").map(|(_, body)| body),
        Some("")
    );
}

/// The head of a `POST /api/events` announcing `length` bytes of body and
/// waiting for `100 Continue` before sending it.
fn create_expecting_continue(length: usize) -> String {
    format!(
        "POST /api/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nExpect: 100-continue\r\n\
         Content-Length: {length}\r\n\r\n"
    )
}

/// A body announced over the limit is refused before it is asked for: a
/// 413 in the envelope, never a `100 Continue` (the client would then send
/// it all for nothing).
#[tokio::test]
async fn an_oversized_body_expecting_100_continue_is_413_at_once() {
    let (addr, _stop, _task) = server(limits()).await;
    for length in [MAX_BODY_BYTES + 1, 1_000_000] {
        let answer = exchange(addr, create_expecting_continue(length).as_bytes()).await;
        assert!(!answer.contains("100 Continue"), "{answer}");
        assert_envelope(&answer, 413, "payload_too_large");
    }
}

/// A body of the limit is asked for (`100 Continue`), then answered.
#[tokio::test]
async fn a_body_in_bounds_expecting_100_continue_gets_it_then_its_answer() {
    let (addr, _stop, _task) = server(limits()).await;
    let mut body = br#"{"title": "Expecting"}"#.to_vec();
    body.resize(MAX_BODY_BYTES, b' ');
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(create_expecting_continue(body.len()).as_bytes())
        .await
        .unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("the server answers the head")
            .unwrap();
        assert_eq!(
            read,
            1,
            "closed after {:?}",
            String::from_utf8_lossy(&interim)
        );
        interim.push(byte[0]);
    }
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(&body).await.unwrap();
    let answer = until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}
