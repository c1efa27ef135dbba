//! Unit tests of the typed layer: shapes, the boundary check, twins and paths.

use candle_core::{DType, Device};

use super::*;
use crate::{layers, Error, Module, Result, Rngs};

fn ones(dims: &[usize]) -> Result<candle_core::Tensor> {
    Ok(candle_core::Tensor::ones(dims, DType::F32, &Device::Cpu)?)
}

fn paths<M: Module>(m: &M) -> Vec<String> {
    m.state().into_iter().map(|(p, _)| p).collect()
}

#[test]
fn shapes_describe_and_accept_run_time_dims() {
    assert_eq!(<Rows<784>>::describe(), "[*, 784]");
    assert_eq!(<Images<28, 28, 1>>::describe(), "[*, 28, 28, 1]");
    assert_eq!(<(Const<3>,)>::RANK, 1);
    assert!(<Rows<4>>::accepts(&[7, 4]));
    assert!(!<Rows<4>>::accepts(&[7, 5]));
    assert!(!<Rows<4>>::accepts(&[7, 1, 4]));
    assert!(<(Dyn, Dyn, Dyn, Dyn, Const<2>)>::accepts(&[1, 2, 3, 4, 2]));
}

#[test]
fn the_boundary_check_names_both_shapes() -> Result<()> {
    let x = Tensor::<Rows<4>>::new(ones(&[3, 4])?)?;
    assert_eq!(x.dims(), &[3, 4]);
    let err = Tensor::<Rows<5>>::new(ones(&[3, 4])?).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }));
    assert_eq!(
        err.to_string(),
        "typed tensor: expected input of shape [*, 5], got [3, 4]"
    );
    let back: candle_core::Tensor = x.clone().into();
    assert_eq!(back.dims(), &[3, 4]);
    Ok(())
}

#[test]
fn reshape_to_infers_one_dynamic_axis() -> Result<()> {
    let x = Tensor::<Images<2, 3, 1>>::new(ones(&[5, 2, 3, 1])?)?;
    let flat: Tensor<Rows<6>> = x.reshape_to()?;
    assert_eq!(flat.dims(), &[5, 6]);
    assert!(x.reshape_to::<Rows<4>>().is_err());
    assert!(x.reshape_to::<(Dyn, Dyn)>().is_err());
    assert_eq!(x.reshape_to::<(Const<30>,)>()?.dims(), &[30]);
    Ok(())
}

#[test]
fn typed_layers_are_their_dynamic_twins() -> Result<()> {
    let typed = Seq::<(Linear<6, 4>, BatchNorm<4>, LayerNorm<4>)>::build(&mut Rngs::new(3))?;
    let mut rngs = Rngs::new(3);
    let dynamic = (
        layers::Linear::new(6, 4, &mut rngs)?,
        layers::BatchNorm::new(4, &mut rngs)?,
        layers::LayerNorm::new(4, &mut rngs)?,
    );
    assert_eq!(paths(&typed), paths(&dynamic));
    assert_eq!(paths(&typed)[..3], ["0.kernel", "0.bias", "1.scale"]);
    let (a, b) = (typed.layers.0.as_dynamic(), &dynamic.0);
    assert_eq!(
        a.kernel.flatten_all()?.to_vec1::<f32>()?,
        b.kernel.flatten_all()?.to_vec1::<f32>()?
    );
    let x = Tensor::<Rows<6>>::new(ones(&[2, 6])?)?;
    let y = typed.forward_t(&x, Some(true))?;
    let z = dynamic
        .2
        .forward(&dynamic.1.forward_t(&dynamic.0.forward(&x)?, Some(true))?)?;
    assert_eq!(y.to_vec2::<f32>()?, z.to_vec2::<f32>()?);
    Ok(())
}

#[test]
fn from_dynamic_refuses_other_sizes() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let err = Linear::<3, 2>::from_dynamic(layers::Linear::new(3, 5, rngs)?).unwrap_err();
    assert_eq!(
        err.to_string(),
        "typed Linear<3, 2>: invalid configuration: the dynamic layer maps 3 features to 5"
    );
    assert!(BatchNorm::<3>::from_dynamic(layers::BatchNorm::new(4, rngs)?).is_err());
    assert!(LayerNorm::<3>::from_dynamic(layers::LayerNorm::new(4, rngs)?).is_err());
    let no_bias =
        Linear::<3, 2>::from_dynamic(Linear::<3, 2>::builder().use_bias(false).build(rngs)?)?;
    assert_eq!(paths(&no_bias), ["kernel"]);
    Ok(())
}

/// A model mixing a typed stack with a `Dyn` input: the dynamic layer's check names the path.
#[derive(crate::Module)]
struct Model {
    encoder: Seq<(Then<Linear<4, 3>, Relu>, Dropout, Linear<3, 2>)>,
}

#[test]
fn dyn_axes_are_checked_at_run_time_with_the_path() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let mut model = Model {
        encoder: Seq::new((
            Then::new(Linear::new(rngs)?, Relu),
            Dropout::new(0.5, rngs)?,
            Linear::new(rngs)?,
        )),
    };
    model.eval();
    assert_eq!(
        paths(&model),
        [
            "encoder.0.kernel",
            "encoder.0.bias",
            "encoder.1.rngs.count",
            "encoder.1.rngs.key",
            "encoder.2.kernel",
            "encoder.2.bias"
        ]
    );
    let ok = Tensor::<(Dyn, Dyn)>::new(ones(&[2, 4])?)?;
    let y: Tensor<Rows<2>> = model.encoder.forward(&ok)?;
    assert_eq!(y.dims(), &[2, 2]);
    let bad = Tensor::<(Dyn, Dyn)>::new(ones(&[2, 5])?)?;
    let err = model.encoder.forward(&bad).unwrap_err().to_string();
    assert_eq!(
        err,
        "encoder.0 (Linear): expected input of shape [*, 4], got [2, 5]"
    );
    Ok(())
}

#[test]
fn activations_match_the_functions() -> Result<()> {
    let x = Tensor::<Rows<3>>::new(candle_core::Tensor::new(
        &[[-1f32, 0.0, 2.0]],
        &Device::Cpu,
    )?)?;
    assert_eq!(Relu.forward(&x)?.to_vec2::<f32>()?, [[0.0, 0.0, 2.0]]);
    assert_eq!(Identity.forward(&x)?.to_vec2::<f32>()?, x.to_vec2::<f32>()?);
    let gelu = DynActivation(crate::activation::Activation::Gelu).forward(&x)?;
    assert_eq!(gelu.to_vec2::<f32>()?, Gelu.forward(&x)?.to_vec2::<f32>()?);
    let p = Softmax.forward(&x)?.sum_all()?.to_scalar::<f32>()?;
    assert!((p - 1.0).abs() < 1e-6);
    Ok(())
}

#[test]
fn conv_output_sizes() {
    assert_eq!(conv_output_size(28, 3, 1, true), 28);
    assert_eq!(conv_output_size(28, 3, 2, true), 14);
    assert_eq!(conv_output_size(9, 3, 2, true), 5);
    assert_eq!(conv_output_size(28, 3, 1, false), 26);
    assert_eq!(conv_output_size(28, 5, 2, false), 12);
    assert_eq!(conv_output_size(2, 3, 1, false), 0);
}
