//! An advisory lock on a checkpoint directory, so two training processes never write into the
//! same one.
//!
//! The lock is an exclusive `flock` on `DIR/.lock`, held for as long as the [`RunLock`] lives.
//! The kernel releases it when the process ends, however it ends, so a crashed run never
//! leaves a stale lock behind. The file also records who holds it (PID, host, start time) so
//! the process that is refused can name the holder.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{CheckpointError, Result, TrainError};

/// The lock file's name inside a checkpoint directory.
pub const LOCK_FILE: &str = ".lock";

/// A held lock on a checkpoint directory (released on drop).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `dir` (created if missing) without waiting: if another process (or
    /// another `RunLock` in this one) holds it, the error names the holder.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| CheckpointError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(TrainError::DirectoryInUse {
                    dir: dir.display().to_string(),
                    holder: describe_holder(holder.trim()),
                }
                .into());
            }
            Err(TryLockError::Error(e)) => return Err(io(&path)(e).into()),
        }
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let record = format!(
            "pid={} host={} started={started}\n",
            std::process::id(),
            host_name()
        );
        (|| {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(record.as_bytes())
        })()
        .map_err(io(&path))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `pid=1 host=h started=T` as `process 1 on host h, started 12 s ago`.
fn describe_holder(record: &str) -> String {
    let field = |key: &str| {
        record
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    };
    let (Some(pid), Some(host)) = (field("pid"), field("host")) else {
        return "another process (it has not recorded its PID yet)".into();
    };
    let age = field("started")
        .and_then(|t| t.parse::<u64>().ok())
        .and_then(|t| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
            now.checked_sub(t)
        })
        .map(|s| format!(", started {s} s ago"))
        .unwrap_or_default();
    format!("process {pid} on host {host}{age}")
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().replace(char::is_whitespace, "_"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_and_freed_on_drop() {
        let dir = std::env::temp_dir().join(format!("artifex-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = RunLock::acquire(&dir).expect("first lock");
        let err = RunLock::acquire(&dir).expect_err("second lock").to_string();
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("in use by another training run"), "{err}");
        drop(first);
        RunLock::acquire(&dir).expect("free again");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn holder_records_are_described_or_admitted_unknown() {
        assert!(describe_holder("pid=7 host=a started=0").starts_with("process 7 on host a"));
        assert!(describe_holder("").contains("has not recorded"));
    }
}
