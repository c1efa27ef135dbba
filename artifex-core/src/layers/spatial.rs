//! Shared plumbing of the convolution layers: channels-last <-> candle's channels-first,
//! batch flattening, zero insertion and per-axis strides/dilations candle cannot express.

use candle_core::{Tensor, D};

use crate::Result;

/// Axis names used in shape errors, by number of spatial axes.
pub(crate) fn axis_names(spatial: usize) -> &'static [&'static str] {
    match spatial {
        1 => &["L"],
        _ => &["H", "W"],
    }
}

/// One value per axis: a single value is broadcast (NNX's `strides=2`).
pub(crate) fn per_axis(values: &[usize], spatial: usize) -> Vec<usize> {
    (0..spatial)
        .map(|i| values.get(i).or(values.first()).copied().unwrap_or(1))
        .collect()
}

/// `(k - 1) * d + 1` per axis.
pub(crate) fn dilated_kernel(kernel: &[usize], dilation: &[usize]) -> Vec<usize> {
    kernel
        .iter()
        .zip(dilation)
        .map(|(&k, &d)| (k - 1) * d + 1)
        .collect()
}

/// `(*batch, spatial..., C)` -> `(B, C, spatial...)` and the batch dims to restore
/// (`None`: there was no batch axis).
pub(crate) fn to_channels_first(
    x: &Tensor,
    spatial: usize,
) -> Result<(Tensor, Option<Vec<usize>>)> {
    let dims = x.dims();
    let nb = dims.len() - spatial - 1;
    let (x, batch) = match nb {
        0 => (x.unsqueeze(0)?, None),
        1 => (x.clone(), Some(dims[..1].to_vec())),
        _ => {
            let rows: usize = dims[..nb].iter().product();
            let mut flat = vec![rows];
            flat.extend_from_slice(&dims[nb..]);
            (x.reshape(flat)?, Some(dims[..nb].to_vec()))
        }
    };
    let x = match spatial {
        1 => x.transpose(1, 2)?,
        _ => x.permute((0, 3, 1, 2))?,
    };
    Ok((x.contiguous()?, batch))
}

/// `(B, C, spatial...)` -> `(*batch, spatial..., C)`.
pub(crate) fn to_channels_last(
    y: &Tensor,
    spatial: usize,
    batch: Option<&[usize]>,
) -> Result<Tensor> {
    let y = match spatial {
        1 => y.transpose(1, 2)?,
        _ => y.permute((0, 2, 3, 1))?,
    };
    Ok(match batch {
        None => y.squeeze(0)?,
        Some(b) if b.len() == 1 => y,
        Some(b) => {
            let mut dims = b.to_vec();
            dims.extend_from_slice(&y.dims()[1..]);
            y.reshape(dims)?
        }
    })
}

/// A kernel `(k..., I, O)` as candle's `(O, I, k...)`.
pub(crate) fn kernel_to_oi(kernel: &Tensor, spatial: usize) -> Result<Tensor> {
    let k = match spatial {
        1 => kernel.permute((2, 1, 0))?,
        _ => kernel.permute((3, 2, 0, 1))?,
    };
    Ok(k.contiguous()?)
}

/// Inserts `factor - 1` zeros between neighbours along `dim`: length `(n - 1) * factor + 1`.
pub(crate) fn insert_zeros(x: &Tensor, dim: usize, factor: usize) -> Result<Tensor> {
    if factor <= 1 {
        return Ok(x.clone());
    }
    let n = x.dim(dim)?;
    let spread = x
        .unsqueeze(dim + 1)?
        .pad_with_zeros(dim + 1, 0, factor - 1)?;
    let mut dims = x.dims().to_vec();
    dims[dim] = n * factor;
    Ok(spread.reshape(dims)?.narrow(dim, 0, (n - 1) * factor + 1)?)
}

/// Every `step`-th entry along `dim`, starting at 0, `count` of them.
fn subsample(x: &Tensor, dim: usize, step: usize, count: usize) -> Result<Tensor> {
    if step <= 1 {
        return Ok(x.clone());
    }
    let idx: Vec<u32> = (0..count).map(|i| (i * step) as u32).collect();
    let idx = Tensor::new(idx.as_slice(), x.device())?;
    Ok(x.index_select(&idx, dim)?)
}

/// Cross-correlation of an already padded and cropped channels-first input (candle's
/// conv1d/conv2d with padding 0), with per-axis strides and dilations: candle takes one of
/// each, so unequal dilations dilate the kernel with zeros and unequal strides subsample a
/// stride-1 output.
pub(crate) fn conv_nd(
    x: &Tensor,
    kernel: &Tensor,
    strides: &[usize],
    dilation: &[usize],
    groups: usize,
) -> Result<Tensor> {
    if strides.len() == 1 {
        // As a 2-D convolution of height 1: candle 0.11's conv1d backward returns wrong input
        // gradients (its conv2d backward is right).
        let y =
            x.unsqueeze(2)?
                .conv2d(&kernel.unsqueeze(2)?, 0, strides[0], dilation[0], groups)?;
        return Ok(y.squeeze(2)?);
    }
    let (kernel, dil) = if dilation[0] == dilation[1] {
        (kernel.clone(), dilation[0])
    } else {
        let k = insert_zeros(kernel, 2, dilation[0])?;
        (insert_zeros(&k, 3, dilation[1])?, 1)
    };
    if strides[0] == strides[1] {
        return Ok(x.conv2d(&kernel, 0, strides[0], dil, groups)?);
    }
    let y = x.conv2d(&kernel, 0, 1, dil, groups)?;
    let (h, w) = (y.dim(2)?, y.dim(D::Minus1)?);
    let y = subsample(&y, 2, strides[0], (h - 1) / strides[0] + 1)?;
    subsample(&y, 3, strides[1], (w - 1) / strides[1] + 1)
}
