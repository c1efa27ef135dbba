//! The load shared by files, byte buffers and tensor maps: plan, refuse or report, then write.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};
use safetensors::tensor::TensorView;

pub(crate) use super::copy::Values;
use super::file::parse_bytes;
use super::kinds::{decode, file_entry};
use super::plan::{model_specs, plan};
use super::{EntrySpec, LoadOptions, LoadReport, KINDS_KEY};
use crate::{CheckpointError, Module, Result};

impl<'a> Values<'a> {
    /// The raw bytes of a safetensors view (its dtype was checked by the plan).
    pub(crate) fn from_view(view: &'a TensorView<'a>) -> Result<Self> {
        let dtype = DType::try_from(view.dtype())?;
        Ok(Values::Bytes {
            data: view.data(),
            dtype,
        })
    }
}

/// Loads the entries `file` (values from `values(i)`) into `module`. Nothing is written unless
/// the plan allows it: in strict mode every problem is reported at once and the model is left
/// unchanged; a lenient load that would load no entry at all is an error too
/// ([`CheckpointError::NothingLoaded`]). `release(bytes)` is called with each part of raw file bytes once copied.
pub(crate) fn load_entries<'v, M: Module>(
    module: &M,
    name: &str,
    file: &[EntrySpec],
    options: &LoadOptions,
    values: impl Fn(usize) -> Result<Values<'v>>,
    mut release: impl FnMut(&[u8]),
) -> Result<LoadReport> {
    let state = module.state();
    let model = model_specs(module);
    // The model's entries carry the kinds; the plan reads no file entry's kind.
    let plan = plan(&model, file, options);
    if options.strict && !plan.report.is_clean() {
        return Err(CheckpointError::Incompatible {
            path: name.to_string(),
            report: Box::new(plan.report),
        }
        .into());
    }
    if plan.report.loaded.is_empty() && plan.report.model_entries() > 0 {
        return Err(nothing_loaded(name, &model, file, options, plan.report));
    }
    for &(mi, fi) in &plan.matched {
        let (key, var) = &state[mi];
        let entry_err = |reason: String| CheckpointError::Entry {
            path: name.to_string(),
            key: key.clone(),
            reason,
        };
        let value = values(fi).map_err(|e| entry_err(e.to_string()))?;
        super::copy::write(var, value, &mut release).map_err(|e| entry_err(e.to_string()))?;
    }
    Ok(plan.report)
}

/// The error of a load that matched nothing, with the first path segments of both sides.
fn nothing_loaded(
    name: &str,
    model: &[EntrySpec],
    file: &[EntrySpec],
    options: &LoadOptions,
    report: LoadReport,
) -> crate::Error {
    let prefix = options.prefix.as_deref().unwrap_or("");
    let under: Vec<&str> = file
        .iter()
        .filter_map(|e| e.path.strip_prefix(prefix))
        .collect();
    let file_roots = if under.is_empty() {
        roots(file.iter().map(|e| e.path.as_str()))
    } else {
        roots(under.iter().copied())
    };
    CheckpointError::NothingLoaded {
        path: name.to_string(),
        prefix: options.prefix.clone(),
        file_entries: under.len(),
        file_roots,
        model_roots: roots(model.iter().map(|e| e.path.as_str())),
        report: Box::new(report),
    }
    .into()
}

/// The distinct first segments (`encoder` of `encoder.0.kernel`) of `paths`, in order.
fn roots<'p>(paths: impl Iterator<Item = &'p str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in paths {
        let root = path.split('.').next().unwrap_or(path);
        if !out.iter().any(|r| r == root) {
            out.push(root.to_string());
        }
    }
    out
}

/// Loads a safetensors file held in memory (e.g. downloaded or `include_bytes!`) into
/// `module`, exactly as [`load`](super::load) loads a file.
pub fn load_bytes<M: Module>(
    module: &M,
    bytes: &[u8],
    options: &LoadOptions,
) -> Result<LoadReport> {
    const NAME: &str = "<bytes>";
    let tensors = parse_bytes(NAME, bytes)?;
    let recorded = safetensors::SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, meta)| {
            meta.metadata()
                .as_ref()?
                .get(KINDS_KEY)
                .and_then(|v| decode(v))
        });
    let views: Vec<_> = tensors.iter().collect();
    let specs: Vec<EntrySpec> = views
        .iter()
        .map(|(name, view)| {
            file_entry(name, view.shape().to_vec(), view.dtype(), recorded.as_ref())
        })
        .collect();
    load_entries(
        module,
        NAME,
        &specs,
        options,
        |i| Values::from_view(&views[i].1),
        |_| {},
    )
}

/// Loads tensors by key (e.g. the output of an [`Adapter`](super::Adapter), or
/// `candle_core::safetensors::load`) into `module`, with the same checks and report as a file.
pub fn load_map<'t, M, K>(
    module: &M,
    tensors: impl IntoIterator<Item = (&'t K, &'t Tensor)>,
    options: &LoadOptions,
) -> Result<LoadReport>
where
    M: Module,
    K: AsRef<str> + ?Sized + 't,
{
    let sorted: BTreeMap<&str, &Tensor> =
        tensors.into_iter().map(|(k, t)| (k.as_ref(), t)).collect();
    let entries: Vec<(&str, &Tensor)> = sorted.into_iter().collect();
    let specs: Vec<EntrySpec> = entries
        .iter()
        .map(|(k, t)| file_entry(k, t.dims().to_vec(), t.dtype().into(), None))
        .collect();
    load_entries(
        module,
        "<tensor map>",
        &specs,
        options,
        |i| Ok(Values::Tensor(entries[i].1)),
        |_: &[u8]| {},
    )
}
