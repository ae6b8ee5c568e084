//! The service: HTTP API, projector and web client in one process, on the
//! embedded store (SQLite, in-process projector) or on AWS (DynamoDB and
//! SQS, with the projector polling the queue, as the projector Lambda would
//! be fed).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openfloor_api::{AppState, Clock, SystemClock};
use openfloor_aws::handler::{run_poller, ProjectorService};
use openfloor_aws::queue::{Queue, SqsTrigger};
use openfloor_aws::Aws;
use openfloor_projector::Projector;
use openfloor_store::sqlite::SqliteStore;
use openfloor_store::{LocalTrigger, Store, Trigger};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cli::{Backend, ServeArgs, StoreArgs};

/// How often expired events are purged. Expired events already answer 404;
/// the purge only frees space, so an hour's delay costs nothing.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// How often the AWS projector re-projects events whose views are behind
/// (a lost notification is repaired within this).
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Serves on `listener` until `shutdown` resolves, then finishes in-flight
/// requests and stops the projector.
pub async fn serve(
    listener: TcpListener,
    store_args: &StoreArgs,
    args: &ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_clock(listener, store_args, args, Arc::new(SystemClock), shutdown).await
}

/// What runs beside the API: the projector and housekeeping.
struct Backing {
    store: Store,
    trigger: Arc<dyn Trigger>,
    region: String,
    shards: u16,
    client_salt: Vec<u8>,
    tasks: Vec<JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// [`serve`] with a chosen clock (tests move time to expire events).
pub async fn serve_with_clock(
    listener: TcpListener,
    store_args: &StoreArgs,
    args: &ServeArgs,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let backing = match store_args.backend {
        Backend::Embedded => embedded(&store_args.data, args, clock.clone())?,
        Backend::Aws => aws(store_args, args).await?,
    };
    let config = args.api_config(
        backing.region.clone(),
        backing.shards,
        backing.client_salt.clone(),
    );
    let app = AppState::new(
        backing.store.clone(),
        backing.trigger.clone(),
        config,
        clock,
    );
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = ?store_args.backend, region = %backing.region, "openfloor listening");
    println!("openfloor listening on http://{addr}");
    openfloor_api::serve(listener, app, shutdown).await?;
    let _ = backing.stop.send(true);
    for task in backing.tasks {
        let _ = task.await;
    }
    tracing::info!("openfloor stopped");
    Ok(())
}

/// Resolves when `stop` turns true.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn embedded(data: &Path, args: &ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Backing> {
    let sqlite = SqliteStore::open(data)?;
    let store = sqlite.store();
    let trigger = Arc::new(LocalTrigger::new());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let projector = Projector::new(store.clone());
    let projector_task = tokio::spawn({
        let (trigger, now, stop) = (trigger.clone(), clock.now_ms(), stop_rx.clone());
        async move {
            // Records acknowledged just before a crash reach the views.
            match projector.catch_up(now).await {
                Ok(n) => tracing::info!(events = n, "projector caught up"),
                Err(error) => {
                    tracing::error!(%error, "catch-up failed; views update as events change")
                }
            }
            projector.run(trigger, stopped(stop)).await;
        }
    });
    // Retention: expired events' records go within the hour.
    let purge_task = tokio::spawn({
        let (sqlite, clock, stop) = (sqlite.clone(), clock.clone(), stop_rx);
        async move {
            let mut every = tokio::time::interval(PURGE_INTERVAL);
            let stop = stopped(stop);
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => return,
                    _ = every.tick() => match sqlite.purge_expired(clock.now_ms()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(records = n, "purged expired events"),
                        Err(error) => tracing::warn!(%error, "purging expired events failed; will retry"),
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
        client_salt: sqlite.client_salt().to_vec(),
        tasks: vec![projector_task, purge_task],
        stop,
    })
}

async fn aws(store_args: &StoreArgs, args: &ServeArgs) -> anyhow::Result<Backing> {
    let aws = Aws::connect(store_args.aws.settings()).await;
    if store_args.aws.create_resources {
        aws.create_resources().await?;
    }
    let queue = Queue::open(aws.sqs.clone(), &aws.settings.queue_name).await?;
    let store = aws.store();
    let region = aws.settings.region.clone();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let service = Arc::new(ProjectorService::new(store.clone(), region.clone()));
    let poller = tokio::spawn(run_poller(
        service,
        queue.clone(),
        SWEEP_INTERVAL,
        stopped(stop_rx),
    ));
    let client_salt = match &args.client_salt {
        Some(salt) => salt.clone().into_bytes(),
        None => {
            tracing::warn!("no --client-salt: address hashes will not match across instances");
            // 160 random bits, as for a host secret.
            openfloor_domain::secret::HostSecret::generate()
                .expose()
                .as_bytes()
                .to_vec()
        }
    };
    Ok(Backing {
        store,
        trigger: Arc::new(SqsTrigger::new(queue)),
        region,
        shards: args.shards,
        client_salt,
        tasks: vec![poller],
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
