use artifex_core::activation::leaky_relu;
use artifex_core::layers::{MultiHeadAttention, RegularizedLinear};
use artifex_core::losses::{discriminator_loss, generator_loss, GanLoss};
use artifex_core::ops;
use artifex_core::prelude::*;
use artifex_core::train::Metrics;

/// The seed's `CustomGenerator`: `[Linear, BatchNorm]` per width (ReLU after each Linear),
/// self-attention (sequence length 1) in the middle, a tanh output reshaped to `output_shape`.
///
/// Difference from the seed: the seed builds its attention with width `hidden_dims[i + 1]`
/// but applies it where the width is `hidden_dims[i]`, which fails for any configuration,
/// its own example included. Here the attention has the width it is applied to.
#[module(serde)]
#[check(!hidden_dims.is_empty(), "hidden_dims needs at least one width")]
pub struct CustomGenerator {
    /// `[Dense(Linear), Norm(BatchNorm), Dense, Norm, ...]` (paths `layers.0.kernel`,
    /// `layers.1.mean`, as NNX's list).
    #[init(generator_layers(latent_dim, &hidden_dims, rngs)?)]
    pub layers: Vec<GeneratorLayer>,
    /// Present with `use_attention` and at least three widths (as in the seed).
    #[new(hidden_dims[hidden_dims.len() / 2], 4, when = use_attention && hidden_dims.len() >= 3)]
    pub attention: Option<MultiHeadAttention>,
    /// Back to `prod(output_shape)`.
    #[new(hidden_dims[hidden_dims.len() - 1], checked_product("CustomGenerator", "output_shape", &output_shape)?)]
    pub output_layer: Linear,
    /// Noise size.
    #[config]
    pub latent_dim: usize,
    /// One sample's shape.
    #[config]
    pub output_shape: Vec<usize>,
    /// Hidden widths.
    #[config]
    pub hidden_dims: Vec<usize>,
    /// Self-attention in the middle.
    #[config(default = true)]
    pub use_attention: bool,
}

impl CustomGenerator {
    /// `z (batch, latent_dim) -> (batch, *output_shape)` in `[-1, 1]`.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut x = z.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = match layer {
                GeneratorLayer::Dense(linear) => linear.forward(&x)?.relu()?,
                GeneratorLayer::Norm(norm) => norm.forward(&x)?,
            };
            if let (Some(attention), true) = (&self.attention, i == self.layers.len() / 2) {
                x = attention.forward(&x.unsqueeze(1)?, None)?.squeeze(1)?;
            }
        }
        ops::unflatten(
            &self.output_layer.forward(&x)?.tanh()?,
            1,
            &self.output_shape,
        )
    }
}

/// An item of [`CustomGenerator::layers`]: its type, not its position in the list, says
/// whether a ReLU follows (the seed tests `isinstance(layer, nnx.Linear)`). Transparent: it
/// adds no path segment, so the list keeps NNX's paths (`layers.0.kernel`, `layers.1.mean`).
#[derive(Module)]
#[artifex(transparent)]
pub enum GeneratorLayer {
    /// A Linear, followed by ReLU.
    Dense(Linear),
    /// A BatchNorm, with no activation after it.
    Norm(BatchNorm),
}

/// `[Dense, Norm]` per width, drawn in the order of the seed's `[Linear, BatchNorm, ...]`.
fn generator_layers(din: usize, dims: &[usize], rngs: &mut Rngs) -> Result<Vec<GeneratorLayer>> {
    let mut layers = Vec::new();
    for (input, d) in stack_dims(din, dims) {
        layers.push(GeneratorLayer::Dense(Linear::new(input, d, rngs)?));
        layers.push(GeneratorLayer::Norm(BatchNorm::new(d, rngs)?));
    }
    Ok(layers)
}

/// The seed's `CustomDiscriminator`: flatten, hidden layers with leaky ReLU (0.2), one logit;
/// the layers are spectrally normalized `RegularizedLinear`s when `spectral_norm`.
#[module(serde)]
#[check(!hidden_dims.is_empty(), "hidden_dims needs at least one width")]
pub struct CustomDiscriminator {
    /// One layer per width.
    #[init(stack_dims(checked_product("CustomDiscriminator", "input_shape", &input_shape)?, &hidden_dims).map(|(i, o)| dense(i, o, spectral_norm, rngs)).collect::<Result<_>>()?)]
    pub layers: Vec<BoxedLayer>,
    /// `hidden_dims[-1] -> 1`.
    #[init(dense(hidden_dims[hidden_dims.len() - 1], 1, spectral_norm, rngs)?)]
    pub output_layer: BoxedLayer,
    /// One sample's shape.
    #[config]
    pub input_shape: Vec<usize>,
    /// Hidden widths.
    #[config]
    pub hidden_dims: Vec<usize>,
    /// Spectral normalization of every layer.
    #[config(default = true)]
    pub spectral_norm: bool,
}

fn dense(din: usize, dout: usize, spectral_norm: bool, rngs: &mut Rngs) -> Result<BoxedLayer> {
    Ok(if spectral_norm {
        boxed(
            RegularizedLinear::builder(din, dout)
                .spectral_norm(true)
                .build(rngs)?,
        )
    } else {
        boxed(Linear::new(din, dout, rngs)?)
    })
}

impl CustomDiscriminator {
    /// `x (batch, *input_shape) -> logits (batch, 1)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.flatten_from(1)?;
        for layer in &self.layers {
            x = leaky_relu(&layer.forward(&x)?, 0.2)?;
        }
        self.output_layer.forward(&x)
    }
}

/// The seed's GAN pair as one model with generator and discriminator objectives.
#[module(serde)]
pub struct Gan {
    /// The generator.
    #[init(CustomGenerator::builder(latent_dim, output_shape.clone(), generator_dims.clone()).use_attention(use_attention).build(rngs)?)]
    pub generator: CustomGenerator,
    /// The discriminator.
    #[init(CustomDiscriminator::builder(output_shape.clone(), discriminator_dims.clone()).spectral_norm(spectral_norm).build(rngs)?)]
    pub discriminator: CustomDiscriminator,
    /// Noise for training steps.
    #[rng(stream = "sample")]
    pub rngs: RngStream,
    /// Noise size.
    #[config]
    pub latent_dim: usize,
    /// One sample's shape.
    #[config]
    pub output_shape: Vec<usize>,
    /// Generator widths.
    #[config]
    pub generator_dims: Vec<usize>,
    /// Discriminator widths.
    #[config]
    pub discriminator_dims: Vec<usize>,
    /// Generator self-attention.
    #[config(default = true)]
    pub use_attention: bool,
    /// Discriminator spectral normalization.
    #[config(default = true)]
    pub spectral_norm: bool,
    /// The adversarial objective.
    #[config(default = GanLoss::NonSaturating)]
    pub loss: GanLoss,
}

impl Gan {
    /// `n` rows of training noise; under data-parallel training this rank's rows of the
    /// global batch's noise, so N ranks draw what one process draws for the whole batch.
    fn noise(&self, n: usize) -> Result<Tensor> {
        let device = self.generator.output_layer.kernel.device();
        let key = self.rngs.next_key();
        artifex_core::distributed::normal_rows(&key, &[n, self.latent_dim], DType::F32, device)
    }

    /// The discriminator's objective on a real batch and as many generated samples
    /// (generated samples are detached: only the discriminator gets gradients).
    pub fn discriminator_loss(&self, real: &Tensor) -> Result<(Tensor, Metrics)> {
        let fake = self.generator.forward(&self.noise(real.dim(0)?)?)?.detach();
        let (d_real, d_fake) = (
            self.discriminator.forward(real)?,
            self.discriminator.forward(&fake)?,
        );
        let loss = discriminator_loss(self.loss, &d_real, &d_fake)?;
        let metrics = Metrics::from([
            ("d_loss".to_string(), loss.clone()),
            ("d_real".to_string(), d_real.mean_all()?),
            ("d_fake".to_string(), d_fake.mean_all()?),
        ]);
        Ok((loss, metrics))
    }

    /// The generator's objective on `n` generated samples.
    pub fn generator_loss(&self, n: usize) -> Result<(Tensor, Metrics)> {
        let d_fake = self
            .discriminator
            .forward(&self.generator.forward(&self.noise(n)?)?)?;
        let loss = generator_loss(self.loss, &d_fake)?;
        Ok((loss.clone(), Metrics::from([("g_loss".to_string(), loss)])))
    }

    /// Trainable parameters of the generator, with paths from the root (`generator.*`).
    pub fn generator_params(&self) -> Vec<(String, Param)> {
        self.named_params()
            .into_iter()
            .filter(|(p, _)| p.starts_with("generator."))
            .collect()
    }

    /// Trainable parameters of the discriminator (`discriminator.*`).
    pub fn discriminator_params(&self) -> Vec<(String, Param)> {
        self.named_params()
            .into_iter()
            .filter(|(p, _)| p.starts_with("discriminator."))
            .collect()
    }
}

/// For the adversarial trainer's gradient penalty: the discriminator is the critic, fakes and
/// interpolation coefficients come from the model's `sample` stream.
impl artifex_core::train::PenalizedCritic for Gan {
    fn critic(&self, x: &Tensor) -> Result<Tensor> {
        self.discriminator.forward(x)
    }

    fn fake_samples(&self, n: usize) -> Result<Tensor> {
        Ok(self.generator.forward(&self.noise(n)?)?.detach())
    }

    fn penalty_rng(&self) -> &RngStream {
        &self.rngs
    }
}

impl GenerativeModel for Gan {
    /// Both objectives on a real batch: `loss = d_loss + g_loss`, with both as metrics.
    fn forward(&self, real: &Tensor) -> Result<ModelOutput> {
        let (d_loss, d_metrics) = self.discriminator_loss(real)?;
        let (g_loss, g_metrics) = self.generator_loss(real.dim(0)?)?;
        let mut output = ModelOutput::new((d_loss + g_loss)?);
        output
            .metrics
            .extend(d_metrics.into_iter().chain(g_metrics));
        Ok(output)
    }

    /// Generates from `z ~ N(0, I)` drawn from the `sample` stream of `rngs`.
    fn sample(&self, n: usize, rngs: &mut Rngs) -> Result<Tensor> {
        let device = self.generator.output_layer.kernel.device();
        self.generator.forward(
            &rngs
                .sample()?
                .normal(&[n, self.latent_dim], DType::F32, device)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x @ kernel + bias` of the Linear at `prefix`, from the state tree.
    fn dense(g: &CustomGenerator, prefix: &str, x: &Tensor) -> Result<Tensor> {
        let params: std::collections::BTreeMap<String, Param> =
            g.named_params().into_iter().collect();
        let (k, b) = (
            &params[&format!("{prefix}.kernel")],
            &params[&format!("{prefix}.bias")],
        );
        Ok(x.matmul(k)?.broadcast_add(b)?)
    }

    #[test]
    fn relu_follows_every_linear_whatever_its_position() -> Result<()> {
        let mut g = CustomGenerator::builder(6, vec![2, 2], vec![8, 12])
            .use_attention(false)
            .build(&mut Rngs::new(0))?;
        // Without the first BatchNorm: [Linear 6->8, Linear 8->12, BatchNorm 12].
        g.layers.remove(1);
        let z = Tensor::arange(0f32, 24.0, &Device::Cpu)?
            .reshape((4, 6))?
            .affine(0.3, -3.5)?;
        let h = dense(&g, "layers.0", &z)?.relu()?;
        let h = dense(&g, "layers.1", &h)?.relu()?;
        // A fresh BatchNorm in training mode: batch statistics (biased variance), eps 1e-5,
        // scale 1, bias 0; no ReLU after it.
        let centered = h.broadcast_sub(&h.mean_keepdim(0)?)?;
        let var = centered.sqr()?.mean_keepdim(0)?;
        let h = centered.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        let want = dense(&g, "output_layer", &h)?.tanh()?.reshape((4, 2, 2))?;
        let got = g.forward(&z)?;
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "generator output differs by {diff}");
        Ok(())
    }
}
