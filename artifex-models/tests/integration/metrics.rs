//! `artifex_core::metrics` against reference values (python/make_fid_fixtures.py): the
//! Fréchet distance of pytorch-fid's formula (numpy + `scipy.linalg.sqrtm`) within 1e-6
//! relative, improved precision/recall (Kynkäänniemi et al. 2019) exactly; and bad input
//! as errors that say what is wrong.

use std::collections::HashMap;
use std::path::PathBuf;

use artifex_core::metrics::{
    frechet_distance, frechet_distance_of, precision_recall, FeatureStats, Features, MetricsError,
    DEFAULT_K,
};
use artifex_core::prelude::*;

const CASES: [&str; 4] = ["gaussian", "identical", "ill_conditioned", "blocks"];

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join(format!("tests/fixtures/metrics/{name}.safetensors"));
    candle_core::safetensors::load(&path, &Device::Cpu).expect("fixture loads")
}

fn scalar(f: &HashMap<String, Tensor>, key: &str) -> f64 {
    f[key].to_scalar::<f64>().expect(key)
}

#[test]
fn frechet_distance_matches_pytorch_fid_formula() {
    for case in CASES {
        let f = fixture(case);
        let ours = frechet_distance(&f["real"], &f["generated"]).expect(case);
        let reference = scalar(&f, "fid");
        if case == "identical" {
            // Both are rounding noise around 0.
            assert!(
                ours.abs() < 1e-9 && reference.abs() < 1e-9,
                "{ours} vs {reference}"
            );
            continue;
        }
        let rel = (ours - reference).abs() / reference.abs();
        println!("{case}: {ours:.12} vs {reference:.12} (rel {rel:.1e})");
        assert!(rel < 1e-6, "{case}: {ours} vs {reference} (rel {rel:.2e})");
    }
}

#[test]
fn precision_and_recall_match_the_definition_exactly() {
    for case in CASES {
        let f = fixture(case);
        for k in [3, 5] {
            let pr = precision_recall(&f["real"], &f["generated"], k).expect(case);
            assert_eq!(pr.k, k);
            assert_eq!(
                pr.precision,
                scalar(&f, &format!("precision_k{k}")),
                "{case} k={k}"
            );
            assert_eq!(
                pr.recall,
                scalar(&f, &format!("recall_k{k}")),
                "{case} k={k}"
            );
        }
    }
    let f = fixture("identical");
    let pr = precision_recall(&f["real"], &f["generated"], DEFAULT_K).expect("identical");
    assert_eq!((pr.precision, pr.recall), (1.0, 1.0));
}

#[test]
fn statistics_and_dtypes() {
    // f32 and f64 inputs of the same values give the same distance; the statistics are the
    // plain mean and unbiased covariance.
    let f = fixture("gaussian");
    let real64 = f["real"].to_dtype(DType::F64).expect("f64");
    let a = frechet_distance(&f["real"], &f["generated"]).expect("f32");
    let b = frechet_distance(&real64, &f["generated"]).expect("f64");
    assert_eq!(a, b);

    let x = Tensor::new(&[[1f64, 2.0], [3.0, 0.0], [5.0, 4.0]], &Device::Cpu).expect("x");
    let stats =
        FeatureStats::from_features(&Features::from_tensor("x", &x).expect("x")).expect("stats");
    assert_eq!(stats.mean(), &[3.0, 2.0]);
    assert_eq!(stats.covariance(), &[4.0, 2.0, 2.0, 4.0]);
    assert_eq!((stats.samples(), stats.dims()), (3, 2));
    // Against itself shifted by (3, 4): only the mean term remains, 3² + 4² = 25.
    let shifted = x
        .broadcast_add(&Tensor::new(&[3f64, 4.0], &Device::Cpu).expect("t"))
        .expect("shift");
    let d = frechet_distance(&x, &shifted).expect("fid");
    assert!((d - 25.0).abs() < 1e-12, "{d}");
}

fn metrics_error(err: Error) -> MetricsError {
    match err {
        Error::Metrics(e) => *e,
        other => panic!("expected a metrics error, got {other}"),
    }
}

#[test]
fn fewer_samples_than_dimensions_is_a_singular_covariance_error() {
    let real = Tensor::randn(0f32, 1.0, (100, 16), &Device::Cpu).expect("real");
    for n in [1, 10, 16] {
        let few = Tensor::randn(0f32, 1.0, (n, 16), &Device::Cpu).expect("few");
        let err = frechet_distance(&real, &few).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("generated features: {n} samples of 16 dimensions"))
                && message.contains("singular covariance"),
            "{message}"
        );
        assert_eq!(
            metrics_error(err),
            MetricsError::SingularCovariance {
                set: "generated".into(),
                samples: n,
                dims: 16
            }
        );
    }
    // 17 samples of 16 dimensions: a full-rank covariance, a finite distance.
    let enough = Tensor::randn(0f32, 1.0, (17, 16), &Device::Cpu).expect("17");
    assert!(frechet_distance(&real, &enough)
        .expect("17 samples")
        .is_finite());
}

#[test]
fn different_widths_and_non_matrices_name_the_shapes() {
    let real = Tensor::randn(0f32, 1.0, (100, 16), &Device::Cpu).expect("real");
    let narrow = Tensor::randn(0f32, 1.0, (80, 8), &Device::Cpu).expect("narrow");
    for err in [
        frechet_distance(&real, &narrow).unwrap_err(),
        precision_recall(&real, &narrow, 3).unwrap_err(),
    ] {
        let message = err.to_string();
        assert!(
            message.contains("feature widths differ")
                && message.contains("real has shape [100, 16]")
                && message.contains("generated has shape [80, 8]"),
            "{message}"
        );
    }
    let a = FeatureStats::from_features(&Features::from_tensor("a", &real).expect("a")).expect("a");
    let b =
        FeatureStats::from_features(&Features::from_tensor("b", &narrow).expect("b")).expect("b");
    let message = frechet_distance_of(&a, &b).unwrap_err().to_string();
    assert!(
        message.contains("[100, 16]") && message.contains("[80, 8]"),
        "{message}"
    );

    let images = Tensor::zeros((4, 28, 28, 1), DType::F32, &Device::Cpu).expect("images");
    let message = frechet_distance(&real, &images).unwrap_err().to_string();
    assert!(
        message.contains("generated features must be a matrix (N, D), got shape [4, 28, 28, 1]"),
        "{message}"
    );
}

#[test]
fn non_finite_features_are_named_not_propagated() {
    let real = Tensor::randn(0f32, 1.0, (50, 4), &Device::Cpu).expect("real");
    let mut values = vec![0.5f32; 40 * 4];
    values[2 * 4 + 3] = f32::NAN;
    values[30] = f32::INFINITY;
    let bad = Tensor::from_vec(values, (40, 4), &Device::Cpu).expect("bad");
    for err in [
        frechet_distance(&real, &bad).unwrap_err(),
        precision_recall(&real, &bad, 3).unwrap_err(),
    ] {
        let message = err.to_string();
        assert!(
            message.contains("generated features: value at row 2, column 3 is not finite (NaN)"),
            "{message}"
        );
        match metrics_error(err) {
            MetricsError::NonFinite {
                set,
                row,
                column,
                value,
            } => assert!(set == "generated features" && (row, column) == (2, 3) && value.is_nan()),
            other => panic!("{other}"),
        }
    }
}

#[test]
fn precision_recall_needs_a_neighbourhood_smaller_than_each_set() {
    let real = Tensor::randn(0f32, 1.0, (50, 4), &Device::Cpu).expect("real");
    let small = Tensor::randn(0f32, 1.0, (3, 4), &Device::Cpu).expect("small");
    let message = precision_recall(&real, &small, 3).unwrap_err().to_string();
    assert!(
        message.contains("k = 3 with 3 generated samples"),
        "{message}"
    );
    let message = precision_recall(&real, &real, 0).unwrap_err().to_string();
    assert!(message.contains("1 <= k < samples"), "{message}");
}

/// The shipped MNIST-FID evaluator (data/mnist_features) on the bundled test split.
mod mnist_fid {
    use super::*;
    use artifex_core::data::Mnist;
    use artifex_models::{MnistClassifier, MnistFid, SHIPPED_WEIGHTS};

    fn mnist() -> Mnist {
        Mnist::load_dir(
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("data/mnist10k"),
        )
        .expect("mnist")
    }

    #[test]
    fn shipped_classifier_has_its_documented_accuracy() {
        let mnist = mnist();
        let mut model = MnistClassifier::from_checkpoint(SHIPPED_WEIGHTS).expect("shipped");
        model.eval();
        assert_eq!(model.hidden, 64);
        let predicted: Vec<u32> = model
            .predict(&mnist.test.images)
            .and_then(|t| Ok(t.to_vec1()?))
            .expect("predict");
        let labels: Vec<u32> = mnist.test.labels.to_vec1().expect("labels");
        let hits = predicted
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p == l)
            .count();
        // data/mnist_features/README.md: 98.15% of the 2,000 test digits.
        assert_eq!(hits, 1963, "{hits} / 2000");
    }

    #[test]
    fn floor_ceiling_and_identity() {
        let mnist = mnist();
        let fid = MnistFid::shipped(&mnist.test.images).expect("evaluator");

        let same = fid.evaluate(&mnist.test.images).expect("test vs test");
        assert!(same.mnist_fid.abs() < 1e-6, "{same}");
        assert_eq!((same.precision, same.recall), (1.0, 1.0));
        assert_eq!(
            (same.samples, same.reference_samples, same.k),
            (2000, 2000, 3)
        );

        let train = mnist.train.images.narrow(0, 0, 2000).expect("train");
        let floor = fid.evaluate(&train).expect("floor");
        let noise = Tensor::rand(0f32, 1.0, (2000, 28, 28, 1), &Device::Cpu).expect("noise");
        let ceiling = fid.evaluate(&noise).expect("ceiling");
        println!("floor: {floor}\nceiling: {ceiling}");
        // Real digits: close, precise, covering, confidently classified.
        assert!(floor.mnist_fid > 0.0 && floor.mnist_fid < 10.0, "{floor}");
        assert!(floor.precision > 0.8 && floor.recall > 0.8, "{floor}");
        assert!(floor.confidence > 0.95, "{floor}");
        // Noise: far away, and covers none of the test digits.
        assert!(ceiling.mnist_fid > 20.0 * floor.mnist_fid, "{ceiling}");
        assert!(
            ceiling.recall < 0.05 && ceiling.precision < floor.precision,
            "{ceiling}"
        );

        let json = floor.to_json();
        assert_eq!(json["metric"], "MNIST-FID");
        assert_eq!(json["samples"].as_u64(), Some(2000));
        assert!(json["mnist_fid"].as_f64().is_some_and(|v| v > 0.0));
        assert!(floor
            .to_string()
            .contains("not comparable to Inception-FID"));
    }

    #[test]
    fn bad_images_are_errors_naming_the_shapes_and_counts() {
        let mnist = mnist();
        let reference = mnist.test.images.narrow(0, 0, 300).expect("reference");
        let fid = MnistFid::shipped(&reference).expect("evaluator");
        let wrong = Tensor::zeros((10, 32, 32, 1), DType::F32, &Device::Cpu).expect("wrong");
        let message = fid.evaluate(&wrong).unwrap_err().to_string();
        assert!(
            message.contains("image shapes differ")
                && message.contains("[300, 28, 28, 1]")
                && message.contains("[10, 32, 32, 1]"),
            "{message}"
        );
        let flat = Tensor::zeros((10, 784), DType::F32, &Device::Cpu).expect("flat");
        let message = fid.features(&flat).unwrap_err().to_string();
        assert!(message.contains("[10, 784]"), "{message}");

        let few = mnist.train.images.narrow(0, 0, 40).expect("few");
        let message = fid.evaluate(&few).unwrap_err().to_string();
        assert!(
            message.contains("40 samples of 64 dimensions") && message.contains("singular"),
            "{message}"
        );
        let mut nan = vec![0f32; 100 * 784];
        nan[5] = f32::NAN;
        let nan = Tensor::from_vec(nan, (100, 28, 28, 1), &Device::Cpu).expect("nan");
        let message = fid.evaluate(&nan).unwrap_err().to_string();
        assert!(
            message.contains(
                "metrics: generated images: value at row 0, column 5 is not finite (NaN)"
            ),
            "{message}"
        );
    }
}
