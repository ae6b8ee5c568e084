//! An API instance on AWS reuses a view it has read for up to a second (as
//! a CDN may), so a burst of polls on one instance costs one store read;
//! the embedded shape reads its in-memory store each time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use openfloor_api::{router, ApiConfig, AppState, Regions, SystemClock, VIEW_REUSE_BEHIND_A_CDN};
use openfloor_domain::ids::EventId;
use openfloor_store::memory::MemoryStore;
use openfloor_store::{LocalTrigger, Store, StoreResult, StoredView, Views};
use openfloor_testing::fixtures;
use tower::ServiceExt;

/// The memory store's views, counting the reads polls make.
struct Counted {
    inner: Arc<MemoryStore>,
    reads: AtomicUsize,
}

#[async_trait]
impl Views for Counted {
    async fn put(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<bool> {
        self.inner.put(event, view).await
    }
    async fn get(&self, event: EventId) -> StoreResult<Option<Arc<StoredView>>> {
        self.inner.get(event).await
    }
    async fn get_recent(&self, event: EventId) -> StoreResult<Option<Arc<StoredView>>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(event).await
    }
    async fn replace(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<()> {
        self.inner.replace(event, view).await
    }
}

/// A router over a store whose view reads are counted, and a live event.
async fn setup(view_reuse: Duration) -> (axum::Router, Arc<Counted>, EventId) {
    let memory = MemoryStore::new();
    let counted = Arc::new(Counted {
        inner: memory.clone(),
        reads: AtomicUsize::new(0),
    });
    let store = Store {
        directory: memory.clone(),
        log: memory,
        views: counted.clone(),
        states: None,
        damage: Default::default(),
    };
    let meta = fixtures::event_meta(EventId::from_ulid(ulid::Ulid::new()))
        .region("eu-west-1")
        .live_for(Duration::from_secs(3_600))
        .build();
    store.directory.create(&meta).await.unwrap();
    let stored = openfloor_testing::scenarios::view(1);
    store.views.put(meta.id, stored).await.unwrap();
    let config = ApiConfig {
        regions: Regions::single("eu-west-1"),
        view_reuse,
        ..ApiConfig::default()
    };
    let app = router(AppState::new(
        store,
        Arc::new(LocalTrigger::new()),
        config,
        Arc::new(SystemClock),
    ));
    (app, counted, meta.id)
}

async fn poll(app: &axum::Router, event: EventId) {
    let uri = format!("/api/events/{event}/questions");
    let r = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn polls_within_a_second_read_the_store_once() {
    let (app, counted, event) = setup(VIEW_REUSE_BEHIND_A_CDN).await;
    for _ in 0..5 {
        poll(&app, event).await;
    }
    assert_eq!(counted.reads.load(Ordering::SeqCst), 1);
    tokio::time::sleep(VIEW_REUSE_BEHIND_A_CDN + Duration::from_millis(200)).await;
    poll(&app, event).await;
    assert_eq!(
        counted.reads.load(Ordering::SeqCst),
        2,
        "a view older than a second is read again"
    );
}

#[tokio::test]
async fn without_reuse_every_poll_reads_the_store() {
    let (app, counted, event) = setup(Duration::ZERO).await;
    for _ in 0..3 {
        poll(&app, event).await;
    }
    assert_eq!(counted.reads.load(Ordering::SeqCst), 3);
}
