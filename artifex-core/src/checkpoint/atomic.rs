//! Crash-safe file replacement: write a temp file beside the target, fsync, rename, fsync dir.
//!
//! Temp files are named `.NAME.tmp-PID-N`, and the writer holds an exclusive advisory lock
//! (`flock`) on its temp file until the rename. A process killed mid-write (SIGKILL, power loss)
//! leaves its temp file behind; it never replaces the target, nothing reads it, and the next
//! save of the same target removes it: a temp file nobody holds a lock on is stale (the kernel
//! drops a dead process's locks, whatever its PID namespace or host). The PID in the name only
//! makes names unique; it decides nothing.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{CheckpointError, Result};

/// Replaces `path` with what `write` puts into a temporary file in the same directory.
///
/// Readers see either the old file or the complete new one; on any error the old file is left
/// untouched and the temporary file removed. Stale temp files of `path` left by dead
/// processes are removed first.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<()> {
    write_atomically_with(path, true, write)
}

/// [`write_atomically`], with the fsyncs of the file and its directory only when `durable`
/// (without them, a power loss soon after may lose the new file; readers still never see a
/// partial one).
pub fn write_atomically_with(
    path: &Path,
    durable: bool,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<()> {
    let io = |source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    };
    remove_stale_temps(path);
    // Held until this function returns: marks the temp file as live to other cleaners.
    let (tmp, _claim) = claim_temp(path).map_err(io)?;
    let result = (|| {
        write(&tmp)?;
        if !durable {
            return std::fs::rename(&tmp, path);
        }
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)?;
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into())
}

/// `.NAME.tmp-PID-N` beside the target: hidden, unique per process and call.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(
        ".{}.tmp-{}-{n}",
        file_name(path),
        std::process::id()
    ))
}

/// Whether `entry` is a temp name `.NAME.tmp-...` of `name` (files: `.NAME.tmp-PID-N`,
/// step directories: `.NAME.tmp-PID`).
pub(crate) fn is_temp_of(entry: &str, name: &str) -> bool {
    entry
        .strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix(".tmp-"))
        .is_some_and(|rest| !rest.is_empty())
}

/// Creates a new temp file for `path` and takes an exclusive lock on it; the lock lives as
/// long as the returned handle.
///
/// A cleaner may lock and delete the file in the instant between its creation and our lock;
/// so once locked, we check that the name still leads to our file, and start over with a new
/// name if it does not. After that check no cleaner can take the file away.
fn claim_temp(path: &Path) -> std::io::Result<(PathBuf, File)> {
    let mut attempts = 0;
    loop {
        let tmp = temp_path(path);
        let file = File::options().write(true).create_new(true).open(&tmp)?;
        lock_temp(&file)?;
        if still_named(&tmp, &file) {
            return Ok((tmp, file));
        }
        attempts += 1;
        if attempts == 8 {
            return Err(std::io::Error::other(
                "temp files keep disappearing (another process removes them)",
            ));
        }
    }
}

#[cfg(unix)]
fn still_named(tmp: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(tmp), file.metadata()) {
        (Ok(named), Ok(ours)) => named.dev() == ours.dev() && named.ino() == ours.ino(),
        _ => false,
    }
}

#[cfg(unix)]
fn lock_temp(file: &File) -> std::io::Result<()> {
    file.lock()
}

/// Elsewhere file locks are mandatory (Windows): a lock would stop our own writer's second
/// handle, so temps are not locked there and never judged abandoned (a crash leaves its temp).
#[cfg(not(unix))]
fn lock_temp(_file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn still_named(tmp: &Path, _file: &File) -> bool {
    tmp.exists()
}

/// Whether the temp file at `path` is abandoned: nobody holds its lock.
#[cfg(unix)]
fn is_abandoned(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    // Our probe lock is released when `file` is dropped.
    !matches!(file.try_lock(), Err(TryLockError::WouldBlock))
}

#[cfg(not(unix))]
fn is_abandoned(_path: &Path) -> bool {
    false
}

/// Removes the abandoned temp files of `path`. Best effort: errors are ignored.
fn remove_stale_temps(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = file_name(path);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if is_temp_of(&entry_name, &name) && is_abandoned(&entry.path()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised() {
        let tmp = temp_path(Path::new("/x/model.safetensors"));
        let name = tmp.file_name().map(|n| n.to_string_lossy().into_owned());
        assert!(name.is_some_and(|n| is_temp_of(&n, "model.safetensors")));
        assert!(is_temp_of(".step-00000005.tmp-42", "step-00000005"));
        assert!(!is_temp_of("model.safetensors", "model.safetensors"));
        assert!(!is_temp_of(".model.safetensors.tmp-", "model.safetensors"));
        assert!(!is_temp_of(
            ".other.safetensors.tmp-1-0",
            "model.safetensors"
        ));
    }

    #[test]
    fn a_locked_temp_is_live_and_an_unlocked_one_abandoned() {
        let dir = std::env::temp_dir().join(format!("artifex-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (tmp, claim) = claim_temp(&dir.join("m.safetensors")).expect("claim");
        assert!(
            !is_abandoned(&tmp),
            "a locked temp belongs to a live writer"
        );
        drop(claim);
        assert!(is_abandoned(&tmp), "unlocked: abandoned");
        let _ = std::fs::remove_dir_all(dir);
    }
}
