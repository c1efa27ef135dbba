//! The seed's "Artifex Integration" section: `MyCustomGenerativeModel` built from a config,
//! trained by the `Trainer` with the seed's custom beta-weighted loss, saved with its config
//! and rebuilt from the checkpoint alone.
//!
//! `cargo run --release --example integration -- [STEPS]` (default 200; `--help` for the usage)

use std::path::Path;
use std::process::ExitCode;

use artifex_core::data::{DataLoader, Mnist, TensorDataset};
use artifex_core::optim::Adam;
use artifex_core::prelude::*;
use artifex_core::train::{Metrics, Trainer, TrainerConfig};
use artifex_models::{GenerativeConfig, MyCustomGenerativeModel};
use clap::Parser;

#[path = "common/cli.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod cli;

/// The seed's "Artifex Integration" section: MyCustomGenerativeModel built from a config,
/// trained by the Trainer with the seed's beta-weighted loss, saved with its config to
/// out/integration/model.safetensors and rebuilt from that file alone.
#[derive(Parser, Debug)]
#[command(name = "integration")]
struct Args {
    /// Training steps
    #[arg(value_name = "STEPS", default_value_t = 200)]
    steps: u64,
}

/// The seed's `custom_vae_loss(model, batch, beta)`: reconstruction + beta * KL, with metrics.
pub fn custom_vae_loss(
    model: &MyCustomGenerativeModel,
    batch: &[Tensor],
    beta: f64,
) -> Result<(Tensor, Metrics)> {
    let output = model.encoder.forward(&batch[0])?;
    artifex_core::losses::custom_vae_loss(
        &batch[0],
        &output.reconstruction,
        &output.mean,
        &output.logvar,
        beta,
    )
}

/// Trains for `steps` with beta = 2 as the seed's `train_step` does; returns the last loss.
pub fn run(steps: u64, out: &Path) -> Result<f64> {
    let mut rngs = Rngs::new(0);
    let config = GenerativeConfig {
        latent_dim: 20,
        input_shape: vec![28, 28, 1],
    };
    let model = MyCustomGenerativeModel::new(config, &mut rngs)?;
    let data = Mnist::load_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k"))?;
    let mut loader = DataLoader::new(TensorDataset::new(vec![data.train.images])?, 64)?
        .with_shuffle(rngs.fork("data")?);
    let optimizer = Adam::new(model.named_params(), 1e-3)?;
    let config = TrainerConfig::new(steps, out).print_every(10);
    let mut trainer = Trainer::new(
        model,
        optimizer,
        config,
        |m: &MyCustomGenerativeModel, b: &[Tensor]| custom_vae_loss(m, b, 2.0),
    );
    let history = trainer.fit(&mut loader, None)?;

    // The GenerativeModel protocol: structured output and prior samples.
    let model = trainer.into_model();
    let batch = loader.next_batch()?.unwrap_or_default();
    let output = GenerativeModel::forward(&model, &batch[0])?;
    for (name, value) in output.scalar_metrics()? {
        println!("{name}: {value:.5}");
    }
    let samples = model.sample(16, &mut Rngs::new(1).with_stream("sample", 1))?;
    println!("samples: {:?}", samples.dims());

    // The config travels in the checkpoint: rebuild the model from the file alone.
    let path = out.join("model.safetensors");
    model.save_checkpoint(&path)?;
    let rebuilt = MyCustomGenerativeModel::from_checkpoint(&path)?;
    assert_eq!(rebuilt.config, model.config);
    Ok(history.last_train().map_or(f64::NAN, |m| m["loss"]))
}

#[allow(dead_code)]
fn main() -> ExitCode {
    cli::main_with(|args: Args| {
        let loss = run(args.steps, Path::new("out/integration"))?;
        println!("final training loss {loss:.5}");
        Ok::<_, Error>(())
    })
}
