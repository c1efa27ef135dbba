//! One Adam update of one tensor: the plain candle-ops path (any device) and a fused
//! single-pass in-place path for contiguous `f32` tensors on the CPU, which rounds exactly as
//! the plain path does (same f32 operations in the same order), so results are bit-identical.

use candle_core::Tensor;

use crate::{kernels, Param, Result};

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

/// Updates `p`, `mu` and `nu` from the gradient `g`: one fused pass in place where
/// [`fused_in_place`] applies, else the plain ops (new moment tensors, `p` set in place).
pub(super) fn update(
    p: &Param,
    g: &Tensor,
    mu: &mut Tensor,
    nu: &mut Tensor,
    c: &Coefs,
) -> Result<()> {
    if crate::fast_paths::enabled() && fused_in_place(p.value(), g, mu, nu, c)? {
        return Ok(());
    }
    let (m, v, value) = plain(p.value(), g, mu, nu, c)?;
    p.set(&value)?;
    *mu = m;
    *nu = v;
    Ok(())
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

/// Elements per parallel task of the fused update (a tensor of at most this many runs on the
/// calling thread).
const CHUNK: usize = 1 << 15;

/// The update as one pass over `p`, `mu` and `nu` in place, on contiguous `f32` CPU tensors of
/// one length that share no storage (the optimizer owns its moments; see `AdamCore`);
/// `Ok(false)` when that does not hold, and nothing changed. Large tensors are split over
/// candle's CPU worker threads; each element sees exactly the f32 operations of [`plain`], so results
/// are bit-identical to it.
pub(super) fn fused_in_place(
    p: &Tensor,
    g: &Tensor,
    mu: &Tensor,
    nu: &Tensor,
    c: &Coefs,
) -> Result<bool> {
    let all = [p, g, mu, nu];
    let n = p.elem_count();
    if !all
        .iter()
        .all(|t| kernels::applies(t) && t.elem_count() == n)
        || kernels::shares_storage(&all)
    {
        return Ok(false);
    }
    let k = F32Coefs::new(c);
    let done = kernels::with_f32_mut(p, |pv| {
        let nested = kernels::with_f32_mut(mu, |mv| {
            kernels::with_f32_mut(nu, |nv| {
                kernels::with_f32(g, |gv| {
                    let chunks = pv
                        .chunks_mut(CHUNK)
                        .zip(mv.chunks_mut(CHUNK))
                        .zip(nv.chunks_mut(CHUNK))
                        .zip(gv.chunks(CHUNK));
                    kernels::pool::for_each_task(chunks.collect(), |(((p, m), v), g)| {
                        k.apply(p, m, v, g)
                    });
                    Ok(())
                })
            })
        })?;
        Ok(nested.flatten().is_some())
    })?;
    Ok(done == Some(true))
}

/// The fused update of every `(parameter, gradient, mu, nu)` of `items` in one pass over the
/// worker pool: the chunks of all tensors are the tasks of one pool call (one call per tensor
/// meant a barrier each, and small tensors (biases, BatchNorm scales) on one thread while the
/// other waited). The same operations per element as [`fused_in_place`], so the same bits.
/// `Ok(false)` (nothing changed) unless every tensor is one the fused kernels take and no two
/// share a storage.
pub(super) fn fused_all(items: &[(&Tensor, &Tensor, &Tensor, &Tensor)], c: &Coefs) -> Result<bool> {
    let fits = items.iter().all(|(p, g, m, v)| {
        let n = p.elem_count();
        [p, g, m, v]
            .iter()
            .all(|t| kernels::applies(t) && t.elem_count() == n)
    });
    let grads: Vec<&Tensor> = items.iter().map(|i| i.1).collect();
    let state: Vec<&Tensor> = items.iter().flat_map(|(p, _, m, v)| [*p, *m, *v]).collect();
    let everything: Vec<&Tensor> = state.iter().chain(&grads).copied().collect();
    if !fits || kernels::shares_storage(&everything) {
        return Ok(false);
    }
    let k = F32Coefs::new(c);
    let guards: Vec<_> = grads.iter().map(|g| g.storage_and_layout()).collect();
    let mut grad_data = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        match &**storage {
            candle_core::Storage::Cpu(s) => match kernels::cpu_f32(s, layout) {
                Some(g) => grad_data.push(g),
                None => return Ok(false),
            },
            _ => return Ok(false),
        }
    }
    // Groups of parameters bound the nesting of the locks (one stack frame each).
    let groups = state
        .chunks(3 * PARAMS_PER_CALL)
        .zip(grad_data.chunks(PARAMS_PER_CALL));
    for (i, (state, grad_data)) in groups.enumerate() {
        let done = kernels::with_all_f32_mut(state, &mut |held| {
            let mut tasks = Vec::new();
            for (pmv, g) in held.chunks_exact_mut(3).zip(grad_data) {
                let [p, m, v] = pmv else { continue };
                let chunks = p.chunks_mut(CHUNK).zip(m.chunks_mut(CHUNK));
                let chunks = chunks.zip(v.chunks_mut(CHUNK)).zip(g.chunks(CHUNK));
                tasks.extend(chunks);
            }
            kernels::pool::for_each_task(tasks, |(((p, m), v), g)| k.apply(p, m, v, g));
            Ok(())
        })?;
        match (done, i) {
            (true, _) => {}
            (false, 0) => return Ok(false),
            // Every tensor was checked above, so a later group cannot be refused.
            (false, _) => {
                let why = "adam: a parameter group was refused after others were updated";
                return Err(candle_core::Error::Msg(why.into()).into());
            }
        }
    }
    Ok(true)
}

/// Parameters per pool call of [`fused_all`] (the seed VAE has 28; a group's write locks nest
/// three deep per parameter).
const PARAMS_PER_CALL: usize = 64;

/// [`Coefs`] rounded to `f32` as `Tensor::affine` rounds them.
#[derive(Clone, Copy)]
struct F32Coefs {
    b1: f32,
    c1: f32,
    b2: f32,
    c2: f32,
    inv_bc2: f32,
    eps_root: f32,
    eps: f32,
    lr_bc1: f32,
    decay: Option<f32>,
}

impl F32Coefs {
    fn new(c: &Coefs) -> Self {
        let f = |v: f64| v as f32;
        Self {
            b1: f(c.b1),
            c1: f(1.0 - c.b1),
            b2: f(c.b2),
            c2: f(1.0 - c.b2),
            inv_bc2: f(c.inv_bc2),
            eps_root: f(c.eps_root),
            eps: f(c.eps),
            lr_bc1: f(c.lr_bc1),
            decay: c.decay.map(f),
        }
    }

    /// The update of one chunk, with the widest vectors this CPU has: the crate is compiled
    /// for baseline x86-64 (4-wide SSE), so the loop is also compiled for AVX-512 and AVX2
    /// and picked at run time. Every variant performs the same IEEE operations per element
    /// (Rust never contracts a multiply and an add into an FMA, and vector square roots and
    /// divisions round exactly as scalar ones), so the results are the same bits.
    fn apply(&self, p: &mut [f32], mu: &mut [f32], nu: &mut [f32], g: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above).
                unsafe { self.apply_avx512(p, mu, nu, g) };
                return;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                unsafe { self.apply_avx2(p, mu, nu, g) };
                return;
            }
        }
        self.apply_any(p, mu, nu, g);
    }

    /// [`Self::apply_any`] compiled for AVX-512F.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_avx512(&self, p: &mut [f32], mu: &mut [f32], nu: &mut [f32], g: &[f32]) {
        self.apply_any(p, mu, nu, g);
    }

    /// [`Self::apply_any`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn apply_avx2(&self, p: &mut [f32], mu: &mut [f32], nu: &mut [f32], g: &[f32]) {
        self.apply_any(p, mu, nu, g);
    }

    /// The update for whatever instruction set the caller is compiled for (inlined into it).
    #[inline(always)]
    fn apply_any(&self, p: &mut [f32], mu: &mut [f32], nu: &mut [f32], g: &[f32]) {
        match self.decay {
            Some(d) => self.apply_with(p, mu, nu, g, |w| w * d + 0.0),
            None => self.apply_with(p, mu, nu, g, |w| w),
        }
    }

    /// Exactly the f32 operations of [`plain`] (`affine(m, a)` is `v * m + a` in f32), in a
    /// loop the compiler vectorizes (square root and division included: both are exact).
    #[inline(always)]
    fn apply_with(
        &self,
        p: &mut [f32],
        mu: &mut [f32],
        nu: &mut [f32],
        g: &[f32],
        decay: impl Fn(f32) -> f32,
    ) {
        let k = *self;
        for (((p, m), v), &g) in p.iter_mut().zip(mu.iter_mut()).zip(nu.iter_mut()).zip(g) {
            let mn = (*m * k.b1 + 0.0) + (g * k.c1 + 0.0);
            let vn = (*v * k.b2 + 0.0) + ((g * g) * k.c2 + 0.0);
            let denom = (vn * k.inv_bc2 + k.eps_root).sqrt() * 1.0 + k.eps;
            let u = (mn * k.lr_bc1 + 0.0) / denom;
            *m = mn;
            *v = vn;
            *p = decay(*p) - u;
        }
    }
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
        // Below and above the parallel chunk size.
        for (dims, decay) in [
            ((33, 17), None),
            ((33, 17), Some(1.0 - 1e-5)),
            ((300, 251), None),
        ] {
            let w = Param::new(&Tensor::randn(0f32, 1.0, dims, &dev)?)?;
            let w2 = w.value().copy()?;
            let mu = Tensor::zeros(dims, DType::F32, &dev)?;
            let nu = Tensor::zeros(dims, DType::F32, &dev)?;
            let (mut mu2, mut nu2, mut w2) = (mu.copy()?, nu.copy()?, w2);
            let (mut mu, mut nu) = (mu, nu);
            let ids = (mu.id(), nu.id());
            for t in 1..5 {
                let g = Tensor::randn(0f32, 1.0, dims, &dev)?;
                let c = coefs(t, decay);
                update(&w, &g, &mut mu, &mut nu, &c)?;
                (mu2, nu2, w2) = plain(&w2, &g, &mu2, &nu2, &c)?;
                // In place: the moments are still the same tensors.
                assert_eq!((mu.id(), nu.id()), ids);
                for (a, b) in [(&mu, &mu2), (&nu, &nu2), (w.value(), &w2)] {
                    let a: Vec<f32> = a.flatten_all()?.to_vec1()?;
                    let b: Vec<f32> = b.flatten_all()?.to_vec1()?;
                    assert_eq!(a, b);
                }
            }
        }
        Ok(())
    }

    /// All tensors in one pool call: the same bits as the plain update of each, for a mix of
    /// tensors below and above the chunk size; nothing changes when two share a storage.
    #[test]
    fn all_at_once_matches_plain_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        let shapes = [(300, 251), (7, 1), (33, 17), (1, 40_000)];
        let params: Vec<Tensor> = (shapes.iter())
            .map(|&d| Tensor::randn(0f32, 1.0, d, &dev))
            .collect::<candle_core::Result<_>>()?;
        let mut plain_state: Vec<(Tensor, Tensor, Tensor)> = (params.iter())
            .map(|p| Ok((p.copy()?, p.zeros_like()?, p.zeros_like()?)))
            .collect::<Result<_>>()?;
        let moments: Vec<(Tensor, Tensor)> = (params.iter())
            .map(|p| Ok((p.zeros_like()?, p.zeros_like()?)))
            .collect::<Result<_>>()?;
        for t in 1..4 {
            let c = coefs(t, Some(1.0 - 1e-5));
            let grads: Vec<Tensor> = (shapes.iter())
                .map(|&d| Tensor::randn(0f32, 1.0, d, &dev))
                .collect::<candle_core::Result<_>>()?;
            let items: Vec<_> = (params.iter().zip(&grads).zip(&moments))
                .map(|((p, g), (m, v))| (p, g, m, v))
                .collect();
            assert!(fused_all(&items, &c)?);
            for (s, g) in plain_state.iter_mut().zip(&grads) {
                let (m, v, w) = plain(&s.0, g, &s.1, &s.2, &c)?;
                *s = (w, m, v);
            }
        }
        for ((p, (m, v)), (w2, m2, v2)) in params.iter().zip(&moments).zip(&plain_state) {
            for (a, b) in [(p, w2), (m, m2), (v, v2)] {
                let a: Vec<f32> = a.flatten_all()?.to_vec1()?;
                let b: Vec<f32> = b.flatten_all()?.to_vec1()?;
                assert_eq!(a, b);
            }
        }
        let (p, z) = (&params[1], params[1].zeros_like()?);
        let before: Vec<f32> = p.flatten_all()?.to_vec1()?;
        assert!(!fused_all(&[(p, &z.copy()?, &z, &z)], &coefs(1, None))?);
        assert_eq!(p.flatten_all()?.to_vec1::<f32>()?, before);
        Ok(())
    }

    /// More parameters than one pool call takes: every group is updated, as the plain path.
    #[test]
    fn parameters_beyond_one_group_are_all_updated() -> Result<()> {
        let dev = Device::Cpu;
        let n = 2 * PARAMS_PER_CALL + 3;
        let make = |i: usize| Tensor::randn(0f32, 1.0, 1 + i % 5, &dev);
        let params: Vec<Tensor> = (0..n).map(make).collect::<candle_core::Result<_>>()?;
        let grads: Vec<Tensor> = (0..n).map(make).collect::<candle_core::Result<_>>()?;
        let want: Vec<Tensor> = (params.iter().zip(&grads))
            .map(|(p, g)| Ok(plain(p, g, &p.zeros_like()?, &p.zeros_like()?, &coefs(1, None))?.2))
            .collect::<Result<_>>()?;
        let moments: Vec<(Tensor, Tensor)> = (params.iter())
            .map(|p| Ok((p.zeros_like()?, p.zeros_like()?)))
            .collect::<Result<_>>()?;
        let items: Vec<_> = (params.iter().zip(&grads).zip(&moments))
            .map(|((p, g), (m, v))| (p, g, m, v))
            .collect();
        assert!(fused_all(&items, &coefs(1, None))?);
        for (p, w) in params.iter().zip(&want) {
            assert_eq!(p.to_vec1::<f32>()?, w.to_vec1::<f32>()?);
        }
        Ok(())
    }

    #[test]
    fn falls_back_on_non_contiguous_shared_or_other_dtypes() -> Result<()> {
        let dev = Device::Cpu;
        let c = coefs(1, None);
        let p = Tensor::randn(0f32, 1.0, (4, 3), &dev)?.t()?;
        let z = p.zeros_like()?;
        assert!(!fused_in_place(&p, &z, &z.copy()?, &z.copy()?, &c)?);
        let p = p.contiguous()?;
        let z = p.zeros_like()?;
        // mu and nu sharing one storage: nested locks would deadlock, so no fused path.
        assert!(!fused_in_place(&p, &z.copy()?, &z, &z, &c)?);
        let p = p.to_dtype(DType::F64)?;
        let z = p.zeros_like()?;
        assert!(!fused_in_place(&p, &z, &z.copy()?, &z.copy()?, &c)?);
        let w = Param::new(&p)?;
        let (mut mu, mut nu) = (z.copy()?, z.copy()?);
        update(&w, &z.ones_like()?, &mut mu, &mut nu, &c)?;
        assert_eq!(w.dims(), vec![3, 4]);
        assert!(w
            .value()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .all(|v| v.is_finite()));
        Ok(())
    }
}
