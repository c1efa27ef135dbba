//! A model holding every new layer survives a safetensors round trip: same state, same eval
//! outputs, and a resumed training step draws the same dropout masks and power iteration.

use crate::common;

use artifex_core::prelude::*;
use common::state_bytes;

#[module]
struct Zoo {
    #[init(Conv::builder(3, 4, vec![3, 3]).strides(vec![2]).build(rngs)?)]
    conv: Conv,
    #[init(GroupNorm::builder(4).num_groups(2).build(rngs)?)]
    gn: GroupNorm,
    #[init(ConvTranspose::builder(4, 3, vec![2, 2]).strides(vec![2]).build(rngs)?)]
    up: ConvTranspose,
    #[init(Embed::new(11, 6, rngs)?)]
    tok: Embed,
    #[init(RMSNorm::new(6, rngs)?)]
    rms: RMSNorm,
    #[init(MultiHeadAttention::builder(6, 2).dropout_rate(0.1).build(rngs)?)]
    attn: MultiHeadAttention,
    #[init(RegularizedLinear::builder(6, 5).dropout_rate(0.2).spectral_norm(true).build(rngs)?)]
    head: RegularizedLinear,
}

impl Zoo {
    fn forward(&self, image: &Tensor, ids: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = activation::silu(&self.gn.forward(&self.conv.forward(image)?)?)?;
        let image_out = self.up.forward(&h)?;
        let seq = self.rms.forward(&self.tok.forward(ids)?)?;
        let len = ids.dim(1)?;
        let mask = causal_mask(ids.dim(0)?, len, &Device::Cpu)?;
        let seq = self.attn.forward(&seq, Some(&mask))?;
        Ok((image_out, self.head.forward(&seq)?))
    }
}

fn inputs() -> Result<(Tensor, Tensor)> {
    let v: Vec<f32> = (0..2 * 6 * 6 * 3)
        .map(|i| ((i * 7 % 23) as f32 / 11.0) - 1.0)
        .collect();
    let image = Tensor::from_vec(v, (2, 6, 6, 3), &Device::Cpu)?;
    let ids = Tensor::new(&[[1u32, 5, 10, 0], [3, 3, 7, 2]], &Device::Cpu)?;
    Ok((image, ids))
}

fn bits(pair: &(Tensor, Tensor)) -> (Vec<u32>, Vec<u32>) {
    (common::bits(&pair.0), common::bits(&pair.1))
}

#[test]
fn every_new_layer_round_trips_through_safetensors() -> Result<()> {
    let (image, ids) = inputs()?;
    let mut a = Zoo::new(&mut Rngs::new(0))?;
    for _ in 0..3 {
        a.forward(&image, &ids)?;
    }
    let paths: Vec<String> = a.state().into_iter().map(|(p, _)| p).collect();
    for p in [
        "conv.kernel",
        "gn.scale",
        "up.kernel",
        "tok.embedding",
        "rms.scale",
        "attn.q_proj.kernel",
        "attn.dropout.rngs.count",
        "head.weight",
        "head.dropout.rngs.key",
        "head.u",
    ] {
        assert!(paths.iter().any(|q| q == p), "{p} missing from {paths:?}");
    }

    let file = std::env::temp_dir().join(format!(
        "artifex-layers-roundtrip-{}.safetensors",
        std::process::id()
    ));
    a.save_safetensors(&file)?;
    let mut b = Zoo::new(&mut Rngs::new(1))?;
    assert_ne!(state_bytes(&a), state_bytes(&b));
    let report = b.load_safetensors(&file)?;
    std::fs::remove_file(&file).ok();
    assert!(report.is_clean(), "{report}");
    assert_eq!(state_bytes(&a), state_bytes(&b));

    // Resumed training: same dropout masks, same power-iteration step.
    assert_eq!(
        bits(&a.forward(&image, &ids)?),
        bits(&b.forward(&image, &ids)?)
    );
    assert_eq!(state_bytes(&a), state_bytes(&b));
    a.eval();
    b.eval();
    assert_eq!(
        bits(&a.forward(&image, &ids)?),
        bits(&b.forward(&image, &ids)?)
    );
    Ok(())
}
