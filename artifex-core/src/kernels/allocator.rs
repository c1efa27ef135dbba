//! Keeps a training step's buffers in the C heap between steps (glibc on Linux only).
//!
//! A step allocates and frees tens of megabytes of tensors (activations, gradients, gemm
//! results). With glibc's defaults, buffers above its adaptive `mmap` threshold are mapped and
//! unmapped one by one, and the top of the heap is given back to the kernel whenever more than
//! twice that threshold is free: every step then faults its pages in again, and the kernel
//! zeroes each one (measured on the seed VAE step: ~2,000 page faults per step, a quarter of
//! the step's CPU time on a busy machine; ~250 with the settings here).
//!
//! On the first use of a fused kernel this sets `M_MMAP_THRESHOLD` to [`MMAP_THRESHOLD`]
//! (buffers below it come from the heap and are reused) and `M_TRIM_THRESHOLD` to
//! [`TRIM_THRESHOLD`] (up to that much free memory stays with the process), what
//! `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` would set. It is process-wide: the
//! process keeps up to [`TRIM_THRESHOLD`] of freed memory resident. The environment variable
//! `ARTIFEX_MALLOC_TUNING=0` leaves glibc's settings alone.

/// Allocations below this come from the heap (glibc's adaptive threshold stops at 32 MiB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Free memory at the top of the heap kept before glibc gives it back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 128 << 20;

/// Applies the settings once per process (later calls cost one atomic load).
pub(crate) fn tune_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(tune);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune() {
    if std::env::var_os("ARTIFEX_MALLOC_TUNING").is_some_and(|v| v == "0") {
        return;
    }
    // SAFETY: `mallopt` only changes glibc's allocation parameters (it takes the arena lock);
    // it is safe to call at any time from any thread. A refused setting (return 0) leaves
    // glibc's own, which is still correct, so the results are not checked.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune() {}
