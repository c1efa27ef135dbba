//! A checkpoint file mapped into memory: parsed once, read without copying the file.

use std::collections::HashMap;
use std::path::Path;

use safetensors::SafeTensors;

use super::kinds::{self, file_entry, Recorded};
use super::load::{load_entries, Values};
use super::{EntrySpec, KindSource, LoadOptions, LoadReport, KINDS_KEY};
use crate::{CheckpointError, Module, Result};

/// A checkpoint file mapped into memory and parsed.
pub struct CheckpointFile {
    path: String,
    mmap: memmap2::Mmap,
}

impl CheckpointFile {
    /// Maps `path` (no copy of the tensor data is made) and checks that it parses.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let io = |source| CheckpointError::Io {
            path: name.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; artifex writes checkpoints by atomic rename, so a file
        // being read is never modified in place by us.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let this = Self { path: name, mmap };
        this.parse()?;
        Ok(this)
    }

    /// The path it was opened from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file size in bytes.
    pub fn len(&self) -> usize {
        self.mmap.len()
    }

    /// True for an empty file (which never parses).
    pub fn is_empty(&self) -> bool {
        self.mmap.is_empty()
    }

    /// The parsed view of the file.
    pub fn parse(&self) -> Result<SafeTensors<'_>> {
        parse_bytes(&self.path, &self.mmap)
    }

    /// The header's `__metadata__` (empty when the file has none).
    pub fn metadata(&self) -> Result<HashMap<String, String>> {
        let (_, meta) =
            SafeTensors::read_metadata(&self.mmap).map_err(|e| corrupt(&self.path, e))?;
        Ok(meta.metadata().clone().unwrap_or_default())
    }

    /// Every entry's path, kind, shape and dtype, sorted by path. The kinds are those the
    /// file recorded when it was saved from a model; a file that records none (see
    /// [`kind_source`](Self::kind_source)) gets [`guess_kind`](super::guess_kind)'s guesses.
    pub fn specs(&self) -> Result<Vec<EntrySpec>> {
        let mut specs = self.entries(&self.parse()?)?;
        specs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(specs)
    }

    /// Whether the kinds of [`specs`](Self::specs) were recorded from the model at save time
    /// or are guessed from the keys' names.
    pub fn kind_source(&self) -> Result<KindSource> {
        Ok(match self.recorded_kinds()? {
            Some(_) => KindSource::Recorded,
            None => KindSource::Guessed,
        })
    }

    /// The kinds the file recorded (`None` when it records none, or none readable).
    fn recorded_kinds(&self) -> Result<Option<Recorded>> {
        Ok(self
            .metadata()?
            .get(KINDS_KEY)
            .and_then(|v| kinds::decode(v)))
    }

    /// The entries of the parsed file, in the file's order.
    fn entries(&self, tensors: &SafeTensors<'_>) -> Result<Vec<EntrySpec>> {
        let recorded = self.recorded_kinds()?;
        Ok(tensors
            .iter()
            .map(|(name, view)| {
                file_entry(name, view.shape().to_vec(), view.dtype(), recorded.as_ref())
            })
            .collect())
    }

    /// Loads this file into `module` (see [`load`](super::load)). Each entry is copied from the
    /// map into the model's variable in bounded chunks whose pages are released right after,
    /// so the peak memory stays near the model's size even for files of many gigabytes.
    pub fn load_into<M: Module>(&self, module: &M, options: &LoadOptions) -> Result<LoadReport> {
        let tensors = self.parse()?;
        let views: Vec<_> = tensors.iter().collect();
        let specs = self.entries(&tensors)?;
        let base = self.mmap.as_ptr() as usize;
        load_entries(
            module,
            &self.path,
            &specs,
            options,
            |i| Values::from_view(&views[i].1),
            |bytes: &[u8]| self.release(bytes.as_ptr() as usize - base, bytes.len()),
        )
    }

    /// Drops the pages of `len` bytes at `offset` from this process's resident set; a later
    /// read faults them in again from the file.
    #[cfg(unix)]
    fn release(&self, offset: usize, len: usize) {
        // SAFETY: the map is a read-only shared file mapping, so MADV_DONTNEED only drops
        // clean pages that are re-read from the (unmodified) file on the next access; every
        // reference into the map stays valid. Failure (e.g. unsupported) is harmless.
        let _ = unsafe {
            self.mmap
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
        };
    }

    #[cfg(not(unix))]
    fn release(&self, _offset: usize, _len: usize) {}
}

/// Parses `bytes` as safetensors; any problem is a [`CheckpointError::Corrupt`] naming `path`.
pub(crate) fn parse_bytes<'a>(path: &str, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| corrupt(path, e).into())
}

fn corrupt(path: &str, e: safetensors::SafeTensorError) -> CheckpointError {
    CheckpointError::Corrupt {
        path: path.to_string(),
        reason: e.to_string(),
    }
}
