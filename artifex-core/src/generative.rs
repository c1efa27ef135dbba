//! Artifex's `GenerativeModel` protocol in Rust: structured outputs and prior sampling.

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::{Module, Result, Rngs};

/// What a generative model's forward returns: the scalar `loss`, named scalar metrics
/// (`reconstruction_loss`, `kl_loss`, ...) and named tensors (`reconstruction`, `latent`, ...).
#[derive(Clone, Debug)]
pub struct ModelOutput {
    /// The scalar training objective.
    pub loss: Tensor,
    /// Scalar metrics for logging (the loss included as `loss`).
    pub metrics: BTreeMap<String, Tensor>,
    /// Named output tensors.
    pub tensors: BTreeMap<String, Tensor>,
}

impl ModelOutput {
    /// An output with a loss (also recorded as metric `loss`).
    pub fn new(loss: Tensor) -> Self {
        let metrics = BTreeMap::from([("loss".to_string(), loss.clone())]);
        Self {
            loss,
            metrics,
            tensors: BTreeMap::new(),
        }
    }

    /// Adds a scalar metric.
    pub fn with_metric(mut self, name: &str, value: Tensor) -> Self {
        self.metrics.insert(name.to_string(), value);
        self
    }

    /// Adds a named tensor.
    pub fn with_tensor(mut self, name: &str, value: Tensor) -> Self {
        self.tensors.insert(name.to_string(), value);
        self
    }

    /// A named tensor, if present.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// The metrics as host numbers, for logging.
    pub fn scalar_metrics(&self) -> Result<BTreeMap<String, f64>> {
        self.metrics
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    v.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?,
                ))
            })
            .collect()
    }
}

/// A model that trains on batches and samples from its prior (Artifex's `GenerativeModel`).
pub trait GenerativeModel: Module {
    /// Runs the model on a batch and returns the loss, metrics and output tensors. Randomness
    /// (dropout, reparameterization) comes from the model's own rng streams.
    fn forward(&self, batch: &Tensor) -> Result<ModelOutput>;

    /// Draws `n` samples from the prior using the `sample` stream of `rngs`.
    fn sample(&self, n: usize, rngs: &mut Rngs) -> Result<Tensor>;

    /// The training objective for a batch and its forward output (default: `output.loss`).
    fn loss_fn(&self, batch: &Tensor, output: &ModelOutput) -> Result<Tensor> {
        let _ = batch;
        Ok(output.loss.clone())
    }
}
