//! [`Seq`]: typed layers applied in order; the chain only type-checks if each layer accepts
//! the previous one's output.

use super::forward::{Build, Forward};
use super::shape::Shape;
use super::tensor::Tensor;
use crate::walk::{Segment, Visit, VisitMut};
use crate::{Module, Result, Rngs};

/// A tuple of typed layers applied in order (1 to 12 layers), named `0`, `1`, ... in the state
/// tree as NNX names list items, so `Seq<(Linear<784, 512>, BatchNorm<512>)>` has the paths of
/// a dynamic `[Linear, BatchNorm]` list (`0.kernel`, `1.mean`, ...).
///
/// `Seq<(Linear<784, 512>, Linear<256, 10>)>` cannot be called: the error reads
/// `cannot feed [*, 512] into a layer expecting [*, 256]`.
///
/// ```
/// use artifex_core::typed::{Build, Forward, Linear, Relu, Rows, Seq, Tensor};
/// use artifex_core::{candle_core::{self, DType, Device}, Rngs};
///
/// let mlp = Seq::<(Linear<784, 512>, Relu, Linear<512, 10>)>::build(&mut Rngs::new(0))?;
/// let x = Tensor::<Rows<784>>::new(candle_core::Tensor::ones((8, 784), DType::F32, &Device::Cpu)?)?;
/// let logits: Tensor<Rows<10>> = mlp.forward(&x)?;
/// assert_eq!(logits.dims(), &[8, 10]);
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Seq<L> {
    /// The layers, as a tuple.
    pub layers: L,
}

impl<L> Seq<L> {
    /// Chains the layers of a tuple.
    #[inline]
    pub fn new(layers: L) -> Self {
        Self { layers }
    }
}

macro_rules! seq_forward {
    ($last:ident; $first:ident $fi:tt $(, $L:ident $i:tt $P:ident)*) => {
        impl<S: Shape, $first: Forward<S> $(, $L: Forward<$P::Out>)*> Forward<S>
            for Seq<($first, $($L,)*)>
        {
            type Out = $last::Out;

            #[inline]
            fn forward_t(&self, x: &Tensor<S>, train: Option<bool>) -> Result<Tensor<Self::Out>> {
                let h = self.layers.$fi.forward_t(x, train)?;
                $(let h = self.layers.$i.forward_t(&h, train)?;)*
                Ok(h)
            }
        }
    };
}

seq_forward!(A; A 0);
seq_forward!(B; A 0, B 1 A);
seq_forward!(C; A 0, B 1 A, C 2 B);
seq_forward!(D; A 0, B 1 A, C 2 B, D 3 C);
seq_forward!(E; A 0, B 1 A, C 2 B, D 3 C, E 4 D);
seq_forward!(F; A 0, B 1 A, C 2 B, D 3 C, E 4 D, F 5 E);
seq_forward!(G; A 0, B 1 A, C 2 B, D 3 C, E 4 D, F 5 E, G 6 F);
seq_forward!(H; A 0, B 1 A, C 2 B, D 3 C, E 4 D, F 5 E, G 6 F, H 7 G);
seq_forward!(I; A 0, B 1 A, C 2 B, D 3 C, E 4 D, F 5 E, G 6 F, H 7 G, I 8 H);
seq_forward!(J; A 0, B 1 A, C 2 B, D 3 C, E 4 D, F 5 E, G 6 F, H 7 G, I 8 H, J 9 I);
seq_forward!(K; A 0, B 1 A, C 2 B, D 3 C, E 4 D, F 5 E, G 6 F, H 7 G, I 8 H, J 9 I, K 10 J);
seq_forward!(L; A 0, B 1 A, C 2 B, D 3 C, E 4 D, F 5 E, G 6 F, H 7 G, I 8 H, J 9 I, K 10 J, L 11 K);

macro_rules! seq_module {
    ($($L:ident $i:tt),+) => {
        impl<$($L: Module),+> Module for Seq<($($L,)+)> {
            fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
                $(v.child(Segment::Index($i), &self.layers.$i);)+
            }

            fn walk_mut(&mut self, v: &mut dyn VisitMut) {
                $(v.child(Segment::Index($i), &mut self.layers.$i);)+
            }
        }

        impl<$($L: Build),+> Build for Seq<($($L,)+)> {
            /// Builds the layers in order (parameters drawn as a dynamic list draws them).
            fn build(rngs: &mut Rngs) -> Result<Self> {
                Ok(Seq::new(($($L::build(rngs)?,)+)))
            }
        }
    };
}

seq_module!(A 0);
seq_module!(A 0, B 1);
seq_module!(A 0, B 1, C 2);
seq_module!(A 0, B 1, C 2, D 3);
seq_module!(A 0, B 1, C 2, D 3, E 4);
seq_module!(A 0, B 1, C 2, D 3, E 4, F 5);
seq_module!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
seq_module!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
seq_module!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
seq_module!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
seq_module!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
seq_module!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
