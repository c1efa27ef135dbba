//! GAN training: two optimizers, alternating discriminator and generator updates.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use super::{CheckpointDir, LossOutput, MetricsLogger};
use crate::checkpoint::SaveOptions;
use crate::data::DataLoader;
use crate::optim::Optimizer;
use crate::{Error, Module, Result};

/// Trains a two-player model: each step updates the discriminator on a real batch with its
/// optimizer, then the generator with the other one. Both objectives come from closures, so
/// any GAN loss (non-saturating, hinge, least squares, Wasserstein) plugs in.
pub struct AdversarialTrainer<M, D, G> {
    model: M,
    d_opt: D,
    g_opt: G,
    step: u64,
}

impl<M: Module, D: Optimizer, G: Optimizer> AdversarialTrainer<M, D, G> {
    /// `d_opt` must hold the discriminator's parameters and `g_opt` the generator's.
    pub fn new(model: M, d_opt: D, g_opt: G) -> Self {
        Self {
            model,
            d_opt,
            g_opt,
            step: 0,
        }
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Gives the model back.
    pub fn into_model(self) -> M {
        self.model
    }

    /// Steps taken so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// One discriminator update on `real`, then one generator update. A non-finite loss or
    /// metric refuses the update it belongs to (the error names it).
    pub fn train_step(
        &mut self,
        real: &Tensor,
        d_loss: impl Fn(&M, &Tensor) -> Result<LossOutput>,
        g_loss: impl Fn(&M, usize) -> Result<LossOutput>,
    ) -> Result<BTreeMap<String, f64>> {
        let step = self.step + 1;
        let (loss, metrics) = d_loss(&self.model, real)?;
        let mut host = finite(step, "d_loss", &loss, &metrics)?;
        self.d_opt.step(&loss.backward()?)?;
        let (loss, metrics) = g_loss(&self.model, real.dim(0)?)?;
        host.extend(finite(step, "g_loss", &loss, &metrics)?);
        self.g_opt.step(&loss.backward()?)?;
        self.step = step;
        Ok(host)
    }

    /// Runs `steps` steps over `loader` (cycling epochs), logging to `out_dir/metrics.jsonl`
    /// and saving `out_dir/checkpoints/step-N/` at the end. The first tensor of each batch is
    /// the real data.
    pub fn fit(
        &mut self,
        loader: &mut DataLoader,
        steps: u64,
        out_dir: &Path,
        d_loss: impl Fn(&M, &Tensor) -> Result<LossOutput>,
        g_loss: impl Fn(&M, usize) -> Result<LossOutput>,
    ) -> Result<BTreeMap<String, f64>> {
        std::fs::create_dir_all(out_dir).map_err(|source| crate::CheckpointError::Io {
            path: out_dir.display().to_string(),
            source,
        })?;
        let mut logger = MetricsLogger::open(
            &out_dir.join("metrics.jsonl"),
            self.step + steps,
            self.step,
            Some(100),
        )?;
        let mut last = BTreeMap::new();
        let end = self.step + steps;
        while self.step < end {
            let Some(batch) = loader.next_batch()? else {
                continue;
            };
            let real = batch
                .first()
                .ok_or_else(|| Error::config("AdversarialTrainer", "empty batch"))?;
            last = self.train_step(real, &d_loss, &g_loss)?;
            logger.log(self.step, "train", &last, None)?;
        }
        logger.finish();
        let mut state: Vec<(String, Tensor)> = Vec::new();
        for (prefix, opt) in [
            ("d.", &self.d_opt as &dyn Optimizer),
            ("g.", &self.g_opt as &dyn Optimizer),
        ] {
            state.extend(
                opt.state_tensors()?
                    .into_iter()
                    .map(|(k, t)| (format!("{prefix}{k}"), t)),
            );
        }
        CheckpointDir::new(out_dir.join("checkpoints"), 1).save(
            self.step,
            &self.model,
            &SaveOptions::default(),
            state,
        )?;
        Ok(last)
    }
}

fn finite(
    step: u64,
    name: &str,
    loss: &Tensor,
    metrics: &super::Metrics,
) -> Result<BTreeMap<String, f64>> {
    let mut host = BTreeMap::new();
    host.insert(
        name.to_string(),
        loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
    );
    for (k, v) in metrics {
        host.insert(k.clone(), v.to_dtype(DType::F64)?.to_scalar::<f64>()?);
    }
    if let Some((metric, value)) = host.iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            step,
            metric: metric.clone(),
            value: *value,
        });
    }
    Ok(host)
}
