//! The one tree walk every operation on a model is written on: [`Visit`] (shared) and
//! [`VisitMut`] (mutable) are called back by [`Module::walk`] / [`Module::walk_mut`] with
//! the named children and the leaves of the state tree, in field order.
//!
//! A container or a derived struct writes one `walk` and one `walk_mut`; state listing,
//! train/eval, path binding, regularizer collection, freezing and filtering are visitors
//! (the provided methods of [`Module`] call them), so a new operation is one visitor, not a
//! change to every container.
//!
//! ```
//! use artifex_core::prelude::*;
//! use artifex_core::walk::{Leaf, Segment, Visit};
//!
//! /// Counts the variables below `encoder` (a visitor that tracks only what it needs).
//! struct CountUnder { depth: usize, inside: Option<usize>, count: usize }
//!
//! impl<'a> Visit<'a> for CountUnder {
//!     fn enter(&mut self, segment: Segment<'_>) -> bool {
//!         if self.depth == 0 && segment == Segment::Field("encoder") {
//!             self.inside = Some(self.depth);
//!         }
//!         self.depth += 1;
//!         true
//!     }
//!     fn leave(&mut self) {
//!         self.depth -= 1;
//!         if self.inside == Some(self.depth) {
//!             self.inside = None;
//!         }
//!     }
//!     fn leaf(&mut self, leaf: Leaf<'a>) {
//!         if matches!(leaf, Leaf::State(_)) && self.inside.is_some() {
//!             self.count += 1;
//!         }
//!     }
//! }
//!
//! #[module]
//! struct Model {
//!     #[init(Linear::new(4, 8, rngs)?)]
//!     encoder: Linear,
//!     #[init(Linear::new(8, 2, rngs)?)]
//!     head: Linear,
//! }
//!
//! let model = Model::new(&mut Rngs::new(0))?;
//! let mut count = CountUnder { depth: 0, inside: None, count: 0 };
//! model.walk(&mut count);
//! assert_eq!(count.count, 2); // encoder.kernel, encoder.bias
//! # Ok::<(), artifex_core::Error>(())
//! ```

use std::fmt;

use crate::rng::RngStream;
use crate::{BatchStat, Mode, Module, ModulePath, Param, Regularizer, StateRef};

/// The name of a child in its parent: a struct field, a list index or a map key.
///
/// Indices stay numbers until a visitor that tracks paths formats them, so a walk that does
/// not need paths (train/eval, trainable variables) allocates nothing per child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment<'s> {
    /// A struct field (`encoder`), a tuple position of a derived tuple struct, or a fixed
    /// name given by a hand-written walk (`count`, `key` of an rng stream).
    Field(&'s str),
    /// An item of a list, array or tuple: `layers.0`.
    Index(usize),
    /// The key of a `BTreeMap<String, _>` or of a stream of [`Rngs`](crate::Rngs).
    Key(&'s str),
}

impl fmt::Display for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Field(s) | Segment::Key(s) => f.write_str(s),
            Segment::Index(i) => write!(f, "{i}"),
        }
    }
}

/// A leaf met by a shared walk.
#[derive(Clone, Copy, Debug)]
pub enum Leaf<'a> {
    /// A state variable (saved in checkpoints): param, batch stat, rng key or counter.
    State(StateRef<'a>),
    /// A train/eval flag.
    Mode(&'a Mode),
    /// Where the module holding this field sits, for its error messages.
    Path(&'a ModulePath),
}

/// A leaf met by a mutable walk.
#[derive(Debug)]
pub enum LeafMut<'l> {
    /// A trainable parameter (freeze it, cast it, ...).
    Param(&'l mut Param),
    /// A non-trainable statistic.
    BatchStat(&'l mut BatchStat),
    /// An rng stream (its key and counter are the `key` / `count` state entries).
    Rng(&'l mut RngStream),
    /// A train/eval flag.
    Mode(&'l mut Mode),
    /// The module path of the struct holding this field.
    Path(&'l mut ModulePath),
}

/// What a shared walk ([`Module::walk`]) calls back. `'a` is the model's borrow, so a
/// visitor may keep what it is handed (`StateRef<'a>`, `&'a dyn Regularizer`).
pub trait Visit<'a> {
    /// Entering the child named `segment` of the current node; `false` skips it (and then
    /// [`leave`](Visit::leave) is not called for it).
    fn enter(&mut self, segment: Segment<'_>) -> bool {
        let _ = segment;
        true
    }

    /// Leaving the child last entered.
    fn leave(&mut self) {}

    /// A leaf at the current position.
    fn leaf(&mut self, leaf: Leaf<'a>);

    /// The current node implements [`Regularizer`] (called before its children are walked).
    fn regularizer(&mut self, regularizer: &'a dyn Regularizer) {
        let _ = regularizer;
    }
}

/// What a mutable walk ([`Module::walk_mut`]) calls back.
pub trait VisitMut {
    /// Entering the child named `segment`; `false` skips it (no [`leave`](VisitMut::leave)).
    fn enter(&mut self, segment: Segment<'_>) -> bool {
        let _ = segment;
        true
    }

    /// Leaving the child last entered.
    fn leave(&mut self) {}

    /// A leaf at the current position.
    fn leaf(&mut self, leaf: LeafMut<'_>);
}

impl<'a> dyn Visit<'a> + '_ {
    /// Walks `child` under the name `segment` (enter, walk, leave): what every container
    /// and derived struct calls per child.
    #[inline]
    pub fn child<M: Module + ?Sized>(&mut self, segment: Segment<'_>, child: &'a M) {
        if self.enter(segment) {
            child.walk(self);
            self.leave();
        }
    }
}

impl dyn VisitMut + '_ {
    /// Walks `child` mutably under the name `segment` (enter, walk, leave).
    #[inline]
    pub fn child<M: Module + ?Sized>(&mut self, segment: Segment<'_>, child: &mut M) {
        if self.enter(segment) {
            child.walk_mut(self);
            self.leave();
        }
    }
}

/// Autoref specialization: `(&RegularizerProbe(x)).regularizer()` is `Some(x)` when `x`'s
/// type implements [`Regularizer`] and `None` otherwise, decided at compile time.
/// `#[derive(Module)]` emits it, so that `impl Regularizer for MyLayer` alone makes the
/// penalty collected (no marker to forget).
///
/// For a generic struct the choice is made in the generic impl: it finds the impl when its
/// bounds follow from the `Module` impl's where-clause (the inferred `Field: Module`, or
/// `#[module(bound = "...")]`). Mark such a struct `#[regularizer]` to make a missing bound a
/// compile error instead of a dropped penalty.
#[doc(hidden)]
pub struct RegularizerProbe<'p, T: ?Sized>(pub &'p T);

#[doc(hidden)]
pub trait IsRegularizer<'p> {
    fn regularizer(&self) -> Option<&'p dyn Regularizer>;
}

impl<'p, T: Regularizer + 'p> IsRegularizer<'p> for RegularizerProbe<'p, T> {
    #[inline]
    fn regularizer(&self) -> Option<&'p dyn Regularizer> {
        Some(self.0)
    }
}

#[doc(hidden)]
pub trait NotRegularizer<'p> {
    fn regularizer(&self) -> Option<&'p dyn Regularizer>;
}

impl<'p, T: ?Sized> NotRegularizer<'p> for &RegularizerProbe<'p, T> {
    #[inline]
    fn regularizer(&self) -> Option<&'p dyn Regularizer> {
        None
    }
}

/// `#[regularizer]` on a struct: the derive checks `Self: Regularizer` through this, so a
/// marked struct without the impl (or without the bounds it needs) does not compile.
#[doc(hidden)]
#[inline]
pub fn required_regularizer<R: Regularizer>(r: &R) -> &dyn Regularizer {
    r
}
