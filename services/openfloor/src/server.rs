//! The embedded server: SQLite store, in-process projector, HTTP API.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openfloor_api::{ApiConfig, AppState, Clock, SystemClock};
use openfloor_projector::Projector;
use openfloor_store::sqlite::SqliteStore;
use openfloor_store::LocalTrigger;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;

/// How often expired events are purged. Expired events already answer 404;
/// the purge only frees space, so an hour's delay costs nothing.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Serves on `listener` until `shutdown` resolves, then finishes in-flight
/// requests and stops the projector.
pub async fn serve(
    listener: TcpListener,
    data: &Path,
    args: &ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_clock(listener, data, args, Arc::new(SystemClock), shutdown).await
}

/// [`serve`] with a chosen clock (tests move time to expire events).
pub async fn serve_with_clock(
    listener: TcpListener,
    data: &Path,
    args: &ServeArgs,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let sqlite = SqliteStore::open(data)?;
    let store = sqlite.store();
    let trigger = Arc::new(LocalTrigger::new());
    let config = ApiConfig {
        region: args.region.clone(),
        retention: Duration::from_secs(u64::from(args.retention_days) * 24 * 3600),
        shards: 1,
        client_salt: sqlite.client_salt().to_vec(),
        trust_forwarded_for: args.trust_forwarded_for,
    };

    let projector = Projector::new(store.clone());
    let (stop_projector, projector_stopped) = tokio::sync::oneshot::channel::<()>();
    let projector_task = tokio::spawn({
        let projector = projector.clone();
        let trigger = trigger.clone();
        let now = clock.now_ms();
        async move {
            // Records acknowledged just before a crash reach the views.
            match projector.catch_up(now).await {
                Ok(n) => tracing::info!(events = n, "projector caught up"),
                Err(error) => {
                    tracing::error!(%error, "catch-up failed; views update as events change")
                }
            }
            projector
                .run(trigger, async {
                    let _ = projector_stopped.await;
                })
                .await;
        }
    });

    // Retention: expired events' records go an hour or so after expiry.
    let purge_task = tokio::spawn({
        let (sqlite, clock) = (sqlite.clone(), clock.clone());
        async move {
            let mut every = tokio::time::interval(PURGE_INTERVAL);
            loop {
                every.tick().await;
                match sqlite.purge_expired(clock.now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(records = n, "purged expired events"),
                    Err(error) => {
                        tracing::warn!(%error, "purging expired events failed; will retry")
                    }
                }
            }
        }
    });

    let app = AppState::new(store, trigger, config, clock);
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data = %data.display(), "openfloor listening");
    println!("openfloor listening on http://{addr}");
    openfloor_api::serve(listener, app, shutdown).await?;
    purge_task.abort();
    let _ = stop_projector.send(());
    let _ = projector_task.await;
    tracing::info!("openfloor stopped");
    Ok(())
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
