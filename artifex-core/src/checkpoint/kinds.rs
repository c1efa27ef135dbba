//! The kind (param, batch stat, rng key or counter) of each entry of a file.
//!
//! A file does not know what its tensors are; the model does. So the kind of an entry comes
//! from a model's state tree wherever one is at hand:
//! - saving writes the kind of every non-param entry, read from the model's [`StateKind`]s,
//!   into the `kinds` metadata (see [`KINDS_KEY`]); a file written by artifex therefore
//!   tells its kinds exactly, whatever its entries are called;
//! - loading into a model decides everything kind-dependent (optional rng state) from the
//!   model's entries, never from the file;
//! - a file alone ([`CheckpointFile::specs`](super::CheckpointFile::specs), `artifex
//!   inspect`, `artifex inspect --diff`) uses its `kinds` metadata, and only a file without it
//!   (a foreign file, or one written before artifex recorded kinds) falls back to
//!   [`guess_kind`], which is a guess from the key's name and dtype.

use std::collections::BTreeMap;

use safetensors::Dtype;

use super::EntrySpec;
use crate::StateKind;

/// Kinds by path, as a file recorded them ([`decode`]).
pub(crate) type Recorded = BTreeMap<String, StateKind>;

/// The metadata key under which a save records the entries' kinds: a JSON object from kind
/// name (`batch_stat`, `rng_key`, `rng_count`) to the paths of that kind, in state order;
/// every entry not listed is a param.
pub const KINDS_KEY: &str = "kinds";

/// Where the kinds of a file's entries come from (see [`CheckpointFile::kind_source`](super::CheckpointFile::kind_source)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindSource {
    /// Recorded at save time from the model's state tree (the `kinds` metadata): exact.
    Recorded,
    /// The file records no kinds: each is [`guess_kind`]'s guess from the key's name.
    Guessed,
}

/// The name a kind is recorded under.
fn kind_name(kind: StateKind) -> &'static str {
    match kind {
        StateKind::Param => "param",
        StateKind::BatchStat => "batch_stat",
        StateKind::RngKey => "rng_key",
        StateKind::RngCount => "rng_count",
    }
}

/// The `kinds` metadata value of a model whose entries are `(path, kind)`, in state order.
pub(crate) fn encode<'p>(entries: impl IntoIterator<Item = (&'p str, StateKind)>) -> String {
    let mut by_kind: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (path, kind) in entries {
        if kind != StateKind::Param {
            by_kind.entry(kind_name(kind)).or_default().push(path);
        }
    }
    serde_json::to_string(&by_kind).unwrap_or_else(|_| "{}".into())
}

/// The recorded kinds of a `kinds` metadata value: `None` when the value is not what
/// [`encode`] writes (a hand-edited or foreign header), so the caller falls back to guessing.
pub(crate) fn decode(value: &str) -> Option<Recorded> {
    let by_kind: BTreeMap<String, Vec<String>> = serde_json::from_str(value).ok()?;
    let mut out = BTreeMap::new();
    for (name, paths) in by_kind {
        let kind = [StateKind::BatchStat, StateKind::RngKey, StateKind::RngCount]
            .into_iter()
            .find(|k| kind_name(*k) == name)?;
        out.extend(paths.into_iter().map(|p| (p, kind)));
    }
    Some(out)
}

/// A file entry, its kind from the kinds the file `recorded` (an unlisted entry is a param)
/// or, when it recorded none, [`guess_kind`]'s guess.
pub(crate) fn file_entry(
    path: &str,
    shape: Vec<usize>,
    dtype: Dtype,
    recorded: Option<&Recorded>,
) -> EntrySpec {
    match recorded {
        Some(kinds) => EntrySpec {
            kind: kinds.get(path).copied().unwrap_or(StateKind::Param),
            path: path.to_string(),
            shape,
            dtype,
        },
        None => EntrySpec::from_file(path, shape, dtype),
    }
}

/// The kind a file entry most likely has, from its path and dtype alone: the fallback for
/// files that record no kinds, and only a guess (a param named `mean` is taken for a batch
/// stat, an rng stream under a field not named `rngs` for params). Rng state is a `U32`
/// `key` or an `I64` `count` under an `rngs` segment (as artifex's layers name it); `mean`,
/// `var` (running statistics) and `u` (spectral-norm vectors) are batch stats; anything else
/// is a param.
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn recorded_kinds_round_trip_and_params_are_left_out() {
        let entries = [
            ("mean", StateKind::Param),
            ("bn.ema", StateKind::BatchStat),
            ("noise.count", StateKind::RngCount),
            ("noise.key", StateKind::RngKey),
        ];
        let value = encode(entries);
        assert_eq!(
            value,
            r#"{"batch_stat":["bn.ema"],"rng_count":["noise.count"],"rng_key":["noise.key"]}"#
        );
        let kinds = decode(&value).expect("decodes");
        assert_eq!(kinds.len(), 3);
        assert_eq!(kinds["bn.ema"], StateKind::BatchStat);
        assert_eq!(kinds["noise.key"], StateKind::RngKey);
        assert!(!kinds.contains_key("mean"), "params are not listed");
    }

    #[test]
    fn unreadable_kinds_metadata_is_none() {
        assert_eq!(decode("not json"), None);
        assert_eq!(decode(r#"{"optimizer_state":["m"]}"#), None);
        assert_eq!(decode(r#"{"batch_stat":"m"}"#), None);
        assert_eq!(decode("{}"), Some(BTreeMap::new()));
    }
}
