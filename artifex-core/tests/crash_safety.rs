//! Crash safety: a child process saving in a loop is SIGKILLed at random points, many times;
//! the last complete checkpoint always loads bitwise-equal and stale temp files never confuse
//! a load or the trainer's listing. Saving where nothing can be written fails cleanly.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use artifex_core::checkpoint::{self, SaveOptions};
use artifex_core::prelude::*;
use artifex_core::train::CheckpointDir;
use artifex_core::CheckpointError;
use common::{state_bytes, Mlp};

const KILLS: u64 = 20;

/// A model whose every value is a function of `i`: a 4 MiB param (so a save takes a while)
/// plus an MLP with batch stats and an rng stream.
#[derive(Module)]
struct Saved {
    big: Param,
    mlp: Mlp,
}

fn model_for(i: u64) -> Result<Saved> {
    let big = (Tensor::arange(0f32, (1 << 20) as f32, &Device::Cpu)? * 1e-3)?;
    Ok(Saved {
        big: Param::new(&(big + i as f64)?.reshape((1024, 1024))?)?,
        mlp: Mlp::new(4, 8, 2, &mut Rngs::new(i))?,
    })
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("artifex-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Saves `model_for(i)` for i = start, start + 1, ... until killed; records each completed
/// index in `done` (itself written atomically) and keeps the last 2 trainer checkpoints.
#[test]
#[ignore = "run by `sigkill_during_saves_never_loses_the_last_checkpoint` in a child process"]
fn crash_child() -> Result<()> {
    let (Ok(dir), Ok(start)) = (
        std::env::var("ARTIFEX_CRASH_DIR"),
        std::env::var("ARTIFEX_CRASH_START"),
    ) else {
        return Ok(());
    };
    let dir = PathBuf::from(dir);
    let start: u64 = start.parse().map_err(|_| Error::config("child", "start"))?;
    let ckpts = CheckpointDir::new(dir.join("ckpts"), 2);
    for i in start.. {
        let model = model_for(i)?;
        model.save_safetensors(dir.join("model.safetensors"))?;
        checkpoint::write_atomically(&dir.join("done"), |p| std::fs::write(p, i.to_string()))?;
        let step = vec![("step".to_string(), Tensor::new(i as i64, &Device::Cpu)?)];
        ckpts.save(i, &model, &SaveOptions::default(), step)?;
    }
    Ok(())
}

/// Deterministic pseudo-random delays (splitmix64).
fn delay_ms(round: u64) -> u64 {
    let mut z = round.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    40 + (z ^ (z >> 31)) % 400
}

#[test]
fn sigkill_during_saves_never_loses_the_last_checkpoint() -> Result<()> {
    let dir = tmp_dir("kill");
    let ckpts = CheckpointDir::new(dir.join("ckpts"), 2);
    let mut good: Option<u64> = None;
    let (mut stale_seen, mut completed) = (0, 0);
    for round in 0..KILLS {
        let start = round * 1_000_000;
        let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", "crash_child", "--include-ignored", "--quiet"])
            .env("ARTIFEX_CRASH_DIR", &dir)
            .env("ARTIFEX_CRASH_START", start.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn child");
        std::thread::sleep(Duration::from_millis(delay_ms(round)));
        child.kill().expect("SIGKILL"); // SIGKILL on unix: no destructor, no cleanup runs
        let status = child.wait().expect("wait");
        assert!(
            !status.success(),
            "round {round}: the child must be killed, not finish"
        );

        // The model file is always one complete save: the last recorded one or the next.
        let done: Option<u64> = std::fs::read_to_string(dir.join("done"))
            .ok()
            .and_then(|s| s.parse().ok());
        let candidates: Vec<u64> = match done {
            Some(d) if d >= start => {
                completed += d - start + 1;
                vec![d, d + 1]
            }
            _ => good.into_iter().chain([start]).collect(),
        };
        if dir.join("model.safetensors").exists() {
            let mut fresh = model_for(u64::MAX / 2)?;
            assert!(fresh
                .load_safetensors(dir.join("model.safetensors"))?
                .is_clean());
            let got = state_bytes(&fresh);
            let which = candidates.iter().copied().find(|&c| {
                model_for(c)
                    .map(|m| state_bytes(&m) == got)
                    .unwrap_or(false)
            });
            assert!(
                which.is_some(),
                "round {round}: the file is none of {candidates:?}"
            );
            good = which;
        }
        // Every listed trainer checkpoint is complete and loads bitwise-equal to its step.
        for (step, step_dir) in ckpts.list()? {
            let mut fresh = model_for(u64::MAX / 2)?;
            assert!(fresh
                .load_safetensors(step_dir.join("model.safetensors"))?
                .is_clean());
            assert_eq!(
                state_bytes(&fresh),
                state_bytes(&model_for(step)?),
                "step {step}"
            );
            let state = CheckpointDir::load_trainer_state(&step_dir)?;
            assert_eq!(state["step"].to_scalar::<i64>()?, step as i64);
        }
        // Anything else is a hidden temp file of the killed child.
        for dir in [&dir, &dir.join("ckpts")] {
            for name in names(dir) {
                if !["model.safetensors", "done", "ckpts", ".lock"].contains(&name.as_str())
                    && !name.starts_with("step-")
                {
                    assert!(
                        name.starts_with('.') && name.contains(".tmp-"),
                        "unexpected {name}"
                    );
                    stale_seen += 1;
                }
            }
        }
    }
    eprintln!(
        "{KILLS} kills after {completed} completed saves; {stale_seen} stale temp entries seen"
    );

    // The next save (of a live process) removes the temps of dead ones.
    let last = model_for(7)?;
    last.save_safetensors(dir.join("model.safetensors"))?;
    checkpoint::write_atomically(&dir.join("done"), |p| std::fs::write(p, "7"))?;
    ckpts.save(7, &last, &SaveOptions::default(), vec![])?;
    for d in [&dir, &dir.join("ckpts")] {
        let left: Vec<String> = names(d)
            .into_iter()
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(
            left.is_empty(),
            "stale temps left in {}: {left:?}",
            d.display()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[test]
fn a_stale_temp_file_is_ignored_by_loads_and_removed_by_the_next_save() -> Result<()> {
    let dir = tmp_dir("stale");
    let path = dir.join("m.safetensors");
    let model = model_for(1)?;
    model.save_safetensors(&path)?;
    // A temp file as a killed writer leaves it: half written, nobody holds its lock.
    let stale = dir.join(".m.safetensors.tmp-2147480000-0");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&stale, &bytes[..bytes.len() / 2]).expect("write");
    // A temp whose writer is alive holds a lock on it, whatever the PID in its name (here one
    // that does not exist: PIDs decide nothing).
    let live = dir.join(".m.safetensors.tmp-2147480001-0");
    std::fs::write(&live, b"in progress").expect("write");
    let writer = std::fs::File::open(&live).expect("open");
    writer.lock().expect("lock");

    let mut fresh = model_for(2)?;
    assert!(fresh.load_safetensors(&path)?.is_clean());
    assert_eq!(state_bytes(&fresh), state_bytes(&model));
    model_for(3)?.save_safetensors(&path)?;
    assert!(!stale.exists(), "abandoned temp removed");
    assert!(live.exists(), "temp of a live writer kept");
    drop(writer);
    Ok(())
}

#[test]
fn a_full_disk_fails_the_save_and_keeps_the_old_file() -> Result<()> {
    let dir = tmp_dir("full");
    let path = dir.join("m.safetensors");
    let model = model_for(4)?;
    model.save_safetensors(&path)?;
    let old = std::fs::read(&path).expect("read");
    if !Path::new("/dev/full").exists() {
        return Ok(());
    }
    // The writer fails the way a full disk does: ENOSPC from the kernel, after a partial temp.
    let other = model_for(5)?;
    let result = checkpoint::write_atomically(&path, |tmp| {
        std::fs::write(tmp, &old[..100])?;
        let mut full = std::fs::OpenOptions::new().write(true).open("/dev/full")?;
        checkpoint::save_to_writer(&other, &mut full, &SaveOptions::default())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::StorageFull, e.to_string()))
    });
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Checkpoint(CheckpointError::Io { .. })));
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_eq!(old, std::fs::read(&path).expect("read"), "old file intact");
    assert_eq!(names(&dir), ["m.safetensors"], "temp removed");
    // save_to_writer itself reports the device error as a typed error.
    let mut full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open");
    let err = checkpoint::save_to_writer(&other, &mut full, &SaveOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::Checkpoint(CheckpointError::Io { .. })),
        "{err}"
    );
    Ok(())
}

#[test]
fn saving_where_no_file_can_be_created_is_a_typed_error() -> Result<()> {
    let dir = tmp_dir("unwritable");
    let model = model_for(6)?;
    // A parent that is a regular file: ENOTDIR, even for root.
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"keep me").expect("write");
    let err = model
        .save_safetensors(file.join("m.safetensors"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Checkpoint(CheckpointError::Io { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("not-a-dir/m.safetensors"), "{err}");
    assert_eq!(std::fs::read(&file).expect("read"), b"keep me");
    assert_eq!(names(&dir), ["not-a-dir"]);
    // procfs refuses new files, even for root.
    if Path::new("/proc/self").exists() {
        let err = model
            .save_safetensors("/proc/artifex-test.safetensors")
            .unwrap_err();
        assert!(
            matches!(err, Error::Checkpoint(CheckpointError::Io { .. })),
            "{err}"
        );
    }
    // A trainer checkpoint directory under a regular file fails the same way.
    let ckpts = CheckpointDir::new(file.join("ckpts"), 2);
    assert!(ckpts
        .save(1, &model, &SaveOptions::default(), vec![])
        .is_err());
    assert!(ckpts.list().map_or(true, |l| l.is_empty()));
    Ok(())
}
