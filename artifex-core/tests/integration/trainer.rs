//! The Trainer: bitwise resume, the NaN guard, evaluation and checkpoint rotation.

use crate::common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use artifex_core::data::{DataLoader, TensorDataset};
use artifex_core::optim::Adam;
use artifex_core::prelude::*;
use artifex_core::train::{Metrics, Trainer, TrainerConfig};
use common::{batch, fresh_dir, state_bytes, Mlp};

fn loss(model: &Mlp, batch: &[Tensor]) -> Result<(Tensor, Metrics)> {
    let pred = model.forward(&batch[0])?;
    let mse = artifex_core::losses::mse(&pred, &batch[1])?;
    Ok((mse.clone(), Metrics::from([("mse".to_string(), mse)])))
}

/// Model, optimizer and shuffled loader built from one seed, as a fresh process would.
fn setup(seed: u64) -> Result<(Mlp, Adam, DataLoader)> {
    let mut rngs = Rngs::new(seed);
    let model = Mlp::builder(8, 32, 2).rate(0.2).build(&mut rngs)?;
    let optimizer = Adam::new(model.named_params(), 1e-2)?;
    let x = batch(100, 8);
    let y = x.narrow(1, 0, 2)?.sin()?;
    let loader = DataLoader::new(TensorDataset::new(vec![x, y])?, 16)?
        .with_shuffle(Rngs::new(7).fork("data")?)
        .with_drop_last(false);
    Ok((model, optimizer, loader))
}

fn config(steps: u64, dir: &PathBuf) -> TrainerConfig {
    TrainerConfig {
        checkpoint_every: Some(50),
        keep_last: 2,
        clip_grad_norm: Some(1.0),
        ..TrainerConfig::new(steps, dir)
    }
}

#[test]
fn stopping_at_200_and_resuming_to_400_is_bitwise_identical_to_400_steps() -> Result<()> {
    let dir_a = fresh_dir("trainer-straight");
    let (model, opt, mut loader) = setup(0)?;
    let mut straight = Trainer::new(model, opt, config(400, &dir_a), loss);
    straight.fit(&mut loader, None)?;
    let expected = state_bytes(straight.model());

    let dir_b = fresh_dir("trainer-resumed");
    let (model, opt, mut loader) = setup(0)?;
    let mut first = Trainer::new(model, opt, config(200, &dir_b), loss);
    first.fit(&mut loader, None)?;
    drop(first);

    // A new "process": everything rebuilt (even from another seed), then resumed.
    let (model, opt, mut loader) = setup(123)?;
    let mut resumed = Trainer::new(model, opt, config(400, &dir_b), loss);
    assert_eq!(resumed.resume(&mut loader)?, Some(200));
    let history = resumed.fit(&mut loader, None)?;
    assert_eq!((history.first_step, history.steps), (200, 200));
    assert_eq!(
        state_bytes(resumed.model()),
        expected,
        "resumed run differs"
    );
    assert!(resumed.model().dropout.rngs.count() > 0);

    // keep_last = 2: only the two newest checkpoints remain.
    let steps: Vec<u64> = resumed
        .checkpoints()
        .list()?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(steps, [350, 400]);
    let lines = std::fs::read_to_string(dir_b.join("metrics.jsonl")).expect("metrics");
    assert_eq!(lines.lines().count(), 400);
    let last: serde_json::Value =
        serde_json::from_str(lines.lines().last().expect("line")).expect("json");
    assert_eq!(last["step"], 400);
    assert!(last["mse"].as_f64().is_some() && last["grad_norm"].as_f64().is_some());
    Ok(())
}

#[test]
fn training_lowers_the_loss_and_evaluation_runs_in_eval_mode() -> Result<()> {
    let dir = fresh_dir("trainer-eval");
    let (model, opt, mut loader) = setup(1)?;
    let (_, _, mut val) = setup(1)?;
    let mut trainer = Trainer::new(
        model,
        opt,
        TrainerConfig::new(300, &dir).eval_every(100),
        loss,
    );
    let before = trainer.evaluate(&mut val)?;
    let history = trainer.fit(&mut loader, Some(&mut val))?;
    let last_eval = history.last_eval().expect("evaluations");
    assert!(
        last_eval["loss"] < before["loss"] * 0.5,
        "{before:?} -> {last_eval:?}"
    );
    // The history holds every step and every evaluation, in order.
    assert_eq!(history.steps, 300);
    let steps: Vec<u64> = history.train.iter().map(|r| r.step).collect();
    assert_eq!(steps, (1..=300).collect::<Vec<_>>());
    let evals: Vec<u64> = history.eval.iter().map(|r| r.step).collect();
    assert_eq!(evals, [100, 200, 300]);
    assert_eq!(history.train_curve("loss").len(), 300);
    assert_eq!(history.stop, artifex_core::train::StopReason::Completed);
    assert!(
        trainer.model().dropout.is_training(),
        "evaluate() restores training mode"
    );
    let evals = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("metrics");
    assert_eq!(evals.lines().filter(|l| l.contains("\"eval\"")).count(), 3);
    Ok(())
}

#[test]
fn a_non_finite_step_is_refused_and_leaves_model_and_checkpoint_intact() -> Result<()> {
    let dir = fresh_dir("trainer-nan");
    let poison = Arc::new(AtomicBool::new(false));
    let flag = poison.clone();
    let poisoned_loss = move |m: &Mlp, b: &[Tensor]| -> Result<(Tensor, Metrics)> {
        let (l, mut metrics) = loss(m, b)?;
        if flag.load(Ordering::SeqCst) {
            let nan = (l.ones_like()? * f64::NAN)?;
            metrics.insert("mse".into(), (&l * &nan)?);
        }
        Ok((l, metrics))
    };
    let (model, opt, mut loader) = setup(2)?;
    let mut trainer = Trainer::new(model, opt, config(50, &dir), poisoned_loss);
    trainer.fit(&mut loader, None)?;
    let checkpoint = trainer.checkpoints().latest()?.expect("checkpoint at 50").1;
    let before = state_bytes(trainer.model());

    poison.store(true, Ordering::SeqCst);
    let batch = loader.next_batch()?.expect("batch");
    let err = trainer.train_step(&batch).unwrap_err();
    assert!(
        matches!(&err, Error::NonFinite { metric, step: 51, .. } if metric == "mse"),
        "{err}"
    );
    assert!(err.to_string().contains("metric `mse` is not finite"));
    assert_eq!(
        state_bytes(trainer.model()),
        before,
        "params, batch stats and rng counters unchanged"
    );
    assert_eq!(trainer.step(), 50);

    let mut reloaded = Mlp::new(8, 32, 2, &mut Rngs::new(9))?;
    assert!(reloaded
        .load_safetensors(checkpoint.join("model.safetensors"))?
        .is_clean());
    assert_eq!(
        state_bytes(&reloaded),
        before,
        "last good checkpoint intact"
    );
    Ok(())
}
