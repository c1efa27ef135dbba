//! Gradients: [`backward`], candle's backward pass with the fused kernels' parameter
//! gradients kept out of its zero-fill-and-add bookkeeping (what the optimizers and the
//! `Trainer` run), and gradients that keep their graph, so that a loss can contain a gradient
//! (WGAN-GP, R1) and be differentiated again.
//!
//! candle's `backward` detaches every gradient it computes unless the environment variable
//! `CANDLE_GRAD_DO_NOT_DETACH` is set (to anything but empty or `0`). It reads the variable
//! **once per thread**, lazily, at that thread's first backward pass (a `thread_local!`), and
//! keeps the answer for the thread's life: setting the variable later changes nothing on a
//! thread that already ran a backward pass. With detached gradients a second derivative is not
//! an error in candle but a wrong number (every intermediate gradient counts as a constant),
//! so this module checks before it differentiates:
//!
//! - [`enable_higher_order`] sets the variable for the process, turns the fused CPU kernels
//!   off (their backward passes are hand-written and not themselves differentiable; the layers
//!   then run their plain candle ops, which are), and checks that the calling thread will keep
//!   graphs. Call it at the start of `main`, before any other thread is spawned and before any
//!   backward pass; setting `CANDLE_GRAD_DO_NOT_DETACH=1` in the environment of the process
//!   does the same.
//! - [`grad`] refuses, with [`AutodiffError::Detaching`], on a thread where candle detaches,
//!   and a fused kernel's backward refuses to run on such a thread when it would be part of a
//!   graph-keeping gradient (a graph built before [`enable_higher_order`]), naming the kernel.
//!
//! Keeping graphs does not change first-order gradients (the same operations run in the same
//! order); it keeps the backward pass's intermediate tensors alive until the gradient store is
//! dropped, which costs memory during each step (see README, "Gradient penalties").
//!
//! ```
//! use artifex_core::autodiff;
//! use artifex_core::candle_core::{Device, Tensor, Var};
//!
//! autodiff::enable_higher_order()?;
//! let x = Var::new(&[1.0f64, 2.0], &Device::Cpu)?;
//! let y = x.as_tensor().powf(3.0)?.sum_all()?; // sum x^3
//! let g = autodiff::grad(&y, &[x.as_tensor()])?; // 3 x^2, with its graph
//! let h = autodiff::grad(&g[0].sum_all()?, &[x.as_tensor()])?; // 6 x
//! assert_eq!(h[0].to_vec1::<f64>()?, vec![6.0, 12.0]);
//! # Ok::<(), artifex_core::Error>(())
//! ```

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use candle_core::{Device, Tensor, Var};

pub use crate::error::AutodiffError;
use crate::Result;

mod param_grads;
pub(crate) use param_grads::route as route_param_grad;

/// The environment variable candle reads to keep the graphs of gradients.
pub const ENV_VAR: &str = "CANDLE_GRAD_DO_NOT_DETACH";

/// Set by [`enable_higher_order`].
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The environment variable as it was at the first check in this process.
static ENV_AT_START: OnceLock<bool> = OnceLock::new();

thread_local! {
    /// Whether candle keeps graphs on this thread, once probed.
    static KEEPS_GRAPHS: Cell<Option<bool>> = const { Cell::new(None) };
}

fn env_set() -> bool {
    std::env::var_os(ENV_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether higher-order mode is on for the process: [`enable_higher_order`] was called, or
/// `CANDLE_GRAD_DO_NOT_DETACH` was set when this was first asked. While it is on, the layers
/// run their plain (twice-differentiable) candle ops instead of the fused CPU kernels.
pub fn higher_order_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed) || *ENV_AT_START.get_or_init(env_set)
}

/// Turns higher-order mode on for the process (see the module documentation): sets
/// `CANDLE_GRAD_DO_NOT_DETACH=1`, switches the fused kernels off, and checks that the calling
/// thread keeps graphs.
///
/// Call it at the start of `main`, before spawning threads: it changes the process
/// environment, which other threads reading the environment at the same moment (through C
/// `getenv`) must not race with. Threads started later keep graphs; a thread that already ran
/// a backward pass without the variable keeps detaching, and on the calling thread that is the
/// error [`AutodiffError::TooLate`].
pub fn enable_higher_order() -> Result<()> {
    if !env_set() {
        std::env::set_var(ENV_VAR, "1");
    }
    ENABLED.store(true, Ordering::Relaxed);
    if keeps_graphs()? {
        Ok(())
    } else {
        Err(AutodiffError::TooLate.into())
    }
}

/// Whether candle keeps the graphs of gradients on the calling thread (it decides once per
/// thread, at the first backward pass; asking runs a tiny one if none ran yet).
///
/// Measured, not read: the second derivative of `x^3` at 1 is 6 when graphs are kept and 4
/// when intermediate gradients are detached.
pub fn keeps_graphs() -> Result<bool> {
    if let Some(known) = KEEPS_GRAPHS.with(Cell::get) {
        return Ok(known);
    }
    let x = Var::new(1f64, &Device::Cpu)?;
    let cube = x.as_tensor().sqr()?.mul(x.as_tensor())?;
    let first = cube.backward()?;
    let second = match first.get(x.as_tensor()) {
        Some(g) if g.track_op() => match g.backward()?.get(x.as_tensor()) {
            Some(h) => h.to_scalar::<f64>()?,
            None => 0.0,
        },
        _ => 0.0,
    };
    let keeps = second == 6.0;
    KEEPS_GRAPHS.with(|k| k.set(Some(keeps)));
    Ok(keeps)
}

/// The gradients of `loss`, as `loss.backward()` gives them, computed faster where the fused
/// CPU kernels ran: their parameter gradients (Linear and Conv kernels and biases, BatchNorm
/// scales and biases) go straight into the store instead of through candle's zero-filled
/// buffer and addition per tensor (about a tenth of the seed VAE's training step).
/// [`Optimizer::backward_step`](crate::optim::Optimizer::backward_step) and the
/// [`Trainer`](crate::train::Trainer) use it; a hand-written loop can too.
///
/// ```
/// use artifex_core::candle_core::{Device, Tensor, Var};
/// use artifex_core::{autodiff, ops};
///
/// let x = Tensor::new(&[[1f32, 2.0]], &Device::Cpu)?;
/// let w = Var::new(&[[3f32], [4.0]], &Device::Cpu)?;
/// let b = Var::new(&[0.5f32], &Device::Cpu)?;
/// let loss = ops::linear(&x, &w, Some(&b))?.sum_all()?;
/// let grads = autodiff::backward(&loss)?;
/// let dw = grads.get(w.as_tensor()).expect("dw").flatten_all()?.to_vec1::<f32>()?;
/// assert_eq!(dw, vec![1.0, 2.0]);
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub fn backward(loss: &Tensor) -> Result<candle_core::backprop::GradStore> {
    Ok(param_grads::backward(loss)?)
}

/// Gradients of the scalar `output` with respect to each of `inputs`, with their graphs: they
/// can be used inside a loss and differentiated again (JAX's `jax.grad` inside a loss;
/// PyTorch's `autograd.grad(..., create_graph=True)`).
///
/// `inputs` must be variables ([`Var`] tensors: parameters, or `Var::from_tensor(&x)?` for
/// data such as the interpolates of a gradient penalty); an input that `output` does not
/// depend on gets zeros. Errors: a thread where candle detaches gradients
/// ([`AutodiffError::Detaching`], saying what to do), an output with more than one element,
/// an input that is not a variable, and a fused kernel in the graph that was built before
/// [`enable_higher_order`] (named in the error).
pub fn grad(output: &Tensor, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
    if output.elem_count() != 1 {
        return Err(AutodiffError::NotScalar {
            shape: output.dims().to_vec(),
        }
        .into());
    }
    for (index, x) in inputs.iter().enumerate() {
        if !x.is_variable() {
            return Err(AutodiffError::NotAVariable {
                index,
                shape: x.dims().to_vec(),
            }
            .into());
        }
    }
    if !keeps_graphs()? {
        return Err(AutodiffError::Detaching.into());
    }
    let store = output.backward()?;
    inputs
        .iter()
        .map(|x| match store.get(x) {
            Some(g) => Ok(g.clone()),
            None => Ok(x.zeros_like()?),
        })
        .collect()
}

/// For the fused kernels' backward passes: an error naming `kernel` (and the `layer` that runs
/// it) when the gradient being computed keeps its graph, because the kernel's hand-written
/// backward would enter that graph as a constant and make any second derivative wrong.
pub(crate) fn refuse_fused_backward(kernel: &str, layer: &str) -> candle_core::Result<()> {
    match keeps_graphs() {
        Ok(false) => Ok(()),
        Ok(true) => candle_core::bail!(
            "{layer}: the fused kernel {kernel} has a backward pass that cannot be \
             differentiated again, and this gradient keeps its graph; the forward pass ran \
             before higher-order mode was on: call artifex_core::autodiff::enable_higher_order() \
             at the start of main (the layers then run their plain candle ops)"
        ),
        Err(e) => candle_core::bail!("{layer}: {kernel}: {e}"),
    }
}
