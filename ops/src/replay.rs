//! Replay: rebuild views from the log, now or as of a past moment. It folds
//! with the projector's own function, so a replay is by construction what
//! the live projector renders. (Verify lives in `openfloor_projector::verify`,
//! which the AWS projector's `verify` command uses too.)

use anyhow::Context;
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
    // Any RFC 3339 offset (`Z`, `+14:00`, `-05:30`), as an operator in any
    // time zone writes it.
    let t = chrono::DateTime::parse_from_rfc3339(s).with_context(|| {
        format!(
            "{s:?} is neither milliseconds since the epoch \
             nor an RFC 3339 time like 2026-11-22T14:03:00Z or 2026-11-23T04:03:00+14:00"
        )
    })?;
    u64::try_from(t.timestamp_millis()).with_context(|| format!("{s:?} is before 1970"))
}

/// Formats milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn format_time(ms: Millis) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_with_any_offset() {
        let utc = parse_time("2026-11-22T14:03:00Z").unwrap();
        assert_eq!(parse_time("2026-11-23T04:03:00+14:00").unwrap(), utc);
        assert_eq!(parse_time("2026-11-22T08:33:00-05:30").unwrap(), utc);
        assert_eq!(parse_time(&utc.to_string()).unwrap(), utc);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("1969-12-31T23:59:59Z").is_err());
    }
}
