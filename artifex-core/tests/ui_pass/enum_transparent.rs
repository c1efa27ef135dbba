//! `#[artifex(transparent)]` on an enum: each variant's module stands in the enum's place.
use artifex_core::prelude::*;

#[derive(Module)]
#[artifex(transparent)]
enum Item<L> {
    Dense(Linear),
    Norm { norm: BatchNorm },
    Other(L),
}

#[derive(Module)]
#[artifex(transparent)]
enum Never {}

fn main() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let items: Vec<Item<Dropout>> = vec![
        Item::Dense(Linear::new(4, 2, rngs)?),
        Item::Norm {
            norm: BatchNorm::new(2, rngs)?,
        },
        Item::Other(Dropout::new(0.5, rngs)?),
    ];
    let paths: Vec<String> = items.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths[..3], ["0.kernel", "0.bias", "1.scale"]);
    let _: Vec<Never> = Vec::new().into_iter().collect();
    Ok(())
}
