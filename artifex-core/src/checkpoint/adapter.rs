//! Loading state written by other tools, PyTorch first: key remapping rules and layout
//! conversion into the NNX names and layouts artifex uses.
//!
//! ```
//! use artifex_core::checkpoint::{Adapter, Layout};
//! use artifex_core::candle_core::{DType, Device, Tensor};
//! // A torch `nn.Linear(3, 2)` under `net.0`, and a BatchNorm1d under `net.1`.
//! let dev = Device::Cpu;
//! let torch = vec![
//!     ("net.0.weight".to_string(), Tensor::zeros((2, 3), DType::F32, &dev)?),
//!     ("net.0.bias".to_string(), Tensor::zeros(2, DType::F32, &dev)?),
//!     ("net.1.weight".to_string(), Tensor::ones(2, DType::F32, &dev)?),
//!     ("net.1.running_mean".to_string(), Tensor::zeros(2, DType::F32, &dev)?),
//!     ("net.1.num_batches_tracked".to_string(), Tensor::new(0i64, &dev)?),
//! ];
//! let adapted = Adapter::pytorch()
//!     .rename_regex(r"^net\.0\.", "fc.")?
//!     .rename_regex(r"^net\.1\.", "bn.")?
//!     .apply(torch)?;
//! let keys: Vec<&str> = adapted.tensors.keys().map(String::as_str).collect();
//! assert_eq!(keys, ["bn.mean", "bn.scale", "fc.bias", "fc.kernel"]);
//! assert_eq!(adapted.tensors["fc.kernel"].dims(), &[3, 2]);
//! assert_eq!(adapted.dropped, ["net.1.num_batches_tracked"]);
//! # Ok::<(), artifex_core::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use candle_core::safetensors::Load;
use candle_core::{Device, Tensor};
use regex::Regex;

use super::CheckpointFile;
use crate::{CheckpointError, Error, Result};

/// How one tensor is converted, and what the last segment of its key becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Values and key unchanged.
    Keep,
    /// `nn.Linear` weight `(out, in)` -> `kernel` `(in, out)`.
    Linear,
    /// `nn.ConvNd` weight `(out, in/groups, *k)` -> `kernel` `(*k, in/groups, out)` (OIHW ->
    /// HWIO for 2-D), as `nnx.Conv` takes it.
    Conv,
    /// `nn.ConvTransposeNd` weight `(in, out, *k)` -> `kernel` `(*k, in, out)`, flipped along
    /// every spatial axis: `nnx.ConvTranspose` does not flip its kernel, PyTorch does. For
    /// `groups = 1`; never inferred (a transposed conv weight looks like a conv weight), so
    /// name it with [`Adapter::layout`].
    ConvTranspose,
    /// Norm weight `(features,)` -> `scale` (BatchNorm, LayerNorm, GroupNorm).
    Scale,
    /// `nn.Embedding` weight `(num, features)` -> `embedding`, same layout; never inferred
    /// (it looks like a Linear weight).
    Embedding,
}

impl Layout {
    /// The new last key segment, or `None` to keep it.
    fn leaf(self) -> Option<&'static str> {
        match self {
            Layout::Keep => None,
            Layout::Linear | Layout::Conv | Layout::ConvTranspose => Some("kernel"),
            Layout::Scale => Some("scale"),
            Layout::Embedding => Some("embedding"),
        }
    }

    fn convert(self, t: &Tensor) -> candle_core::Result<Tensor> {
        let rank = t.rank();
        match self {
            Layout::Keep | Layout::Scale | Layout::Embedding => Ok(t.clone()),
            Layout::Linear if rank == 2 => t.t()?.contiguous(),
            Layout::Conv if rank >= 3 => {
                let mut order: Vec<usize> = (2..rank).collect();
                order.extend([1, 0]);
                t.permute(order)?.contiguous()
            }
            Layout::ConvTranspose if rank >= 3 => {
                let mut order: Vec<usize> = (2..rank).collect();
                order.extend([0, 1]);
                let mut k = t.permute(order)?.contiguous()?;
                for axis in 0..rank - 2 {
                    let n = k.dim(axis)? as u32;
                    let rev = Tensor::from_vec(
                        (0..n).rev().collect::<Vec<u32>>(),
                        n as usize,
                        k.device(),
                    )?;
                    k = k.index_select(&rev, axis)?;
                }
                Ok(k)
            }
            _ => candle_core::bail!(
                "{self:?} layout does not apply to a rank-{rank} tensor {:?}",
                t.dims()
            ),
        }
    }
}

/// A renaming function (`None` keeps the key).
type RenameFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A key renaming rule, applied to the converted key.
#[derive(Clone)]
enum Rename {
    Exact(String, String),
    Regex(Regex, String),
    Fn(RenameFn),
}

impl Rename {
    fn apply(&self, key: String) -> String {
        match self {
            Rename::Exact(from, to) if *from == key => to.clone(),
            Rename::Exact(..) => key,
            Rename::Regex(re, rep) => re.replace(&key, rep.as_str()).into_owned(),
            Rename::Fn(f) => f(&key).unwrap_or(key),
        }
    }
}

impl fmt::Debug for Rename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rename::Exact(a, b) => write!(f, "{a:?} -> {b:?}"),
            Rename::Regex(re, rep) => write!(f, "/{re}/ -> {rep:?}"),
            Rename::Fn(_) => f.write_str("<fn>"),
        }
    }
}

/// What happened to one entry of the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdaptedEntry {
    /// The source key.
    pub from: String,
    /// The key it was given.
    pub to: String,
    /// The layout conversion applied to its values.
    pub layout: Layout,
}

/// The result of [`Adapter::apply`]: the tensors under their new keys (ready for
/// [`load_map`](super::load_map)), and what was done to each.
#[derive(Clone, Debug)]
pub struct Adapted {
    /// Converted tensors by new key.
    pub tensors: BTreeMap<String, Tensor>,
    /// One record per kept entry, sorted by source key.
    pub entries: Vec<AdaptedEntry>,
    /// Source keys dropped (`num_batches_tracked`, [`Adapter::drop_matching`]), sorted.
    pub dropped: Vec<String>,
}

/// Turns tensors named and laid out by another tool into artifex's names and layouts.
///
/// Each source key goes through, in order: drop rules (on the source key); the layout
/// conversion (an explicit [`layout`](Adapter::layout) rule on the source key, else, for
/// [`pytorch`](Adapter::pytorch), the inferred one); then every rename rule in the order
/// added, on the converted key. Two source keys that end on one key are an error.
///
/// PyTorch inference, per module prefix `P`: `P.running_mean` / `P.running_var` become
/// `P.mean` / `P.var`; `P.num_batches_tracked` is dropped; `P.weight` becomes `P.scale` when
/// `P` has running statistics or the weight is 1-D, a `kernel` transposed from `(out, in)`
/// when 2-D ([`Layout::Linear`]) and a conv `kernel` when 3- to 5-D ([`Layout::Conv`]);
/// `bias` is kept.
#[derive(Clone, Debug, Default)]
pub struct Adapter {
    torch: bool,
    layouts: Vec<(Regex, Layout)>,
    drops: Vec<Regex>,
    renames: Vec<Rename>,
}

fn regex(pattern: &str) -> Result<Regex> {
    Regex::new(pattern)
        .map_err(|e| Error::config("Adapter", format!("bad pattern `{pattern}`: {e}")))
}

impl Adapter {
    /// An adapter with no conversion: only the rules added to it.
    pub fn new() -> Self {
        Self::default()
    }

    /// PyTorch `state_dict` names and layouts (see the type's documentation).
    pub fn pytorch() -> Self {
        Self {
            torch: true,
            ..Self::default()
        }
    }

    /// Renames the converted key `from` to `to` exactly.
    pub fn rename(mut self, from: &str, to: &str) -> Self {
        self.renames.push(Rename::Exact(from.into(), to.into()));
        self
    }

    /// Replaces the first match of `pattern` in the converted key by `replacement` (`$1`,
    /// `${name}` refer to groups), e.g. `(r"^features\.", "encoder.")`.
    pub fn rename_regex(mut self, pattern: &str, replacement: &str) -> Result<Self> {
        self.renames
            .push(Rename::Regex(regex(pattern)?, replacement.into()));
        Ok(self)
    }

    /// Renames with a function (`None` keeps the key), e.g. to renumber the entries of a
    /// PyTorch `nn.Sequential` whose activations took indices.
    pub fn rename_with(
        mut self,
        f: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.renames.push(Rename::Fn(Arc::new(f)));
        self
    }

    /// Drops the source keys matching `pattern` (e.g. a classifier head you do not port).
    pub fn drop_matching(mut self, pattern: &str) -> Result<Self> {
        self.drops.push(regex(pattern)?);
        Ok(self)
    }

    /// Converts the source keys matching `pattern` with `layout`, overriding inference.
    pub fn layout(mut self, pattern: &str, layout: Layout) -> Result<Self> {
        self.layouts.push((regex(pattern)?, layout));
        Ok(self)
    }

    fn is_dropped(&self, key: &str) -> bool {
        (self.torch && key.rsplit('.').next() == Some("num_batches_tracked"))
            || self.drops.iter().any(|re| re.is_match(key))
    }

    /// The layout and new leaf for `key`, given every source key (for sibling lookups).
    fn plan(
        &self,
        key: &str,
        rank: usize,
        all: &BTreeSet<String>,
    ) -> (Layout, Option<&'static str>) {
        if let Some((_, layout)) = self.layouts.iter().find(|(re, _)| re.is_match(key)) {
            return (*layout, layout.leaf());
        }
        if !self.torch {
            return (Layout::Keep, None);
        }
        let (prefix, leaf) = match key.rsplit_once('.') {
            Some((p, l)) => (format!("{p}."), l),
            None => (String::new(), key),
        };
        let layout = match leaf {
            "running_mean" => return (Layout::Keep, Some("mean")),
            "running_var" => return (Layout::Keep, Some("var")),
            "weight" => {
                let has_stats = all.contains(&format!("{prefix}running_mean"))
                    || all.contains(&format!("{prefix}running_var"));
                match rank {
                    _ if has_stats => Layout::Scale,
                    1 => Layout::Scale,
                    2 => Layout::Linear,
                    3..=5 => Layout::Conv,
                    _ => Layout::Keep,
                }
            }
            _ => Layout::Keep,
        };
        (layout, layout.leaf())
    }

    /// Adapts tensors by key (e.g. `candle_core::safetensors::load` of a PyTorch file).
    pub fn apply<K: Into<String>>(
        &self,
        tensors: impl IntoIterator<Item = (K, Tensor)>,
    ) -> Result<Adapted> {
        let source: BTreeMap<String, Tensor> =
            tensors.into_iter().map(|(k, t)| (k.into(), t)).collect();
        let all: BTreeSet<String> = source.keys().cloned().collect();
        self.adapt(source, &all, Vec::new())
    }

    /// Reads a safetensors file (typed errors for corrupt files and unsupported dtypes) and
    /// adapts it; dropped entries are never read.
    pub fn apply_file(&self, path: impl AsRef<Path>) -> Result<Adapted> {
        let path = path.as_ref();
        let file = CheckpointFile::open(path)?;
        let parsed = file.parse()?;
        let all: BTreeSet<String> = parsed.names().into_iter().map(str::to_string).collect();
        let mut source = BTreeMap::new();
        let mut dropped = Vec::new();
        for name in &all {
            if self.is_dropped(name) {
                dropped.push(name.clone());
                continue;
            }
            let entry_err = |reason: String| CheckpointError::Entry {
                path: path.display().to_string(),
                key: name.clone(),
                reason,
            };
            let view = parsed.tensor(name).map_err(|e| entry_err(e.to_string()))?;
            let t = view
                .load(&Device::Cpu)
                .map_err(|e| entry_err(e.to_string()))?;
            source.insert(name.clone(), t);
        }
        self.adapt(source, &all, dropped)
    }

    /// Converts and renames `source`; `all` is every source key (dropped ones included).
    fn adapt(
        &self,
        source: BTreeMap<String, Tensor>,
        all: &BTreeSet<String>,
        mut dropped: Vec<String>,
    ) -> Result<Adapted> {
        let mut tensors = BTreeMap::new();
        let mut entries = Vec::new();
        let mut origin: BTreeMap<String, String> = BTreeMap::new();
        for (key, t) in source {
            if self.is_dropped(&key) {
                dropped.push(key);
                continue;
            }
            let (layout, leaf) = self.plan(&key, t.rank(), all);
            let value = layout
                .convert(&t)
                .map_err(|e| Error::config("Adapter", format!("`{key}`: {e}")))?;
            let mut to = match (leaf, key.rsplit_once('.')) {
                (Some(leaf), Some((prefix, _))) => format!("{prefix}.{leaf}"),
                (Some(leaf), None) => leaf.to_string(),
                (None, _) => key.clone(),
            };
            for rule in &self.renames {
                to = rule.apply(to);
            }
            if let Some(first) = origin.insert(to.clone(), key.clone()) {
                return Err(Error::config(
                    "Adapter",
                    format!("`{first}` and `{key}` both map to `{to}`"),
                ));
            }
            tensors.insert(to.clone(), value);
            entries.push(AdaptedEntry {
                from: key,
                to,
                layout,
            });
        }
        dropped.sort();
        Ok(Adapted {
            tensors,
            entries,
            dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn t(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::arange(0f32, n as f32, &Device::Cpu)
            .and_then(|x| x.reshape(shape))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn vals(t: &Tensor) -> Vec<f32> {
        t.flatten_all()
            .and_then(|x| x.to_vec1())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn linear_and_conv_layouts() -> Result<()> {
        let a = Adapter::pytorch()
            .apply([("fc.weight", t(&[2, 3])), ("conv.weight", t(&[4, 3, 2, 5]))])?;
        let k = &a.tensors["fc.kernel"];
        assert_eq!(k.dims(), &[3, 2]);
        // kernel[i][o] == weight[o][i]
        assert_eq!(vals(k), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let c = &a.tensors["conv.kernel"];
        assert_eq!(c.dims(), &[2, 5, 3, 4]);
        // kernel[h][w][i][o] == weight[o][i][h][w]
        let w = vals(&t(&[4, 3, 2, 5]));
        let cv = vals(c);
        let (h, wd, i, o) = (1, 4, 2, 3);
        assert_eq!(
            cv[((h * 5 + wd) * 3 + i) * 4 + o],
            w[((o * 3 + i) * 2 + h) * 5 + wd]
        );
        Ok(())
    }

    #[test]
    fn conv_transpose_is_permuted_and_flipped() -> Result<()> {
        let a = Adapter::pytorch()
            .layout(r"^up\.weight$", Layout::ConvTranspose)?
            .apply([("up.weight", t(&[2, 3, 2, 2]))])?;
        let k = &a.tensors["up.kernel"];
        assert_eq!(k.dims(), &[2, 2, 2, 3]);
        let (w, kv) = (vals(&t(&[2, 3, 2, 2])), vals(k));
        // kernel[h][w][i][o] == weight[i][o][1-h][1-w]
        let (h, x, i, o) = (0, 1, 1, 2);
        assert_eq!(
            kv[((h * 2 + x) * 2 + i) * 3 + o],
            w[((i * 3 + o) * 2 + (1 - h)) * 2 + (1 - x)]
        );
        Ok(())
    }

    #[test]
    fn norms_embeddings_drops_and_renames() -> Result<()> {
        let one = |n| Tensor::ones(n, DType::F32, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
        let a = Adapter::pytorch()
            .layout(r"^emb\.", Layout::Embedding)?
            .drop_matching(r"^head\.")?
            .rename("ln.scale", "norm.scale")
            .rename_with(|k| k.strip_prefix("emb.").map(|r| format!("embed.{r}")))
            .apply([
                ("bn.weight", t(&[3])),
                ("bn.running_var", one(3)),
                ("ln.weight", t(&[3])),
                ("ln.bias", t(&[3])),
                ("emb.weight", t(&[5, 2])),
                ("head.weight", t(&[2, 2])),
            ])?;
        let keys: Vec<&str> = a.tensors.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "bn.scale",
                "bn.var",
                "embed.embedding",
                "ln.bias",
                "norm.scale"
            ]
        );
        assert_eq!(a.tensors["embed.embedding"].dims(), &[5, 2]);
        assert_eq!(a.dropped, ["head.weight"]);
        Ok(())
    }

    #[test]
    fn collisions_and_bad_layouts_are_errors() -> Result<()> {
        let err = Adapter::new()
            .rename_regex(r"^[ab]\.", "c.")?
            .apply([("a.w", t(&[1])), ("b.w", t(&[1]))])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`a.w` and `b.w` both map to `c.w`"),
            "{err}"
        );
        let err = Adapter::new()
            .layout("x", Layout::Linear)?
            .apply([("x", t(&[3]))])
            .unwrap_err();
        assert!(err.to_string().contains("rank-1"), "{err}");
        assert!(Adapter::new().rename_regex("(", "").is_err());
        Ok(())
    }
}
