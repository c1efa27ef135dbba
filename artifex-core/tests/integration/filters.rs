//! Filters over the state tree (NNX `nnx.state(model, filter)`, `nnx.Optimizer(wrt=...)`):
//! freezing a submodule for fine-tuning, an optimizer over a subset, a checkpoint of a
//! subset, and regularizers collected from their `impl Regularizer` alone.

use std::collections::BTreeMap;

use crate::common::{batch, bits, fresh_dir};
use artifex_core::data::{DataLoader, TensorDataset};
use artifex_core::optim::{Adam, Sgd};
use artifex_core::prelude::*;
use artifex_core::train::{Metrics, Trainer, TrainerConfig};
use artifex_core::walk::{Leaf, Segment, Visit};
use artifex_core::Regularizer;

#[module]
struct Encoder {
    #[init(Linear::new(4, 16, rngs)?)]
    proj: Linear,
    #[init(BatchNorm::new(16, rngs)?)]
    norm: BatchNorm,
}

#[module]
struct Classifier {
    #[init(Encoder::new(rngs)?)]
    encoder: Encoder,
    #[init(Linear::new(16, 2, rngs)?)]
    head: Linear,
}

impl Classifier {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.encoder.norm.forward(&self.encoder.proj.forward(x)?)?;
        self.head.forward(&h.relu()?)
    }
}

fn loss(model: &Classifier, batch: &[Tensor]) -> Result<(Tensor, Metrics)> {
    let mse = artifex_core::losses::mse(&model.forward(&batch[0])?, &batch[1])?;
    Ok((mse, Metrics::new()))
}

fn loader() -> Result<DataLoader> {
    let x = batch(64, 4);
    let y = x.narrow(1, 0, 2)?.sin()?;
    DataLoader::new(TensorDataset::new(vec![x, y])?, 16)
}

/// Bits of every parameter, by path.
fn param_bits(model: &Classifier) -> BTreeMap<String, Vec<u32>> {
    model
        .state_filtered(&Filter::params())
        .into_iter()
        .map(|(path, var)| (path, bits(&var.to_tensor().expect("tensor"))))
        .collect()
}

fn keys(model: &Classifier) -> Vec<String> {
    model.state().into_iter().map(|(p, _)| p).collect()
}

#[test]
fn a_frozen_encoder_stays_bitwise_while_the_trainer_fits_the_head() -> Result<()> {
    let mut model = Classifier::new(&mut Rngs::new(0))?;
    assert_eq!(model.freeze(&Filter::path("encoder"))?, 4); // proj.{kernel,bias}, norm.{scale,bias}
    let trainable: Vec<String> = model.named_params().into_iter().map(|(p, _)| p).collect();
    assert_eq!(trainable, ["head.kernel", "head.bias"]);
    assert_eq!(model.trainable_vars().len(), 2);

    // No gradient reaches a frozen parameter, even through an optimizer over everything.
    let grads = loss(&model, &[batch(8, 4), batch(8, 2)])?.0.backward()?;
    assert!(grads
        .get(model.encoder.proj.kernel.var().as_tensor())
        .is_none());
    assert!(grads.get(&model.head.kernel).is_some());

    let before = param_bits(&model);
    let all_keys = keys(&model);
    let optimizer = Adam::new(model.named_params(), 1e-2)?;
    let dir = fresh_dir("filters-finetune");
    let mut trainer = Trainer::new(model, optimizer, TrainerConfig::new(20, &dir), loss);
    let history = trainer.fit(&mut loader()?, None)?;
    assert_eq!(history.steps, 20);
    let after = param_bits(trainer.model());
    for (path, value) in &before {
        if path.starts_with("encoder.") {
            assert_eq!(&after[path], value, "{path} changed while frozen");
        } else {
            assert_ne!(&after[path], value, "{path} did not train");
        }
    }

    // Frozen parameters are still saved and loaded.
    let file = dir.join("model.safetensors");
    trainer.model().save_safetensors(&file)?;
    let mut fresh = Classifier::new(&mut Rngs::new(1))?;
    let report = fresh.load_safetensors(&file)?;
    assert_eq!(report.loaded, all_keys);
    assert_eq!(param_bits(&fresh), after);

    // Unfrozen, the encoder trains again.
    let mut model = trainer.into_model();
    assert_eq!(model.unfreeze(&Filter::path("encoder.*"))?, 4);
    assert_eq!(model.named_params().len(), 6);
    let grads = loss(&model, &[batch(8, 4), batch(8, 2)])?.0.backward()?;
    assert!(grads.get(&model.encoder.proj.kernel).is_some());
    Ok(())
}

#[test]
fn a_filter_that_selects_no_parameter_is_an_error_not_a_silent_no_op() -> Result<()> {
    let mut model = Classifier::new(&mut Rngs::new(0))?;
    let err = model.freeze(&Filter::path("encodr")).unwrap_err();
    assert!(err.to_string().contains("selects no parameter"), "{err}");
    assert_eq!(model.named_params().len(), 6);
    Ok(())
}

#[test]
fn an_optimizer_over_the_kernels_leaves_every_other_parameter_bitwise() -> Result<()> {
    let model = Classifier::new(&mut Rngs::new(0))?;
    let kernels = model.params_wrt(&Filter::path("*.kernel"));
    let paths: Vec<&str> = kernels.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["encoder.proj.kernel", "head.kernel"]);
    let before = param_bits(&model);
    let optimizer = Sgd::new(kernels, 0.1)?;
    let dir = fresh_dir("filters-kernels");
    let config = TrainerConfig::new(5, &dir).clip_grad_norm(1.0);
    let mut trainer = Trainer::new(model, optimizer, config, loss);
    trainer.fit(&mut loader()?, None)?;
    let after = param_bits(trainer.model());
    for (path, value) in &before {
        if path.ends_with(".kernel") {
            assert_ne!(&after[path], value, "{path} did not train");
        } else {
            assert_eq!(&after[path], value, "{path} is outside the optimizer");
        }
    }
    Ok(())
}

#[test]
fn state_filtered_selects_by_kind_path_and_combinations() -> Result<()> {
    let model = Classifier::new(&mut Rngs::new(0))?;
    let paths = |f: Filter| -> Vec<String> {
        model
            .state_filtered(&f)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    };
    assert_eq!(
        paths(Filter::kind(StateKind::BatchStat)),
        ["encoder.norm.mean", "encoder.norm.var"]
    );
    assert_eq!(
        paths(Filter::path("encoder.norm") & Filter::params()),
        ["encoder.norm.scale", "encoder.norm.bias"]
    );
    assert_eq!(
        paths(Filter::path("head") | Filter::path("*.mean")),
        ["encoder.norm.mean", "head.kernel", "head.bias"]
    );
    assert_eq!(
        paths(!Filter::path("encoder")),
        ["head.kernel", "head.bias"]
    );
    assert_eq!(paths(Filter::Everything), keys(&model));
    Ok(())
}

#[test]
fn a_checkpoint_of_the_head_loads_into_a_full_model_and_reports_the_rest() -> Result<()> {
    let model = Classifier::new(&mut Rngs::new(0))?;
    let dir = fresh_dir("filters-subset");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("head.safetensors");
    model.save_safetensors_with(&file, &SaveOptions::default().only(Filter::path("head")))?;

    let mut other = Classifier::new(&mut Rngs::new(5))?;
    let encoder_before = bits(&other.encoder.proj.kernel);
    // Strict: the file lacks the encoder, nothing changes.
    assert!(other.load_safetensors(&file).is_err());
    let report = other.load_safetensors_with(&file, &LoadOptions::lenient())?;
    assert_eq!(report.loaded, ["head.kernel", "head.bias"]);
    assert_eq!(
        report.missing,
        [
            "encoder.proj.kernel",
            "encoder.proj.bias",
            "encoder.norm.scale",
            "encoder.norm.bias",
            "encoder.norm.mean",
            "encoder.norm.var"
        ]
    );
    assert!(
        report.summary().contains("PARTIAL LOAD"),
        "{}",
        report.summary()
    );
    assert_eq!(bits(&other.head.kernel), bits(&model.head.kernel));
    assert_eq!(bits(&other.encoder.proj.kernel), encoder_before);

    let err = model
        .save_safetensors_with(&file, &SaveOptions::default().only(Filter::path("nothing")))
        .unwrap_err();
    assert!(
        err.to_string().contains("selects no state variable"),
        "{err}"
    );
    Ok(())
}

/// A user layer with a penalty and no marker: the `impl Regularizer` alone counts.
#[module]
struct Decayed {
    #[init(Linear::new(3, 3, rngs)?)]
    inner: Linear,
}

impl Regularizer for Decayed {
    fn regularization_loss(&self) -> Result<Tensor> {
        Ok(self.inner.kernel.sqr()?.sum_all()?)
    }
}

/// A generic wrapper whose penalty impl needs no more than its `Module` bounds.
#[derive(Module)]
struct Penalized<L> {
    inner: L,
}

impl<L: Module> Regularizer for Penalized<L> {
    fn regularization_loss(&self) -> Result<Tensor> {
        Ok(Tensor::new(1f32, &Device::Cpu)?)
    }
}

#[derive(Module)]
struct Holder {
    items: Vec<Decayed>,
    wrapped: Penalized<Linear>,
    plain: Linear,
}

#[test]
fn a_regularizer_impl_alone_is_collected_through_the_tree() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let model = Holder {
        items: vec![Decayed::new(rngs)?, Decayed::new(rngs)?],
        wrapped: Penalized {
            inner: Linear::new(2, 2, rngs)?,
        },
        plain: Linear::new(2, 2, rngs)?,
    };
    let expected: f32 = model
        .items
        .iter()
        .map(|d| {
            d.regularization_loss()?
                .to_scalar::<f32>()
                .map_err(Error::from)
        })
        .sum::<Result<f32>>()?
        + 1.0;
    let total = model
        .collect_regularization_loss()?
        .expect("three regularizers")
        .to_scalar::<f32>()?;
    assert!((total - expected).abs() < 1e-5, "{total} vs {expected}");
    assert!(Linear::new(2, 2, rngs)?
        .collect_regularization_loss()?
        .is_none());
    Ok(())
}

/// A new operation is one visitor: here, the deepest nesting of the tree.
#[test]
fn a_new_operation_is_one_visitor_over_every_container() -> Result<()> {
    struct Depth {
        now: usize,
        max: usize,
        top: usize,
        first_leaf_top: Option<usize>,
    }
    impl<'a> Visit<'a> for Depth {
        fn enter(&mut self, segment: Segment<'_>) -> bool {
            if let (Segment::Index(i), 0) = (segment, self.now) {
                self.top = i;
            }
            self.now += 1;
            true
        }
        fn leave(&mut self) {
            self.now -= 1;
        }
        fn leaf(&mut self, leaf: Leaf<'a>) {
            if let Leaf::State(_) = leaf {
                self.max = self.max.max(self.now);
                self.first_leaf_top.get_or_insert(self.top);
            }
        }
    }
    let rngs = &mut Rngs::new(0);
    let model: Vec<Option<Box<Classifier>>> = vec![None, Some(Box::new(Classifier::new(rngs)?))];
    let mut depth = Depth {
        now: 0,
        max: 0,
        top: 0,
        first_leaf_top: None,
    };
    model.walk(&mut depth);
    // 1.encoder.norm.mean: Option and Box add no level.
    assert_eq!((depth.max, depth.first_leaf_top), (4, Some(1)));
    assert_eq!(depth.now, 0);
    Ok(())
}
