//! Linear, BatchNorm and LayerNorm against Flax NNX: outputs, updated batch statistics and
//! gradients of `sum(out * r)` w.r.t. input and params, within 1e-5 relative.

use crate::common;

use artifex_core::prelude::*;
use candle_core::Var;
use common::fixture::{assert_close, assert_grads, Fixture};

#[test]
fn linear_matches_nnx() -> Result<()> {
    for name in ["linear", "linear_nobias", "linear_rank3"] {
        let fx = Fixture::open(name);
        let mut layer = Linear::builder(fx.usize("in_features"), fx.usize("out_features"))
            .use_bias(fx.config["use_bias"].as_bool().unwrap_or(true))
            .build(&mut Rngs::new(0))?;
        assert!(fx.load_state(&mut layer).is_clean());
        let input = Var::from_tensor(fx.get("input"))?;
        let out = layer.forward(input.as_tensor())?;
        assert_close(&out, fx.get("out_eval"), 1e-5, name);
        if fx.tensors.contains_key("grad_r") {
            assert_grads(&fx, &layer, &input, &out, 1e-5);
        }
    }
    Ok(())
}

#[test]
fn batch_norm_matches_nnx_in_train_and_eval_mode() -> Result<()> {
    for name in ["batchnorm", "batchnorm_nhwc"] {
        let fx = Fixture::open(name);
        let build = || -> Result<BatchNorm> {
            let mut bn = BatchNorm::new(fx.usize("num_features"), &mut Rngs::new(0))?;
            assert!(fx.load_state(&mut bn).is_clean());
            Ok(bn)
        };
        let bn = build()?;
        let input = Var::from_tensor(fx.get("input"))?;
        let out = bn.forward(input.as_tensor())?;
        assert_close(
            &out,
            fx.get("out_train"),
            1e-5,
            &format!("{name}: out_train"),
        );
        assert_close(
            &bn.mean.value(),
            fx.get("after_train.mean"),
            1e-5,
            "after_train.mean",
        );
        assert_close(
            &bn.var.value(),
            fx.get("after_train.var"),
            1e-5,
            "after_train.var",
        );
        assert_grads(&fx, &bn, &input, &out, 1e-5);

        let mut bn = build()?;
        bn.eval();
        assert_close(
            &bn.forward(fx.get("input"))?,
            fx.get("out_eval"),
            1e-5,
            &format!("{name}: out_eval"),
        );
    }
    Ok(())
}

#[test]
fn layer_norm_matches_nnx() -> Result<()> {
    for name in ["layernorm", "layernorm_rank3"] {
        let fx = Fixture::open(name);
        let mut ln = LayerNorm::new(fx.usize("num_features"), &mut Rngs::new(0))?;
        assert!(fx.load_state(&mut ln).is_clean());
        let input = Var::from_tensor(fx.get("input"))?;
        let out = ln.forward(input.as_tensor())?;
        assert_close(&out, fx.get("out_eval"), 1e-5, name);
        if fx.tensors.contains_key("grad_r") {
            assert_grads(&fx, &ln, &input, &out, 1e-5);
        }
    }
    Ok(())
}
