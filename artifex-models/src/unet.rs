use artifex_core::layers::{Conv, ConvTranspose};
use artifex_core::prelude::*;

/// `[Conv or ConvTranspose, BatchNorm]`: one U-Net block (paths `N.0.kernel`, `N.1.mean`).
pub type UNetBlock<C> = (C, BatchNorm);

/// The seed's `UNetEncoder`: stride-2 3x3 convolutions with BatchNorm and ReLU, returning the
/// encoding and the input of every block (the skip connections).
#[module(serde)]
#[check(channels_list.len() >= 2, "channels_list needs at least two entries, got {channels_list:?}")]
pub struct UNetEncoder {
    /// One block per consecutive pair of `channels_list`.
    #[init(channels_list.windows(2).map(|c| Ok((
        Conv::builder(c[0], c[1], vec![3, 3]).strides(vec![2, 2]).build(rngs)?,
        BatchNorm::new(c[1], rngs)?,
    ))).collect::<Result<_>>()?)]
    pub down_blocks: Vec<UNetBlock<Conv>>,
    /// Channels from input to bottleneck.
    #[config]
    pub channels_list: Vec<usize>,
}

impl UNetEncoder {
    /// `x (batch, h, w, c0) -> (encoded, skip connections in encoder order)`.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let (mut x, mut skips) = (x.clone(), Vec::new());
        for (conv, bn) in &self.down_blocks {
            skips.push(x.clone());
            x = activation::relu(&bn.forward(&conv.forward(&x)?)?)?;
        }
        Ok((x, skips))
    }
}

/// The seed's `UNetDecoder`: stride-2 transposed convolutions with BatchNorm and ReLU, each
/// followed by concatenation of the matching skip connection.
///
/// Difference from the seed: the seed concatenates skips without widening the next block's
/// input, so any decoder of two or more blocks fails. Here block `i + 1` takes
/// `channels_list[i + 1] + skip_channels[-(i + 1)]` channels; `skip_channels` are the channels
/// of the encoder's skips in encoder order (its `channels_list` without the last entry).
#[module(serde)]
#[check(channels_list.len() >= 2, "channels_list needs at least two entries, got {channels_list:?}")]
pub struct UNetDecoder {
    /// One block per consecutive pair of `channels_list`.
    #[init((0..channels_list.len() - 1).map(|i| {
        let skip = if i == 0 { 0 } else { skip_channels.iter().rev().nth(i - 1).copied().unwrap_or(0) };
        Ok((
            ConvTranspose::builder(channels_list[i].checked_add(skip).ok_or_else(|| Error::config("UNetDecoder", format!("channels_list[{i}] + skip channels {skip} overflows usize")))?, channels_list[i + 1], vec![3, 3]).strides(vec![2, 2]).build(rngs)?,
            BatchNorm::new(channels_list[i + 1], rngs)?,
        ))
    }).collect::<Result<_>>()?)]
    pub up_blocks: Vec<UNetBlock<ConvTranspose>>,
    /// Channels from bottleneck to output.
    #[config]
    pub channels_list: Vec<usize>,
    /// Channels of the encoder's skip connections, in encoder order.
    #[config]
    pub skip_channels: Vec<usize>,
}

impl UNetDecoder {
    /// Upsamples `x`, concatenating `skips[-(i + 1)]` after block `i` while skips remain.
    pub fn forward(&self, x: &Tensor, skips: &[Tensor]) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, (conv, bn)) in self.up_blocks.iter().enumerate() {
            x = activation::relu(&bn.forward(&conv.forward(&x)?)?)?;
            if let Some(skip) = skips.iter().rev().nth(i) {
                // Same rank and the same batch, height and width; any channels.
                let lead = x.dims().get(..3).unwrap_or(x.dims());
                if skip.rank() != x.rank() || skip.dims().get(..3) != Some(lead) {
                    return Err(Error::Shape {
                        module: format!("UNetDecoder.up_blocks.{i}"),
                        expected: format!("a skip connection of shape {lead:?} + [*]"),
                        got: skip.dims().to_vec(),
                    });
                }
                x = artifex_core::ops::cat(&[&x, skip], 3)?;
            }
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_of_low_rank_is_a_shape_error_not_a_panic() -> Result<()> {
        let decoder = UNetDecoder::new(vec![8, 4, 2], vec![2, 4], &mut Rngs::new(0))?;
        let x = Tensor::ones((1, 2, 2, 8), DType::F32, &Device::Cpu)?;
        for skip in [
            Tensor::ones((4, 4), DType::F32, &Device::Cpu)?,
            Tensor::ones(4, DType::F32, &Device::Cpu)?,
        ] {
            let err = decoder
                .forward(&x, std::slice::from_ref(&skip))
                .unwrap_err();
            let Error::Shape { module, got, .. } = &err else {
                panic!("expected a shape error, got {err}");
            };
            assert_eq!(module, "UNetDecoder.up_blocks.0");
            assert_eq!(got, skip.dims());
        }
        Ok(())
    }
}
