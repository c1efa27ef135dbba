use candle_core::{DType, Tensor};

use crate::init::Init;
use crate::{module, ModulePath, Param, Result};

/// A lookup table from integer ids to vectors (NNX `nnx.Embed`): `embedding` is
/// `(num_embeddings, features)`, initialized with
/// `variance_scaling(1, fan_in, normal, out_axis=0)` (standard deviation `1/sqrt(features)`).
///
/// `forward` takes an integer tensor of any shape (`u8`, `u32`, `i64`, ...) and appends a
/// `features` axis. Negative ids count from the end, as `jnp.take` does; ids outside
/// `[-num_embeddings, num_embeddings)` are an [`Error::Input`](crate::Error::Input) naming
/// the layer (NNX returns NaN rows instead). NNX broadcasts the single row of a
/// one-entry table for any id; here only 0 and -1 are valid ids of such a table.
///
/// ```
/// use artifex_core::{layers::Embed, Rngs, candle_core::{Device, Tensor}};
/// let embed = Embed::new(10, 4, &mut Rngs::new(0))?;
/// let ids = Tensor::new(&[[1u32, 2, 3], [9, 0, 0]], &Device::Cpu)?;
/// assert_eq!(embed.forward(&ids)?.dims(), &[2, 3, 4]);
/// assert!(embed.forward(&Tensor::new(&[10u32], &Device::Cpu)?).is_err());
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[module(serde)]
#[derive(Debug)]
#[check(num_embeddings > 0 && features > 0, "num_embeddings and features must be positive, got {num_embeddings} and {features}")]
pub struct Embed {
    /// `(num_embeddings, features)`.
    #[param(init = embedding_init, shape = [num_embeddings, features], dtype = dtype)]
    pub embedding: Param,
    /// Table size (vocabulary).
    #[config]
    pub num_embeddings: usize,
    /// Vector size.
    #[config]
    pub features: usize,
    /// Parameter dtype.
    #[config(default = DType::F32)]
    pub dtype: DType,
    /// Table initializer.
    #[config(default = crate::init::default_embed_init())]
    pub embedding_init: Init,
    path: ModulePath,
}

#[crate::layer]
impl Embed {
    /// `ids (*) -> (*, features)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        if ids.dtype().is_float() {
            return Err(self.path.input_error(
                "Embed",
                format!("ids must be integers, got {:?}", ids.dtype()),
            ));
        }
        let mut out_dims = ids.dims().to_vec();
        out_dims.push(self.features);
        if ids.elem_count() == 0 {
            return Ok(Tensor::zeros(
                out_dims,
                self.embedding.dtype(),
                self.embedding.device(),
            )?);
        }
        let idx = ids
            .flatten_all()?
            .to_device(self.embedding.device())?
            .to_dtype(DType::I64)?;
        let n = self.num_embeddings as i64;
        let min: i64 = idx.min(0)?.to_scalar()?;
        let max: i64 = idx.max(0)?.to_scalar()?;
        if max >= n || min < -n {
            let bad = if max >= n { max } else { min };
            return Err(self.path.input_error(
                "Embed",
                format!(
                    "id {bad} is out of range for {n} embeddings (valid: {} to {})",
                    -n,
                    n - 1
                ),
            ));
        }
        let idx = if min < 0 {
            let wrapped = (&idx + Tensor::full(n, idx.shape(), idx.device())?)?;
            idx.lt(0.0)?.where_cond(&wrapped, &idx)?
        } else {
            idx
        };
        Ok(self.embedding.index_select(&idx, 0)?.reshape(out_dims)?)
    }

    /// Inner products of `query (..., features)` with every embedding: `(..., num_embeddings)`
    /// (NNX `Embed.attend`, for tied input/output embeddings).
    pub fn attend(&self, query: &Tensor) -> Result<Tensor> {
        self.path
            .expect_features("Embed", query, 1, self.features)?;
        super::over_rows(query, self.num_embeddings, |q| {
            Ok(q.matmul(&self.embedding.t()?)?)
        })
    }
}
