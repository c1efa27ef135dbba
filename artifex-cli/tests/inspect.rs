//! `artifex inspect` and `--diff`, run as library calls (no nested cargo).

use std::path::{Path, PathBuf};

use artifex_core::prelude::*;

#[module]
struct Net {
    #[init(Linear::new(4, 8, rngs)?)]
    enc: Linear,
    #[init(BatchNorm::new(8, rngs)?)]
    bn: BatchNorm,
    #[init(Dropout::new(0.1, rngs)?)]
    drop: Dropout,
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("artifex-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

fn run(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = artifex_cli::run(&args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).expect("utf8"),
        String::from_utf8(err).expect("utf8"),
    )
}

fn net_file(dir: &Path) -> PathBuf {
    let path = dir.join("net.safetensors");
    Net::new(&mut Rngs::new(0))
        .expect("net")
        .save_safetensors(&path)
        .expect("save");
    path
}

fn fixture(name: &str) -> String {
    format!(
        "{}/../tests/fixtures/interop/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn inspect_prints_metadata_tree_kinds_and_totals() {
    let dir = tmp_dir("inspect");
    let path = net_file(&dir);
    let (code, out, err) = run(&["inspect", path.to_str().expect("path")]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "metadata:\n",
        "  format: artifex\n",
        "  format_version: 1\n",
        "\n  bn\n",
        "    mean ",
        "batch stat  [8]",
        "\n  drop\n    rngs\n      count ",
        "rng count   []",
        "rng key     [8]",
        "U32",
        "\n  enc\n    bias ",
        "    kernel ",
        "param       [4, 8]",
        "128 B",
        "totals: 8 entries, 328 B of tensor data",
        "  param       4 entries, 56 values, 224 B",
        "  batch stat  2 entries, 16 values, 64 B",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    assert!(
        out.contains("\nentries:\n"),
        "kinds recorded at save: {out}"
    );
}

#[test]
fn inspect_reads_files_written_by_other_tools() {
    let (code, out, _) = run(&["inspect", &fixture("torch_mlp.safetensors")]);
    assert_eq!(code, 0);
    assert!(out.contains("  format: pt"), "{out}");
    assert!(
        out.contains("entries (the file records no kinds: each is guessed from its name):"),
        "{out}"
    );
    assert!(out.contains("running_mean"), "{out}");
    // Natural order: net.0 < net.1 < net.4; the conv weight is OIHW as torch writes it.
    let (a, b, c) = (
        out.find("\n  net\n    0\n"),
        out.find("\n    1\n"),
        out.find("\n    4\n"),
    );
    assert!(a < b && b < c, "{out}");
    assert!(out.contains("[4, 3, 2, 3]"), "{out}");
    let (code, out, _) = run(&["inspect", &fixture("nnx_vae_state.safetensors")]);
    assert_eq!(code, 0);
    assert!(out.contains("totals: 30 entries"), "{out}");
}

#[test]
fn diff_reports_what_a_load_would_report() {
    let dir = tmp_dir("diff");
    let model = net_file(&dir);
    let (code, out, _) = run(&[
        "inspect",
        model.to_str().expect("path"),
        "--diff",
        model.to_str().expect("path"),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("would load: 8 of 8 model entries")
            && out.contains("a strict load would succeed"),
        "{out}"
    );

    // A file with one key misspelt, one missing, one reshaped and one of another dtype.
    let mut map = candle_core::safetensors::load(&model, &Device::Cpu).expect("load");
    let k = map.remove("enc.kernel").expect("kernel");
    map.insert("enc.kernal".into(), k);
    map.remove("bn.var");
    map.insert(
        "bn.mean".into(),
        Tensor::zeros(9, DType::F32, &Device::Cpu).expect("t"),
    );
    let scale = map["bn.scale"].to_dtype(DType::F16).expect("f16");
    map.insert("bn.scale".into(), scale);
    let file = dir.join("other.safetensors");
    candle_core::safetensors::save(&map, &file).expect("save");
    let args = [
        "inspect",
        file.to_str().expect("p"),
        "--diff",
        model.to_str().expect("p"),
    ];
    let (code, out, _) = run(&args);
    assert_eq!(code, 1, "{out}");
    for want in [
        "missing: enc.kernel",
        "missing: bn.var",
        "unexpected: enc.kernal (did you mean enc.kernel?)",
        "shape mismatch: bn.mean: model [8], file [9]",
        "dtype mismatch: bn.scale: model f32, file F16",
        "a strict load would fail: 5 problems",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    // With conversion, the dtype change is a conversion, not a problem.
    let (_, out, _) = run(&[args[0], args[1], args[2], args[3], "--convert-dtype"]);
    assert!(
        out.contains("converted: bn.scale: file F16 -> model f32"),
        "{out}"
    );
    assert!(out.contains("4 problems"), "{out}");
}

#[test]
fn prefix_and_rng_options_apply_to_the_diff() {
    let dir = tmp_dir("prefix");
    let model = net_file(&dir);
    let map = candle_core::safetensors::load(&model, &Device::Cpu).expect("load");
    let nested: std::collections::HashMap<String, Tensor> = map
        .into_iter()
        .filter(|(k, _)| !k.contains("rngs"))
        .map(|(k, t)| (format!("model.{k}"), t))
        .collect();
    let file = dir.join("nested.safetensors");
    candle_core::safetensors::save(&nested, &file).expect("save");
    let f = file.to_str().expect("p");
    let m = model.to_str().expect("p");
    let (code, out, _) = run(&["inspect", f, "--diff", m, "--prefix", "model."]);
    assert_eq!(code, 1);
    assert!(out.contains("missing: drop.rngs.key"), "{out}");
    let (code, out, _) = run(&[
        "inspect",
        f,
        "--diff",
        m,
        "--prefix",
        "model.",
        "--rng-optional",
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn bad_usage_and_broken_files_exit_2_with_a_message() {
    let dir = tmp_dir("bad");
    let (code, _, err) = run(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unrecognized subcommand 'frobnicate'") && err.contains("Usage: artifex"),
        "{err}"
    );
    for args in [
        &["inspect"][..],
        &["inspect", "a", "--diff"],
        &["inspect", "a", "--bogus"],
        &["inspect", "a", "b"],
        // The load options only mean something for a diff.
        &["inspect", "a", "--prefix", "model."],
        &["inspect", "a", "--rng-optional"],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(err.contains("Usage: artifex inspect"), "{args:?}: {err}");
    }
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("inspect") && out.contains("Exit status") && out.contains("train_vae"),
        "{out}"
    );
    let (code, out, _) = run(&["inspect", "--help"]);
    assert_eq!(code, 0);
    for want in [
        "--diff <OTHER>",
        "--prefix <P>",
        "--convert-dtype",
        "--rng-optional",
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }

    let broken = dir.join("broken.safetensors");
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&broken, bytes).expect("write");
    let (code, _, err) = run(&["inspect", broken.to_str().expect("p")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("is corrupt or not a safetensors file"),
        "{err}"
    );
    // The message and its cause, each once, no Debug text.
    let (code, _, err) = run(&["inspect", "/nonexistent/x.safetensors"]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "artifex: error: checkpoint /nonexistent/x.safetensors\n  \
         caused by: No such file or directory (os error 2)\n"
    );
}
