//! [`TensorDataset`]: aligned in-memory tensors whose first axis indexes the examples.

use candle_core::{Device, Tensor};

use crate::{Error, Result};

/// One or more tensors with the same first dimension (e.g. images and labels); example `i` is
/// row `i` of each.
#[derive(Clone, Debug)]
pub struct TensorDataset {
    tensors: Vec<Tensor>,
    len: usize,
}

impl TensorDataset {
    /// Groups `tensors`; there must be at least one, all of rank ≥ 1 with the same first dim.
    pub fn new(tensors: Vec<Tensor>) -> Result<Self> {
        let Some(first) = tensors.first() else {
            return Err(Error::config("TensorDataset", "needs at least one tensor"));
        };
        let len = first_dim(first, 0)?;
        for (i, t) in tensors.iter().enumerate().skip(1) {
            let n = first_dim(t, i)?;
            if n != len {
                return Err(Error::config(
                    "TensorDataset",
                    format!("tensor {i} has {n} examples but tensor 0 has {len}"),
                ));
            }
        }
        Ok(Self { tensors, len })
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is no example.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The grouped tensors, in the order given.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// The examples at `indices`, in that order: one tensor per grouped tensor.
    pub fn gather(&self, indices: &[u32]) -> Result<Vec<Tensor>> {
        if let Some(&bad) = indices.iter().find(|&&i| i as usize >= self.len) {
            return Err(Error::config(
                "TensorDataset",
                format!("index {bad} out of range for {} examples", self.len),
            ));
        }
        let mut index_on: Vec<(Device, Tensor)> = Vec::new();
        let mut out = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let idx = match index_on.iter().find(|(d, _)| d.same_device(t.device())) {
                Some((_, idx)) => idx.clone(),
                None => {
                    let idx = Tensor::from_slice(indices, indices.len(), t.device())?;
                    index_on.push((t.device().clone(), idx.clone()));
                    idx
                }
            };
            out.push(t.index_select(&idx, 0)?);
        }
        Ok(out)
    }

    /// The contiguous examples `start..start + len` (no copy of the index).
    pub fn slice(&self, start: usize, len: usize) -> Result<Vec<Tensor>> {
        if start + len > self.len {
            return Err(Error::config(
                "TensorDataset",
                format!(
                    "examples {start}..{} out of range for {}",
                    start + len,
                    self.len
                ),
            ));
        }
        let mut out = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            out.push(t.narrow(0, start, len)?);
        }
        Ok(out)
    }
}

fn first_dim(t: &Tensor, i: usize) -> Result<usize> {
    t.dims().first().copied().ok_or_else(|| {
        Error::config(
            "TensorDataset",
            format!("tensor {i} is a scalar; the first axis must index the examples"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_gathers() {
        let x = Tensor::arange(0f32, 12., &Device::Cpu)
            .unwrap()
            .reshape((4, 3))
            .unwrap();
        let y = Tensor::new(&[10u32, 11, 12, 13], &Device::Cpu).unwrap();
        let ds = TensorDataset::new(vec![x, y]).unwrap();
        assert_eq!(ds.len(), 4);
        let b = ds.gather(&[3, 0]).unwrap();
        assert_eq!(
            b[0].to_vec2::<f32>().unwrap(),
            [[9., 10., 11.], [0., 1., 2.]]
        );
        assert_eq!(b[1].to_vec1::<u32>().unwrap(), [13, 10]);
        let s = ds.slice(1, 2).unwrap();
        assert_eq!(s[1].to_vec1::<u32>().unwrap(), [11, 12]);
        assert!(ds.gather(&[4]).is_err());
        assert!(ds.slice(3, 2).is_err());
    }

    #[test]
    fn rejects_misaligned_scalar_and_empty() {
        let a = Tensor::zeros((4, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = TensorDataset::new(vec![a.clone(), b]).unwrap_err();
        assert!(err.to_string().contains("tensor 1 has 3 examples"), "{err}");
        let s = Tensor::new(1f32, &Device::Cpu).unwrap();
        assert!(TensorDataset::new(vec![s]).is_err());
        assert!(TensorDataset::new(vec![]).is_err());
    }
}
