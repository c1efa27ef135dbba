//! `#[new(args..)]` builds a field with its type's `new(args.., rngs)`.
use artifex_core::prelude::*;

#[module]
struct Mlp {
    #[new(din, hidden)]
    first: Linear,
    #[new(hidden, 1)]
    last: Linear,
    #[new(hidden, when = use_norm)]
    norm: Option<LayerNorm>,
    #[new(hidden, when = !use_norm)]
    no_norm: Option<LayerNorm>,
    #[config]
    din: usize,
    #[config]
    hidden: usize,
    #[config(default = true)]
    use_norm: bool,
}

fn main() -> Result<()> {
    let mlp = Mlp::new(3, 5, &mut Rngs::new(0))?;
    let twin_first = Linear::new(3, 5, &mut Rngs::new(0))?;
    assert_eq!(mlp.first.kernel.to_vec2::<f32>()?, twin_first.kernel.to_vec2::<f32>()?);
    assert_eq!(mlp.last.kernel.dims(), &[5, 1]);
    assert!(mlp.norm.is_some() && mlp.no_norm.is_none());
    Ok(())
}
