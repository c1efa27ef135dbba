use artifex_core::prelude::*;

/// One residual block of [`ResidualNetwork`]: `[Linear, LayerNorm, Linear, LayerNorm]`
/// (NNX paths `blocks.N.0.kernel`, `blocks.N.1.scale`, ...).
pub type ResidualMlpBlock = (Linear, LayerNorm, Linear, LayerNorm);

/// The seed's `ResidualNetwork`: input projection, residual MLP blocks, output projection.
#[module(serde)]
pub struct ResidualNetwork {
    /// `input_dim -> hidden_dim`.
    #[new(input_dim, hidden_dim)]
    pub input_proj: Linear,
    /// The residual blocks.
    #[init((0..num_blocks).map(|_| Ok((
        Linear::new(hidden_dim, hidden_dim, rngs)?, LayerNorm::new(hidden_dim, rngs)?,
        Linear::new(hidden_dim, hidden_dim, rngs)?, LayerNorm::new(hidden_dim, rngs)?,
    ))).collect::<Result<_>>()?)]
    pub blocks: Vec<ResidualMlpBlock>,
    /// `hidden_dim -> input_dim`.
    #[new(hidden_dim, input_dim)]
    pub output_proj: Linear,
    /// Input (and output) features.
    #[config]
    pub input_dim: usize,
    /// Width of the residual stream.
    #[config]
    pub hidden_dim: usize,
    /// Number of blocks.
    #[config]
    pub num_blocks: usize,
}

impl ResidualNetwork {
    /// `x (..., input_dim) -> (..., input_dim)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.input_proj.forward(x)?;
        for (dense1, norm1, dense2, norm2) in &self.blocks {
            let residual = x.clone();
            x = norm1.forward(&dense1.forward(&x)?.relu()?)?;
            x = norm2.forward(&dense2.forward(&x)?)?;
            x = (x + residual)?.relu()?;
        }
        self.output_proj.forward(&x)
    }
}
