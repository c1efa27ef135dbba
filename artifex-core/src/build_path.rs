//! Where the `#[module]` constructor running now sits in the model being built, so that a
//! nested module's `#[check]` error names its path (`blocks.0 (GatedBlock): invalid
//! configuration: ..`) as input errors do.
//!
//! Carried by [`Rngs`](crate::Rngs), which every constructor receives: each generated `build`
//! enters a frame, names the field it is building before each `#[init]` / `#[from_config]`
//! field, and leaves the frame when done. A module built while a field is being built is that
//! field's next child; for a list field (`Vec`, array, tuple) the child's position is its
//! index, which is how `dense_stack`-style helpers number their layers.

/// The stack of constructors being run, outermost first.
#[derive(Clone, Debug, Default)]
pub struct BuildPath {
    frames: Vec<Frame>,
}

#[derive(Clone, Debug)]
struct Frame {
    /// The field being built, and whether its children are numbered.
    field: Option<(&'static str, bool)>,
    /// Modules started so far within that field.
    children: usize,
    /// This frame's position among its siblings.
    index: usize,
}

impl BuildPath {
    /// A constructor starts (called by `#[module]` code).
    pub fn enter(&mut self) {
        let index = match self.frames.last_mut() {
            Some(parent) => {
                parent.children += 1;
                parent.children - 1
            }
            None => 0,
        };
        self.frames.push(Frame {
            field: None,
            children: 0,
            index,
        });
    }

    /// The running constructor starts building `field` (`indexed` for list fields).
    pub fn field(&mut self, field: &'static str, indexed: bool) {
        if let Some(top) = self.frames.last_mut() {
            top.field = Some((field, indexed));
            top.children = 0;
        }
    }

    /// The running constructor is done (whether it succeeded or not).
    pub fn leave(&mut self) {
        self.frames.pop();
    }

    /// `path (Type)` for the running constructor, or `Type` at the root.
    pub fn describe(&self, type_name: &str) -> String {
        let mut segments = Vec::new();
        for pair in self.frames.windows(2) {
            if let Some((field, indexed)) = pair[0].field {
                segments.push(field.to_string());
                if indexed {
                    segments.push(pair[1].index.to_string());
                }
            }
        }
        if segments.is_empty() {
            type_name.to_string()
        } else {
            format!("{} ({type_name})", segments.join("."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BuildPath;

    #[test]
    fn names_fields_and_list_indices() {
        let mut path = BuildPath::default();
        path.enter();
        assert_eq!(path.describe("Model"), "Model");
        path.field("blocks", true);
        path.enter();
        path.leave();
        path.enter();
        path.field("dropout", false);
        path.enter();
        assert_eq!(path.describe("Dropout"), "blocks.1.dropout (Dropout)");
        path.leave();
        path.leave();
        path.field("head", false);
        path.enter();
        assert_eq!(path.describe("Linear"), "head (Linear)");
    }
}
