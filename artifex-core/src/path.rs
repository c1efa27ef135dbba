//! State paths (`encoder.0.kernel`) and the module path a layer reports in its errors.

use std::fmt;
use std::sync::Arc;

/// A `.`-joined path into the state tree, built segment by segment while visiting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StatePath {
    segments: Vec<String>,
}

impl StatePath {
    /// The empty path: the root module.
    pub fn root() -> Self {
        Self::default()
    }

    /// Appends one segment (a field name or an index).
    pub fn push(&mut self, segment: impl Into<String>) {
        self.segments.push(segment.into());
    }

    /// Removes the last segment.
    pub fn pop(&mut self) {
        self.segments.pop();
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// True for the root path.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The path joined with `.`, as NNX flattens state (`encoder.0.kernel`).
    pub fn joined(&self) -> String {
        self.segments.join(".")
    }

    /// The path without its last segment, joined with `.`.
    pub fn parent_joined(&self) -> String {
        let n = self.segments.len().saturating_sub(1);
        self.segments[..n].join(".")
    }
}

impl fmt::Display for StatePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined())
    }
}

/// Where a layer sits in its model, so that its errors can name it (`encoder.2`).
///
/// A field of this type is a leaf of the tree walk; [`Module::bind_paths`](crate::Module::bind_paths)
/// fills it in with the path of the struct that holds it. `#[module]` constructors, `train()`,
/// `eval()`, checkpoint loads and `Configurable::load` bind paths from the root, so a
/// submodule moved into another model names its old path until one of those runs on the new
/// model. It is stored rather than computed by the walk because a forward call is not a walk:
/// it has no other way to learn where its layer sits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModulePath(Arc<str>);

impl ModulePath {
    /// The bound path (empty for a root module or one not yet bound).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `path (Type)`, or `Type` for the root: how errors name a module.
    pub fn describe(&self, type_name: &str) -> String {
        if self.0.is_empty() {
            type_name.to_string()
        } else {
            format!("{} ({type_name})", self.0)
        }
    }

    pub(crate) fn set(&mut self, path: String) {
        self.0 = Arc::from(path);
    }
}

impl fmt::Display for ModulePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ModulePath {
    /// Checks that `x` has rank >= `min_rank` and last dimension `features`; the error names
    /// this module (`encoder.2 (Linear): expected input of shape [*, 256], got [32, 128]`).
    pub fn expect_features(
        &self,
        type_name: &str,
        x: &candle_core::Tensor,
        min_rank: usize,
        features: usize,
    ) -> crate::Result<()> {
        let dims = x.dims();
        if dims.len() < min_rank || dims.last() != Some(&features) {
            let lead = "*, ".repeat(min_rank.saturating_sub(1).max(1));
            return Err(crate::Error::Shape {
                module: self.describe(type_name),
                expected: format!("[{lead}{features}]"),
                got: dims.to_vec(),
            });
        }
        Ok(())
    }
}

impl ModulePath {
    /// An [`Error::Shape`](crate::Error::Shape) naming this module.
    pub fn shape_error(
        &self,
        type_name: &str,
        expected: impl Into<String>,
        got: &[usize],
    ) -> crate::Error {
        crate::Error::Shape {
            module: self.describe(type_name),
            expected: expected.into(),
            got: got.to_vec(),
        }
    }

    /// An [`Error::Input`](crate::Error::Input) naming this module.
    pub fn input_error(&self, type_name: &str, message: impl Into<String>) -> crate::Error {
        crate::Error::Input {
            module: self.describe(type_name),
            message: message.into(),
        }
    }

    /// Checks a channels-last input `(*batch, spatial..., features)`: rank at least
    /// `spatial.len() + 1`, last dimension `features`, no empty spatial axis. The error names
    /// the axes: `down.0 (Conv): expected input of shape [*, H, W, 3], got [2, 8, 8, 4]`.
    pub fn expect_channels_last(
        &self,
        type_name: &str,
        x: &candle_core::Tensor,
        spatial: &[&str],
        features: usize,
    ) -> crate::Result<()> {
        let dims = x.dims();
        let n = spatial.len();
        let ok = dims.len() > n
            && dims.last() == Some(&features)
            && dims[dims.len() - 1 - n..dims.len() - 1]
                .iter()
                .all(|&d| d > 0);
        if !ok {
            let mut expected = vec!["*".to_string()];
            expected.extend(spatial.iter().map(|s| s.to_string()));
            expected.push(features.to_string());
            return Err(self.shape_error(type_name, format!("[{}]", expected.join(", ")), dims));
        }
        Ok(())
    }
}
