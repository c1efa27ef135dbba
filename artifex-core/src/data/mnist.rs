//! MNIST from its IDX files: the full 60k/10k download or the bundled 8k/2k subset
//! (`data/mnist10k`), gzip-compressed or not.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::idx::{read_idx, IdxArray};
use super::TensorDataset;
use crate::{DataError, Result};

/// Height and width of an MNIST image.
pub const IMAGE_SIZE: usize = 28;
/// Number of digit classes (labels are `0..NUM_CLASSES`).
pub const NUM_CLASSES: usize = 10;

/// One split of MNIST: images and their labels, on the CPU.
#[derive(Clone, Debug)]
pub struct MnistSplit {
    /// `f32` pixels in `[0, 1]` (byte / 255), shape `(N, 28, 28, 1)` (NHWC).
    pub images: Tensor,
    /// `u32` digits in `0..10`, shape `(N,)`.
    pub labels: Tensor,
}

impl MnistSplit {
    /// Reads an image file (idx3) and its label file (idx1), each gzip-compressed or raw.
    pub fn load(images: &Path, labels: &Path) -> Result<Self> {
        let image_idx = read_idx(images)?;
        let label_idx = read_idx(labels)?;
        Self::from_idx(
            &image_idx,
            &label_idx,
            &images.display().to_string(),
            &labels.display().to_string(),
        )
    }

    /// Checks and converts parsed IDX arrays; the names are used in errors.
    pub fn from_idx(
        images: &IdxArray,
        labels: &IdxArray,
        images_name: &str,
        labels_name: &str,
    ) -> Result<Self> {
        let (n, h, w) = match images.dims[..] {
            [n, h, w] => (n, h, w),
            _ => {
                return Err(DataError::corrupt(
                    images_name,
                    format!(
                        "an image file has 3 dimensions (N, 28, 28), found {:?}",
                        images.dims
                    ),
                )
                .into())
            }
        };
        if (h, w) != (IMAGE_SIZE, IMAGE_SIZE) {
            return Err(DataError::corrupt(
                images_name,
                format!("MNIST images are 28x28, found {h}x{w}"),
            )
            .into());
        }
        let num_labels = match labels.dims[..] {
            [m] => m,
            _ => {
                return Err(DataError::corrupt(
                    labels_name,
                    format!("a label file has 1 dimension (N), found {:?}", labels.dims),
                )
                .into())
            }
        };
        if num_labels != n {
            return Err(DataError::CountMismatch {
                images: images_name.to_string(),
                labels: labels_name.to_string(),
                num_images: n,
                num_labels,
            }
            .into());
        }
        if let Some(i) = labels
            .data
            .iter()
            .position(|&l| usize::from(l) >= NUM_CLASSES)
        {
            return Err(DataError::corrupt(
                labels_name,
                format!("label {i} is {}, outside 0..{NUM_CLASSES}", labels.data[i]),
            )
            .into());
        }
        let pixels: Vec<f32> = images.data.iter().map(|&b| f32::from(b) / 255.0).collect();
        let digits: Vec<u32> = labels.data.iter().map(|&l| u32::from(l)).collect();
        Ok(Self {
            images: Tensor::from_vec(pixels, (n, h, w, 1), &Device::Cpu)?,
            labels: Tensor::from_vec(digits, n, &Device::Cpu)?,
        })
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.labels.dims1().unwrap_or(0)
    }

    /// True when the split holds no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The split as a dataset of `(images, labels)`.
    pub fn dataset(&self) -> Result<TensorDataset> {
        TensorDataset::new(vec![self.images.clone(), self.labels.clone()])
    }
}

/// MNIST's training and test splits.
///
/// ```
/// let mnist = artifex_core::data::Mnist::load_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/mnist10k"))?;
/// assert_eq!(mnist.train.images.dims(), &[8000, 28, 28, 1]);
/// assert_eq!(mnist.test.len(), 2000);
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Mnist {
    /// `train-images-idx3-ubyte` / `train-labels-idx1-ubyte`.
    pub train: MnistSplit,
    /// `t10k-images-idx3-ubyte` / `t10k-labels-idx1-ubyte`.
    pub test: MnistSplit,
}

impl Mnist {
    /// Loads the four standard files from `dir`, each found under its usual name with or
    /// without `.gz` (or with `.` instead of `-` before `idx`, as some mirrors name them).
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let split = |prefix: &str| -> Result<MnistSplit> {
            let images = find(dir, prefix, "images", "idx3-ubyte")?;
            let labels = find(dir, prefix, "labels", "idx1-ubyte")?;
            MnistSplit::load(&images, &labels)
        };
        Ok(Self {
            train: split("train")?,
            test: split("t10k")?,
        })
    }
}

/// The first existing file among the accepted names of one MNIST file.
fn find(dir: &Path, prefix: &str, kind: &str, format: &str) -> Result<PathBuf> {
    let tried: Vec<String> = ["-", "."]
        .iter()
        .flat_map(|sep| {
            let base = format!("{prefix}-{kind}{sep}{format}");
            [format!("{base}.gz"), base]
        })
        .collect();
    tried
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            DataError::NotFound {
                dir: dir.display().to_string(),
                tried,
            }
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::{gzip, idx_bytes};
    use crate::Error;

    fn vendored() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist10k")
    }

    fn tiny_split(n_images: u32, n_labels: u32) -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..n_images * 784).map(|i| (i % 256) as u8).collect();
        let labels: Vec<u8> = (0..n_labels).map(|i| (i % 10) as u8).collect();
        (
            idx_bytes(&[n_images, 28, 28], &pixels),
            idx_bytes(&[n_labels], &labels),
        )
    }

    fn write_dir(name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("artifex-mnist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (f, bytes) in files {
            std::fs::write(dir.join(f), bytes).unwrap();
        }
        dir
    }

    #[test]
    fn loads_a_tiny_directory_raw_and_gzip_mixed() {
        let (img, lab) = tiny_split(3, 3);
        let (timg, tlab) = tiny_split(2, 2);
        let dir = write_dir(
            "tiny",
            &[
                ("train-images-idx3-ubyte", &img),
                ("train-labels-idx1-ubyte.gz", &gzip(&lab)),
                // gzip content under a raw name: detected by magic bytes
                ("t10k-images-idx3-ubyte", &gzip(&timg)),
                ("t10k-labels.idx1-ubyte", &tlab),
            ],
        );
        let m = Mnist::load_dir(&dir).unwrap();
        assert_eq!(m.train.images.dims(), &[3, 28, 28, 1]);
        assert_eq!(m.train.labels.to_vec1::<u32>().unwrap(), [0, 1, 2]);
        assert_eq!(m.test.len(), 2);
        let px: Vec<f32> = m.train.images.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(px[255], 1.0);
        assert_eq!(px[1], 1.0 / 255.0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_file_names_what_was_tried() {
        let (img, lab) = tiny_split(1, 1);
        let dir = write_dir(
            "missing",
            &[
                ("train-images-idx3-ubyte", &img),
                ("train-labels-idx1-ubyte", &lab),
            ],
        );
        match Mnist::load_dir(&dir).unwrap_err() {
            Error::Data(DataError::NotFound { tried, .. }) => {
                assert!(tried.contains(&"t10k-images-idx3-ubyte.gz".to_string()))
            }
            e => panic!("{e}"),
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_splits_are_typed_errors() {
        let parse = |b: &[u8]| crate::data::idx::parse_idx(b, "x").unwrap();
        let (img, lab) = tiny_split(3, 2);
        let err = MnistSplit::from_idx(&parse(&img), &parse(&lab), "i", "l").unwrap_err();
        assert!(matches!(
            err,
            Error::Data(DataError::CountMismatch {
                num_images: 3,
                num_labels: 2,
                ..
            })
        ));
        // images given as labels and the other way round: wrong dimensions
        let err = MnistSplit::from_idx(&parse(&lab), &parse(&lab), "i", "l").unwrap_err();
        assert!(err.to_string().contains("3 dimensions"), "{err}");
        let err = MnistSplit::from_idx(&parse(&img), &parse(&img), "i", "l").unwrap_err();
        assert!(err.to_string().contains("1 dimension"), "{err}");
        let small = idx_bytes(&[1, 14, 14], &[0; 196]);
        let err = MnistSplit::from_idx(&parse(&small), &parse(&lab), "i", "l").unwrap_err();
        assert!(err.to_string().contains("28x28, found 14x14"), "{err}");
        let bad_label = idx_bytes(&[3], &[1, 10, 2]);
        let (img, _) = tiny_split(3, 3);
        let err = MnistSplit::from_idx(&parse(&img), &parse(&bad_label), "i", "l").unwrap_err();
        assert!(err.to_string().contains("label 1 is 10"), "{err}");
    }

    #[test]
    fn truncated_file_on_disk_names_the_path() {
        let (img, lab) = tiny_split(2, 2);
        let gz = gzip(&img);
        let dir = write_dir(
            "trunc",
            &[
                ("train-images-idx3-ubyte.gz", &gz[..gz.len() / 2]),
                ("train-labels-idx1-ubyte", &lab),
            ],
        );
        let err = Mnist::load_dir(&dir).unwrap_err();
        match &err {
            Error::Data(DataError::Corrupt { path, .. }) => {
                assert!(path.ends_with("train-images-idx3-ubyte.gz"))
            }
            e => panic!("{e}"),
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn vendored_subset() {
        let m = Mnist::load_dir(vendored()).unwrap();
        assert_eq!(m.train.images.dims(), &[8000, 28, 28, 1]);
        assert_eq!(m.train.labels.dims(), &[8000]);
        assert_eq!(m.test.images.dims(), &[2000, 28, 28, 1]);
        assert_eq!(m.test.labels.dims(), &[2000]);
        for split in [&m.train, &m.test] {
            let px: Vec<f32> = split.images.flatten_all().unwrap().to_vec1().unwrap();
            let (lo, hi) = px
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            assert_eq!((lo, hi), (0.0, 1.0));
            let mean = px.iter().map(|&v| f64::from(v)).sum::<f64>() / px.len() as f64;
            assert!((0.08..0.2).contains(&mean), "mean pixel {mean}");
            let labels: Vec<u32> = split.labels.to_vec1().unwrap();
            let mut counts = [0usize; 10];
            for l in labels {
                counts[l as usize] += 1;
            }
            // every digit present, none dominating
            assert!(counts.iter().all(|&c| c * 20 > split.len()), "{counts:?}");
        }
    }
}
