// `crate = path`: a crate that re-exports artifex_core under another name can use the
// macros through that name.
mod reexport {
    pub use artifex_core as nn;
}

use reexport::nn::{candle_core::Tensor, Param, Result, Rngs};

#[reexport::nn::module(crate = reexport::nn)]
struct Scale {
    #[param(init = ones, shape = [width])]
    scale: Param,
    #[config]
    width: usize,
}

#[derive(reexport::nn::Module)]
#[artifex(crate = reexport::nn)]
struct Pair {
    first: Scale,
    second: Scale,
}

impl Scale {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_mul(&self.scale)?)
    }
}

fn main() -> Result<()> {
    use reexport::nn::Module;
    let rngs = &mut Rngs::new(0);
    let pair = Pair { first: Scale::new(3, rngs)?, second: Scale::new(3, rngs)? };
    let x = Tensor::ones(3, reexport::nn::candle_core::DType::F32, &reexport::nn::candle_core::Device::Cpu)?;
    let y = pair.second.forward(&pair.first.forward(&x)?)?;
    assert_eq!(y.to_vec1::<f32>()?, [1.0, 1.0, 1.0]);
    let paths: Vec<String> = pair.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["first.scale", "second.scale"]);
    Ok(())
}
