//! [`AutodiffError`], the errors of [`autodiff`](crate::autodiff) (re-exported there).

/// What to do, said by every error of this module.
const HOW: &str = "set CANDLE_GRAD_DO_NOT_DETACH=1 in the environment before the program \
                   starts, or call artifex_core::autodiff::enable_higher_order() at the start \
                   of main, before any backward pass on this thread";

/// Errors of higher-order differentiation.
#[derive(Debug, thiserror::Error)]
pub enum AutodiffError {
    /// candle detaches gradients on this thread, so they cannot be differentiated again.
    #[error("autodiff::grad: candle detaches gradients on this thread (CANDLE_GRAD_DO_NOT_DETACH was not set when the thread ran its first backward pass), so the gradient could not be differentiated again; {HOW}")]
    Detaching,
    /// `enable_higher_order` was called on a thread that already fixed detaching.
    #[error("autodiff::enable_higher_order: this thread already ran a backward pass with detached gradients, and candle reads CANDLE_GRAD_DO_NOT_DETACH once per thread; {HOW}")]
    TooLate,
    /// The output to differentiate is not a scalar.
    #[error("autodiff::grad: the output must be a scalar (one element), got shape {shape:?}; reduce it first (e.g. .sum_all())")]
    NotScalar {
        /// The output's shape.
        shape: Vec<usize>,
    },
    /// An input is not a variable (candle keeps the gradients of variables only).
    #[error("autodiff::grad: input {index} (shape {shape:?}) is not a variable; candle keeps gradients of variables only: differentiate with respect to Var::from_tensor(&x)? and build the output from it")]
    NotAVariable {
        /// The input's position in `inputs`.
        index: usize,
        /// Its shape.
        shape: Vec<usize>,
    },
}
