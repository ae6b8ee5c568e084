//! What the DynamoDB backend reads and writes, counted in the code.
//!
//! DynamoDB bills by bytes: a read unit is 4 KB read with strong
//! consistency (two units of 4 KB with eventual consistency), a write unit
//! is 1 KB written. The stand-in's consumed-capacity figures mean nothing,
//! so the store counts requests, items and bytes itself and derives the
//! units from them, the way DynamoDB rounds: reads per request (a query's
//! items are summed, then rounded up), writes per item. A paged query is
//! counted as one request; its rounding is off by at most one unit per
//! page.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;

/// How a read was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    Strong,
    Eventual,
}

/// Running totals; cheap to update from any task.
#[derive(Debug, Default)]
pub struct Meter {
    read_requests: AtomicU64,
    items_read: AtomicU64,
    bytes_read: AtomicU64,
    /// In half units, so that eventually consistent reads stay integers.
    read_half_units: AtomicU64,
    write_requests: AtomicU64,
    items_written: AtomicU64,
    bytes_written: AtomicU64,
    write_units: AtomicU64,
    object_reads: AtomicU64,
    object_bytes_read: AtomicU64,
    object_writes: AtomicU64,
    object_bytes_written: AtomicU64,
}

/// A copy of the totals; subtract two to get what happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub read_requests: u64,
    pub items_read: u64,
    pub bytes_read: u64,
    pub read_half_units: u64,
    pub write_requests: u64,
    pub items_written: u64,
    pub bytes_written: u64,
    pub write_units: u64,
    /// S3 (projection states): billed per request, whatever the size.
    pub object_reads: u64,
    pub object_bytes_read: u64,
    pub object_writes: u64,
    pub object_bytes_written: u64,
}

impl Usage {
    /// Read units (4 KB strongly consistent each).
    pub fn read_units(&self) -> f64 {
        self.read_half_units as f64 / 2.0
    }
}

impl std::ops::Sub for Usage {
    type Output = Usage;

    fn sub(self, before: Usage) -> Usage {
        Usage {
            read_requests: self.read_requests - before.read_requests,
            items_read: self.items_read - before.items_read,
            bytes_read: self.bytes_read - before.bytes_read,
            read_half_units: self.read_half_units - before.read_half_units,
            write_requests: self.write_requests - before.write_requests,
            items_written: self.items_written - before.items_written,
            bytes_written: self.bytes_written - before.bytes_written,
            write_units: self.write_units - before.write_units,
            object_reads: self.object_reads - before.object_reads,
            object_bytes_read: self.object_bytes_read - before.object_bytes_read,
            object_writes: self.object_writes - before.object_writes,
            object_bytes_written: self.object_bytes_written - before.object_bytes_written,
        }
    }
}

const READ_UNIT_BYTES: u64 = 4096;
const WRITE_UNIT_BYTES: u64 = 1024;

impl Meter {
    /// One read request that returned `items` (none: a miss, still billed
    /// the minimum).
    pub fn read<'a>(&self, items: impl IntoIterator<Item = &'a Item>, consistency: Consistency) {
        let (count, bytes) = items
            .into_iter()
            .fold((0, 0), |(n, b), item| (n + 1, b + item_bytes(item)));
        let units = bytes.div_ceil(READ_UNIT_BYTES).max(1);
        let half_units = match consistency {
            Consistency::Strong => 2 * units,
            Consistency::Eventual => units,
        };
        self.read_requests.fetch_add(1, Ordering::Relaxed);
        self.items_read.fetch_add(count, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        self.read_half_units
            .fetch_add(half_units, Ordering::Relaxed);
        // On the store call's span (an event of it, in a trace): what this
        // call cost.
        tracing::debug!(
            items = count,
            bytes,
            read_units = half_units as f64 / 2.0,
            "dynamodb read"
        );
    }

    /// One item written (or refused by its condition, which is billed as
    /// a write of the item all the same).
    pub fn wrote(&self, item: &Item) {
        let bytes = item_bytes(item);
        self.write_requests.fetch_add(1, Ordering::Relaxed);
        self.items_written.fetch_add(1, Ordering::Relaxed);
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        let units = bytes.div_ceil(WRITE_UNIT_BYTES).max(1);
        self.write_units.fetch_add(units, Ordering::Relaxed);
        tracing::debug!(items = 1, bytes, write_units = units, "dynamodb write");
    }

    /// One item deleted (billed as a write of at least one unit; the
    /// deleted item's size is not known here).
    pub fn deleted(&self) {
        self.write_requests.fetch_add(1, Ordering::Relaxed);
        self.write_units.fetch_add(1, Ordering::Relaxed);
    }

    /// One S3 object read (a projection state's piece) of `bytes`.
    pub fn object_read(&self, bytes: usize) {
        self.object_reads.fetch_add(1, Ordering::Relaxed);
        self.object_bytes_read
            .fetch_add(bytes as u64, Ordering::Relaxed);
        tracing::debug!(bytes, "s3 read");
    }

    /// One S3 object written, of `bytes`.
    pub fn object_written(&self, bytes: usize) {
        self.object_writes.fetch_add(1, Ordering::Relaxed);
        self.object_bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
        tracing::debug!(bytes, "s3 write");
    }

    pub fn usage(&self) -> Usage {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        Usage {
            read_requests: get(&self.read_requests),
            items_read: get(&self.items_read),
            bytes_read: get(&self.bytes_read),
            read_half_units: get(&self.read_half_units),
            write_requests: get(&self.write_requests),
            items_written: get(&self.items_written),
            bytes_written: get(&self.bytes_written),
            write_units: get(&self.write_units),
            object_reads: get(&self.object_reads),
            object_bytes_read: get(&self.object_bytes_read),
            object_writes: get(&self.object_writes),
            object_bytes_written: get(&self.object_bytes_written),
        }
    }
}

type Item = HashMap<String, AttributeValue>;

/// An item's size as DynamoDB counts it: each attribute's name plus its
/// value (strings and binaries by their bytes, numbers by about one byte
/// per two digits plus one).
pub fn item_bytes(item: &Item) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_bytes(value))
        .sum()
}

fn value_bytes(value: &AttributeValue) -> u64 {
    match value {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::N(n) => (n.len() as u64).div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| (n.len() as u64).div_ceil(2) + 1).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|x| 1 + value_bytes(x)).sum::<u64>(),
        AttributeValue::M(m) => 3 + item_bytes(m) + m.len() as u64,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(body: usize) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S("e#1".into())),
            ("body".to_owned(), AttributeValue::S("x".repeat(body))),
        ])
    }

    #[test]
    fn reads_are_billed_per_request_by_4_kb_and_writes_per_item_by_1_kb() {
        let meter = Meter::default();
        // A miss still costs one unit; eventual consistency halves it.
        meter.read([], Consistency::Strong);
        meter.read([&item(10)], Consistency::Eventual);
        // Two items of a query are summed before rounding: 2 × 3 KB = 2 units.
        meter.read([&item(3000), &item(3000)], Consistency::Strong);
        meter.wrote(&item(1500));
        let usage = meter.usage();
        assert_eq!(usage.read_requests, 3);
        assert_eq!(usage.items_read, 3);
        assert_eq!(usage.read_units(), 1.0 + 0.5 + 2.0);
        assert_eq!(usage.bytes_written, 2 + 3 + 4 + 1500);
        assert_eq!(usage.write_units, 2);
        let later = meter.usage();
        assert_eq!((later - usage), Usage::default());
    }
}
