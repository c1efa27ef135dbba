use artifex_core::losses::{gaussian_kl, mse};
use artifex_core::prelude::*;
use serde::{Deserialize, Serialize};

use crate::CustomVAE;

/// The configuration of [`MyCustomGenerativeModel`] (the seed's `config` dict), saved in its
/// checkpoints so that `from_checkpoint` can rebuild the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerativeConfig {
    /// Latent size (default 20).
    pub latent_dim: usize,
    /// One example's shape (default `[28, 28, 1]`).
    pub input_shape: Vec<usize>,
}

impl Default for GenerativeConfig {
    fn default() -> Self {
        Self {
            latent_dim: 20,
            input_shape: vec![28, 28, 1],
        }
    }
}

/// The seed's `MyCustomGenerativeModel`: a CustomVAE behind the `GenerativeModel` protocol.
///
/// Difference from the seed: `sample` draws from the `sample` stream of the `Rngs` it is
/// given (falling back to `default`, an error if neither exists) instead of a fixed key.
#[module(serde)]
pub struct MyCustomGenerativeModel {
    /// The VAE (named `encoder` as in the seed).
    #[new(config.input_shape.clone(), config.latent_dim, vec![512, 256], vec![256, 512])]
    pub encoder: CustomVAE,
    /// The configuration.
    #[config]
    pub config: GenerativeConfig,
}

impl GenerativeModel for MyCustomGenerativeModel {
    /// Reconstruction (MSE) + KL, with `reconstruction` and `latent` outputs.
    fn forward(&self, x: &Tensor) -> Result<ModelOutput> {
        let output = self.encoder.forward(x)?;
        let reconstruction_loss = mse(&output.reconstruction, x)?;
        let kl_loss = gaussian_kl(&output.mean, &output.logvar)?;
        Ok(ModelOutput::new((&reconstruction_loss + &kl_loss)?)
            .with_tensor("reconstruction", output.reconstruction)
            .with_tensor("latent", output.latent)
            .with_metric("reconstruction_loss", reconstruction_loss)
            .with_metric("kl_loss", kl_loss))
    }

    /// Decodes `z ~ N(0, I)` from the `sample` stream.
    fn sample(&self, num_samples: usize, rngs: &mut Rngs) -> Result<Tensor> {
        self.encoder.sample(num_samples, rngs)
    }
}
