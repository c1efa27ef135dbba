//! Every `#[module(serde)]` model of artifex-models, small, with its checkpoint (config
//! included) and loaders, for the abstract-state and hostile-config tests.

#![allow(dead_code)]

use std::path::Path;

use artifex_core::checkpoint::{self, model_specs, EntrySpec, SaveOptions};
use artifex_core::prelude::*;
use artifex_core::{read_config, AbstractState};
use artifex_models::{
    CustomDiscriminator, CustomGenerator, CustomVAE, DenseBlock, Gan, GenerativeConfig,
    MnistClassifier, MyCustomGenerativeModel, ResidualBlock, ResidualNetwork, UNetDecoder,
    UNetEncoder,
};

/// The state of a model as (path, value bits), for bitwise comparisons.
pub type StateBits = Vec<(String, Vec<u64>)>;

/// One seed model, built from seed 7.
pub struct SeedModel {
    /// The type name (as `artifex_models::MODEL_TYPES`).
    pub name: &'static str,
    /// Its config as JSON (what the checkpoint stores under `config`).
    pub config_json: String,
    /// A checkpoint of it, config included.
    pub checkpoint: Vec<u8>,
    /// The entries of the built model.
    pub specs: Vec<EntrySpec>,
    /// The state of the built model.
    pub bits: StateBits,
    /// `from_checkpoint` of a file.
    pub load: fn(&Path) -> Result<StateBits>,
    /// `from_checkpoint` of a file, the model dropped.
    pub from_checkpoint: fn(&Path) -> Result<()>,
    /// What `from_checkpoint` did before shape-first construction: build from the config
    /// with `Rngs::new(0)` (random values), then load strictly.
    pub load_by_building: fn(&Path) -> Result<StateBits>,
    /// The abstract state of a config JSON.
    pub abstract_state: fn(&str) -> Result<AbstractState>,
}

pub fn state_bits<M: Module>(model: &M) -> StateBits {
    model
        .state()
        .into_iter()
        .map(|(path, var)| {
            let t = var
                .to_tensor()
                .and_then(|t| Ok(t.flatten_all()?))
                .expect("tensor");
            let bits = match t.dtype() {
                DType::F32 => t
                    .to_vec1::<f32>()
                    .expect("f32")
                    .iter()
                    .map(|v| u64::from(v.to_bits()))
                    .collect(),
                DType::U32 => t
                    .to_vec1::<u32>()
                    .expect("u32")
                    .into_iter()
                    .map(u64::from)
                    .collect(),
                DType::I64 => t
                    .to_vec1::<i64>()
                    .expect("i64")
                    .into_iter()
                    .map(|v| v as u64)
                    .collect(),
                other => panic!("{path}: unexpected dtype {other:?}"),
            };
            (path, bits)
        })
        .collect()
}

fn load<M: Configurable>(path: &Path) -> Result<StateBits> {
    Ok(state_bits(&M::from_checkpoint(path)?))
}

fn from_checkpoint<M: Configurable>(path: &Path) -> Result<()> {
    M::from_checkpoint(path).map(drop)
}

fn load_by_building<M: Configurable>(path: &Path) -> Result<StateBits> {
    let config: M::Config = read_config(path)?;
    let mut model = M::from_config(config, &mut Rngs::new(0))?;
    assert!(model.load_safetensors(path)?.is_clean());
    Ok(state_bits(&model))
}

fn abstract_state<M: Configurable>(json: &str) -> Result<AbstractState> {
    let config: M::Config =
        serde_json::from_str(json).map_err(|e| Error::config("test", e.to_string()))?;
    M::abstract_state(&config)
}

fn seed<M: Configurable>(
    name: &'static str,
    build: impl FnOnce(&mut Rngs) -> Result<M>,
) -> SeedModel {
    let model = build(&mut Rngs::new(7)).expect(name);
    let mut checkpoint = Vec::new();
    let options = SaveOptions::with_config(&model.config()).expect("config");
    checkpoint::save_to_writer(&model, &mut checkpoint, &options).expect("save");
    SeedModel {
        name,
        config_json: serde_json::to_string(&model.config()).expect("json"),
        checkpoint,
        specs: model_specs(&model),
        bits: state_bits(&model),
        load: load::<M>,
        from_checkpoint: from_checkpoint::<M>,
        load_by_building: load_by_building::<M>,
        abstract_state: abstract_state::<M>,
    }
}

/// Every `#[module(serde)]` model, small.
pub fn seed_models() -> Vec<SeedModel> {
    vec![
        seed("CustomVAE", |r| {
            CustomVAE::new(vec![4, 4, 1], 3, vec![8, 6], vec![6, 8], r)
        }),
        seed("CustomGenerator", |r| {
            CustomGenerator::new(4, vec![2, 3], vec![8, 8, 8], r)
        }),
        seed("CustomDiscriminator", |r| {
            CustomDiscriminator::new(vec![2, 3], vec![8, 4], r)
        }),
        seed("Gan", |r| {
            Gan::new(3, vec![2, 2, 1], vec![4, 8, 4], vec![8, 4], r)
        }),
        seed("ResidualNetwork", |r| ResidualNetwork::new(5, 8, 2, r)),
        seed("ResidualBlock", |r| {
            ResidualBlock::builder(4)
                .stride(2)
                .downsample(true)
                .build(r)
        }),
        seed("DenseBlock", |r| DenseBlock::new(4, 3, 2, r)),
        seed("UNetEncoder", |r| UNetEncoder::new(vec![3, 4, 8], r)),
        seed("UNetDecoder", |r| {
            UNetDecoder::new(vec![8, 4, 2], vec![3, 4], r)
        }),
        seed("MyCustomGenerativeModel", |r| {
            let config = GenerativeConfig {
                latent_dim: 3,
                input_shape: vec![2, 2, 1],
            };
            MyCustomGenerativeModel::new(config, r)
        }),
        seed("MnistClassifier", |r| {
            MnistClassifier::builder()
                .conv_features(vec![2, 3])
                .hidden(4)
                .build(r)
        }),
    ]
}
