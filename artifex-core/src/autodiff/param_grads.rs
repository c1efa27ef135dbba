//! Parameter gradients that bypass candle's gradient store while [`backward`] runs (the
//! fused kernels in `crate::kernels` hand theirs to [`route`]).
//!
//! candle's backward pass, for every gradient an op returns, first makes a zero-filled tensor
//! of the argument's shape and then adds the gradient onto it (a new buffer again). For the
//! parameters of the fused kernels (kernels, biases, BatchNorm scales: ~4.5 MB per step in the
//! seed VAE) that is a serial memset and a parallel add per tensor, ~10% of the step. While
//! [`backward`] runs, the fused kernels hand their parameter gradients here instead
//! ([`route`]): the first one is kept as it is and later ones (a parameter used twice) are
//! added to it. [`backward`] then puts them into candle's [`GradStore`], added to whatever
//! candle computed for the same parameter through plain ops.
//!
//! Outside [`backward`] (a user's `loss.backward()`), [`route`] hands every gradient back to
//! candle, so both give the same gradients; only the cost differs.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, TensorId};

thread_local! {
    /// The parameter gradients of the [`backward`] running on this thread, if one is.
    static SINK: RefCell<Option<HashMap<TensorId, (Tensor, Tensor)>>> =
        const { RefCell::new(None) };
}

/// Puts back the sink that was installed before a [`backward`] call, also when candle's
/// backward pass unwinds.
struct Restore(Option<HashMap<TensorId, (Tensor, Tensor)>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let outer = self.0.take();
        SINK.with(|s| *s.borrow_mut() = outer);
    }
}

/// `loss.backward()`, with the fused kernels' parameter gradients collected outside candle's
/// store (see the module documentation): the same gradients, without a zero-filled buffer and
/// an addition per parameter.
pub(crate) fn backward(loss: &Tensor) -> candle_core::Result<GradStore> {
    let outer = SINK.with(|s| s.borrow_mut().replace(HashMap::new()));
    let restore = Restore(outer);
    let result = loss.backward();
    let collected = SINK.with(|s| s.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    let mut grads = result?;
    for (param, grad) in collected.into_values() {
        let total = match grads.remove(&param) {
            Some(from_candle) => (from_candle + grad)?,
            None => grad,
        };
        grads.insert(&param, total);
    }
    Ok(grads)
}

/// For a fused kernel's backward pass: the gradient `grad` of its argument `arg`, to return to
/// candle (`Some`), or `None` when `arg` is a parameter (a variable) and a [`backward`] on this
/// thread collects it.
pub(crate) fn route(arg: &Tensor, grad: Tensor) -> candle_core::Result<Option<Tensor>> {
    if !arg.is_variable() {
        return Ok(Some(grad));
    }
    SINK.with(|s| {
        let mut sink = s.borrow_mut();
        let Some(sink) = sink.as_mut() else {
            return Ok(Some(grad));
        };
        match sink.get_mut(&arg.id()) {
            Some((_, sum)) => *sum = (&*sum + grad)?,
            None => {
                sink.insert(arg.id(), (arg.clone(), grad));
            }
        }
        Ok(None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Result;
    use candle_core::{Device, Var};

    fn assert_same(a: &GradStore, b: &GradStore, vars: &[&Var]) -> Result<()> {
        for v in vars {
            let (x, y) = (a.get(v.as_tensor()), b.get(v.as_tensor()));
            let (x, y) = (x.expect("gradient"), y.expect("gradient"));
            assert_eq!(
                x.flatten_all()?.to_vec1::<f32>()?,
                y.flatten_all()?.to_vec1::<f32>()?
            );
        }
        Ok(())
    }

    /// A kernel used twice, once through a fused op and once through plain ops, and a bias
    /// used once: `backward` gives candle's gradients, and a backward pass without the sink
    /// (candle's own) still gets every gradient from the fused ops.
    #[test]
    fn collected_gradients_equal_candles() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, -2.0, 3.0], [0.5, 0.25, -1.0]], &dev)?;
        let w = Var::new(&[[0.1f32, -0.2], [0.3, 0.4], [-0.5, 0.6]], &dev)?;
        let b = Var::new(&[0.01f32, -0.02], &dev)?;
        let loss = || -> Result<Tensor> {
            let fused = crate::ops::linear(&x, &w, Some(&b))?;
            let again = crate::ops::linear(&fused.sqr()?, &w.t()?, None)?;
            let plain = w.as_tensor().sqr()?.sum_all()?;
            Ok((again.sum_all()? + plain)?)
        };
        let ours = backward(&loss()?)?;
        let candles = loss()?.backward()?;
        assert_same(&ours, &candles, &[&w, &b])?;
        // The fused op did hand its bias gradient to the sink, not to candle.
        let restore = Restore(SINK.with(|s| s.borrow_mut().replace(HashMap::new())));
        let without_sink = loss()?.backward()?;
        let collected = SINK.with(|s| s.borrow_mut().take()).expect("the sink");
        drop(restore);
        assert!(without_sink.get(b.as_tensor()).is_none());
        assert!(collected.contains_key(&b.id()) && collected.contains_key(&w.id()));
        // Nothing stays installed after a call.
        assert!(SINK.with(|s| s.borrow().is_none()));
        Ok(())
    }

    #[test]
    fn routes_to_candle_outside_backward() -> Result<()> {
        let w = Var::new(&[1f32, 2.0], &Device::Cpu)?;
        let g = Tensor::new(&[3f32, 4.0], &Device::Cpu)?;
        assert!(route(w.as_tensor(), g)?.is_some());
        Ok(())
    }
}
