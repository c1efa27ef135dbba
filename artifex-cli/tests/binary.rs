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
