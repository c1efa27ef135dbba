//! Matching a file's entries against a model's, without touching any value: the one place
//! that decides what is loaded, missing, unexpected or mismatched.

use std::collections::{BTreeMap, BTreeSet};

use candle_core::DType;
use safetensors::Dtype;

use super::kinds::guess_kind;
use super::{LoadOptions, LoadReport, Mismatch, Unexpected};
use crate::{Module, StateKind};

/// One entry of a model or a file, described without its values.
#[derive(Clone, Debug, PartialEq)]
pub struct EntrySpec {
    /// `.`-joined path (model) or key (file).
    pub path: String,
    /// The variable kind: a model's own; for a file entry, the kind the file recorded at save
    /// time, else [`guess_kind`]'s guess (see [`KindSource`](super::KindSource)). A load, and
    /// [`compare`], read only the model entries' kinds.
    pub kind: StateKind,
    /// Shape.
    pub shape: Vec<usize>,
    /// Dtype, as safetensors names it.
    pub dtype: Dtype,
}

impl EntrySpec {
    /// An entry of a file that records no kinds: the kind is only [`guess_kind`]'s guess from
    /// the path and dtype. [`CheckpointFile::specs`](super::CheckpointFile::specs) uses the
    /// kinds a file recorded instead, and a load the model's.
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

/// Every decision that depends on a kind (rng state being optional) reads the model entry's
/// kind, never the file entry's.
pub(crate) fn plan(model: &[EntrySpec], file: &[EntrySpec], options: &LoadOptions) -> Plan {
    let prefix = options.prefix.as_deref().unwrap_or("");
    let by_key: BTreeMap<&str, usize> = file
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.path.strip_prefix(prefix).map(|k| (k, i)))
        .collect();
    let mut report = LoadReport::default();
    let mut matched = Vec::new();
    // Model entries the load should fill (optional rng state left out), and whether it did.
    let mut expected: Vec<(&str, bool)> = Vec::new();
    let mut missing_specs: Vec<&EntrySpec> = Vec::new();
    for (mi, want) in model.iter().enumerate() {
        let Some(&fi) = by_key.get(want.path.as_str()) else {
            let is_rng = matches!(want.kind, StateKind::RngKey | StateKind::RngCount);
            if !(is_rng && options.rng_state_optional) {
                report.missing.push(want.path.clone());
                missing_specs.push(want);
                expected.push((&want.path, false));
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
        let loads = accepted && found.shape == want.shape;
        expected.push((&want.path, loads));
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
    let unexpected: Vec<(&str, &EntrySpec)> = by_key
        .iter()
        .filter(|(key, _)| !model_keys.contains(*key))
        .map(|(key, &fi)| (*key, &file[fi]))
        .collect();
    let missing_shapes: BTreeMap<&str, &[usize]> = missing_specs
        .iter()
        .map(|m| (m.path.as_str(), m.shape.as_slice()))
        .collect();
    let renamed = renamed_parents(&unexpected, model, &missing_shapes);
    for &(key, found) in &unexpected {
        let by_parent = renamed
            .get(parent(key))
            .map(|to| join(to, leaf(key)))
            .filter(|c| missing_shapes.contains_key(c.as_str()));
        report.unexpected.push(Unexpected {
            path: key.to_string(),
            suggestion: by_parent.or_else(|| suggest(key, found, &model_keys, &missing_specs)),
        });
    }
    if !report.loaded.is_empty() {
        report.unloaded_submodules = unloaded_submodules(&expected);
    }
    Plan { report, matched }
}

/// The outermost submodules (proper path prefixes) none of whose `entries` were loaded, in
/// model order. `entries` are `(path, loaded)`.
fn unloaded_submodules(entries: &[(&str, bool)]) -> Vec<String> {
    // Per prefix: (any entry loaded, first position), prefixes being `a`, `a.b`, ... of `a.b.c`.
    let mut prefixes: BTreeMap<&str, (bool, usize)> = BTreeMap::new();
    for (pos, &(path, loaded)) in entries.iter().enumerate() {
        for (cut, _) in path.match_indices('.') {
            let slot = prefixes.entry(&path[..cut]).or_insert((false, pos));
            slot.0 |= loaded;
        }
    }
    let untouched = |p: &str| prefixes.get(p).is_some_and(|(loaded, _)| !loaded);
    let mut out: Vec<(usize, &str)> = prefixes
        .iter()
        .filter(|(p, (loaded, _))| {
            let parent_untouched = p.rfind('.').is_some_and(|cut| untouched(&p[..cut]));
            !loaded && !parent_untouched
        })
        .map(|(p, (_, pos))| (*pos, *p))
        .collect();
    out.sort();
    out.into_iter().map(|(_, p)| p.to_string()).collect()
}

/// Submodules of the file that the model has under another name: for each parent path of
/// unexpected keys that is no parent in the model (`stem` of `stem.kernel`), the parent of
/// missing entries with the most leaves of the same name and shape (`conv`, which misses
/// `conv.kernel` and `conv.bias`).
fn renamed_parents<'k>(
    unexpected: &[(&'k str, &EntrySpec)],
    model: &[EntrySpec],
    missing: &BTreeMap<&str, &[usize]>,
) -> BTreeMap<&'k str, String> {
    let model_parents: BTreeSet<&str> = model.iter().map(|e| parent(&e.path)).collect();
    let mut groups: BTreeMap<&str, Vec<&EntrySpec>> = BTreeMap::new();
    for &(key, found) in unexpected {
        if !model_parents.contains(parent(key)) {
            groups.entry(parent(key)).or_default().push(found);
        }
    }
    let candidates: BTreeSet<&str> = missing.keys().map(|m| parent(m)).collect();
    let mut out = BTreeMap::new();
    for (from, entries) in groups {
        let score = |to: &str| {
            entries
                .iter()
                .filter(|e| missing.get(join(to, leaf(&e.path)).as_str()) == Some(&&e.shape[..]))
                .count()
        };
        let best = candidates
            .iter()
            .map(|to| {
                (
                    score(to),
                    std::cmp::Reverse(strsim::levenshtein(from, to)),
                    *to,
                )
            })
            .filter(|(n, _, _)| *n > 0)
            .max();
        if let Some((_, _, to)) = best {
            out.insert(from, to.to_string());
        }
    }
    out
}

/// `parent.leaf`, or `leaf` at the root.
fn join(parent: &str, leaf: &str) -> String {
    if parent.is_empty() {
        leaf.to_string()
    } else {
        format!("{parent}.{leaf}")
    }
}

/// `c` of `a.b.c`.
fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// `a.b` of `a.b.c` (`""` at the root).
fn parent(path: &str) -> &str {
    path.rfind('.').map_or("", |cut| &path[..cut])
}

/// The model path an unexpected file entry most likely meant ("did you mean") when its parent
/// was not found renamed, best first: a missing path close in spelling; a missing path under
/// the same parent with as many elements (`conv.weight` for `conv.kernel`); the only missing
/// path of that shape; any model path close in spelling.
fn suggest(
    key: &str,
    found: &EntrySpec,
    model_keys: &BTreeSet<&str>,
    missing: &[&EntrySpec],
) -> Option<String> {
    let limit = (key.len() / 3).max(3);
    let closest = |cands: &mut dyn Iterator<Item = &str>| {
        cands
            .map(|c| (strsim::levenshtein(key, c), c))
            .filter(|(d, _)| *d <= limit)
            .min()
            .map(|(_, c)| c.to_string())
    };
    let numel = |shape: &[usize]| shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
    let same_parent_and_size = || {
        missing
            .iter()
            .filter(|m| parent(&m.path) == parent(key) && numel(&m.shape) == numel(&found.shape))
            .map(|m| (strsim::levenshtein(key, &m.path), m.path.clone()))
            .min()
            .map(|(_, p)| p)
    };
    let only_one_of_this_shape = || {
        let mut same = missing.iter().filter(|m| m.shape == found.shape);
        match (same.next(), same.next()) {
            (Some(m), None) => Some(m.path.clone()),
            _ => None,
        }
    };
    closest(&mut missing.iter().map(|m| m.path.as_str()))
        .or_else(same_parent_and_size)
        .or_else(only_one_of_this_shape)
        .or_else(|| closest(&mut model_keys.iter().copied()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str, shape: &[usize], dtype: Dtype) -> EntrySpec {
        EntrySpec::from_file(path, shape.to_vec(), dtype)
    }

    fn model_spec(path: &str, kind: StateKind) -> EntrySpec {
        EntrySpec {
            path: path.into(),
            kind,
            shape: vec![2],
            dtype: Dtype::F32,
        }
    }

    #[test]
    fn the_model_entries_kinds_decide_not_the_files() {
        // The file says `mean` is a batch stat and `noise.key` a param (guesses from names);
        // the model says otherwise, and only the model counts.
        let model = [
            model_spec("mean", StateKind::Param),
            model_spec("noise.key", StateKind::RngKey),
        ];
        let file = [spec("mean", &[2], Dtype::F32)];
        assert_eq!(file[0].kind, StateKind::BatchStat);
        let options = LoadOptions::strict().with_optional_rng_state();
        let report = compare(&model, &file, &options);
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.loaded, ["mean"]);
        // A model that says `noise.key` is a param does miss it.
        let model = [
            model_spec("mean", StateKind::Param),
            model_spec("noise.key", StateKind::Param),
        ];
        assert_eq!(compare(&model, &file, &options).missing, ["noise.key"]);
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

    #[test]
    fn renamed_keys_get_suggestions_by_place_and_shape() {
        let model = [
            spec("conv.kernel", &[3, 3, 1, 8], Dtype::F32),
            spec("conv.bias", &[8], Dtype::F32),
            spec("head.kernel", &[8, 10], Dtype::F32),
        ];
        let file = [
            spec("conv.weight", &[8, 1, 3, 3], Dtype::F32),
            spec("conv.bias", &[8], Dtype::F32),
            spec("classifier.w", &[8, 10], Dtype::F32),
        ];
        let report = compare(&model, &file, &LoadOptions::lenient());
        let suggestions: Vec<_> = report
            .unexpected
            .iter()
            .map(|u| (u.path.as_str(), u.suggestion.as_deref()))
            .collect();
        assert_eq!(
            suggestions,
            [
                ("classifier.w", Some("head.kernel")),
                ("conv.weight", Some("conv.kernel"))
            ]
        );
        assert_eq!(report.unloaded_submodules, ["head"]);
    }

    #[test]
    fn only_outermost_untouched_submodules_are_listed() {
        let entries = [
            ("enc.0.kernel", true),
            ("enc.1.mean", false),
            ("enc.1.var", false),
            ("dec.0.kernel", false),
            ("dec.1.kernel", false),
            ("dropout.rngs.count", false),
            ("scale", false),
        ];
        assert_eq!(
            unloaded_submodules(&entries),
            ["enc.1", "dec", "dropout"],
            "`scale` is a missing entry, not a submodule"
        );
    }
}
