use std::sync::Arc;

use candle_core::{DType, Tensor};

use crate::distributed::{self, Communicator};

use crate::activation::Activation;
use crate::init::Init;
use crate::{module, BatchStat, Mode, ModulePath, Param, Result};

/// Batch normalization over every axis but the last (NNX `nnx.BatchNorm`).
///
/// Training mode normalizes with the batch statistics (biased variance `E[x²] - E[x]²`) and
/// updates the running `mean` / `var` as `m * running + (1 - m) * batch`; eval mode uses the
/// running averages. The running statistics are [`BatchStat`]s: saved, never optimized.
///
/// Under data-parallel training (several ranks, see [`crate::distributed`]) the default is
/// per-replica statistics, as `jax.pmap` without an `axis_name`: each rank normalizes with
/// its own shard's statistics and keeps its own running averages (no communication in the
/// forward pass). `.sync_stats(true)` (NNX: `axis_name`) sums the per-feature counts, sums
/// and sums of squares over the ranks of the training step's communicator, inside autograd,
/// so every rank normalizes with the global batch's statistics: N ranks compute what one
/// process computes on the whole batch, and the running averages stay identical.
///
/// Synchronized mode takes the same code path at every world size, one rank included (within
/// a trainer's step; outside one, such as a direct call, there is no communicator and the
/// layer computes locally, with the fused kernel): the statistics and the normalization are
/// computed in `f64` and rounded to the input's dtype at the end, so the per-rank partial sums
/// added in rank order round to the same values as one sum over the whole batch, and a
/// one-process run in synchronized mode is the exact reference of an N-rank run up to the
/// summation order of the gradients. It is slower than the fused `f32` kernel of per-replica
/// mode.
#[module(serde)]
#[derive(Debug)]
#[check(num_features > 0, "num_features must be positive, got {num_features}")]
#[check((0.0..=1.0).contains(&momentum), "momentum must be in [0, 1], got {momentum}")]
#[check(epsilon >= 0.0, "epsilon must be non-negative, got {epsilon}")]
pub struct BatchNorm {
    /// Per-feature scale (ones).
    #[param(init = scale_init, shape = [num_features], dtype = dtype, when = use_scale)]
    pub scale: Option<Param>,
    /// Per-feature bias (zeros).
    #[param(init = bias_init, shape = [num_features], dtype = dtype, when = use_bias)]
    pub bias: Option<Param>,
    /// Running mean.
    #[batch_stat(init = zeros, shape = [num_features], dtype = dtype)]
    pub mean: BatchStat,
    /// Running (biased) variance.
    #[batch_stat(init = ones, shape = [num_features], dtype = dtype)]
    pub var: BatchStat,
    /// Features (the last axis).
    #[config]
    pub num_features: usize,
    /// Running-average momentum.
    #[config(default = 0.99)]
    pub momentum: f64,
    /// Added to the variance.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Learn a scale.
    #[config(default = true)]
    pub use_scale: bool,
    /// Learn a bias.
    #[config(default = true)]
    pub use_bias: bool,
    /// Parameter dtype.
    #[config(default = DType::F32)]
    pub dtype: DType,
    /// Scale initializer.
    #[config(default = crate::init::ones())]
    pub scale_init: Init,
    /// Bias initializer.
    #[config(default = crate::init::zeros())]
    pub bias_init: Init,
    /// Batch statistics over all ranks of a data-parallel training step (default: per rank).
    #[config(default = false)]
    pub sync_stats: bool,
    mode: Mode,
    path: ModulePath,
}

#[crate::layer]
impl BatchNorm {
    /// True in training mode (batch statistics, running averages updated).
    pub fn is_training(&self) -> bool {
        self.mode.is_training()
    }

    /// Normalizes in the module's mode.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, None)
    }

    /// `activation(forward(x))`; in training mode with ReLU on 2-D CPU `f32` data (not
    /// synchronized across ranks), one fused op (the same values, and gradients to float
    /// rounding).
    pub fn forward_activated(&self, x: &Tensor, activation: &Activation) -> Result<Tensor> {
        let plain = |x: &Tensor| activation.apply(&self.forward(x)?);
        let training = self.mode.resolve(None);
        if !matches!(activation, Activation::Relu)
            || x.rank() != 2
            || !training
            || self.synced_communicator().is_some()
        {
            return plain(x);
        }
        self.path
            .expect_features("BatchNorm", x, 2, self.num_features)?;
        match self.fused_train(x, true)? {
            Some(y) => Ok(y),
            None => plain(x),
        }
    }

    /// Normalizes; `train` overrides the mode for this call (NNX `use_running_average = !train`).
    pub fn forward_t(&self, x: &Tensor, train: Option<bool>) -> Result<Tensor> {
        self.path
            .expect_features("BatchNorm", x, 2, self.num_features)?;
        super::over_rows(x, self.num_features, |x2| {
            let training = self.mode.resolve(train);
            let synced = self.synced_communicator().filter(|_| training);
            if let Some(comm) = &synced {
                return self.synced_train(x2, comm);
            }
            if training {
                if let Some(y) = self.fused_train(x2, false)? {
                    return Ok(y);
                }
            } else if let Some(y) = self.fused_eval(x2)? {
                return Ok(y);
            }
            let (mean, var) = if training {
                let mean = x2.mean_keepdim(0)?;
                let var = (x2.sqr()?.mean_keepdim(0)? - mean.sqr()?)?.relu()?;
                self.update_running(&mean.detach().squeeze(0)?, &var.detach().squeeze(0)?)?;
                (mean, var)
            } else {
                (
                    self.mean.value().unsqueeze(0)?,
                    self.var.value().unsqueeze(0)?,
                )
            };
            self.normalize(x2, &mean, var)
        })
    }
}

impl BatchNorm {
    /// `(x - mean) / sqrt(var + eps) * scale + bias` for `(rows, features)` input and
    /// `(1, features)` statistics, in the dtype of `x2` (scale and bias converted to it).
    fn normalize(&self, x2: &Tensor, mean: &Tensor, var: Tensor) -> Result<Tensor> {
        let dtype = x2.dtype();
        let mut mul = (var + self.epsilon)?.sqrt()?.recip()?;
        if let Some(scale) = &self.scale {
            mul = mul.broadcast_mul(&scale.to_dtype(dtype)?)?;
        }
        let mut y = x2.broadcast_sub(mean)?.broadcast_mul(&mul)?;
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(&bias.to_dtype(dtype)?)?;
        }
        Ok(y)
    }

    /// The communicator to synchronize with: `sync_stats` (or the trainer's
    /// `sync_batch_stats`) and a training step in progress, of any world size (one rank takes
    /// the same path as N, so it is their exact reference).
    fn synced_communicator(&self) -> Option<Arc<dyn Communicator>> {
        if !(self.sync_stats || distributed::batch_stats_synced()) {
            return None;
        }
        distributed::current()
    }

    /// Training mode with the global batch's statistics: computed in `f64` from the row
    /// counts, sums and sums of squares all-reduced (differentiably) over the ranks, the
    /// normalization in `f64` too, rounded to the input's dtype at the end.
    fn synced_train(&self, x2: &Tensor, comm: &Arc<dyn Communicator>) -> Result<Tensor> {
        let f = self.num_features;
        let x = x2.to_dtype(DType::F64)?;
        let rows = Tensor::new(&[[x.dim(0)? as f64]], x.device())?;
        let local = Tensor::cat(&[&x.sum_keepdim(0)?, &x.sqr()?.sum_keepdim(0)?, &rows], 1)?;
        let total = distributed::all_reduce_sum(&local, comm)?;
        let count = total.narrow(1, 2 * f, 1)?;
        let mean = total.narrow(1, 0, f)?.broadcast_div(&count)?;
        let sq = total.narrow(1, f, f)?.broadcast_div(&count)?;
        let var = (sq - mean.sqr()?)?.relu()?;
        let dtype = self.mean.value().dtype();
        self.update_running(
            &mean.detach().squeeze(0)?.to_dtype(dtype)?,
            &var.detach().squeeze(0)?.to_dtype(dtype)?,
        )?;
        Ok(self.normalize(&x, &mean, var)?.to_dtype(x2.dtype())?)
    }
}

impl BatchNorm {
    /// `running = momentum * running + (1 - momentum) * batch` for `(features,)` statistics.
    fn update_running(&self, mean: &Tensor, var: &Tensor) -> Result<()> {
        let m = self.momentum;
        for (stat, batch) in [(&self.mean, mean), (&self.var, var)] {
            stat.set(&((stat.value() * m)? + (batch * (1.0 - m))?)?)?;
        }
        Ok(())
    }

    /// The fused CPU kernel of training mode (followed by a ReLU when `relu`), when it
    /// applies (contiguous f32 CPU data, scale and bias present, fast paths on); `None`
    /// otherwise.
    fn fused_train(&self, x2: &Tensor, relu: bool) -> Result<Option<Tensor>> {
        use crate::kernels::{applies, batch_norm};
        let (Some(scale), Some(bias)) = (&self.scale, &self.bias) else {
            return Ok(None);
        };
        if !(applies(x2) && applies(scale) && applies(bias) && applies(&self.mean.value())) {
            return Ok(None);
        }
        let (mean, var) = batch_norm::batch_stats(x2)?;
        let dev = x2.device();
        self.update_running(
            &Tensor::from_slice(&mean, self.num_features, dev)?,
            &Tensor::from_slice(&var, self.num_features, dev)?,
        )?;
        let y = batch_norm::batch_norm_train(x2, mean, &var, scale, bias, self.epsilon, relu)?;
        Ok(Some(y))
    }
}

impl BatchNorm {
    /// The fused CPU kernel of eval mode (running statistics), when it applies; `None`
    /// otherwise.
    fn fused_eval(&self, x2: &Tensor) -> Result<Option<Tensor>> {
        use crate::kernels::{applies, batch_norm};
        let (Some(scale), Some(bias)) = (&self.scale, &self.bias) else {
            return Ok(None);
        };
        let (mean, var) = (self.mean.value(), self.var.value());
        if ![x2, scale, bias, &mean, &var].into_iter().all(applies) {
            return Ok(None);
        }
        let y = batch_norm::batch_norm_eval(x2, &mean, &var, scale, bias, self.epsilon)?;
        Ok(Some(y))
    }
}
