//! `x @ kernel + bias` as one custom op on direct `gemm` calls: the forward writes the bias
//! rows and accumulates the product onto them in one buffer; the backward reads the
//! transposed operands through strides (no copies), skips the input gradient when the input
//! is a constant (the data batch), and sums the bias gradient in one pass.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::gemm::{new_biased_product, new_products, MatRef};
use super::transpose::transpose;
use super::{cpu_f32, with_f32, Epilogue};
use crate::autodiff::route_param_grad as route;

/// `x @ kernel + bias`, then the `epilogue` (one node for the pair: no activation pass, and
/// no gradient of the pre-activation for candle's backprop to allocate and add up).
struct LinearBias {
    epilogue: Epilogue,
}

impl CustomOp3 for LinearBias {
    fn name(&self) -> &'static str {
        match self.epilogue {
            Epilogue::None => "artifex-linear-bias",
            Epilogue::Relu => "artifex-linear-bias-relu",
            Epilogue::Sigmoid => "artifex-linear-bias-sigmoid",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (k2, n) = l2.shape().dims2()?;
        let (Some(x), Some(kernel), Some(bias)) =
            (cpu_f32(s1, l1), cpu_f32(s2, l2), cpu_f32(s3, l3))
        else {
            candle_core::bail!("artifex-linear-bias: expected contiguous f32 operands");
        };
        if k != k2 || bias.len() != n {
            candle_core::bail!(
                "artifex-linear-bias: shapes ({m}, {k}) @ ({k2}, {n}) + ({})",
                bias.len()
            );
        }
        let (x, kernel) = (MatRef::row_major(x, m, k), MatRef::row_major(kernel, k, n));
        let y = new_biased_product(x, kernel, bias, self.epilogue)?;
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        crate::autodiff::refuse_fused_backward(self.name(), "Linear")?;
        // Through the activation first, when fused.
        let grad = &self.epilogue.grad_through(res, grad)?;
        let ((m, k), n) = (x.dims2()?, kernel.dim(1)?);
        let dev = x.device();
        let needs_dx = x.track_op();
        let mut db = vec![0f32; n];
        let (dw, dx) = with_f32(grad, |g| {
            with_f32(x, |xs| {
                with_f32(kernel, |w| {
                    let g = MatRef::row_major(g, m, n);
                    // dkernel = x^T @ g; dx = g @ kernel^T only when x depends on something
                    // trainable (not for the data batch), from a transposed copy of the kernel
                    // (read through strides, gemm would repack it for every block of rows).
                    let kt = match needs_dx {
                        true => transpose(w, k, n)?,
                        false => Vec::new(),
                    };
                    let mut pairs = vec![(MatRef::row_major(xs, m, k).t(), g)];
                    if needs_dx {
                        pairs.push((g, MatRef::row_major(&kt, n, k)));
                    }
                    let mut outs = new_products(&pairs)?.into_iter();
                    // dbias = column sums of g
                    for row in g.data.chunks_exact(n) {
                        for (s, v) in db.iter_mut().zip(row) {
                            *s += v;
                        }
                    }
                    Ok((outs.next().unwrap_or_default(), outs.next()))
                })
            })
        })?;
        let dx = match dx {
            Some(dx) => Some(Tensor::from_vec(dx, (m, k), dev)?),
            None => None,
        };
        Ok((
            dx,
            route(kernel, Tensor::from_vec(dw, (k, n), dev)?)?,
            route(bias, Tensor::from_vec(db, n, dev)?)?,
        ))
    }
}

/// `x (rows, in) @ kernel (in, out) + bias (out,)`, then the `epilogue`, as one op; only
/// where [`super::applies`] holds for all three.
pub(crate) fn linear_bias(
    x: &Tensor,
    kernel: &Tensor,
    bias: &Tensor,
    epilogue: Epilogue,
) -> candle_core::Result<Tensor> {
    x.apply_op3(kernel, bias, LinearBias { epilogue })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    /// `n` deterministic values in about [-2, 2].
    fn pattern(n: usize, mul: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * mul % 1009) as f32 - 504.0) / 252.0)
            .collect()
    }

    /// gemm picks its micro-kernels at run time (AVX-512 with the `x86-v4` feature where the
    /// CPU has it, else AVX2 / SSE / scalar): whichever this CPU gets, the fused Linear kernel
    /// and candle's matmul agree with an f64 reference up to f32 rounding of the sums.
    #[test]
    fn products_are_right_on_this_cpus_simd_level() -> candle_core::Result<()> {
        #[cfg(target_arch = "x86_64")]
        eprintln!(
            "avx512f: {}, avx2: {}, fma: {}",
            std::arch::is_x86_feature_detected!("avx512f"),
            std::arch::is_x86_feature_detected!("avx2"),
            std::arch::is_x86_feature_detected!("fma")
        );
        let dev = Device::Cpu;
        // Edges of the 16- and 32-wide micro-kernels, and a VAE-sized product.
        for (m, k, n) in [(1, 1, 1), (17, 33, 49), (31, 300, 70), (128, 784, 512)] {
            let (xs, ws, bs) = (
                pattern(m * k, 7919),
                pattern(k * n, 104_729),
                pattern(n, 31),
            );
            let x = Tensor::from_slice(&xs, (m, k), &dev)?;
            let w = Tensor::from_slice(&ws, (k, n), &dev)?;
            let b = Tensor::from_slice(&bs, n, &dev)?;
            let fused = super::linear_bias(&x, &w, &b, super::super::Epilogue::None)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let plain = x.matmul(&w)?.flatten_all()?.to_vec1::<f32>()?;
            for i in 0..m {
                for j in 0..n {
                    let (mut sum, mut abs) = (0f64, 0f64);
                    for p in 0..k {
                        let t = xs[i * k + p] as f64 * ws[p * n + j] as f64;
                        sum += t;
                        abs += t.abs();
                    }
                    // f32 sums of k terms: error well below sqrt(k) roundings of the largest
                    // partial sum; a wrong or missing term is about abs / k.
                    let tol = 16.0 * f32::EPSILON as f64 * (k as f64).sqrt() * abs + 1e-30;
                    let bias = bs[j] as f64;
                    let (f, p) = (fused[i * n + j] as f64, plain[i * n + j] as f64);
                    assert!(
                        (f - sum - bias).abs() <= tol + f32::EPSILON as f64 * bias.abs(),
                        "fused ({m}, {k}, {n})[{i}, {j}]: {f} vs {}",
                        sum + bias
                    );
                    assert!(
                        (p - sum).abs() <= tol,
                        "candle matmul ({m}, {k}, {n})[{i}, {j}]: {p} vs {sum}"
                    );
                }
            }
        }
        Ok(())
    }
}
