//! One writing process per data directory.
//!
//! The server holds an exclusive lock on `DATA/openfloor.lock` while it
//! runs; the operator commands that write (import, verify --repair,
//! purge-expired) take the same lock for their run. A second server, or a
//! writing command beside a running server, is refused with a clear error:
//! its writes would not reach the running server's views (it keeps them in
//! memory and projects only what it is told about). Commands that only read
//! (replay, verify, audit, export) need no lock and run beside a server.
//!
//! The lock is the operating system's (`flock` on Unix): it goes with the
//! process, so a crash never leaves a directory locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The lock file inside a data directory.
pub const LOCK_FILE: &str = "openfloor.lock";

/// Why a data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another openfloor process is writing to {0} (it holds {0}/{LOCK_FILE}); \
         stop it first, or use the running server's API"
    )]
    Held(PathBuf),
    #[error("cannot lock {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The exclusive hold of a data directory, released when dropped.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock on `data` (created if missing) without waiting.
    pub fn acquire(data: &Path) -> Result<Self, LockError> {
        let path = data.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held(data.to_path_buf())),
            Err(TryLockError::Error(source)) => Err(io(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_directory_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = WriterLock::acquire(dir.path()).unwrap();
        let refused = WriterLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(refused, LockError::Held(_)), "{refused}");
        assert!(refused.to_string().contains(LOCK_FILE), "{refused}");
        drop(held);
        WriterLock::acquire(dir.path()).expect("free again once released");
    }
}
