//! A stand-in for DynamoDB global tables, for the events directory on moto:
//! every entry written in one region is copied to the others. Entries are
//! written once and never changed (DESIGN.md, "Regions"), so copying new
//! items is all global-table replication has to do for openfloor.
//!
//! It scans each region's table on every round (fine for a development
//! directory of a few thousand events) and copies what the other regions
//! lack; [`Replicator::pause`] holds it, to show replication lag.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use openfloor_aws::{Aws, AwsSettings};
use tokio_util::sync::CancellationToken;

/// The directory's key attribute.
const KEY: &str = "id";

pub struct Replicator {
    /// Each region's DynamoDB client (signed for that region).
    regions: BTreeMap<String, Client>,
    table: String,
    paused: AtomicBool,
    /// `(destination region, id)` already copied: entries never change.
    copied: std::sync::Mutex<HashSet<(String, String)>>,
}

impl Replicator {
    /// Replicates `table` between `regions` of the endpoint (moto's server).
    pub async fn connect(endpoint: Option<&str>, regions: &[String], table: &str) -> Self {
        let mut clients = BTreeMap::new();
        for region in regions {
            let aws = Aws::connect(AwsSettings {
                region: region.clone(),
                endpoint_url: endpoint.map(str::to_owned),
                events_table: table.to_owned(),
                records_table: String::new(),
                views_table: String::new(),
                queue_name: String::new(),
                states_bucket: None,
            })
            .await;
            clients.insert(region.clone(), aws.dynamo);
        }
        Self {
            regions: clients,
            table: table.to_owned(),
            paused: AtomicBool::new(false),
            copied: std::sync::Mutex::default(),
        }
    }

    /// Holds replication (as a slow global table would) until
    /// [`Replicator::resume`].
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// One round: copies every entry a region lacks from the region that
    /// has it. Returns how many items were written.
    pub async fn copy_once(&self) -> anyhow::Result<usize> {
        let mut written = 0;
        for (source, client) in &self.regions {
            for item in self.scan(source, client).await? {
                let Some(AttributeValue::S(id)) = item.get(KEY) else {
                    continue;
                };
                for (destination, to) in &self.regions {
                    let done = (destination.clone(), id.clone());
                    if destination == source || self.copied.lock().expect("lock").contains(&done) {
                        continue;
                    }
                    let put = to
                        .put_item()
                        .table_name(&self.table)
                        .set_item(Some(item.clone()))
                        .condition_expression("attribute_not_exists(#id)")
                        .expression_attribute_names("#id", KEY)
                        .send()
                        .await;
                    match put {
                        Ok(_) => written += 1,
                        Err(error)
                            if error
                                .as_service_error()
                                .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                        Err(error) => {
                            return Err(error).context(format!("copying {id} to {destination}"))
                        }
                    }
                    self.copied.lock().expect("lock").insert(done);
                }
            }
        }
        Ok(written)
    }

    async fn scan(
        &self,
        region: &str,
        client: &Client,
    ) -> anyhow::Result<Vec<std::collections::HashMap<String, AttributeValue>>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .with_context(|| format!("scanning {} in {region}", self.table))?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Copies every `every` (unless paused) until `stop`.
    pub async fn run(&self, every: Duration, stop: CancellationToken) {
        loop {
            if !self.paused.load(Ordering::SeqCst) {
                match self.copy_once().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(items = n, "replicated directory entries"),
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "replication round failed")
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}
