//! The shape checks typed layers put on their inputs, with `#[diagnostic::on_unimplemented]`
//! messages that name the disagreeing sizes instead of a page of trait bounds.

use super::dim::{Const, Dim, Dyn};

/// The type the size-equality checks are implemented for (it only appears in error notes).
#[derive(Clone, Copy, Debug)]
pub struct ShapeCheck;

/// Holds exactly when `GOT == WANT`: a feature axis of size `GOT` reaches a layer that reads
/// `WANT` features.
#[diagnostic::on_unimplemented(
    message = "cannot feed [*, {GOT}] into a layer expecting [*, {WANT}]",
    label = "this layer takes {WANT} input features, but the tensor reaching it has {GOT}",
    note = "each layer's input size must equal the previous layer's output size"
)]
pub trait SameFeatures<const GOT: usize, const WANT: usize> {}

impl<const N: usize> SameFeatures<N, N> for ShapeCheck {}

/// Holds exactly when `GOT == WANT`: an image with `GOT` channels reaches a convolution that
/// reads `WANT`.
#[diagnostic::on_unimplemented(
    message = "cannot feed [*, H, W, {GOT}] into a convolution expecting {WANT} input channels",
    label = "this convolution takes {WANT} channels, but the image reaching it has {GOT}",
    note = "each convolution's input channels must equal the previous layer's output channels"
)]
pub trait SameChannels<const GOT: usize, const WANT: usize> {}

impl<const N: usize> SameChannels<N, N> for ShapeCheck {}

/// A last axis a layer with `N` input features accepts: `Const<N>`, or `Dyn` (checked when
/// the tensor arrives).
pub trait Features<const N: usize>: Dim {}

impl<const N: usize> Features<N> for Dyn {}

impl<const GOT: usize, const N: usize> Features<N> for Const<GOT> where
    ShapeCheck: SameFeatures<GOT, N>
{
}

/// A channel axis a convolution with `N` input channels accepts: `Const<N>`, or `Dyn`
/// (checked when the tensor arrives).
pub trait Channels<const N: usize>: Dim {}

impl<const N: usize> Channels<N> for Dyn {}

impl<const GOT: usize, const N: usize> Channels<N> for Const<GOT> where
    ShapeCheck: SameChannels<GOT, N>
{
}
