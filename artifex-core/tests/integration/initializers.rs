//! Every initializer: statistics of a large draw (mean, std, bounds) against the jax
//! definitions, orthogonality, determinism, errors, serde.

use artifex_core::init::{self, Distribution, FanMode, Init, Initializer};
use artifex_core::prelude::*;
use artifex_core::RngKey;

/// Standard deviation of a unit normal truncated to [-2, 2].
const TRUNC_STD: f64 = 0.879_625_661_034_239_8;

fn draw(init: &Init, shape: &[usize], seed: u64) -> Vec<f64> {
    init.init(RngKey::from_seed(seed), shape, DType::F64, &Device::Cpu)
        .and_then(|t| Ok(t.flatten_all()?.to_vec1::<f64>()?))
        .expect("draw")
}

struct Stats {
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
}

fn stats(v: &[f64]) -> Stats {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    Stats {
        mean,
        std,
        min: v.iter().cloned().fold(f64::MAX, f64::min),
        max: v.iter().cloned().fold(f64::MIN, f64::max),
    }
}

/// Mean within 4 standard errors of `mean`, std within 1% of `std`, values inside `bounds`.
fn assert_dist(name: &str, v: &[f64], mean: f64, std: f64, bounds: (f64, f64)) {
    let s = stats(v);
    let se = std / (v.len() as f64).sqrt();
    assert!(
        (s.mean - mean).abs() < 4.0 * se + 1e-12,
        "{name}: mean {} vs {mean}",
        s.mean
    );
    assert!(
        (s.std / std - 1.0).abs() < 0.01,
        "{name}: std {} vs {std}",
        s.std
    );
    assert!(
        s.min >= bounds.0 && s.max <= bounds.1,
        "{name}: range [{}, {}] vs {bounds:?}",
        s.min,
        s.max
    );
}

const N: f64 = f64::INFINITY;

#[test]
fn constants_are_exact_and_draw_no_key() {
    for (init, value) in [
        (init::zeros(), 0.0),
        (init::ones(), 1.0),
        (init::constant(3.5), 3.5),
        (init::zeros_init(), 0.0),
        (init::ones_init(), 1.0),
    ] {
        assert!(!init.is_random());
        assert!(draw(&init, &[3, 4], 0).iter().all(|&x| x == value));
    }
}

#[test]
fn normal_uniform_and_truncated_normal() {
    let shape = [400, 500];
    assert_dist(
        "normal",
        &draw(&init::normal(0.02), &shape, 1),
        0.0,
        0.02,
        (-N, N),
    );
    let u = draw(&init::uniform(0.5), &shape, 2);
    assert_dist("uniform", &u, 0.25, 0.5 / 12f64.sqrt(), (0.0, 0.5));
    assert!(u.iter().all(|&x| x < 0.5));
    let t = draw(&init::truncated_normal(0.1), &shape, 3);
    assert_dist("truncated_normal", &t, 0.0, 0.1 * TRUNC_STD, (-0.2, 0.2));
    assert!(stats(&t).max > 0.199, "reaches the truncation bound");
}

#[test]
fn variance_scaling_family_uses_jax_fans() {
    // (3, 3, 64, 128): fan_in 576, fan_out 1152, fan_avg 864.
    let conv = [3, 3, 64, 128];
    let dense = [300, 700];
    let cases: Vec<(&str, Init, &[usize], f64, bool)> = vec![
        (
            "lecun_normal",
            init::lecun_normal(),
            &dense,
            1.0 / 300.0,
            true,
        ),
        (
            "lecun_uniform",
            init::lecun_uniform(),
            &dense,
            1.0 / 300.0,
            false,
        ),
        (
            "glorot_normal",
            init::glorot_normal(),
            &conv,
            1.0 / 864.0,
            true,
        ),
        (
            "glorot_uniform",
            init::glorot_uniform(),
            &conv,
            1.0 / 864.0,
            false,
        ),
        ("he_normal", init::he_normal(), &conv, 2.0 / 576.0, true),
        ("he_uniform", init::he_uniform(), &conv, 2.0 / 576.0, false),
        (
            "fan_out normal",
            init::variance_scaling(3.0, FanMode::FanOut, Distribution::Normal),
            &conv,
            3.0 / 1152.0,
            false,
        ),
    ];
    for (i, (name, init, shape, variance, truncated)) in cases.into_iter().enumerate() {
        let v = draw(&init, shape, 10 + i as u64);
        let std = variance.sqrt();
        let bounds = match (&init, truncated) {
            (_, true) => (-2.0 * std / TRUNC_STD, 2.0 * std / TRUNC_STD),
            (
                Init::VarianceScaling {
                    distribution: Distribution::Uniform,
                    ..
                },
                _,
            ) => (-(3.0 * variance).sqrt(), (3.0 * variance).sqrt()),
            _ => (-N, N),
        };
        assert_dist(name, &v, 0.0, std, bounds);
    }
    assert_eq!(init::xavier_normal(), init::glorot_normal());
    assert_eq!(init::xavier_uniform(), init::glorot_uniform());
    assert_eq!(init::kaiming_normal(), init::he_normal());
    assert_eq!(init::kaiming_uniform(), init::he_uniform());
}

#[test]
fn variance_scaling_axes_and_the_embed_default() {
    // (4, 5, 60) with in_axis 0, out_axis 1: receptive 60, fan_in 240.
    let init = init::variance_scaling_axes(1.0, FanMode::FanIn, Distribution::Normal, 0, 1);
    assert_eq!(
        init::fans_with_axes(&[4, 5, 60], 0, 1).expect("fans"),
        (240.0, 300.0)
    );
    assert_dist(
        "axes",
        &draw(&init, &[40, 5, 600], 4),
        0.0,
        (1.0 / 24000.0f64).sqrt(),
        (-N, N),
    );
    // Embed: (num, features) with out_axis 0 gives fan_in = features.
    assert_eq!(
        init::fans_with_axes(&[300, 50], -2, 0).expect("fans"),
        (50.0, 50.0)
    );
    let e = draw(&init::default_embed_init(), &[3000, 50], 5);
    assert_dist("embed", &e, 0.0, 1.0 / 50f64.sqrt(), (-N, N));
    assert!(stats(&e).max > 3.0 / 50f64.sqrt(), "not truncated");
}

fn gram(v: &[f64], rows: usize, cols: usize, by_rows: bool) -> Vec<f64> {
    let n = if by_rows { rows } else { cols };
    let mut g = vec![0.0; n * n];
    for a in 0..n {
        for b in 0..n {
            g[a * n + b] = if by_rows {
                (0..cols).map(|c| v[a * cols + c] * v[b * cols + c]).sum()
            } else {
                (0..rows).map(|r| v[r * cols + a] * v[r * cols + b]).sum()
            };
        }
    }
    g
}

fn assert_scaled_identity(g: &[f64], n: usize, s2: f64) {
    for a in 0..n {
        for b in 0..n {
            let want = if a == b { s2 } else { 0.0 };
            assert!(
                (g[a * n + b] - want).abs() < 1e-9,
                "gram[{a}][{b}] = {}",
                g[a * n + b]
            );
        }
    }
}

#[test]
fn orthogonal_rows_or_columns() {
    // Wide: orthonormal rows; tall (and conv-shaped): orthonormal columns.
    let wide = draw(&init::orthogonal(2.0), &[30, 50], 6);
    assert_scaled_identity(&gram(&wide, 30, 50, true), 30, 4.0);
    let tall = draw(&init::orthogonal(1.0), &[50, 30], 7);
    assert_scaled_identity(&gram(&tall, 50, 30, false), 30, 1.0);
    let conv = draw(&init::orthogonal(1.0), &[3, 3, 4, 8], 8);
    assert_scaled_identity(&gram(&conv, 36, 8, false), 8, 1.0);
}

#[test]
fn delta_orthogonal_has_an_orthogonal_center_tap() {
    let v = draw(&init::delta_orthogonal(1.5), &[3, 3, 4, 6], 9);
    let tap = 4 * 6;
    for (k, chunk) in v.chunks(tap).enumerate() {
        if k == 4 {
            assert_scaled_identity(&gram(chunk, 4, 6, true), 4, 2.25);
        } else {
            assert!(chunk.iter().all(|&x| x == 0.0), "tap {k} is not zero");
        }
    }
    // 1-D kernel of size 4: center (4 - 1) / 2 = 1, as jax.
    let v = draw(&init::delta_orthogonal(1.0), &[4, 2, 3], 10);
    assert!(v[6..12].iter().any(|&x| x != 0.0));
    assert!(v[..6].iter().chain(&v[12..]).all(|&x| x == 0.0));
    let err = |shape: &[usize]| {
        init::delta_orthogonal(1.0)
            .init(RngKey::from_seed(0), shape, DType::F32, &Device::Cpu)
            .unwrap_err()
            .to_string()
    };
    assert!(err(&[3, 3, 8, 4]).contains("in <= out"));
    assert!(err(&[8, 8]).contains("rank 3 to 5"));
}

#[test]
fn draws_are_deterministic_per_key() {
    let all = [
        init::normal(1.0),
        init::uniform(1.0),
        init::truncated_normal(1.0),
        init::lecun_normal(),
        init::glorot_uniform(),
        init::he_normal(),
        init::default_embed_init(),
        init::orthogonal(1.0),
        init::delta_orthogonal(1.0),
    ];
    for init in all {
        let shape = [3, 5, 7];
        let a = draw(&init, &shape, 42);
        assert_eq!(a, draw(&init, &shape, 42), "{init:?}");
        assert_ne!(a, draw(&init, &shape, 43), "{init:?}");
        assert!(init.is_random());
        // f32 draws are the f64 draws rounded.
        let f = init
            .init(RngKey::from_seed(42), &shape, DType::F32, &Device::Cpu)
            .and_then(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
            .expect("f32");
        assert!(f.iter().zip(&a).all(|(x, y)| *x == *y as f32));
    }
}

#[test]
fn errors_and_serde() {
    let key = RngKey::from_seed(0);
    let e = init::lecun_normal()
        .init(key, &[5], DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rank >= 2"), "{e}");
    let bad_axis = init::variance_scaling_axes(1.0, FanMode::FanIn, Distribution::Normal, 0, 3);
    assert!(bad_axis
        .init(key, &[2, 3], DType::F32, &Device::Cpu)
        .is_err());

    let json = r#"{"kind":"variance_scaling","scale":2.0,"mode":"fan_in","distribution":"truncated_normal"}"#;
    let parsed: Init = serde_json::from_str(json).expect("old form");
    assert_eq!(parsed, init::he_normal());
    let embed = serde_json::to_string(&init::default_embed_init()).expect("json");
    assert!(embed.contains(r#""out_axis":0"#), "{embed}");
    assert_eq!(
        serde_json::from_str::<Init>(&embed).expect("back"),
        init::default_embed_init()
    );
    let d: Init =
        serde_json::from_str(r#"{"kind":"delta_orthogonal","scale":1.0}"#).expect("delta");
    assert_eq!(d, init::delta_orthogonal(1.0));
}
