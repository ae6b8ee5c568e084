//! Replay: rebuild views from the log, now or as of a past moment. It folds
//! with the projector's own function, so a replay is by construction what
//! the live projector renders. (Verify lives in `openfloor_projector::verify`,
//! which the AWS projector's `verify` command uses too.)

use anyhow::{bail, Context};
use openfloor_domain::ids::EventId;
use openfloor_domain::record::Record;
use openfloor_domain::Millis;
use openfloor_projector::project_records;
use openfloor_store::{EventMeta, Store, StoredView};

/// The event's directory entry and every record of its log.
pub async fn load_event(store: &Store, event: EventId) -> anyhow::Result<(EventMeta, Vec<Record>)> {
    let meta = store
        .directory
        .get(event)
        .await?
        .with_context(|| format!("no event {event} in this store"))?;
    let records = store.log.read_event(meta.log()).await?;
    Ok((meta, records))
}

/// The views as of `at` (inclusive; `None`: now), from `records` alone.
pub fn replay_records(event: EventId, records: &[Record], at: Option<Millis>) -> StoredView {
    let included: Vec<&Record> = records
        .iter()
        .filter(|r| at.is_none_or(|t| r.at() <= t))
        .collect();
    project_records(event, included.iter().copied(), included.len() as u64)
}

/// `{"guest": …, "host": …}`, the two views verbatim.
pub fn views_document(view: &StoredView) -> String {
    format!(
        r#"{{"guest":{},"host":{}}}"#,
        String::from_utf8_lossy(&view.guest.json),
        String::from_utf8_lossy(&view.host.json)
    )
}

/// Parses a point in time: milliseconds since the epoch, or RFC 3339
/// (`2026-11-22T14:03:00Z`).
pub fn parse_time(s: &str) -> anyhow::Result<Millis> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).with_context(|| {
        format!(
            "{s:?} is neither milliseconds since the epoch \
             nor an RFC 3339 time like 2026-11-22T14:03:00Z"
        )
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    match u64::try_from(ms) {
        Ok(ms) => Ok(ms),
        Err(_) => bail!("{s:?} is too far in the future"),
    }
}

/// Formats milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn format_time(ms: Millis) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}
