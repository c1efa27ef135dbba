//! artifex-core's integration tests in one binary, so candle is linked once for all of them
//! (each module was a test file, and a binary, of its own). Beside this folder, in binaries of
//! their own: the tests that flip the process-wide fast-path switch (`autodiff`,
//! `autodiff_errors`, `conv_kernels`), run their own binary as a child process by test name
//! (`crash_safety`, `determinism`, `interrupt`) or measure the process's peak memory
//! (`large_checkpoint`).
//!
//! `cargo test --release -p artifex-core --test integration [-- MODULE::]`

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/naive.rs"]
mod naive;

mod activations;
mod adapter_torch;
mod checkpoint;
mod checkpoint_kinds;
mod checkpoint_sources;
mod filters;
mod generic_modules;
mod initializers;
mod layers_attention;
mod layers_checkpoint;
mod layers_conv;
mod layers_embed;
mod layers_norm;
mod layers_regularized;
mod losses_classification;
mod mode;
mod parity_core_layers;
mod parity_layers;
mod partial_load;
mod regularization;
mod state_tree;
mod trainer;
