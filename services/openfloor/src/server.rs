//! The service: HTTP API, projector and web client in one process, on the
//! embedded store (SQLite, in-process projector) or on AWS (DynamoDB and
//! SQS, with the projector polling the queue, as the projector Lambda would
//! be fed).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openfloor_api::AppState;
use openfloor_aws::queue::Queue;
use openfloor_aws::stream::{RecordsStreamTrigger, StreamReader};
use openfloor_aws::Aws;
use openfloor_domain::clock::{Clock, SystemClock};
use openfloor_projector::service::ProjectorService;
use openfloor_projector::Projector;
use openfloor_store::sqlite::{IfDatabaseGone, SqliteStore, WriterLock};
use openfloor_store::{cause_chain, LocalTrigger, Store, Trigger};
use openfloor_telemetry::Metrics;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::{Backend, ServeArgs, StoreArgs};
use crate::poller::{run_poller, run_stream_reader};

/// How often expired events are purged. Expired events already answer 404;
/// the purge only frees space, so an hour's delay costs nothing.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// How often the AWS projector re-projects events whose views are behind
/// (a lost notification is repaired within this).
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Serves on `listener` until `shutdown` resolves, then finishes in-flight
/// requests and stops the projector.
/// `metrics` is served at `/metrics` when `--metrics` is on.
pub async fn serve(
    listener: TcpListener,
    store_args: &StoreArgs,
    args: &ServeArgs,
    metrics: Option<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let clock = Arc::new(SystemClock);
    serve_with_clock(listener, store_args, args, clock, metrics, shutdown).await
}

/// The store and what runs beside the API: the projector and
/// housekeeping, tracked so that a stop waits for them.
struct Backing {
    store: Store,
    trigger: Arc<dyn Trigger>,
    region: String,
    shards: u16,
    client_salt: Vec<u8>,
    /// How long the API reuses a view it has read (zero: read each time).
    view_reuse: Duration,
    /// The embedded store's data directory, held while the server runs.
    _lock: Option<WriterLock>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

/// [`serve`] with a chosen clock (tests move time to expire events).
pub async fn serve_with_clock(
    listener: TcpListener,
    store_args: &StoreArgs,
    args: &ServeArgs,
    clock: Arc<dyn Clock>,
    metrics: Option<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let backing = match store_args.backend {
        Backend::Embedded => embedded(&store_args.data, args, clock.clone()).await?,
        Backend::Aws => aws(store_args, args, clock.clone()).await?,
    };
    let mut config = args.api_config(
        backing.region.clone(),
        backing.shards,
        backing.client_salt.clone(),
    );
    config.view_reuse = backing.view_reuse;
    let app = AppState::new(
        backing.store.clone(),
        backing.trigger.clone(),
        config,
        clock,
    )
    .with_metrics(metrics.filter(|_| args.metrics));
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        backend = ?store_args.backend,
        region = %backing.region,
        "openfloor listening"
    );
    println!("openfloor listening on http://{addr}");
    openfloor_api::serve_with(listener, app, args.connection_limits(), shutdown).await?;
    backing.stop.cancel();
    backing.tasks.close();
    backing.tasks.wait().await;
    tracing::info!("openfloor stopped");
    Ok(())
}

async fn embedded(data: &Path, args: &ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Backing> {
    // Before anything is opened: a second server on this directory stops
    // here, with the reason.
    let lock = WriterLock::acquire(data)?;
    let if_gone = if args.accept_lost_data {
        IfDatabaseGone::StartAnew
    } else {
        IfDatabaseGone::Refuse
    };
    let sqlite = SqliteStore::open_with(data, if_gone, args.view_cache_bytes())?;
    // A damaged page found now stops the start, with SQLite's findings,
    // rather than failing reads one by one later.
    let took = sqlite.quick_check().await?;
    tracing::info!(
        took_ms = took.as_millis(),
        "database passed its quick integrity check"
    );
    let store = sqlite.store();
    let trigger = Arc::new(LocalTrigger::new());
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let projector = Projector::new(store.clone()).keeping(args.kept_states);
    tasks.spawn({
        let (trigger, now, stop) = (trigger.clone(), clock.now_ms(), stop.clone());
        async move {
            // Records acknowledged just before a crash reach the views.
            match projector.catch_up(now).await {
                Ok(report) => tracing::info!(?report, "projector caught up"),
                Err(error) => tracing::error!(
                    error = %cause_chain(&error),
                    "catch-up failed; views update as events change"
                ),
            }
            projector.run(trigger, stop.cancelled_owned()).await;
        }
    });
    // Retention: expired events' records go within the hour.
    tasks.spawn({
        let (sqlite, clock, stop) = (sqlite.clone(), clock.clone(), stop.clone());
        async move {
            let mut every = tokio::time::interval(PURGE_INTERVAL);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => match sqlite.purge_expired(clock.now_ms()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(records = n, "purged expired events"),
                        Err(error) => tracing::warn!(
                            error = %cause_chain(&error),
                            "purging expired events failed; will retry"
                        ),
                    },
                }
            }
        }
    });
    Ok(Backing {
        store,
        trigger,
        region: args.region.clone(),
        shards: 1,
        client_salt: args.client_salt(Some(sqlite.client_salt())),
        // The SQLite store keeps its views in memory.
        view_reuse: Duration::ZERO,
        _lock: Some(lock),
        tasks,
        stop,
    })
}

async fn aws(
    store_args: &StoreArgs,
    args: &ServeArgs,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Backing> {
    let aws = Aws::connect(store_args.aws.settings()).await;
    if store_args.aws.create_resources {
        aws.create_resources().await?;
    }
    let queue = Queue::open(aws.sqs.clone(), &aws.settings.queue_name).await?;
    let store = aws.store();
    let region = aws.settings.region.clone();
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let service = Arc::new(ProjectorService::with_clock(
        store.clone(),
        region.clone(),
        clock,
    ));
    // Opened before the server answers anything, so that no record written
    // through it is missed; what came before is the first sweep's.
    let stream = StreamReader::open(&aws).await?;
    tasks.spawn(run_stream_reader(service.clone(), stream, stop.clone()));
    tasks.spawn(run_poller(service, queue, SWEEP_INTERVAL, stop.clone()));
    Ok(Backing {
        store,
        trigger: Arc::new(RecordsStreamTrigger),
        region,
        shards: args.shards,
        client_salt: args.client_salt(None),
        view_reuse: openfloor_api::VIEW_REUSE_BEHIND_A_CDN,
        _lock: None,
        tasks,
        stop,
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
