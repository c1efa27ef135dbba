// A generic regularizer: with its bounds declared, the derived walk finds the impl
// (`#[regularizer]` makes the compiler check it; without the marker it is found the same).
use artifex_core::prelude::*;

#[derive(Module)]
#[regularizer]
#[artifex(bound = "L: Layer")]
struct Penalized<L> {
    inner: L,
}

impl<L: Layer> Regularizer for Penalized<L> {
    fn regularization_loss(&self) -> Result<Tensor> {
        Ok(Tensor::new(2f32, &Device::Cpu)?)
    }
}

#[derive(Module)]
#[artifex(bound = "L: Layer")]
struct Unmarked<L> {
    inner: L,
}

impl<L: Layer> Regularizer for Unmarked<L> {
    fn regularization_loss(&self) -> Result<Tensor> {
        Ok(Tensor::new(3f32, &Device::Cpu)?)
    }
}

fn main() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let model = (
        Penalized { inner: Linear::new(2, 2, rngs)? },
        Unmarked { inner: Linear::new(2, 2, rngs)? },
    );
    let total = model.collect_regularization_loss()?.expect("two penalties");
    assert_eq!(total.to_scalar::<f32>()?, 5.0);
    Ok(())
}
