//! The operator subcommands of the `openfloor` binary. Each works on the
//! data directory given with `--data`, like the service.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use openfloor_domain::clock::{Clock, SystemClock};
use openfloor_domain::ids::EventId;
use openfloor_store::sqlite::{SqliteStore, WriterLock};
use openfloor_store::Store;

use crate::audit::{audit, render_json_lines, render_text, SignalRules};
use crate::export::{
    import, new_signing_key, parse_public_key, public_key_hex, read_export, read_signing_key,
    write_export,
};
use crate::replay::{load_event, parse_time, replay_records, views_document};
use openfloor_projector::verify::verify_event;

#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Rebuild an event's guest and host views from its log alone and print
    /// them as {"guest": …, "host": …}.
    Replay {
        event: EventId,
        /// Replay as of this moment (inclusive): milliseconds since the
        /// epoch or RFC 3339 with any offset, e.g. 2026-11-22T14:03:00Z or
        /// 2026-11-23T04:03:00+14:00.
        #[arg(long)]
        at: Option<String>,
    },
    /// Recompute views from the log and compare with the stored ones; exit 1
    /// on any difference, or any damaged record (each is named, and the
    /// other events are verified all the same).
    Verify {
        /// The event to verify (or use --all).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        event: Option<EventId>,
        /// Verify every event in the store.
        #[arg(long)]
        all: bool,
        /// Rewrite wrong views with the recomputed ones.
        #[arg(long)]
        repair: bool,
    },
    /// Print an event's history: who (pseudonym) did what and when, with
    /// from/to for every change, vote timelines and abuse signals.
    Audit {
        event: EventId,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
        /// Window of the many-voters-one-client signal, in minutes.
        #[arg(long, default_value_t = 10)]
        window_minutes: u64,
        /// Distinct voters from one client within the window that raise it.
        #[arg(long, default_value_t = 20)]
        voters_per_client: usize,
    },
    /// Write an event's log as hash-chained JSON lines to standard output,
    /// signed with the operator's key when one is given.
    Export {
        event: EventId,
        /// Sign with the key in this file (see `new-signing-key`).
        #[arg(long, env = "OPENFLOOR_SIGNING_KEY_FILE")]
        signing_key: Option<PathBuf>,
    },
    /// Check an export (a file, or standard input) and store its event and
    /// records; importing twice changes nothing, and a record differing from
    /// the one stored under its key refuses the whole import.
    Import {
        file: Option<PathBuf>,
        /// Import only an export signed by this key (64 hex digits).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Check an export (a file, or standard input) without importing it.
    CheckExport {
        file: Option<PathBuf>,
        /// Require a signature by this key (64 hex digits).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Make a new key for signing exports: its secret goes to FILE (never
    /// overwritten; keep it private), its public key is printed, to be given
    /// to whoever checks the exports.
    NewSigningKey { file: PathBuf },
    /// Delete the records and views of expired events (retention). Export
    /// an event first to keep it.
    PurgeExpired,
}

/// Which store the commands work on.
pub enum OpsBackend {
    /// The embedded store in this directory.
    Embedded(PathBuf),
    /// Any other store (the AWS backend).
    Aws(Store),
}

fn input(file: Option<&Path>) -> anyhow::Result<Box<dyn std::io::BufRead>> {
    Ok(match file {
        Some(path) if path != Path::new("-") => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        _ => Box::new(BufReader::new(std::io::stdin())),
    })
}

impl OpsCommand {
    /// Whether the command writes to the store. A writing command needs the
    /// data directory to itself ([`WriterLock`]); the others run beside a
    /// server.
    pub fn writes(&self) -> bool {
        match self {
            OpsCommand::Verify { repair, .. } => *repair,
            OpsCommand::Import { .. } | OpsCommand::PurgeExpired => true,
            OpsCommand::Replay { .. }
            | OpsCommand::Audit { .. }
            | OpsCommand::Export { .. }
            | OpsCommand::CheckExport { .. }
            | OpsCommand::NewSigningKey { .. } => false,
        }
    }
}

pub async fn run(op: OpsCommand, backend: OpsBackend) -> anyhow::Result<ExitCode> {
    // Needs no store.
    if let OpsCommand::NewSigningKey { file } = &op {
        return new_signing_key_file(file);
    }
    if let OpsBackend::Embedded(data) = &backend {
        // Only an import may start a store (and checking an export needs
        // none); anything else on a directory without one is a mistyped
        // --data, and must not report "0 events" as if all were well.
        let needs_store = !matches!(
            op,
            OpsCommand::Import { .. } | OpsCommand::CheckExport { .. }
        );
        if needs_store && !SqliteStore::exists_in(data) {
            anyhow::bail!(
                "{} holds no openfloor store: is --data right? (nothing was created)",
                data.display()
            );
        }
    }
    // Held for the whole run: a server cannot start meanwhile either.
    let _lock = match &backend {
        OpsBackend::Embedded(data) if op.writes() => Some(WriterLock::acquire(data)?),
        _ => None,
    };
    let (sqlite, store) = match backend {
        OpsBackend::Embedded(data) => {
            let sqlite = SqliteStore::open(&data)
                .with_context(|| format!("opening the store in {}", data.display()))?;
            let store = sqlite.store();
            (Some(sqlite), store)
        }
        OpsBackend::Aws(store) => (None, store),
    };
    let mut stdout = std::io::stdout().lock();
    match op {
        OpsCommand::Replay { event, at } => {
            let at = at.as_deref().map(parse_time).transpose()?;
            let (_, records) = load_event(&store, event).await?;
            writeln!(
                stdout,
                "{}",
                views_document(&replay_records(event, &records, at))
            )?;
        }
        OpsCommand::Verify { event, all, repair } => {
            let events = if all {
                store.directory.list().await?
            } else {
                let id = event.context("name an event or use --all")?;
                vec![store
                    .directory
                    .get(id)
                    .await?
                    .with_context(|| format!("no event {id} in this store"))?]
            };
            let mut summary = verify_each(&store, &events, repair, &mut stdout).await?;
            if all {
                // Events the listing left out: their directory entries are
                // damaged (the store names them as it lists).
                for event in store.damage.events() {
                    if events.iter().all(|meta| meta.id != event) {
                        summary.damaged += 1;
                        writeln!(
                            stdout,
                            "{event}: DAMAGED: its directory entry cannot be read; \
                             the event is left out of everything until it is restored"
                        )?;
                    }
                }
            }
            writeln!(stdout, "{summary}")?;
            if !summary.passed(repair) {
                return Ok(ExitCode::FAILURE);
            }
        }
        OpsCommand::Audit {
            event,
            json,
            window_minutes,
            voters_per_client,
        } => {
            let (_, records) = load_event(&store, event).await?;
            let rules = SignalRules {
                window_ms: window_minutes.saturating_mul(60_000),
                voters_per_client: voters_per_client.max(1),
            };
            let a = audit(&records, rules);
            let mut out = String::new();
            if json {
                render_json_lines(&a, &mut out);
            } else {
                render_text(&a, &mut out);
            }
            stdout.write_all(out.as_bytes())?;
        }
        OpsCommand::Export { event, signing_key } => {
            let signer = signing_key.as_deref().map(read_signing_key).transpose()?;
            let (meta, mut records) = load_event(&store, event).await?;
            let mut out = std::io::BufWriter::new(stdout);
            write_export(&meta, &mut records, signer.as_ref(), &mut out)?;
        }
        OpsCommand::Import { file, public_key } => {
            let trusted = public_key.as_deref().map(parse_public_key).transpose()?;
            let export = read_export(input(file.as_deref())?)
                .context("the export is not intact; nothing was imported")?;
            if let Some(trusted) = &trusted {
                export
                    .require_signer(trusted)
                    .context("nothing was imported")?;
            }
            let done = import(&store, export).await?;
            writeln!(
                stdout,
                "imported event {}: {} records ({} new){}",
                done.event,
                done.records,
                done.new_records,
                if done.created_event {
                    ", event created"
                } else {
                    ""
                }
            )?;
            // Make the imported event readable at once.
            let projector = openfloor_projector::Projector::new(store.clone());
            projector.project(done.event).await?;
        }
        OpsCommand::CheckExport { file, public_key } => {
            let trusted = public_key.as_deref().map(parse_public_key).transpose()?;
            let export =
                read_export(input(file.as_deref())?).context("the export is not intact")?;
            if let Some(trusted) = &trusted {
                export.require_signer(trusted)?;
            }
            let signed = match (&export.signed_by, &trusted) {
                (Some(key), Some(_)) => {
                    format!("signed by the trusted key {}", public_key_hex(key))
                }
                (Some(key), None) => format!(
                    "signed by key {}, which proves nothing until checked against a key \
                     you trust (--public-key)",
                    public_key_hex(key)
                ),
                (None, _) => "unsigned: the file is whole and unchanged since its chain was \
                              computed, but anyone can edit an export and compute a new chain"
                    .to_owned(),
            };
            writeln!(
                stdout,
                "ok: event {} with {} records, hash chain intact; {signed}",
                export.event.id,
                export.records.len()
            )?;
        }
        OpsCommand::NewSigningKey { .. } => unreachable!("answered before opening a store"),
        OpsCommand::PurgeExpired => {
            let Some(sqlite) = sqlite else {
                writeln!(
                    stdout,
                    "nothing to do: on AWS, DynamoDB's time to live removes expired items"
                )?;
                return Ok(ExitCode::SUCCESS);
            };
            let purged = sqlite.purge_expired(SystemClock.now_ms()).await?;
            writeln!(stdout, "purged {purged} records of expired events")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `verify` found over all the events it looked at.
#[derive(Debug, Default)]
struct VerifySummary {
    events: usize,
    /// Events whose stored views differ from their log.
    differing: usize,
    /// Events with records that cannot be read back.
    damaged: usize,
    /// Events that could not be verified at all (their log unreadable).
    failed: usize,
}

impl VerifySummary {
    /// Whether `verify` succeeds: nothing damaged or unreadable (no repair
    /// mends those: only a backup does), and no differences left.
    fn passed(&self, repaired: bool) -> bool {
        self.damaged == 0 && self.failed == 0 && (self.differing == 0 || repaired)
    }
}

impl std::fmt::Display for VerifySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events verified, {} with differences",
            self.events, self.differing
        )?;
        if self.damaged > 0 || self.failed > 0 {
            write!(
                f,
                ", {} damaged, {} could not be read",
                self.damaged, self.failed
            )?;
        }
        Ok(())
    }
}

/// Verifies each of `events`, writing what it finds: one event's damage or
/// failure is named and the next is verified, so one bad event cannot hide
/// the state of the others.
async fn verify_each(
    store: &Store,
    events: &[openfloor_store::EventMeta],
    repair: bool,
    out: &mut impl Write,
) -> anyhow::Result<VerifySummary> {
    let mut summary = VerifySummary {
        events: events.len(),
        ..VerifySummary::default()
    };
    for meta in events {
        let v = match verify_event(store, meta, repair).await {
            Ok(v) => v,
            Err(error) => {
                summary.failed += 1;
                let error = openfloor_store::cause_chain(&error);
                writeln!(out, "{}: FAILED: {error}", meta.id)?;
                continue;
            }
        };
        if !v.damaged.is_empty() {
            summary.damaged += 1;
            writeln!(
                out,
                "{}: DAMAGED: {} stored record(s) cannot be read back; the views skip \
                 them (restore them from a backup)",
                v.event,
                v.damaged.len()
            )?;
            for damaged in &v.damaged {
                writeln!(out, "  - {damaged}")?;
            }
        }
        if v.problems.is_empty() {
            writeln!(out, "{}: ok ({} records)", v.event, v.log_records)?;
            continue;
        }
        summary.differing += 1;
        writeln!(out, "{}: MISMATCH", v.event)?;
        for p in &v.problems {
            writeln!(out, "  - {p}")?;
        }
        if v.repaired {
            writeln!(
                out,
                "  repaired: views rewritten from {} records",
                v.log_records
            )?;
        }
    }
    Ok(summary)
}

/// Writes a new signing key to `file` (refusing to replace one, readable by
/// its owner only) and prints its public key.
fn new_signing_key_file(file: &Path) -> anyhow::Result<ExitCode> {
    let (secret, public) = new_signing_key();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(file).with_context(|| {
        format!(
            "creating {} (an existing key is never replaced)",
            file.display()
        )
    })?;
    writeln!(out, "{secret}")?;
    println!("{}", public_key_hex(&public));
    Ok(ExitCode::SUCCESS)
}
