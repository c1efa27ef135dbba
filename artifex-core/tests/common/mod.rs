//! Small models shared by the integration tests.
#![allow(dead_code)]

pub mod fixture;

use artifex_core::prelude::*;

/// An MLP with every kind of state: params, batch stats, a dropout stream.
#[module]
pub struct Mlp {
    #[init(Linear::new(din, hidden, rngs)?)]
    pub fc1: Linear,
    #[init(BatchNorm::new(hidden, rngs)?)]
    pub bn: BatchNorm,
    #[init(Dropout::new(rate, rngs)?)]
    pub dropout: Dropout,
    #[init(Linear::new(hidden, dout, rngs)?)]
    pub fc2: Linear,
    #[config]
    pub din: usize,
    #[config]
    pub hidden: usize,
    #[config]
    pub dout: usize,
    #[config(default = 0.5)]
    pub rate: f64,
}

impl Mlp {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.bn.forward(&self.fc1.forward(x)?)?.relu()?;
        self.fc2.forward(&self.dropout.forward(&h)?)
    }
}

/// An empty directory under the system temp dir, unique to this process and `name`.
pub fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("artifex-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `child` (an ignored test of the calling test binary) once with `RAYON_NUM_THREADS=1`
/// and once with 2, telling it through the environment variable `out_var` where to write its
/// fingerprint; returns the two fingerprints, for a thread-count independence check.
pub fn fingerprints_at_1_and_2_threads(child: &str, out_var: &str) -> [String; 2] {
    let dir = fresh_dir(&format!("fp-{child}"));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let prints = ["1", "2"].map(|threads| {
        let out = dir.join(format!("fp-{threads}"));
        let status = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", child, "--include-ignored", "--quiet"])
            .env("RAYON_NUM_THREADS", threads)
            .env(out_var, &out)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("spawn child");
        assert!(status.success(), "{child} with {threads} threads: {status}");
        std::fs::read_to_string(&out).expect("fingerprint written")
    });
    let _ = std::fs::remove_dir_all(dir);
    prints
}

/// A deterministic input batch.
pub fn batch(rows: usize, cols: usize) -> Tensor {
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).expect("tensor")
}

/// Every state entry as (path, raw little-endian bytes): bitwise comparison.
pub fn state_bytes<M: Module>(m: &M) -> Vec<(String, Vec<u8>)> {
    m.state()
        .into_iter()
        .map(|(p, v)| {
            let t = v.to_tensor().expect("to_tensor");
            let t = t.flatten_all().expect("flatten");
            let bytes = match t.dtype() {
                DType::F32 => t
                    .to_vec1::<f32>()
                    .expect("f32")
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                DType::U32 => t
                    .to_vec1::<u32>()
                    .expect("u32")
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                DType::I64 => t
                    .to_vec1::<i64>()
                    .expect("i64")
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                other => panic!("unexpected dtype {other:?}"),
            };
            (p, bytes)
        })
        .collect()
}

/// Raw bits of an f32 tensor.
pub fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .expect("flatten")
        .to_vec1::<f32>()
        .expect("f32")
        .iter()
        .map(|x| x.to_bits())
        .collect()
}
