use artifex_core::prelude::*;

/// `[Linear, BatchNorm?, Linear, BatchNorm?, ...]` through `widths`, as the seed's
/// `_build_encoder` / `_build_decoder` build them (one list, NNX indices `0, 1, 2, ...`).
pub fn dense_stack(
    input: usize,
    widths: &[usize],
    batch_norm: bool,
    rngs: &mut Rngs,
) -> Result<Vec<BoxedLayer>> {
    let mut layers = Vec::new();
    for (features, width) in stack_dims(input, widths) {
        layers.push(boxed(Linear::new(features, width, rngs)?));
        if batch_norm {
            layers.push(boxed(BatchNorm::new(width, rngs)?));
        }
    }
    Ok(layers)
}
