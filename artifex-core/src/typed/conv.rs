//! Typed [`Conv2d`]: channels checked at compile time; spatial sizes kept in the type where
//! stable Rust can (stride 1, SAME padding), `Dyn` otherwise, or declared and checked by a
//! `const` assertion ([`Conv2d::forward_sized`]).
//!
//! The convolution itself is a dynamic layer behind [`ConvBackend`], so the typed wrapper
//! shares its implementation and checkpoint format (`kernel`, `bias`).

use std::marker::PhantomData;

use super::check::Channels;
use super::dim::{Const, Dim, Dyn};
use super::forward::{Build, Forward};
use super::shape::{HasLast, Shape};
use super::tensor::Tensor;
use crate::walk::{Visit, VisitMut};
use crate::{Error, Module, Result, Rngs};

/// What a typed convolution asks of the dynamic 2-D convolution it wraps.
pub trait ConvBackend: Module + Sized {
    /// Builds a channels-last 2-D convolution, drawing parameters from `rngs`.
    fn build_conv(spec: &ConvSpec, rngs: &mut Rngs) -> Result<Self>;

    /// `(input channels, output channels)`.
    fn channels(&self) -> (usize, usize);

    /// `(batch, H, W, in) -> (batch, H', W', out)`, checking the input with a path-naming
    /// error like every dynamic layer.
    fn forward_nhwc(&self, x: &candle_core::Tensor) -> Result<candle_core::Tensor>;
}

/// The hyper-parameters a typed convolution passes to [`ConvBackend::build_conv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride on both spatial axes.
    pub stride: usize,
    /// SAME padding (`ceil(n / stride)` outputs) if true, VALID (no padding) if false.
    pub same: bool,
}

/// Stride and padding of a typed convolution, and the type of a spatial axis after it.
pub trait Geometry: Send + Sync + 'static {
    /// Stride on both spatial axes.
    const STRIDE: usize;
    /// SAME padding if true, VALID if false.
    const SAME: bool;
    /// A spatial axis `D` after the convolution.
    type Spatial<D: Dim>: Dim;
}

/// Stride 1, SAME padding: spatial sizes are kept, also in the type.
#[derive(Clone, Copy, Debug, Default)]
pub struct Same;

/// Stride `S`, SAME padding: `ceil(n / S)` outputs, a `Dyn` axis in the type (stable Rust
/// cannot compute it from `n`; see [`Conv2d::forward_sized`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct SameStrided<const S: usize>;

/// Stride `S`, VALID padding: `(n - k) / S + 1` outputs, a `Dyn` axis in the type.
#[derive(Clone, Copy, Debug, Default)]
pub struct Valid<const S: usize>;

impl Geometry for Same {
    const STRIDE: usize = 1;
    const SAME: bool = true;
    type Spatial<D: Dim> = D;
}

impl<const S: usize> Geometry for SameStrided<S> {
    const STRIDE: usize = S;
    const SAME: bool = true;
    type Spatial<D: Dim> = Dyn;
}

impl<const S: usize> Geometry for Valid<S> {
    const STRIDE: usize = S;
    const SAME: bool = false;
    type Spatial<D: Dim> = Dyn;
}

/// A channels-last image batch `(N, H, W, C)`, and its shape after a convolution.
pub trait ImageShape: HasLast {
    /// The shape after a convolution of geometry `G` with `D` output channels:
    /// `(N, G::Spatial<H>, G::Spatial<W>, D)`.
    type Conv<G: Geometry, D: Dim>: ImageShape<Last = D>;
}

impl<N: Dim, H: Dim, W: Dim, C: Dim> ImageShape for (N, H, W, C) {
    type Conv<G: Geometry, D: Dim> = (N, G::Spatial<H>, G::Spatial<W>, D);
}

/// Output size of a convolution axis: `ceil(n / stride)` with SAME padding, `(n - k) / stride
/// + 1` with VALID (0 when the kernel does not fit). Usable in `const` items.
pub const fn conv_output_size(input: usize, kernel: usize, stride: usize, same: bool) -> usize {
    if stride == 0 {
        0
    } else if same {
        input.div_ceil(stride)
    } else if input < kernel {
        0
    } else {
        (input - kernel) / stride + 1
    }
}

/// A 2-D convolution from `CI` to `CO` channels with a `K x K` kernel, geometry `G`
/// ([`Same`], [`SameStrided`], [`Valid`]), over the dynamic convolution `B`.
///
/// Input and output are channels-last `(batch, H, W, C)`. A channel mismatch does not
/// compile: `cannot feed [*, H, W, 16] into a convolution expecting 8 input channels`.
pub struct Conv2d<const CI: usize, const CO: usize, const K: usize, G: Geometry, B: ConvBackend> {
    inner: B,
    geometry: PhantomData<fn() -> G>,
}

impl<const CI: usize, const CO: usize, const K: usize, G: Geometry, B: ConvBackend>
    Conv2d<CI, CO, K, G, B>
{
    /// The hyper-parameters in the type.
    pub const SPEC: ConvSpec = ConvSpec {
        in_channels: CI,
        out_channels: CO,
        kernel: K,
        stride: G::STRIDE,
        same: G::SAME,
    };

    /// Builds the dynamic convolution from [`Self::SPEC`].
    pub fn new(rngs: &mut Rngs) -> Result<Self> {
        const {
            assert!(
                CI > 0 && CO > 0 && K > 0 && G::STRIDE > 0,
                "typed Conv2d: channels, kernel and stride must be positive"
            )
        };
        Self::from_dynamic(B::build_conv(&Self::SPEC, rngs)?)
    }

    /// Types a dynamic convolution; fails unless it maps `CI` channels to `CO`.
    pub fn from_dynamic(inner: B) -> Result<Self> {
        let (ci, co) = inner.channels();
        if (ci, co) != (CI, CO) {
            return Err(Error::config(
                format!("typed Conv2d<{CI}, {CO}, {K}>"),
                format!("the dynamic convolution maps {ci} channels to {co}"),
            ));
        }
        Ok(Self {
            inner,
            geometry: PhantomData,
        })
    }

    /// The dynamic convolution.
    #[inline]
    pub fn as_dynamic(&self) -> &B {
        &self.inner
    }

    /// The dynamic convolution, by value.
    #[inline]
    pub fn into_dynamic(self) -> B {
        self.inner
    }

    /// Runs the backend and checks its output against the type: the backend is a trait that
    /// users implement, so its output is checked like any tensor entering the typed world.
    fn run<T: Shape>(&self, x: &candle_core::Tensor) -> Result<Tensor<T>> {
        let y = self.inner.forward_nhwc(x)?;
        if !T::accepts(y.dims()) {
            return Err(Error::Shape {
                module: format!("typed Conv2d<{CI}, {CO}, {K}> (output of its ConvBackend)"),
                expected: T::describe(),
                got: y.dims().to_vec(),
            });
        }
        Ok(Tensor::assume(y))
    }

    /// Forward pass with the output size declared in the type (`HO`, `WO`, usually inferred
    /// from the annotation) and checked against the input's by a `const` assertion:
    /// a wrong declaration fails `cargo build` (a post-monomorphization error).
    #[inline]
    pub fn forward_sized<
        N: Dim,
        C: Channels<CI>,
        const H: usize,
        const W: usize,
        const HO: usize,
        const WO: usize,
    >(
        &self,
        x: &Tensor<(N, Const<H>, Const<W>, C)>,
    ) -> Result<Tensor<(N, Const<HO>, Const<WO>, Const<CO>)>> {
        const {
            assert!(
                HO == conv_output_size(H, K, G::STRIDE, G::SAME)
                    && WO == conv_output_size(W, K, G::STRIDE, G::SAME),
                "typed Conv2d: the declared output size differs from conv_output_size(input, K, stride, padding)"
            )
        };
        self.run(x.inner())
    }
}

impl<const CI: usize, const CO: usize, const K: usize, G: Geometry, B: ConvBackend> std::fmt::Debug
    for Conv2d<CI, CO, K, G, B>
where
    B: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conv2d")
            .field("spec", &Self::SPEC)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<const CI: usize, const CO: usize, const K: usize, G: Geometry, B: ConvBackend> Module
    for Conv2d<CI, CO, K, G, B>
{
    #[inline]
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        self.inner.walk(v);
    }

    #[inline]
    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        self.inner.walk_mut(v);
    }
}

impl<const CI: usize, const CO: usize, const K: usize, G: Geometry, B: ConvBackend> Build
    for Conv2d<CI, CO, K, G, B>
{
    fn build(rngs: &mut Rngs) -> Result<Self> {
        Self::new(rngs)
    }
}

impl<S, const CI: usize, const CO: usize, const K: usize, G, B> Forward<S>
    for Conv2d<CI, CO, K, G, B>
where
    S: ImageShape,
    S::Last: Channels<CI>,
    G: Geometry,
    B: ConvBackend,
{
    // A projection of `S` (not a tuple spelled out here), so that a channel mismatch in a
    // `Seq` is reported as the readable `SameChannels` error, not as a missing method.
    type Out = S::Conv<G, Const<CO>>;

    #[inline]
    fn forward_t(&self, x: &Tensor<S>, _train: Option<bool>) -> Result<Tensor<Self::Out>> {
        self.run(x.inner())
    }
}
