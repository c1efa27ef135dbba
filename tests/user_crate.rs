//! Builds and runs `tests/user-crate`, a crate outside the workspace that uses only the
//! public API: derives its own layer, trains one step, saves and reloads.

use std::path::Path;
use std::process::Command;

#[test]
fn user_crate_outside_the_workspace_builds_trains_and_reloads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Same dependency versions as the workspace (the lock is copied, not committed twice).
    std::fs::copy(
        root.join("Cargo.lock"),
        root.join("tests/user-crate/Cargo.lock"),
    )
    .expect("copy Cargo.lock");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("run")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(root.join("tests/user-crate/Cargo.toml"))
        // Its own target dir (the outer cargo holds the workspace's build lock); always a
        // debug build, which compiles faster than release and runs this tiny model instantly.
        .env("CARGO_TARGET_DIR", root.join("target/user-crate"));
    let out = cmd.output().expect("run cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "user crate failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("user crate OK"), "{stdout}");
    assert!(
        stdout.contains("blocks.0.kernel"),
        "summary printed: {stdout}"
    );
}
