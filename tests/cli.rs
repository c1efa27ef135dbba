//! The examples' command lines, run as real child processes: `--help` everywhere, usage
//! errors exit 2 with the usage, failures exit 1 with a readable message and its causes.
//! Every case but one stops at parsing or at the first file it reads; the last test trains
//! `train_vae` for a few steps to check Ctrl-C, `--resume` and the run-directory rules.
//!
//! The example binaries are those `cargo test` builds (`target/<profile>/examples/NAME`,
//! next to this test's `deps/` directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every example that has a `main`.
const EXAMPLES: [&str; 13] = [
    "train_vae",
    "mnist_classifier",
    "mnist_fid",
    "sample",
    "reconstruct",
    "custom_gan",
    "custom_layers",
    "custom_vae",
    "architecture_patterns",
    "integration",
    "bench_vae",
    "bench_typed",
    "bench_conv",
];

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/cli-HASH -> target/<profile>/examples/NAME
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let rebuild = "`cargo test` builds the examples; with `--test cli` alone, run \
                   `cargo build --release --examples` first";
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is not built: {rebuild}", path.display()));
    // A binary older than its sources would test old code.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let sources = [
        root.join(format!("{name}.rs")),
        root.join("common/cli.rs"),
        root.join("common/checkpoint_args.rs"),
    ];
    for source in sources {
        let changed = std::fs::metadata(&source).and_then(|m| m.modified());
        assert!(
            changed.is_ok_and(|t| t <= built),
            "{} is older than {}: {rebuild}",
            path.display(),
            source.display()
        );
    }
    path
}

/// Runs an example in a fresh temporary directory (so nothing lands in the repository).
fn run(name: &str, args: &[&str]) -> (i32, String, String) {
    let cwd = std::env::temp_dir().join(format!("artifex-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&cwd).expect("tmp dir");
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(example(name))
        .args(args)
        .current_dir(&cwd)
        .output()
        .expect("spawn example");
    (
        status.code().expect("exit code (not killed by a signal)"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// No Rust `Debug` formatting of errors reaches the user.
fn assert_no_debug_text(text: &str) {
    for debug in ["Io {", "Os {", "Checkpoint(", "Data(", "kind:"] {
        assert!(!text.contains(debug), "Debug text {debug:?} in\n{text}");
    }
}

#[test]
fn every_example_prints_its_usage_with_help() {
    for name in EXAMPLES {
        let (code, out, err) = run(name, &["--help"]);
        assert_eq!(code, 0, "{name} --help: {err}");
        assert!(
            out.contains(&format!("Usage: {name}")),
            "{name} --help:\n{out}"
        );
        assert!(out.contains("-h, --help"), "{name} --help:\n{out}");
        assert!(err.is_empty(), "{name} --help wrote to stderr: {err}");
    }
}

#[test]
fn help_documents_the_flags_and_defaults() {
    let (_, out, _) = run("train_vae", &["--help"]);
    for want in [
        "--steps <N>",
        "[default: 1500]",
        "--batch-size <N>",
        "[default: 128]",
        "--lr <RATE>",
        "[default: 0.001]",
        "--beta <BETA>",
        "[default: 0.02]",
        "--seed <N>",
        "--eval-every <N>",
        "[default: 250]",
        "--device <DEVICE>",
        "cpu, cuda, cuda:N, metal or metal:N",
        "--data <DIR>",
        "--out <DIR>",
        "[default: out/train_vae]",
        "--resume",
    ] {
        assert!(
            out.contains(want),
            "train_vae --help lacks {want:?}:\n{out}"
        );
    }
    let (_, out, _) = run("reconstruct", &["--help"]);
    for want in [
        "[CHECKPOINT]",
        "--checkpoint <FILE>",
        "[default: out/train_vae/model.safetensors]",
        "--out <PNG>",
        "[default: out/train_vae/reconstructions_again.png]",
        "--count <N>",
        "[default: 32]",
    ] {
        assert!(
            out.contains(want),
            "reconstruct --help lacks {want:?}:\n{out}"
        );
    }
}

#[test]
fn sample_help_does_not_open_a_file() {
    let (code, out, err) = run("sample", &["--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("--checkpoint <FILE>") && out.contains("--seed <N>"),
        "{out}"
    );
    assert!(
        out.contains("[default: out/train_vae/samples_again.png]"),
        "{out}"
    );
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn bad_values_exit_2_with_the_usage() {
    let (code, out, err) = run("train_vae", &["--steps", "abc"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("invalid value 'abc' for '--steps <N>'"),
        "{err}"
    );
    assert!(err.contains("Usage: train_vae"), "{err}");
    assert!(out.is_empty(), "nothing ran: {out}");

    for (name, args) in [
        ("train_vae", &["--device", "tpu"][..]),
        ("train_vae", &["--device", "cuda:x"]),
        ("train_vae", &["--batch-size", "0"]),
        ("train_vae", &["--bogus"]),
        ("sample", &["--seed", "-1"]),
        (
            "sample",
            &["a.safetensors", "--checkpoint", "b.safetensors"],
        ),
        ("reconstruct", &["--count", "0"]),
        ("custom_gan", &["many"]),
        ("integration", &["10", "20"]),
        ("bench_vae", &["--steps", "x"]),
        ("bench_typed", &["0"]),
        ("custom_vae", &["extra"]),
    ] {
        let (code, out, err) = run(name, args);
        assert_eq!(code, 2, "{name} {args:?}: {out}{err}");
        assert!(
            err.starts_with("error: ") && err.contains(&format!("Usage: {name}")),
            "{name} {args:?}:\n{err}"
        );
    }
}

#[test]
fn a_missing_checkpoint_exits_1_with_a_readable_message() {
    let (code, out, err) = run(
        "sample",
        &["--checkpoint", "/nonexistent/model.safetensors"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert_no_debug_text(&err);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "error: checkpoint /nonexistent/model.safetensors",
            "  caused by: No such file or directory (os error 2)",
        ],
        "{err}"
    );

    // The positional form reads the same file; reconstruct reports the same way.
    let (code, _, err) = run("reconstruct", &["/nonexistent/model.safetensors"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: checkpoint /nonexistent/model.safetensors\n"),
        "{err}"
    );
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn a_missing_data_directory_exits_1_with_a_readable_message() {
    let (code, out, err) = run(
        "train_vae",
        &["--data", "/nonexistent/mnist", "--out", "out"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert_no_debug_text(&err);
    assert!(
        err.starts_with("error: data directory /nonexistent/mnist: no file"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn train_vae_stops_on_ctrl_c_with_a_checkpoint_refuses_a_used_dir_and_resumes() {
    let out = std::env::temp_dir().join(format!("artifex-cli-ctrl-c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_arg = out.display().to_string();
    let common = [
        "--batch-size",
        "16",
        "--eval-every",
        "1000",
        "--out",
        &out_arg,
    ];
    let child = Command::new(example("train_vae"))
        .args(["--steps", "100000"])
        .args(common)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn train_vae");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(out.join("metrics.jsonl")).map_or(0, |t| t.lines().count()) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "train_vae logged no steps"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let done = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&done.stdout);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(
        done.status.code(),
        Some(130),
        "128 + SIGINT\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("continue with --resume"), "{stdout}");
    assert!(stderr.contains("interrupted (SIGINT) at step"), "{stderr}");
    let step: u64 = stdout
        .split("stopped at step ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    let checkpoint = out.join(format!("checkpoints/step-{step:08}"));
    assert!(checkpoint.join("model.safetensors").is_file(), "{stdout}");

    // A fresh run into the same directory is refused, with what to do.
    let steps = (step + 2).to_string();
    let (code, _, stderr) = run("train_vae", &[&["--steps", &steps], &common[..]].concat());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("already holds a training run") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert_no_debug_text(&stderr);

    // --resume continues to the new total and finishes the job.
    let (code, stdout, stderr) = run(
        "train_vae",
        &[&["--steps", &steps, "--resume"], &common[..]].concat(),
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("resumed from step {step}")),
        "{stdout}"
    );
    assert!(stdout.contains("(2 steps in"), "{stdout}");
    assert_metrics_lines(&stdout);
    for file in [
        "model.safetensors",
        "samples.png",
        "loss.png",
        "mnist_fid.json",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// The MNIST-FID report line of `train_vae` and `custom_gan`.
fn assert_metrics_lines(stdout: &str) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("MNIST-FID "))
        .unwrap_or_else(|| panic!("no MNIST-FID line in\n{stdout}"));
    for want in [
        "precision ",
        "recall ",
        "classifier confidence ",
        "(2000 samples vs 2000 test digits, k = 3; not comparable to Inception-FID)",
    ] {
        assert!(line.contains(want), "{want:?} not in {line}");
    }
    assert!(stdout.contains("mnist_fid.json"), "{stdout}");
}

#[test]
fn custom_gan_reports_mnist_fid_and_mnist_fid_prints_floor_and_ceiling() {
    let (code, stdout, stderr) = run("custom_gan", &["2"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_metrics_lines(&stdout);

    let (code, stdout, stderr) = run("mnist_fid", &["--samples", "500"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for want in [
        "floor   (first 500 train digits vs test split): MNIST-FID ",
        "ceiling (uniform noise in [0, 1] vs test split): MNIST-FID ",
    ] {
        assert!(stdout.contains(want), "{want:?} not in\n{stdout}");
    }
    let (code, _, stderr) = run("mnist_fid", &["--samples", "10"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn bench_conv_runs_every_workload_in_a_reduced_mode() {
    for workload in ["residual", "dense", "unet"] {
        let args = [
            "--workload",
            workload,
            "--batch",
            "2",
            "--steps",
            "1",
            "--block",
            "1",
            "--warmup",
            "0",
            "--no-flax",
        ];
        let (code, stdout, stderr) = run("bench_conv", &args);
        assert_eq!(code, 0, "{workload}: {stdout}\n{stderr}");
        assert!(stdout.contains("cpu: "), "{stdout}");
        for variant in ["ours", "candle-nn", "peak RSS"] {
            assert!(
                stdout.contains(variant),
                "{workload}: no {variant} row:\n{stdout}"
            );
        }
    }
}
