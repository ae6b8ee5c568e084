//! The views role on DynamoDB, at any size.
//!
//! An event's views live in the views table under the event's id: one
//! head item (`ViewItem`) with the guard (how many records the views fold)
//! and each view's version. Views that fit beside each other in one item
//! (the usual case) are inside the head, so a poll is one `GetItem`.
//! Larger views (thousands of long questions) would exceed DynamoDB's
//! 400 KB item limit and freeze the event's views for good; they are cut
//! into parts (`ChunkItem`) of the same table, under keys that name the
//! view, its record count and its version, and the head says how many
//! parts each view has. Reading such views is the head plus one
//! `BatchGetItem`.
//!
//! Parts are written before the head that points at them and never change
//! afterwards, so a reader never sees a torn view. Once a new head is in
//! place, the parts of the head it replaced are deleted; a reader that read
//! the old head just before finds a part missing, and reads again.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use futures::future::try_join_all;
use openfloor_domain::ids::EventId;
use openfloor_domain::view::RenderedView;
use openfloor_store::{StoreError, StoreResult, StoredView, ViewVersions, Views};
use serde::{Deserialize, Serialize};

use crate::dynamo::{from_item, s, to_item, DynamoStore, MAX_ITEM_BYTES};
use crate::meter::Consistency;
use crate::{build_error, sdk_error};

/// The bytes of one part: well under the item limit, with room for its key.
const PART_BYTES: usize = 350 * 1024;
/// Parts asked for in one `BatchGetItem`: its answer holds at most 16 MB.
const PARTS_PER_BATCH: usize = 40;
/// The first pause before asking again for parts DynamoDB left unread,
/// doubled each time up to the second constant.
const UNPROCESSED_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
const UNPROCESSED_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);
/// Reads of a view that keeps being replaced while it is read, before the
/// read gives up (each replacement is a newer projection; three in a row
/// within one read is a sign of trouble, not of a busy event).
const READ_ATTEMPTS: usize = 3;

type Item = HashMap<String, AttributeValue>;

/// The two views of an event.
#[derive(Clone, Copy)]
enum Which {
    Guest,
    Host,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Guest => "guest",
            Which::Host => "host",
        }
    }
}

/// An event's head item: the guard, and each view inside it or the number
/// of its parts.
#[derive(Serialize, Deserialize)]
struct ViewItem {
    /// The partition key: the event's id.
    event: String,
    /// How many records the views fold: the guard of [`Views::put`].
    records: u64,
    /// Binary (`B`) attributes: the rendered JSON is served as bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    guest: Option<Vec<u8>>,
    guest_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    guest_parts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    host: Option<Vec<u8>>,
    host_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host_parts: Option<u32>,
    /// When DynamoDB may delete it: the event's expiry, in seconds (absent
    /// for views stored before views expired, and for an event the
    /// directory does not know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
    /// When the projector made the views, in milliseconds (absent for views
    /// stored before this was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    projected_at: Option<u64>,
    /// How many questions the event has been asked (absent: 0, as in views
    /// stored before this was kept).
    #[serde(default, skip_serializing_if = "is_zero")]
    questions: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The views' versions, for polls that may be answered `304`: a few
/// hundred bytes beside a head of up to 390 KB (DynamoDB bills a read by
/// the whole item's size). Written before the head, with the same guard,
/// so it is never older than the head.
#[derive(Serialize, Deserialize)]
struct VersionsItem {
    /// The partition key: `{event}#versions`.
    event: String,
    records: u64,
    guest_version: String,
    host_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    projected_at: Option<u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    questions: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
}

fn versions_key(event: EventId) -> String {
    format!("{event}#versions")
}

/// One part of a large view.
#[derive(Serialize, Deserialize)]
struct ChunkItem {
    /// The partition key: see [`part_key`].
    event: String,
    #[serde(with = "serde_bytes")]
    part: Vec<u8>,
    /// As its head's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
}

/// A part's key: the event, the view, the record count and version of the
/// views it belongs to, and its index. Two heads point at the same parts
/// only if they hold the same views.
fn part_key(event: &str, which: Which, records: u64, version: &str, index: u32) -> String {
    format!("{event}#{}#{records}#{version}#{index}", which.name())
}

impl ViewItem {
    fn version(&self, which: Which) -> &str {
        match which {
            Which::Guest => &self.guest_version,
            Which::Host => &self.host_version,
        }
    }

    fn parts(&self, which: Which) -> u32 {
        match which {
            Which::Guest => self.guest_parts,
            Which::Host => self.host_parts,
        }
        .unwrap_or(0)
    }

    /// The keys of every part this head points at.
    fn part_keys(&self) -> Vec<String> {
        [Which::Guest, Which::Host]
            .into_iter()
            .flat_map(|which| {
                (0..self.parts(which)).map(move |index| {
                    part_key(&self.event, which, self.records, self.version(which), index)
                })
            })
            .collect()
    }
}

/// How `view` is stored: its head, and its parts if it is too large to sit
/// inside the head.
fn layout(event: EventId, view: &StoredView, ttl: Option<u64>) -> (ViewItem, Vec<ChunkItem>) {
    let event = event.to_string();
    let inline = view.guest.json.len() + view.host.json.len() <= MAX_ITEM_BYTES;
    let mut head = ViewItem {
        event: event.clone(),
        records: view.records,
        guest: None,
        guest_version: view.guest.version.clone(),
        guest_parts: None,
        host: None,
        host_version: view.host.version.clone(),
        host_parts: None,
        ttl,
        projected_at: (view.projected_at > 0).then_some(view.projected_at),
        questions: view.questions,
    };
    if inline {
        head.guest = Some(view.guest.json.clone());
        head.host = Some(view.host.json.clone());
        return (head, Vec::new());
    }
    let mut chunks = Vec::new();
    for (which, rendered) in [(Which::Guest, &view.guest), (Which::Host, &view.host)] {
        let parts: Vec<&[u8]> = rendered.json.chunks(PART_BYTES).collect();
        let count = u32::try_from(parts.len()).expect("fewer than 2^32 parts");
        match which {
            Which::Guest => head.guest_parts = Some(count),
            Which::Host => head.host_parts = Some(count),
        }
        chunks.extend(parts.into_iter().zip(0..).map(|(part, index)| ChunkItem {
            event: part_key(&event, which, view.records, &rendered.version, index),
            part: part.to_vec(),
            ttl,
        }));
    }
    (head, chunks)
}

/// `put` on the views' guard: only if no stored item (a head, or the
/// versions) says it folds more records than `records`.
fn never_regressing(
    put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    records: u64,
) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
    put.condition_expression("attribute_not_exists(event) OR #records <= :records")
        .expression_attribute_names("#records", "records")
        .expression_attribute_values(":records", AttributeValue::N(records.to_string()))
}

impl DynamoStore {
    /// Stores `view`: parts first, then the head (`guarded`: only if no
    /// stored view folds more records), then the replaced head's parts go.
    /// Says whether the head was written.
    async fn store_views(
        &self,
        event: EventId,
        view: &StoredView,
        guarded: bool,
    ) -> StoreResult<bool> {
        let ttl = self.views_ttl(event).await?;
        if !self.put_versions(event, view, ttl, guarded).await? {
            // A view folding more records is stored: so would the head's
            // guard say.
            return Ok(false);
        }
        let (head, chunks) = layout(event, view, ttl);
        try_join_all(chunks.iter().map(|chunk| self.put_part(chunk))).await?;
        let item = to_item(&head, || format!("encoding the views of event {event}"))?;
        self.meter.wrote(&item);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.views_table)
            .set_item(Some(item))
            .return_values(ReturnValue::AllOld);
        if guarded {
            put = never_regressing(put, view.records);
        }
        match put.send().await {
            Ok(out) => {
                if let Some(old) = out.attributes {
                    let old: ViewItem =
                        from_item(old, || format!("reading the old views of event {event}"))?;
                    let kept = head.part_keys();
                    let stale: Vec<String> = old
                        .part_keys()
                        .into_iter()
                        .filter(|key| !kept.contains(key))
                        .collect();
                    self.delete_parts(event, &stale).await;
                }
                Ok(true)
            }
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                // A view folding more records is in place; these parts
                // (keyed by this view's record count) are nobody's.
                self.delete_parts(event, &head.part_keys()).await;
                Ok(false)
            }
            Err(e) => Err(sdk_error(format!("storing the views of event {event}"), e)),
        }
    }

    /// Stores the versions item of `view` (`guarded`: unless one of a view
    /// folding more records is there); says whether it was stored.
    async fn put_versions(
        &self,
        event: EventId,
        view: &StoredView,
        ttl: Option<u64>,
        guarded: bool,
    ) -> StoreResult<bool> {
        let versions = VersionsItem {
            event: versions_key(event),
            records: view.records,
            guest_version: view.guest.version.clone(),
            host_version: view.host.version.clone(),
            projected_at: (view.projected_at > 0).then_some(view.projected_at),
            questions: view.questions,
            ttl,
        };
        let item = to_item(&versions, || {
            format!("encoding the versions of event {event}")
        })?;
        self.meter.wrote(&item);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.views_table)
            .set_item(Some(item));
        if guarded {
            put = never_regressing(put, view.records);
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(sdk_error(
                format!("storing the view versions of event {event}"),
                e,
            )),
        }
    }

    /// The views' time to live: their event's expiry (DynamoDB then deletes
    /// them, parts and all, as it deletes the records). Directory entries
    /// never change; the entry is read here only if this instance has not
    /// read it yet (a projection has, just before).
    pub(crate) async fn views_ttl(&self, event: EventId) -> StoreResult<Option<u64>> {
        if let Some(ttl) = self.expiries.get(&event) {
            return Ok(Some(ttl));
        }
        let Some(meta) = openfloor_store::Directory::get(self, event).await? else {
            return Ok(None);
        };
        let ttl = crate::dynamo::ttl(meta.expires_at);
        self.expiries.insert(event, ttl);
        Ok(Some(ttl))
    }

    async fn put_part(&self, chunk: &ChunkItem) -> StoreResult<()> {
        let item = to_item(chunk, || format!("encoding view part {}", chunk.event))?;
        self.meter.wrote(&item);
        self.client
            .put_item()
            .table_name(&self.views_table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_error(format!("storing view part {}", chunk.event), e))?;
        Ok(())
    }

    /// Deletes parts no head points at any more. Only storage is at stake:
    /// a part left behind is never read, so a failure is logged, not raised.
    async fn delete_parts(&self, event: EventId, keys: &[String]) {
        let deletes = keys.iter().map(|key| {
            self.meter.deleted();
            self.client
                .delete_item()
                .table_name(&self.views_table)
                .key("event", s(key.clone()))
                .send()
        });
        if let Err(error) = try_join_all(deletes).await {
            tracing::warn!(%event, %error, "deleting replaced view parts failed; they stay unread");
        }
    }

    /// The event's head item: the guard, the versions, and the views when
    /// they fit in it.
    async fn read_head(
        &self,
        event: EventId,
        consistency: Consistency,
    ) -> StoreResult<Option<ViewItem>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.views_table)
            .consistent_read(consistency == Consistency::Strong)
            .key("event", s(event.to_string()))
            .send()
            .await
            .map_err(|e| sdk_error(format!("reading the views of event {event}"), e))?;
        self.meter.read(&out.item, consistency);
        out.item
            .map(|item| from_item(item, || format!("reading the views of event {event}")))
            .transpose()
    }

    /// Reads the head, then the parts it points at; `None` if a part is
    /// gone (a newer head replaced it meanwhile).
    async fn read_views(
        &self,
        event: EventId,
        consistency: Consistency,
    ) -> StoreResult<Option<Option<StoredView>>> {
        let Some(mut head) = self.read_head(event, consistency).await? else {
            return Ok(Some(None));
        };
        let mut parts = self
            .read_parts(event, &head.part_keys(), consistency)
            .await?;
        let (guest, host) = (head.guest.take(), head.host.take());
        let mut body = |which: Which, inline: Option<Vec<u8>>| -> Option<Vec<u8>> {
            if let Some(json) = inline {
                return Some(json);
            }
            let mut json = Vec::new();
            for index in 0..head.parts(which) {
                let key = part_key(&head.event, which, head.records, head.version(which), index);
                json.extend(parts.remove(&key)?);
            }
            Some(json)
        };
        let (Some(guest), Some(host)) = (body(Which::Guest, guest), body(Which::Host, host)) else {
            return Ok(None);
        };
        Ok(Some(Some(StoredView {
            records: head.records,
            guest: RenderedView {
                json: guest,
                version: head.guest_version,
            },
            host: RenderedView {
                json: host,
                version: head.host_version,
            },
            projected_at: head.projected_at.unwrap_or(0),
            questions: head.questions,
        })))
    }

    /// The views, read again while a newer head replaces the parts being
    /// read. An eventually consistent read may also miss parts written just
    /// before their head: the last attempt is strongly consistent.
    async fn views_as_read(
        &self,
        event: EventId,
        consistency: Consistency,
    ) -> StoreResult<Option<Arc<StoredView>>> {
        for attempt in 1..=READ_ATTEMPTS {
            let consistency = if attempt == READ_ATTEMPTS {
                Consistency::Strong
            } else {
                consistency
            };
            if let Some(view) = self.read_views(event, consistency).await? {
                return Ok(view.map(Arc::new));
            }
        }
        Err(StoreError::unavailable_msg(format!(
            "the views of event {event} were replaced during each of {READ_ATTEMPTS} reads"
        )))
    }

    /// The parts under `keys` that exist, by key.
    async fn read_parts(
        &self,
        event: EventId,
        keys: &[String],
        consistency: Consistency,
    ) -> StoreResult<HashMap<String, Vec<u8>>> {
        let mut found = HashMap::new();
        for batch in keys.chunks(PARTS_PER_BATCH) {
            let mut pending: Vec<Item> = batch
                .iter()
                .map(|key| HashMap::from([("event".to_owned(), s(key.clone()))]))
                .collect();
            // DynamoDB may answer part of a batch and hand back the rest
            // (throttled, or over 16 MB): ask again, backing off.
            let mut pause = UNPROCESSED_BACKOFF;
            let mut first = true;
            while !pending.is_empty() {
                if !std::mem::take(&mut first) {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(UNPROCESSED_BACKOFF_MAX);
                }
                let wanted = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(consistency == Consistency::Strong)
                    .build()
                    .map_err(|e| build_error("a batch of view parts", e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.views_table, wanted)
                    .send()
                    .await
                    .map_err(|e| sdk_error(format!("reading the view parts of {event}"), e))?;
                let items = (out.responses.unwrap_or_default())
                    .remove(&self.views_table)
                    .unwrap_or_default();
                self.meter.read(&items, consistency);
                for item in items {
                    let chunk: ChunkItem =
                        from_item(item, || format!("reading a view part of event {event}"))?;
                    found.insert(chunk.event, chunk.part);
                }
                if let Some(mut rest) = out.unprocessed_keys {
                    if let Some(rest) = rest.remove(&self.views_table) {
                        pending = rest.keys;
                    }
                }
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl Views for DynamoStore {
    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.views_table, event = %event, records = view.records,
    ))]
    async fn put(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<bool> {
        self.store_views(event, &view, true).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.views_table, event = %event,
    ))]
    async fn get(&self, event: EventId) -> StoreResult<Option<Arc<StoredView>>> {
        self.views_as_read(event, Consistency::Strong).await
    }

    /// The head item alone: for views stored in parts, a few hundred bytes
    /// instead of megabytes. (A projection expression would not make it
    /// cheaper: DynamoDB bills the whole item read.)
    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.views_table, event = %event,
    ))]
    async fn stored_records(&self, event: EventId) -> StoreResult<Option<u64>> {
        let head = self.read_head(event, Consistency::Strong).await?;
        Ok(head.map(|head| head.records))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.views_table, event = %event,
    ))]
    async fn get_recent(&self, event: EventId) -> StoreResult<Option<Arc<StoredView>>> {
        self.views_as_read(event, Consistency::Eventual).await
    }

    /// The versions item alone (eventually consistent, a few hundred
    /// bytes); views stored before it was kept are read whole.
    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.views_table, event = %event,
    ))]
    async fn recent_versions(&self, event: EventId) -> StoreResult<Option<ViewVersions>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.views_table)
            .key("event", s(versions_key(event)))
            .send()
            .await
            .map_err(|e| sdk_error(format!("reading the view versions of event {event}"), e))?;
        self.meter.read(&out.item, Consistency::Eventual);
        match out.item {
            Some(item) => {
                let versions: VersionsItem = from_item(item, || {
                    format!("reading the view versions of event {event}")
                })?;
                Ok(Some(ViewVersions {
                    records: versions.records,
                    guest: versions.guest_version,
                    host: versions.host_version,
                    projected_at: versions.projected_at.unwrap_or(0),
                    questions: versions.questions,
                }))
            }
            None => Ok(self
                .views_as_read(event, Consistency::Eventual)
                .await?
                .map(|view| (&*view).into())),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.views_table, event = %event, records = view.records,
    ))]
    async fn replace(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<()> {
        self.store_views(event, &view, false).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(records: u64, guest_bytes: usize, host_bytes: usize) -> StoredView {
        let rendered = |len: usize, version: &str| RenderedView {
            json: (0..len).map(|i| (i % 251) as u8).collect(),
            version: version.into(),
        };
        StoredView {
            records,
            guest: rendered(guest_bytes, "0123456789abcdef"),
            host: rendered(host_bytes, "fedcba9876543210"),
            projected_at: 1_700_000_000_000,
            questions: 2,
        }
    }

    #[test]
    fn views_that_fit_stay_inside_the_head() {
        let event: EventId = "01JD0000000000000000000001".parse().unwrap();
        let (head, chunks) = layout(event, &view(3, 1000, 2000), None);
        assert!(chunks.is_empty());
        assert_eq!(head.guest.as_ref().map(Vec::len), Some(1000));
        assert!(head.part_keys().is_empty());
    }

    #[test]
    fn large_views_are_cut_into_parts_that_join_back_exactly() {
        let event: EventId = "01JD0000000000000000000001".parse().unwrap();
        let stored = view(7, 3 * PART_BYTES + 5, PART_BYTES);
        let (head, chunks) = layout(event, &stored, Some(1_800_000_000));
        assert_eq!((head.guest_parts, head.host_parts), (Some(4), Some(1)));
        assert!(std::iter::once(head.ttl)
            .chain(chunks.iter().map(|c| c.ttl))
            .all(|ttl| ttl == Some(1_800_000_000)));
        assert!(head.guest.is_none() && head.host.is_none());
        let keys: Vec<&str> = chunks.iter().map(|c| c.event.as_str()).collect();
        assert_eq!(head.part_keys(), keys);
        assert!(chunks.iter().all(|c| c.part.len() <= PART_BYTES));
        let guest: Vec<u8> = chunks[..4].iter().flat_map(|c| c.part.clone()).collect();
        assert_eq!(guest, stored.guest.json);
        assert_eq!(
            keys[0],
            format!("{event}#guest#7#0123456789abcdef#0"),
            "parts are named by view, record count, version and index"
        );
    }
}
