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
            fn visit_state<'a>(
                &'a self,
                path: &mut $crate::StatePath,
                visitor: &mut $crate::StateVisitor<'_, 'a>,
            ) {
                self.inner.visit_state(path, visitor);
            }

            #[inline]
            fn set_training(&mut self, training: bool) {
                self.inner.set_training(training);
            }

            #[inline]
            fn bind_paths(&mut self, path: &mut $crate::StatePath) {
                self.inner.bind_paths(path);
            }
        }
    };
}

pub(crate) use transparent_module;
