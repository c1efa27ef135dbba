use artifex_core::activation::Activation;
use artifex_core::layers::{Conv, Padding};
use artifex_core::prelude::*;

/// The seed's `ResidualBlock` (NHWC): conv-BN-act-conv-BN plus a shortcut, then act.
///
/// Difference from the seed: `stride > 1` without `downsample` is a configuration error here
/// (the seed builds it and then fails adding an identity of the wrong size).
#[module(serde)]
#[check(stride == 1 || downsample, "stride {stride} changes the spatial size; set downsample = true so the shortcut matches")]
pub struct ResidualBlock {
    /// 3x3, `stride`, SAME.
    #[init(Conv::builder(channels, channels, vec![3, 3]).strides(vec![stride, stride]).build(rngs)?)]
    pub conv1: Conv,
    /// After `conv1`.
    #[new(channels)]
    pub bn1: BatchNorm,
    /// 3x3, stride 1, SAME.
    #[new(channels, channels, vec![3, 3])]
    pub conv2: Conv,
    /// After `conv2`.
    #[new(channels)]
    pub bn2: BatchNorm,
    /// 1x1, `stride`, VALID projection when `downsample`.
    #[init(if downsample { Some(Conv::builder(channels, channels, vec![1, 1]).strides(vec![stride, stride]).padding(Padding::Valid).build(rngs)?) } else { None })]
    pub shortcut: Option<Conv>,
    /// After `shortcut`.
    #[new(channels, when = downsample)]
    pub shortcut_bn: Option<BatchNorm>,
    /// Channels in and out.
    #[config]
    pub channels: usize,
    /// Stride of `conv1` and the shortcut.
    #[config(default = 1)]
    pub stride: usize,
    /// Project the shortcut.
    #[config(default = false)]
    pub downsample: bool,
    /// Activation.
    #[config(default = Activation::Relu)]
    pub activation: Activation,
}

impl ResidualBlock {
    /// `x (batch, h, w, channels) -> (batch, h / stride, w / stride, channels)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self
            .activation
            .apply(&self.bn1.forward(&self.conv1.forward(x)?)?)?;
        let out = self.bn2.forward(&self.conv2.forward(&out)?)?;
        let identity = match (&self.shortcut, &self.shortcut_bn) {
            (Some(conv), Some(bn)) => bn.forward(&conv.forward(x)?)?,
            _ => x.clone(),
        };
        self.activation.apply(&(out + identity)?)
    }
}
