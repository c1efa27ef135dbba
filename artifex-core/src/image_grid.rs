//! Image grids as PNG files: samples in a grid, reconstructions beside their originals.
//!
//! Images are tensors of shape `(N, H, W, C)` with `C` 1 (grayscale) or 3 (RGB), or
//! `(N, H, W)` for grayscale, with values in `[0, 1]` (clamped), on any device and in any float
//! dtype. Files are written atomically.
//!
//! ```
//! use artifex_core::candle_core::{DType, Device, Tensor};
//! use artifex_core::image_grid;
//!
//! let images = Tensor::rand(0f32, 1., (10, 28, 28, 1), &Device::Cpu)?;
//! let path = std::env::temp_dir().join("artifex-doc-grid.png");
//! image_grid::save_grid(&path, &images, 5)?;
//! # std::fs::remove_file(path).ok();
//! # Ok::<(), artifex_core::Error>(())
//! ```

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};

use crate::checkpoint::write_atomically;
use crate::{Error, Result};

/// Layout options of a grid.
#[derive(Clone, Debug, PartialEq)]
pub struct GridOptions {
    /// Images per row (fewer when there are fewer images).
    pub cols: usize,
    /// Pixels of padding between cells and around the border.
    pub padding: usize,
    /// The padding's gray level in `[0, 1]`.
    pub pad_value: f32,
}

impl GridOptions {
    /// `cols` per row, 2 pixels of mid-gray padding (visible on black and on white digits).
    pub fn new(cols: usize) -> Self {
        Self {
            cols,
            padding: 2,
            pad_value: 0.5,
        }
    }
}

/// Writes `images` as a grid of `cols` columns to a PNG file at `path`.
pub fn save_grid(path: impl AsRef<Path>, images: &Tensor, cols: usize) -> Result<()> {
    save_grid_with(path, images, &GridOptions::new(cols))
}

/// Writes `images` as a grid with explicit options.
pub fn save_grid_with(
    path: impl AsRef<Path>,
    images: &Tensor,
    options: &GridOptions,
) -> Result<()> {
    write_png(path.as_ref(), &grid_image(images, options)?)
}

/// Writes originals and reconstructions side by side: each cell holds `originals[i]` with
/// `reconstructions[i]` to its right, `pairs_per_row` pairs per row, pairs set further apart
/// than the two halves of a pair.
pub fn save_pairs(
    path: impl AsRef<Path>,
    originals: &Tensor,
    reconstructions: &Tensor,
    pairs_per_row: usize,
) -> Result<()> {
    let options = GridOptions::new(pairs_per_row);
    write_png(
        path.as_ref(),
        &pairs_image(originals, reconstructions, &options)?,
    )
}

/// The grid as an image, without writing it.
pub fn grid_image(images: &Tensor, options: &GridOptions) -> Result<DynamicImage> {
    let host = HostImages::from_tensor(images, "image_grid::grid_image")?;
    let cols = checked_cols(options.cols, host.n, "image_grid::grid_image")?;
    let pad = options.padding;
    let rows = host.n.div_ceil(cols);
    let width = cols * (host.w + pad) + pad;
    let height = rows * (host.h + pad) + pad;
    let places = (0..host.n).map(|i| {
        let (r, c) = (i / cols, i % cols);
        (pad + c * (host.w + pad), pad + r * (host.h + pad))
    });
    let mut canvas = Canvas::new(width, height, host.c, options.pad_value);
    for (i, (x, y)) in places.enumerate() {
        canvas.paste(&host, i, x, y);
    }
    canvas.into_image()
}

/// The pairs layout of [`save_pairs`] as an image; `options.cols` counts pairs.
pub fn pairs_image(
    originals: &Tensor,
    reconstructions: &Tensor,
    options: &GridOptions,
) -> Result<DynamicImage> {
    let what = "image_grid::pairs_image";
    let a = HostImages::from_tensor(originals, what)?;
    let b = HostImages::from_tensor(reconstructions, what)?;
    if (a.n, a.h, a.w, a.c) != (b.n, b.h, b.w, b.c) {
        return Err(Error::Shape {
            module: what.into(),
            expected: format!(
                "reconstructions shaped as the originals, [{}, {}, {}, {}]",
                a.n, a.h, a.w, a.c
            ),
            got: reconstructions.dims().to_vec(),
        });
    }
    let cols = checked_cols(options.cols, a.n, what)?;
    let pad = options.padding;
    let gap = 3 * pad.max(1);
    let pair_w = 2 * a.w + pad;
    let rows = a.n.div_ceil(cols);
    let width = 2 * pad + cols * pair_w + (cols - 1) * gap;
    let height = rows * (a.h + pad) + pad;
    let mut canvas = Canvas::new(width, height, a.c, options.pad_value);
    for i in 0..a.n {
        let (r, c) = (i / cols, i % cols);
        let x = pad + c * (pair_w + gap);
        let y = pad + r * (a.h + pad);
        canvas.paste(&a, i, x, y);
        canvas.paste(&b, i, x + a.w + pad, y);
    }
    canvas.into_image()
}

fn checked_cols(cols: usize, n: usize, what: &str) -> Result<usize> {
    if cols == 0 {
        return Err(Error::config(what, "cols must be at least 1"));
    }
    Ok(cols.min(n))
}

fn write_png(path: &Path, image: &DynamicImage) -> Result<()> {
    write_atomically(path, |tmp| {
        image
            .save_with_format(tmp, ImageFormat::Png)
            .map_err(std::io::Error::other)
    })
}

/// Images copied to the host as bytes, `n` of `h x w x c`.
struct HostImages {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    data: Vec<u8>,
}

impl HostImages {
    fn from_tensor(t: &Tensor, what: &str) -> Result<Self> {
        let (n, h, w, c) = match *t.dims() {
            [n, h, w] => (n, h, w, 1),
            [n, h, w, c] if c == 1 || c == 3 => (n, h, w, c),
            _ => {
                return Err(Error::Shape {
                    module: what.into(),
                    expected: "[N, H, W, 1 or 3] or [N, H, W]".into(),
                    got: t.dims().to_vec(),
                })
            }
        };
        if n == 0 || h == 0 || w == 0 {
            return Err(Error::Shape {
                module: what.into(),
                expected: "at least one non-empty image".into(),
                got: t.dims().to_vec(),
            });
        }
        let values: Vec<f32> = t
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let data = values.into_iter().map(to_byte).collect();
        Ok(Self { n, h, w, c, data })
    }
}

/// `[0, 1]` to `0..=255`, clamped; NaN becomes 0.
fn to_byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// A pixel buffer being composed.
struct Canvas {
    width: usize,
    height: usize,
    c: usize,
    data: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize, c: usize, pad_value: f32) -> Self {
        Self {
            width,
            height,
            c,
            data: vec![to_byte(pad_value); width * height * c],
        }
    }

    /// Copies image `i` of `src` with its top-left corner at `(x, y)`.
    fn paste(&mut self, src: &HostImages, i: usize, x: usize, y: usize) {
        let row_len = src.w * src.c;
        for r in 0..src.h {
            let from = (i * src.h + r) * row_len;
            let to = ((y + r) * self.width + x) * self.c;
            self.data[to..to + row_len].copy_from_slice(&src.data[from..from + row_len]);
        }
    }

    fn into_image(self) -> Result<DynamicImage> {
        let too_big = || Error::config("image_grid", "the grid is too large for an image");
        let w = u32::try_from(self.width).map_err(|_| too_big())?;
        let h = u32::try_from(self.height).map_err(|_| too_big())?;
        let image = if self.c == 1 {
            GrayImage::from_raw(w, h, self.data).map(DynamicImage::ImageLuma8)
        } else {
            RgbImage::from_raw(w, h, self.data).map(DynamicImage::ImageRgb8)
        };
        image.ok_or_else(too_big)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("artifex-grid-{}-{name}.png", std::process::id()))
    }

    /// Image i is uniformly (i + 1) / 10, with its top-left pixel 1.0.
    fn images(n: usize, h: usize, w: usize, c: usize) -> Tensor {
        let mut v = Vec::new();
        for i in 0..n {
            for p in 0..h * w {
                for _ in 0..c {
                    v.push(if p == 0 { 1.0 } else { (i + 1) as f32 / 10.0 });
                }
            }
        }
        Tensor::from_vec(v, (n, h, w, c), &Device::Cpu).unwrap()
    }

    #[test]
    fn grayscale_grid_round_trips_through_png() {
        let path = tmp("gray");
        save_grid(&path, &images(5, 4, 3, 1), 3).unwrap();
        let img = image::open(&path).unwrap().to_luma8();
        // 3 columns of 3 + 2 padding, 2 rows of 4 + 2 padding, plus the outer padding
        assert_eq!(img.dimensions(), (3 * 5 + 2, 2 * 6 + 2));
        assert_eq!(img.get_pixel(0, 0).0, [128]); // padding
        assert_eq!(img.get_pixel(2, 2).0, [255]); // image 0, top-left
        assert_eq!(img.get_pixel(3, 3).0, [26]); // image 0: 0.1
        assert_eq!(img.get_pixel(2 + 5 + 1, 2 + 1).0, [51]); // image 1: 0.2
        assert_eq!(img.get_pixel(3, 2 + 6 + 1).0, [102]); // image 3 (row 1, col 0): 0.4
        assert_eq!(img.get_pixel(2 + 10 + 1, 2 + 6 + 1).0, [128]); // empty cell
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn rgb_grid_and_rank_3_input() {
        let path = tmp("rgb");
        save_grid(&path, &images(2, 2, 2, 3), 8).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!(img.color(), image::ColorType::Rgb8);
        assert_eq!((img.width(), img.height()), (2 * 4 + 2, 6));
        assert_eq!(img.to_rgb8().get_pixel(3, 3).0, [26, 26, 26]);
        let gray = images(2, 2, 2, 1).squeeze(3).unwrap();
        let g = grid_image(&gray, &GridOptions::new(2)).unwrap();
        assert_eq!(g.color(), image::ColorType::L8);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn pairs_side_by_side() {
        let path = tmp("pairs");
        let a = images(3, 4, 3, 1);
        let b = (images(3, 4, 3, 1) * 0.5).unwrap();
        save_pairs(&path, &a, &b, 2).unwrap();
        let img = image::open(&path).unwrap().to_luma8();
        // pair width 3 + 2 + 3 = 8, gap 6, outer 2: 2 + 8 + 6 + 8 + 2
        assert_eq!(img.dimensions(), (26, 2 * 6 + 2));
        assert_eq!(img.get_pixel(3, 3).0, [26]); // original 0
        assert_eq!(img.get_pixel(2 + 5 + 1, 3).0, [13]); // reconstruction 0: 0.05
        assert_eq!(img.get_pixel(2 + 8 + 6 + 1, 3).0, [51]); // original 1
        assert_eq!(img.get_pixel(2 + 1, 2 + 6 + 1).0, [77]); // original 2, second row
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn clamps_and_rejects_bad_shapes() {
        let t = Tensor::new(&[[[[-1f32], [2.0]]]], &Device::Cpu).unwrap();
        let img = grid_image(&t, &GridOptions::new(1)).unwrap().to_luma8();
        assert_eq!((img.get_pixel(2, 2).0, img.get_pixel(3, 2).0), ([0], [255]));
        let bad = Tensor::zeros((2, 4, 4, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(
            grid_image(&bad, &GridOptions::new(1)),
            Err(Error::Shape { .. })
        ));
        assert!(grid_image(&t, &GridOptions::new(0)).is_err());
        let other = Tensor::zeros((1, 1, 3, 1), DType::F32, &Device::Cpu).unwrap();
        assert!(pairs_image(&t, &other, &GridOptions::new(1)).is_err());
        let path = tmp("nodir").join("x.png");
        assert!(save_grid(path, &t, 1).is_err());
    }
}
