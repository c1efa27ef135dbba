//! The Python reference scripts of the benchmarks (`python/bench_flax.py`,
//! `python/gemm_floor.py`), run as child processes: their figures are read from one result
//! line, and a missing `python3`, jax or numpy is an `Err` with the reason (the benchmarks
//! then print a note instead of the figure; nothing else needs Python).

use std::process::Command;

/// A script's result line (the first starting with `prefix`) and its first line starting
/// with `header` (the versions it reports).
pub struct ScriptResult {
    /// The result line.
    pub line: String,
    /// The header line, empty when there is none.
    pub header: String,
}

impl ScriptResult {
    /// The number after `key=` on the result line.
    pub fn value(&self, key: &str) -> Result<f64, String> {
        let key = format!("{key}=");
        self.line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key.as_str())?.parse::<f64>().ok())
            .ok_or(format!("no {key} in {:?}", self.line))
    }
}

/// Runs `python3 python/<script> <args>` from this package's directory and returns its line
/// starting with `prefix`, or why not.
pub fn run(
    script: &str,
    args: &[String],
    prefix: &str,
    header: &str,
) -> Result<ScriptResult, String> {
    let path = format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .map_err(|e| format!("python3 not runnable: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no output");
        return Err(format!("{script} failed: {last}"));
    }
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .ok_or(format!("{script} printed no {prefix:?} line"))?
        .to_string();
    let header = text
        .lines()
        .find(|l| l.starts_with(header))
        .unwrap_or("")
        .to_string();
    Ok(ScriptResult { line, header })
}
