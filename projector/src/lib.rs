//! The projector: turns an event's records into its stored views.
//!
//! Told "event X has news" by the trigger, it reads the event's records,
//! folds them, renders both views and stores them with the views role's
//! guard (a view folding fewer records never replaces one folding more).
//! Bursts coalesce: an event is projected by one task at a time, and any
//! number of notifications during a projection cause one more.
//!
//! A projection applies only the records that are new to the event's
//! folded state; the fold is order-independent and idempotent, so that
//! equals a full recompute (tested as a property). Where the state lives
//! depends on the store:
//! - where the log hands out commit-order cursors (SQLite, memory), the
//!   state is kept in memory and the log is read from the cursor on;
//! - where it does not, and memory does not last (DynamoDB, on Lambda),
//!   the state is kept in the store's [`ProjectionStates`] and the new
//!   records come with the news (the records stream): a projection reads
//!   the state's version, the pieces of it that changed since this
//!   instance last saw it, and nothing of the log.
//!
//! A projection that is not told which records are new (a sweep, a queued
//! command) folds the whole log into the state.
//!
//! A stored record that cannot be read back (damaged) does not stop its
//! event: the projection folds every record it can read, skips the damaged
//! ones, counts them as read (so the views' guard still compares lengths of
//! the log, and a view made before the damage is not replaced by one
//! folding less), and reports them to the store's
//! [`DamagedEvents`](openfloor_store::DamagedEvents), which logs each once
//! and shows them in `/healthz` and the metrics (DESIGN.md, "Damage").

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use openfloor_domain::clock::{Clock as _, SystemClock};
use openfloor_domain::fold::EventState;
use openfloor_domain::ids::EventId;
use openfloor_domain::record::Record;
use openfloor_domain::view::render;
use openfloor_domain::Millis;
use openfloor_store::{
    cause_chain, Dirty, EventLog, EventMeta, KeptState, LocalTrigger, LogCursor, ProjectionStates,
    Salvaged, StateStamp, Store, StoreError, StoreResult, StoredView, Trigger,
};
use opentelemetry::trace::SpanContext;
use tokio::sync::Mutex;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

mod metrics;
pub mod service;
pub mod verify;

/// Folds `records` (any order, duplicates allowed as long as `records`
/// counts distinct ones) into the view the projector would store. The one
/// function live projection, replay and verify share.
pub fn project_records<'a>(
    event: EventId,
    records: impl IntoIterator<Item = &'a Record>,
    count: u64,
) -> StoredView {
    let state = EventState::fold(event, records);
    stored_view(&state, count)
}

fn stored_view(state: &EventState, records: u64) -> StoredView {
    let views = render(state);
    StoredView {
        records,
        guest: views.guest,
        host: views.host,
        projected_at: 0,
        questions: state.asked_questions().count() as u64,
    }
}

/// The span of one projection; [`Projector::project_over`] fills in how
/// many records the view folds and whether it was stored.
fn projection_span(event: EventId) -> tracing::Span {
    tracing::info_span!(
        "projection",
        %event,
        records = tracing::field::Empty,
        stored = tracing::field::Empty
    )
}

/// What a projection knows of the views stored for its event.
enum StoredViews {
    /// Read from the store just before (a sweep): they fold this many
    /// records (`None`: there are none, or they cannot be read).
    Folding(Option<u64>),
    /// As this projector last stored them from its kept state, if it did
    /// (projections asked for by news: the views are written by this
    /// projector alone, so what it stored is what is there).
    AsLastStoredHere,
}

/// An event's folded state, kept between projections.
struct Folded {
    state: EventState,
    /// How far into the log the state has read (logs with cursors).
    cursor: LogCursor,
    /// Which stored version the state is (stores with projection states).
    stamp: StateStamp,
    records: u64,
    /// How many records the view this projector last stored from this
    /// state folds: a projection that finds nothing new writes nothing
    /// (the view, and the time it was made, stay as they are).
    stored: Option<u64>,
    /// When it was last brought up to date, for eviction.
    touched: tokio::time::Instant,
}

/// Drops the least recently projected states until at most `keep` remain
/// (a quarter below the bound, so this runs once per many new events).
/// Only slots no projection holds are dropped: the map's lock is held, and
/// slots are handed out under it, so a slot held by the map alone stays
/// that way (and one event is never projected twice at once).
fn drop_least_recent(folded: &mut HashMap<EventId, Arc<Mutex<Option<Folded>>>>, keep: usize) {
    let mut idle: Vec<(Option<tokio::time::Instant>, EventId)> = folded
        .iter()
        .filter(|(_, slot)| Arc::strong_count(slot) == 1)
        .filter_map(|(event, slot)| {
            let kept = slot.try_lock().ok()?;
            Some((kept.as_ref().map(|f| f.touched), *event))
        })
        .collect();
    // Never-filled slots (`None`) first, then the oldest.
    idle.sort_unstable();
    let excess = folded.len().saturating_sub(keep);
    for (_, event) in idle.into_iter().take(excess) {
        folded.remove(&event);
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Live events looked at.
    pub events: usize,
    /// Events whose stored view changed (it was behind its log).
    pub changed: usize,
    /// Events that could not be projected (logged; tried again next time).
    pub failed: usize,
    /// Events checked against a full recompute of their log after being
    /// projected (an AWS sweep's sample), and those whose views differed.
    pub verified: usize,
    pub differed: usize,
}

/// What one projection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projected {
    /// How many records the view folds.
    pub records: u64,
    /// Whether the view was stored (false: a newer one was already there).
    pub stored: bool,
}

pub struct Projector {
    store: Store,
    /// On AWS, the region this projector serves: events homed elsewhere are
    /// never projected here, whatever asks for them (their records live in
    /// their home region; projecting them here would split their views).
    home: Option<String>,
    /// Per event: its folded state, behind a lock that also makes sure only
    /// one projection of an event runs at a time.
    folded: std::sync::Mutex<HashMap<EventId, Arc<Mutex<Option<Folded>>>>>,
    /// How many events' states are kept at most: beyond it the least
    /// recently projected are dropped, so a flood of events cannot grow
    /// memory for the ten minutes before they would count as idle.
    max_kept: usize,
}

/// [`Projector::keeping`] unless told otherwise.
pub const DEFAULT_KEPT_STATES: usize = 1_000;

/// A kept state unused this long is dropped (it is rebuilt from the log on
/// the event's next change): a large event's state holds every voter's
/// toggle, and past events should not hold memory forever.
pub const IDLE_STATE_EVICTION: Duration = Duration::from_secs(600);

/// How many times a projection loads the stored state, applies its records
/// and stores it, when other projectors of the same event keep storing
/// first (each of their versions is progress; this many in a row is a
/// sign of trouble).
const STORE_ATTEMPTS: usize = 8;

/// How long a failed projection waits before it is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// The least time between two rounds of projections. A change after a quiet
/// spell is projected at once; under load, this pacing lets many records
/// coalesce into one projection (one fold, one render, one view write)
/// while keeping views at most a few tens of milliseconds behind, well
/// inside the second the audience may wait.
pub const PROJECTION_PACING: Duration = Duration::from_millis(10);

impl Projector {
    /// A projector of every event in `store` (one region: the embedded
    /// store holds only its own events).
    pub fn new(store: Store) -> Arc<Self> {
        Self::build(store, None)
    }

    /// A projector of the events homed in `region` only.
    pub fn for_region(store: Store, region: String) -> Arc<Self> {
        Self::build(store, Some(region))
    }

    fn build(store: Store, home: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            store,
            home,
            folded: std::sync::Mutex::new(HashMap::new()),
            max_kept: DEFAULT_KEPT_STATES,
        })
    }

    /// Keeps at most `states` events' states in memory (at least one).
    #[must_use]
    pub fn keeping(self: Arc<Self>, states: usize) -> Arc<Self> {
        let mut this = Arc::try_unwrap(self)
            .unwrap_or_else(|_| unreachable!("the projector is configured before it is shared"));
        this.max_kept = states.max(1);
        Arc::new(this)
    }

    fn slot(&self, event: EventId) -> Arc<Mutex<Option<Folded>>> {
        let mut folded = self.folded.lock().unwrap_or_else(|p| p.into_inner());
        if !folded.contains_key(&event) && folded.len() >= self.max_kept {
            let keep = (self.max_kept - self.max_kept / 4).min(self.max_kept - 1);
            drop_least_recent(&mut folded, keep);
        }
        folded.entry(event).or_default().clone()
    }

    /// Projects `event` now. Unknown events, and events homed in another
    /// region than this projector's, are skipped.
    pub async fn project(&self, event: EventId) -> StoreResult<Option<Projected>> {
        self.project_linked(event, Vec::new()).await
    }

    /// [`Projector::project`], its span linked to the traces of the requests
    /// whose records it folds, so a vote's trace leads to the projection
    /// that made it visible.
    pub async fn project_linked(
        &self,
        event: EventId,
        links: Vec<SpanContext>,
    ) -> StoreResult<Option<Projected>> {
        self.project_news(event, links, None).await
    }

    /// [`Projector::project_linked`], told which records are new (a batch of
    /// the records stream carries them): where states are stored, these
    /// are all it applies, and it reads nothing of the log. Records
    /// delivered again, or out of order, are harmless.
    pub async fn project_news(
        &self,
        event: EventId,
        links: Vec<SpanContext>,
        new: Option<Vec<Record>>,
    ) -> StoreResult<Option<Projected>> {
        let span = projection_span(event);
        for link in links {
            span.add_link(link);
        }
        self.project_over(event, StoredViews::AsLastStoredHere, new)
            .instrument(span)
            .await
    }

    /// [`Projector::project`], knowing what the stored views fold: views
    /// that fold no more are not written again (the same records give the
    /// same bytes, and the view keeps the time it was made), which spares a
    /// sweep rewriting every live event's views, parts and all.
    /// Runs inside a [`projection_span`], whose fields it fills in.
    async fn project_over(
        &self,
        event: EventId,
        known: StoredViews,
        new: Option<Vec<Record>>,
    ) -> StoreResult<Option<Projected>> {
        let Some(meta) = self.store.directory.get(event).await? else {
            tracing::debug!("event not in the directory; nothing to project");
            return Ok(None);
        };
        if self.home.as_ref().is_some_and(|home| *home != meta.region) {
            tracing::warn!(
                region = %meta.region,
                "event homed in another region; not projected here"
            );
            return Ok(None);
        }
        let log = meta.log();
        let started = std::time::Instant::now();
        let slot = self.slot(event);
        let mut folded = slot.lock().await;
        // When each record this projection may newly show was minted.
        let advanced = match &self.store.states {
            Some(states) => Some(
                self.advance_stored(&**states, log, folded.take(), new)
                    .await?,
            ),
            None => self.advance(log, folded.take()).await?.map(|(f, minted)| {
                let read = minted.len() as u64;
                (f, minted, read)
            }),
        };
        let (view, minted, read, stored_here) = match advanced {
            Some((f, minted, read)) => {
                let view = stored_view(&f.state, f.records);
                let stored_here = f.stored;
                *folded = Some(f);
                (view, minted, read, stored_here)
            }
            None => {
                let read = self.read_whole(log).await?;
                // Which records are new is unknown here: the newest stands
                // for them.
                let newest = read.records.iter().map(|r| r.id.timestamp_ms()).max();
                let view = project_records(event, &read.records, read.stored());
                (view, newest.into_iter().collect(), read.stored(), None)
            }
        };
        let records = view.records;
        let view = Arc::new(StoredView {
            projected_at: SystemClock.now_ms(),
            ..view
        });
        let unchanged = match known {
            StoredViews::Folding(stored) => stored == Some(records),
            StoredViews::AsLastStoredHere => stored_here == Some(records),
        };
        let stored = !unchanged && self.store.views.put(event, view.clone()).await?;
        if stored {
            if let Some(f) = folded.as_mut() {
                f.stored = Some(records);
            }
        }
        metrics::projected(started.elapsed(), read, stored.then_some(&*view), &minted);
        let span = tracing::Span::current();
        span.record("records", records);
        span.record("stored", stored);
        Ok(Some(Projected { records, stored }))
    }

    /// Brings a kept state up to date through the log's cursor, with when
    /// each new record was minted; `None` where the log has no cursors.
    async fn advance(
        &self,
        log: EventLog,
        kept: Option<Folded>,
    ) -> StoreResult<Option<(Folded, Vec<u64>)>> {
        let mut folded = kept.unwrap_or_else(|| Folded {
            state: EventState::new(log.event),
            cursor: LogCursor::default(),
            stamp: StateStamp::default(),
            records: 0,
            stored: None,
            touched: tokio::time::Instant::now(),
        });
        folded.touched = tokio::time::Instant::now();
        let Some((new, cursor)) = self.store.log.read_since(log, folded.cursor).await? else {
            return Ok(None);
        };
        if folded.cursor == LogCursor::default() {
            self.store.damage.read_whole(log.event, &new.damaged);
        } else {
            self.store.damage.read_part(log.event, &new.damaged);
        }
        folded.state.apply_all(&new.records);
        // Damaged records count as read (see `Salvaged::stored`): the
        // cursor has passed them.
        folded.records += new.stored();
        folded.cursor = cursor;
        let minted = new.records.iter().map(|r| r.id.timestamp_ms()).collect();
        Ok(Some((folded, minted)))
    }

    /// Reads `log` whole, its damaged records apart (reported to the
    /// store's list of damaged events, and skipped).
    async fn read_whole(&self, log: EventLog) -> StoreResult<Salvaged> {
        let read = self.store.log.read_salvaged(log).await?;
        self.store.damage.read_whole(log.event, &read.damaged);
        Ok(read)
    }

    /// Brings the stored state up to date with `new` (the whole log when
    /// `None`) and stores it; says when each record it may newly show was
    /// minted, and how many records it applied.
    /// `kept` is this instance's copy, so that loading reads only what
    /// other projectors changed since.
    async fn advance_stored(
        &self,
        states: &dyn ProjectionStates,
        log: EventLog,
        kept: Option<Folded>,
        new: Option<Vec<Record>>,
    ) -> StoreResult<(Folded, Vec<u64>, u64)> {
        let mut whole_log = new.is_none();
        let mut new = match new {
            Some(records) => records,
            None => self.read_whole(log).await?.records,
        };
        let stored_before = kept.as_ref().and_then(|f| f.stored);
        let mut kept = kept.map(|f| KeptState {
            state: f.state,
            stamp: f.stamp,
        });
        for _ in 0..STORE_ATTEMPTS {
            let mut loaded = states.load(log.event, kept.take()).await?;
            // No state stored yet (an event older than its state, or one
            // whose state was deleted or lost): it starts from the whole
            // log, not from the news alone.
            if loaded.stamp.pieces.is_empty() && !whole_log {
                new.extend(self.read_whole(log).await?.records);
                whole_log = true;
            }
            let before = loaded.state.implied_records();
            loaded.state.apply_all(&new);
            let records = loaded.state.implied_records();
            // Nothing new: nothing to store (a redelivered batch).
            if records == before || states.store(&mut loaded).await? {
                // When each record this projection may newly show was
                // minted: the news; of a whole log, whatever is new in it
                // is unknown here, and its newest record stands for it.
                let minted = if whole_log {
                    let newest = new.iter().map(|r| r.id.timestamp_ms()).max();
                    newest.filter(|_| records > before).into_iter().collect()
                } else {
                    new.iter().map(|r| r.id.timestamp_ms()).collect()
                };
                let folded = Folded {
                    state: loaded.state,
                    cursor: LogCursor::default(),
                    stamp: loaded.stamp,
                    records,
                    stored: stored_before,
                    touched: tokio::time::Instant::now(),
                };
                return Ok((folded, minted, new.len() as u64));
            }
            tracing::debug!("another projector stored the state first; applying again");
            // The next load reads what the other stored, and the chunks
            // this copy changed, again.
            kept = Some(loaded);
        }
        Err(StoreError::overloaded_msg(format!(
            "the projection state of event {} was replaced during each of {STORE_ATTEMPTS} tries",
            log.event
        )))
    }

    /// Drops kept states idle for [`IDLE_STATE_EVICTION`]; returns how many.
    /// States being projected right now are left alone.
    pub fn evict_idle(&self) -> usize {
        let now = tokio::time::Instant::now();
        let mut folded = self.folded.lock().unwrap_or_else(|p| p.into_inner());
        let before = folded.len();
        folded.retain(|_, slot| match slot.try_lock() {
            // Held by the map alone (see `drop_least_recent`).
            Ok(kept) if Arc::strong_count(slot) == 1 => kept
                .as_ref()
                .is_some_and(|f| now.duration_since(f.touched) < IDLE_STATE_EVICTION),
            _ => true,
        });
        before - folded.len()
    }

    /// How many events' states are kept in memory.
    pub fn kept_states(&self) -> usize {
        self.folded.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Re-projects every live event that `include` accepts, one at a time,
    /// and says how many views changed: a changed view means its log had
    /// records the view did not fold yet (a notification lost, or records
    /// acknowledged just before a crash). One event's failure is logged and
    /// counted, and the sweep goes on to the next: no event can stop the
    /// others from being projected.
    pub async fn sweep(
        &self,
        now: Millis,
        include: impl Fn(&EventMeta) -> bool,
    ) -> StoreResult<SweepReport> {
        let live = self.store.directory.list().await?;
        let live = live
            .into_iter()
            .filter(|meta| !meta.is_expired(now) && include(meta))
            .collect();
        self.sweep_events(live).await
    }

    /// [`Projector::sweep`] of the given events.
    #[tracing::instrument(name = "sweep", skip_all, fields(
        events = tracing::field::Empty,
        changed = tracing::field::Empty,
        failed = tracing::field::Empty,
    ))]
    pub async fn sweep_events(&self, events: Vec<EventMeta>) -> StoreResult<SweepReport> {
        let mut report = SweepReport::default();
        for meta in events {
            let event = meta.id;
            let outcome = async {
                // Views that cannot be read are no reason to stop: the
                // projection below rewrites them.
                let before = match self.store.views.stored_records(event).await {
                    Ok(records) => records,
                    Err(error) => {
                        tracing::warn!(
                            %event,
                            error = %cause_chain(&error),
                            "sweep: the stored views cannot be read; projecting anew"
                        );
                        None
                    }
                };
                let after = self
                    .project_over(event, StoredViews::Folding(before), None)
                    .instrument(projection_span(event))
                    .await?;
                StoreResult::Ok(after.is_some_and(|p| p.stored))
            };
            report.events += 1;
            match outcome.await {
                Ok(true) => report.changed += 1,
                Ok(false) => {}
                Err(error) => {
                    report.failed += 1;
                    tracing::warn!(
                        %event,
                        error = %cause_chain(&error),
                        "sweep: projecting this event failed; going on"
                    );
                }
            }
        }
        if report.changed > 0 || report.failed > 0 {
            tracing::info!(?report, "sweep re-projected events whose views were behind");
        }
        let span = tracing::Span::current();
        span.record("events", report.events);
        span.record("changed", report.changed);
        span.record("failed", report.failed);
        Ok(report)
    }

    /// Sweeps every live event of the store: run at start, so records
    /// acknowledged just before a crash reach the views.
    pub async fn catch_up(&self, now: Millis) -> StoreResult<SweepReport> {
        self.sweep(now, |_| true).await
    }

    /// Serves `trigger` until `shutdown` resolves.
    pub async fn run(
        self: Arc<Self>,
        trigger: Arc<LocalTrigger>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut last_round = tokio::time::Instant::now() - PROJECTION_PACING;
        let mut eviction = tokio::time::interval(IDLE_STATE_EVICTION);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(last_round + PROJECTION_PACING) => {},
                () = &mut shutdown => break,
            }
            let batch = tokio::select! {
                batch = trigger.next_batch() => batch,
                _ = eviction.tick() => {
                    let evicted = self.evict_idle();
                    tracing::debug!(evicted, "dropped idle event states");
                    continue;
                }
                () = &mut shutdown => break,
            };
            last_round = tokio::time::Instant::now();
            self.project_round(&trigger, batch).await;
        }
        // A stop comes after the API has answered its last request: what
        // it acknowledged is projected before the process ends, so views
        // and log agree after a clean stop (`verify` finds nothing).
        let pending = trigger.take_pending();
        if !pending.is_empty() {
            tracing::info!(events = pending.len(), "projecting before stopping");
            for Dirty { event, links } in pending {
                if let Err(error) = self.project_linked(event, links).await {
                    tracing::warn!(
                        %event,
                        %error,
                        "projection at stop failed; the next start's catch-up repairs it"
                    );
                }
            }
        }
    }

    /// Projects `batch` concurrently; a failed event is retried shortly,
    /// unless what failed is damaged stored data (its directory entry, say),
    /// which no retry mends: that is logged as an error and tried again
    /// only when the event changes, or at the next start.
    async fn project_round(self: &Arc<Self>, trigger: &Arc<LocalTrigger>, batch: Vec<Dirty>) {
        let mut tasks = tokio::task::JoinSet::new();
        for Dirty { event, links } in batch {
            let this = self.clone();
            let trigger = trigger.clone();
            tasks.spawn(async move {
                match this.project_linked(event, links).await {
                    Ok(_) => {}
                    Err(error @ StoreError::Corrupt { .. }) => tracing::error!(
                        %event,
                        error = %cause_chain(&error),
                        "projection failed on damaged data; not retried until the event changes"
                    ),
                    Err(error) => {
                        tracing::warn!(%event, %error, "projection failed; retrying shortly");
                        tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                        trigger.notify(event);
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}
