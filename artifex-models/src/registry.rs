//! The `#[module(serde)]` models of this crate by type name: their abstract state from a JSON
//! config, for tools (`artifex inspect --config FILE.json --type CustomVAE`) that describe a
//! model without building it.

use artifex_core::{AbstractState, Configurable, Error, Result};

use crate::{
    CustomDiscriminator, CustomGenerator, CustomVAE, DenseBlock, Gan, MnistClassifier,
    MyCustomGenerativeModel, ResidualBlock, ResidualNetwork, UNetDecoder, UNetEncoder,
};

/// Declares the registry from one list of model types: [`MODEL_TYPES`] and the dispatch of
/// [`abstract_state_from_json`] cannot drift apart.
macro_rules! registry {
    ($($model:ident),* $(,)?) => {
        /// The type names [`abstract_state_from_json`] knows.
        pub const MODEL_TYPES: &[&str] = &[$(stringify!($model)),*];

        /// The abstract state (paths, kinds, shapes, dtypes, bytes) of model `type_name` with
        /// the configuration `config_json` (the JSON a checkpoint stores under `config`, i.e.
        /// the serialized builder), built without allocating the model.
        ///
        /// ```
        /// let json = r#"{"input_shape":[28,28,1],"latent_dim":20,
        ///                "encoder_layers":[65536,65536],"decoder_layers":[65536,65536]}"#;
        /// let state = artifex_models::abstract_state_from_json("CustomVAE", json)?;
        /// assert!(state.bytes() > 34_000_000_000); // 35 GB described, nothing allocated
        /// assert_eq!(state.vars[0].path, "encoder.0.kernel");
        /// # Ok::<(), artifex_core::Error>(())
        /// ```
        pub fn abstract_state_from_json(type_name: &str, config_json: &str) -> Result<AbstractState> {
            match type_name {
                $(stringify!($model) => trace::<$model>(type_name, config_json),)*
                other => Err(Error::config(
                    other,
                    format!("unknown model type; known types: {}", MODEL_TYPES.join(", ")),
                )),
            }
        }
    };
}

registry!(
    CustomVAE,
    CustomGenerator,
    CustomDiscriminator,
    Gan,
    ResidualNetwork,
    ResidualBlock,
    DenseBlock,
    UNetEncoder,
    UNetDecoder,
    MyCustomGenerativeModel,
    MnistClassifier,
);

fn trace<M: Configurable>(type_name: &str, json: &str) -> Result<AbstractState> {
    let config: M::Config = serde_json::from_str(json).map_err(|e| {
        Error::config(
            type_name,
            format!("the config JSON does not fit this model: {e}"),
        )
    })?;
    M::abstract_state(&config)
}
