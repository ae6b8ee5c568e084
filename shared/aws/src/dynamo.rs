//! The directory, log and views roles on DynamoDB.

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
use openfloor_domain::view::RenderedView;
use openfloor_store::{
    Appended, Directory, EventLog, EventMeta, Log, Lookup, StoreError, StoreResult, StoredView,
    Views,
};

use crate::{build_error, sdk_error, AwsSettings};

/// DynamoDB's item size limit is 400 KB; keep a margin for attribute names
/// and numbers.
pub const MAX_ITEM_BYTES: usize = 390 * 1024;
/// Appends of one import in flight at once (each a conditional PutItem:
/// BatchWriteItem cannot carry conditions).
const IMPORT_CONCURRENCY: usize = 16;

type Item = HashMap<String, AttributeValue>;

pub struct DynamoStore {
    client: Client,
    events_table: String,
    records_table: String,
    views_table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::corrupt_msg(format!("item without string attribute {name}")))
}

fn get_n(item: &Item, name: &str) -> StoreResult<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::corrupt_msg(format!("item without number attribute {name}")))
}

fn get_b(item: &Item, name: &str) -> StoreResult<Vec<u8>> {
    item.get(name)
        .and_then(|v| v.as_b().ok())
        .map(|b| b.clone().into_inner())
        .ok_or_else(|| StoreError::corrupt_msg(format!("item without binary attribute {name}")))
}

/// DynamoDB TTL is in seconds.
fn ttl(expires_at_ms: u64) -> AttributeValue {
    n(expires_at_ms / 1000)
}

fn partition(log: EventLog, shard: u16) -> String {
    format!("{}#{shard}", log.event)
}

fn decode(item: &Item) -> StoreResult<Record> {
    serde_json::from_str(get_s(item, "body")?)
        .map_err(|e| StoreError::corrupt("decoding a record", e))
}

impl DynamoStore {
    pub fn new(client: Client, settings: &AwsSettings) -> Self {
        Self {
            client,
            events_table: settings.events_table.clone(),
            records_table: settings.records_table.clone(),
            views_table: settings.views_table.clone(),
        }
    }

    /// Every item of one partition whose sort key starts with `prefix`,
    /// strongly consistent, following `LastEvaluatedKey` to the end (a page
    /// is at most 1 MB).
    async fn query_all(&self, pk: String, prefix: Option<&str>) -> StoreResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.records_table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk.clone()))
                .set_exclusive_start_key(start.take());
            q = match prefix {
                Some(p) => q
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(p)),
                None => q.key_condition_expression("pk = :pk"),
            };
            let page = q
                .send()
                .await
                .map_err(|e| sdk_error(format!("querying partition {pk}"), e))?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }

    async fn get_key(&self, log: EventLog, key: &RecordKey) -> StoreResult<Option<Record>> {
        let shard = key.shard(log.event, log.shards);
        let out = self
            .client
            .get_item()
            .table_name(&self.records_table)
            .consistent_read(true)
            .key("pk", s(partition(log, shard)))
            .key("sk", s(key.as_str()))
            .send()
            .await
            .map_err(|e| sdk_error(format!("reading record {key} of event {}", log.event), e))?;
        out.item().map(decode).transpose()
    }
}

#[async_trait]
impl Directory for DynamoStore {
    async fn create(&self, meta: &EventMeta) -> StoreResult<()> {
        let json = serde_json::to_string(meta)
            .map_err(|e| StoreError::corrupt(format!("encoding event {}", meta.id), e))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.events_table)
            .item("id", s(meta.id.to_string()))
            .item("meta", s(json))
            .item("region", s(meta.region.clone()))
            .item("expires_at", n(meta.expires_at))
            .item("ttl", ttl(meta.expires_at))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Err(StoreError::AlreadyExists(format!("event {}", meta.id)))
            }
            Err(e) => Err(sdk_error(format!("creating event {}", meta.id), e)),
        }
    }

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
        out.item()
            .map(|item| {
                serde_json::from_str(get_s(item, "meta")?)
                    .map_err(|e| StoreError::corrupt(format!("decoding event {id}"), e))
            })
            .transpose()
    }

    async fn list(&self) -> StoreResult<Vec<EventMeta>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.events_table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("listing events", e))?;
            for item in page.items() {
                out.push(
                    serde_json::from_str(get_s(item, "meta")?)
                        .map_err(|e| StoreError::corrupt("decoding a listed event", e))?,
                );
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        out.sort_by_key(|m: &EventMeta| m.id);
        Ok(out)
    }
}

#[async_trait]
impl Log for DynamoStore {
    async fn append(&self, log: EventLog, record: Record) -> StoreResult<Appended> {
        let key = record.key();
        let body = serde_json::to_string(&record)
            .map_err(|e| StoreError::corrupt(format!("encoding record {}", record.id), e))?;
        if body.len() > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(format!(
                "record {} is {} bytes",
                record.id,
                body.len()
            )));
        }
        let shard = key.shard(log.event, log.shards);
        let result = self
            .client
            .put_item()
            .table_name(&self.records_table)
            .item("pk", s(partition(log, shard)))
            .item("sk", s(key.as_str()))
            .item("id", s(record.id.to_string()))
            .item("body", s(body))
            .item("ttl", ttl(log.expires_at))
            // A retry, or a lost race, lands on the same key: stored once.
            .condition_expression("attribute_not_exists(sk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Appended::Inserted),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let existing = self.get_key(log, &key).await?.ok_or_else(|| {
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

    async fn get(&self, log: EventLog, key: &RecordKey) -> StoreResult<Option<Record>> {
        self.get_key(log, key).await
    }

    async fn latest(&self, log: EventLog, sequence: &Sequence) -> StoreResult<Option<Record>> {
        let shard = sequence.shard(log.event, log.shards);
        let out = self
            .client
            .query()
            .table_name(&self.records_table)
            .consistent_read(true)
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
        out.items().first().map(decode).transpose()
    }

    async fn lookup(&self, log: EventLog, lookups: &[Lookup]) -> StoreResult<Vec<Option<Record>>> {
        // Independent reads: issue them together.
        futures::future::try_join_all(lookups.iter().map(|l| async move {
            match l {
                Lookup::Key(key) => self.get_key(log, key).await,
                Lookup::Latest(seq) => self.latest(log, seq).await,
            }
        }))
        .await
    }

    async fn read_event(&self, log: EventLog) -> StoreResult<Vec<Record>> {
        let shards = stream::iter(0..log.shards.max(1))
            .map(|shard| self.query_all(partition(log, shard), None))
            .buffer_unordered(usize::from(log.shards.max(1)).min(8))
            .try_collect::<Vec<_>>()
            .await?;
        shards.iter().flatten().map(decode).collect()
    }

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

fn view_item(event: EventId, view: &StoredView) -> StoreResult<Item> {
    let size = view.guest.json.len() + view.host.json.len();
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::TooLarge(format!(
            "the views of event {event} are {size} bytes"
        )));
    }
    let mut item = Item::new();
    item.insert("event".into(), s(event.to_string()));
    item.insert("records".into(), n(view.records));
    item.insert(
        "guest".into(),
        AttributeValue::B(view.guest.json.clone().into()),
    );
    item.insert("guest_version".into(), s(view.guest.version.clone()));
    item.insert(
        "host".into(),
        AttributeValue::B(view.host.json.clone().into()),
    );
    item.insert("host_version".into(), s(view.host.version.clone()));
    Ok(item)
}

#[async_trait]
impl Views for DynamoStore {
    async fn put(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<bool> {
        let result = self
            .client
            .put_item()
            .table_name(&self.views_table)
            .set_item(Some(view_item(event, &view)?))
            // The guard: never replace a view that folds more records.
            .condition_expression("attribute_not_exists(event) OR #records <= :records")
            .expression_attribute_names("#records", "records")
            .expression_attribute_values(":records", n(view.records))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(sdk_error(format!("storing the views of event {event}"), e)),
        }
    }

    async fn get(&self, event: EventId) -> StoreResult<Option<Arc<StoredView>>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.views_table)
            .consistent_read(true)
            .key("event", s(event.to_string()))
            .send()
            .await
            .map_err(|e| sdk_error(format!("reading the views of event {event}"), e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        Ok(Some(Arc::new(StoredView {
            records: get_n(item, "records")?,
            guest: RenderedView {
                json: get_b(item, "guest")?,
                version: get_s(item, "guest_version")?.to_owned(),
            },
            host: RenderedView {
                json: get_b(item, "host")?,
                version: get_s(item, "host_version")?.to_owned(),
            },
        })))
    }

    async fn replace(&self, event: EventId, view: Arc<StoredView>) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.views_table)
            .set_item(Some(view_item(event, &view)?))
            .send()
            .await
            .map_err(|e| sdk_error(format!("replacing the views of event {event}"), e))?;
        Ok(())
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
                tracing::debug!(table = %name, error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "time to live not set");
            }
        }
    }
    Ok(())
}
