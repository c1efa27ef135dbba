//! `Module` for typed wrappers: the wrapper adds no path segment, so a typed layer has the
//! same state paths (and checkpoint keys) as the dynamic layer it wraps.

/// Implements `Module` for `$ty` by forwarding to its `inner` field.
macro_rules! transparent_module {
    ($ty:ident) => {
        transparent_module!($ty<>);
    };
    ($ty:ident < $(const $c:ident : usize),* >) => {
        impl<$(const $c: usize),*> $crate::Module for $ty<$($c),*> {
            #[inline]
            fn walk<'a>(&'a self, v: &mut dyn $crate::walk::Visit<'a>) {
                self.inner.walk(v);
            }

            #[inline]
            fn walk_mut(&mut self, v: &mut dyn $crate::walk::VisitMut) {
                self.inner.walk_mut(v);
            }
        }
    };
}

pub(crate) use transparent_module;
