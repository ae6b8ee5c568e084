//! The directory and log roles on DynamoDB (the views role is in
//! [`crate::views`]).
//!
//! Each table's items are a struct (`EventItem`, `RecordItem` here;
//! `ViewItem` and `ChunkItem` in [`crate::views`]) that `serde_dynamo`
//! turns into attribute maps and back, so an item's attribute names and
//! types are written down once. They are the
//! tables' contract with `ops/aws/template.yaml` and with stored data:
//! renaming a field or changing its type is a migration.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};
use openfloor_domain::ids::EventId;
use openfloor_domain::record::{Record, RecordKey, Sequence};
use openfloor_store::{
    Appended, DamagedRecord, Directory, EventLog, EventMeta, Log, Lookup, Salvaged, StoreError,
    StoreResult,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::meter::{Consistency, Meter};
use crate::{build_error, sdk_error, AwsSettings};

/// DynamoDB's item size limit is 400 KB; keep a margin for attribute names
/// and numbers.
pub const MAX_ITEM_BYTES: usize = 390 * 1024;
/// Appends of one import in flight at once (each a conditional PutItem:
/// BatchWriteItem cannot carry conditions).
const IMPORT_CONCURRENCY: usize = 16;

type Item = HashMap<String, AttributeValue>;

/// An event's directory entry in the (global) events table.
#[derive(Serialize, Deserialize)]
struct EventItem {
    /// The partition key.
    id: String,
    /// The whole [`EventMeta`] as JSON: the entry can gain fields without a
    /// table change.
    meta: String,
    /// Copies of two fields of `meta`, for operators' queries.
    region: String,
    expires_at: u64,
    /// When DynamoDB may delete the item, in seconds (see [`ttl`]).
    ttl: u64,
}

impl EventItem {
    fn new(meta: &EventMeta) -> StoreResult<Self> {
        Ok(Self {
            id: meta.id.to_string(),
            meta: to_json(meta, || format!("encoding event {}", meta.id))?,
            region: meta.region.clone(),
            expires_at: meta.expires_at,
            ttl: ttl(meta.expires_at),
        })
    }

    fn meta(&self) -> StoreResult<EventMeta> {
        from_json(&self.meta, || format!("decoding event {}", self.id))
    }
}

/// One record in the (regional) records table.
#[derive(Serialize, Deserialize)]
struct RecordItem {
    /// The partition key: `{event}#{shard}` (see [`partition`]).
    pk: String,
    /// The sort key: the record's deterministic key.
    sk: String,
    id: String,
    /// The record as JSON.
    body: String,
    /// The event's expiry, in seconds (see [`ttl`]).
    ttl: u64,
    /// The trace context (W3C `traceparent`) of the request that appended
    /// it, if it was traced: the records stream carries it to the
    /// projection, whose span links back to the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace: Option<String>,
}

impl RecordItem {
    fn new(log: EventLog, record: &Record) -> StoreResult<Self> {
        let key = record.key();
        let body = to_json(record, || format!("encoding record {}", record.id))?;
        if body.len() > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(format!(
                "record {} is {} bytes",
                record.id,
                body.len()
            )));
        }
        Ok(Self {
            pk: partition(log, key.shard(log.event, log.shards)),
            sk: key.as_str().to_owned(),
            id: record.id.to_string(),
            body,
            ttl: ttl(log.expires_at),
            trace: openfloor_telemetry::current_traceparent(),
        })
    }

    /// Decodes a record item of a whole event's read; one that cannot be
    /// decoded is named by its keys, for [`Log::read_salvaged`].
    fn salvage(item: Item) -> Result<Record, DamagedRecord> {
        let key = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .map_or_else(|| format!("(no {name})"), String::clone)
        };
        let location = format!("{} in {}", key("sk"), key("pk"));
        Self::decode(item).map_err(|error| DamagedRecord {
            location,
            error: openfloor_store::cause_chain(&error),
        })
    }

    /// Decodes a record item read from the table.
    fn decode(item: Item) -> StoreResult<Record> {
        let stored: Self = from_item(item, || "reading a record item".to_owned())?;
        from_json(&stored.body, || {
            format!("decoding record {} in {}", stored.sk, stored.pk)
        })
    }
}

/// One table item's attributes; an item that cannot be encoded is a bug here.
pub(crate) fn to_item(item: impl Serialize, context: impl FnOnce() -> String) -> StoreResult<Item> {
    serde_dynamo::to_item(item).map_err(|e| StoreError::corrupt(context(), e))
}

/// A table item read back; one that does not fit its struct is damaged.
pub(crate) fn from_item<T: DeserializeOwned>(
    item: Item,
    context: impl FnOnce() -> String,
) -> StoreResult<T> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::corrupt(context(), e))
}

fn to_json(value: &impl Serialize, context: impl FnOnce() -> String) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt(context(), e))
}

fn from_json<T: DeserializeOwned>(json: &str, context: impl FnOnce() -> String) -> StoreResult<T> {
    serde_json::from_str(json).map_err(|e| StoreError::corrupt(context(), e))
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// DynamoDB TTL is in seconds.
pub(crate) fn ttl(expires_at_ms: u64) -> u64 {
    expires_at_ms / 1000
}

fn partition(log: EventLog, shard: u16) -> String {
    format!("{}#{shard}", log.event)
}

/// Events whose expiry a store keeps (a few dozen bytes each).
const KEPT_EXPIRIES: u64 = 100_000;

pub struct DynamoStore {
    pub(crate) client: Client,
    /// What this store reads and writes (shared with [`crate::Aws`]).
    pub(crate) meter: Arc<Meter>,
    events_table: String,
    records_table: String,
    pub(crate) views_table: String,
    /// Where projection states are kept ([`crate::states`]).
    pub(crate) s3: Option<aws_sdk_s3::Client>,
    pub(crate) states_bucket: Option<String>,
    /// Each event's expiry in seconds, as the directory has it (written
    /// once, so kept): the views' time to live. Filled by every directory
    /// read and create, so a projection (which reads the entry first)
    /// never reads it again for its views.
    pub(crate) expiries: moka::sync::Cache<EventId, u64>,
}

impl DynamoStore {
    pub fn new(
        client: Client,
        s3: aws_sdk_s3::Client,
        settings: &AwsSettings,
        meter: Arc<Meter>,
    ) -> Self {
        Self {
            client,
            s3: settings.states_bucket.is_some().then_some(s3),
            states_bucket: settings.states_bucket.clone(),
            meter,
            events_table: settings.events_table.clone(),
            records_table: settings.records_table.clone(),
            views_table: settings.views_table.clone(),
            expiries: moka::sync::Cache::new(KEPT_EXPIRIES),
        }
    }

    /// Every item of one partition, strongly consistent, page after page (a
    /// page is at most 1 MB).
    async fn query_partition(&self, pk: String) -> StoreResult<Vec<Item>> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.records_table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk.clone()))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk_error(format!("querying partition {pk}"), e))?;
        self.meter.read(&items, Consistency::Strong);
        Ok(items)
    }

    async fn get_key(
        &self,
        log: EventLog,
        key: &RecordKey,
        consistency: Consistency,
    ) -> StoreResult<Option<Record>> {
        let shard = key.shard(log.event, log.shards);
        let out = self
            .client
            .get_item()
            .table_name(&self.records_table)
            .consistent_read(consistency == Consistency::Strong)
            .key("pk", s(partition(log, shard)))
            .key("sk", s(key.as_str()))
            .send()
            .await
            .map_err(|e| sdk_error(format!("reading record {key} of event {}", log.event), e))?;
        self.meter.read(&out.item, consistency);
        out.item.map(RecordItem::decode).transpose()
    }

    /// The latest record of `sequence`: one item from the top of its key
    /// range, a single request.
    async fn latest_of(
        &self,
        log: EventLog,
        sequence: &Sequence,
        consistency: Consistency,
    ) -> StoreResult<Option<Record>> {
        let shard = sequence.shard(log.event, log.shards);
        let out = self
            .client
            .query()
            .table_name(&self.records_table)
            .consistent_read(consistency == Consistency::Strong)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(partition(log, shard)))
            .expression_attribute_values(":prefix", s(sequence.prefix()))
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    format!("reading the latest of {sequence:?} in event {}", log.event),
                    e,
                )
            })?;
        let items = out.items.unwrap_or_default();
        self.meter.read(&items, consistency);
        items.into_iter().next().map(RecordItem::decode).transpose()
    }

    /// Independent point reads, issued together.
    async fn look_up(
        &self,
        log: EventLog,
        lookups: &[Lookup],
        consistency: Consistency,
    ) -> StoreResult<Vec<Option<Record>>> {
        futures::future::try_join_all(lookups.iter().map(|l| async move {
            match l {
                Lookup::Key(key) => self.get_key(log, key, consistency).await,
                Lookup::Latest(seq) => self.latest_of(log, seq, consistency).await,
            }
        }))
        .await
    }
}

#[async_trait]
impl Directory for DynamoStore {
    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.events_table, event = %meta.id,
    ))]
    async fn create(&self, meta: &EventMeta) -> StoreResult<()> {
        let item = to_item(EventItem::new(meta)?, || {
            format!("encoding the entry of event {}", meta.id)
        })?;
        self.meter.wrote(&item);
        let result = self
            .client
            .put_item()
            .table_name(&self.events_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => {
                self.expiries.insert(meta.id, ttl(meta.expires_at));
                Ok(())
            }
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Err(StoreError::AlreadyExists(format!("event {}", meta.id)))
            }
            Err(e) => Err(sdk_error(format!("creating event {}", meta.id), e)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.events_table, event = %id,
    ))]
    async fn get(&self, id: EventId) -> StoreResult<Option<EventMeta>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.events_table)
            .consistent_read(true)
            .key("id", s(id.to_string()))
            .send()
            .await
            .map_err(|e| sdk_error(format!("reading event {id}"), e))?;
        self.meter.read(&out.item, Consistency::Strong);
        let Some(item) = out.item else {
            return Ok(None);
        };
        let stored: EventItem = from_item(item, || format!("reading the entry of event {id}"))?;
        let meta = stored.meta()?;
        // The views' time to live, known now without another read.
        self.expiries.insert(id, ttl(meta.expires_at));
        Ok(Some(meta))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.events_table,
    ))]
    async fn list(&self) -> StoreResult<Vec<EventMeta>> {
        let items: Vec<Item> = self
            .client
            .scan()
            .table_name(&self.events_table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| sdk_error("listing events", e))?;
        self.meter.read(&items, Consistency::Strong);
        let mut out = items
            .into_iter()
            .map(|item| {
                from_item::<EventItem>(item, || "reading a listed event".to_owned())?.meta()
            })
            .collect::<StoreResult<Vec<_>>>()?;
        out.sort_by_key(|m| m.id);
        Ok(out)
    }
}

#[async_trait]
impl Log for DynamoStore {
    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.records_table, event = %log.event, key = %record.key(),
    ))]
    async fn append(&self, log: EventLog, record: Record) -> StoreResult<Appended> {
        let key = record.key();
        let item = to_item(RecordItem::new(log, &record)?, || {
            format!("encoding record {}", record.id)
        })?;
        self.meter.wrote(&item);
        let result = self
            .client
            .put_item()
            .table_name(&self.records_table)
            .set_item(Some(item))
            // A retry, or a lost race, lands on the same key: stored once.
            .condition_expression("attribute_not_exists(sk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Appended::Inserted),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let existing = self
                    .get_key(log, &key, Consistency::Strong)
                    .await?
                    .ok_or_else(|| {
                        StoreError::unavailable_msg(format!(
                            "record {key} reported present but not readable"
                        ))
                    })?;
                Ok(Appended::Exists(existing))
            }
            Err(e) => Err(sdk_error(
                format!("appending record {key} to event {}", log.event),
                e,
            )),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.records_table, event = %log.event, key = %key,
    ))]
    async fn get(&self, log: EventLog, key: &RecordKey) -> StoreResult<Option<Record>> {
        self.get_key(log, key, Consistency::Strong).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.records_table, event = %log.event, sequence = ?sequence,
    ))]
    async fn latest(&self, log: EventLog, sequence: &Sequence) -> StoreResult<Option<Record>> {
        self.latest_of(log, sequence, Consistency::Strong).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.records_table, event = %log.event,
        lookups = lookups.len(),
    ))]
    async fn lookup(&self, log: EventLog, lookups: &[Lookup]) -> StoreResult<Vec<Option<Record>>> {
        self.look_up(log, lookups, Consistency::Strong).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.records_table, event = %log.event,
        lookups = lookups.len(),
    ))]
    async fn lookup_recent(
        &self,
        log: EventLog,
        lookups: &[Lookup],
    ) -> StoreResult<Vec<Option<Record>>> {
        self.look_up(log, lookups, Consistency::Eventual).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.records_table, event = %log.event,
    ))]
    async fn read_event(&self, log: EventLog) -> StoreResult<Vec<Record>> {
        self.read_salvaged(log).await?.whole(log.event)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.records_table, event = %log.event,
    ))]
    async fn read_salvaged(&self, log: EventLog) -> StoreResult<Salvaged> {
        let shards = stream::iter(0..log.shards.max(1))
            .map(|shard| self.query_partition(partition(log, shard)))
            .buffer_unordered(usize::from(log.shards.max(1)).min(8))
            .try_collect::<Vec<_>>()
            .await?;
        let mut read = Salvaged::default();
        for item in shards.into_iter().flatten() {
            match RecordItem::salvage(item) {
                Ok(record) => read.records.push(record),
                Err(damaged) => read.damaged.push(damaged),
            }
        }
        Ok(read)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        backend = "dynamodb", table = %self.records_table, event = %log.event,
        records = records.len(),
    ))]
    async fn append_batch(&self, log: EventLog, records: Vec<Record>) -> StoreResult<u64> {
        let outcomes: Vec<Appended> = stream::iter(records)
            .map(|r| self.append(log, r))
            .buffer_unordered(IMPORT_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(outcomes
            .iter()
            .filter(|a| **a == Appended::Inserted)
            .count() as u64)
    }
}

/// Creates the three tables if missing (development and tests).
pub async fn create_tables(client: &Client, settings: &AwsSettings) -> StoreResult<()> {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| build_error("a key schema", e))
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| build_error("an attribute definition", e))
    };
    let tables = [
        (&settings.events_table, vec![("id", KeyType::Hash)], false),
        (
            &settings.records_table,
            vec![("pk", KeyType::Hash), ("sk", KeyType::Range)],
            true,
        ),
        (&settings.views_table, vec![("event", KeyType::Hash)], false),
    ];
    for (name, keys, stream) in tables {
        let mut create = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest);
        for (attribute, kind) in keys {
            create = create
                .attribute_definitions(attr(attribute)?)
                .key_schema(key(attribute, kind)?);
        }
        if stream {
            // The projector applies the new records themselves (reading
            // the stream costs no read units): each change carries its item.
            create = create.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(|e| build_error("a stream specification", e))?,
            );
        }
        match create.send().await {
            Ok(_) => tracing::info!(table = %name, "created table"),
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => return Err(sdk_error(format!("creating table {name}"), e)),
        }
        if name != &settings.views_table {
            let spec = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .map_err(|e| build_error("a time-to-live specification", e))?;
            if let Err(e) = client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(spec)
                .send()
                .await
            {
                // Already enabled is fine; anything else only loses expiry.
                let error = aws_sdk_dynamodb::error::DisplayErrorContext(&e);
                tracing::debug!(table = %name, %error, "time to live not set");
            }
        }
    }
    Ok(())
}
