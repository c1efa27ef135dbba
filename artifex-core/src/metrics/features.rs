//! Feature sets as checked f64 matrices.

use candle_core::{DType, Tensor};
use nalgebra::DMatrix;

use super::MetricsError;
use crate::Result;

/// A feature set: `samples` rows of `dims` finite f64 values, with the name errors use
/// (`real`, `generated`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    name: String,
    samples: usize,
    dims: usize,
    /// Row-major values.
    values: Vec<f64>,
}

impl Features {
    /// The features of a `(N, D)` tensor of any float dtype, as f64. Errors name `name` and
    /// the shape when the tensor is not a matrix, and the position of the first NaN or
    /// infinite value.
    pub fn from_tensor(name: &str, features: &Tensor) -> Result<Self> {
        let &[samples, dims] = features.dims() else {
            return Err(MetricsError::NotMatrix {
                set: name.to_string(),
                shape: features.dims().to_vec(),
            }
            .into());
        };
        let values = features
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        Self::from_rows(name, samples, dims, values)
    }

    /// The features of row-major `values` (`samples * dims` of them).
    pub fn from_rows(name: &str, samples: usize, dims: usize, values: Vec<f64>) -> Result<Self> {
        if samples.checked_mul(dims) != Some(values.len()) {
            return Err(MetricsError::NotMatrix {
                set: name.to_string(),
                shape: vec![values.len()],
            }
            .into());
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(MetricsError::NonFinite {
                set: format!("{name} features"),
                row: i / dims.max(1),
                column: i % dims.max(1),
                value: values[i],
            }
            .into());
        }
        Ok(Features {
            name: name.to_string(),
            samples,
            dims,
            values,
        })
    }

    /// The name errors use.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of samples (rows).
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Feature width (columns).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The shape `[samples, dims]`.
    pub fn shape(&self) -> Vec<usize> {
        vec![self.samples, self.dims]
    }

    /// Row `i`.
    pub(crate) fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.dims..(i + 1) * self.dims]
    }

    /// Rows `start..start + len` as a `(len, dims)` matrix.
    pub(crate) fn block(&self, start: usize, len: usize) -> DMatrix<f64> {
        DMatrix::from_row_slice(
            len,
            self.dims,
            &self.values[start * self.dims..(start + len) * self.dims],
        )
    }

    /// An error unless `self` and `other` have the same feature width.
    pub(crate) fn check_same_width(&self, other: &Features) -> Result<()> {
        if self.dims == other.dims {
            return Ok(());
        }
        Err(MetricsError::ShapeMismatch {
            what: "feature widths differ".to_string(),
            first_name: self.name.clone(),
            first: self.shape(),
            second_name: other.name.clone(),
            second: other.shape(),
        }
        .into())
    }
}
