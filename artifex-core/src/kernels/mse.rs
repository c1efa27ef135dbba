//! Mean squared error as one custom op: the forward sums `(pred - target)²` in one pass
//! (f64 sums per fixed chunk, added in chunk order, so the value does not depend on the thread
//! count and is no less exact than the plain f32 sum); the backward hands `pred` (and
//! `target`, when it needs a gradient) `±(pred - target) * (2 g / n)` in one pass, where the
//! plain path runs a subtraction, a square, a sum and a division forward and four ops back.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::{cpu_f32, pool, with_f32};

/// Elements per task (fixed, so the split depends on the length only).
const CHUNK: usize = 1 << 14;

struct Mse;

fn same_len(p: &[f32], t: &[f32]) -> candle_core::Result<()> {
    if p.len() != t.len() {
        candle_core::bail!(
            "artifex-mse: prediction of {} values, target of {}",
            p.len(),
            t.len()
        );
    }
    Ok(())
}

impl CustomOp2 for Mse {
    fn name(&self) -> &'static str {
        "artifex-mse"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (Some(p), Some(t)) = (cpu_f32(s1, l1), cpu_f32(s2, l2)) else {
            candle_core::bail!("artifex-mse: expected contiguous f32 operands");
        };
        same_len(p, t)?;
        let mut partials = vec![0f64; p.len().div_ceil(CHUNK)];
        pool::for_chunks(&mut partials, 1, |i, s| {
            let range = i * CHUNK..p.len().min((i + 1) * CHUNK);
            s[0] = p[range.clone()]
                .iter()
                .zip(&t[range])
                .map(|(&a, &b)| {
                    let d = f64::from(a - b);
                    d * d
                })
                .sum();
        });
        let mean = partials.iter().sum::<f64>() / p.len() as f64;
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    fn bwd(
        &self,
        pred: &Tensor,
        target: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        crate::autodiff::refuse_fused_backward("artifex-mse", "mse")?;
        let n = pred.elem_count();
        let scale = (2.0 * f64::from(grad.to_scalar::<f32>()?) / n.max(1) as f64) as f32;
        let diff = |sign: f32| {
            with_f32(pred, |p| {
                with_f32(target, |t| {
                    same_len(p, t)?;
                    let c = sign * scale;
                    Ok(pool::collect_chunks(p.len(), CHUNK, |start, n| {
                        let (p, t) = (&p[start..start + n], &t[start..start + n]);
                        p.iter().zip(t).map(move |(&a, &b)| (a - b) * c)
                    }))
                })
            })
            .and_then(|d| Tensor::from_vec(d, pred.shape(), pred.device()))
        };
        let dp = pred.track_op().then(|| diff(1.0)).transpose()?;
        let dt = target.track_op().then(|| diff(-1.0)).transpose()?;
        Ok((dp, dt))
    }
}

/// `mean((pred - target)²)` as the fused op; only for tensors of one shape where
/// [`super::applies`] holds for both.
pub(crate) fn mse(pred: &Tensor, target: &Tensor) -> candle_core::Result<Tensor> {
    pred.apply_op2(target, Mse)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    /// The fused loss and its gradients against the plain ops, over more than one chunk and
    /// with a target that needs a gradient too.
    #[test]
    fn matches_the_plain_ops() -> candle_core::Result<()> {
        // 7 columns, more than two chunks.
        let n = 7 * 4733;
        let values = |mul: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * mul % 1009) as f32 - 504.0) / 300.0)
                .collect()
        };
        let run = |fused: bool| -> candle_core::Result<(f32, Vec<f32>, Vec<f32>)> {
            let p = Var::from_vec(values(7919), (n / 7, 7), &Device::Cpu)?;
            let t = Var::from_vec(values(104_729), (n / 7, 7), &Device::Cpu)?;
            let loss = match fused {
                true => super::mse(p.as_tensor(), t.as_tensor())?,
                false => (p.as_tensor() - t.as_tensor())?.sqr()?.mean_all()?,
            };
            let grads = (&loss * 3.0)?.backward()?;
            let g = |v: &Var| -> candle_core::Result<Vec<f32>> {
                grads
                    .get(v.as_tensor())
                    .expect("a gradient")
                    .flatten_all()?
                    .to_vec1()
            };
            Ok((loss.to_scalar()?, g(&p)?, g(&t)?))
        };
        let (fused, plain) = (run(true)?, run(false)?);
        assert!(
            (fused.0 - plain.0).abs() <= 1e-5 * plain.0.abs(),
            "{} vs {}",
            fused.0,
            plain.0
        );
        for (f, p) in [(&fused.1, &plain.1), (&fused.2, &plain.2)] {
            for (a, b) in f.iter().zip(p) {
                assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
        assert!(fused.1.iter().zip(&fused.2).all(|(a, b)| *a == -*b));
        Ok(())
    }
}
