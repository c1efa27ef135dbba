//! Dimensions: known at compile time ([`Const`]) or only at run time ([`Dyn`]).

/// A dimension whose size is known only at run time (a batch, a configurable width).
///
/// Typed layers accept a `Dyn` feature axis and check its size when the tensor arrives,
/// with the same path-naming error as the dynamic layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Dyn;

/// A dimension of size `N`, known at compile time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Const<const N: usize>;

/// A dimension of a typed shape: [`Dyn`] or [`Const<N>`](Const).
pub trait Dim: Copy + Send + Sync + 'static {
    /// `Some(N)` for `Const<N>`, `None` for `Dyn`.
    const SIZE: Option<usize>;

    /// True if a run-time size fits this dimension.
    #[inline]
    fn accepts(size: usize) -> bool {
        match Self::SIZE {
            Some(n) => n == size,
            None => true,
        }
    }
}

impl Dim for Dyn {
    const SIZE: Option<usize> = None;
}

impl<const N: usize> Dim for Const<N> {
    const SIZE: Option<usize> = Some(N);
}
