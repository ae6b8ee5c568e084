//! The records table's DynamoDB Stream: how the projector learns that an
//! event has new records.
//!
//! On Lambda, an event source mapping reads the stream and invokes the
//! projector function with batches of changes; nothing of the API's has to
//! outlive its response for a vote to reach the views (a Lambda is frozen
//! the moment it answers). On one machine (`--backend aws`), [`StreamReader`]
//! reads the same stream the same way (DescribeStream, GetShardIterator,
//! GetRecords), so the in-process projector is fed exactly as the Lambda is.

use std::collections::BTreeMap;

use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, ShardIteratorType};
use openfloor_domain::ids::EventId;
use openfloor_domain::record::Record;
use openfloor_store::{StoreError, StoreResult, StreamBatches, Touched, Trigger};
use serde::Deserialize;

use crate::{sdk_error, Aws};

/// The most changes one GetRecords call returns (DynamoDB Streams' limit).
const MAX_RECORDS_PER_CALL: i32 = 1000;

/// The API's trigger on AWS: nothing to do. Appending a record to the
/// records table is what puts the news on the table's stream, in the same
/// write; no message has to leave after the response (a Lambda is frozen
/// once it has answered, and a task left running then may never run).
pub struct RecordsStreamTrigger;

impl Trigger for RecordsStreamTrigger {
    fn notify(&self, _event: EventId) {}
}

/// The event a records-table partition key (`{event}#{shard}`) belongs to.
pub fn event_of_partition(pk: &str) -> Option<EventId> {
    pk.split_once('#')?.0.parse().ok()
}

/// The record in a stream change's new image (its `body` attribute), if it
/// is one of `event`'s. A change without it (a stream that carries keys
/// only) or with a damaged one is projected from the log instead.
pub fn record_of_image(event: EventId, body: Option<&str>) -> Option<Record> {
    let record: Record = match serde_json::from_str(body?) {
        Ok(record) => record,
        Err(error) => {
            tracing::warn!(%event, %error, "a streamed record cannot be read; reading the log");
            return None;
        }
    };
    (record.event == event).then_some(record)
}

/// Where a shard's reading has got to.
#[derive(Debug, Clone)]
struct ShardCursor {
    /// The iterator for the next GetRecords; `None` once the shard is
    /// closed and read to its end.
    iterator: Option<String>,
    /// The last sequence number read, to resume after an expired iterator.
    last: Option<String>,
    /// Where the shard was first read from, to start again there when an
    /// iterator expires before anything was read.
    start: ShardIteratorType,
}

/// Reads the records table's stream, shard by shard, from where it was
/// opened on.
pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    shards: BTreeMap<String, ShardCursor>,
    /// When to look for new shards again (DescribeStream is limited to
    /// 10 calls a second per account, and new shards are rare).
    next_discovery: tokio::time::Instant,
}

/// How often the shard list is read again when no shard has closed (a
/// closing shard is what announces new ones, and triggers a look at once).
const DISCOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

impl StreamReader {
    /// Opens the records table's stream. Shards open now are read from
    /// their latest change on (what came before is the start-up sweep's to
    /// catch up); shards that appear later are read from their start.
    pub async fn open(aws: &Aws) -> StoreResult<Self> {
        Self::open_at(aws, ShardIteratorType::Latest).await
    }

    /// Opens the records table's stream at the oldest change it still holds
    /// (DynamoDB keeps 24 hours), as an event source mapping set to
    /// `TRIM_HORIZON` starts.
    pub async fn from_start(aws: &Aws) -> StoreResult<Self> {
        Self::open_at(aws, ShardIteratorType::TrimHorizon).await
    }

    async fn open_at(aws: &Aws, start: ShardIteratorType) -> StoreResult<Self> {
        let table = aws
            .dynamo
            .describe_table()
            .table_name(&aws.settings.records_table)
            .send()
            .await
            .map_err(|e| sdk_error("describing the records table", e))?;
        let arn = table
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| {
                StoreError::unavailable_msg(format!(
                    "the records table {} has no stream",
                    aws.settings.records_table
                ))
            })?
            .to_owned();
        let mut reader = Self {
            client: aws.streams.clone(),
            arn,
            shards: BTreeMap::new(),
            next_discovery: tokio::time::Instant::now() + DISCOVERY_INTERVAL,
        };
        reader.discover(start).await?;
        Ok(reader)
    }

    /// Adds shards not seen yet, starting them at `start`.
    async fn discover(&mut self, start: ShardIteratorType) -> StoreResult<()> {
        let mut from: Option<String> = None;
        loop {
            let described = self
                .client
                .describe_stream()
                .stream_arn(&self.arn)
                .set_exclusive_start_shard_id(from.take())
                .send()
                .await
                .map_err(|e| sdk_error("describing the records stream", e))?;
            let Some(description) = described.stream_description() else {
                return Ok(());
            };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if self.shards.contains_key(id) {
                    continue;
                }
                let iterator = self.iterator(id, start.clone(), None).await?;
                self.shards.insert(
                    id.to_owned(),
                    ShardCursor {
                        iterator,
                        last: None,
                        start: start.clone(),
                    },
                );
            }
            match description.last_evaluated_shard_id() {
                Some(last) => from = Some(last.to_owned()),
                None => return Ok(()),
            }
        }
    }

    async fn iterator(
        &self,
        shard: &str,
        kind: ShardIteratorType,
        after: Option<&str>,
    ) -> StoreResult<Option<String>> {
        let out = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(after.map(str::to_owned))
            .send()
            .await
            .map_err(|e| sdk_error("getting a shard iterator", e))?;
        Ok(out.shard_iterator().map(str::to_owned))
    }

    /// Reads what every shard has now (one GetRecords per open shard) and
    /// says which events were touched. A shard whose read fails is logged
    /// and read again on the next call, from where it was; the other
    /// shards' changes are returned all the same, so no change that was
    /// read is ever dropped.
    pub async fn poll(&mut self) -> StoreResult<Vec<Touched>> {
        // New shards (DynamoDB rolls them over about every four hours, each
        // as its parent closes) are read from their start: all of their
        // changes are new.
        if tokio::time::Instant::now() >= self.next_discovery {
            self.discover(ShardIteratorType::TrimHorizon).await?;
            self.next_discovery = tokio::time::Instant::now() + DISCOVERY_INTERVAL;
        }
        let mut touched = Vec::new();
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        for id in ids {
            if let Err(error) = self.poll_shard(&id, &mut touched).await {
                tracing::warn!(
                    shard = %id,
                    error = %openfloor_store::cause_chain(&error),
                    "reading a shard of the records stream failed; trying again next time"
                );
            }
        }
        Ok(touched)
    }

    /// One GetRecords on shard `id`, adding what it touched to `touched`.
    async fn poll_shard(&mut self, id: &str, touched: &mut Vec<Touched>) -> StoreResult<()> {
        let Some(iterator) = self.shards[id].iterator.clone() else {
            return Ok(()); // closed and read to the end
        };
        let read = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(MAX_RECORDS_PER_CALL)
            .send()
            .await;
        let out = match read {
            Ok(out) => out,
            Err(error) => {
                let restart = match error.code() {
                    // The iterator is only good for 15 minutes: resume after
                    // the last change read, or where the shard was started.
                    Some("ExpiredIteratorException") => {
                        let cursor = &self.shards[id];
                        Some(match &cursor.last {
                            Some(last) => {
                                (ShardIteratorType::AfterSequenceNumber, Some(last.clone()))
                            }
                            None => (cursor.start.clone(), None),
                        })
                    }
                    // What was not read is older than the stream keeps (24
                    // hours): read what is left; the sweep repairs the rest.
                    Some("TrimmedDataAccessException") => {
                        Some((ShardIteratorType::TrimHorizon, None))
                    }
                    // Anything else (throttling, a timeout): the same
                    // iterator is still good.
                    _ => None,
                };
                if let Some((kind, after)) = restart {
                    let fresh = self.iterator(id, kind, after.as_deref()).await?;
                    if let Some(cursor) = self.shards.get_mut(id) {
                        cursor.iterator = fresh;
                    }
                }
                return Err(sdk_error("reading the records stream", error));
            }
        };
        let cursor = self.shards.get_mut(id).expect("listed above");
        for record in out.records() {
            if let Some(position) = record.dynamodb().and_then(|c| c.sequence_number()) {
                cursor.last = Some(position.to_owned());
            }
            touched.extend(touched_of(record));
        }
        cursor.iterator = out.next_shard_iterator().map(str::to_owned);
        if cursor.iterator.is_none() {
            // Closed and read to its end: its children are there now.
            self.next_discovery = tokio::time::Instant::now();
        }
        Ok(())
    }
}

/// The appended record a stream change reports, if it is one: records are
/// written once; a removal is the time to live expiring an event, which
/// needs no projection.
fn touched_of(record: &aws_sdk_dynamodbstreams::types::Record) -> Option<Touched> {
    let change = record.dynamodb()?;
    let position = change.sequence_number()?;
    if record.event_name() != Some(&OperationType::Insert) {
        return None;
    }
    let event = change
        .keys()
        .and_then(|keys| keys.get("pk"))
        .and_then(|pk| match pk {
            AttributeValue::S(pk) => event_of_partition(pk),
            _ => None,
        })?;
    let text = |name: &str| match change.new_image()?.get(name) {
        Some(AttributeValue::S(text)) => Some(text.as_str()),
        _ => None,
    };
    Some(Touched {
        event,
        position: position.to_owned(),
        created_at: change
            .approximate_creation_date_time()
            .and_then(|at| u64::try_from(at.to_millis().ok()?).ok()),
        record: record_of_image(event, text("body")),
        traceparent: text("trace").map(str::to_owned),
    })
}

/// What the records stream's event source mapping sends its failure
/// destination (the projector's queue) when it gives up on a batch: where
/// the batch is in the stream.
#[derive(Debug, Clone, Deserialize)]
pub struct FailedBatch {
    #[serde(rename = "DDBStreamBatchInfo")]
    pub batch: BatchInfo,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub stream_arn: String,
}

/// Whether stream sequence number `a` comes after `b` (both are decimal
/// numbers of up to 40 digits, written without leading zeros).
fn after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

/// GetRecords calls one re-read may make: a batch is at most 10,000
/// changes (the mapping's largest), 1,000 a call; empty answers on the
/// way count too.
const REREAD_CALLS: usize = 64;

/// Reads a given-up batch's changes again from the records stream.
pub struct StreamRereader {
    client: aws_sdk_dynamodbstreams::Client,
}

impl StreamRereader {
    pub fn new(aws: &Aws) -> Self {
        Self {
            client: aws.streams.clone(),
        }
    }

    async fn read(&self, batch: &BatchInfo) -> StoreResult<Vec<Touched>> {
        let mut iterator = self
            .client
            .get_shard_iterator()
            .stream_arn(&batch.stream_arn)
            .shard_id(&batch.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(&batch.start_sequence_number)
            .send()
            .await
            .map_err(|e| sdk_error("finding a given-up batch in the records stream", e))?
            .shard_iterator()
            .map(str::to_owned);
        let mut touched = Vec::new();
        for _ in 0..REREAD_CALLS {
            let Some(current) = iterator.take() else {
                return Ok(touched);
            };
            let out = self
                .client
                .get_records()
                .shard_iterator(current)
                .limit(MAX_RECORDS_PER_CALL)
                .send()
                .await
                .map_err(|e| sdk_error("reading a given-up batch again", e))?;
            for record in out.records() {
                let Some(position) = record.dynamodb().and_then(|c| c.sequence_number()) else {
                    continue;
                };
                if after(position, &batch.end_sequence_number) {
                    return Ok(touched);
                }
                touched.extend(touched_of(record));
                if position == batch.end_sequence_number {
                    return Ok(touched);
                }
            }
            iterator = out.next_shard_iterator().map(str::to_owned);
        }
        Err(StoreError::unavailable_msg(format!(
            "the given-up batch of shard {} did not end within {REREAD_CALLS} reads",
            batch.shard_id
        )))
    }
}

#[async_trait::async_trait]
impl StreamBatches for StreamRereader {
    async fn reread(&self, notice: &str) -> Option<StoreResult<Vec<Touched>>> {
        let failed: FailedBatch = serde_json::from_str(notice).ok()?;
        Some(self.read(&failed.batch).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(after("1000", "999"));
        assert!(!after("999", "1000"));
        assert!(!after(
            "4421584500000000017450439091",
            "4421584500000000017450439091"
        ));
        assert!(after(
            "4421584500000000017450439092",
            "4421584500000000017450439091"
        ));
    }

    #[test]
    fn a_given_up_batch_is_read_from_the_mappings_failure_record() {
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../services/lambda/fixtures/dynamodb-stream-failure.json"
        );
        let notice = std::fs::read_to_string(fixture).unwrap();
        let failed: FailedBatch = serde_json::from_str(&notice).unwrap();
        assert_eq!(failed.batch.shard_id, "SHARD");
        assert_eq!(failed.batch.start_sequence_number, "START");
        assert_eq!(failed.batch.end_sequence_number, "END");
        assert!(serde_json::from_str::<FailedBatch>(r#"{"command":"sweep"}"#).is_err());
    }

    #[test]
    fn partition_keys_name_their_event() {
        let event: EventId = "01JD0000000000000000000001".parse().unwrap();
        assert_eq!(event_of_partition(&format!("{event}#3")), Some(event));
        assert_eq!(event_of_partition("not-an-event#3"), None);
        assert_eq!(event_of_partition("no-shard"), None);
    }
}
