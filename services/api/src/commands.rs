//! The write paths: validate, read what the decision needs from the log,
//! append one record with a deterministic key, tell the projector.
//!
//! Numbered changes (votes, host toggles) follow DESIGN.md: read the latest
//! n of the sequence, skip the write if the state already matches, else
//! write n+1; the key makes the write conditional, so when two requests race
//! one of them finds its key taken and re-reads.

use openfloor_domain::ids::{EventId, QuestionId, RecordId, VoterId};
use openfloor_domain::input::{AuthorName, QuestionText, Title};
use openfloor_domain::record::{ClientHash, Record, RecordBody, RecordKey, Sequence};
use openfloor_domain::secret::{HostSecret, SecretHash};
use openfloor_store::{Appended, EventLog, EventMeta, Lookup, StoreError};

use crate::error::ApiError;
use crate::state::AppState;

/// How often a numbered write re-reads after losing a race before giving
/// up with 503. Losing more than once needs the same voter (or host) to
/// fire many changes at once.
const MAX_SEQUENCE_ATTEMPTS: usize = 8;

/// A new event and the secret to show once.
pub struct CreatedEvent {
    pub meta: EventMeta,
    pub secret: HostSecret,
}

pub async fn create_event(app: &AppState, title: Title) -> Result<CreatedEvent, ApiError> {
    let secret = HostSecret::generate();
    let now = app.clock.now_ms();
    let id = EventId::from_ulid(app.mint());
    let meta = EventMeta {
        id,
        title: title.clone(),
        region: app.config.region.clone(),
        shards: app.config.shards,
        secret_hash: secret.hash(),
        created_at: now,
        expires_at: now
            .saturating_add(u64::try_from(app.config.retention.as_millis()).unwrap_or(u64::MAX)),
    };
    // The record first: an event whose directory entry exists always has
    // its creation record, so its title shows in every view.
    let record = Record {
        id: app.mint_record_id(),
        event: id,
        client: None,
        body: RecordBody::EventCreated { title },
    };
    app.store.log.append(meta.log(), record).await?;
    app.store.directory.create(&meta).await?;
    app.trigger.notify(id);
    Ok(CreatedEvent { meta, secret })
}

/// Checks a presented host secret against the event's. Missing and wrong
/// secrets get the same answer.
pub fn authorize(hash: &SecretHash, presented: Option<&HostSecret>) -> Result<(), ApiError> {
    match presented {
        Some(secret) if hash.matches(secret) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

pub struct Ask {
    pub question: QuestionId,
    pub asker: VoterId,
    pub text: QuestionText,
    pub author: Option<AuthorName>,
    pub client: Option<ClientHash>,
}

/// Appends a question. The same id with the same content is a retry and
/// answers the same; with other content it is a conflict.
pub async fn ask(app: &AppState, meta: &EventMeta, ask: Ask) -> Result<QuestionId, ApiError> {
    let log = meta.log();
    let key = RecordKey::question_asked(ask.question);
    let same = |r: &Record| match &r.body {
        RecordBody::QuestionAsked { text, author, .. } => {
            *text == ask.text && *author == ask.author
        }
        _ => false,
    };
    if let Some(existing) = app.store.log.get(log, &key).await? {
        return if same(&existing) {
            Ok(ask.question)
        } else {
            Err(ApiError::QuestionIdReused)
        };
    }
    // Limited after the retry check: resending an acknowledged question
    // must never be refused.
    app.limits().ask(meta.id, ask.asker)?;
    if !is_open(app, log).await? {
        return Err(ApiError::EventClosed);
    }
    let record = Record {
        id: app.mint_record_id(),
        event: meta.id,
        client: ask.client.clone(),
        body: RecordBody::QuestionAsked {
            question: ask.question,
            asker: ask.asker,
            text: ask.text.clone(),
            author: ask.author.clone(),
        },
    };
    match app.store.log.append(log, record).await? {
        Appended::Inserted => {
            app.trigger.notify(meta.id);
            Ok(ask.question)
        }
        Appended::Exists(existing) if same(&existing) => Ok(ask.question),
        Appended::Exists(_) => Err(ApiError::QuestionIdReused),
    }
}

async fn is_open(app: &AppState, log: EventLog) -> Result<bool, StoreError> {
    let latest = app.store.log.latest(log, &Sequence::Open).await?;
    Ok(!matches!(
        latest.map(|r| r.body),
        Some(RecordBody::Open { value: false, .. })
    ))
}

/// The question must have been asked (host actions may target hidden ones).
pub async fn require_question(
    app: &AppState,
    log: EventLog,
    question: QuestionId,
) -> Result<(), ApiError> {
    match app
        .store
        .log
        .get(log, &RecordKey::question_asked(question))
        .await?
    {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound("no such question")),
    }
}

fn is_hidden(latest_hidden: Option<&Record>) -> bool {
    matches!(
        latest_hidden.map(|r| &r.body),
        Some(RecordBody::Hidden { value: true, .. })
    )
}

/// The outcome of a numbered change.
pub struct Changed {
    /// The record that now decides the state (`None`: a withdrawal of a
    /// vote never cast, which needs no record).
    pub record: Option<RecordId>,
}

/// Makes `sequence` end in the state `wanted` accepts, appending the record
/// `make(n)` builds if it does not already. `known_latest` is the sequence's
/// latest record if the caller has just read it.
pub async fn change(
    app: &AppState,
    meta: &EventMeta,
    sequence: Sequence,
    known_latest: Option<Option<Record>>,
    client: Option<ClientHash>,
    wanted: impl Fn(Option<&Record>) -> bool,
    make: impl Fn(u32) -> RecordBody,
) -> Result<Changed, ApiError> {
    let log = meta.log();
    let mut known_latest = known_latest;
    for _ in 0..MAX_SEQUENCE_ATTEMPTS {
        let latest = match known_latest.take() {
            Some(latest) => latest,
            None => app.store.log.latest(log, &sequence).await?,
        };
        if wanted(latest.as_ref()) {
            return Ok(Changed {
                record: latest.map(|r| r.id),
            });
        }
        let n = latest.as_ref().and_then(Record::n).unwrap_or(0) + 1;
        let record = Record {
            id: app.mint_record_id(),
            event: meta.id,
            client: client.clone(),
            body: make(n),
        };
        let id = record.id;
        match app.store.log.append(log, record).await? {
            Appended::Inserted => {
                app.trigger.notify(meta.id);
                return Ok(Changed { record: Some(id) });
            }
            // Someone else wrote n first: look again.
            Appended::Exists(_) => continue,
        }
    }
    tracing::warn!(event = %meta.id, ?sequence, "gave up after repeated races on one sequence");
    Err(ApiError::Unavailable)
}

/// Sets a voter's vote on a question to `up`.
pub async fn vote(
    app: &AppState,
    meta: &EventMeta,
    question: QuestionId,
    voter: VoterId,
    up: bool,
    client: Option<ClientHash>,
) -> Result<Changed, ApiError> {
    // One round trip: the question, its hidden flag, the voter's last toggle.
    let sequence = Sequence::Vote { voter, question };
    let mut found = app
        .store
        .log
        .lookup(
            meta.log(),
            &[
                Lookup::Key(RecordKey::question_asked(question)),
                Lookup::Latest(Sequence::Hidden(question)),
                Lookup::Latest(sequence),
            ],
        )
        .await?
        .into_iter();
    let (asked, hidden, latest) = (
        found.next().flatten(),
        found.next().flatten(),
        found.next().flatten(),
    );
    if asked.is_none() || is_hidden(hidden.as_ref()) {
        return Err(ApiError::NotFound("no such question"));
    }
    change(
        app,
        meta,
        sequence,
        Some(latest),
        client,
        |latest| latest.and_then(Record::n).unwrap_or(0) % 2 == u32::from(up),
        |n| RecordBody::Vote { question, voter, n },
    )
    .await
}

/// Which host flag a toggle sets.
#[derive(Debug, Clone, Copy)]
pub enum Flag {
    Answered,
    Hidden,
}

pub async fn set_flag(
    app: &AppState,
    meta: &EventMeta,
    question: QuestionId,
    flag: Flag,
    value: bool,
) -> Result<Changed, ApiError> {
    require_question(app, meta.log(), question).await?;
    let current = |latest: Option<&Record>| match latest.map(|r| &r.body) {
        Some(RecordBody::Answered { value, .. } | RecordBody::Hidden { value, .. }) => *value,
        _ => false,
    };
    let sequence = match flag {
        Flag::Answered => Sequence::Answered(question),
        Flag::Hidden => Sequence::Hidden(question),
    };
    let make = |n| match flag {
        Flag::Answered => RecordBody::Answered { question, n, value },
        Flag::Hidden => RecordBody::Hidden { question, n, value },
    };
    change(
        app,
        meta,
        sequence,
        None,
        None,
        |l| current(l) == value,
        make,
    )
    .await
}

pub async fn set_open(app: &AppState, meta: &EventMeta, value: bool) -> Result<Changed, ApiError> {
    change(
        app,
        meta,
        Sequence::Open,
        None,
        None,
        |latest| match latest.map(|r| &r.body) {
            Some(RecordBody::Open { value: v, .. }) => *v == value,
            _ => value, // open until closed
        },
        |n| RecordBody::Open { n, value },
    )
    .await
}

/// Corrects a question's text; a correction to the text it already shows
/// writes nothing.
pub async fn correct_text(
    app: &AppState,
    meta: &EventMeta,
    question: QuestionId,
    text: QuestionText,
) -> Result<Changed, ApiError> {
    let log = meta.log();
    let asked = app
        .store
        .log
        .get(log, &RecordKey::question_asked(question))
        .await?
        .ok_or(ApiError::NotFound("no such question"))?;
    let original = match asked.body {
        RecordBody::QuestionAsked { text, .. } => text,
        _ => return Err(ApiError::Internal),
    };
    change(
        app,
        meta,
        Sequence::Text(question),
        None,
        None,
        |latest| match latest.map(|r| &r.body) {
            Some(RecordBody::TextCorrected { text: shown, .. }) => *shown == text,
            _ => original == text,
        },
        |n| RecordBody::TextCorrected {
            question,
            n,
            text: text.clone(),
        },
    )
    .await
}
