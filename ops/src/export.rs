//! Export and import of an event's log as JSON lines, chained by hashes.
//!
//! Format (version 1), one JSON object per line:
//!
//! ```text
//! {"type":"header","format":"openfloor-export","version":1,"event":{…entry…},"prev":"…"}
//! {"type":"record","record":{…record…},"prev":"…"}   (one per record, in record-id order)
//! {"type":"end","records":N,"prev":"…"}
//! ```
//!
//! `prev` chains the lines: on the header it is SHA-256 of `openfloor-export
//! v1`; on every later line it is SHA-256 of the previous line's `prev`, a
//! newline, and the previous line's exact bytes. It is computed over bytes
//! as written, so checking needs no canonical JSON. A changed, dropped or
//! reordered line breaks the chain at the next line; a truncated file lacks
//! its `end` line (or its count). The directory entry carries the secret's
//! hash, never the secret, so the host link keeps working after an import.
//!
//! **What the chain proves, and what it does not.** The chain shows that a
//! file is whole and unchanged since its chain was computed. Anyone who
//! edits an export can compute a new chain, so an unsigned export proves
//! nothing about who wrote it. A **signed** export ends with one more line:
//!
//! ```text
//! {"type":"signature","key":"<Ed25519 public key, hex>","signature":"<hex>","prev":"…"}
//! ```
//!
//! signing the chain's last hash (so every byte before it) with the
//! operator's key. It proves the export came from the holder of that key
//! only when checked against a public key obtained some other way
//! (`--public-key`): a forger can sign with a key of their own.

use std::io::{BufRead, Write};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use openfloor_domain::ids::hex_lower;
use openfloor_domain::record::Record;
use openfloor_store::{EventMeta, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FORMAT: &str = "openfloor-export";
pub const VERSION: u32 = 1;
/// The longest line read: a record line is a few KB at most (a question of
/// 1,000 four-byte characters, JSON-escaped, is under 13 KB), so a longer
/// one is damage or an attack, and reading it whole would only cost memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Header {
        format: String,
        version: u32,
        event: EventMeta,
        prev: String,
    },
    Record {
        record: Record,
        prev: String,
    },
    End {
        records: u64,
        prev: String,
    },
    Signature {
        key: String,
        signature: String,
        prev: String,
    },
}

/// What a signature signs: the chain's hash after the end line, which
/// covers every byte of the export before the signature line.
fn signed_message(prev: &str) -> Vec<u8> {
    [
        b"openfloor-export v1 signature\n".as_slice(),
        prev.as_bytes(),
    ]
    .concat()
}

/// 32 bytes written as 64 hexadecimal digits (keys), if `text` is that.
fn key_bytes(text: &str) -> Option<[u8; 32]> {
    hex::decode(text.trim()).ok()?.try_into().ok()
}

/// Reads a public key given as 64 hexadecimal digits.
pub fn parse_public_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let bytes =
        key_bytes(text).ok_or_else(|| anyhow::anyhow!("a public key is 64 hexadecimal digits"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("not an Ed25519 public key: {e}"))
}

/// Reads a signing key: a file holding its 32-byte seed as 64 hexadecimal
/// digits (as `openfloor new-signing-key` writes it).
pub fn read_signing_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading the signing key {}: {e}", path.display()))?;
    let seed = key_bytes(&text).ok_or_else(|| {
        anyhow::anyhow!(
            "{} is not a signing key (64 hexadecimal digits)",
            path.display()
        )
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A new signing key's seed, as written to its file.
pub fn new_signing_key() -> (String, VerifyingKey) {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    (hex_lower(&key.to_bytes()), key.verifying_key())
}

/// A public key as written in exports and given to `--public-key`.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex_lower(key.as_bytes())
}

fn genesis() -> String {
    hex_lower(&Sha256::digest(b"openfloor-export v1"))
}

fn chain(prev: &str, line: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(line);
    hex_lower(&h.finalize())
}

/// Writes `meta` and `records` (sorted here by record id) as an export,
/// signed when a key is given.
pub fn write_export(
    meta: &EventMeta,
    records: &mut [Record],
    signer: Option<&SigningKey>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    records.sort_by_key(|r| r.id);
    let mut prev = genesis();
    let mut emit = |line: &Line, prev: &mut String| -> std::io::Result<()> {
        let bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        out.write_all(&bytes)?;
        out.write_all(b"\n")?;
        *prev = chain(prev, &bytes);
        Ok(())
    };
    let header = Line::Header {
        format: FORMAT.into(),
        version: VERSION,
        event: meta.clone(),
        prev: prev.clone(),
    };
    emit(&header, &mut prev)?;
    for record in records.iter() {
        let line = Line::Record {
            record: record.clone(),
            prev: prev.clone(),
        };
        emit(&line, &mut prev)?;
    }
    let end = Line::End {
        records: records.len() as u64,
        prev: prev.clone(),
    };
    emit(&end, &mut prev)?;
    if let Some(signer) = signer {
        let signature = signer.sign(&signed_message(&prev));
        let line = Line::Signature {
            key: public_key_hex(&signer.verifying_key()),
            signature: hex_lower(&signature.to_bytes()),
            prev: prev.clone(),
        };
        emit(&line, &mut prev)?;
    }
    out.flush()
}

/// Why an export was refused, naming the line (1-based).
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ExportError {
    pub line: usize,
    pub message: String,
}

/// A checked export.
#[derive(Debug)]
pub struct Export {
    pub event: EventMeta,
    pub records: Vec<Record>,
    /// The key whose valid signature the export carries, if signed. Worth
    /// something only when it is a key the reader trusts.
    pub signed_by: Option<VerifyingKey>,
}

impl Export {
    /// Refuses the export unless the trusted key signed it.
    pub fn require_signer(&self, trusted: &VerifyingKey) -> anyhow::Result<()> {
        match &self.signed_by {
            Some(key) if key == trusted => Ok(()),
            Some(key) => anyhow::bail!(
                "the export is signed by key {}, not by the trusted key {}",
                public_key_hex(key),
                public_key_hex(trusted)
            ),
            None => anyhow::bail!(
                "the export is not signed; the trusted key {} was required",
                public_key_hex(trusted)
            ),
        }
    }
}

/// Reads and checks an export completely; nothing is returned unless every
/// line is intact and the file is whole.
pub fn read_export(mut input: impl BufRead) -> Result<Export, ExportError> {
    let mut prev = genesis();
    let mut event: Option<EventMeta> = None;
    let mut records = Vec::new();
    let mut keys = std::collections::HashSet::new();
    let mut ended = false;
    let mut signed_by = None;
    let mut last_line = 0;
    let mut raw = Vec::new();
    for n in 1.. {
        let err = |message: String| ExportError { line: n, message };
        // At most one byte past the limit is read, however long the line.
        raw.clear();
        let read = std::io::Read::take(&mut input, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut raw)
            .map_err(|e| err(format!("cannot read: {e}")))?;
        if read == 0 {
            break;
        }
        if raw.last() == Some(&b'\n') {
            raw.pop();
        } else if raw.len() > MAX_LINE_BYTES {
            return Err(err(format!("longer than {MAX_LINE_BYTES} bytes")));
        }
        if raw.is_empty() {
            continue;
        }
        last_line = n;
        if signed_by.is_some() {
            return Err(err("content after the signature".into()));
        }
        let line: Line = serde_json::from_slice(&raw)
            .map_err(|e| err(format!("not a valid export line: {e}")))?;
        if ended && !matches!(line, Line::Signature { .. }) {
            return Err(err("content after the end line".into()));
        }
        let claimed = match &line {
            Line::Header { prev, .. }
            | Line::Record { prev, .. }
            | Line::End { prev, .. }
            | Line::Signature { prev, .. } => prev,
        };
        if *claimed != prev {
            return Err(err(if n == 1 {
                "the header's hash is wrong: the header was changed".into()
            } else {
                format!(
                    "the hash chain breaks here: line {} was changed, \
                     or a line before this one was removed or reordered",
                    n - 1
                )
            }));
        }
        match line {
            Line::Header {
                format,
                version,
                event: e,
                ..
            } => {
                if n != 1 || event.is_some() {
                    return Err(err("a header may only be the first line".into()));
                }
                if format != FORMAT || version != VERSION {
                    return Err(err(format!(
                        "unsupported export {format:?} version {version} \
                         (this reads {FORMAT} version {VERSION})"
                    )));
                }
                event = Some(e);
            }
            Line::Record { record, .. } => {
                let Some(e) = &event else {
                    return Err(err("a record before the header".into()));
                };
                if record.event != e.id {
                    return Err(err(format!(
                        "a record of event {} in the export of event {}",
                        record.event, e.id
                    )));
                }
                record.check().map_err(err)?;
                // One record per key: a second, different one would make
                // the import keep whichever came first.
                if !keys.insert(record.key()) {
                    return Err(err(format!(
                        "a second record with key {}",
                        record.key().as_str()
                    )));
                }
                records.push(record);
            }
            Line::End { records: count, .. } => {
                if event.is_none() {
                    return Err(err("the end line before the header".into()));
                }
                if count != records.len() as u64 {
                    return Err(err(format!(
                        "the end line counts {count} records but {} came before it",
                        records.len()
                    )));
                }
                ended = true;
            }
            Line::Signature { key, signature, .. } => {
                if !ended {
                    return Err(err("a signature before the end line".into()));
                }
                let key = parse_public_key(&key).map_err(|e| err(e.to_string()))?;
                let signature = hex::decode(&signature)
                    .ok()
                    .and_then(|b| Signature::from_slice(&b).ok())
                    .ok_or_else(|| err("the signature is not an Ed25519 signature".into()))?;
                key.verify_strict(&signed_message(&prev), &signature)
                    .map_err(|_| {
                        err(
                            "the signature does not match: the export was changed after \
                             it was signed"
                                .into(),
                        )
                    })?;
                signed_by = Some(key);
            }
        }
        prev = chain(&prev, &raw);
    }
    let Some(event) = event else {
        return Err(ExportError {
            line: 1,
            message: "empty: no header".into(),
        });
    };
    if !ended {
        return Err(ExportError {
            line: last_line + 1,
            message: "the export ends without its end line: it was truncated".into(),
        });
    }
    Ok(Export {
        event,
        records,
        signed_by,
    })
}

/// What an import did.
#[derive(Debug, PartialEq, Eq)]
pub struct Imported {
    pub event: openfloor_domain::ids::EventId,
    pub records: u64,
    /// Records that were not in the store before.
    pub new_records: u64,
    pub created_event: bool,
}

/// Imports a checked export. Idempotent: records are stored under their
/// deterministic keys, so importing twice changes nothing.
pub async fn import(store: &Store, export: Export) -> anyhow::Result<Imported> {
    let meta = export.event;
    let created_event = match store.directory.get(meta.id).await? {
        Some(existing) if existing == meta => false,
        Some(_) => anyhow::bail!(
            "event {} exists here with a different directory entry; not importing over it",
            meta.id
        ),
        None => {
            store.directory.create(&meta).await?;
            true
        }
    };
    // A record whose key is stored already must be that very record: the
    // first one stored must not silently win over different content.
    if !created_event {
        let stored: std::collections::HashMap<_, Record> = store
            .log
            .read_event(meta.log())
            .await?
            .into_iter()
            .map(|r| (r.key(), r))
            .collect();
        let conflicts: Vec<&Record> = export
            .records
            .iter()
            .filter(|r| stored.get(&r.key()).is_some_and(|s| s != *r))
            .collect();
        if let Some(first) = conflicts.first() {
            anyhow::bail!(
                "{} records of the export differ from the records stored under the same \
                 keys (the first: {}); nothing was imported",
                conflicts.len(),
                first.key().as_str()
            );
        }
    }
    let records = export.records.len() as u64;
    let mut new_records = 0;
    // Commit in chunks: bounded memory per transaction, few fsyncs.
    let mut remaining = export.records;
    while !remaining.is_empty() {
        let rest = remaining.split_off(remaining.len().min(10_000));
        new_records += store.log.append_batch(meta.log(), remaining).await?;
        remaining = rest;
    }
    Ok(Imported {
        event: meta.id,
        records,
        new_records,
        created_event,
    })
}
