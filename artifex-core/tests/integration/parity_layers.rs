//! Parity with Flax NNX (fixtures written by python/make_fixtures.py): each layer is built
//! from the fixture's config, loaded with the NNX state under the same paths, and compared on
//! outputs and on the gradients of `sum(out * grad_r)` (input and every param).

use std::collections::HashMap;
use std::path::PathBuf;

use artifex_core::checkpoint::LoadOptions;
use artifex_core::prelude::*;
use artifex_core::{activation, StateRef};
use serde_json::Value;

struct Fixture {
    name: String,
    tensors: HashMap<String, Tensor>,
    config: Value,
}

impl Fixture {
    fn open(name: &str) -> Self {
        let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .join(format!("tests/fixtures/nnx/{name}.safetensors"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
        let config = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("config"))
            .map(|c| serde_json::from_str(c).expect("config json"))
            .unwrap_or(Value::Null);
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).expect("tensors");
        Fixture {
            name: name.to_string(),
            tensors,
            config,
        }
    }

    fn get(&self, key: &str) -> &Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: no `{key}`", self.name))
    }

    fn usize(&self, key: &str) -> usize {
        self.config[key]
            .as_u64()
            .unwrap_or_else(|| panic!("config {key}")) as usize
    }

    /// An int or a list of ints (NNX accepts both).
    fn usizes(&self, key: &str) -> Vec<usize> {
        match &self.config[key] {
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_u64().expect("int") as usize)
                .collect(),
            v => vec![v.as_u64().unwrap_or_else(|| panic!("config {key}")) as usize],
        }
    }

    fn padding(&self) -> Padding {
        match &self.config["padding"] {
            Value::String(s) if s == "SAME" => Padding::Same,
            Value::String(s) if s == "VALID" => Padding::Valid,
            Value::Array(pairs) => Padding::Explicit(
                pairs
                    .iter()
                    .map(|p| {
                        let p = p.as_array().expect("pair");
                        (
                            p[0].as_u64().expect("lo") as usize,
                            p[1].as_u64().expect("hi") as usize,
                        )
                    })
                    .collect(),
            ),
            other => panic!("{}: padding {other}", self.name),
        }
    }

    /// Loads every `state.<path>` into the module through our checkpoint loader (strict on
    /// params and batch stats: the NNX names must already agree, nothing is renamed).
    fn load_state<M: Module>(&self, model: &mut M) {
        let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .join(format!("tests/fixtures/nnx/{}.safetensors", self.name));
        let report = model
            .load_safetensors_with(&path, &LoadOptions::nnx().with_prefix("state."))
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        assert!(report.is_clean(), "{}: {report}", self.name);
    }
}

/// `|a - b| <= rtol * (|b| + 1)` everywhere.
fn assert_close(what: &str, actual: &Tensor, expected: &Tensor, rtol: f64) {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shape");
    let v = |t: &Tensor| -> Vec<f64> {
        t.to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("host")
    };
    let (a, b) = (v(actual), v(expected));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let err = (x - y).abs() / (y.abs() + 1.0);
        assert!(
            x.is_finite() && err <= rtol,
            "{what}[{i}]: ours {x}, NNX {y}, error {err:.2e}"
        );
    }
}

/// Forward, then gradients of `sum(out * grad_r)` against `grad.input` and `grad.<path>`.
fn check<M: Module>(
    fx: &Fixture,
    model: &M,
    forward: impl Fn(&Tensor) -> Result<Tensor>,
    rtol: f64,
) -> Result<()> {
    let input = candle_core::Var::from_tensor(fx.get("input"))?;
    let out = forward(input.as_tensor())?;
    assert_close(
        &format!("{}: out_eval", fx.name),
        &out,
        fx.get("out_eval"),
        rtol,
    );
    let Some(r) = fx.tensors.get("grad_r") else {
        return Ok(());
    };
    let grads = (&out * r)?.sum_all()?.backward()?;
    let grad_of = |t: &Tensor, what: &str| {
        grads
            .get(t)
            .unwrap_or_else(|| panic!("{}: no gradient for {what}", fx.name))
            .clone()
    };
    assert_close(
        &format!("{}: grad.input", fx.name),
        &grad_of(input.as_tensor(), "input"),
        fx.get("grad.input"),
        rtol,
    );
    let mut checked = 0;
    for (path, var) in model.state() {
        if let StateRef::Param(p) = var {
            let what = format!("{}: grad.{path}", fx.name);
            assert_close(
                &what,
                &grad_of(p, &path),
                fx.get(&format!("grad.{path}")),
                rtol,
            );
            checked += 1;
        }
    }
    let expected = fx.tensors.keys().filter(|k| k.starts_with("grad.")).count() - 1;
    assert_eq!(
        checked, expected,
        "{}: every param gradient compared",
        fx.name
    );
    Ok(())
}

#[test]
fn conv_matches_nnx() -> Result<()> {
    for name in [
        "conv_same_3x3",
        "conv_same_even_kernel",
        "conv_stride2_odd",
        "conv_valid_stride2",
        "conv_explicit_pad",
        "conv_dilation",
        "conv_groups",
        "conv_nobias",
        "conv1d_same",
    ] {
        let fx = Fixture::open(name);
        assert_eq!(fx.config["grad_mode"], "eval");
        let mut conv = Conv::builder(
            fx.usize("in_features"),
            fx.usize("out_features"),
            fx.usizes("kernel_size"),
        )
        .strides(fx.usizes("strides"))
        .kernel_dilation(fx.usizes("kernel_dilation"))
        .feature_group_count(fx.usize("feature_group_count"))
        .use_bias(fx.config["use_bias"].as_bool().expect("use_bias"))
        .padding(fx.padding())
        .build(&mut Rngs::new(0))?;
        conv.eval();
        fx.load_state(&mut conv);
        check(&fx, &conv, |x| conv.forward(x), 1e-5)?;
    }
    Ok(())
}

#[test]
fn conv_transpose_matches_nnx() -> Result<()> {
    for name in [
        "convT_same_stride2",
        "convT_valid_stride2",
        "convT_same_stride1",
        "convT_even_kernel_stride2",
    ] {
        let fx = Fixture::open(name);
        assert_eq!(fx.config["transpose_kernel"], false);
        let mut conv = ConvTranspose::builder(
            fx.usize("in_features"),
            fx.usize("out_features"),
            fx.usizes("kernel_size"),
        )
        .strides(fx.usizes("strides"))
        .kernel_dilation(fx.usizes("kernel_dilation"))
        .use_bias(fx.config["use_bias"].as_bool().expect("use_bias"))
        .padding(fx.padding())
        .build(&mut Rngs::new(0))?;
        fx.load_state(&mut conv);
        check(&fx, &conv, |x| conv.forward(x), 1e-5)?;
    }
    Ok(())
}

#[test]
fn group_norm_and_rms_norm_match_nnx() -> Result<()> {
    let fx = Fixture::open("groupnorm");
    let mut gn = GroupNorm::builder(fx.usize("num_features"))
        .num_groups(fx.usize("num_groups"))
        .epsilon(fx.config["epsilon"].as_f64().expect("eps"))
        .build(&mut Rngs::new(0))?;
    fx.load_state(&mut gn);
    check(&fx, &gn, |x| gn.forward(x), 1e-5)?;

    let fx = Fixture::open("rmsnorm");
    let mut rms = RMSNorm::builder(fx.usize("num_features"))
        .epsilon(fx.config["epsilon"].as_f64().expect("eps"))
        .build(&mut Rngs::new(0))?;
    fx.load_state(&mut rms);
    check(&fx, &rms, |x| rms.forward(x), 1e-5)
}

#[test]
fn embed_matches_nnx() -> Result<()> {
    let fx = Fixture::open("embed");
    let mut embed = Embed::new(
        fx.usize("num_embeddings"),
        fx.usize("features"),
        &mut Rngs::new(0),
    )?;
    fx.load_state(&mut embed);
    let out = embed.forward(fx.get("input"))?;
    assert_close("embed", &out, fx.get("out_eval"), 0.0);
    Ok(())
}

#[test]
fn seed_attention_matches_nnx_with_and_without_mask() -> Result<()> {
    for name in ["mha_seed", "mha_seed_mask"] {
        let fx = Fixture::open(name);
        let mut attn = MultiHeadAttention::builder(fx.usize("hidden_size"), fx.usize("num_heads"))
            .dropout_rate(fx.config["dropout_rate"].as_f64().expect("rate"))
            .build(&mut Rngs::new(0))?;
        attn.eval();
        fx.load_state(&mut attn);
        let mask = fx.tensors.get("mask");
        check(&fx, &attn, |x| attn.forward(x, mask), 1e-5)?;
    }
    Ok(())
}

#[test]
fn activations_match_jax() -> Result<()> {
    let fx = Fixture::open("activations");
    let x = fx.get("input");
    let alpha = fx.config["elu_alpha"].as_f64().expect("alpha");
    let slope = fx.config["leaky_relu_negative_slope"]
        .as_f64()
        .expect("slope");
    let cases: Vec<(&str, Tensor)> = vec![
        ("relu", activation::relu(x)?),
        ("leaky_relu_0.2", activation::leaky_relu(x, slope)?),
        ("elu", activation::elu(x, alpha)?),
        ("gelu_exact", activation::gelu(x)?),
        ("gelu_tanh", activation::gelu_tanh(x)?),
        ("silu", activation::silu(x)?),
        ("sigmoid", activation::sigmoid(x)?),
        ("tanh", activation::tanh(x)?),
        ("softplus", activation::softplus(x)?),
        ("softmax_last", activation::softmax(x, -1)?),
        ("log_softmax_last", activation::log_softmax(x, -1)?),
        ("softmax_axis0", activation::softmax(x, 0)?),
    ];
    let listed = fx.config["functions"].as_array().expect("functions").len();
    assert_eq!(cases.len(), listed, "every fixture function compared");
    for (key, ours) in cases {
        assert_close(key, &ours, fx.get(key), 1e-6);
    }
    Ok(())
}
