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
//! artifex --help, artifex inspect --help
//! artifex inspect --config FILE.json --type CustomVAE
//!                                       the parameter tree and memory of a model from its
//!                                       config, shapes only (nothing allocated)
//! ```
//!
//! Exit status: 0 on success (for `--diff`: the strict load would succeed), 1 when the diff
//! finds problems, 2 for usage errors (with the usage) and unreadable files (with the error
//! and its causes, see [`ErrorChain`]).

#![warn(missing_docs)]

mod abstract_tree;
mod args;
mod inspect;
mod tree;

use std::ffi::OsString;
use std::io::Write;

use artifex_core::ErrorChain;
use clap::error::{ContextKind, ContextValue};
use clap::{CommandFactory, Parser};

pub use abstract_tree::{abstract_tree, print_abstract_tree};
pub use args::{Cli, Command, InspectArgs};
pub use inspect::{diff, inspect, kind_name, print_diff, print_inspection};

/// Exit status of a usage error or an unreadable file.
pub const EXIT_ERROR: i32 = 2;

/// Parses `args` (without the program name) as the `artifex` command line.
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = std::iter::once(OsString::from("artifex"))
        .chain(args.into_iter().map(Into::into))
        .collect();
    Cli::try_parse_from(&args).map_err(|e| with_usage(e, args.get(1)))
}

/// Adds the usage (of the subcommand named by `first`, if any) to a usage error that lacks
/// it: clap shows it for unknown or missing arguments but not for a bad value.
fn with_usage(mut e: clap::Error, first: Option<&OsString>) -> clap::Error {
    if !e.use_stderr() || e.get(ContextKind::Usage).is_some() {
        return e;
    }
    let mut cli = Cli::command();
    cli.build();
    let sub = first
        .and_then(|name| name.to_str())
        .and_then(|name| cli.find_subcommand_mut(name));
    let usage = match sub {
        Some(sub) => sub.render_usage(),
        None => cli.render_usage(),
    };
    e.insert(ContextKind::Usage, ContextValue::StyledStr(usage));
    e
}

/// Runs the command line `args` (without the program name), printing to `out` and errors to
/// `err`; returns the exit status.
pub fn run<I, T>(args: I, out: &mut impl Write, err: &mut impl Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match parse(args) {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are "errors" that go to stdout with status 0.
            let code = e.exit_code();
            let text = e.render().to_string();
            let _ = if code == 0 {
                write!(out, "{text}")
            } else {
                write!(err, "{text}")
            };
            return code;
        }
    };
    match execute(&cli.command, out) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "artifex: error: {}", ErrorChain::new(&*e));
            EXIT_ERROR
        }
    }
}

type AnyError = Box<dyn std::error::Error + 'static>;

fn execute(command: &Command, out: &mut impl Write) -> Result<i32, AnyError> {
    match command {
        Command::Inspect(a) => match (&a.file, &a.config, &a.type_name) {
            (_, Some(config), Some(type_name)) => {
                let state = abstract_tree(config, type_name)?;
                print_abstract_tree(type_name, config, &state, out)?;
                Ok(0)
            }
            (Some(file), _, _) => match &a.diff {
                None => {
                    print_inspection(&inspect(file)?, out)?;
                    Ok(0)
                }
                Some(other) => {
                    let report = diff(file, other, &a.load_options())?;
                    print_diff(file, other, &report, out)?;
                    Ok(i32::from(!report.is_clean()))
                }
            },
            _ => Err("inspect needs a FILE, or --config FILE.json with --type MODEL".into()),
        },
    }
}
