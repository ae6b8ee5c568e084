//! `spawn_app()`: a server on a random port with its own data directory
//! and a clock the test moves; it derefs to the typed client of its API.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openfloor::cli::{AwsArgs, Backend, ServeArgs, StoreArgs};
use openfloor::server::serve_with_clock;
use openfloor_api::Clock;
use openfloor_testing::api::ApiClient;
use tempfile::TempDir;

/// A clock tests can move forward.
#[derive(Default)]
pub struct TestClock {
    skew_ms: AtomicU64,
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        self.skew_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_millis(self.skew_ms.load(Ordering::SeqCst))
    }
}

pub struct TestApp {
    pub api: ApiClient,
    pub clock: Arc<TestClock>,
    pub data: Arc<TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// A test calls the API through the app: `app.create_event(…)`.
impl Deref for TestApp {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_in(Arc::new(tempfile::tempdir().unwrap())).await
}

/// A server whose settings `configure` changes first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    spawn_app_configured(Arc::new(tempfile::tempdir().unwrap()), configure).await
}

/// A server on an existing data directory (for restart tests).
pub async fn spawn_app_in(data: Arc<TempDir>) -> TestApp {
    spawn_app_configured(data, |_| ()).await
}

async fn spawn_app_configured(
    data: Arc<TempDir>,
    configure: impl FnOnce(&mut ServeArgs),
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let limits = openfloor_api::ConnectionLimits::default();
    let mut args = ServeArgs {
        listen: listener.local_addr().unwrap(),
        region: "local".into(),
        shards: 1,
        client_salt: None,
        retention_days: 30,
        trusted_proxies: 0,
        cdn_secret: None,
        limit_by_address: true,
        max_questions: 5_000,
        cached_events: 10_000,
        view_cache_mib: 128,
        cached_voters: 100_000,
        kept_states: 1_000,
        secure_cookies: false,
        region_urls: Vec::new(),
        regions: Vec::new(),
        region_coordinates: Vec::new(),
        metrics: true,
        header_timeout: limits.header_read,
        body_timeout: limits.body_read,
        max_connections: limits.max_connections,
        shutdown_grace: limits.shutdown_grace,
        accept_lost_data: false,
    };
    configure(&mut args);
    let store_args = StoreArgs {
        backend: Backend::Embedded,
        data: data.path().to_owned(),
        aws: AwsArgs {
            aws_region: "us-east-1".into(),
            aws_endpoint_url: None,
            events_table: String::new(),
            records_table: String::new(),
            views_table: String::new(),
            queue_name: String::new(),
            states_bucket: None,
            create_resources: false,
        },
    };
    let clock = Arc::new(TestClock::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let clock = clock.clone();
        async move {
            serve_with_clock(listener, &store_args, &args, clock, None, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        }
    });
    TestApp {
        api: ApiClient::new(base),
        clock,
        data,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// Stops the server gracefully and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}
