//! MNIST-FID: the Fréchet distance, precision and recall of generated digits against the
//! MNIST test split, in the feature space of [`MnistClassifier`] (its penultimate layer), and
//! the classifier's confidence on the generated digits.
//!
//! MNIST-FID is **not comparable to the Inception-FID figures of papers**: the features come
//! from a small digit classifier (64 dimensions, trained on 8,000 digits), not from
//! Inception-v3 (2,048 dimensions, ImageNet), so its scale and its sample-size bias differ.
//! Compare MNIST-FID figures only with each other, at the same number of samples.

use std::path::{Path, PathBuf};

use artifex_core::metrics::{
    frechet_distance_of, precision_recall_of, FeatureStats, Features, MetricsError, DEFAULT_K,
};
use artifex_core::prelude::*;
use serde::Serialize;

use crate::MnistClassifier;

/// Images per forward pass of the classifier (bounds the memory of the activations).
const BATCH: usize = 500;

/// The classifier weights shipped in the repository, `data/mnist_features/model.safetensors`
/// (a path inside this source tree; see that folder's README for how they were produced).
pub const SHIPPED_WEIGHTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/mnist_features/model.safetensors"
);

/// A one-call MNIST-FID evaluator: the feature network and the features of the reference
/// images (the test split), computed once.
///
/// ```no_run
/// use artifex_core::data::Mnist;
/// use artifex_core::prelude::{Device, Tensor};
/// use artifex_models::MnistFid;
///
/// // Reference: the test split's images (N, 28, 28, 1) in [0, 1].
/// let mnist = Mnist::load_dir("data/mnist10k")?;
/// let fid = MnistFid::shipped(&mnist.test.images)?;
/// // Samples to judge, e.g. a model's; here uniform noise (the metric's ceiling).
/// let samples = Tensor::rand(0f32, 1f32, (2000, 28, 28, 1), &Device::Cpu)?;
/// let report = fid.evaluate(&samples)?;
/// println!("{report}"); // MNIST-FID 422.0  precision 0.11  recall 0.00  confidence 0.95 ...
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub struct MnistFid {
    classifier: MnistClassifier,
    reference: Features,
    reference_stats: FeatureStats,
    reference_shape: Vec<usize>,
}

/// What [`MnistFid::evaluate`] measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MnistFidReport {
    /// The Fréchet distance between the feature Gaussians of the samples and the reference.
    pub mnist_fid: f64,
    /// Fraction of samples inside the reference's k-NN balls (fidelity).
    pub precision: f64,
    /// Fraction of reference images inside the samples' k-NN balls (coverage).
    pub recall: f64,
    /// The neighbourhood size of precision and recall.
    pub k: usize,
    /// Mean over the samples of the classifier's largest softmax probability.
    pub confidence: f64,
    /// Number of samples evaluated.
    pub samples: usize,
    /// Number of reference images.
    pub reference_samples: usize,
}

impl std::fmt::Display for MnistFidReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MNIST-FID {:.3}  precision {:.4}  recall {:.4}  classifier confidence {:.4} \
             ({} samples vs {} test digits, k = {}; not comparable to Inception-FID)",
            self.mnist_fid,
            self.precision,
            self.recall,
            self.confidence,
            self.samples,
            self.reference_samples,
            self.k
        )
    }
}

impl MnistFidReport {
    /// The report as a JSON object (the fields above, `"metric": "MNIST-FID"` added).
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("metric".into(), "MNIST-FID".into());
        }
        value
    }
}

impl MnistFid {
    /// The evaluator with the shipped classifier ([`SHIPPED_WEIGHTS`]) and the reference
    /// images `(N, 28, 28, 1)` in `[0, 1]` (the test split).
    pub fn shipped(reference_images: &Tensor) -> Result<Self> {
        Self::load(SHIPPED_WEIGHTS, reference_images)
    }

    /// The evaluator with the classifier saved at `weights` (a `MnistClassifier` checkpoint
    /// with its config).
    pub fn load(weights: impl AsRef<Path>, reference_images: &Tensor) -> Result<Self> {
        Self::new(MnistClassifier::from_checkpoint(weights)?, reference_images)
    }

    /// The evaluator with `classifier` (put in eval mode) and the reference images.
    pub fn new(mut classifier: MnistClassifier, reference_images: &Tensor) -> Result<Self> {
        classifier.eval();
        check_finite(reference_images, "reference images")?;
        let (reference, _) = features_and_confidence(&classifier, reference_images, "reference")?;
        let reference_stats = FeatureStats::from_features(&reference)?;
        Ok(MnistFid {
            classifier,
            reference,
            reference_stats,
            reference_shape: reference_images.dims().to_vec(),
        })
    }

    /// Path of the shipped weights as a `PathBuf`.
    pub fn shipped_weights() -> PathBuf {
        PathBuf::from(SHIPPED_WEIGHTS)
    }

    /// The classifier's features `(N, hidden)` of `images` (evaluated in batches).
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        self.check_images(images)?;
        batched(images, |batch| self.classifier.features(batch))
    }

    /// MNIST-FID, precision/recall (k = 3) and the classifier's confidence of `images`
    /// `(N, 28, 28, 1)` in `[0, 1]` against the reference. Needs more samples than feature
    /// dimensions (an error naming both numbers otherwise).
    pub fn evaluate(&self, images: &Tensor) -> Result<MnistFidReport> {
        self.check_images(images)?;
        let (features, confidence) =
            features_and_confidence(&self.classifier, images, "generated")?;
        let stats = FeatureStats::from_features(&features)?;
        let mnist_fid = frechet_distance_of(&self.reference_stats, &stats)?;
        let pr = precision_recall_of(&self.reference, &features, DEFAULT_K)?;
        Ok(MnistFidReport {
            mnist_fid,
            precision: pr.precision,
            recall: pr.recall,
            k: pr.k,
            confidence,
            samples: features.samples(),
            reference_samples: self.reference.samples(),
        })
    }

    /// An error unless `images` have the reference's image shape and only finite pixels
    /// (the classifier's ReLUs would turn a NaN pixel into a silent 0).
    fn check_images(&self, images: &Tensor) -> Result<()> {
        if images.rank() == 4 && images.dims()[1..] == self.reference_shape[1..] {
            return check_finite(images, "generated images");
        }
        Err(MetricsError::ShapeMismatch {
            what: "MNIST-FID image shapes differ".to_string(),
            first_name: "the reference images".to_string(),
            first: self.reference_shape.clone(),
            second_name: "the generated images".to_string(),
            second: images.dims().to_vec(),
        }
        .into())
    }
}

/// An error naming the first NaN or infinite pixel of `images` (row = image, column =
/// position in the flattened image).
fn check_finite(images: &Tensor, name: &str) -> Result<()> {
    let per_image = images.dims()[1..].iter().product::<usize>().max(1);
    let pixels = images
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    match pixels.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(MetricsError::NonFinite {
            set: name.to_string(),
            row: i / per_image,
            column: i % per_image,
            value: f64::from(pixels[i]),
        }
        .into()),
    }
}

/// Features of `images` and the mean max-softmax probability of the classifier on them.
fn features_and_confidence(
    classifier: &MnistClassifier,
    images: &Tensor,
    name: &str,
) -> Result<(Features, f64)> {
    let features = batched(images, |batch| classifier.features(batch))?;
    let logits = classifier.head.forward(&features)?;
    let probabilities = candle_nn::ops::softmax_last_dim(&logits.to_dtype(DType::F64)?)?;
    let confidence = probabilities
        .max(D::Minus1)?
        .mean_all()?
        .to_scalar::<f64>()?;
    Ok((Features::from_tensor(name, &features)?, confidence))
}

/// `f` applied to `BATCH`-image slices of `images`, concatenated.
fn batched(images: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let n = images.dims().first().copied().unwrap_or(0);
    let parts = (0..n)
        .step_by(BATCH)
        .map(|start| f(&images.narrow(0, start, BATCH.min(n - start))?))
        .collect::<Result<Vec<_>>>()?;
    if parts.is_empty() {
        return f(images);
    }
    Ok(Tensor::cat(&parts, 0)?)
}
