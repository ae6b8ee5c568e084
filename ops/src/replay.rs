//! Replay (rebuild views from the log) and verify (compare with the stored
//! views). Both fold with the projector's own function, so a replay is by
//! construction what the live projector renders.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context};
use openfloor_domain::ids::EventId;
use openfloor_domain::record::Record;
use openfloor_domain::Millis;
use openfloor_projector::project_records;
use openfloor_store::{EventMeta, Store, StoredView};
use serde_json::Value;

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

/// What `verify` found for one event.
#[derive(Debug)]
pub struct Verification {
    pub event: EventId,
    /// Records in the log now.
    pub log_records: u64,
    /// Records the stored view folds, if there is one.
    pub view_records: Option<u64>,
    /// Each difference, in words. Empty: the stored views are exactly what
    /// the log says.
    pub problems: Vec<String>,
    /// Whether `--repair` rewrote the views.
    pub repaired: bool,
}

/// Recomputes `meta`'s views from its log and compares them with the stored
/// ones; with `repair`, writes the recomputed views over wrong ones.
pub async fn verify_event(
    store: &Store,
    meta: &EventMeta,
    repair: bool,
) -> anyhow::Result<Verification> {
    let records = store.log.read_event(meta.log()).await?;
    let recomputed = project_records(meta.id, &records, records.len() as u64);
    let stored = store.views.get(meta.id).await?;
    let mut problems = Vec::new();
    match &stored {
        None => problems.push("no stored view".to_owned()),
        Some(stored) => {
            if stored.records > recomputed.records {
                problems.push(format!(
                    "the stored view folds {} records but the log holds only {}: records are missing from the log",
                    stored.records, recomputed.records
                ));
            } else if stored.records < recomputed.records {
                problems.push(format!(
                    "the stored view folds {} records but the log holds {}: the view is behind",
                    stored.records, recomputed.records
                ));
            }
            for (name, s, r) in [
                ("guest", &stored.guest, &recomputed.guest),
                ("host", &stored.host, &recomputed.host),
            ] {
                if s.json != r.json {
                    problems.extend(describe_differences(name, &s.json, &r.json));
                }
            }
        }
    }
    let repaired = repair && !problems.is_empty();
    if repaired {
        store
            .views
            .replace(meta.id, Arc::new(recomputed.clone()))
            .await?;
    }
    Ok(Verification {
        event: meta.id,
        log_records: recomputed.records,
        view_records: stored.map(|s| s.records),
        problems,
        repaired,
    })
}

/// Question-level differences between a stored and a recomputed view.
fn describe_differences(view: &str, stored: &[u8], recomputed: &[u8]) -> Vec<String> {
    let (Ok(stored), Ok(recomputed)) = (
        serde_json::from_slice::<Value>(stored),
        serde_json::from_slice::<Value>(recomputed),
    ) else {
        return vec![format!("{view} view: the stored view is not valid JSON")];
    };
    let mut out = Vec::new();
    if stored["event"] != recomputed["event"] {
        out.push(format!(
            "{view} view: event is {} in the view, {} from the log",
            stored["event"], recomputed["event"]
        ));
    }
    let index = |v: &Value| -> BTreeMap<String, (String, usize, Value)> {
        let mut m = BTreeMap::new();
        for list in ["questions", "answered"] {
            for (pos, q) in v[list].as_array().into_iter().flatten().enumerate() {
                m.insert(
                    q["id"].as_str().unwrap_or("?").to_owned(),
                    (list.to_owned(), pos, q.clone()),
                );
            }
        }
        m
    };
    let (s, r) = (index(&stored), index(&recomputed));
    for (id, (list, pos, q)) in &r {
        match s.get(id) {
            None => out.push(format!(
                "{view} view: question {id} is missing (the log has it in {list})"
            )),
            Some((slist, spos, sq)) => {
                if slist != list || spos != pos {
                    out.push(format!(
                        "{view} view: question {id} is {slist}[{spos}] in the view, {list}[{pos}] from the log"
                    ));
                }
                for field in [
                    "text",
                    "author",
                    "votes",
                    "asked_at",
                    "answered_at",
                    "hidden",
                ] {
                    if sq.get(field) != q.get(field) {
                        out.push(format!(
                            "{view} view: question {id} {field} is {} in the view, {} from the log",
                            sq.get(field).unwrap_or(&Value::Null),
                            q.get(field).unwrap_or(&Value::Null)
                        ));
                    }
                }
            }
        }
    }
    for id in s.keys().filter(|id| !r.contains_key(*id)) {
        out.push(format!(
            "{view} view: question {id} is in the view but not in the log"
        ));
    }
    if out.is_empty() {
        out.push(format!(
            "{view} view: bytes differ (version {} in the view, {} from the log)",
            stored["version"], recomputed["version"]
        ));
    }
    out
}

/// Parses a point in time: milliseconds since the epoch, or RFC 3339
/// (`2026-11-22T14:03:00Z`).
pub fn parse_time(s: &str) -> anyhow::Result<Millis> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).with_context(|| {
        format!("{s:?} is neither milliseconds since the epoch nor an RFC 3339 time like 2026-11-22T14:03:00Z")
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
