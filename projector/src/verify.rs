//! Verify: recompute an event's views from its log and compare them with
//! the stored ones, difference by difference. Used by the operators'
//! `verify` command and by the projector's `verify` queue command on AWS.

use std::collections::BTreeMap;
use std::sync::Arc;

use openfloor_domain::clock::{Clock as _, SystemClock};
use openfloor_domain::ids::EventId;
use openfloor_store::{DamagedRecord, EventMeta, Store, StoreResult, StoredView};
use serde_json::Value;

use crate::project_records;

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
    /// Records of the log that cannot be read back: the recomputed views
    /// skip them (as the projector does), and no repair can bring them
    /// back; only a backup can.
    pub damaged: Vec<DamagedRecord>,
    /// Whether `--repair` rewrote the views.
    pub repaired: bool,
}

/// Recomputes `meta`'s views from its log and compares them with the stored
/// ones; with `repair`, writes the recomputed views over wrong ones.
pub async fn verify_event(
    store: &Store,
    meta: &EventMeta,
    repair: bool,
) -> StoreResult<Verification> {
    let read = store.log.read_salvaged(meta.log()).await?;
    store.damage.read_whole(meta.id, &read.damaged);
    let recomputed = project_records(meta.id, &read.records, read.stored());
    let mut problems = Vec::new();
    // Views that cannot be read (damaged, or parts gone) are a difference
    // to report and repair, not a reason to stop.
    let stored = match store.views.get(meta.id).await {
        Ok(stored) => stored,
        Err(error) => {
            problems.push(format!(
                "the stored views cannot be read: {}",
                openfloor_store::cause_chain(&error)
            ));
            None
        }
    };
    match &stored {
        None if !problems.is_empty() => {}
        None => problems.push("no stored view".to_owned()),
        Some(stored) => {
            if stored.records > recomputed.records {
                problems.push(format!(
                    "the stored view folds {} records but the log holds only {}: \
                     records are missing from the log",
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
    crate::metrics::verified(problems.len(), repair);
    let repaired = repair && !problems.is_empty();
    if repaired {
        // Made now: the host's "updated … ago" counts from the repair.
        let repaired = StoredView {
            projected_at: SystemClock.now_ms(),
            ..recomputed.clone()
        };
        store.views.replace(meta.id, Arc::new(repaired)).await?;
    }
    Ok(Verification {
        event: meta.id,
        log_records: recomputed.records,
        view_records: stored.map(|s| s.records),
        problems,
        damaged: read.damaged,
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
                        "{view} view: question {id} is {slist}[{spos}] in the view, \
                         {list}[{pos}] from the log"
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
