//! Matching a file's entries against a model's, without touching any value: the one place
//! that decides what is loaded, missing, unexpected or mismatched.

use std::collections::{BTreeMap, BTreeSet};

use candle_core::DType;
use safetensors::Dtype;

use super::{LoadOptions, LoadReport, Mismatch, Unexpected};
use crate::{Module, StateKind};

/// One entry of a model or a file, described without its values.
#[derive(Clone, Debug, PartialEq)]
pub struct EntrySpec {
    /// `.`-joined path (model) or key (file).
    pub path: String,
    /// The variable kind; for a file entry, guessed with [`guess_kind`].
    pub kind: StateKind,
    /// Shape.
    pub shape: Vec<usize>,
    /// Dtype, as safetensors names it.
    pub dtype: Dtype,
}

impl EntrySpec {
    /// A file entry; the kind is guessed from the path and dtype.
    pub fn from_file(path: impl Into<String>, shape: Vec<usize>, dtype: Dtype) -> Self {
        let path = path.into();
        Self {
            kind: guess_kind(&path, dtype),
            path,
            shape,
            dtype,
        }
    }

    /// The byte size of the values (0 for dtypes narrower than a byte that do not fill one).
    pub fn byte_size(&self) -> usize {
        let bits = self
            .shape
            .iter()
            .try_fold(self.dtype.bitsize(), |acc, d| acc.checked_mul(*d));
        bits.map_or(usize::MAX, |b| b / 8)
    }
}

/// The kind a file entry most likely has, from its path and dtype: rng state is a `U32` `key`
/// or an `I64` `count` under an `rngs` segment (as artifex writes it); `mean`, `var` (running
/// statistics) and `u` (spectral-norm vectors) are batch stats; anything else is a param.
pub fn guess_kind(path: &str, dtype: Dtype) -> StateKind {
    let mut parts = path.rsplit('.');
    let leaf = parts.next().unwrap_or("");
    let in_rngs = parts.any(|p| p == "rngs" || p.ends_with("_rngs"));
    match (leaf, dtype) {
        ("key", Dtype::U32) if in_rngs => StateKind::RngKey,
        ("count", Dtype::I64) if in_rngs => StateKind::RngCount,
        ("mean" | "var" | "u" | "running_mean" | "running_var", _) => StateKind::BatchStat,
        _ => StateKind::Param,
    }
}

/// The entries of `module`'s state tree.
pub fn model_specs<M: Module>(module: &M) -> Vec<EntrySpec> {
    module
        .state()
        .into_iter()
        .map(|(path, var)| EntrySpec {
            path,
            kind: var.kind(),
            shape: var.dims(),
            dtype: var.dtype().into(),
        })
        .collect()
}

/// What loading `file` into a model with entries `model` would report, under `options`
/// (`loaded` lists the entries that would be loaded). No value is read or written.
pub fn compare(model: &[EntrySpec], file: &[EntrySpec], options: &LoadOptions) -> LoadReport {
    plan(model, file, options).report
}

/// A load decided: the report, and for each entry to load, its model and file index.
pub(crate) struct Plan {
    pub report: LoadReport,
    /// `(model index, file index)` of every entry to load, in model order.
    pub matched: Vec<(usize, usize)>,
}

pub(crate) fn plan(model: &[EntrySpec], file: &[EntrySpec], options: &LoadOptions) -> Plan {
    let prefix = options.prefix.as_deref().unwrap_or("");
    let by_key: BTreeMap<&str, usize> = file
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.path.strip_prefix(prefix).map(|k| (k, i)))
        .collect();
    let mut report = LoadReport::default();
    let mut matched = Vec::new();
    for (mi, want) in model.iter().enumerate() {
        let Some(&fi) = by_key.get(want.path.as_str()) else {
            let is_rng = matches!(want.kind, StateKind::RngKey | StateKind::RngCount);
            if !(is_rng && options.rng_state_optional) {
                report.missing.push(want.path.clone());
            }
            continue;
        };
        let found = &file[fi];
        let mismatch = || Mismatch {
            path: want.path.clone(),
            expected_shape: want.shape.clone(),
            found_shape: found.shape.clone(),
            // Model entries of a Module always have a candle dtype; a file standing in for a
            // model (`artifex inspect --diff`) may not, and then shows as u8.
            expected_dtype: DType::try_from(want.dtype).unwrap_or(DType::U8),
            found_dtype: format!("{:?}", found.dtype),
        };
        let accepted = match (DType::try_from(found.dtype), DType::try_from(want.dtype)) {
            (Ok(f), Ok(m)) => options.dtype.accepts(f, m),
            _ => found.dtype == want.dtype,
        };
        if !accepted {
            report.dtype_mismatches.push(mismatch());
        } else if found.shape != want.shape {
            report.shape_mismatches.push(mismatch());
        } else {
            if found.dtype != want.dtype {
                report.converted.push(mismatch());
            }
            report.loaded.push(want.path.clone());
            matched.push((mi, fi));
        }
    }
    let model_keys: BTreeSet<&str> = model.iter().map(|e| e.path.as_str()).collect();
    for key in by_key.keys() {
        if !model_keys.contains(key) {
            report.unexpected.push(Unexpected {
                path: key.to_string(),
                suggestion: closest(key, &model_keys, &report.missing),
            });
        }
    }
    Plan { report, matched }
}

/// The model path closest to an unexpected key, preferring missing ones ("did you mean").
fn closest(key: &str, model_keys: &BTreeSet<&str>, missing: &[String]) -> Option<String> {
    let limit = (key.len() / 3).max(3);
    let best = |cands: &mut dyn Iterator<Item = &str>| {
        cands
            .map(|c| (strsim::levenshtein(key, c), c))
            .filter(|(d, _)| *d <= limit)
            .min()
            .map(|(_, c)| c.to_string())
    };
    best(&mut missing.iter().map(String::as_str)).or_else(|| best(&mut model_keys.iter().copied()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str, shape: &[usize], dtype: Dtype) -> EntrySpec {
        EntrySpec::from_file(path, shape.to_vec(), dtype)
    }

    #[test]
    fn kinds_are_guessed_from_path_and_dtype() {
        assert_eq!(guess_kind("a.rngs.key", Dtype::U32), StateKind::RngKey);
        assert_eq!(guess_kind("a.rngs.count", Dtype::I64), StateKind::RngCount);
        assert_eq!(guess_kind("key", Dtype::U32), StateKind::Param);
        assert_eq!(guess_kind("enc.1.mean", Dtype::F32), StateKind::BatchStat);
        assert_eq!(guess_kind("sn.u", Dtype::F32), StateKind::BatchStat);
        assert_eq!(guess_kind("enc.0.kernel", Dtype::F32), StateKind::Param);
    }

    #[test]
    fn conversion_policy_decides_dtype_mismatches() {
        let model = [
            spec("w", &[2, 3], Dtype::F32),
            spec("rngs.key", &[8], Dtype::U32),
        ];
        let file = [
            spec("w", &[2, 3], Dtype::F16),
            spec("rngs.key", &[8], Dtype::I64),
        ];
        let exact = compare(&model, &file, &LoadOptions::strict());
        assert_eq!(exact.dtype_mismatches.len(), 2);
        let conv = compare(
            &model,
            &file,
            &LoadOptions::strict().with_dtype_conversion(),
        );
        assert_eq!(conv.loaded, ["w"]);
        assert_eq!(conv.converted[0].found_dtype, "F16");
        assert_eq!(
            conv.dtype_mismatches.len(),
            1,
            "integers are never converted"
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(spec("w", &[2, 3], Dtype::F16).byte_size(), 12);
        assert_eq!(spec("s", &[], Dtype::I64).byte_size(), 8);
        assert_eq!(
            spec("h", &[usize::MAX, 2], Dtype::F32).byte_size(),
            usize::MAX
        );
    }
}
