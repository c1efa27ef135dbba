//! # artifex-cli
//!
//! The `artifex` command line tool. Its logic lives here, as functions over any `Write`, so
//! tests call it directly:
//!
//! ```text
//! artifex inspect FILE                  metadata, the tree of entries (kind, shape, dtype,
//!                                       bytes) and totals
//! artifex inspect FILE --diff OTHER     what loading FILE into a model with OTHER's entries
//!                                       would report: missing, unexpected (did you mean),
//!                                       shape and dtype mismatches
//!     [--prefix P]                      read FILE's entries under P (as LoadOptions::prefix)
//!     [--convert-dtype]                 float dtype changes are conversions, not mismatches
//!     [--rng-optional]                  absent rng state is fine (as LoadOptions::nnx)
//! artifex inspect --config FILE.json --type CustomVAE
//!                                       the parameter tree and memory of a model from its
//!                                       config, shapes only (nothing allocated)
//! ```
//!
//! Exit status: 0 on success (for `--diff`: the strict load would succeed), 1 when the diff
//! finds problems, 2 for usage errors and unreadable files.

#![warn(missing_docs)]

mod abstract_tree;
mod args;
mod inspect;
mod tree;

use std::io::Write;

pub use abstract_tree::{abstract_tree, print_abstract_tree};
pub use args::{parse, Command, USAGE};
pub use inspect::{diff, inspect, kind_name, print_diff, print_inspection};

/// Runs the command line `args` (without the program name), printing to `out` and errors to
/// `err`; returns the exit status.
pub fn run(args: &[String], out: &mut impl Write, err: &mut impl Write) -> i32 {
    let command = match parse(args) {
        Ok(c) => c,
        Err(message) => {
            let _ = writeln!(err, "artifex: {message}\n\n{USAGE}");
            return 2;
        }
    };
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let result: Result<i32, String> = match &command {
        Command::Help => writeln!(out, "{USAGE}").map(|_| 0).map_err(|e| text(&e)),
        Command::Inspect {
            file, diff: None, ..
        } => inspect(file)
            .map_err(|e| text(&e))
            .and_then(|i| print_inspection(&i, out).map(|_| 0).map_err(|e| text(&e))),
        Command::Inspect {
            file,
            diff: Some(other),
            options,
        } => diff(file, other, options)
            .map_err(|e| text(&e))
            .and_then(|report| {
                print_diff(file, other, &report, out)
                    .map(|_| i32::from(!report.is_clean()))
                    .map_err(|e| text(&e))
            }),
        Command::InspectConfig { config, type_name } => {
            abstract_tree(config, type_name).and_then(|state| {
                print_abstract_tree(type_name, config, &state, out)
                    .map(|_| 0)
                    .map_err(|e| text(&e))
            })
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "artifex: {e}");
            2
        }
    }
}
