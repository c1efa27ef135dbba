//! Command-line parsing (no dependencies: one subcommand, a few flags).

use std::path::PathBuf;

use artifex_core::checkpoint::LoadOptions;

/// The usage text.
pub const USAGE: &str = "\
usage: artifex inspect FILE [--diff OTHER] [--prefix P] [--convert-dtype] [--rng-optional]
       artifex inspect --config FILE.json --type MODEL

  inspect FILE                 metadata, tree of entries (kind, shape, dtype, bytes), totals
  --diff OTHER                 what loading FILE into a model with OTHER's entries would
                               report (missing, unexpected with did-you-mean, shape, dtype)
  --prefix P                   read FILE's entries under the key prefix P
  --convert-dtype              float dtype changes are conversions, not mismatches
  --rng-optional               absent rng state is fine (files written by NNX or PyTorch)
  --config FILE.json --type M  the parameter tree and memory of model M (CustomVAE, Gan, ...)
                               with that config, from shapes alone: nothing is allocated

exit status: 0 ok, 1 the diff found problems, 2 usage error or unreadable file";

/// A parsed command line.
#[derive(Clone, Debug)]
pub enum Command {
    /// `--help`.
    Help,
    /// `inspect FILE [--diff OTHER] ...`.
    Inspect {
        /// The file to inspect (or to load, with `--diff`).
        file: PathBuf,
        /// The file whose entries stand for the model.
        diff: Option<PathBuf>,
        /// The load options the diff uses.
        options: LoadOptions,
    },
    /// `inspect --config FILE.json --type MODEL`.
    InspectConfig {
        /// The JSON config (a checkpoint's `config` metadata).
        config: PathBuf,
        /// The model type, one of `artifex_models::MODEL_TYPES`.
        type_name: String,
    },
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => return Ok(Command::Help),
        Some("inspect") => {}
        Some(other) => return Err(format!("unknown command `{other}`")),
    }
    let (mut file, mut diff, mut options) = (None, None, LoadOptions::strict());
    let (mut config, mut type_name) = (None, None);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--diff" => diff = Some(PathBuf::from(it.next().ok_or("--diff needs a file")?)),
            "--prefix" => options = options.with_prefix(it.next().ok_or("--prefix needs a value")?),
            "--convert-dtype" => options = options.with_dtype_conversion(),
            "--rng-optional" => options.rng_state_optional = true,
            "--config" => config = Some(PathBuf::from(it.next().ok_or("--config needs a file")?)),
            "--type" => type_name = Some(it.next().ok_or("--type needs a model type")?.clone()),
            flag if flag.starts_with("--") => return Err(format!("unknown option `{flag}`")),
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument `{extra}`")),
        }
    }
    match (config, type_name, &file) {
        (Some(config), Some(type_name), None) => {
            return Ok(Command::InspectConfig { config, type_name })
        }
        (None, None, _) => {}
        _ => return Err("--config FILE.json goes with --type MODEL and no checkpoint FILE".into()),
    }
    let file = file.ok_or("inspect needs a FILE")?;
    Ok(Command::Inspect {
        file,
        diff,
        options,
    })
}
