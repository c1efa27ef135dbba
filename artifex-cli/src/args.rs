//! The command line, declared with clap: one struct per subcommand, so a subcommand gains a
//! flag by gaining a field.

use std::path::PathBuf;

use artifex_core::checkpoint::LoadOptions;
use clap::{Parser, Subcommand};

/// Inspect and compare safetensors checkpoints (artifex, Flax NNX or PyTorch files).
#[derive(Parser, Clone, Debug)]
#[command(
    name = "artifex",
    version,
    arg_required_else_help = true,
    after_help = "\
Exit status: 0 ok; 1 the --diff found problems; 2 usage error or unreadable file.

Training and sampling the seed's CustomVAE are examples of the workspace:
  cargo run --release --example train_vae -- --help
  cargo run --release --example sample -- --help
  cargo run --release --example reconstruct -- --help"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Print a checkpoint's entries, or what loading it into a model would report
    ///
    /// Without --diff: the file's metadata, its tree of entries (kind, shape, dtype, bytes)
    /// and totals. With --diff OTHER: what loading FILE into a model whose entries are
    /// OTHER's would report (missing, unexpected with did-you-mean, shape and dtype
    /// mismatches), and whether a strict load would succeed.
    Inspect(InspectArgs),
}

/// `artifex inspect FILE [--diff OTHER] [--prefix P] [--convert-dtype] [--rng-optional]`, or
/// `artifex inspect --config FILE.json --type MODEL`.
#[derive(clap::Args, Clone, Debug)]
pub struct InspectArgs {
    /// The safetensors file to inspect (with --diff: the file to load)
    #[arg(
        value_name = "FILE",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub file: Option<PathBuf>,
    /// Instead of a file: the tree and memory of a model built from this JSON config (a
    /// checkpoint's `config` metadata), shapes only: nothing is allocated, so models too big
    /// for this machine can be inspected
    #[arg(long, value_name = "FILE.json", requires = "type_name")]
    pub config: Option<PathBuf>,
    /// With --config: the model type (CustomVAE, Gan, ... ; see artifex_models::MODEL_TYPES)
    #[arg(long = "type", value_name = "MODEL", requires = "config")]
    pub type_name: Option<String>,
    /// Compare: what loading FILE into a model with OTHER's entries would report
    #[arg(long, value_name = "OTHER")]
    pub diff: Option<PathBuf>,
    /// With --diff: read FILE's entries under the key prefix P
    #[arg(long, value_name = "P", requires = "diff")]
    pub prefix: Option<String>,
    /// With --diff: float dtype changes are conversions, not mismatches
    #[arg(long, requires = "diff")]
    pub convert_dtype: bool,
    /// With --diff: absent rng state is fine (files written by NNX or PyTorch)
    #[arg(long, requires = "diff")]
    pub rng_optional: bool,
}

impl InspectArgs {
    /// The load options the diff uses: strict, adjusted by the flags.
    pub fn load_options(&self) -> LoadOptions {
        let mut options = LoadOptions::strict();
        if let Some(prefix) = &self.prefix {
            options = options.with_prefix(prefix.as_str());
        }
        if self.convert_dtype {
            options = options.with_dtype_conversion();
        }
        options.rng_state_optional = self.rng_optional;
        options
    }
}
