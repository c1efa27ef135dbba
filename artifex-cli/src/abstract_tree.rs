//! `inspect --config FILE.json --type NAME`: the parameter tree and memory of a model
//! described by its config, built shape-only (nothing allocated), so models too large for
//! this machine can be inspected.

use std::io::Write;
use std::path::Path;

use artifex_core::AbstractState;

use crate::inspect::{human, kind_name};
use crate::tree::{natural_cmp, print_rows, Row};

/// The abstract state of model `type_name` (one of `artifex_models::MODEL_TYPES`) with the
/// JSON config in `config` (a checkpoint's `config` metadata, i.e. the serialized builder).
pub fn abstract_tree(config: &Path, type_name: &str) -> Result<AbstractState, String> {
    let json =
        std::fs::read_to_string(config).map_err(|e| format!("config {}: {e}", config.display()))?;
    artifex_models::abstract_state_from_json(type_name, &json).map_err(|e| e.to_string())
}

/// Prints the tree of `state` with kind, shape, dtype and bytes, and the totals.
pub fn print_abstract_tree(
    type_name: &str,
    config: &Path,
    state: &AbstractState,
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{type_name} from {} (shapes only: nothing allocated)",
        config.display()
    )?;
    let mut vars: Vec<_> = state.vars.iter().collect();
    vars.sort_by(|a, b| natural_cmp(&a.path, &b.path));
    let rows: Vec<Row<'_>> = vars
        .iter()
        .map(|v| Row {
            path: &v.path,
            kind: v.kind,
            shape: &v.shape,
            dtype: v.dtype.as_str().to_string(),
            bytes: v.bytes(),
        })
        .collect();
    let totals = print_rows(&rows, out)?;
    writeln!(
        out,
        "totals: {} variables, {} params, {} ({} bytes) of state",
        state.vars.len(),
        state.num_params(),
        human(state.bytes()),
        state.bytes()
    )?;
    for (kind, (n, values, bytes)) in totals {
        writeln!(
            out,
            "  {:<10}  {n} variables, {values} values, {}",
            kind_name(kind),
            human(bytes)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_60_gb_vae_is_described_without_building_it() {
        let dir = std::env::temp_dir().join(format!("artifex-abstract-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("vae.json");
        std::fs::write(
            &config,
            r#"{"input_shape":[28,28,1],"latent_dim":20,"encoder_layers":[65536,65536],
                "decoder_layers":[65536,65536],"use_batch_norm":false}"#,
        )
        .unwrap();
        let state = abstract_tree(&config, "CustomVAE").unwrap();
        let mut out = Vec::new();
        print_abstract_tree("CustomVAE", &config, &state, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("encoder"), "{text}");
        assert!(text.contains("[65536, 65536]"), "{text}");
        let expected = 4 * (784 * 65536 + 65536 + 65536 * 65536 + 65536) // encoder
            + 2 * 4 * (65536 * 20 + 20) // mean, logvar
            + 4 * (20 * 65536 + 65536 + 65536 * 65536 + 65536) // decoder
            + 4 * (65536 * 784 + 784) // output
            + 40; // the sample stream
        assert_eq!(state.bytes(), expected);
        assert!(text.contains(&format!("({expected} bytes)")), "{text}");
        let err = abstract_tree(&config, "NoSuchModel").unwrap_err();
        assert!(err.contains("known types: CustomVAE"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
