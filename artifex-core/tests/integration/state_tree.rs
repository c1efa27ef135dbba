//! The derived state tree: paths, kinds, containers, trainable vars, counts, summary.

use crate::common;

use std::collections::BTreeMap;

use artifex_core::prelude::*;
use common::Mlp;

#[derive(Module)]
struct Containers {
    layers: Vec<Option<Box<Linear>>>,
    pair: (Linear, BatchNorm),
    fixed: [LayerNorm; 2],
    named: BTreeMap<String, Linear>,
    skipped: Option<Linear>,
    #[config]
    width: usize,
}

fn containers(rngs: &mut Rngs) -> Result<Containers> {
    Ok(Containers {
        layers: vec![
            Some(Box::new(Linear::new(2, 3, rngs)?)),
            None,
            Some(Box::new(Linear::new(3, 4, rngs)?)),
        ],
        pair: (Linear::new(4, 4, rngs)?, BatchNorm::new(4, rngs)?),
        fixed: [LayerNorm::new(4, rngs)?, LayerNorm::new(4, rngs)?],
        named: BTreeMap::from([(
            "head".to_string(),
            Linear::builder(4, 1).use_bias(false).build(rngs)?,
        )]),
        skipped: None,
        width: 4,
    })
    .inspect(|c| assert_eq!(c.width, 4))
}

#[test]
fn paths_follow_nnx_naming_through_every_container() -> Result<()> {
    let model = containers(&mut Rngs::new(0))?;
    let paths: Vec<String> = model.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "layers.0.kernel",
            "layers.0.bias",
            "layers.2.kernel",
            "layers.2.bias",
            "pair.0.kernel",
            "pair.0.bias",
            "pair.1.scale",
            "pair.1.bias",
            "pair.1.mean",
            "pair.1.var",
            "fixed.0.scale",
            "fixed.0.bias",
            "fixed.1.scale",
            "fixed.1.bias",
            "named.head.kernel",
        ]
    );
    Ok(())
}

#[test]
fn kinds_and_trainable_vars_exclude_batch_stats_and_rng_state() -> Result<()> {
    let model = Mlp::new(5, 8, 2, &mut Rngs::new(0))?;
    let kinds: Vec<(String, StateKind)> = model
        .state()
        .into_iter()
        .map(|(p, v)| (p, v.kind()))
        .collect();
    let expect = [
        ("fc1.kernel", StateKind::Param),
        ("fc1.bias", StateKind::Param),
        ("bn.scale", StateKind::Param),
        ("bn.bias", StateKind::Param),
        ("bn.mean", StateKind::BatchStat),
        ("bn.var", StateKind::BatchStat),
        ("dropout.rngs.count", StateKind::RngCount),
        ("dropout.rngs.key", StateKind::RngKey),
        ("fc2.kernel", StateKind::Param),
        ("fc2.bias", StateKind::Param),
    ];
    let expect: Vec<(String, StateKind)> =
        expect.iter().map(|(p, k)| (p.to_string(), *k)).collect();
    assert_eq!(kinds, expect);

    let trainable = model.named_params();
    assert_eq!(trainable.len(), 6);
    assert!(trainable
        .iter()
        .all(|(p, _)| !p.ends_with("mean") && !p.ends_with("var")));
    assert_eq!(model.trainable_vars().len(), 6);
    assert_eq!(model.num_params(), 5 * 8 + 8 + 8 + 8 + 8 * 2 + 2);
    Ok(())
}

#[test]
fn summary_lists_every_variable_with_totals() -> Result<()> {
    let model = Mlp::new(5, 8, 2, &mut Rngs::new(0))?;
    let summary = model.summary();
    assert_eq!(summary.rows.len(), 10);
    assert_eq!(summary.total(StateKind::Param), model.num_params());
    assert_eq!(summary.total(StateKind::BatchStat), 16);
    let text = summary.to_string();
    assert!(text.contains("fc1.kernel") && text.contains("[5, 8]") && text.contains("BatchStat"));
    assert!(
        text.contains(&format!("params: {}", model.num_params())),
        "{text}"
    );
    Ok(())
}

/// Generic structs get `Module` bounds on the fields that mention their type parameters.
#[derive(Module)]
struct Wrapper<M> {
    inner: M,
    extra: Vec<M>,
    #[config]
    note: &'static str,
}

/// Tuple structs name their fields by index.
#[derive(Module)]
struct Pair(Linear, #[config] usize, Linear);

#[test]
fn generic_and_tuple_structs_derive() -> Result<()> {
    let rngs = &mut Rngs::new(1);
    let w = Wrapper {
        inner: LayerNorm::new(3, rngs)?,
        extra: vec![LayerNorm::new(3, rngs)?],
        note: "x",
    };
    let paths: Vec<String> = w.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        ["inner.scale", "inner.bias", "extra.0.scale", "extra.0.bias"]
    );
    assert_eq!(w.note, "x");

    let p = Pair(Linear::new(2, 2, rngs)?, 7, Linear::new(2, 1, rngs)?);
    let paths: Vec<String> = p.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["0.kernel", "0.bias", "2.kernel", "2.bias"]);
    assert_eq!(p.1, 7);
    Ok(())
}

/// Type aliases and re-exports are classified by trait, not by name.
mod aliases {
    pub type Dense = artifex_core::layers::Linear;
    pub type Weights = artifex_core::Param;
}

#[derive(Module)]
struct Aliased {
    dense: aliases::Dense,
    extra: aliases::Weights,
}

#[test]
fn aliased_types_are_visited() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let m = Aliased {
        dense: aliases::Dense::new(2, 2, rngs)?,
        extra: Param::new(&Tensor::zeros(3, DType::F32, &Device::Cpu)?)?,
    };
    let paths: Vec<String> = m.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["dense.kernel", "dense.bias", "extra"]);
    Ok(())
}

#[test]
fn layer_errors_name_the_module_path_and_shapes() -> Result<()> {
    let mut model = Mlp::new(5, 8, 2, &mut Rngs::new(0))?;
    let err = model
        .fc2
        .forward(&common::batch(4, 7))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "fc2 (Linear): expected input of shape [*, 8], got [4, 7]"
    );
    model.eval();
    let err = model.forward(&common::batch(4, 6)).unwrap_err().to_string();
    assert_eq!(
        err,
        "fc1 (Linear): expected input of shape [*, 5], got [4, 6]"
    );
    let err = model
        .bn
        .forward(&common::batch(4, 3))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "bn (BatchNorm): expected input of shape [*, 8], got [4, 3]"
    );
    Ok(())
}

#[test]
fn config_errors_at_construction() {
    let rngs = &mut Rngs::new(0);
    let err = Dropout::new(1.5, rngs).unwrap_err().to_string();
    assert_eq!(
        err,
        "Dropout: invalid configuration: dropout rate must be in [0, 1], got 1.5"
    );
    let err = Linear::new(0, 3, rngs).unwrap_err().to_string();
    assert!(
        err.contains("in_features and out_features must be positive, got 0 and 3"),
        "{err}"
    );
    assert!(BatchNorm::new(0, rngs).is_err());
    assert!(BatchNorm::builder(3).momentum(1.5).build(rngs).is_err());
}
