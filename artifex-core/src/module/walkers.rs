//! Every operation on a model's tree, written once as a visitor over [`Module::walk`] /
//! [`Module::walk_mut`]: state listing, train/eval, path binding, regularizer collection,
//! trainable variables, filtering and freezing. The provided methods of [`Module`] call
//! these; containers and derived structs know nothing of them.

use candle_core::Var;

use crate::walk::{Leaf, LeafMut, Segment, Visit, VisitMut};
use crate::{Filter, Module, Param, Regularizer, Result, StatePath, StateRef};

/// Calls `f` with the path (below `root`) and a reference of every state variable of `m`.
pub(crate) fn for_each_state<'a, M: Module + ?Sized>(
    m: &'a M,
    root: &mut StatePath,
    f: impl FnMut(&StatePath, StateRef<'a>),
) {
    struct Lister<'p, F> {
        path: &'p mut StatePath,
        f: F,
    }
    impl<'a, F: FnMut(&StatePath, StateRef<'a>)> Visit<'a> for Lister<'_, F> {
        fn enter(&mut self, segment: Segment<'_>) -> bool {
            self.path.push(segment.to_string());
            true
        }
        fn leave(&mut self) {
            self.path.pop();
        }
        fn leaf(&mut self, leaf: Leaf<'a>) {
            if let Leaf::State(var) = leaf {
                (self.f)(self.path, var);
            }
        }
    }
    m.walk(&mut Lister { path: root, f });
}

/// Switches every [`Mode`](crate::Mode) below `m` (no path is built).
pub(crate) fn set_training<M: Module + ?Sized>(m: &mut M, training: bool) {
    struct Switch(bool);
    impl VisitMut for Switch {
        #[inline]
        fn leaf(&mut self, leaf: LeafMut<'_>) {
            if let LeafMut::Mode(mode) = leaf {
                mode.set(self.0);
            }
        }
    }
    m.walk_mut(&mut Switch(training));
}

/// Tells every [`ModulePath`](crate::ModulePath) below `m` where its struct sits (`root`
/// being `m`'s own path): a `ModulePath` field takes the path of the struct holding it.
pub(crate) fn bind_paths<M: Module + ?Sized>(m: &mut M, root: &mut StatePath) {
    struct Binder<'p>(&'p mut StatePath);
    impl VisitMut for Binder<'_> {
        fn enter(&mut self, segment: Segment<'_>) -> bool {
            self.0.push(segment.to_string());
            true
        }
        fn leave(&mut self) {
            self.0.pop();
        }
        fn leaf(&mut self, leaf: LeafMut<'_>) {
            if let LeafMut::Path(path) = leaf {
                path.set(self.0.parent_joined());
            }
        }
    }
    m.walk_mut(&mut Binder(root));
}

/// Every module below (and including) `m` that implements [`Regularizer`], in walking order.
pub(crate) fn regularizers<M: Module + ?Sized>(m: &M) -> Vec<&dyn Regularizer> {
    struct Collect<'a>(Vec<&'a dyn Regularizer>);
    impl<'a> Visit<'a> for Collect<'a> {
        fn leaf(&mut self, _: Leaf<'a>) {}
        fn regularizer(&mut self, regularizer: &'a dyn Regularizer) {
            self.0.push(regularizer);
        }
    }
    let mut collect = Collect(Vec::new());
    m.walk(&mut collect);
    collect.0
}

/// The candle variables of the parameters that are not frozen: no path is built, nothing is
/// allocated but the returned vector.
pub(crate) fn trainable_vars<M: Module + ?Sized>(m: &M) -> Vec<Var> {
    struct Vars(Vec<Var>);
    impl<'a> Visit<'a> for Vars {
        #[inline]
        fn leaf(&mut self, leaf: Leaf<'a>) {
            if let Leaf::State(StateRef::Param(p)) = leaf {
                if !p.is_frozen() {
                    self.0.push(p.var().clone());
                }
            }
        }
    }
    let mut vars = Vars(Vec::new());
    m.walk(&mut vars);
    vars.0
}

/// The parameters that are not frozen and that `filter` selects, with their paths.
pub(crate) fn trainable_params<M: Module + ?Sized>(m: &M, filter: &Filter) -> Vec<(String, Param)> {
    let mut out = Vec::new();
    for_each_state(m, &mut StatePath::root(), |path, var| {
        if let StateRef::Param(p) = var {
            if !p.is_frozen() {
                let joined = path.joined();
                if filter.matches(&joined, var.kind()) {
                    out.push((joined, p.clone()));
                }
            }
        }
    });
    out
}

/// Freezes (or unfreezes) every parameter `filter` selects; the number of parameters it
/// selected. A filter that selects no parameter is an error naming the model type: a
/// mistyped path would otherwise freeze nothing, silently.
pub(crate) fn set_frozen<M: Module + ?Sized>(
    m: &mut M,
    filter: &Filter,
    frozen: bool,
) -> Result<usize> {
    struct Freezer<'f> {
        path: StatePath,
        filter: &'f Filter,
        frozen: bool,
        selected: usize,
    }
    impl VisitMut for Freezer<'_> {
        fn enter(&mut self, segment: Segment<'_>) -> bool {
            self.path.push(segment.to_string());
            true
        }
        fn leave(&mut self) {
            self.path.pop();
        }
        fn leaf(&mut self, leaf: LeafMut<'_>) {
            if let LeafMut::Param(p) = leaf {
                if self
                    .filter
                    .matches(&self.path.joined(), crate::StateKind::Param)
                {
                    p.set_frozen(self.frozen);
                    self.selected += 1;
                }
            }
        }
    }
    let mut freezer = Freezer {
        path: StatePath::root(),
        filter,
        frozen,
        selected: 0,
    };
    m.walk_mut(&mut freezer);
    if freezer.selected == 0 {
        let verb = if frozen { "freeze" } else { "unfreeze" };
        return Err(crate::Error::Input {
            module: std::any::type_name::<M>().to_string(),
            message: format!("{verb}: the filter {filter:?} selects no parameter"),
        });
    }
    Ok(freezer.selected)
}
