//! The seed's MultiHeadAttention against an f64 loop implementation, masks (fully masked rows
//! included), dropout in train/eval, state paths and draw order, errors.

use crate::naive;

use artifex_core::init::Initializer;
use artifex_core::prelude::*;
use candle_nn::ModuleT;
use naive::{assert_close, Arr};

struct Weights {
    w: [Arr; 4],
    b: [Arr; 4],
}

fn weights(m: &MultiHeadAttention) -> Weights {
    let lin = [&m.q_proj, &m.k_proj, &m.v_proj, &m.out_proj];
    Weights {
        w: lin.map(|l| Arr::from_tensor(&l.kernel)),
        b: lin.map(|l| Arr::from_tensor(l.bias.as_ref().expect("bias"))),
    }
}

fn dense(x: &[f64], w: &Arr, b: &Arr) -> Vec<f64> {
    let (din, dout) = (w.dims[0], w.dims[1]);
    x.chunks(din)
        .flat_map(|row| {
            (0..dout)
                .map(|o| b.data[o] + (0..din).map(|i| row[i] * w.data[i * dout + o]).sum::<f64>())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Output `(b, s, hidden)` and attention weights `(b, h, s, s)`; `keep[b][q][k]`.
fn reference(
    x: &Arr,
    wt: &Weights,
    heads: usize,
    keep: Option<&dyn Fn(usize, usize, usize) -> bool>,
) -> (Vec<f64>, Vec<f64>) {
    let (b, s, hid) = (x.dims[0], x.dims[1], x.dims[2]);
    let d = hid / heads;
    let q = dense(&x.data, &wt.w[0], &wt.b[0]);
    let k = dense(&x.data, &wt.w[1], &wt.b[1]);
    let v = dense(&x.data, &wt.w[2], &wt.b[2]);
    let at =
        |t: &Vec<f64>, n: usize, i: usize, h: usize, j: usize| t[(n * s + i) * hid + h * d + j];
    let mut ctx = vec![0.0; b * s * hid];
    let mut probs = vec![0.0; b * heads * s * s];
    for n in 0..b {
        for h in 0..heads {
            for i in 0..s {
                let scores: Vec<f64> = (0..s)
                    .map(|j| {
                        let dot: f64 = (0..d)
                            .map(|e| at(&q, n, i, h, e) * at(&k, n, j, h, e))
                            .sum();
                        match keep {
                            Some(f) if !f(n, i, j) => -1e9,
                            _ => dot / (d as f64).sqrt(),
                        }
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for j in 0..s {
                    let p = e[j] / z;
                    probs[((n * heads + h) * s + i) * s + j] = p;
                    for c in 0..d {
                        ctx[(n * s + i) * hid + h * d + c] += p * at(&v, n, j, h, c);
                    }
                }
            }
        }
    }
    (dense(&ctx, &wt.w[3], &wt.b[3]), probs)
}

fn mask_tensor(b: usize, s: usize, keep: &dyn Fn(usize, usize, usize) -> bool) -> Tensor {
    let v: Vec<u8> = (0..b * s * s)
        .map(|i| u8::from(keep(i / (s * s), (i / s) % s, i % s)))
        .collect();
    Tensor::from_vec(v, (b, s, s), &Device::Cpu).expect("mask")
}

#[test]
fn matches_reference_with_and_without_masks() -> Result<()> {
    let attn = MultiHeadAttention::new(8, 2, &mut Rngs::new(0))?;
    let x = naive::tensor(&[2, 5, 8], 1);
    let xa = Arr::from_tensor(&x);
    let wt = weights(&attn);

    let (y, p) = attn.forward_with_weights(&x, None, None)?;
    let (want_y, want_p) = reference(&xa, &wt, 2, None);
    assert_close("output", &Arr::from_tensor(&y).data, &want_y, 1e-5, 1e-6);
    assert_close("weights", &Arr::from_tensor(&p).data, &want_p, 1e-5, 1e-6);

    let causal = |_: usize, i: usize, j: usize| j <= i;
    let (y, p) = attn.forward_with_weights(&x, Some(&causal_mask(2, 5, &Device::Cpu)?), None)?;
    let (want_y, want_p) = reference(&xa, &wt, 2, Some(&causal));
    assert_close(
        "causal output",
        &Arr::from_tensor(&y).data,
        &want_y,
        1e-5,
        1e-6,
    );
    assert_close(
        "causal weights",
        &Arr::from_tensor(&p).data,
        &want_p,
        1e-5,
        1e-6,
    );

    // A ragged mask with a fully masked row (example 1, query 2).
    let ragged = |n: usize, i: usize, j: usize| {
        let fully_masked = n == 1 && i == 2;
        let open = !(i + j + n).is_multiple_of(3);
        open && !fully_masked
    };
    let mask = mask_tensor(2, 5, &ragged);
    let (y, p) = attn.forward_with_weights(&x, Some(&mask), None)?;
    let (want_y, want_p) = reference(&xa, &wt, 2, Some(&ragged));
    assert_close(
        "ragged output",
        &Arr::from_tensor(&y).data,
        &want_y,
        1e-5,
        1e-6,
    );
    assert_close(
        "ragged weights",
        &Arr::from_tensor(&p).data,
        &want_p,
        1e-5,
        1e-6,
    );
    Ok(())
}

#[test]
fn fully_masked_rows_give_uniform_weights_and_finite_gradients() -> Result<()> {
    let attn = MultiHeadAttention::new(4, 2, &mut Rngs::new(1))?;
    let x = candle_core::Var::from_tensor(&naive::tensor(&[2, 3, 4], 2))?;
    let nothing = Tensor::zeros((2, 3, 3), DType::U8, &Device::Cpu)?;
    let (y, p) = attn.forward_with_weights(x.as_tensor(), Some(&nothing), None)?;
    let p = Arr::from_tensor(&p).data;
    assert!(p.iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-6), "{p:?}");
    assert!(Arr::from_tensor(&y).data.iter().all(|v| v.is_finite()));
    let grads = y.sqr()?.sum_all()?.backward()?;
    for t in [x.as_tensor(), &*attn.q_proj.kernel, &*attn.v_proj.kernel] {
        let g = Arr::from_tensor(grads.get(t).expect("grad")).data;
        assert!(g.iter().all(|v| v.is_finite()));
    }
    Ok(())
}

#[test]
fn mask_forms_broadcast() -> Result<()> {
    let attn = MultiHeadAttention::new(6, 3, &mut Rngs::new(2))?;
    let x = naive::tensor(&[2, 4, 6], 3);
    let full = attn.forward(&x, Some(&causal_mask(2, 4, &Device::Cpu)?))?;
    let one = attn.forward(&x, Some(&causal_mask(1, 4, &Device::Cpu)?))?;
    let square = attn.forward(&x, Some(&causal_mask(1, 4, &Device::Cpu)?.squeeze(0)?))?;
    let float = attn.forward(
        &x,
        Some(&causal_mask(2, 4, &Device::Cpu)?.to_dtype(DType::F32)?),
    )?;
    let want = Arr::from_tensor(&full).data;
    for t in [one, square, float] {
        assert_eq!(Arr::from_tensor(&t).data, want);
    }
    let m = causal_mask(1, 3, &Device::Cpu)?
        .squeeze(0)?
        .to_vec2::<u8>()?;
    assert_eq!(m, [[1, 0, 0], [1, 1, 0], [1, 1, 1]]);
    Ok(())
}

#[test]
fn state_paths_and_draw_order_follow_the_seed() -> Result<()> {
    let attn = MultiHeadAttention::builder(4, 2)
        .dropout_rate(0.1)
        .build(&mut Rngs::new(3))?;
    let paths: Vec<String> = attn.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "q_proj.kernel",
            "q_proj.bias",
            "k_proj.kernel",
            "k_proj.bias",
            "v_proj.kernel",
            "v_proj.bias",
            "out_proj.kernel",
            "out_proj.bias",
            "dropout.rngs.count",
            "dropout.rngs.key",
        ]
    );
    // q, k, v, out in order, each Linear drawing kernel then bias.
    let rngs = &mut Rngs::new(3);
    let mut kernels = Vec::new();
    for _ in 0..4 {
        kernels.push(init::lecun_normal().init(
            rngs.params()?,
            &[4, 4],
            DType::F32,
            &Device::Cpu,
        )?);
        rngs.params()?;
    }
    for (lin, k) in [&attn.q_proj, &attn.k_proj, &attn.v_proj, &attn.out_proj]
        .iter()
        .zip(&kernels)
    {
        assert_eq!(Arr::from_tensor(&lin.kernel).data, Arr::from_tensor(k).data);
    }
    let plain = MultiHeadAttention::new(4, 2, &mut Rngs::new(3))?;
    assert!(plain.dropout.is_none());
    assert_eq!(plain.state().len(), 8);
    assert_eq!(plain.head_dim, 2);
    Ok(())
}

#[test]
fn dropout_acts_in_training_only() -> Result<()> {
    let mut attn = MultiHeadAttention::builder(8, 2)
        .dropout_rate(0.5)
        .build(&mut Rngs::new(4))?;
    let x = naive::tensor(&[2, 6, 8], 5);
    let reference = Arr::from_tensor(&attn.forward_t(&x, None, Some(false))?).data;
    let train1 = Arr::from_tensor(&attn.forward(&x, None)?).data;
    let train2 = Arr::from_tensor(&attn.forward(&x, None)?).data;
    assert_ne!(train1, reference);
    assert_ne!(train1, train2, "each call draws a new mask");
    attn.eval();
    assert_eq!(Arr::from_tensor(&attn.forward(&x, None)?).data, reference);
    let forced = Arr::from_tensor(&attn.forward_t(&x, None, Some(true))?).data;
    assert_ne!(forced, reference);
    assert_eq!(
        Arr::from_tensor(&ModuleT::forward_t(&attn, &x, false)?).data,
        reference
    );
    Ok(())
}

#[derive(Module)]
struct Block {
    attn: MultiHeadAttention,
}

#[test]
fn config_and_shape_errors() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let err = |r: Result<MultiHeadAttention>| r.map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        err(MultiHeadAttention::new(10, 3, rngs)),
        "MultiHeadAttention: invalid configuration: hidden_size 10 must be divisible by num_heads 3"
    );
    assert!(err(MultiHeadAttention::new(10, 0, rngs)).contains("num_heads must be positive"));
    assert!(err(MultiHeadAttention::new(0, 2, rngs)).contains("hidden_size must be positive"));
    assert!(err(MultiHeadAttention::builder(8, 2)
        .dropout_rate(1.5)
        .build(rngs))
    .contains("[0, 1]"));

    let mut block = Block {
        attn: MultiHeadAttention::new(8, 2, rngs)?,
    };
    block.eval();
    let e = block
        .attn
        .forward(&naive::tensor(&[2, 3, 7], 0), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "attn (MultiHeadAttention): expected input of shape [batch, seq, 8], got [2, 3, 7]"
    );
    assert!(block
        .attn
        .forward(&naive::tensor(&[3, 8], 0), None)
        .is_err());
    let e = block
        .attn
        .forward(
            &naive::tensor(&[2, 3, 8], 0),
            Some(&causal_mask(2, 4, &Device::Cpu)?),
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "attn (MultiHeadAttention): invalid input: the mask must have shape [2, 3, 3], [1, 3, 3] or [3, 3], got [2, 4, 4]"
    );
    Ok(())
}

#[test]
fn dot_product_attention_is_what_the_layer_computes_between_its_projections() -> Result<()> {
    use artifex_core::layers::dot_product_attention;
    let attn = MultiHeadAttention::new(8, 2, &mut Rngs::new(3))?;
    let x = naive::tensor(&[2, 5, 8], 4);
    let mask = causal_mask(2, 5, &Device::Cpu)?;
    let heads = |l: &Linear| l.forward(&x)?.reshape((2, 5, 2, 4)).map_err(Error::from);
    let (q, k, v) = (
        heads(&attn.q_proj)?,
        heads(&attn.k_proj)?,
        heads(&attn.v_proj)?,
    );
    let (context, weights) = dot_product_attention(&q, &k, &v, Some(&mask), None, None)?;
    assert_eq!(context.dims(), &[2, 5, 2, 4]);
    let y = attn.out_proj.forward(&context.reshape((2, 5, 8))?)?;
    let (expected, expected_weights) = attn.forward_with_weights(&x, Some(&mask), None)?;
    let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    assert_eq!(flat(&y)?, flat(&expected)?);
    assert_eq!(flat(&weights)?, flat(&expected_weights)?);
    Ok(())
}

#[test]
fn dot_product_attention_attends_over_another_length_and_checks_its_operands() -> Result<()> {
    use artifex_core::layers::dot_product_attention;
    let q = naive::tensor(&[2, 3, 2, 4], 1);
    let kv = naive::tensor(&[2, 6, 2, 4], 2);
    let (context, weights) = dot_product_attention(&q, &kv, &kv, None, None, None)?;
    assert_eq!(context.dims(), &[2, 3, 2, 4]);
    assert_eq!(weights.dims(), &[2, 2, 3, 6]);
    // A (q, k) mask is shared by the batch; a fully masked row is uniform.
    let mask = Tensor::zeros((3, 6), DType::U8, &Device::Cpu)?;
    let (_, weights) = dot_product_attention(&q, &kv, &kv, Some(&mask), None, None)?;
    for w in weights.flatten_all()?.to_vec1::<f32>()? {
        assert!((w - 1.0 / 6.0).abs() < 1e-6);
    }
    let err = |r: Result<(Tensor, Tensor)>| r.map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        err(dot_product_attention(&q, &kv, &kv, Some(&mask.t()?), None, None)),
        "dot_product_attention: invalid input: the mask must have shape [2, 3, 6], [1, 3, 6] or [3, 6], got [6, 3]"
    );
    let other_heads = naive::tensor(&[2, 6, 4, 2], 2);
    assert_eq!(
        err(dot_product_attention(
            &q,
            &other_heads,
            &kv,
            None,
            None,
            None
        )),
        "dot_product_attention (key): expected input of shape [2, len, 2, 4], got [2, 6, 4, 2]"
    );
    assert_eq!(
        err(dot_product_attention(&q, &kv, &q, None, None, None)),
        "dot_product_attention (value): expected input of shape [2, 6, 2, 4] (the key's shape), got [2, 3, 2, 4]"
    );
    assert_eq!(
        err(dot_product_attention(&kv.flatten_from(2)?, &kv, &kv, None, None, None)),
        "dot_product_attention (query): expected input of shape [batch, len, heads, head_dim], got [2, 6, 8]"
    );
    Ok(())
}
