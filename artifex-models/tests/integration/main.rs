//! artifex-models' integration tests in one binary, so candle is linked once for all of them
//! (each module was a test file, and a binary, of its own). Beside this folder, in binaries of
//! their own: `abstract_state` (runs its own binary as a child process by test name),
//! `fast_paths` (flips the process-wide fast-path switch) and `hostile_files` (installs a
//! counting global allocator).
//!
//! `cargo test --release -p artifex-models --test integration [-- MODULE::]`

/// The helpers shared with artifex-core's tests.
#[path = "../../../artifex-core/tests/common/mod.rs"]
mod common;

mod interop_nnx;
mod metrics;
mod models;
mod parity_gan;
mod parity_vae;
mod training_loop;
mod typed;
