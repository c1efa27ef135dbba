//! `Module` for containers: items are named by index (`layers.0`) or key, as NNX does;
//! `Option` and `Box` are transparent.

use std::collections::BTreeMap;

use crate::{Module, StatePath, StateVisitor};

fn visit_indexed<'a, M: Module + 'a>(
    items: impl Iterator<Item = &'a M>,
    path: &mut StatePath,
    visitor: &mut StateVisitor<'_, 'a>,
) {
    for (i, item) in items.enumerate() {
        path.push(i.to_string());
        item.visit_state(path, visitor);
        path.pop();
    }
}

fn bind_indexed<'a, M: Module + 'a>(items: impl Iterator<Item = &'a mut M>, path: &mut StatePath) {
    for (i, item) in items.enumerate() {
        path.push(i.to_string());
        item.bind_paths(path);
        path.pop();
    }
}

impl<M: Module> Module for Vec<M> {
    fn visit_regularizers<'a>(&'a self, f: &mut dyn FnMut(&'a dyn crate::Regularizer)) {
        self.iter().for_each(|m| m.visit_regularizers(f));
    }
    fn visit_state<'a>(&'a self, path: &mut StatePath, visitor: &mut StateVisitor<'_, 'a>) {
        visit_indexed(self.iter(), path, visitor);
    }
    fn set_training(&mut self, training: bool) {
        self.iter_mut().for_each(|m| m.set_training(training));
    }
    fn bind_paths(&mut self, path: &mut StatePath) {
        bind_indexed(self.iter_mut(), path);
    }
}

impl<M: Module, const N: usize> Module for [M; N] {
    fn visit_regularizers<'a>(&'a self, f: &mut dyn FnMut(&'a dyn crate::Regularizer)) {
        self.iter().for_each(|m| m.visit_regularizers(f));
    }
    fn visit_state<'a>(&'a self, path: &mut StatePath, visitor: &mut StateVisitor<'_, 'a>) {
        visit_indexed(self.iter(), path, visitor);
    }
    fn set_training(&mut self, training: bool) {
        self.iter_mut().for_each(|m| m.set_training(training));
    }
    fn bind_paths(&mut self, path: &mut StatePath) {
        bind_indexed(self.iter_mut(), path);
    }
}

impl<M: Module> Module for Option<M> {
    fn visit_regularizers<'a>(&'a self, f: &mut dyn FnMut(&'a dyn crate::Regularizer)) {
        if let Some(m) = self {
            m.visit_regularizers(f);
        }
    }
    fn visit_state<'a>(&'a self, path: &mut StatePath, visitor: &mut StateVisitor<'_, 'a>) {
        if let Some(m) = self {
            m.visit_state(path, visitor);
        }
    }
    fn set_training(&mut self, training: bool) {
        if let Some(m) = self {
            m.set_training(training);
        }
    }
    fn bind_paths(&mut self, path: &mut StatePath) {
        if let Some(m) = self {
            m.bind_paths(path);
        }
    }
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn visit_regularizers<'a>(&'a self, f: &mut dyn FnMut(&'a dyn crate::Regularizer)) {
        (**self).visit_regularizers(f);
    }
    fn visit_state<'a>(&'a self, path: &mut StatePath, visitor: &mut StateVisitor<'_, 'a>) {
        (**self).visit_state(path, visitor);
    }
    fn set_training(&mut self, training: bool) {
        (**self).set_training(training);
    }
    fn bind_paths(&mut self, path: &mut StatePath) {
        (**self).bind_paths(path);
    }
}

impl<M: Module> Module for BTreeMap<String, M> {
    fn visit_regularizers<'a>(&'a self, f: &mut dyn FnMut(&'a dyn crate::Regularizer)) {
        self.values().for_each(|m| m.visit_regularizers(f));
    }
    fn visit_state<'a>(&'a self, path: &mut StatePath, visitor: &mut StateVisitor<'_, 'a>) {
        for (key, item) in self {
            path.push(key.as_str());
            item.visit_state(path, visitor);
            path.pop();
        }
    }
    fn set_training(&mut self, training: bool) {
        self.values_mut().for_each(|m| m.set_training(training));
    }
    fn bind_paths(&mut self, path: &mut StatePath) {
        for (key, item) in self.iter_mut() {
            path.push(key.as_str());
            item.bind_paths(path);
            path.pop();
        }
    }
}

macro_rules! tuple_module {
    ($($name:ident $idx:tt),+) => {
        /// Heterogeneous lists (the seed's `[Conv, BatchNorm]` blocks): items named `0`, `1`, ...
        impl<$($name: Module),+> Module for ($($name,)+) {
            fn visit_state<'a>(&'a self, path: &mut StatePath, visitor: &mut StateVisitor<'_, 'a>) {
                $(
                    path.push(stringify!($idx));
                    self.$idx.visit_state(path, visitor);
                    path.pop();
                )+
            }
            fn set_training(&mut self, training: bool) {
                $( self.$idx.set_training(training); )+
            }
            fn visit_regularizers<'a>(&'a self, f: &mut dyn FnMut(&'a dyn crate::Regularizer)) {
                $( self.$idx.visit_regularizers(f); )+
            }
            fn bind_paths(&mut self, path: &mut StatePath) {
                $(
                    path.push(stringify!($idx));
                    self.$idx.bind_paths(path);
                    path.pop();
                )+
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
