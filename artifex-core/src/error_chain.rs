//! [`ErrorChain`]: an error and its `source()` chain as a person reads it, for the `main` of
//! a command-line program.

use std::error::Error as StdError;
use std::fmt;

/// Displays an error followed by one `caused by:` line per distinct cause in its
/// [`source`](StdError::source) chain.
///
/// Many errors print their cause inside their own message (`checkpoint a.st: No such file or
/// directory (os error 2)`) *and* return it from `source()`. To say everything once, a
/// message that ends with its cause's text is cut before it, and a cause whose text was
/// already printed is left out:
///
/// ```
/// use artifex_core::{CheckpointError, Error, ErrorChain};
///
/// let err = Error::from(CheckpointError::Io {
///     path: "out/x.safetensors".into(),
///     source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
/// });
/// assert_eq!(
///     ErrorChain::new(&err).to_string(),
///     "checkpoint out/x.safetensors\n  caused by: no such file"
/// );
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a> {
    error: &'a (dyn StdError + 'static),
}

impl<'a> ErrorChain<'a> {
    /// Wraps `error` for display.
    pub fn new(error: &'a (dyn StdError + 'static)) -> Self {
        Self { error }
    }

    /// The lines to print: the error's own message first, then each cause, without repeats.
    pub fn messages(&self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        let mut current = Some(self.error);
        while let Some(err) = current {
            let mut text = err.to_string();
            if let Some(cause) = err.source() {
                let cause_text = cause.to_string();
                if !cause_text.is_empty() && text.len() > cause_text.len() {
                    if let Some(head) = text.strip_suffix(cause_text.as_str()) {
                        text = head.trim_end_matches([':', ' ', '\n']).to_string();
                    }
                }
            }
            let repeated = lines.iter().any(|l| l.contains(text.as_str()));
            if !text.is_empty() && !repeated {
                lines.push(text);
            }
            current = err.source();
        }
        lines
    }
}

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.messages().iter().enumerate() {
            if i > 0 {
                f.write_str("\n  caused by: ")?;
            }
            f.write_str(line)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.messages()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("loading {0}")]
        Plain(String, #[source] Middle),
        #[error("wrapped: {0}")]
        Repeats(#[source] Middle),
        #[error("{0}")]
        Same(#[source] Middle),
        #[error("inner text (the middle failed) was seen")]
        Inside(#[source] Middle),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the middle failed")]
    struct Middle(#[source] std::io::Error);

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "gone")
    }

    fn lines(e: &Outer) -> Vec<String> {
        ErrorChain::new(e).messages()
    }

    #[test]
    fn each_cause_is_printed_once() {
        let e = Outer::Plain("a.st".into(), Middle(io()));
        assert_eq!(lines(&e), ["loading a.st", "the middle failed", "gone"]);
        assert_eq!(
            ErrorChain::new(&e).to_string(),
            "loading a.st\n  caused by: the middle failed\n  caused by: gone"
        );
        // `{0}` + `#[source]`: the message is cut before the cause's text.
        let e = Outer::Repeats(Middle(io()));
        assert_eq!(lines(&e), ["wrapped", "the middle failed", "gone"]);
        // A message that is only its cause's text is printed once.
        let e = Outer::Same(Middle(io()));
        assert_eq!(lines(&e), ["the middle failed", "gone"]);
        // A cause already quoted inside the message is not printed again.
        let e = Outer::Inside(Middle(io()));
        assert_eq!(
            lines(&e),
            ["inner text (the middle failed) was seen", "gone"]
        );
    }
}
