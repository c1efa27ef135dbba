//! What a checkpoint load found: missing, unexpected and mismatched entries, and the
//! submodules a lenient load left untouched (re-exported by [`checkpoint`](crate::checkpoint);
//! defined here because [`CheckpointError`](super::CheckpointError) carries it).

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

/// The outcome of a load: what was loaded and every problem, each with its path.
///
/// A strict load only returns a clean report (it fails otherwise). A lenient load
/// ([`LoadOptions::lenient`](crate::checkpoint::LoadOptions::lenient)) may load part of the model, so the
/// report is `#[must_use]`: check [`is_clean`](Self::is_clean) or
/// [`unloaded_submodules`](Self::unloaded_submodules), or print it; its first line says how
/// much was loaded (`PARTIAL LOAD: loaded 2 of 10 model entries; ...`). A lenient load that
/// loads nothing at all is an error ([`CheckpointError::NothingLoaded`](crate::CheckpointError::NothingLoaded)),
/// never a report.
#[must_use = "a lenient load may have loaded only part of the model: check `is_clean()` or print the report (after a strict load, `let _ = ...` is fine)"]
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
    /// [`DtypePolicy::ConvertFloats`](crate::checkpoint::DtypePolicy::ConvertFloats)); not a problem.
    pub converted: Vec<Mismatch>,
    /// Submodules (path prefixes such as `head` or `blocks.1`) none of whose entries were
    /// loaded although other parts of the model were: they keep their initial values. Only
    /// the outermost such prefix is listed; rng state skipped under
    /// [`LoadOptions::rng_state_optional`](crate::checkpoint::LoadOptions::rng_state_optional) does not
    /// count.
    pub unloaded_submodules: Vec<String>,
}

impl LoadReport {
    /// True when the file matched the model exactly.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.shape_mismatches.is_empty()
            && self.dtype_mismatches.is_empty()
    }

    /// The model entries the load was expected to fill: loaded, missing or mismatched (rng
    /// state skipped as optional is not counted).
    pub fn model_entries(&self) -> usize {
        self.loaded.len()
            + self.missing.len()
            + self.shape_mismatches.len()
            + self.dtype_mismatches.len()
    }

    /// One line that says what happened: `loaded all 8 entries`, or `PARTIAL LOAD: loaded 2
    /// of 10 model entries; 8 missing, 1 unexpected; nothing loaded into: head, blocks.1`.
    pub fn summary(&self) -> String {
        if self.is_clean() {
            return format!("loaded all {} entries", self.loaded.len());
        }
        let mut line = format!(
            "PARTIAL LOAD: loaded {} of {} model entries; {}",
            self.loaded.len(),
            self.model_entries(),
            self.counts()
        );
        if !self.unloaded_submodules.is_empty() {
            line.push_str("; nothing loaded into: ");
            line.push_str(&self.unloaded_submodules.join(", "));
        }
        line
    }

    /// Every problem, one indented line each (submodules without a usable entry, `  missing:
    /// ...`, `  unexpected: ... (did you mean ...?)`, mismatches), without a line about what
    /// was loaded: what a failed load prints.
    pub fn problems(&self) -> Problems<'_> {
        Problems(self)
    }

    /// `3 missing, 1 unexpected, 2 shape mismatches`: the non-zero problem counts.
    fn counts(&self) -> String {
        let parts: Vec<String> = [
            (self.missing.len(), "missing"),
            (self.unexpected.len(), "unexpected"),
            (self.shape_mismatches.len(), "shape mismatched"),
            (self.dtype_mismatches.len(), "dtype mismatched"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        parts.join(", ")
    }
}

/// The problem lines of a [`LoadReport`] (see [`LoadReport::problems`]).
pub struct Problems<'a>(&'a LoadReport);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        if !r.unloaded_submodules.is_empty() {
            writeln!(
                f,
                "  no usable entry for the submodules: {}",
                r.unloaded_submodules.join(", ")
            )?;
        }
        for m in &r.missing {
            writeln!(f, "  missing: {m}")?;
        }
        for u in &r.unexpected {
            match &u.suggestion {
                Some(s) => writeln!(f, "  unexpected: {} (did you mean {s}?)", u.path)?,
                None => writeln!(f, "  unexpected: {}", u.path)?,
            }
        }
        for m in &r.shape_mismatches {
            writeln!(
                f,
                "  shape mismatch: {}: model {:?}, file {:?}",
                m.path, m.expected_shape, m.found_shape
            )?;
        }
        for m in &r.dtype_mismatches {
            writeln!(
                f,
                "  dtype mismatch: {}: model {}, file {}",
                m.path,
                m.expected_dtype.as_str(),
                m.found_dtype
            )?;
        }
        if !r.dtype_mismatches.is_empty() {
            writeln!(
                f,
                "  (dtype changes are refused; LoadOptions::with_dtype_conversion() converts float entries)"
            )?;
        }
        Ok(())
    }
}

/// The [`summary`](LoadReport::summary) line, then every problem and conversion.
impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.summary())?;
        write!(f, "{}", self.problems())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_report_says_so_on_its_first_line() {
        let report = LoadReport {
            loaded: vec!["conv.kernel".into(), "conv.bias".into()],
            missing: vec!["head.kernel".into(), "head.bias".into()],
            unexpected: vec![Unexpected {
                path: "fc.weight".into(),
                suggestion: Some("head.kernel".into()),
            }],
            unloaded_submodules: vec!["head".into()],
            ..LoadReport::default()
        };
        let text = report.to_string();
        assert_eq!(
            text.lines().next(),
            Some(
                "PARTIAL LOAD: loaded 2 of 4 model entries; 2 missing, 1 unexpected; \
                 nothing loaded into: head"
            )
        );
        assert!(text.contains("  unexpected: fc.weight (did you mean head.kernel?)"));
        assert!(!report.problems().to_string().contains("loaded 2"));
    }

    #[test]
    fn a_clean_report_is_one_line() {
        let report = LoadReport {
            loaded: vec!["kernel".into(), "bias".into()],
            ..LoadReport::default()
        };
        assert_eq!(report.to_string(), "loaded all 2 entries\n");
        assert_eq!(report.problems().to_string(), "");
    }
}
