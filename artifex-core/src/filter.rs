//! [`Filter`]: which state variables an operation applies to, by kind and by path (NNX's
//! `nnx.state(model, nnx.Param)`, `nnx.Optimizer(model, tx, wrt=...)`, path filters).

use std::ops;

use crate::StateKind;

/// A predicate over the state variables of a model: by [`StateKind`], by path pattern, and
/// combinations of them.
///
/// Path patterns are matched against NNX's `.`-joined paths (`encoder.0.kernel`). `*`
/// matches any run of characters, dots included; every other character matches itself. A
/// pattern matches a variable when it matches its whole path or a whole leading part of it
/// that ends at a `.`: `encoder` and `encoder.*` both select everything below `encoder`, and
/// `*.kernel` every variable named `kernel`.
///
/// ```
/// use artifex_core::{Filter, StateKind};
///
/// let head = Filter::path("head");
/// assert!(head.matches("head.kernel", StateKind::Param));
/// assert!(!head.matches("header.kernel", StateKind::Param)); // whole segments only
///
/// let kernels = Filter::path("*.kernel") & Filter::kind(StateKind::Param);
/// assert!(kernels.matches("blocks.0.linear.kernel", StateKind::Param));
/// assert!(!kernels.matches("blocks.0.linear.bias", StateKind::Param));
///
/// let not_stats = !Filter::kind(StateKind::BatchStat);
/// assert!(not_stats.matches("bn.scale", StateKind::Param));
/// assert!(!not_stats.matches("bn.mean", StateKind::BatchStat));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Every variable.
    Everything,
    /// No variable.
    Nothing,
    /// Variables of one kind.
    Kind(StateKind),
    /// Variables whose path matches a pattern (see the type's docs).
    Path(String),
    /// Variables every filter selects.
    All(Vec<Filter>),
    /// Variables some filter selects.
    Any(Vec<Filter>),
    /// Variables the filter does not select.
    Not(Box<Filter>),
}

impl Filter {
    /// Variables of kind `kind` (NNX `nnx.Param`, `nnx.BatchStat`).
    pub fn kind(kind: StateKind) -> Self {
        Filter::Kind(kind)
    }

    /// The trainable parameters' kind: `Filter::kind(StateKind::Param)`.
    pub fn params() -> Self {
        Filter::Kind(StateKind::Param)
    }

    /// The state of rng streams (keys and counters, NNX `nnx.RngState`).
    pub fn rng_state() -> Self {
        Filter::Any(vec![
            Filter::Kind(StateKind::RngKey),
            Filter::Kind(StateKind::RngCount),
        ])
    }

    /// Variables whose path matches `pattern` (`encoder`, `encoder.*`, `*.kernel`).
    pub fn path(pattern: impl Into<String>) -> Self {
        Filter::Path(pattern.into())
    }

    /// Variables every one of `filters` selects (every variable when there is none).
    pub fn all(filters: impl IntoIterator<Item = Filter>) -> Self {
        Filter::All(filters.into_iter().collect())
    }

    /// Variables some of `filters` selects (none when there is none).
    pub fn any(filters: impl IntoIterator<Item = Filter>) -> Self {
        Filter::Any(filters.into_iter().collect())
    }

    /// True when the variable at `path` (`.`-joined) of kind `kind` is selected.
    pub fn matches(&self, path: &str, kind: StateKind) -> bool {
        match self {
            Filter::Everything => true,
            Filter::Nothing => false,
            Filter::Kind(k) => *k == kind,
            Filter::Path(pattern) => path_matches(pattern, path),
            Filter::All(fs) => fs.iter().all(|f| f.matches(path, kind)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches(path, kind)),
            Filter::Not(f) => !f.matches(path, kind),
        }
    }
}

impl From<StateKind> for Filter {
    fn from(kind: StateKind) -> Self {
        Filter::Kind(kind)
    }
}

impl ops::BitAnd for Filter {
    type Output = Filter;
    /// Both: `Filter::path("head") & Filter::params()`.
    fn bitand(self, rhs: Filter) -> Filter {
        Filter::All(vec![self, rhs])
    }
}

impl ops::BitOr for Filter {
    type Output = Filter;
    /// Either: `Filter::path("encoder") | Filter::path("decoder")`.
    fn bitor(self, rhs: Filter) -> Filter {
        Filter::Any(vec![self, rhs])
    }
}

impl ops::Not for Filter {
    type Output = Filter;
    /// The complement: `!Filter::path("encoder")`.
    fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }
}

/// `pattern` matches `path` whole, or a leading part of it that ends before a `.`.
fn path_matches(pattern: &str, path: &str) -> bool {
    let p = pattern.as_bytes();
    glob(p, path.as_bytes())
        || path
            .match_indices('.')
            .any(|(i, _)| glob(p, &path.as_bytes()[..i]))
}

/// Glob with `*` only (any run of bytes), iterative with one backtrack point.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments_with_stars_crossing_dots() {
        assert!(path_matches("encoder.*", "encoder.0.kernel"));
        assert!(path_matches("encoder", "encoder.0.kernel"));
        assert!(!path_matches("encoder", "encoders.0.kernel"));
        assert!(path_matches("*.kernel", "a.b.kernel"));
        assert!(!path_matches("*.kernel", "a.b.bias"));
        assert!(path_matches("blocks.*.norm", "blocks.3.norm.scale"));
        assert!(!path_matches("blocks.*.norm", "blocks.3.linear.kernel"));
        assert!(path_matches("*", "anything.at.all"));
        assert!(!path_matches("", "kernel"));
        assert!(path_matches("kernel", "kernel"));
    }

    #[test]
    fn combinators_follow_boolean_logic() {
        let f = (Filter::path("head") | Filter::path("*.bias")) & !Filter::kind(StateKind::RngKey);
        assert!(f.matches("head.kernel", StateKind::Param));
        assert!(f.matches("encoder.bias", StateKind::Param));
        assert!(!f.matches("encoder.kernel", StateKind::Param));
        assert!(!f.matches("head.rngs.key", StateKind::RngKey));
        assert!(Filter::all([]).matches("x", StateKind::Param));
        assert!(!Filter::any([]).matches("x", StateKind::Param));
        assert!(Filter::rng_state().matches("d.rngs.count", StateKind::RngCount));
    }
}
