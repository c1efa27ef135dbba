//! Classification losses on logits and integer labels: cross-entropy (with optional label
//! smoothing), negative log-likelihood and accuracy.
//!
//! Logits are `(*leading, classes)` and labels are integers (`u8`, `u32`, `i16`, `i32` or
//! `i64`) of the leading shape: `(N, C)` with `(N,)`, `(B, T, C)` with `(B, T)`, or `(C,)` with
//! a scalar label. The per-example values match optax's
//! `softmax_cross_entropy_with_integer_labels` and, with smoothing,
//! `softmax_cross_entropy(logits, smooth_labels(one_hot(labels), alpha))`.

use candle_core::{DType, Tensor, D};

use crate::{Error, Result};

/// How per-example losses become the returned tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// The average over every example (a scalar): what training usually wants.
    #[default]
    Mean,
    /// The sum over every example (a scalar).
    Sum,
    /// No reduction: one loss per example, with the labels' shape.
    None,
}

/// Options of [`cross_entropy_with`]: label smoothing and reduction.
///
/// ```
/// use artifex_core::losses::{self, CrossEntropy, Reduction};
/// use artifex_core::candle_core::{Device, Tensor};
/// let logits = Tensor::new(&[[2.0f32, 0.5, -1.0], [0.1, 0.2, 3.0]], &Device::Cpu)?;
/// let labels = Tensor::new(&[0u32, 2], &Device::Cpu)?;
/// let options = CrossEntropy::default().label_smoothing(0.1).reduction(Reduction::None);
/// let per_example = losses::cross_entropy_with(&logits, &labels, &options)?;
/// assert_eq!(per_example.dims(), &[2]);
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CrossEntropy {
    /// `alpha` in `[0, 1]`: the target puts `1 - alpha + alpha / C` on the label and
    /// `alpha / C` on every other class (optax `smooth_labels`). 0 (the default): plain
    /// cross-entropy.
    pub label_smoothing: f64,
    /// How per-example losses are combined (default: mean).
    pub reduction: Reduction,
}

impl CrossEntropy {
    /// These options with label smoothing `alpha` (checked when the loss is computed).
    pub fn label_smoothing(mut self, alpha: f64) -> Self {
        self.label_smoothing = alpha;
        self
    }

    /// These options with `reduction`.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }
}

/// Mean cross-entropy of `logits (*, C)` against integer `labels (*)`, computed with a
/// max-subtracted log-softmax (finite for any finite logits).
///
/// Errors: labels whose shape is not the logits' leading shape, float labels, non-float
/// logits, a label outside `0..C` (the error names its value, its position and `C`), and an
/// empty batch (no mean exists).
///
/// ```
/// use artifex_core::losses;
/// use artifex_core::candle_core::{Device, Tensor};
/// let logits = Tensor::new(&[[0.0f32, 0.0], [100.0, -100.0]], &Device::Cpu)?;
/// let labels = Tensor::new(&[1u8, 0], &Device::Cpu)?;
/// let loss: f32 = losses::cross_entropy(&logits, &labels)?.to_scalar()?;
/// assert!((loss - std::f32::consts::LN_2 / 2.0).abs() < 1e-6);
/// assert!(losses::cross_entropy(&logits, &Tensor::new(&[2u8, 0], &Device::Cpu)?).is_err());
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    cross_entropy_with(logits, labels, &CrossEntropy::default())
}

/// Cross-entropy with the given [`CrossEntropy`] options (label smoothing, reduction).
///
/// With smoothing `alpha` over `C` classes the per-example loss is
/// `-(1 - alpha) * log p[label] - (alpha / C) * sum_c log p[c]`.
pub fn cross_entropy_with(
    logits: &Tensor,
    labels: &Tensor,
    options: &CrossEntropy,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    let alpha = options.label_smoothing;
    if !(0.0..=1.0).contains(&alpha) {
        return Err(Error::config(
            OP,
            format!("label_smoothing must be in [0, 1], got {alpha}"),
        ));
    }
    let batch = Batch::check(OP, logits, labels, options.reduction)?;
    if batch.is_empty() {
        return batch.reduce(batch.scores.zeros_like()?.sum(1)?);
    }
    let log_probs = stable_log_softmax(&batch.scores)?;
    let picked = log_probs.gather(&batch.labels, 1)?.squeeze(1)?;
    let per_example = if alpha == 0.0 {
        picked.neg()?
    } else {
        let spread = log_probs.mean(1)?;
        ((picked * (alpha - 1.0))? - (spread * alpha)?)?
    };
    batch.reduce(per_example)
}

/// Mean negative log-likelihood of integer `labels (*)` under `log_probs (*, C)` (e.g. the
/// output of [`log_softmax`](crate::activation::log_softmax)): `-mean(log_probs[label])`.
/// Errors as [`cross_entropy`].
///
/// ```
/// use artifex_core::{activation, losses};
/// use artifex_core::candle_core::{Device, Tensor};
/// let logits = Tensor::new(&[[1.0f32, 2.0, 3.0]], &Device::Cpu)?;
/// let labels = Tensor::new(&[2i64], &Device::Cpu)?;
/// let a: f32 = losses::nll(&activation::log_softmax(&logits, -1)?, &labels)?.to_scalar()?;
/// let b: f32 = losses::cross_entropy(&logits, &labels)?.to_scalar()?;
/// assert!((a - b).abs() < 1e-6);
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub fn nll(log_probs: &Tensor, labels: &Tensor) -> Result<Tensor> {
    nll_with(log_probs, labels, Reduction::Mean)
}

/// Negative log-likelihood with an explicit [`Reduction`].
pub fn nll_with(log_probs: &Tensor, labels: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let batch = Batch::check("nll", log_probs, labels, reduction)?;
    if batch.is_empty() {
        return batch.reduce(batch.scores.zeros_like()?.sum(1)?);
    }
    let picked = batch.scores.gather(&batch.labels, 1)?.squeeze(1)?;
    batch.reduce(picked.neg()?)
}

/// The fraction of examples whose highest logit is at their label, as an `f32` scalar tensor
/// on the logits' device (ready for a Trainer metric). Ties go to the lowest class index, as
/// `argmax` does. Errors as [`cross_entropy`].
///
/// ```
/// use artifex_core::losses;
/// use artifex_core::candle_core::{Device, Tensor};
/// let logits = Tensor::new(&[[0.1f32, 0.9], [0.8, 0.2], [0.3, 0.7]], &Device::Cpu)?;
/// let labels = Tensor::new(&[1u32, 1, 1], &Device::Cpu)?;
/// let acc: f32 = losses::accuracy(&logits, &labels)?.to_scalar()?;
/// assert!((acc - 2.0 / 3.0).abs() < 1e-6);
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let batch = Batch::check("accuracy", logits, labels, Reduction::Mean)?;
    let predicted = batch.scores.argmax(1)?;
    let hits = predicted
        .eq(&batch.labels.squeeze(1)?)?
        .to_dtype(DType::F32)?;
    Ok(hits.mean_all()?)
}

/// `x - max - log(sum(exp(x - max)))` along the last axis. The max is a constant for the
/// gradient (the result does not depend on it), so no gradient flows through `argmax`.
fn stable_log_softmax(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&log_sum)?)
}

/// Checked inputs flattened to `(N, C)` scores and `(N, 1)` `u32` labels on the scores'
/// device, with the leading shape to restore for [`Reduction::None`].
struct Batch {
    scores: Tensor,
    labels: Tensor,
    leading: Vec<usize>,
    reduction: Reduction,
}

impl Batch {
    fn check(
        op: &'static str,
        scores: &Tensor,
        labels: &Tensor,
        reduction: Reduction,
    ) -> Result<Self> {
        let dims = scores.dims();
        if !scores.dtype().is_float() {
            return Err(input_error(
                op,
                format!("logits must be floats, got {:?}", scores.dtype()),
            ));
        }
        let Some((&classes, leading)) = dims.split_last() else {
            return Err(Error::Shape {
                module: op.to_string(),
                expected: "[*, classes] for the logits".to_string(),
                got: dims.to_vec(),
            });
        };
        if classes == 0 {
            return Err(Error::Shape {
                module: op.to_string(),
                expected: "[*, classes] with at least one class for the logits".to_string(),
                got: dims.to_vec(),
            });
        }
        if labels.dims() != leading {
            return Err(Error::Shape {
                module: op.to_string(),
                expected: format!(
                    "{leading:?} for the labels (the leading shape of logits {dims:?})"
                ),
                got: labels.dims().to_vec(),
            });
        }
        if !labels.dtype().is_int() {
            return Err(input_error(
                op,
                format!(
                    "labels must be integers (u8, u32, i16, i32, i64), got {:?}",
                    labels.dtype()
                ),
            ));
        }
        let n: usize = leading.iter().product();
        if n == 0 && reduction == Reduction::Mean {
            return Err(input_error(
                op,
                format!("cannot average over an empty batch (logits {dims:?})"),
            ));
        }
        let flat = labels.flatten_all()?.to_dtype(DType::I64)?;
        let host: Vec<i64> = flat.to_vec1()?;
        if let Some((i, bad)) = host
            .iter()
            .enumerate()
            .find(|(_, &l)| l < 0 || l as u64 >= classes as u64)
        {
            return Err(input_error(
                op,
                format!(
                    "label {bad} at position {i} is out of range for {classes} classes (valid: 0 to {})",
                    classes - 1
                ),
            ));
        }
        Ok(Self {
            scores: scores.reshape((n, classes))?,
            labels: flat
                .to_dtype(DType::U32)?
                .to_device(scores.device())?
                .reshape((n, 1))?,
            leading: leading.to_vec(),
            reduction,
        })
    }

    /// True for a batch of no example (only [`Reduction::Sum`] and [`Reduction::None`]
    /// accept one).
    fn is_empty(&self) -> bool {
        self.leading.contains(&0)
    }

    /// Per-example values `(N,)` reduced as asked (or reshaped to the leading shape).
    fn reduce(&self, per_example: Tensor) -> Result<Tensor> {
        Ok(match self.reduction {
            Reduction::Mean => per_example.mean_all()?,
            Reduction::Sum => per_example.sum_all()?,
            Reduction::None => per_example.reshape(self.leading.as_slice())?,
        })
    }
}

fn input_error(op: &str, message: String) -> Error {
    Error::Input {
        module: op.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn loss_f64(logits: &[f64], classes: usize, labels: &[u32], alpha: f64) -> f64 {
        let n = labels.len();
        let x = Tensor::from_slice(logits, (n, classes), &Device::Cpu).unwrap();
        let y = Tensor::from_slice(labels, n, &Device::Cpu).unwrap();
        let options = CrossEntropy::default().label_smoothing(alpha);
        cross_entropy_with(&x, &y, &options)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn gradient_matches_finite_differences_in_f64() {
        let (n, c) = (3, 5);
        let logits: Vec<f64> = (0..n * c)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.6)
            .collect();
        let labels = [4u32, 0, 2];
        for alpha in [0.0, 0.2] {
            let var = Var::from_slice(&logits, (n, c), &Device::Cpu).unwrap();
            let y = Tensor::from_slice(&labels, n, &Device::Cpu).unwrap();
            let options = CrossEntropy::default().label_smoothing(alpha);
            let loss = cross_entropy_with(var.as_tensor(), &y, &options).unwrap();
            let grads = loss.backward().unwrap();
            let analytic: Vec<f64> = grads
                .get(var.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let h = 1e-6;
            for i in 0..n * c {
                let mut plus = logits.clone();
                plus[i] += h;
                let mut minus = logits.clone();
                minus[i] -= h;
                let numeric = (loss_f64(&plus, c, &labels, alpha)
                    - loss_f64(&minus, c, &labels, alpha))
                    / (2.0 * h);
                assert!(
                    (numeric - analytic[i]).abs() < 1e-8,
                    "alpha {alpha}, logit {i}: finite difference {numeric}, backward {}",
                    analytic[i]
                );
            }
        }
    }

    #[test]
    fn full_smoothing_is_uniform_target() {
        // alpha = 1: the target is uniform, the label does not matter.
        let logits = [0.5, -1.0, 2.0];
        let a = loss_f64(&logits, 3, &[0], 1.0);
        let b = loss_f64(&logits, 3, &[2], 1.0);
        assert!((a - b).abs() < 1e-12);
    }

    #[test]
    fn bad_inputs_are_errors_naming_the_problem() {
        let dev = Device::Cpu;
        let logits = Tensor::zeros((4, 10), DType::F32, &dev).unwrap();
        let err = |r: Result<Tensor>| r.unwrap_err().to_string();

        let short = Tensor::zeros(3, DType::U32, &dev).unwrap();
        let e = err(cross_entropy(&logits, &short));
        assert!(
            e.contains("cross_entropy")
                && e.contains("[4]")
                && e.contains("[4, 10]")
                && e.contains("[3]"),
            "{e}"
        );

        let out_of_range = Tensor::new(&[1u32, 2, 12, 3], &dev).unwrap();
        let e = err(cross_entropy(&logits, &out_of_range));
        assert!(
            e.contains("label 12 at position 2") && e.contains("10 classes"),
            "{e}"
        );

        let negative = Tensor::new(&[1i64, -1, 0, 0], &dev).unwrap();
        let e = err(nll(&logits, &negative));
        assert!(e.starts_with("nll:") && e.contains("label -1"), "{e}");

        let float_labels = Tensor::zeros(4, DType::F32, &dev).unwrap();
        let e = err(accuracy(&logits, &float_labels));
        assert!(
            e.contains("accuracy") && e.contains("labels must be integers") && e.contains("F32"),
            "{e}"
        );

        let int_logits = Tensor::zeros((4, 10), DType::U32, &dev).unwrap();
        let e = err(cross_entropy(&int_logits, &short));
        assert!(e.contains("logits must be floats"), "{e}");

        let labels = Tensor::zeros(4, DType::U8, &dev).unwrap();
        let options = CrossEntropy::default().label_smoothing(1.5);
        let e = err(cross_entropy_with(&logits, &labels, &options));
        assert!(
            e.contains("label_smoothing must be in [0, 1], got 1.5"),
            "{e}"
        );

        let empty = Tensor::zeros((0, 10), DType::F32, &dev).unwrap();
        let no_labels = Tensor::zeros(0, DType::U32, &dev).unwrap();
        let e = err(cross_entropy(&empty, &no_labels));
        assert!(e.contains("empty batch"), "{e}");
        let sum = cross_entropy_with(
            &empty,
            &no_labels,
            &CrossEntropy::default().reduction(Reduction::Sum),
        );
        assert_eq!(sum.unwrap().to_scalar::<f32>().unwrap(), 0.0);
        let none = nll_with(&empty, &no_labels, Reduction::None).unwrap();
        assert_eq!(none.dims(), &[0]);

        let scalar = Tensor::new(1.0f32, &dev).unwrap();
        let e = err(cross_entropy(&scalar, &no_labels));
        assert!(e.contains("[*, classes]"), "{e}");
    }

    #[test]
    fn reductions_and_rank3_agree() {
        let dev = Device::Cpu;
        let logits: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let x3 = Tensor::from_vec(logits.clone(), (2, 3, 4), &dev).unwrap();
        let y3 = Tensor::new(&[[0u32, 3, 1], [2, 2, 0]], &dev).unwrap();
        let none = cross_entropy_with(
            &x3,
            &y3,
            &CrossEntropy::default().reduction(Reduction::None),
        )
        .unwrap();
        assert_eq!(none.dims(), &[2, 3]);
        let x2 = x3.reshape((6, 4)).unwrap();
        let y2 = y3.flatten_all().unwrap();
        let flat: Vec<f32> = cross_entropy_with(
            &x2,
            &y2,
            &CrossEntropy::default().reduction(Reduction::None),
        )
        .unwrap()
        .to_vec1()
        .unwrap();
        assert_eq!(none.flatten_all().unwrap().to_vec1::<f32>().unwrap(), flat);
        let mean: f32 = cross_entropy(&x3, &y3).unwrap().to_scalar().unwrap();
        let sum: f32 =
            cross_entropy_with(&x3, &y3, &CrossEntropy::default().reduction(Reduction::Sum))
                .unwrap()
                .to_scalar()
                .unwrap();
        assert!((mean * 6.0 - sum).abs() < 1e-5, "{mean} {sum}");
        assert!((flat.iter().sum::<f32>() - sum).abs() < 1e-5);
        // Every integer label dtype gives the same loss.
        for dtype in [DType::U8, DType::I16, DType::I32, DType::I64] {
            let y = y3.to_dtype(dtype).unwrap();
            let m: f32 = cross_entropy(&x3, &y).unwrap().to_scalar().unwrap();
            assert_eq!(m, mean, "{dtype:?}");
        }
    }
}
