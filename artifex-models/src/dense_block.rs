use artifex_core::layers::Conv;
use artifex_core::prelude::*;

/// `[BatchNorm, Conv]`: one DenseNet layer (paths `layers.N.0.scale`, `layers.N.1.kernel`).
pub type DenseLayer = (BatchNorm, Conv);

/// The seed's `DenseBlock`: each layer sees the concatenation of all previous feature maps.
#[module(serde)]
pub struct DenseBlock {
    /// Layer `i` maps `in_channels + i * growth_rate` channels to `growth_rate`.
    #[init((0..num_layers).map(|i| {
        let channels = i.checked_mul(growth_rate).and_then(|g| g.checked_add(in_channels)).ok_or_else(|| Error::config("DenseBlock", format!("in_channels {in_channels} + {i} * growth_rate {growth_rate} overflows usize")))?;
        Ok((BatchNorm::new(channels, rngs)?, Conv::new(channels, growth_rate, vec![3, 3], rngs)?))
    }).collect::<Result<_>>()?)]
    pub layers: Vec<DenseLayer>,
    /// Input channels.
    #[config]
    pub in_channels: usize,
    /// Channels each layer adds.
    #[config]
    pub growth_rate: usize,
    /// Number of layers.
    #[config]
    pub num_layers: usize,
}

impl DenseBlock {
    /// `x (batch, h, w, in) -> (batch, h, w, in + num_layers * growth_rate)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // cat(features) of the seed, built one feature at a time: the same values, and two
        // operands per concatenation, which the fused channels-last kernel takes.
        let mut x = x.clone();
        for (bn, conv) in &self.layers {
            let out = conv.forward(&activation::relu(&bn.forward(&x)?)?)?;
            x = artifex_core::ops::cat(&[&x, &out], 3)?;
        }
        Ok(x)
    }
}
