//! Typed shapes: tuples of dimensions, `(Dyn, Const<784>)` for a batch of 784-feature rows.

use super::dim::{Const, Dim, Dyn};

/// A tensor shape as a tuple of [`Dim`]s, ranks 1 to 5: `(Dyn, Const<784>)`,
/// `(Dyn, Const<28>, Const<28>, Const<1>)`.
pub trait Shape: Send + Sync + 'static {
    /// Number of axes.
    const RANK: usize;

    /// The size of every axis, `None` where it is [`Dyn`].
    fn sizes() -> Vec<Option<usize>>;

    /// True if run-time dims fit this shape (same rank, every `Const` axis equal).
    fn accepts(dims: &[usize]) -> bool;

    /// The shape as errors print it: `[*, 784]`.
    fn describe() -> String {
        let parts: Vec<String> = Self::sizes()
            .into_iter()
            .map(|s| s.map_or_else(|| "*".to_string(), |n| n.to_string()))
            .collect();
        format!("[{}]", parts.join(", "))
    }
}

/// A shape whose last axis a layer reads and may replace (features, or channels-last
/// channels).
pub trait HasLast: Shape {
    /// The last axis.
    type Last: Dim;
    /// The same shape with the last axis replaced by `D`.
    type WithLast<D: Dim>: HasLast<Last = D>;
}

/// A batch of rows of `F` features: `(Dyn, Const<F>)`.
pub type Rows<const F: usize> = (Dyn, Const<F>);

/// A batch of channels-last images, `H x W` with `C` channels: `(Dyn, H, W, C)` as NNX's
/// convolutions take them.
pub type Images<const H: usize, const W: usize, const C: usize> =
    (Dyn, Const<H>, Const<W>, Const<C>);

macro_rules! tuple_shape {
    ($rank:literal; $($D:ident $i:tt),* ; $Last:ident $li:tt) => {
        impl<$($D: Dim,)* $Last: Dim> Shape for ($($D,)* $Last,) {
            const RANK: usize = $rank;

            fn sizes() -> Vec<Option<usize>> {
                vec![$($D::SIZE,)* $Last::SIZE]
            }

            #[inline]
            fn accepts(dims: &[usize]) -> bool {
                dims.len() == $rank $(&& $D::accepts(dims[$i]))* && $Last::accepts(dims[$li])
            }
        }

        impl<$($D: Dim,)* $Last: Dim> HasLast for ($($D,)* $Last,) {
            type Last = $Last;
            type WithLast<New: Dim> = ($($D,)* New,);
        }
    };
}

tuple_shape!(1; ; A 0);
tuple_shape!(2; A 0; B 1);
tuple_shape!(3; A 0, B 1; C 2);
tuple_shape!(4; A 0, B 1, C 2; D 3);
tuple_shape!(5; A 0, B 1, C 2, D 3; E 4);
