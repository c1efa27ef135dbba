use artifex_core::prelude::*;

// A #[module] with an attribute error: its uses below (constructor, builder setter, the
// Module methods, a field) add no errors of their own.
#[module]
struct Block {
    #[param(init = zeros, shape = [width], bogus = 1)]
    weight: Param,
    #[config]
    width: usize,
    #[config(default = 0.5)]
    rate: f64,
}

#[module]
struct Model {
    #[init(Block::builder(width).rate(0.1).build(rngs)?)]
    block: Block,
    #[config]
    width: usize,
}

fn main() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let model = Model::new(4, rngs)?;
    let block = Block::new(4, rngs)?;
    println!("{} {} {}", model.num_params(), block.state().len(), block.weight.dims().len());
    Ok(())
}
