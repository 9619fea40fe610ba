//! One daemon per state directory, enforced by an exclusive lock on a file in it.
//!
//! The operating system releases the lock when the process dies however it dies,
//! so a killed daemon never leaves a stale lock behind (unlike a PID file).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::DaemonError;

/// Held for the daemon's lifetime; dropping it releases the lock.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    pub fn acquire(state_dir: &Path) -> Result<Self, DaemonError> {
        let path = state_dir.join("daemon.lock");
        let io = |source| DaemonError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(in_use(state_dir, &mut file)),
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

fn in_use(state_dir: &Path, file: &mut File) -> DaemonError {
    let mut pid = String::new();
    let _ = file.read_to_string(&mut pid);
    DaemonError::AlreadyRunning {
        state_dir: PathBuf::from(state_dir),
        pid: pid.trim().parse().ok(),
    }
}
