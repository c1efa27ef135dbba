//! The positional arguments of the checkpoint-reading examples (`sample`, `reconstruct`):
//! `[checkpoint] [out.png] [n]`, each with a default.

use std::str::FromStr;

/// Parsed `[checkpoint] [out.png] [n]`.
pub struct CheckpointArgs<N> {
    /// The checkpoint to read (default `out/train_vae/model.safetensors`).
    pub checkpoint: String,
    /// The PNG to write.
    pub out: String,
    /// The third argument (a seed, a count, ...).
    pub n: N,
}

/// Reads the process arguments, with `out` and `n` as the defaults of the last two.
pub fn checkpoint_args<N: FromStr>(out: &str, n: N) -> CheckpointArgs<N> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    CheckpointArgs {
        checkpoint: arg(0, "out/train_vae/model.safetensors"),
        out: arg(1, out),
        n: args.get(2).and_then(|s| s.parse().ok()).unwrap_or(n),
    }
}
