//! The files of the checkpoint-reading examples (`sample`, `reconstruct`): the checkpoint and
//! the PNG to write, given as flags (`--checkpoint FILE --out PNG`) or, as before the flags
//! existed, positionally (`[CHECKPOINT] [OUT]`). Each example sets the default of `--out`
//! (`#[command(mut_arg("out", ..))]`).

use std::path::{Path, PathBuf};

/// `--checkpoint FILE` / `[CHECKPOINT]` and `--out PNG` / `[OUT]`.
#[derive(clap::Args, Clone, Debug)]
pub struct CheckpointFiles {
    /// CustomVAE checkpoint written by train_vae (the model is rebuilt from its stored config)
    #[arg(
        long = "checkpoint",
        value_name = "FILE",
        default_value = "out/train_vae/model.safetensors"
    )]
    checkpoint: PathBuf,
    /// The checkpoint, positionally (same as --checkpoint)
    #[arg(value_name = "CHECKPOINT", conflicts_with = "checkpoint")]
    checkpoint_at: Option<PathBuf>,
    /// PNG file to write
    #[arg(long = "out", value_name = "PNG")]
    out: PathBuf,
    /// The PNG file, positionally (same as --out)
    #[arg(value_name = "OUT", conflicts_with = "out")]
    out_at: Option<PathBuf>,
}

impl CheckpointFiles {
    /// The checkpoint to read.
    pub fn checkpoint(&self) -> &Path {
        self.checkpoint_at.as_deref().unwrap_or(&self.checkpoint)
    }

    /// The PNG to write.
    pub fn out(&self) -> &Path {
        self.out_at.as_deref().unwrap_or(&self.out)
    }
}
