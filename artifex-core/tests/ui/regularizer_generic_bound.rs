use artifex_core::prelude::*;

// A generic regularizer whose impl needs more than the derive's inferred bounds
// (`L: Module`): marked `#[regularizer]`, the unmet bound is an error at the marker instead
// of a penalty silently left out.
#[derive(Module)]
#[regularizer]
struct Penalized<L> {
    inner: L,
}

impl<L: Layer> Regularizer for Penalized<L> {
    fn regularization_loss(&self) -> Result<Tensor> {
        Ok(Tensor::new(0f32, &Device::Cpu)?)
    }
}

fn main() {}
