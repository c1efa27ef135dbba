//! `Module` for containers: items are named by index (`layers.0`) or key, as NNX does;
//! `Option` and `Box` are transparent. Each writes one walk per form; every operation
//! (state, train/eval, paths, regularizers, freezing) comes from it.

use std::collections::BTreeMap;

use crate::walk::{Segment, Visit, VisitMut};
use crate::Module;

impl<M: Module> Module for Vec<M> {
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        self.as_slice().walk(v);
    }
    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        self.as_mut_slice().walk_mut(v);
    }
}

impl<M: Module, const N: usize> Module for [M; N] {
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        self.as_slice().walk(v);
    }
    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        self.as_mut_slice().walk_mut(v);
    }
}

impl<M: Module> Module for [M] {
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        for (i, item) in self.iter().enumerate() {
            v.child(Segment::Index(i), item);
        }
    }
    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        for (i, item) in self.iter_mut().enumerate() {
            v.child(Segment::Index(i), item);
        }
    }
}

impl<M: Module> Module for Option<M> {
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        if let Some(m) = self {
            m.walk(v);
        }
    }
    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        if let Some(m) = self {
            m.walk_mut(v);
        }
    }
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        (**self).walk(v);
    }
    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        (**self).walk_mut(v);
    }
}

impl<M: Module> Module for BTreeMap<String, M> {
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        for (key, item) in self {
            v.child(Segment::Key(key), item);
        }
    }
    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        for (key, item) in self.iter_mut() {
            v.child(Segment::Key(key), item);
        }
    }
}

macro_rules! tuple_module {
    ($($name:ident $idx:tt),+) => {
        /// Heterogeneous lists (the seed's `[Conv, BatchNorm]` blocks): items named `0`, `1`, ...
        impl<$($name: Module),+> Module for ($($name,)+) {
            fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
                $( v.child(Segment::Index($idx), &self.$idx); )+
            }
            fn walk_mut(&mut self, v: &mut dyn VisitMut) {
                $( v.child(Segment::Index($idx), &mut self.$idx); )+
            }
        }
    };
}

tuple_module!(A 0);
tuple_module!(A 0, B 1);
tuple_module!(A 0, B 1, C 2);
tuple_module!(A 0, B 1, C 2, D 3);
tuple_module!(A 0, B 1, C 2, D 3, E 4);
tuple_module!(A 0, B 1, C 2, D 3, E 4, F 5);
