//! Device selection by name, for command-line flags (`--device cpu|cuda|cuda:1|metal`).

use candle_core::Device;

use crate::{Error, Result};

/// Parses `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N`; a device this build was not
/// compiled for (no `cuda` / `metal` feature) or that is absent is a clear error.
pub fn device_from_name(name: &str) -> Result<Device> {
    let (kind, ordinal) = match name.split_once(':') {
        Some((k, n)) => {
            let n = n
                .parse::<usize>()
                .map_err(|_| Error::config("device", format!("bad device ordinal in `{name}`")))?;
            (k, n)
        }
        None => (name, 0),
    };
    let unavailable = |e: candle_core::Error| {
        Error::config(
            "device",
            format!("`{name}` is not available: {e} (build with `--features {kind}` on a machine that has one)"),
        )
    };
    match kind {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(ordinal).map_err(unavailable),
        "metal" => Device::new_metal(ordinal).map_err(unavailable),
        other => Err(Error::config(
            "device",
            format!("unknown device `{other}`; use cpu, cuda, cuda:N, metal or metal:N"),
        )),
    }
}
