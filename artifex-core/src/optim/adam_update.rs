//! One Adam update of one tensor: the plain candle-ops path (any device) and a fused
//! single-pass path for contiguous `f32` tensors on the CPU, which rounds exactly as the plain
//! path does (same f32 operations in the same order), so results are bit-identical.

use candle_core::{CpuStorage, Layout, Storage, Tensor};

use crate::Result;

/// The per-step coefficients of the update (as `f64`; both paths round them to the tensor's
/// dtype the way `Tensor::affine` does).
#[derive(Clone, Copy, Debug)]
pub(super) struct Coefs {
    /// `beta1`.
    pub b1: f64,
    /// `beta2`.
    pub b2: f64,
    /// `1 / (1 - beta2^t)`.
    pub inv_bc2: f64,
    /// `eps_root`.
    pub eps_root: f64,
    /// `eps`.
    pub eps: f64,
    /// `lr / (1 - beta1^t)`.
    pub lr_bc1: f64,
    /// `1 - lr * weight_decay`, when there is weight decay.
    pub decay: Option<f64>,
}

/// `(mu, nu, new param value)` from the parameter value `p`, its gradient `g` and the moments.
pub(super) fn update(
    p: &Tensor,
    g: &Tensor,
    mu: &Tensor,
    nu: &Tensor,
    c: &Coefs,
) -> Result<(Tensor, Tensor, Tensor)> {
    if crate::fast_paths::enabled() {
        if let Some(out) = fused_cpu_f32(p, g, mu, nu, c)? {
            return Ok(out);
        }
    }
    plain(p, g, mu, nu, c)
}

/// The reference path: 13 candle ops (14 with weight decay), on any device and dtype.
pub(super) fn plain(
    p: &Tensor,
    g: &Tensor,
    mu: &Tensor,
    nu: &Tensor,
    c: &Coefs,
) -> Result<(Tensor, Tensor, Tensor)> {
    let mu = (mu.affine(c.b1, 0.0)? + g.affine(1.0 - c.b1, 0.0)?)?;
    let nu = (nu.affine(c.b2, 0.0)? + g.sqr()?.affine(1.0 - c.b2, 0.0)?)?;
    // lr * mu_hat / (sqrt(nu_hat + eps_root) + eps)
    let denom = nu
        .affine(c.inv_bc2, c.eps_root)?
        .sqrt()?
        .affine(1.0, c.eps)?;
    let update = (mu.affine(c.lr_bc1, 0.0)? / denom)?;
    let value = p.detach();
    // AdamW: p - lr * (u + wd * p) = p * (1 - lr * wd) - lr * u
    let value = match c.decay {
        Some(decay) => value.affine(decay, 0.0)?,
        None => value,
    };
    Ok((mu, nu, (value - update)?))
}

/// The contiguous `f32` CPU data of `t`, if it has such.
fn cpu_f32<'a>(storage: &'a Storage, layout: &Layout) -> Option<&'a [f32]> {
    match storage {
        Storage::Cpu(CpuStorage::F32(v)) => {
            let (start, end) = layout.contiguous_offsets()?;
            v.get(start..end)
        }
        _ => None,
    }
}

/// One pass over the four tensors; `None` when they are not all contiguous `f32` on the CPU.
pub(super) fn fused_cpu_f32(
    p: &Tensor,
    g: &Tensor,
    mu: &Tensor,
    nu: &Tensor,
    c: &Coefs,
) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    let (ps, pl) = p.storage_and_layout();
    let (gs, gl) = g.storage_and_layout();
    let (ms, ml) = mu.storage_and_layout();
    let (ns, nl) = nu.storage_and_layout();
    let (Some(pv), Some(gv), Some(mv), Some(nv)) = (
        cpu_f32(&ps, pl),
        cpu_f32(&gs, gl),
        cpu_f32(&ms, ml),
        cpu_f32(&ns, nl),
    ) else {
        return Ok(None);
    };
    let n = pv.len();
    if gv.len() != n || mv.len() != n || nv.len() != n {
        return Ok(None);
    }
    // Exactly the f32 operations of `plain` (`affine(m, a)` is `v * m + a` in f32).
    let f = |v: f64| v as f32;
    let (b1, c1, b2, c2) = (f(c.b1), f(1.0 - c.b1), f(c.b2), f(1.0 - c.b2));
    let (inv_bc2, eps_root, eps, lr_bc1) = (f(c.inv_bc2), f(c.eps_root), f(c.eps), f(c.lr_bc1));
    let decay = c.decay.map(f);
    let mut mu_out = Vec::with_capacity(n);
    let mut nu_out = Vec::with_capacity(n);
    let mut p_out = Vec::with_capacity(n);
    for i in 0..n {
        let g = gv[i];
        let m = (mv[i] * b1 + 0.0) + (g * c1 + 0.0);
        let v = (nv[i] * b2 + 0.0) + ((g * g) * c2 + 0.0);
        let denom = (v * inv_bc2 + eps_root).sqrt() * 1.0 + eps;
        let u = (m * lr_bc1 + 0.0) / denom;
        let w = match decay {
            Some(d) => pv[i] * d + 0.0,
            None => pv[i],
        };
        mu_out.push(m);
        nu_out.push(v);
        p_out.push(w - u);
    }
    let shape = p.shape().clone();
    let device = p.device();
    Ok(Some((
        Tensor::from_vec(mu_out, shape.clone(), device)?,
        Tensor::from_vec(nu_out, shape.clone(), device)?,
        Tensor::from_vec(p_out, shape, device)?,
    )))
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::*;

    fn coefs(t: i32, decay: Option<f64>) -> Coefs {
        let (b1, b2, lr) = (0.9f64, 0.999f64, 1e-3);
        Coefs {
            b1,
            b2,
            inv_bc2: 1.0 / (1.0 - b2.powi(t)),
            eps_root: 0.0,
            eps: 1e-8,
            lr_bc1: lr / (1.0 - b1.powi(t)),
            decay,
        }
    }

    #[test]
    fn fused_matches_plain_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        for decay in [None, Some(1.0 - 1e-3 * 1e-2)] {
            let p = Tensor::randn(0f32, 1.0, (33, 17), &dev)?;
            let mut mu = Tensor::zeros((33, 17), DType::F32, &dev)?;
            let mut nu = mu.clone();
            let mut w = p.clone();
            let (mut mu2, mut nu2, mut w2) = (mu.clone(), nu.clone(), w.clone());
            for t in 1..5 {
                let g = Tensor::randn(0f32, 1.0, (33, 17), &dev)?;
                let c = coefs(t, decay);
                let fused = fused_cpu_f32(&w, &g, &mu, &nu, &c)?;
                let Some((m, v, x)) = fused else {
                    panic!("the fused path applies to contiguous f32 CPU tensors");
                };
                (mu, nu, w) = (m, v, x);
                (mu2, nu2, w2) = plain(&w2, &g, &mu2, &nu2, &c)?;
                for (a, b) in [(&mu, &mu2), (&nu, &nu2), (&w, &w2)] {
                    let a: Vec<f32> = a.flatten_all()?.to_vec1()?;
                    let b: Vec<f32> = b.flatten_all()?.to_vec1()?;
                    assert_eq!(a, b);
                }
            }
        }
        Ok(())
    }

    #[test]
    fn falls_back_on_non_contiguous_or_other_dtypes() -> Result<()> {
        let dev = Device::Cpu;
        let p = Tensor::randn(0f32, 1.0, (4, 3), &dev)?.t()?;
        let z = p.zeros_like()?;
        assert!(fused_cpu_f32(&p, &z, &z, &z, &coefs(1, None))?.is_none());
        let p = p.to_dtype(DType::F64)?.contiguous()?;
        let z = p.zeros_like()?;
        assert!(fused_cpu_f32(&p, &z, &z, &z, &coefs(1, None))?.is_none());
        let (_, _, w) = update(&p, &z, &z, &z, &coefs(1, None))?;
        assert_eq!(w.dims(), &[3, 4]);
        Ok(())
    }
}
