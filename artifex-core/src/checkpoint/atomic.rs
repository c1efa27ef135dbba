//! Crash-safe file replacement: write a temp file beside the target, fsync, rename, fsync dir.
//!
//! Temp files are named `.NAME.tmp-PID-N`. A process killed mid-write (SIGKILL, power loss)
//! leaves its temp file behind; it never replaces the target, nothing reads it, and the next
//! save of the same target removes it once its process is gone.

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
    let tmp = temp_path(path);
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

/// The pid in a temp name `.NAME.tmp-PID-N` (or `.NAME.tmp-PID` for directories) of `name`.
pub(crate) fn temp_owner(entry: &str, name: &str) -> Option<u32> {
    let rest = entry
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix(".tmp-")?;
    let pid = rest.split('-').next()?;
    pid.parse().ok()
}

/// Whether process `pid` is known to be gone (on Linux, from `/proc`; elsewhere never, so
/// nothing is removed that might belong to a live writer).
pub(crate) fn is_dead(pid: u32) -> bool {
    let proc_root = Path::new("/proc");
    cfg!(target_os = "linux")
        && pid != std::process::id()
        && proc_root.join("self").exists()
        && !proc_root.join(pid.to_string()).exists()
}

/// Removes the temp files of `path` whose writers are dead. Best effort: errors are ignored.
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
        if temp_owner(&entry_name, &name).is_some_and(is_dead) {
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
    fn temp_names_parse_back_to_their_pid() {
        let tmp = temp_path(Path::new("/x/model.safetensors"));
        let name = tmp.file_name().map(|n| n.to_string_lossy().into_owned());
        let owner = name.and_then(|n| temp_owner(&n, "model.safetensors"));
        assert_eq!(owner, Some(std::process::id()));
        assert_eq!(
            temp_owner(".step-00000005.tmp-42", "step-00000005"),
            Some(42)
        );
        assert_eq!(
            temp_owner(".model.safetensors.tmp-x-1", "model.safetensors"),
            None
        );
        assert_eq!(temp_owner("model.safetensors", "model.safetensors"), None);
        assert!(!is_dead(std::process::id()));
    }
}
