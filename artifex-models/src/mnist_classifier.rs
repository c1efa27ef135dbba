//! `MnistClassifier`: a small conv-net digit classifier for `(N, 28, 28, 1)` images in
//! `[0, 1]`, and `RandomShift`, its training-time augmentation. `examples/mnist_classifier.rs`
//! trains it; the weights shipped in `data/mnist_features/` are its output, and
//! [`MnistClassifier::features`] (the penultimate layer) is the feature space of
//! [`MnistFid`](crate::MnistFid).

use artifex_core::layers::Dropout;
use artifex_core::prelude::*;

/// A digit classifier: two strided convolutions (28 -> 14 -> 7, SAME, ReLU), then Linear -> ReLU (the features)
/// -> dropout -> Linear to 10 logits. Inputs are `(N, 28, 28, 1)` pixels in `[0, 1]`.
///
/// Strided convolutions instead of convolutions plus pooling: the same receptive fields for a
/// quarter of the convolution work, which matters on CPUs where candle's convolution backward
/// is the slow part of a step.
#[module(serde)]
#[check(conv_features.len() == 2 && conv_features.iter().all(|&c| c > 0), "conv_features must be two positive channel counts, got {conv_features:?}")]
#[check(kernel_size > 0 && hidden > 0, "kernel_size and hidden must be positive, got {kernel_size} and {hidden}")]
pub struct MnistClassifier {
    /// Random shifts of the input images while training (identity in eval mode).
    #[init(RandomShift::builder().max_shift(max_shift).build(rngs)?)]
    pub augment: RandomShift,
    /// `kernel_size`², stride 2, 1 -> `conv_features[0]`: 28x28 -> 14x14.
    #[init(Conv::builder(1, conv_features[0], vec![kernel_size, kernel_size]).strides(vec![2]).build(rngs)?)]
    pub conv1: Conv,
    /// `kernel_size`², stride 2, `conv_features[0]` -> `conv_features[1]`: 14x14 -> 7x7.
    #[init(Conv::builder(conv_features[0], conv_features[1], vec![kernel_size, kernel_size]).strides(vec![2]).build(rngs)?)]
    pub conv2: Conv,
    /// The flattened 7x7 maps -> `hidden` features.
    #[init(Linear::new(7 * 7 * conv_features[1], hidden, rngs)?)]
    pub fc: Linear,
    /// On the features, in training mode only.
    #[init(Dropout::new(dropout, rngs)?)]
    pub dropout_layer: Dropout,
    /// `hidden` -> 10 logits.
    #[init(Linear::new(hidden, 10, rngs)?)]
    pub head: Linear,
    /// Output channels of the two convolutions.
    #[config(default = vec![32, 64])]
    pub conv_features: Vec<usize>,
    /// Height and width of both convolution windows.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Width of the penultimate (feature) layer. 64 keeps the shipped weights under 1 MB
    /// (the `fc` kernel, `3136 x hidden`, is most of them) at 98% test accuracy.
    #[config(default = 64)]
    pub hidden: usize,
    /// Dropout rate on the features while training.
    #[config(default = 0.25)]
    pub dropout: f64,
    /// Largest shift, in pixels, of the training-time augmentation (0: none).
    #[config(default = 2)]
    pub max_shift: usize,
    path: ModulePath,
}

impl MnistClassifier {
    /// The penultimate activations `(N, hidden)` of `images (N, 28, 28, 1)` (after ReLU,
    /// before dropout): the feature space for metrics such as FID.
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        let dims = images.dims();
        if dims.len() != 4 || dims[1..] != [28, 28, 1] {
            return Err(self
                .path
                .shape_error("MnistClassifier", "[N, 28, 28, 1]", dims));
        }
        let x = self.conv1.forward(images)?.relu()?;
        let x = self.conv2.forward(&x)?.relu()?;
        let x = x.flatten_from(1)?;
        Ok(self.fc.forward(&x)?.relu()?)
    }

    /// Class logits `(N, 10)`; in training mode the images are randomly shifted first and
    /// the features pass through dropout.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let images = self.augment.forward(images)?;
        let features = self.dropout_layer.forward(&self.features(&images)?)?;
        self.head.forward(&features)
    }

    /// The most likely digit of each image, `(N,)` u32 (in whatever mode the model is in).
    pub fn predict(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.forward(images)?.argmax(D::Minus1)?)
    }
}

/// Data augmentation as a layer: in training mode each image `(N, H, W, C)` moves by a random
/// whole number of pixels in `-max_shift..=max_shift` along each axis (zero fill). The offsets
/// come from the layer's own `augment` stream, whose counter is checkpoint state, so runs are
/// reproducible from the seed and resume with the same draws.
#[module]
#[derive(Debug)]
pub struct RandomShift {
    /// The offset stream.
    #[rng(stream = "augment")]
    pub rngs: RngStream,
    /// Largest shift in pixels.
    #[config(default = 2)]
    pub max_shift: usize,
    mode: Mode,
    path: ModulePath,
}

impl RandomShift {
    /// Shifted images in training mode, the images themselves in eval mode.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        if !self.mode.is_training() || self.max_shift == 0 {
            return Ok(images.clone());
        }
        let dims = images.dims();
        let &[n, h, w, _] = dims else {
            return Err(self.path.shape_error("RandomShift", "[N, H, W, C]", dims));
        };
        let m = self.max_shift;
        let padded = images.pad_with_zeros(1, m, m)?.pad_with_zeros(2, m, m)?;
        let offsets = self
            .rngs
            .next_key()
            .uniform_vec(2 * n, 0.0, (2 * m + 1) as f64);
        let shifted = (0..n)
            .map(|i| {
                let (dy, dx) = (offsets[2 * i] as usize, offsets[2 * i + 1] as usize);
                Ok(padded.narrow(0, i, 1)?.narrow(1, dy, h)?.narrow(2, dx, w)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&shifted, 0)?)
    }
}
