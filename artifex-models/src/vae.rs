use artifex_core::activation::Activation;
use artifex_core::losses::custom_vae_loss;
use artifex_core::ops;
use artifex_core::prelude::*;

use crate::dense_stack;

/// The seed's `CustomVAE`: an MLP encoder to a diagonal Gaussian, reparameterization, an MLP
/// decoder with a sigmoid output. Paths match NNX: `encoder.0.kernel`, `encoder.1.mean`, ...
///
/// As in the seed, the activation follows *every* encoder/decoder layer, Linear and BatchNorm
/// alike. Differences from the seed: reparameterization draws from the model's own `sample`
/// stream (`rngs.key` / `rngs.count` in the state, forked at construction from the `sample`
/// or `default` stream) instead of silently falling back to a fixed key when no `sample`
/// stream is passed, so every call draws fresh noise and a resumed run continues the sequence.
#[module(serde)]
#[check(!encoder_layers.is_empty() && !decoder_layers.is_empty(), "encoder_layers and decoder_layers need at least one width")]
#[check(latent_dim > 0 && input_dim > 0, "latent_dim and the input size must be positive, got {latent_dim} and {input_shape:?}")]
pub struct CustomVAE {
    /// `[Linear, BatchNorm?]` per encoder width.
    #[init(dense_stack(input_dim, &encoder_layers, use_batch_norm, rngs)?)]
    pub encoder: Vec<BoxedLayer>,
    /// Latent mean head.
    #[new(encoder_layers[encoder_layers.len() - 1], latent_dim)]
    pub mean_layer: Linear,
    /// Latent log-variance head.
    #[new(encoder_layers[encoder_layers.len() - 1], latent_dim)]
    pub logvar_layer: Linear,
    /// `[Linear, BatchNorm?]` per decoder width.
    #[init(dense_stack(latent_dim, &decoder_layers, use_batch_norm, rngs)?)]
    pub decoder: Vec<BoxedLayer>,
    /// Back to the flattened input size.
    #[new(decoder_layers[decoder_layers.len() - 1], input_dim)]
    pub output_layer: Linear,
    /// Reparameterization noise.
    #[rng(stream = "sample")]
    pub rngs: RngStream,
    /// One example's shape, e.g. `[28, 28, 1]`.
    #[config]
    pub input_shape: Vec<usize>,
    /// Latent size.
    #[config]
    pub latent_dim: usize,
    /// Encoder widths.
    #[config]
    pub encoder_layers: Vec<usize>,
    /// Decoder widths.
    #[config]
    pub decoder_layers: Vec<usize>,
    /// Activation after every hidden layer.
    #[config(default = Activation::Relu)]
    pub activation: Activation,
    /// Interleave BatchNorm after each hidden Linear.
    #[config(default = true)]
    pub use_batch_norm: bool,
    /// `prod(input_shape)`.
    #[config(computed = checked_product("CustomVAE", "input_shape", &input_shape)?)]
    pub input_dim: usize,
}

/// What [`CustomVAE::forward`] returns (the seed's dict).
#[derive(Clone, Debug)]
pub struct VaeOutput {
    /// Decoded input, shaped like the input.
    pub reconstruction: Tensor,
    /// Latent mean.
    pub mean: Tensor,
    /// Latent log-variance.
    pub logvar: Tensor,
    /// The sampled latent.
    pub latent: Tensor,
}

impl CustomVAE {
    /// `x (batch, *input_shape) -> (mean, logvar)`.
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut h = x.flatten_from(1)?;
        for layer in &self.encoder {
            h = layer.forward_activated(&h, &self.activation)?;
        }
        Ok((self.mean_layer.forward(&h)?, self.logvar_layer.forward(&h)?))
    }

    /// `mean + eps * exp(logvar / 2)` with `eps` from the model's `sample` stream.
    pub fn reparameterize(&self, mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
        // Under data-parallel training each rank keeps its rows of the global batch's noise.
        let key = self.rngs.next_key();
        let eps =
            artifex_core::distributed::normal_rows(&key, mean.dims(), mean.dtype(), mean.device())?;
        Ok((mean + (eps * (logvar * 0.5)?.exp()?)?)?)
    }

    /// `z (batch, latent_dim) -> (batch, *input_shape)` in `[0, 1]`.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = z.clone();
        for layer in &self.decoder {
            h = layer.forward_activated(&h, &self.activation)?;
        }
        let x = self
            .output_layer
            .forward_activated(&h, &Activation::Sigmoid)?;
        ops::unflatten(&x, 1, &self.input_shape)
    }

    /// Encode, reparameterize, decode.
    pub fn forward(&self, x: &Tensor) -> Result<VaeOutput> {
        let (mean, logvar) = self.encode(x)?;
        let latent = self.reparameterize(&mean, &logvar)?;
        let reconstruction = self.decode(&latent)?;
        Ok(VaeOutput {
            reconstruction,
            mean,
            logvar,
            latent,
        })
    }
}

impl GenerativeModel for CustomVAE {
    /// The seed's loss (`custom_vae_loss` with beta 1): MSE reconstruction + Gaussian KL.
    fn forward(&self, batch: &Tensor) -> Result<ModelOutput> {
        let out = CustomVAE::forward(self, batch)?;
        let (loss, metrics) =
            custom_vae_loss(batch, &out.reconstruction, &out.mean, &out.logvar, 1.0)?;
        let mut output = ModelOutput::new(loss);
        output
            .metrics
            .extend(metrics.into_iter().filter(|(k, _)| k != "beta"));
        Ok(output
            .with_tensor("reconstruction", out.reconstruction)
            .with_tensor("mean", out.mean)
            .with_tensor("logvar", out.logvar)
            .with_tensor("latent", out.latent))
    }

    /// Decodes `z ~ N(0, I)` drawn from the `sample` stream of `rngs`.
    fn sample(&self, n: usize, rngs: &mut Rngs) -> Result<Tensor> {
        let z = rngs.sample()?.normal(
            &[n, self.latent_dim],
            DType::F32,
            self.output_layer.kernel.device(),
        )?;
        self.decode(&z)
    }
}
