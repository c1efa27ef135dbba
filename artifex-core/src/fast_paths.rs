//! The process-wide switch of the fused CPU kernels (the one-pass Adam update, ...).
//!
//! They are on by default and give the plain candle-ops results up to float rounding (the
//! Adam update is bit-identical); turning them off runs the plain ops everywhere, as on
//! devices without a fused kernel. Benchmarks and tests use it to compare the two paths.
//! In higher-order mode ([`crate::autodiff::enable_higher_order`]) the layers' kernels are off
//! whatever this switch says (their backward passes cannot be differentiated again); the
//! optimizers' fused update, which is never differentiated, still follows it.
//!
//! ```
//! artifex_core::fast_paths::set_enabled(false);
//! assert!(!artifex_core::fast_paths::enabled());
//! artifex_core::fast_paths::set_enabled(true);
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether the fused CPU kernels are used where they apply (default: true).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns the fused CPU kernels on or off for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}
