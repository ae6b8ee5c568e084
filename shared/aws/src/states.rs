//! Projection states on AWS: each event's folded state between projections
//! (see [`ProjectionStates`]), so that a projector Lambda, whose memory may
//! be gone at its next invocation, reads only what is new.
//!
//! The state's pieces (its head, and its toggle chunks) are S3 objects,
//! written once and never changed: S3 charges per request, not per byte,
//! and a large event's state is megabytes. Which pieces make the current
//! version is said by one small item of the views table (`StateItem`,
//! under `{event}#state`), written with a condition on the version it
//! replaces: that write is what makes a version current, and of two
//! projectors storing the same version, one wins and the other loads the
//! winner's and applies its records again.
//!
//! A version's objects sit under a prefix of their own (a fresh ULID per
//! store), so a projector that loses the race never overwrites the
//! winner's pieces. Pieces a new version no longer needs are deleted after
//! the item has moved on; a projector reading the old version just then
//! finds one missing (`NoSuchKey`: the projector may list the bucket, or S3
//! would answer 403) and loads again. A piece missing from a version that
//! stays current means the state is lost; it is then rebuilt from the log.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, StreamExt, TryStreamExt};
use openfloor_domain::fold::EventState;
use openfloor_domain::ids::EventId;
use openfloor_domain::stored_state::StoredHead;
use openfloor_domain::toggles::ChunkEntries;
use openfloor_store::{KeptState, ProjectionStates, StateStamp, StoreError, StoreResult};
use serde::{Deserialize, Serialize};

use crate::dynamo::{from_item, s, to_item, DynamoStore};
use crate::meter::Consistency;
use crate::sdk_error;

/// The first byte of every stored piece: the encoding's version. A piece
/// written by another version of openfloor is refused as unreadable, never
/// misread.
const FORMAT: u8 = 1;
/// Pieces read or written at once.
const CONCURRENT_PIECES: usize = 16;
/// Loads of a state that keeps being replaced while it is read.
const LOAD_ATTEMPTS: usize = 3;

/// The item that says which pieces make an event's current state.
#[derive(Serialize, Deserialize)]
struct StateItem {
    /// The partition key: `{event}#state`.
    event: String,
    version: u64,
    /// The store (a ULID) that wrote the head; its object is
    /// `states/{event}/{store}/head`.
    head: String,
    /// Per toggle chunk, the store that wrote it (its object is
    /// `states/{event}/{store}/{index}`), or "" for a chunk never written
    /// (empty).
    chunks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
}

fn item_key(event: EventId) -> String {
    format!("{event}#state")
}

fn head_object(event: EventId, store: &str) -> String {
    format!("states/{event}/{store}/head")
}

fn chunk_object(event: EventId, store: &str, index: usize) -> String {
    format!("states/{event}/{store}/{index}")
}

/// The stamp of a loaded or stored item: its version, then the head's
/// store, then each chunk's.
fn stamp_of(item: &StateItem) -> StateStamp {
    StateStamp {
        version: item.version,
        pieces: std::iter::once(item.head.clone())
            .chain(item.chunks.iter().cloned())
            .collect(),
    }
}

fn encode(value: &impl Serialize) -> StoreResult<Vec<u8>> {
    let mut bytes = vec![FORMAT];
    postcard::to_io(value, &mut bytes)
        .map_err(|e| StoreError::corrupt("encoding a projection state", e))?;
    Ok(bytes)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> StoreResult<T> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => postcard::from_bytes(rest)
            .map_err(|e| StoreError::corrupt(format!("decoding {what}"), e)),
        _ => Err(StoreError::corrupt_msg(format!(
            "{what} is not in this version's format"
        ))),
    }
}

/// Why a piece could not be read.
enum Missing {
    /// Gone: a newer version replaced it while it was being read.
    Replaced,
    Failed(StoreError),
}

impl From<StoreError> for Missing {
    fn from(error: StoreError) -> Self {
        Missing::Failed(error)
    }
}

impl DynamoStore {
    fn bucket(&self) -> StoreResult<(&aws_sdk_s3::Client, &str)> {
        match (&self.s3, &self.states_bucket) {
            (Some(client), Some(bucket)) => Ok((client, bucket)),
            _ => Err(StoreError::unavailable_msg(
                "no bucket is configured for projection states",
            )),
        }
    }

    async fn get_piece(&self, key: String) -> Result<Vec<u8>, Missing> {
        let (client, bucket) = self.bucket()?;
        let out = match client.get_object().bucket(bucket).key(&key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Err(Missing::Replaced)
            }
            Err(e) => return Err(sdk_error(format!("reading state piece {key}"), e).into()),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::unavailable(format!("reading state piece {key}"), e))?
            .to_vec();
        self.meter.object_read(bytes.len());
        Ok(bytes)
    }

    async fn put_piece(&self, key: String, bytes: Vec<u8>) -> StoreResult<()> {
        let (client, bucket) = self.bucket()?;
        self.meter.object_written(bytes.len());
        client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| sdk_error(format!("storing state piece {key}"), e))?;
        Ok(())
    }

    /// Deletes pieces no version points at any more. Only storage is at
    /// stake (the bucket's lifecycle rule removes leftovers), so failures
    /// are logged.
    async fn delete_pieces(&self, event: EventId, keys: Vec<String>) {
        let Ok((client, bucket)) = self.bucket() else {
            return;
        };
        let deleted: Vec<_> = stream::iter(keys)
            .map(|key| client.delete_object().bucket(bucket).key(key).send())
            .buffer_unordered(CONCURRENT_PIECES)
            .collect()
            .await;
        let failed = deleted.iter().filter(|d| d.is_err()).count();
        if let Some(Err(error)) = deleted.into_iter().find(Result::is_err) {
            let error = aws_sdk_s3::error::DisplayErrorContext(&error);
            tracing::warn!(%event, failed, %error, "deleting replaced state pieces failed");
        }
    }

    async fn read_state_item(&self, event: EventId) -> StoreResult<Option<StateItem>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.views_table)
            .consistent_read(true)
            .key("event", s(item_key(event)))
            .send()
            .await
            .map_err(|e| sdk_error(format!("reading the state of event {event}"), e))?;
        self.meter.read(&out.item, Consistency::Strong);
        out.item
            .map(|item| from_item(item, || format!("reading the state of event {event}")))
            .transpose()
    }

    /// One attempt at loading the state `item` points at.
    async fn load_pieces(
        &self,
        event: EventId,
        item: &StateItem,
        kept: Option<&KeptState>,
    ) -> Result<(StoredHead, Vec<(usize, ChunkEntries)>), Missing> {
        let head: StoredHead = decode(
            &self.get_piece(head_object(event, &item.head)).await?,
            "a state's head",
        )?;
        // Chunks this projector's copy has as they are stored now need no
        // read (a chunk it changed without storing does).
        let known = kept.filter(|k| k.stamp.pieces.len() == item.chunks.len() + 1);
        let unstored = known
            .map(|k| k.state.unstored_toggle_chunks())
            .unwrap_or_default();
        let wanted: Vec<(usize, String)> = item
            .chunks
            .iter()
            .enumerate()
            .filter(|(index, store)| {
                !store.is_empty()
                    && known.is_none_or(|k| {
                        k.stamp.pieces[index + 1] != **store || unstored.contains(index)
                    })
            })
            .map(|(index, store)| (index, chunk_object(event, store, index)))
            .collect();
        let mut chunks: Vec<(usize, ChunkEntries)> = stream::iter(wanted)
            .map(|(index, key)| async move {
                let bytes = self.get_piece(key).await?;
                let entries: ChunkEntries = decode(&bytes, "a state's toggle chunk")?;
                Ok::<_, Missing>((index, entries))
            })
            .buffer_unordered(CONCURRENT_PIECES)
            .try_collect()
            .await?;
        // A chunk this copy changed that was never stored is empty.
        chunks.extend(
            unstored
                .into_iter()
                .filter(|&index| item.chunks.get(index).is_some_and(String::is_empty))
                .map(|index| (index, ChunkEntries::new())),
        );
        Ok((head, chunks))
    }
}

#[async_trait]
impl ProjectionStates for DynamoStore {
    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "s3", table = %self.views_table, event = %event,
    ))]
    async fn load(&self, event: EventId, kept: Option<KeptState>) -> StoreResult<KeptState> {
        let mut missing_in: Option<u64> = None;
        for _ in 0..LOAD_ATTEMPTS {
            let Some(item) = self.read_state_item(event).await? else {
                return Ok(KeptState {
                    state: EventState::new(event),
                    stamp: StateStamp::default(),
                });
            };
            // The very version this projector holds (the same pieces: a
            // state rebuilt under the same number has other ones).
            if kept.as_ref().is_some_and(|k| k.stamp == stamp_of(&item)) {
                return Ok(kept.expect("checked just above"));
            }
            if missing_in == Some(item.version) {
                // A piece of the current version is gone, and the version
                // has not moved on: the stored state is lost (its pieces
                // expired, or were deleted). It is rebuilt from the log: an
                // empty state under the current version, with no pieces,
                // which the projector folds the whole log into.
                tracing::warn!(
                    %event,
                    version = item.version,
                    "pieces of the current projection state are missing; rebuilding it from the log"
                );
                return Ok(KeptState {
                    state: EventState::new(event),
                    stamp: StateStamp {
                        version: item.version,
                        pieces: Vec::new(),
                    },
                });
            }
            match self.load_pieces(event, &item, kept.as_ref()).await {
                Ok((head, chunks)) => {
                    let kept = kept
                        .filter(|k| k.stamp.pieces.len() == item.chunks.len() + 1)
                        .map(|k| k.state);
                    let state = EventState::from_stored(head, chunks, kept).map_err(|e| {
                        StoreError::corrupt_msg(format!("the state of event {event}: {e}"))
                    })?;
                    return Ok(KeptState {
                        state,
                        stamp: stamp_of(&item),
                    });
                }
                Err(Missing::Replaced) => missing_in = Some(item.version),
                Err(Missing::Failed(error)) => return Err(error),
            }
        }
        Err(StoreError::unavailable_msg(format!(
            "the state of event {event} was replaced during each of {LOAD_ATTEMPTS} loads"
        )))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "s3", table = %self.views_table, event = %kept.state.event,
    ))]
    async fn store(&self, kept: &mut KeptState) -> StoreResult<bool> {
        let event = kept.state.event;
        let store = ulid::Ulid::new().to_string();
        let head = kept.state.stored_head();
        let count = head.toggle_chunks as usize;
        let changed = kept.state.changed_toggle_chunks();
        // Which store each chunk is now from: the old ones where the
        // layout is the same, this one where a chunk changed.
        let old = &kept.stamp.pieces;
        let mut chunks: Vec<String> = if old.len() == count + 1 {
            old[1..].to_vec()
        } else {
            vec![String::new(); count]
        };
        let mut pieces = vec![(head_object(event, &store), encode(&head)?)];
        for (index, entries) in &changed {
            chunks[*index] = store.clone();
            pieces.push((chunk_object(event, &store, *index), encode(entries)?));
        }
        let written: Vec<String> = pieces.iter().map(|(key, _)| key.clone()).collect();
        stream::iter(pieces)
            .map(|(key, bytes)| self.put_piece(key, bytes))
            .buffer_unordered(CONCURRENT_PIECES)
            .try_collect::<Vec<()>>()
            .await?;

        let item = StateItem {
            event: item_key(event),
            version: kept.stamp.version + 1,
            head: store.clone(),
            chunks,
            ttl: self.views_ttl(event).await?,
        };
        let encoded = to_item(&item, || format!("encoding the state of event {event}"))?;
        self.meter.wrote(&encoded);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.views_table)
            .set_item(Some(encoded));
        put = if kept.stamp.version == 0 {
            put.condition_expression("attribute_not_exists(event)")
        } else {
            put.condition_expression("version = :version")
                .expression_attribute_values(
                    ":version",
                    AttributeValue::N(kept.stamp.version.to_string()),
                )
        };
        match put.send().await {
            Ok(_) => {
                // The old version's pieces that this one does not reuse:
                // its head, and its chunks that changed (all of them when
                // the chunks doubled).
                let replaced: Vec<String> = match old.split_first() {
                    Some((old_head, old_chunks)) => {
                        let same_layout = old_chunks.len() == count;
                        let changed: Vec<usize> = changed.iter().map(|(i, _)| *i).collect();
                        std::iter::once(head_object(event, old_head))
                            .chain(
                                old_chunks
                                    .iter()
                                    .enumerate()
                                    .filter(|(index, store)| {
                                        !store.is_empty()
                                            && (!same_layout || changed.contains(index))
                                    })
                                    .map(|(index, store)| chunk_object(event, store, index)),
                            )
                            .collect()
                    }
                    None => Vec::new(),
                };
                kept.stamp = stamp_of(&item);
                kept.state.mark_stored();
                self.delete_pieces(event, replaced).await;
                Ok(true)
            }
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                // Either another projector's version is current, or this
                // very put was applied and the SDK's retry of it (after a
                // lost answer) found its own version there.
                let current = self.read_state_item(event).await?;
                if current.is_some_and(|c| c.head == store) {
                    kept.stamp = stamp_of(&item);
                    kept.state.mark_stored();
                    return Ok(true);
                }
                // These pieces are nobody's.
                self.delete_pieces(event, written).await;
                Ok(false)
            }
            Err(e) => Err(sdk_error(format!("storing the state of event {event}"), e)),
        }
    }
}

/// Creates the bucket if missing (development and tests: in production
/// the template in `ops/aws/` owns it, with a lifecycle rule).
pub async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str) -> StoreResult<()> {
    let mut create = client.create_bucket().bucket(bucket);
    let region = client.config().region().map(|r| r.to_string());
    if let Some(region) = region.filter(|r| r != "us-east-1") {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                    region.as_str(),
                ))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.code(),
                Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(sdk_error(format!("creating bucket {bucket}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_carry_their_format_and_refuse_another() {
        let entries: ChunkEntries = Vec::new();
        let bytes = encode(&entries).unwrap();
        assert_eq!(bytes[0], FORMAT);
        assert!(decode::<ChunkEntries>(&bytes, "a chunk").is_ok());
        let mut other = bytes.clone();
        other[0] = FORMAT + 1;
        assert!(decode::<ChunkEntries>(&other, "a chunk").is_err());
    }
}
