//! What happens when higher-order mode comes too late: the errors say what to do, and a graph
//! built with the fused kernels is refused rather than differentiated wrongly. Also: keeping
//! graphs does not change first-order gradients.
//!
//! One test in its own binary: candle fixes detaching per thread and higher-order mode is
//! process-wide, so the order of these steps matters and no other test may run beside them.

use artifex_core::autodiff;
use artifex_core::candle_core::Var;
use artifex_core::prelude::*;

/// A small model on plain ops (what higher-order mode runs): Linear, BatchNorm (training
/// mode), relu, Linear.
struct Mlp {
    fc1: Linear,
    bn: BatchNorm,
    fc2: Linear,
}

impl Mlp {
    fn new() -> Result<Self> {
        let rngs = &mut Rngs::new(5);
        Ok(Self {
            fc1: Linear::new(6, 8, rngs)?,
            bn: BatchNorm::new(8, rngs)?,
            fc2: Linear::new(8, 3, rngs)?,
        })
    }

    /// First-order gradients of a loss w.r.t. every parameter, as values.
    fn gradients(&self) -> Result<Vec<Vec<f32>>> {
        let x = artifex_core::RngKey::from_seed(6).normal(&[4, 6], DType::F32, &Device::Cpu)?;
        let h = activation::relu(&self.bn.forward(&self.fc1.forward(&x)?)?)?;
        let loss = self.fc2.forward(&h)?.sqr()?.mean_all()?;
        let grads = loss.backward()?;
        let mut out = Vec::new();
        for p in [
            &self.fc1.kernel,
            self.bn.scale.as_ref().expect("scale"),
            &self.fc2.kernel,
        ] {
            let g = grads.get(p.value()).expect("gradient");
            out.push(g.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

#[test]
fn late_higher_order_mode_is_an_error_never_a_wrong_number() -> Result<()> {
    if std::env::var_os(autodiff::ENV_VAR).is_some() {
        eprintln!("skipped: {} is set in the environment", autodiff::ENV_VAR);
        return Ok(());
    }
    assert!(!autodiff::higher_order_enabled());

    // A backward pass on this thread fixes candle's detaching for the thread.
    let mlp = Mlp::new()?;
    artifex_core::fast_paths::set_enabled(false);
    let detached = mlp.gradients()?;
    artifex_core::fast_paths::set_enabled(true);
    let x = Var::new(&[1.0f32, 2.0], &Device::Cpu)?;
    let err = autodiff::grad(&x.as_tensor().sqr()?.sum_all()?, &[x.as_tensor()])
        .expect_err("detaching thread")
        .to_string();
    assert!(
        err.contains("CANDLE_GRAD_DO_NOT_DETACH=1") && err.contains("enable_higher_order()"),
        "{err}"
    );

    // A forward pass with the fused Linear kernel (f32, CPU, higher-order mode off).
    let layer = Linear::new(4, 3, &mut Rngs::new(0))?;
    let input = Var::new(&[[0.5f32, -1.0, 2.0, 0.25]], &Device::Cpu)?;
    let y = layer.forward(input.as_tensor())?.sum_all()?;

    let err = autodiff::enable_higher_order()
        .expect_err("this thread already detaches")
        .to_string();
    assert!(err.contains("once per thread"), "{err}");
    assert!(autodiff::higher_order_enabled());

    // A fresh thread keeps graphs now; the graph built above contains the fused kernel, whose
    // backward refuses, naming the layer and the kernel.
    let kernel = layer.kernel.value().clone();
    let input_t = input.as_tensor().clone();
    let (refused, fine, kept) = std::thread::spawn(move || -> Result<_> {
        assert!(autodiff::keeps_graphs()?);
        let kept = mlp.gradients()?;
        let refused = autodiff::grad(&y, &[&input_t, &kernel])
            .expect_err("fused kernel in a graph-keeping gradient")
            .to_string();
        // Built now, the forward pass takes the plain ops and second derivatives work:
        // d sum(x W) / dx = the row sums of W, whose sum has gradient 1 w.r.t. every W_ij.
        let plain = input_t.matmul(&kernel)?.sum_all()?;
        let g = autodiff::grad(&plain, &[&input_t])?;
        let h = autodiff::grad(&g[0].sum_all()?, &[&kernel])?;
        Ok((refused, h[0].flatten_all()?.to_vec1::<f32>()?, kept))
    })
    .join()
    .expect("thread")?;
    assert!(
        refused.contains("Linear")
            && refused.contains("artifex-linear-bias")
            && refused.contains("enable_higher_order()"),
        "{refused}"
    );
    assert_eq!(fine, vec![1.0; 12]);
    assert_eq!(
        kept, detached,
        "first-order gradients: bitwise the same with kept graphs"
    );
    Ok(())
}
