//! A PyTorch-layout file (written by python/torch_layout_fixture.py with safetensors from
//! numpy arrays laid out as torch does) loads through the Adapter and reproduces torch's
//! outputs.

use crate::common;

use std::path::PathBuf;

use artifex_core::checkpoint::{Adapter, Layout, LoadOptions};
use artifex_core::prelude::*;
use artifex_core::CheckpointError;
use common::fixture::assert_close;
use common::Mlp;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join(format!("tests/fixtures/interop/{name}"))
}

/// `nn.Sequential` indices 0, 1 and 4 (ReLU and Dropout took 2 and 3) to our field names.
fn sequential_names(key: &str) -> Option<String> {
    let (index, rest) = key.strip_prefix("net.")?.split_once('.')?;
    let field = match index {
        "0" => "fc1",
        "1" => "bn",
        "4" => "fc2",
        _ => return None,
    };
    Some(format!("{field}.{rest}"))
}

#[test]
fn torch_layouts_convert_to_nnx_layouts() -> Result<()> {
    let adapted = Adapter::pytorch()
        .layout(r"^up\.weight$", Layout::ConvTranspose)?
        .apply_file(fixture("torch_mlp.safetensors"))?;
    let expected =
        candle_core::safetensors::load(fixture("torch_mlp.expected.safetensors"), &Device::Cpu)?;
    for key in ["conv.kernel", "up.kernel"] {
        let got = &adapted.tensors[key];
        assert_eq!(got.dims(), expected[key].dims(), "{key}");
        let diff = (got - &expected[key])?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(diff, 0.0, "{key} is exactly the numpy-converted kernel");
    }
    let keys: Vec<&str> = adapted.tensors.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "conv.bias",
            "conv.kernel",
            "net.0.bias",
            "net.0.kernel",
            "net.1.bias",
            "net.1.mean",
            "net.1.scale",
            "net.1.var",
            "net.4.bias",
            "net.4.kernel",
            "up.bias",
            "up.kernel"
        ]
    );
    assert_eq!(adapted.dropped, ["net.1.num_batches_tracked"]);
    let layout_of = |from: &str| {
        adapted
            .entries
            .iter()
            .find(|e| e.from == from)
            .map(|e| e.layout)
    };
    assert_eq!(layout_of("net.0.weight"), Some(Layout::Linear));
    assert_eq!(layout_of("net.1.weight"), Some(Layout::Scale));
    assert_eq!(layout_of("conv.weight"), Some(Layout::Conv));
    assert_eq!(layout_of("up.weight"), Some(Layout::ConvTranspose));
    Ok(())
}

#[test]
fn a_torch_mlp_loads_and_matches_torch_outputs() -> Result<()> {
    let adapted = Adapter::pytorch()
        .drop_matching(r"^(conv|up)\.")?
        .rename_with(sequential_names)
        .apply_file(fixture("torch_mlp.safetensors"))?;
    let mut model = Mlp::new(6, 10, 3, &mut Rngs::new(0))?;
    // Strict on every param and batch stat; torch files carry no artifex rng state.
    let report = model.load_tensors(&adapted.tensors, &LoadOptions::nnx())?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.loaded.len(), 8);
    model.eval();
    let expected =
        candle_core::safetensors::load(fixture("torch_mlp.expected.safetensors"), &Device::Cpu)?;
    let y = model.forward(&expected["x"])?;
    assert_close(&y, &expected["y"], 1e-5, "eval output vs torch");
    Ok(())
}

#[test]
fn without_the_adapter_the_report_says_what_is_wrong() -> Result<()> {
    let mut model = Mlp::new(6, 10, 3, &mut Rngs::new(0))?;
    let err = model
        .load_safetensors_with(fixture("torch_mlp.safetensors"), &LoadOptions::nnx())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing: fc1.kernel"), "{err}");
    assert!(err.contains("unexpected: net.1.running_mean"), "{err}");
    // A rename without layout conversion: names match, the transposed shape does not.
    let renamed = Adapter::new()
        .rename_regex(r"^net\.0\.weight$", "fc1.kernel")?
        .apply_file(fixture("torch_mlp.safetensors"))?;
    // Nothing else matches, so even a lenient load refuses it and shows the mismatch.
    let err = model
        .load_tensors(&renamed.tensors, &LoadOptions::lenient())
        .unwrap_err();
    let Error::Checkpoint(CheckpointError::NothingLoaded { report, .. }) = &err else {
        panic!("expected NothingLoaded, got {err}");
    };
    assert!(
        err.to_string()
            .contains("shape mismatch: fc1.kernel: model [6, 10], file [10, 6]"),
        "{err}"
    );
    let m = &report.shape_mismatches[0];
    assert_eq!(
        (
            m.path.as_str(),
            m.expected_shape.clone(),
            m.found_shape.clone()
        ),
        ("fc1.kernel", vec![6, 10], vec![10, 6])
    );
    Ok(())
}
