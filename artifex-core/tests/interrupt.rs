//! Ctrl-C and SIGTERM on a real training process: the test binary re-runs itself as a child
//! that trains, the parent signals it, and checks that it finished its step, wrote a
//! checkpoint, said where, exited cleanly, held the directory lock meanwhile, and that
//! resuming from the checkpoint ends bitwise where an uninterrupted run ends.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use artifex_core::data::{DataLoader, TensorDataset};
use artifex_core::optim::Adam;
use artifex_core::prelude::*;
use artifex_core::train::{Metrics, RunLock, StopReason, Trainer, TrainerConfig};
use common::{batch, fresh_dir, state_bytes, Mlp};

/// Set in the child: the run directory it trains into.
const CHILD_DIR: &str = "ARTIFEX_INTERRUPT_CHILD_DIR";
/// Set in the child: milliseconds each step sleeps (so the parent can catch it mid-run).
const CHILD_STEP_MS: &str = "ARTIFEX_INTERRUPT_STEP_MS";
const TOTAL_STEPS: u64 = 400;

/// Milliseconds each step of this process sleeps.
static STEP_MS: AtomicU64 = AtomicU64::new(0);

type MlpLoss = fn(&Mlp, &[Tensor]) -> Result<(Tensor, Metrics)>;

fn slow_loss(m: &Mlp, b: &[Tensor]) -> Result<(Tensor, Metrics)> {
    std::thread::sleep(Duration::from_millis(STEP_MS.load(Ordering::SeqCst)));
    let mse = artifex_core::losses::mse(&m.forward(&b[0])?, &b[1])?;
    Ok((mse, Metrics::new()))
}

fn trainer(dir: &Path) -> Result<Trainer<Mlp, Adam, MlpLoss>> {
    let model = Mlp::builder(8, 16, 2).rate(0.2).build(&mut Rngs::new(11))?;
    let optimizer = Adam::new(model.named_params(), 1e-2)?;
    let config = TrainerConfig::new(TOTAL_STEPS, dir).checkpoint_every(100);
    Ok(Trainer::new(model, optimizer, config, slow_loss as MlpLoss))
}

fn loader() -> Result<DataLoader> {
    let x = batch(96, 8);
    let y = x.narrow(1, 0, 2)?.cos()?;
    Ok(DataLoader::new(TensorDataset::new(vec![x, y])?, 16)?
        .with_shuffle(Rngs::new(5).fork("data")?))
}

/// The child's body; a no-op when the test runs normally.
#[test]
fn child_training_process() -> Result<()> {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return Ok(());
    };
    let step_ms = std::env::var(CHILD_STEP_MS)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    STEP_MS.store(step_ms, Ordering::SeqCst);
    let mut trainer = trainer(Path::new(&dir))?;
    let history = trainer.fit(&mut loader()?, None)?;
    println!(
        "CHILD stop={:?} step={} checkpoint={}",
        history.stop,
        trainer.step(),
        history
            .checkpoint
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}

fn spawn_child(dir: &Path, step_ms: u64) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_training_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_STEP_MS, step_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child")
}

/// Waits until the child has logged at least `steps` steps.
fn wait_for_steps(dir: &Path, steps: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let logged = std::fs::read_to_string(dir.join("metrics.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if logged >= steps {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the child ended early ({status}) after {logged} steps");
        }
        assert!(
            Instant::now() < deadline,
            "the child logged only {logged} steps"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn send(signal: &str, child: &Child) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal}");
}

/// Signals a training child mid-run; returns (step it stopped at, its stdout, its stderr).
fn interrupt_child(dir: &Path, signal: &str) -> (u64, String, String) {
    let mut child = spawn_child(dir, 2);
    wait_for_steps(dir, 30, &mut child);

    // Meanwhile the checkpoint directory is locked by the child, and says so.
    let err = RunLock::acquire(&dir.join("checkpoints")).expect_err("locked by the child");
    assert!(
        err.to_string().contains(&format!(
            "in use by another training run (process {} on host",
            child.id()
        )),
        "{err}"
    );

    send(signal, &child);
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the child exits cleanly: {}\n{stdout}\n{stderr}",
        out.status
    );
    let step = stdout
        .split("step=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("child output: {stdout}"));
    (step, stdout, stderr)
}

#[test]
fn sigint_finishes_the_step_writes_a_checkpoint_and_resumes_bitwise() -> Result<()> {
    let straight_dir = fresh_dir("int-straight");
    let mut straight = trainer(&straight_dir)?;
    straight.fit(&mut loader()?, None)?;
    let expected = state_bytes(straight.model());

    let dir = fresh_dir("int-sigint");
    let (step, stdout, stderr) = interrupt_child(&dir, "INT");
    assert!(stdout.contains("stop=Signal(2)"), "{stdout}");
    assert!((30..TOTAL_STEPS).contains(&step), "stopped at {step}");
    let checkpoint = dir.join(format!("checkpoints/step-{step:08}"));
    assert!(
        stdout.contains(&checkpoint.display().to_string()),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "interrupted (SIGINT) at step {step}; checkpoint: {}",
            checkpoint.display()
        )),
        "the person is told where: {stderr}"
    );
    // Every logged step is complete: the log ends exactly at the checkpoint's step.
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("log");
    assert_eq!(log.lines().count() as u64, step);

    let mut resumed = trainer(&dir)?;
    let mut data = loader()?;
    assert_eq!(resumed.resume(&mut data)?, Some(step));
    let history = resumed.fit(&mut data, None)?;
    assert_eq!(history.stop, StopReason::Completed);
    assert_eq!(history.steps, TOTAL_STEPS - step);
    assert_eq!(
        state_bytes(resumed.model()),
        expected,
        "interrupted + resumed == uninterrupted, bitwise"
    );
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("log");
    assert_eq!(log.lines().count() as u64, TOTAL_STEPS);
    Ok(())
}

#[test]
fn sigterm_stops_the_same_way() {
    let dir = fresh_dir("int-sigterm");
    let (step, stdout, stderr) = interrupt_child(&dir, "TERM");
    assert!(stdout.contains("stop=Signal(15)"), "{stdout}");
    assert!(stderr.contains("terminated (SIGTERM)"), "{stderr}");
    assert!(dir
        .join(format!("checkpoints/step-{step:08}/model.safetensors"))
        .is_file());
}

#[test]
fn a_second_ctrl_c_aborts_at_once() {
    let dir = fresh_dir("int-twice");
    // Slow steps: the first SIGINT asks for a stop after this step, the second kills.
    let mut child = spawn_child(&dir, 3000);
    wait_for_steps(&dir, 1, &mut child);
    send("INT", &child);
    std::thread::sleep(Duration::from_millis(50));
    send("INT", &child);
    let started = Instant::now();
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(2), "terminated by SIGINT: {status}");
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "did not wait for the step"
    );
    let mut lines = String::new();
    if let Some(out) = child.stdout.as_mut() {
        let _ = BufReader::new(out).read_line(&mut lines);
    }
    assert!(!lines.contains("CHILD stop="), "{lines}");
}
