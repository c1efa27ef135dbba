use artifex_core::layers::{Conv, ConvTranspose};
use artifex_core::ops;
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
/// input, so any decoder of two or more blocks fails. Here the blocks take
/// [`decoder_in_channels`] channels; `skip_channels` are the channels of the encoder's skips
/// in encoder order (its `channels_list` without the last entry).
#[module(serde)]
#[check(channels_list.len() >= 2, "channels_list needs at least two entries, got {channels_list:?}")]
pub struct UNetDecoder {
    /// One block per consecutive pair of `channels_list`.
    #[init(decoder_in_channels(&channels_list, &skip_channels)?.into_iter().zip(&channels_list[1..]).map(|(c, &out)| Ok((
        ConvTranspose::builder(c, out, vec![3, 3]).strides(vec![2, 2]).build(rngs)?,
        BatchNorm::new(out, rngs)?,
    ))).collect::<Result<_>>()?)]
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
                x = ops::cat_features(&x, skip)
                    .map_err(|e| e.in_module(format!("UNetDecoder.up_blocks.{i}")))?;
            }
        }
        Ok(x)
    }
}

/// The input channels of each block of a U-Net decoder whose block `i` outputs
/// `channels_list[i + 1]` and is followed by the encoder's skip `skip_channels[-(i + 1)]`
/// (skips in encoder order) while skips remain: block 0 takes `channels_list[0]`, block
/// `i + 1` takes `channels_list[i + 1]` plus the channels of the skip concatenated after block
/// `i`. One entry per consecutive pair of `channels_list`.
///
/// ```
/// // Encoder [3, 16, 32, 64]: skips of 3, 16, 32 channels; decoder [64, 32, 16, 8].
/// let widths = artifex_models::decoder_in_channels(&[64, 32, 16, 8], &[3, 16, 32])?;
/// assert_eq!(widths, [64, 32 + 32, 16 + 16]);
/// # Ok::<(), artifex_core::Error>(())
/// ```
///
/// Errors: [`Error::Config`] naming `UNetDecoder` when a sum overflows `usize`.
pub fn decoder_in_channels(channels_list: &[usize], skip_channels: &[usize]) -> Result<Vec<usize>> {
    let skips = std::iter::once(&0).chain(skip_channels.iter().rev().chain(std::iter::repeat(&0)));
    channels_list
        .iter()
        .take(channels_list.len().saturating_sub(1))
        .zip(skips)
        .enumerate()
        .map(|(i, (&c, &skip))| {
            c.checked_add(skip).ok_or_else(|| {
                Error::config(
                    "UNetDecoder",
                    format!("channels_list[{i}] + skip channels {skip} overflows usize"),
                )
            })
        })
        .collect()
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
