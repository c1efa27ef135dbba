//! The one training loop behind `Trainer` and `AdversarialTrainer`: empty loaders, the NaN
//! guard of a GAN step, GAN resume, run-directory rules (fresh/resumed/overwrite, the lock),
//! modes a user set, stop requests, the history, the log's precision and the loss plot.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use artifex_core::data::{DataLoader, TensorDataset};
use artifex_core::optim::Adam;
use artifex_core::prelude::*;
use artifex_core::train::{
    AdversarialTrainer, Metrics, StopHandle, StopReason, Trainer, TrainerConfig,
};
use artifex_core::TrainError;
use artifex_models::Gan;
use common::{batch, fresh_dir, state_bytes, Mlp};

fn loss(model: &Mlp, batch: &[Tensor]) -> Result<(Tensor, Metrics)> {
    let pred = model.forward(&batch[0])?;
    let mse = artifex_core::losses::mse(&pred, &batch[1])?;
    Ok((mse.clone(), Metrics::from([("mse".to_string(), mse)])))
}

fn loader(rows: usize, batch_size: usize, drop_last: bool) -> Result<DataLoader> {
    let x = batch(rows, 8);
    let y = x.narrow(1, 0, 2)?.sin()?;
    Ok(
        DataLoader::new(TensorDataset::new(vec![x, y])?, batch_size)?
            .with_shuffle(Rngs::new(7).fork("data")?)
            .with_drop_last(drop_last),
    )
}

type MlpLoss = fn(&Mlp, &[Tensor]) -> Result<(Tensor, Metrics)>;

fn mlp_trainer(seed: u64, config: TrainerConfig) -> Result<Trainer<Mlp, Adam, MlpLoss>> {
    let model = Mlp::builder(8, 16, 2)
        .rate(0.2)
        .build(&mut Rngs::new(seed))?;
    let opt = Adam::new(model.named_params(), 1e-2)?;
    Ok(Trainer::new(model, opt, config, loss as MlpLoss))
}

/// A small GAN on 4x4 "images" and its two optimizers.
fn small_gan(seed: u64) -> Result<(Gan, Adam, Adam)> {
    let gan = Gan::new(4, vec![4, 4, 1], vec![8], vec![8], &mut Rngs::new(seed))?;
    let d_opt = Adam::new(gan.discriminator_params(), 1e-3)?;
    let g_opt = Adam::new(gan.generator_params(), 1e-3)?;
    Ok((gan, d_opt, g_opt))
}

fn gan_loader() -> Result<DataLoader> {
    let images = batch(40, 16).reshape((40, 4, 4, 1))?.tanh()?;
    Ok(DataLoader::new(TensorDataset::new(vec![images])?, 8)?
        .with_shuffle(Rngs::new(3).fork("data")?)
        .with_drop_last(true))
}

type LossFn = fn(&Gan, &Tensor) -> Result<(Tensor, Metrics)>;

fn d_loss(m: &Gan, real: &Tensor) -> Result<(Tensor, Metrics)> {
    m.discriminator_loss(real)
}

#[test]
fn an_empty_loader_is_an_error_for_both_trainers_not_an_endless_loop() -> Result<()> {
    let dir = fresh_dir("loop-empty");
    let mut trainer = mlp_trainer(0, TrainerConfig::new(10, &dir))?;
    let mut empty = loader(3, 8, true)?;
    let err = trainer.fit(&mut empty, None).expect_err("no batch");
    assert!(
        matches!(
            &err,
            Error::Train(TrainError::EmptyLoader {
                examples: 3,
                batch_size: 8,
                ..
            })
        ),
        "{err}"
    );

    let (gan, d_opt, g_opt) = small_gan(0)?;
    let g_loss = |m: &Gan, n: usize| m.generator_loss(n);
    let mut gan_trainer = AdversarialTrainer::new(
        gan,
        d_opt,
        g_opt,
        TrainerConfig::new(10, dir.join("gan")),
        d_loss as LossFn,
        g_loss,
    );
    let images = batch(3, 16).reshape((3, 4, 4, 1))?;
    let mut empty = DataLoader::new(TensorDataset::new(vec![images])?, 8)?.with_drop_last(true);
    let err = gan_trainer.fit(&mut empty, None).expect_err("no batch");
    assert!(err
        .to_string()
        .contains("AdversarialTrainer: the training loader yields no batch"));
    Ok(())
}

#[test]
fn a_non_finite_generator_loss_refuses_the_whole_gan_step() -> Result<()> {
    let dir = fresh_dir("loop-gan-nan");
    let (gan, d_opt, g_opt) = small_gan(1)?;
    let poison = Arc::new(AtomicBool::new(false));
    let flag = poison.clone();
    let g_loss = move |m: &Gan, n: usize| -> Result<(Tensor, Metrics)> {
        let (l, metrics) = m.generator_loss(n)?;
        let l = if flag.load(Ordering::SeqCst) {
            (l * f64::NAN)?
        } else {
            l
        };
        Ok((l, metrics))
    };
    let config = TrainerConfig::new(5, &dir);
    let mut trainer = AdversarialTrainer::new(gan, d_opt, g_opt, config, d_loss as LossFn, g_loss);
    let mut data = gan_loader()?;
    let history = trainer.fit(&mut data, None)?;
    let metrics = history.last_train().expect("steps");
    for key in ["d_loss", "g_loss", "d_grad_norm", "g_grad_norm"] {
        assert!(metrics[key].is_finite(), "{key} in {metrics:?}");
    }

    let before = state_bytes(trainer.model());
    poison.store(true, Ordering::SeqCst);
    let real = next_batch(&mut data)?;
    let err = trainer.train_step(&real).expect_err("NaN generator loss");
    assert!(
        matches!(&err, Error::NonFinite { step: 6, metric, .. } if metric == "g_loss"),
        "{err}"
    );
    assert_eq!(
        state_bytes(trainer.model()),
        before,
        "the discriminator update of the refused step is undone too"
    );
    assert_eq!(trainer.step(), 5);

    // After the refusal the next good step is the same as if the bad one never happened.
    poison.store(false, Ordering::SeqCst);
    let after_refusal = trainer.train_step(&real)?;
    let (gan, d_opt, g_opt) = small_gan(1)?;
    let g_loss = |m: &Gan, n: usize| m.generator_loss(n);
    let mut twin = AdversarialTrainer::new(
        gan,
        d_opt,
        g_opt,
        TrainerConfig::new(5, dir.join("twin")),
        d_loss as LossFn,
        g_loss,
    );
    let mut data = gan_loader()?;
    twin.fit(&mut data, None)?;
    let real = next_batch(&mut data)?;
    assert_eq!(twin.train_step(&real)?, after_refusal);
    assert_eq!(state_bytes(twin.model()), state_bytes(trainer.model()));
    Ok(())
}

#[test]
fn a_gan_run_stopped_and_resumed_matches_a_straight_run_bitwise() -> Result<()> {
    let run = |dir: &Path, steps: u64, resume: bool| -> Result<Vec<(String, Vec<u8>)>> {
        let (gan, d_opt, g_opt) = small_gan(2)?;
        let g_loss = |m: &Gan, n: usize| m.generator_loss(n);
        let config = TrainerConfig::new(steps, dir).checkpoint_every(10);
        let mut trainer =
            AdversarialTrainer::new(gan, d_opt, g_opt, config, d_loss as LossFn, g_loss);
        let mut data = gan_loader()?;
        if resume {
            assert_eq!(trainer.resume(&mut data)?, Some(20));
        }
        trainer.fit(&mut data, None)?;
        Ok(state_bytes(trainer.model()))
    };
    let straight = run(&fresh_dir("loop-gan-straight"), 40, false)?;
    let dir = fresh_dir("loop-gan-resumed");
    run(&dir, 20, false)?;
    assert_eq!(run(&dir, 40, true)?, straight);
    Ok(())
}

#[test]
fn a_fresh_run_refuses_a_used_directory_overwrite_clears_it_and_resume_appends() -> Result<()> {
    let dir = fresh_dir("loop-fresh");
    let config = || TrainerConfig::new(10, &dir).checkpoint_every(5);
    let mut data = loader(64, 16, false)?;
    mlp_trainer(0, config())?.fit(&mut data, None)?;

    let err = mlp_trainer(0, config())?
        .fit(&mut loader(64, 16, false)?, None)
        .expect_err("a second fresh run");
    let text = err.to_string();
    assert!(
        matches!(err, Error::Train(TrainError::RunExists { .. })),
        "{text}"
    );
    assert!(
        text.contains("metrics.jsonl, checkpoints up to step 10") && text.contains("--overwrite"),
        "{text}"
    );

    // overwrite: the old run's log and checkpoints are gone, the new log starts at step 1.
    let mut trainer = mlp_trainer(1, config().total_steps(5).overwrite(true))?;
    trainer.fit(&mut loader(64, 16, false)?, None)?;
    let steps = logged_steps(&dir);
    assert_eq!(steps, (1..=5).collect::<Vec<_>>());
    let kept: Vec<u64> = trainer
        .checkpoints()
        .list()?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(kept, [5]);
    drop(trainer);

    // resume: the log continues.
    let mut trainer = mlp_trainer(1, config())?;
    let mut data = loader(64, 16, false)?;
    assert_eq!(trainer.resume(&mut data)?, Some(5));
    trainer.fit(&mut data, None)?;
    assert_eq!(logged_steps(&dir), (1..=10).collect::<Vec<_>>());
    Ok(())
}

/// The next batch, across an epoch boundary.
fn next_batch(data: &mut DataLoader) -> Result<Vec<Tensor>> {
    loop {
        if let Some(batch) = data.next_batch()? {
            return Ok(batch);
        }
    }
}

fn logged_steps(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("log")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            v["step"].as_u64().expect("step")
        })
        .collect()
}

#[test]
fn two_trainers_cannot_write_into_one_checkpoint_directory() -> Result<()> {
    let dir = fresh_dir("loop-lock");
    let mut first = mlp_trainer(0, TrainerConfig::new(3, &dir))?;
    first.fit(&mut loader(32, 16, false)?, None)?;
    let mut second = mlp_trainer(0, TrainerConfig::new(6, &dir))?;
    let err = second
        .resume(&mut loader(32, 16, false)?)
        .expect_err("locked by the first trainer");
    let text = err.to_string();
    assert!(
        matches!(err, Error::Train(TrainError::DirectoryInUse { .. })),
        "{text}"
    );
    assert!(
        text.contains(&format!("process {} on host", std::process::id())),
        "{text}"
    );
    drop(first);
    second.resume(&mut loader(32, 16, false)?)?;
    Ok(())
}

#[test]
fn fit_and_evaluate_keep_the_modes_a_user_set() -> Result<()> {
    let dir = fresh_dir("loop-modes");
    let mut trainer = mlp_trainer(3, TrainerConfig::new(20, &dir).eval_every(10))?;
    // Freeze the BatchNorm's statistics: it stays in eval mode through fit and evaluate.
    trainer.model_mut().bn.eval();
    let frozen: Vec<_> = state_bytes(&trainer.model().bn)
        .into_iter()
        .filter(|(p, _)| p == "mean" || p == "var")
        .collect();
    let mut val = loader(32, 16, false)?;
    trainer.fit(&mut loader(64, 16, false)?, Some(&mut val))?;
    let after: Vec<_> = state_bytes(&trainer.model().bn)
        .into_iter()
        .filter(|(p, _)| p == "mean" || p == "var")
        .collect();
    assert_eq!(after, frozen, "frozen batch statistics did not move");
    assert!(!trainer.model().bn.is_training(), "still in eval mode");
    assert!(
        trainer.model().dropout.is_training(),
        "the rest still trains"
    );

    // evaluate leaves every mode as it found it, whichever it was.
    trainer.model_mut().eval();
    trainer.evaluate(&mut val)?;
    assert!(!trainer.model().dropout.is_training());
    trainer.model_mut().train();
    trainer.evaluate(&mut val)?;
    assert!(trainer.model().dropout.is_training() && trainer.model().bn.is_training());
    Ok(())
}

#[test]
fn a_stop_request_ends_after_the_step_with_a_checkpoint_that_resumes_bitwise() -> Result<()> {
    let straight_dir = fresh_dir("loop-stop-straight");
    let mut straight = mlp_trainer(4, TrainerConfig::new(60, &straight_dir))?;
    straight.fit(&mut loader(64, 16, false)?, None)?;
    let expected = state_bytes(straight.model());

    let dir = fresh_dir("loop-stop");
    let handle: Arc<Mutex<Option<StopHandle>>> = Arc::default();
    let shared = handle.clone();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stopping_loss = move |m: &Mlp, b: &[Tensor]| {
        // A request during the 23rd step: that step still completes, the 24th never starts.
        if calls.fetch_add(1, Ordering::SeqCst) == 22 {
            if let Some(h) = shared.lock().expect("lock").as_ref() {
                h.request_stop();
            }
        }
        loss(m, b)
    };
    let model = Mlp::builder(8, 16, 2).rate(0.2).build(&mut Rngs::new(4))?;
    let opt = Adam::new(model.named_params(), 1e-2)?;
    let mut trainer = Trainer::new(model, opt, TrainerConfig::new(60, &dir), stopping_loss);
    *handle.lock().expect("lock") = Some(trainer.stop_handle());
    let mut data = loader(64, 16, false)?;
    let history = trainer.fit(&mut data, None)?;
    assert_eq!(history.stop, StopReason::Requested);
    assert!(history.interrupted());
    let stopped_at = trainer.step();
    assert_eq!((stopped_at, history.steps), (23, 23));
    let checkpoint = history
        .checkpoint
        .clone()
        .expect("checkpoint written on stop");
    assert!(checkpoint.ends_with(format!("step-{stopped_at:08}")));
    assert!(
        !trainer.stop_handle().is_stop_requested(),
        "the request was consumed"
    );
    drop(trainer);

    let mut resumed = mlp_trainer(99, TrainerConfig::new(60, &dir))?;
    let mut data = loader(64, 16, false)?;
    assert_eq!(resumed.resume(&mut data)?, Some(stopped_at));
    let history = resumed.fit(&mut data, None)?;
    assert_eq!(history.stop, StopReason::Completed);
    assert_eq!(state_bytes(resumed.model()), expected);
    assert_eq!(logged_steps(&dir), (1..=60).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn the_log_keeps_f32_precision_and_the_loss_plot_is_drawn() -> Result<()> {
    let dir = fresh_dir("loop-log");
    let mut trainer = mlp_trainer(5, TrainerConfig::new(8, &dir).eval_every(4))?;
    trainer.fit(
        &mut loader(64, 16, false)?,
        Some(&mut loader(32, 16, false)?),
    )?;
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("log");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let mse = v["mse"].as_f64().expect("mse");
        // The number as written is the shortest decimal of an f32, not of its f64 widening.
        let written = line
            .split("\"mse\":")
            .nth(1)
            .and_then(|r| r.split([',', '}']).next())
            .expect("mse field");
        assert_eq!(written, format!("{}", mse as f32), "{line}");
    }
    let png = image::open(dir.join("loss.png"))
        .expect("loss.png")
        .to_rgb8();
    assert!(png.width() > 400 && png.height() > 300);
    let ink = png.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(
        ink > 5_000,
        "axes, labels and curves are drawn ({ink} pixels)"
    );
    Ok(())
}
