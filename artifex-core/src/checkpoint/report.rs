//! What a checkpoint load found: missing, unexpected and mismatched entries.

use std::fmt;

use candle_core::DType;

/// An entry present in both model and file with a different shape or dtype.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// State path.
    pub path: String,
    /// The model's shape.
    pub expected_shape: Vec<usize>,
    /// The file's shape.
    pub found_shape: Vec<usize>,
    /// The model's dtype.
    pub expected_dtype: DType,
    /// The file's dtype (as safetensors names it).
    pub found_dtype: String,
}

/// An entry of the file that the model does not have, with the closest model path.
#[derive(Clone, Debug, PartialEq)]
pub struct Unexpected {
    /// The file's key.
    pub path: String,
    /// The model path it most likely meant, if one is close.
    pub suggestion: Option<String>,
}

/// The outcome of a load: every problem, each with its path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Paths that were loaded.
    pub loaded: Vec<String>,
    /// Model paths absent from the file.
    pub missing: Vec<String>,
    /// File keys absent from the model.
    pub unexpected: Vec<Unexpected>,
    /// Entries whose shape differs.
    pub shape_mismatches: Vec<Mismatch>,
    /// Entries whose dtype differs (no silent precision change).
    pub dtype_mismatches: Vec<Mismatch>,
    /// Entries loaded with a dtype conversion (only under
    /// [`DtypePolicy::ConvertFloats`](super::DtypePolicy::ConvertFloats)); not a problem.
    pub converted: Vec<Mismatch>,
}

impl LoadReport {
    /// True when the file matched the model exactly.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.shape_mismatches.is_empty()
            && self.dtype_mismatches.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  loaded: {} entries", self.loaded.len())?;
        for m in &self.missing {
            writeln!(f, "  missing: {m}")?;
        }
        for u in &self.unexpected {
            match &u.suggestion {
                Some(s) => writeln!(f, "  unexpected: {} (did you mean {s}?)", u.path)?,
                None => writeln!(f, "  unexpected: {}", u.path)?,
            }
        }
        for m in &self.shape_mismatches {
            writeln!(
                f,
                "  shape mismatch: {}: model {:?}, file {:?}",
                m.path, m.expected_shape, m.found_shape
            )?;
        }
        for m in &self.dtype_mismatches {
            writeln!(
                f,
                "  dtype mismatch: {}: model {}, file {}",
                m.path,
                m.expected_dtype.as_str(),
                m.found_dtype
            )?;
        }
        if !self.dtype_mismatches.is_empty() {
            writeln!(
                f,
                "  (dtype changes are refused; LoadOptions::with_dtype_conversion() converts float entries)"
            )?;
        }
        for m in &self.converted {
            writeln!(
                f,
                "  converted: {}: file {} -> model {}",
                m.path,
                m.found_dtype,
                m.expected_dtype.as_str()
            )?;
        }
        Ok(())
    }
}
