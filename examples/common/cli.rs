//! What every example's `main` shares: arguments parsed by clap (`--help` prints the usage
//! and exits 0; a bad flag or value prints the error and the usage and exits 2) and failures
//! printed as a person reads them: `error: <message>` and one `caused by: ..` line per cause,
//! then exit status 1 (instead of `main -> Result`'s `Debug` form).

use std::process::ExitCode;

use artifex_core::ErrorChain;
use clap::builder::RangedU64ValueParser;
use clap::error::{ContextKind, ContextValue};
use clap::{CommandFactory, Parser};

/// Parses the process arguments into `A`, runs `body` with them and turns its result into
/// the exit status.
pub fn main_with<A, E>(body: impl FnOnce(A) -> Result<(), E>) -> ExitCode
where
    A: Parser,
    E: std::error::Error + 'static,
{
    let args = A::try_parse().unwrap_or_else(|e| with_usage::<A>(e).exit());
    match body(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", ErrorChain::new(&e));
            ExitCode::FAILURE
        }
    }
}

/// Adds the usage to a usage error that lacks it (clap shows it for unknown or missing
/// arguments but not for a bad value such as `--steps abc`).
pub fn with_usage<A: CommandFactory>(mut e: clap::Error) -> clap::Error {
    if e.use_stderr() && e.get(ContextKind::Usage).is_none() {
        let usage = A::command().render_usage();
        e.insert(ContextKind::Usage, ContextValue::StyledStr(usage));
    }
    e
}

/// A clap value parser for counts that must be at least 1 (steps, batch sizes, blocks).
pub fn at_least_one() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..)
}
