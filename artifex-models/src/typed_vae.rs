//! The seed's CustomVAE for MNIST (784 -> 512 -> 256 -> 128 -> 20 and back, BatchNorm and
//! ReLU) in the typed style: every size is in the types, and a miswired layer fails to build.

use artifex_core::losses::custom_vae_loss;
use artifex_core::prelude::*;
use artifex_core::typed::{
    self, BatchNorm, Build, Const, Dyn, Forward, Linear, Relu, Rows, Seq, Then,
};

/// A hidden block of the seed's VAE: the layer, then ReLU (the seed applies the activation
/// after every list item, Linear and BatchNorm alike).
pub type Block<L> = Then<L, Relu>;

/// The encoder list `[Linear, BatchNorm] x 3`, 784 -> 512 -> 256 -> 128.
pub type TypedEncoder = Seq<(
    Block<Linear<784, 512>>,
    Block<BatchNorm<512>>,
    Block<Linear<512, 256>>,
    Block<BatchNorm<256>>,
    Block<Linear<256, 128>>,
    Block<BatchNorm<128>>,
)>;

/// The decoder list `[Linear, BatchNorm] x 3`, 20 -> 128 -> 256 -> 512.
pub type TypedDecoder = Seq<(
    Block<Linear<20, 128>>,
    Block<BatchNorm<128>>,
    Block<Linear<128, 256>>,
    Block<BatchNorm<256>>,
    Block<Linear<256, 512>>,
    Block<BatchNorm<512>>,
)>;

/// A batch of 28 x 28 x 1 images.
pub type MnistImages = (Dyn, Const<28>, Const<28>, Const<1>);

/// [`CustomVAE`](crate::CustomVAE) with `input_shape [28, 28, 1]`, `latent_dim 20`,
/// `encoder_layers [512, 256, 128]`, `decoder_layers [128, 256, 512]`, ReLU and BatchNorm,
/// written with typed layers.
///
/// Its dynamic twin built from the same `Rngs` seed has bitwise the same parameters, outputs
/// and state paths (`encoder.0.kernel`, `encoder.1.mean`, ...); each loads the other's
/// checkpoints.
#[module]
pub struct TypedVae {
    /// `[Linear, BatchNorm] x 3` with ReLU after each.
    #[init(Build::build(rngs)?)]
    pub encoder: TypedEncoder,
    /// Latent mean head.
    #[init(Build::build(rngs)?)]
    pub mean_layer: Linear<128, 20>,
    /// Latent log-variance head.
    #[init(Build::build(rngs)?)]
    pub logvar_layer: Linear<128, 20>,
    /// `[Linear, BatchNorm] x 3` with ReLU after each.
    #[init(Build::build(rngs)?)]
    pub decoder: TypedDecoder,
    /// Back to 784 pixels.
    #[init(Build::build(rngs)?)]
    pub output_layer: Linear<512, 784>,
    /// Reparameterization noise.
    #[rng(stream = "sample")]
    pub rngs: RngStream,
}

/// What [`TypedVae::forward`] returns.
#[derive(Clone, Debug)]
pub struct TypedVaeOutput {
    /// Decoded images in `[0, 1]`.
    pub reconstruction: typed::Tensor<MnistImages>,
    /// Latent mean.
    pub mean: typed::Tensor<Rows<20>>,
    /// Latent log-variance.
    pub logvar: typed::Tensor<Rows<20>>,
    /// The sampled latent.
    pub latent: typed::Tensor<Rows<20>>,
}

impl TypedVae {
    /// `x (batch, 784) -> (mean, logvar)`, each `(batch, 20)`.
    pub fn encode(
        &self,
        x: &typed::Tensor<Rows<784>>,
    ) -> Result<(typed::Tensor<Rows<20>>, typed::Tensor<Rows<20>>)> {
        let h = self.encoder.forward(x)?;
        Ok((self.mean_layer.forward(&h)?, self.logvar_layer.forward(&h)?))
    }

    /// `mean + eps * exp(logvar / 2)` with `eps` from the model's `sample` stream.
    pub fn reparameterize(
        &self,
        mean: &typed::Tensor<Rows<20>>,
        logvar: &typed::Tensor<Rows<20>>,
    ) -> Result<typed::Tensor<Rows<20>>> {
        let eps = self
            .rngs
            .next_key()
            .normal(mean.dims(), mean.dtype(), mean.device())?;
        typed::Tensor::new((mean.inner() + (eps * (logvar.inner() * 0.5)?.exp()?)?)?)
    }

    /// `z (batch, 20) -> (batch, 28, 28, 1)` in `[0, 1]`.
    pub fn decode(&self, z: &typed::Tensor<Rows<20>>) -> Result<typed::Tensor<MnistImages>> {
        let logits = self.output_layer.forward(&self.decoder.forward(z)?)?;
        typed::Sigmoid.forward(&logits)?.reshape_to()
    }

    /// Encode, reparameterize, decode.
    pub fn forward(&self, x: &typed::Tensor<MnistImages>) -> Result<TypedVaeOutput> {
        let (mean, logvar) = self.encode(&x.reshape_to()?)?;
        let latent = self.reparameterize(&mean, &logvar)?;
        let reconstruction = self.decode(&latent)?;
        Ok(TypedVaeOutput {
            reconstruction,
            mean,
            logvar,
            latent,
        })
    }
}

impl GenerativeModel for TypedVae {
    /// Types the batch (`[*, 28, 28, 1]`, checked here), then the seed's loss as
    /// [`CustomVAE`](crate::CustomVAE) computes it.
    fn forward(&self, batch: &Tensor) -> Result<ModelOutput> {
        let out = TypedVae::forward(self, &typed::Tensor::new(batch.clone())?)?;
        let (loss, metrics) =
            custom_vae_loss(batch, &out.reconstruction, &out.mean, &out.logvar, 1.0)?;
        let mut output = ModelOutput::new(loss);
        output
            .metrics
            .extend(metrics.into_iter().filter(|(k, _)| k != "beta"));
        Ok(output
            .with_tensor("reconstruction", out.reconstruction.into_inner())
            .with_tensor("mean", out.mean.into_inner())
            .with_tensor("logvar", out.logvar.into_inner())
            .with_tensor("latent", out.latent.into_inner()))
    }

    /// Decodes `z ~ N(0, I)` drawn from the `sample` stream of `rngs`.
    fn sample(&self, n: usize, rngs: &mut Rngs) -> Result<Tensor> {
        let device = self.output_layer.as_dynamic().kernel.device().clone();
        let z = rngs.sample()?.normal(&[n, 20], DType::F32, &device)?;
        Ok(self.decode(&typed::Tensor::new(z)?)?.into_inner())
    }
}
