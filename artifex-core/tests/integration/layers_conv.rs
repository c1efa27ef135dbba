//! Conv and ConvTranspose against direct f64 loops (outputs and gradients), shapes, padding
//! rules, errors.

use crate::naive;

use artifex_core::init::{self, Initializer};
use artifex_core::prelude::*;
use naive::{assert_close, same_pads, tensor, transpose_pads, Arr, Axis};

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-5;

/// One Conv case: per-axis geometry as the test computes it independently.
struct ConvCase {
    input: Vec<usize>,
    kernel: Vec<usize>,
    cin: usize,
    cout: usize,
    strides: Vec<usize>,
    dilation: Vec<usize>,
    padding: Padding,
    groups: usize,
}

impl ConvCase {
    fn new(input: &[usize], kernel: &[usize], cin: usize, cout: usize) -> Self {
        ConvCase {
            input: input.to_vec(),
            kernel: kernel.to_vec(),
            cin,
            cout,
            strides: vec![1; kernel.len()],
            dilation: vec![1; kernel.len()],
            padding: Padding::Same,
            groups: 1,
        }
    }
    fn strides(mut self, s: &[usize]) -> Self {
        self.strides = s.to_vec();
        self
    }
    fn dilation(mut self, d: &[usize]) -> Self {
        self.dilation = d.to_vec();
        self
    }
    fn padding(mut self, p: Padding) -> Self {
        self.padding = p;
        self
    }
    fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// The (lo, hi) pads the test expects, from the written-out XLA rules.
    fn axes(&self) -> Vec<Axis> {
        (0..self.kernel.len())
            .map(|i| {
                let (n, k, s, d) = (
                    self.input[i],
                    self.kernel[i],
                    self.strides[i],
                    self.dilation[i],
                );
                let (lo, hi) = match &self.padding {
                    Padding::Same => same_pads(n, k, s, d),
                    Padding::Valid => (0, 0),
                    Padding::Causal => ((k - 1) * d, 0),
                    Padding::Explicit(p) => p[i.min(p.len() - 1)],
                };
                Axis {
                    stride: s,
                    dilation: d,
                    lo,
                    hi,
                }
            })
            .collect()
    }

    fn run(&self, batch: usize, seed: u64) -> Result<()> {
        let layer = Conv::builder(self.cin, self.cout, self.kernel.clone())
            .strides(self.strides.clone())
            .kernel_dilation(self.dilation.clone())
            .padding(self.padding.clone())
            .feature_group_count(self.groups)
            .bias_init(init::normal(0.5))
            .build(&mut Rngs::new(seed))?;
        let mut dims = vec![batch];
        dims.extend(&self.input);
        dims.push(self.cin);
        let x = tensor(&dims, seed + 100);
        let xv = candle_core::Var::from_tensor(&x)?;
        let y = layer.forward(xv.as_tensor())?;

        // Reference, 1-D as 2-D with a unit height.
        let axes = self.axes();
        let one = Axis {
            stride: 1,
            dilation: 1,
            lo: 0,
            hi: 0,
        };
        let (xa, wa, ax) = if self.kernel.len() == 1 {
            (
                Arr::from_tensor(&x).with_unit_axis(1),
                Arr::from_tensor(&layer.kernel).with_unit_axis(0),
                [one, axes[0]],
            )
        } else {
            (
                Arr::from_tensor(&x),
                Arr::from_tensor(&layer.kernel),
                [axes[0], axes[1]],
            )
        };
        let mut want = naive::conv2d(&xa, &wa, ax, self.groups);
        let bias = Arr::from_tensor(layer.bias.as_ref().expect("bias"));
        for (i, v) in want.data.iter_mut().enumerate() {
            *v += bias.data[i % self.cout];
        }
        let mut want_dims = want.dims.clone();
        if self.kernel.len() == 1 {
            want_dims.remove(1);
        }
        assert_eq!(y.dims(), want_dims.as_slice(), "output shape");
        assert_close(
            "conv output",
            &Arr::from_tensor(&y).data,
            &want.data,
            RTOL,
            ATOL,
        );

        // Gradients of sum(y * r).
        let r = tensor(y.dims(), seed + 200);
        let loss = (&y * &r)?.sum_all()?;
        let grads = loss.backward()?;
        let ra = if self.kernel.len() == 1 {
            Arr::from_tensor(&r).with_unit_axis(1)
        } else {
            Arr::from_tensor(&r)
        };
        let (gx, gw) = naive::conv2d_grads(&xa, &wa, &ra, ax, self.groups);
        let got_gx = grads.get(xv.as_tensor()).expect("input grad");
        let got_gw = grads.get(&layer.kernel).expect("kernel grad");
        assert_close(
            "grad input",
            &Arr::from_tensor(got_gx).data,
            &gx.data,
            RTOL,
            ATOL,
        );
        assert_close(
            "grad kernel",
            &Arr::from_tensor(got_gw).data,
            &gw.data,
            RTOL,
            ATOL,
        );
        let got_gb = Arr::from_tensor(
            grads
                .get(layer.bias.as_ref().expect("bias"))
                .expect("bias grad"),
        );
        let rsum: Vec<f64> = (0..self.cout)
            .map(|o| {
                Arr::from_tensor(&r)
                    .data
                    .iter()
                    .skip(o)
                    .step_by(self.cout)
                    .sum()
            })
            .collect();
        assert_close("grad bias", &got_gb.data, &rsum, RTOL, ATOL);
        Ok(())
    }
}

#[test]
fn conv2d_matches_direct_loops() -> Result<()> {
    // 3x3 SAME, the common case.
    ConvCase::new(&[6, 5], &[3, 3], 3, 4).run(2, 1)?;
    // Even kernel with SAME on odd sizes: the odd pad goes at the end.
    ConvCase::new(&[7, 6], &[4, 2], 2, 3).run(2, 2)?;
    // Stride 2 with odd inputs: ceil(7 / 2) x ceil(9 / 2).
    ConvCase::new(&[7, 9], &[3, 3], 2, 3)
        .strides(&[2, 2])
        .run(2, 3)?;
    // VALID with stride 2 and odd input (the last row is never read).
    ConvCase::new(&[8, 7], &[3, 3], 2, 2)
        .strides(&[2, 2])
        .padding(Padding::Valid)
        .run(1, 4)?;
    // Explicit asymmetric pads, unequal strides per axis.
    ConvCase::new(&[7, 5], &[3, 2], 2, 3)
        .strides(&[2, 1])
        .padding(Padding::Explicit(vec![(1, 2), (0, 3)]))
        .run(2, 5)?;
    // Unequal dilations (the kernel is zero-dilated on one axis).
    ConvCase::new(&[9, 8], &[3, 3], 2, 2)
        .dilation(&[2, 1])
        .run(1, 6)?;
    // Equal dilation with stride.
    ConvCase::new(&[11, 10], &[3, 2], 1, 2)
        .dilation(&[2, 2])
        .strides(&[3, 3])
        .run(2, 7)?;
    // Groups: 4 -> 6 channels in 2 groups, and depthwise (4 groups of 1).
    ConvCase::new(&[5, 5], &[3, 3], 4, 6).groups(2).run(2, 8)?;
    ConvCase::new(&[5, 6], &[3, 3], 4, 8)
        .groups(4)
        .strides(&[2, 1])
        .run(1, 9)?;
    // One explicit pair for both axes.
    ConvCase::new(&[4, 4], &[2, 2], 2, 2)
        .padding(Padding::symmetric(1))
        .run(1, 10)?;
    Ok(())
}

#[test]
fn conv1d_matches_direct_loops() -> Result<()> {
    ConvCase::new(&[9], &[4], 3, 2).strides(&[2]).run(2, 11)?;
    ConvCase::new(&[8], &[3], 2, 4)
        .dilation(&[2])
        .padding(Padding::Causal)
        .run(2, 12)?;
    ConvCase::new(&[10], &[3], 4, 6)
        .groups(2)
        .padding(Padding::Valid)
        .strides(&[3])
        .run(1, 13)?;
    ConvCase::new(&[5], &[1], 3, 3).run(3, 14)?;
    Ok(())
}

#[test]
fn conv_output_sizes_follow_xla() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let x = Tensor::zeros((1, 7, 7, 1), DType::F32, &Device::Cpu)?;
    let size = |c: Conv| -> Result<Vec<usize>> { Ok(c.forward(&x)?.dims().to_vec()) };
    assert_eq!(
        size(
            Conv::builder(1, 1, vec![3, 3])
                .strides(vec![2])
                .build(rngs)?
        )?,
        [1, 4, 4, 1]
    );
    assert_eq!(
        size(
            Conv::builder(1, 1, vec![3, 3])
                .strides(vec![2])
                .padding(Padding::Valid)
                .build(rngs)?
        )?,
        [1, 3, 3, 1]
    );
    assert_eq!(
        size(
            Conv::builder(1, 1, vec![4, 1])
                .strides(vec![3, 1])
                .build(rngs)?
        )?,
        [1, 3, 7, 1]
    );
    Ok(())
}

#[test]
fn conv_batch_axes_are_flattened_and_restored() -> Result<()> {
    let conv = Conv::new(3, 5, vec![3, 3], &mut Rngs::new(0))?;
    let x = tensor(&[2, 3, 4, 4, 3], 1);
    let y = conv.forward(&x)?;
    assert_eq!(y.dims(), &[2, 3, 4, 4, 5]);
    let flat = conv.forward(&x.reshape((6, 4, 4, 3))?)?;
    assert_eq!(
        naive::Arr::from_tensor(&y).data,
        naive::Arr::from_tensor(&flat).data
    );
    // No batch axis at all.
    let single = conv.forward(&x.reshape((6, 4, 4, 3))?.get(0)?)?;
    assert_eq!(single.dims(), &[4, 4, 5]);
    assert_eq!(
        naive::Arr::from_tensor(&single).data,
        naive::Arr::from_tensor(&flat.get(0)?).data
    );
    Ok(())
}

#[test]
fn conv_draws_kernel_then_bias_with_hwio_fans() -> Result<()> {
    let conv = Conv::builder(4, 6, vec![3, 2])
        .feature_group_count(2)
        .bias_init(init::normal(1.0))
        .build(&mut Rngs::new(7))?;
    assert_eq!(conv.kernel.dims(), &[3, 2, 2, 6]);
    let rngs = &mut Rngs::new(7);
    let k = init::lecun_normal().init(rngs.params()?, &[3, 2, 2, 6], DType::F32, &Device::Cpu)?;
    let b = init::normal(1.0).init(rngs.params()?, &[6], DType::F32, &Device::Cpu)?;
    assert_eq!(
        Arr::from_tensor(&conv.kernel).data,
        Arr::from_tensor(&k).data
    );
    assert_eq!(
        Arr::from_tensor(conv.bias.as_ref().expect("bias")).data,
        Arr::from_tensor(&b).data
    );
    let paths: Vec<String> = conv.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["kernel", "bias"]);
    let no_bias = Conv::builder(1, 1, vec![1])
        .use_bias(false)
        .build(&mut Rngs::new(0))?;
    assert!(no_bias.bias.is_none());
    Ok(())
}

#[test]
fn conv_config_errors() {
    let rngs = &mut Rngs::new(0);
    let err = |r: Result<Conv>| r.map(|_| ()).unwrap_err().to_string();
    let e = err(Conv::builder(6, 4, vec![3])
        .feature_group_count(4)
        .build(rngs));
    assert_eq!(
        e,
        "Conv: invalid configuration: feature_group_count 4 must divide in_features 6 and out_features 4"
    );
    assert!(err(Conv::builder(4, 6, vec![3])
        .feature_group_count(4)
        .build(rngs))
    .contains("must divide"));
    assert!(err(Conv::new(3, 4, vec![3, 3, 3], rngs)).contains("1 (1-D) or 2 (2-D)"));
    assert!(err(Conv::new(3, 4, vec![], rngs)).contains("kernel_size"));
    assert!(err(Conv::new(3, 4, vec![0, 3], rngs)).contains("positive"));
    assert!(err(Conv::new(0, 4, vec![3], rngs)).contains("positive"));
    assert!(err(Conv::builder(3, 4, vec![3]).strides(vec![0]).build(rngs)).contains("strides"));
    assert!(err(Conv::builder(3, 4, vec![3, 3])
        .strides(vec![1, 2, 3])
        .build(rngs))
    .contains("strides"));
    assert!(err(Conv::builder(3, 4, vec![3])
        .kernel_dilation(vec![0])
        .build(rngs))
    .contains("dilation"));
    assert!(err(Conv::builder(3, 4, vec![3, 3])
        .padding(Padding::Causal)
        .build(rngs))
    .contains("causal"));
    assert!(err(Conv::builder(3, 4, vec![3, 3])
        .padding(Padding::Explicit(vec![(1, 1), (1, 1), (1, 1)]))
        .build(rngs))
    .contains("does not fit"));
    assert!(err(Conv::builder(3, 4, vec![3])
        .feature_group_count(0)
        .build(rngs))
    .contains("positive"));
}

#[derive(Module)]
struct Holder {
    down: Vec<Conv>,
    up: ConvTranspose,
}

#[test]
fn conv_shape_errors_name_the_path() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let mut m = Holder {
        down: vec![Conv::new(3, 8, vec![3, 3], rngs)?],
        up: ConvTranspose::new(8, 3, vec![3], rngs)?,
    };
    m.eval();
    let e = m.down[0]
        .forward(&tensor(&[2, 8, 8, 4], 0))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "down.0 (Conv): expected input of shape [*, H, W, 3], got [2, 8, 8, 4]"
    );
    let e = m.down[0]
        .forward(&tensor(&[8, 3], 0))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "down.0 (Conv): expected input of shape [*, H, W, 3], got [8, 3]"
    );
    let e =
        m.up.forward(&tensor(&[2, 5, 3], 0))
            .unwrap_err()
            .to_string();
    assert_eq!(
        e,
        "up (ConvTranspose): expected input of shape [*, L, 8], got [2, 5, 3]"
    );
    // A VALID window larger than the input.
    let valid = Conv::builder(1, 1, vec![5, 1])
        .padding(Padding::Valid)
        .build(rngs)?;
    let e = valid
        .forward(&tensor(&[1, 3, 3, 1], 0))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Conv: expected input of shape [*, H, W, 1] with H >= 5"),
        "{e}"
    );
    Ok(())
}

/// One ConvTranspose case.
struct TCase {
    input: Vec<usize>,
    kernel: Vec<usize>,
    cin: usize,
    cout: usize,
    strides: Vec<usize>,
    dilation: Vec<usize>,
    padding: Padding,
    expect_out: Option<Vec<usize>>,
}

impl TCase {
    fn new(input: &[usize], kernel: &[usize], strides: &[usize], padding: Padding) -> Self {
        TCase {
            input: input.to_vec(),
            kernel: kernel.to_vec(),
            cin: 3,
            cout: 2,
            strides: strides.to_vec(),
            dilation: vec![1; kernel.len()],
            padding,
            expect_out: None,
        }
    }
    fn dilation(mut self, d: &[usize]) -> Self {
        self.dilation = d.to_vec();
        self
    }
    fn expect(mut self, out: &[usize]) -> Self {
        self.expect_out = Some(out.to_vec());
        self
    }

    fn run(&self, seed: u64) -> Result<()> {
        let layer = ConvTranspose::builder(self.cin, self.cout, self.kernel.clone())
            .strides(self.strides.clone())
            .kernel_dilation(self.dilation.clone())
            .padding(self.padding.clone())
            .bias_init(init::normal(0.5))
            .build(&mut Rngs::new(seed))?;
        let mut dims = vec![2];
        dims.extend(&self.input);
        dims.push(self.cin);
        let x = tensor(&dims, seed + 100);
        let xv = candle_core::Var::from_tensor(&x)?;
        let y = layer.forward(xv.as_tensor())?;

        let axes: Vec<Axis> = (0..self.kernel.len())
            .map(|i| {
                let (k, s, d) = (self.kernel[i], self.strides[i], self.dilation[i]);
                let k_eff = (k - 1) * d + 1;
                let (lo, hi) = match &self.padding {
                    Padding::Same => transpose_pads(k_eff, s, true),
                    Padding::Valid => transpose_pads(k_eff, s, false),
                    Padding::Explicit(p) => p[i.min(p.len() - 1)],
                    Padding::Causal => unreachable!(),
                };
                Axis {
                    stride: s,
                    dilation: d,
                    lo,
                    hi,
                }
            })
            .collect();
        let one = Axis {
            stride: 1,
            dilation: 1,
            lo: 0,
            hi: 0,
        };
        let (xa, wa, ax) = if self.kernel.len() == 1 {
            (
                Arr::from_tensor(&x).with_unit_axis(1),
                Arr::from_tensor(&layer.kernel).with_unit_axis(0),
                [one, axes[0]],
            )
        } else {
            (
                Arr::from_tensor(&x),
                Arr::from_tensor(&layer.kernel),
                [axes[0], axes[1]],
            )
        };
        let mut want = naive::conv_transpose2d(&xa, &wa, ax);
        let bias = Arr::from_tensor(layer.bias.as_ref().expect("bias"));
        for (i, v) in want.data.iter_mut().enumerate() {
            *v += bias.data[i % self.cout];
        }
        let mut want_dims = want.dims.clone();
        if self.kernel.len() == 1 {
            want_dims.remove(1);
        }
        assert_eq!(y.dims(), want_dims.as_slice(), "output shape");
        if let Some(out) = &self.expect_out {
            assert_eq!(
                &y.dims()[1..y.rank() - 1],
                out.as_slice(),
                "spatial output size"
            );
        }
        assert_close(
            "conv_transpose output",
            &Arr::from_tensor(&y).data,
            &want.data,
            RTOL,
            ATOL,
        );

        let r = tensor(y.dims(), seed + 200);
        let grads = (&y * &r)?.sum_all()?.backward()?;
        let ra = if self.kernel.len() == 1 {
            Arr::from_tensor(&r).with_unit_axis(1)
        } else {
            Arr::from_tensor(&r)
        };
        let (gx, gw) = naive::conv_transpose2d_grads(&xa, &wa, &ra, ax);
        let got_gx = grads.get(xv.as_tensor()).expect("input grad");
        let got_gw = grads.get(&layer.kernel).expect("kernel grad");
        assert_close(
            "grad input",
            &Arr::from_tensor(got_gx).data,
            &gx.data,
            RTOL,
            ATOL,
        );
        assert_close(
            "grad kernel",
            &Arr::from_tensor(got_gw).data,
            &gw.data,
            RTOL,
            ATOL,
        );
        Ok(())
    }
}

#[test]
fn conv_transpose2d_matches_scatter_loops() -> Result<()> {
    // SAME: output in * stride, both branches of jax's rule (s > k - 1 and s <= k - 1).
    TCase::new(&[5, 4], &[3, 3], &[2, 2], Padding::Same)
        .expect(&[10, 8])
        .run(1)?;
    TCase::new(&[3, 4], &[4, 4], &[2, 2], Padding::Same)
        .expect(&[6, 8])
        .run(2)?;
    TCase::new(&[3, 2], &[2, 2], &[3, 3], Padding::Same)
        .expect(&[9, 6])
        .run(3)?;
    // VALID: in * stride + max(k - stride, 0).
    TCase::new(&[4, 3], &[3, 3], &[2, 2], Padding::Valid)
        .expect(&[9, 7])
        .run(4)?;
    TCase::new(&[3, 3], &[2, 2], &[3, 3], Padding::Valid)
        .expect(&[9, 9])
        .run(5)?;
    // Unequal strides, explicit pads of the dilated input, kernel dilation.
    TCase::new(&[4, 5], &[3, 2], &[2, 1], Padding::Same)
        .expect(&[8, 5])
        .run(6)?;
    TCase::new(
        &[3, 4],
        &[3, 3],
        &[2, 2],
        Padding::Explicit(vec![(1, 0), (2, 1)]),
    )
    .run(7)?;
    TCase::new(&[4, 4], &[3, 2], &[2, 2], Padding::Same)
        .dilation(&[2, 1])
        .expect(&[8, 8])
        .run(8)?;
    TCase::new(&[3, 3], &[3, 3], &[1, 1], Padding::Valid)
        .expect(&[5, 5])
        .run(9)?;
    Ok(())
}

#[test]
fn conv_transpose1d_matches_scatter_loops() -> Result<()> {
    TCase::new(&[6], &[5], &[3], Padding::Same)
        .expect(&[18])
        .run(11)?;
    TCase::new(&[5], &[4], &[2], Padding::Valid)
        .expect(&[12])
        .run(12)?;
    TCase::new(&[4], &[3], &[2], Padding::Same)
        .dilation(&[2])
        .expect(&[8])
        .run(13)?;
    Ok(())
}

#[test]
fn conv_transpose_kernel_is_in_out_as_jax_uses_it() -> Result<()> {
    // One input pixel, stride 1, VALID: jax cross-correlates the unflipped kernel over the
    // padded input, so the pixel spreads as the kernel reversed (PyTorch would give 1, 2, 3).
    let layer = ConvTranspose::builder(1, 1, vec![3])
        .padding(Padding::Valid)
        .use_bias(false)
        .build(&mut Rngs::new(0))?;
    layer
        .kernel
        .set(&Tensor::new(&[[[1f32]], [[2.0]], [[3.0]]], &Device::Cpu)?)?;
    let y = layer.forward(&Tensor::new(&[[[1f32]]], &Device::Cpu)?)?;
    assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [3.0, 2.0, 1.0]);
    let wide = ConvTranspose::new(5, 7, vec![2, 3], &mut Rngs::new(0))?;
    assert_eq!(wide.kernel.dims(), &[2, 3, 5, 7]);
    Ok(())
}

#[test]
fn conv_transpose_config_errors() {
    let rngs = &mut Rngs::new(0);
    let e = ConvTranspose::builder(3, 4, vec![3])
        .padding(Padding::Causal)
        .build(rngs)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("causal padding"), "{e}");
    assert!(ConvTranspose::new(3, 4, vec![3, 3, 3], rngs).is_err());
    assert!(ConvTranspose::builder(3, 4, vec![3])
        .strides(vec![0])
        .build(rngs)
        .is_err());
    assert!(ConvTranspose::new(3, 0, vec![3], rngs).is_err());
}
