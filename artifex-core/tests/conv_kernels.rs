//! The channels-last GEMM kernels of `Conv` and `ConvTranspose` against the plain candle-ops path (fast paths
//! off): outputs and the gradients of the input, kernel and bias, on fixed edge cases and on
//! random shapes (odd sizes, stride > kernel, dilation, 1-D, every padding kind, batch axes);
//! and bitwise-equal results for 1 and 2 threads.

mod common;

use artifex_core::candle_core::Var;
use artifex_core::fast_paths;
use artifex_core::prelude::*;

/// A small deterministic generator (64-bit LCG) for the random shapes.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[derive(Clone, Debug)]
struct Case {
    /// Batch axes (none, one or two).
    batch: Vec<usize>,
    spatial: Vec<usize>,
    cin: usize,
    cout: usize,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilation: Vec<usize>,
    padding: Padding,
    bias: bool,
    /// `ConvTranspose` instead of `Conv`.
    transpose: bool,
}

impl Case {
    /// The layer's forward and its named params.
    #[allow(clippy::type_complexity)]
    fn layer(&self) -> Result<(Box<dyn Fn(&Tensor) -> Result<Tensor>>, Vec<(String, Param)>)> {
        let bias_init = artifex_core::init::normal(0.5);
        let rngs = &mut Rngs::new(11);
        if self.transpose {
            let layer = ConvTranspose::builder(self.cin, self.cout, self.kernel.clone())
                .strides(self.strides.clone())
                .kernel_dilation(self.dilation.clone())
                .padding(self.padding.clone())
                .use_bias(self.bias)
                .bias_init(bias_init)
                .build(rngs)?;
            let params = layer.named_params();
            return Ok((Box::new(move |x| layer.forward(x)), params));
        }
        let layer = Conv::builder(self.cin, self.cout, self.kernel.clone())
            .strides(self.strides.clone())
            .kernel_dilation(self.dilation.clone())
            .padding(self.padding.clone())
            .use_bias(self.bias)
            .bias_init(bias_init)
            .build(rngs)?;
        let params = layer.named_params();
        Ok((Box::new(move |x| layer.forward(x)), params))
    }

    fn input(&self, seed: u64) -> Result<Tensor> {
        let mut dims = self.batch.clone();
        dims.extend(&self.spatial);
        dims.push(self.cin);
        let n: usize = dims.iter().product();
        let mut g = Lcg(seed);
        let v: Vec<f32> = (0..n)
            .map(|_| g.below(2001) as f32 / 1000.0 - 1.0)
            .collect();
        Ok(Tensor::from_vec(v, dims, &Device::Cpu)?)
    }

    /// Output, then d(sum(out * r))/d(x, kernel, bias).
    fn run(&self, fast: bool) -> Result<Vec<(String, Tensor)>> {
        fast_paths::set_enabled(fast);
        let (forward, params) = self.layer()?;
        let x = Var::from_tensor(&self.input(5)?)?;
        let y = forward(x.as_tensor())?;
        let n = y.elem_count();
        let r: Vec<f32> = (0..n)
            .map(|i| ((i * 37) % 23) as f32 / 11.0 - 1.0)
            .collect();
        let r = Tensor::from_vec(r, y.shape(), &Device::Cpu)?;
        let grads = (&y * &r)?.sum_all()?.backward()?;
        let mut out = vec![("y".to_string(), y.clone())];
        let dx = grads.get(x.as_tensor()).expect("dx").clone();
        out.push(("dx".into(), dx));
        for (name, p) in params {
            out.push((
                format!("d{name}"),
                grads.get(p.value()).expect("grad").clone(),
            ));
        }
        fast_paths::set_enabled(true);
        Ok(out)
    }
}

fn random_case(g: &mut Lcg) -> Case {
    let dims = 1 + g.below(2);
    let batch = match g.below(4) {
        0 => vec![],
        1 => vec![2, 1 + g.below(2)],
        _ => vec![1 + g.below(3)],
    };
    let kernel: Vec<usize> = (0..dims).map(|_| 1 + g.below(4)).collect();
    let dilation: Vec<usize> = (0..dims).map(|_| 1 + g.below(3) / 2).collect();
    let strides: Vec<usize> = (0..dims).map(|_| 1 + g.below(5) / 2).collect();
    // Large enough for the dilated kernel under VALID.
    let spatial: Vec<usize> = (0..dims)
        .map(|i| (kernel[i] - 1) * dilation[i] + 1 + g.below(7))
        .collect();
    let transpose = g.below(3) == 0;
    let padding = match g.below(if dims == 1 && !transpose { 4 } else { 3 }) {
        0 => Padding::Same,
        1 => Padding::Valid,
        2 => Padding::Explicit((0..dims).map(|_| (g.below(3), g.below(3))).collect()),
        _ => Padding::Causal,
    };
    Case {
        batch,
        spatial,
        cin: 1 + g.below(6),
        cout: 1 + g.below(7),
        kernel,
        strides,
        dilation,
        padding,
        bias: g.below(4) != 0,
        transpose,
    }
}

fn fixed_cases() -> Vec<Case> {
    let case = |spatial: Vec<usize>, kernel: Vec<usize>, strides: Vec<usize>, padding| Case {
        batch: vec![2],
        cin: 5,
        cout: 7,
        dilation: vec![1],
        bias: true,
        transpose: false,
        spatial,
        kernel,
        strides,
        padding,
    };
    let mut cases = vec![
        // The ResidualBlock shapes: 3x3 stride 2 SAME, 1x1 stride 2 and 1x1 stride 1.
        case(vec![9, 8], vec![3, 3], vec![2], Padding::Same),
        case(vec![9, 8], vec![1, 1], vec![2], Padding::Same),
        case(vec![9, 8], vec![1, 1], vec![1], Padding::Valid),
        // Stride larger than the kernel, odd sizes, per-axis strides.
        case(vec![11, 7], vec![2, 3], vec![4, 3], Padding::Valid),
        case(vec![13], vec![3], vec![5], Padding::Same),
        case(
            vec![6, 5],
            vec![3, 2],
            vec![1, 2],
            Padding::Explicit(vec![(2, 0), (1, 3)]),
        ),
        case(vec![10], vec![4], vec![1], Padding::Causal),
    ];
    let mut dilated = case(vec![9, 10], vec![3, 2], vec![1], Padding::Same);
    dilated.dilation = vec![2, 3];
    cases.push(dilated);
    let mut no_batch = case(vec![6, 6], vec![3, 3], vec![1], Padding::Same);
    no_batch.batch = vec![];
    no_batch.bias = false;
    cases.push(no_batch);
    // Transposed: the U-Net / DCGAN upsampling (3x3 and 4x4, stride 2), VALID, dilation, 1-D.
    for (kernel, strides, padding) in [
        (vec![3, 3], vec![2], Padding::Same),
        (vec![4, 4], vec![2], Padding::Same),
        (vec![3, 2], vec![2, 3], Padding::Valid),
        (vec![2, 3], vec![1], Padding::Explicit(vec![(0, 2), (3, 1)])),
        (vec![5], vec![3], Padding::Same),
    ] {
        let mut up = case(vec![5, 4], kernel, strides, padding);
        up.transpose = true;
        if up.kernel.len() == 1 {
            up.spatial = vec![6];
            up.dilation = vec![2];
        }
        cases.push(up);
    }
    cases
}

fn check_case(case: &Case) -> Result<()> {
    let fused = case.run(true)?;
    let plain = case.run(false)?;
    assert_eq!(fused.len(), plain.len(), "{case:?}");
    for ((name, a), (_, b)) in fused.iter().zip(&plain) {
        assert_eq!(a.dims(), b.dims(), "{name} of {case:?}");
        let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1.0);
        let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(
            diff <= 2e-5 * scale,
            "{name} of {case:?}: max |kernel - plain| = {diff} (scale {scale})"
        );
    }
    Ok(())
}

/// Cases large enough for several row blocks per call and per image (the kernel cuts its
/// work into blocks of about 64K patch values).
fn large_cases() -> Vec<Case> {
    let base = fixed_cases();
    let mut strided = base[0].clone();
    (strided.batch, strided.spatial, strided.cin, strided.cout) = (vec![4], vec![32, 32], 16, 24);
    let mut same = base[0].clone();
    (same.strides, same.batch, same.spatial, same.cin) = (vec![1], vec![2], vec![40, 40], 16);
    let mut up = base[10].clone();
    (up.batch, up.spatial, up.cin, up.cout) = (vec![2], vec![12, 12], 16, 8);
    vec![strided, same, up]
}

/// One test function: the fast-path switch is process-wide.
#[test]
fn conv_kernel_matches_plain_ops() -> Result<()> {
    for case in large_cases() {
        check_case(&case)?;
    }
    for case in fixed_cases() {
        check_case(&case)?;
    }
    let mut g = Lcg(2024);
    for _ in 0..60 {
        check_case(&random_case(&mut g))?;
    }
    check_cat()
}

/// `ops::cat` of two tensors on the last axis (the fused kernel) gives `Tensor::cat`'s
/// values and gradients bit for bit; other axes and operand counts take `Tensor::cat`.
fn check_cat() -> Result<()> {
    let mut g = Lcg(77);
    let mut values = |dims: &[usize]| -> Result<Var> {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| g.below(2001) as f32 / 1000.0 - 1.0)
            .collect();
        Ok(Var::from_tensor(&Tensor::from_vec(v, dims, &Device::Cpu)?)?)
    };
    for (a_dims, b_dims, dim) in [
        (vec![2, 3, 4, 5], vec![2, 3, 4, 7], 3),
        (vec![3000, 3], vec![3000, 1], 1),
        (vec![2, 3, 4], vec![2, 5, 4], 1),
    ] {
        let (a, b) = (values(&a_dims)?, values(&b_dims)?);
        let mut results = Vec::new();
        for fused in [true, false] {
            let y = if fused {
                artifex_core::ops::cat(&[a.as_tensor(), b.as_tensor()], dim)?
            } else {
                Tensor::cat(&[a.as_tensor(), b.as_tensor()], dim)?
            };
            let r = Tensor::arange(0f32, y.elem_count() as f32, &Device::Cpu)?
                .reshape(y.shape())?
                .cos()?;
            let grads = (&y * &r)?.sum_all()?.backward()?;
            let mut bits = Vec::new();
            for t in [
                &y,
                grads.get(a.as_tensor()).expect("da"),
                grads.get(b.as_tensor()).expect("db"),
            ] {
                bits.push(t.flatten_all()?.to_vec1::<f32>()?);
            }
            results.push(bits);
        }
        assert_eq!(
            results[0], results[1],
            "cat of {a_dims:?} and {b_dims:?} on {dim}"
        );
    }
    Ok(())
}

/// Bits of the output and every gradient of a few convolutions; run in a child process.
#[test]
#[ignore = "run by `conv_results_do_not_depend_on_thread_count` in a child process"]
fn conv_fingerprint_child() -> Result<()> {
    let Ok(out) = std::env::var("ARTIFEX_CONV_FINGERPRINT_OUT") else {
        return Ok(());
    };
    let mut big = fixed_cases()[0].clone();
    (big.batch, big.spatial, big.cin, big.cout) = (vec![8], vec![32, 32], 16, 32);
    let mut bits = Vec::new();
    // Stride 1: more row blocks than the kernel gradient's partial sums.
    let mut big_same = big.clone();
    (big_same.strides, big_same.cout) = (vec![1], 8);
    let cases = fixed_cases();
    for case in [big, big_same, cases[5].clone(), cases[10].clone()] {
        for (_, t) in case.run(true)? {
            let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
            bits.extend(v.iter().map(|f| f.to_bits().to_string()));
        }
    }
    std::fs::write(out, bits.join(",")).map_err(|e| Error::config("test", e.to_string()))?;
    Ok(())
}

#[test]
fn conv_results_do_not_depend_on_thread_count() {
    let prints = common::fingerprints_at_1_and_2_threads(
        "conv_fingerprint_child",
        "ARTIFEX_CONV_FINGERPRINT_OUT",
    );
    assert!(prints[0].len() > 100_000);
    assert_eq!(prints[0], prints[1], "RAYON_NUM_THREADS=1 and 2 differ");
}
