//! The `artifex` binary itself, run as a child process: help, usage errors and unreadable
//! files reach the terminal as text with the documented exit status.

use std::process::Command;

fn artifex(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_artifex"))
        .args(args)
        .output()
        .expect("spawn artifex");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_exits_0_and_prints_the_usage() {
    for args in [
        &["--help"][..],
        &["help"],
        &["inspect", "--help"],
        &["help", "inspect"],
    ] {
        let (code, out, err) = artifex(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains("Usage: artifex"), "{args:?}:\n{out}");
    }
    let (code, out, _) = artifex(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("artifex "), "{out}");
}

#[test]
fn usage_errors_exit_2_with_the_usage() {
    // No command: the help, on stderr, as an error.
    let (code, out, err) = artifex(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("Usage: artifex"), "{err}");
    let (code, _, err) = artifex(&["inspect", "--diff"]);
    assert_eq!(code, 2);
    assert!(err.contains("Usage: artifex inspect"), "{err}");
}

#[test]
fn an_unreadable_file_exits_2_with_the_message_and_its_cause() {
    let (code, out, err) = artifex(&["inspect", "/nonexistent/x.safetensors"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(
        err,
        "artifex: error: checkpoint /nonexistent/x.safetensors\n  \
         caused by: No such file or directory (os error 2)\n"
    );
}

#[test]
fn inspect_config_prints_a_model_too_big_to_build_without_allocating_it() {
    use artifex_core::Configurable;
    let model = artifex_models::CustomVAE::new(
        vec![28, 28, 1],
        20,
        vec![64],
        vec![64],
        &mut artifex_core::Rngs::new(0),
    )
    .expect("small VAE");
    // The small model's config with two 100,000-wide hidden layers each side: ~80 GB.
    let json = serde_json::to_string(&model.config())
        .expect("config json")
        .replace("[64]", "[100000,100000]");
    let dir = std::env::temp_dir().join(format!("artifex-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("vae.json");
    std::fs::write(&path, json).expect("write config");
    let path = path.display().to_string();

    let (code, out, err) = artifex(&["inspect", "--config", &path, "--type", "CustomVAE"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("CustomVAE from") && out.contains("nothing allocated"),
        "{out}"
    );
    assert!(out.contains("[784, 100000]"), "{out}");
    assert!(out.contains("GiB"), "totals in GiB: {out}");

    let (code, _, err) = artifex(&["inspect", "--config", &path, "--type", "NoSuchModel"]);
    assert_eq!(code, 2);
    assert!(err.contains("NoSuchModel"), "{err}");
    let (code, _, err) = artifex(&["inspect", "--config", &path]);
    assert_eq!(code, 2, "--config needs --type");
    assert!(err.contains("--type"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
