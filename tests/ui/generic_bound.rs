use artifex_core::prelude::*;

// A generic #[module] needs `L: Configurable` for the field built from its config; the
// error names the bound and points at that field.
#[module]
struct Wrap<L> {
    #[from_config]
    inner: L,
}

fn main() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let wrap = Wrap::<f32>::new(1.0, rngs)?;
    println!("{}", wrap.num_params());
    Ok(())
}
