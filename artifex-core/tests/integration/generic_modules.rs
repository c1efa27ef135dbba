//! Generic modules (`#[module]` and `#[derive(Module)]` over a layer type), a submodule built
//! from its config (`#[from_config]`), the forward written once (`#[layer]`) and named
//! constructor arguments (`from_args`); configuration errors of nested modules name their path.

use artifex_core::prelude::*;

/// `x + inner(x)` around any layer built from its config; its own config (with the inner
/// layer's) is serializable.
#[module(serde)]
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

/// Identical layers in a row, with a hand-written constructor.
#[derive(Module)]
pub struct Stack<L> {
    layers: Vec<L>,
}

/// The bound declared instead of inferred.
#[module(bound = "L: Layer + Configurable")]
pub struct Twice<L> {
    #[from_config]
    first: L,
    #[from_config]
    second: L,
}

fn input() -> Result<Tensor> {
    Ok(Tensor::arange(0f32, 8.0, &Device::Cpu)?.reshape((2, 4))?)
}

#[test]
fn residual_over_linear_is_built_from_the_linear_config() -> Result<()> {
    let model = Residual::<Linear>::new(Linear::builder(4, 4).use_bias(false), &mut Rngs::new(0))?;
    let paths: Vec<String> = model.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["inner.kernel"]);
    // The same seed draws the same kernel as a plain Linear.
    let plain = Linear::builder(4, 4)
        .use_bias(false)
        .build(&mut Rngs::new(0))?;
    let x = input()?;
    let expected = (&x + plain.forward(&x)?)?.to_vec2::<f32>()?;
    assert_eq!(model.forward(&x)?.to_vec2::<f32>()?, expected);
    // The whole config is serializable and rebuilds the same model.
    let json = serde_json::to_string(&model.config()).expect("serialize");
    assert!(
        json.contains("\"in_features\":4") && json.contains("\"dtype\":\"f32\""),
        "{json}"
    );
    let config: <Residual<Linear> as Configurable>::Config =
        serde_json::from_str(&json).expect("deserialize");
    let again = Residual::<Linear>::from_config(config, &mut Rngs::new(0))?;
    assert_eq!(again.forward(&x)?.to_vec2::<f32>()?, expected);
    Ok(())
}

#[test]
fn a_generic_layer_lives_in_a_boxed_layer_list_and_follows_train_and_eval() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let mut layers: Vec<BoxedLayer> = vec![
        boxed(Residual::<Linear>::new(Linear::builder(4, 4), rngs)?),
        boxed(Residual::<Dropout>::new(Dropout::builder(0.5), rngs)?),
    ];
    let paths: Vec<String> = layers.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "0.inner.kernel",
            "0.inner.bias",
            "1.inner.rngs.count",
            "1.inner.rngs.key"
        ]
    );
    let x = input()?;
    layers.eval();
    let mut h = x.clone();
    for layer in &layers {
        h = layer.forward(&h)?;
    }
    // In eval mode dropout is the identity: the second block doubles its input.
    let first = layers[0].forward(&x)?;
    assert_eq!(h.to_vec2::<f32>()?, (&first * 2.0)?.to_vec2::<f32>()?);
    // A per-call override reaches the dropout inside the generic block.
    let trained = layers[1].forward_t(&first, Some(true))?;
    assert_ne!(trained.to_vec2::<f32>()?, h.to_vec2::<f32>()?);
    Ok(())
}

#[test]
fn layer_attribute_gives_candle_module_traits() -> Result<()> {
    let model = Residual::<Linear>::new(Linear::builder(4, 4), &mut Rngs::new(1))?;
    let x = input()?;
    let ours = model.forward(&x)?.to_vec2::<f32>()?;
    let candle = candle_nn::ModuleT::forward_t(&model, &x, false)?.to_vec2::<f32>()?;
    assert_eq!(ours, candle);
    let linear = Linear::new(4, 2, &mut Rngs::new(1))?;
    let via_candle = candle_nn::Module::forward(&linear, &x)?.to_vec2::<f32>()?;
    assert_eq!(via_candle, linear.forward(&x)?.to_vec2::<f32>()?);
    Ok(())
}

#[test]
fn derive_module_on_a_generic_stack_and_declared_bounds() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let stack = Stack {
        layers: vec![Linear::new(4, 4, rngs)?, Linear::new(4, 4, rngs)?],
    };
    let paths: Vec<String> = stack.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "layers.0.kernel",
            "layers.0.bias",
            "layers.1.kernel",
            "layers.1.bias"
        ]
    );
    let twice = Twice::<LayerNorm>::new(LayerNorm::builder(4), LayerNorm::builder(4), rngs)?;
    assert_eq!(twice.num_params(), 16);
    Ok(())
}

#[test]
fn constructor_arguments_can_be_named() -> Result<()> {
    use artifex_core::layers::LinearArgs;
    let named = Linear::from_args(LinearArgs {
        in_features: 4,
        out_features: 2,
    })
    .use_bias(false)
    .build(&mut Rngs::new(3))?;
    let positional = Linear::builder(4, 2)
        .use_bias(false)
        .build(&mut Rngs::new(3))?;
    assert_eq!((named.in_features, named.out_features), (4, 2));
    let x = input()?;
    assert_eq!(
        named.forward(&x)?.to_vec2::<f32>()?,
        positional.forward(&x)?.to_vec2::<f32>()?
    );
    Ok(())
}

/// A block whose configuration is checked.
#[module]
#[check((0.0..1.0).contains(&rate), "rate must be in [0, 1), got {rate}")]
pub struct GatedBlock {
    #[init(Linear::new(width, width, rngs)?)]
    gate: Linear,
    #[config]
    width: usize,
    #[config]
    rate: f64,
}

/// Blocks built in a list by an expression.
#[module]
pub struct Net {
    #[init(rates.iter().map(|&r| GatedBlock::new(4, r, rngs)).collect::<Result<Vec<_>>>()?)]
    blocks: Vec<GatedBlock>,
    #[config]
    rates: Vec<f64>,
}

#[test]
fn configuration_errors_of_nested_modules_name_their_path() {
    let rngs = &mut Rngs::new(0);
    let err = Net::new(vec![0.1, 1.5], rngs).map(|_| ()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "blocks.1 (GatedBlock): invalid configuration: rate must be in [0, 1), got 1.5"
    );
    let err = Residual::<Dropout>::new(Dropout::builder(1.5), rngs)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "inner (Dropout): invalid configuration: dropout rate must be in [0, 1], got 1.5"
    );
    let net = Net::new(vec![0.1, 0.2], rngs).expect("valid rates");
    assert_eq!(net.rates, [0.1, 0.2]);
    assert_eq!((net.blocks[1].width, net.blocks[1].rate), (4, 0.2));
    // At the root, and after a failed nested build, the type alone.
    let err = GatedBlock::new(4, 2.0, rngs).map(|_| ()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "GatedBlock: invalid configuration: rate must be in [0, 1), got 2"
    );
}
