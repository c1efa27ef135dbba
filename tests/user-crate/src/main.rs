//! A user-defined layer and model: derive, train one step, save, reload; a generic module
//! built from its inner layer's config and user layers in a `Vec<BoxedLayer>` with their
//! forward written once (`#[layer]`); fine-tuning with frozen blocks and an optimizer over
//! a filter.

use artifex_core::candle_nn::{Optimizer, SGD};
use artifex_core::optim::{Adam, Optimizer as _};
use artifex_core::prelude::*;

/// A gated linear unit, declared with `#[module]`.
#[module]
pub struct Glu {
    #[param(init = glorot_uniform, shape = [din, 2 * dout])]
    kernel: Param,
    #[param(init = zeros, shape = [2 * dout])]
    bias: Param,
    #[config]
    din: usize,
    #[config]
    dout: usize,
    path: ModulePath,
}

/// The forward, written once: `#[layer]` also makes it `Glu`'s `Layer` (and candle `Module`).
#[layer]
impl Glu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.path.expect_features("Glu", x, 2, self.din)?;
        let h = x.matmul(&self.kernel)?.broadcast_add(&self.bias)?;
        let (a, b) = (h.narrow(1, 0, self.dout)?, h.narrow(1, self.dout, self.dout)?);
        Ok((a * candle_nn_sigmoid(&b)?)?)
    }
}

fn candle_nn_sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(artifex_core::candle_nn::ops::sigmoid(x)?)
}

/// `x + inner(x)` around any layer that is built from a config.
#[module]
pub struct Residual<L: Layer + Configurable> {
    #[from_config]
    inner: L,
}

#[layer]
impl<L: Layer + Configurable> Residual<L> {
    fn forward_t(&self, x: &Tensor, train: Option<bool>) -> Result<Tensor> {
        Ok((x + self.inner.forward_t(x, train)?)?)
    }
}

/// A model with a hand-written constructor: only `#[derive(Module)]`.
#[derive(Module)]
pub struct Model {
    blocks: Vec<Glu>,
    norm: BatchNorm,
    head: Linear,
    tail: Vec<BoxedLayer>,
    #[config]
    note: String,
}

impl Model {
    fn new(rngs: &mut Rngs) -> Result<Self> {
        Ok(Self {
            blocks: vec![
                Glu::from_args(GluArgs { din: 4, dout: 8 }).build(rngs)?,
                Glu::new(8, 8, rngs)?,
            ],
            norm: BatchNorm::new(8, rngs)?,
            head: Linear::new(8, 1, rngs)?,
            tail: vec![
                boxed(Residual::<Linear>::new(Linear::builder(1, 1), rngs)?),
                boxed(Glu::new(1, 1, rngs)?),
            ],
            note: "user model".into(),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        h = self.head.forward(&self.norm.forward(&h)?)?;
        for layer in &self.tail {
            h = layer.forward(&h)?;
        }
        Ok(h)
    }
}

fn main() -> Result<()> {
    let mut model = Model::new(&mut Rngs::new(0))?;
    println!("{}", model.summary());
    let paths: Vec<String> = model.state().into_iter().map(|(p, _)| p).collect();
    assert!(paths.contains(&"tail.0.inner.kernel".to_string()), "{paths:?}");
    assert!(paths.contains(&"tail.1.kernel".to_string()), "{paths:?}");
    let x = Tensor::arange(0f32, 64.0, &Device::Cpu)?.reshape((16, 4))?.affine(0.05, -1.0)?;
    let target = x.sum_keepdim(1)?;
    let loss_of = |m: &Model| -> Result<Tensor> { Ok((m.forward(&x)? - &target)?.sqr()?.mean_all()?) };

    let mut sgd = SGD::new(model.trainable_vars(), 0.05)?;
    let before = loss_of(&model)?;
    sgd.backward_step(&before)?;
    let after = loss_of(&model)?;
    let (before, after) = (before.to_scalar::<f32>()?, after.to_scalar::<f32>()?);
    println!("loss before {before:.5} after {after:.5}");
    assert!(after < before, "one SGD step must lower the loss");

    // Fine-tuning: freeze the GLU blocks, then Adam over the head only (NNX `wrt=`).
    assert_eq!(model.freeze(&Filter::path("blocks"))?, 4);
    let blocks_before = model.blocks[0].kernel.to_vec2::<f32>()?;
    let head_before = model.head.kernel.to_vec2::<f32>()?;
    let mut adam = Adam::new(model.params_wrt(&Filter::path("head")), 1e-2)?;
    adam.backward_step(&loss_of(&model)?)?;
    assert_eq!(model.blocks[0].kernel.to_vec2::<f32>()?, blocks_before, "frozen blocks moved");
    assert_ne!(model.head.kernel.to_vec2::<f32>()?, head_before, "the head did not train");
    model.unfreeze(&Filter::path("blocks"))?;

    let path = std::env::temp_dir().join(format!("artifex-user-crate-{}.safetensors", std::process::id()));
    model.eval();
    model.save_safetensors(&path)?;
    let mut reloaded = Model::new(&mut Rngs::new(123))?;
    assert!(reloaded.load_safetensors(&path)?.is_clean());
    reloaded.eval();
    let (a, b) = (model.forward(&x)?, reloaded.forward(&x)?);
    let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert_eq!(diff, 0.0, "reloaded model must match");
    assert_eq!(model.note, reloaded.note);
    let _ = std::fs::remove_file(&path);
    println!("user crate OK: trained one step, saved, reloaded ({} params)", model.num_params());
    Ok(())
}
