//! Hostile and broken files: mutated, truncated and hand-crafted safetensors never panic the
//! loader, every failure is a typed checkpoint error, and no load allocates far beyond the
//! size of the file.
//!
//! The suite runs 2,000 deterministic cases. More, or another sequence:
//!
//! ```sh
//! ARTIFEX_FUZZ_CASES=100000 ARTIFEX_FUZZ_SEED=1 \
//!     cargo test --release -p artifex-models --test hostile_files -- --nocapture
//! ```
//!
//! A failing case prints its seed and index; rerun with the same variables to reproduce.
//!
//! The config family (`hostile_configs_...`) does the same with checkpoints of every
//! `#[module(serde)]` model whose stored config is mutated, fed to `from_checkpoint`: the
//! config decides what gets built, so it must be checked against the file before anything
//! is allocated.

#[path = "../../artifex-core/tests/common/mod.rs"]
mod common;
mod hostile_configs;
mod seed_models;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use artifex_core::checkpoint::{self, Adapter, CheckpointFile, LoadOptions, SaveOptions};
use artifex_core::prelude::*;
use artifex_core::CheckpointError;
use common::Mlp;

// ---- allocation accounting (per thread, so parallel tests do not interfere) -------------

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: forwards to the system allocator; the bookkeeping allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the peak of bytes it held live at once.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

/// Runs `f` with the panic messages of this thread silenced (cases that panic are counted as
/// failures anyway). The hook is installed once and silences only flagged threads, so
/// parallel tests neither race on it nor lose their own assertion messages.
fn quiet_panics<T>(f: impl FnOnce() -> T) -> T {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let out = f();
    QUIET.with(|q| q.set(false));
    out
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

// ---- deterministic randomness ----------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

// ---- case generation -------------------------------------------------------------------

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "7",
    "-1",
    "-9223372036854775808",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e30",
    "0.5",
    "null",
    "\"3\"",
    "[]",
];
const DTYPES: &[&str] = &[
    "F32", "F16", "BF16", "F64", "I64", "U32", "U8", "I8", "I16", "I32", "U16", "U64", "BOOL",
    "F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64", "f32", "", "XYZ",
];

fn split(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    Some((n, bytes.get(8..8usize.checked_add(n)?)?))
}

fn assemble(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// Replaces the header of a valid file, fixing the length field.
fn with_header(base: &[u8], header: &[u8]) -> Vec<u8> {
    match split(base) {
        Some((n, _)) => assemble(header, &base[8 + n..]),
        None => base.to_vec(),
    }
}

fn mutate(base: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = base.to_vec();
    let (hlen, header) = split(base)
        .map(|(n, h)| (n, h.to_vec()))
        .unwrap_or((0, Vec::new()));
    match rng.below(12) {
        // Bit flips anywhere.
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            b
        }
        // JSON-significant bytes written into the header.
        1 => {
            for _ in 0..1 + rng.below(4) {
                let i = 8 + rng.below(hlen.max(1));
                if i < b.len() {
                    b[i] = rng.pick(b"{}[]:,\"-0123456789e. \\\x00\xff");
                }
            }
            b
        }
        // Truncation.
        2 => {
            b.truncate(rng.below(b.len()));
            b
        }
        // Trailing garbage.
        3 => {
            for _ in 0..1 + rng.below(64) {
                b.push(rng.next() as u8);
            }
            b
        }
        // The length field: huge, zero, off by a little, random.
        4 => {
            let v: u64 = match rng.below(6) {
                0 => u64::MAX,
                1 => 1 << 63,
                2 => 0,
                3 => (hlen as u64)
                    .wrapping_add(rng.below(17) as u64)
                    .wrapping_sub(8),
                4 => b.len() as u64,
                _ => rng.next() >> rng.below(64),
            };
            b[..8].copy_from_slice(&v.to_le_bytes());
            b
        }
        // One number of the header (shape or offset) replaced.
        5 | 6 => {
            let text = String::from_utf8_lossy(&header).into_owned();
            let runs: Vec<(usize, usize)> = hostile_configs::digit_runs(&text);
            if runs.is_empty() {
                return b;
            }
            let (s, e) = rng.pick(&runs);
            let new = format!("{}{}{}", &text[..s], rng.pick(NUMBERS), &text[e..]);
            with_header(base, &pad(new.into_bytes()))
        }
        // One dtype replaced.
        7 => {
            let text = String::from_utf8_lossy(&header).into_owned();
            let at: Vec<usize> = text
                .match_indices("\"dtype\":\"")
                .map(|(i, _)| i + 9)
                .collect();
            if at.is_empty() {
                return b;
            }
            let s = rng.pick(&at);
            let e = s + text[s..].find('"').unwrap_or(0);
            let new = format!("{}{}{}", &text[..s], rng.pick(DTYPES), &text[e..]);
            with_header(base, &pad(new.into_bytes()))
        }
        // A range of the file copied over another (overlapping data, duplicated keys).
        8 => {
            let len = 1 + rng.below(64);
            let (from, to) = (rng.below(b.len()), rng.below(b.len()));
            let chunk: Vec<u8> = b[from..(from + len).min(b.len())].to_vec();
            for (k, byte) in chunk.into_iter().enumerate() {
                if to + k < b.len() {
                    b[to + k] = byte;
                }
            }
            b
        }
        // Entry keys renamed to collide or to other model keys.
        9 => {
            let text = String::from_utf8_lossy(&header).into_owned();
            let new = text.replacen(
                rng.pick(&["fc1.", "bn.", "\"fc2.bias\"", "dropout."]),
                rng.pick(&["fc2.", "bn.", "\"fc1.bias\"", "", "x."]),
                1 + rng.below(2),
            );
            with_header(base, &pad(new.into_bytes()))
        }
        // Header JSON truncated or with garbage appended inside the header.
        10 => {
            let mut h = header.clone();
            h.truncate(rng.below(h.len().max(1)));
            if rng.below(2) == 0 {
                let tails: [&[u8]; 4] = [b"}", b"]]", b",\"a\":{}}", b"\xc3\x28"];
                let tail: &[u8] = rng.pick(&tails[..]);
                h.extend_from_slice(tail);
            }
            with_header(base, &h)
        }
        _ => crafted(rng),
    }
}

fn pad(mut h: Vec<u8>) -> Vec<u8> {
    h.resize(h.len().next_multiple_of(8), b' ');
    h
}

/// A file written from scratch: random entries (model keys or not), dtypes, shapes and
/// offsets (overlapping, reversed, past the end), odd JSON, deep nesting.
fn crafted(rng: &mut Rng) -> Vec<u8> {
    const KEYS: &[&str] = &[
        "fc1.kernel",
        "fc1.bias",
        "bn.mean",
        "bn.var",
        "bn.scale",
        "fc2.kernel",
        "dropout.rngs.key",
        "dropout.rngs.count",
        "other",
        "__metadata__",
        "",
    ];
    const DIMS: &[&str] = &[
        "0",
        "1",
        "2",
        "3",
        "6",
        "8",
        "10",
        "65536",
        "4294967297",
        "18446744073709551615",
        "-3",
    ];
    let header = match rng.below(8) {
        0 => format!(
            "{}{}",
            "[".repeat(1 + rng.below(100_000)),
            "]".repeat(rng.below(3))
        ),
        1 => rng
            .pick(&[
                "",
                "{",
                "null",
                "[]",
                "\"x\"",
                "{\"a\":1}",
                "{\"__metadata__\":{\"a\":1}}",
                "{\"__metadata__\":[]}",
                "{\"a\":{\"dtype\":\"F32\"}}",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0]}}",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
            ])
            .to_string(),
        _ => {
            let mut parts = Vec::new();
            if rng.below(3) == 0 {
                parts.push(
                    "\"__metadata__\":{\"format\":\"artifex\",\"config\":\"{}\"}".to_string(),
                );
            }
            let mut offset: u64 = 0;
            for _ in 0..rng.below(6) {
                let dims: Vec<&str> = (0..rng.below(4)).map(|_| rng.pick(DIMS)).collect();
                let size: u64 = 4 * (1 + rng.below(40) as u64);
                let (s, e) = match rng.below(5) {
                    0 => (offset, offset + size),
                    1 => (offset.saturating_sub(4), offset + size),
                    2 => (offset + size, offset),
                    3 => (rng.next() >> rng.below(64), rng.next() >> rng.below(64)),
                    _ => (offset, u64::MAX),
                };
                offset = offset.saturating_add(size);
                parts.push(format!(
                    "\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{s},{e}]}}",
                    rng.pick(KEYS),
                    rng.pick(DTYPES),
                    dims.join(",")
                ));
            }
            format!("{{{}}}", parts.join(","))
        }
    };
    let data: Vec<u8> = (0..rng.below(512)).map(|_| rng.next() as u8).collect();
    assemble(&pad(header.into_bytes()), &data)
}

/// Valid files for the model with entries of random float dtypes and random values
/// (including NaN and infinities): they load under the conversion policy or are refused.
fn valid_variant(model: &Mlp, rng: &mut Rng) -> Vec<u8> {
    let mut entries = Vec::new();
    for (key, var) in model.state() {
        if rng.below(8) == 0 {
            continue;
        }
        let t = var.to_tensor().expect("tensor");
        let t = if t.dtype() == DType::F32 {
            let dt = rng.pick(&[DType::F32, DType::F16, DType::BF16, DType::F64]);
            let n = t.elem_count();
            let v: Vec<f32> = (0..n).map(|_| f32::from_bits(rng.next() as u32)).collect();
            Tensor::from_vec(v, t.dims(), &Device::Cpu)
                .and_then(|x| x.to_dtype(dt))
                .expect("tensor")
        } else {
            t
        };
        entries.push((key, t));
    }
    safetensors::serialize(entries, None).expect("serialize")
}

// ---- the harness -----------------------------------------------------------------------

/// The variant of a typed checkpoint error; anything else is a failure of the case.
fn check_error(err: &Error) -> std::result::Result<&'static str, String> {
    match err {
        Error::Checkpoint(CheckpointError::Corrupt { .. }) => Ok("corrupt"),
        Error::Checkpoint(CheckpointError::Incompatible { .. }) => Ok("incompatible"),
        Error::Checkpoint(CheckpointError::NothingLoaded { .. }) => Ok("nothing loaded"),
        Error::Checkpoint(CheckpointError::Entry { .. }) => Ok("entry"),
        Error::Checkpoint(CheckpointError::Io { .. }) => Ok("io"),
        other => Err(format!("untyped error: {other:?}")),
    }
}

/// Feeds one case to every reader; returns the peak allocation of the load and whether it
/// loaded.
fn run_case(
    bytes: &[u8],
    model: &Mlp,
    rng: &mut Rng,
    dir: &std::path::Path,
    via_file: bool,
) -> std::result::Result<(usize, &'static str), String> {
    let options = match rng.below(4) {
        0 => LoadOptions::strict(),
        1 => LoadOptions::lenient(),
        2 => LoadOptions::lenient().with_dtype_conversion(),
        _ => LoadOptions::nnx().with_dtype_conversion(),
    };
    let (res, peak) = peak_of(|| checkpoint::load_bytes(model, bytes, &options));
    let outcome = match &res {
        Ok(_) => "loaded",
        Err(e) => check_error(e)?,
    };
    if via_file {
        let path = dir.join("case.safetensors");
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        if let Err(e) = checkpoint::load(model, &path, &options) {
            check_error(&e)?;
        }
        match CheckpointFile::open(&path) {
            Ok(f) => {
                f.specs().map_err(|e| e.to_string())?;
                f.metadata().map_err(|e| e.to_string())?;
            }
            Err(e) => {
                check_error(&e)?;
            }
        }
        match Adapter::pytorch().apply_file(&path) {
            Ok(_) | Err(Error::Config { .. }) => {}
            Err(e) => {
                check_error(&e)?;
            }
        }
    }
    Ok((peak, outcome))
}

fn fuzz(cases: u64, seed: u64) {
    let dir = std::env::temp_dir().join(format!("artifex-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let model = Mlp::new(6, 10, 3, &mut Rngs::new(0)).expect("model");
    let mut base = Vec::new();
    checkpoint::save_to_writer(&model, &mut base, &SaveOptions::default()).expect("save");
    let mut failures = Vec::new();
    let mut worst = (0usize, 0usize);
    let mut outcomes: std::collections::BTreeMap<&str, u64> = Default::default();
    for case in 0..cases {
        let mut rng = Rng(seed.wrapping_mul(0x1000_0000_01B3) ^ case);
        let bytes = match case % 10 {
            0 => crafted(&mut rng),
            1 => valid_variant(&model, &mut rng),
            2 => mutate(&valid_variant(&model, &mut rng), &mut rng),
            _ => mutate(&base, &mut rng),
        };
        let via_file = case % 25 == 0;
        let outcome = quiet_panics(|| {
            catch_unwind(AssertUnwindSafe(|| {
                run_case(&bytes, &model, &mut rng, &dir, via_file)
            }))
        });
        match outcome {
            Ok(Ok((peak, outcome))) => {
                if peak > worst.0 {
                    worst = (peak, bytes.len());
                }
                if peak > 64 * bytes.len() + (1 << 20) {
                    failures.push(format!(
                        "case {case}: {peak} bytes allocated for a {}-byte file",
                        bytes.len()
                    ));
                }
                *outcomes.entry(outcome).or_default() += 1;
            }
            Ok(Err(msg)) => failures.push(format!("case {case}: {msg}")),
            Err(_) => failures.push(format!("case {case}: PANIC")),
        }
        if failures.len() >= 10 {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{cases} hostile cases (seed {seed}): {outcomes:?}; \
         largest peak allocation {} bytes (for a {}-byte file)",
        worst.0, worst.1
    );
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
}

#[test]
fn hostile_files_never_panic_and_fail_with_typed_errors() {
    let cases = std::env::var("ARTIFEX_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let seed = std::env::var("ARTIFEX_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    fuzz(cases, seed);
}

// ---- the config family ------------------------------------------------------------------

/// Error kinds `from_checkpoint` may return for a hostile config; anything else fails.
fn check_config_error(err: &Error) -> std::result::Result<&'static str, String> {
    match err {
        Error::Config { .. } => Ok("config"),
        Error::Checkpoint(CheckpointError::ConfigExceedsFile { .. }) => Ok("exceeds-file"),
        Error::Checkpoint(CheckpointError::Entry { .. }) => Ok("bad-json"),
        Error::Checkpoint(CheckpointError::Incompatible { .. }) => Ok("incompatible"),
        other => Err(format!("untyped error: {other:?}")),
    }
}

/// `base` (a checkpoint) with its `config` metadata replaced by `config`.
fn with_config(base: &[u8], config: &str) -> Vec<u8> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(base).expect("base metadata");
    let mut metadata = meta.metadata().clone().unwrap_or_default();
    metadata.insert("config".into(), config.into());
    let tensors = safetensors::SafeTensors::deserialize(base).expect("base");
    safetensors::serialize(tensors.tensors(), Some(metadata)).expect("serialize")
}

fn fuzz_configs(cases: u64, seed: u64) {
    let dir = std::env::temp_dir().join(format!("artifex-configs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let models = seed_models::seed_models();
    let mut failures = Vec::new();
    let (mut worst, mut worst_ratio) = ((0usize, 0usize, ""), 0f64);
    let mut outcomes: std::collections::BTreeMap<&str, u64> = Default::default();
    for case in 0..cases {
        let mut rng = Rng(seed.wrapping_mul(0x1000_0000_01B3) ^ case ^ 0xC0F1_6000);
        let model = &models[case as usize % models.len()];
        let mut config = model.config_json.clone();
        for _ in 0..1 + rng.below(2) {
            config = hostile_configs::mutate_config(&config, &mut |n| rng.below(n));
        }
        let bytes = with_config(&model.checkpoint, &config);
        let path = dir.join("case.safetensors");
        std::fs::write(&path, &bytes).expect("write case");
        let outcome = quiet_panics(|| {
            catch_unwind(AssertUnwindSafe(|| {
                peak_of(|| (model.from_checkpoint)(&path))
            }))
        });
        match outcome {
            Ok((result, peak)) => {
                let kind = match &result {
                    Ok(()) => Ok("loaded"),
                    Err(e) => check_config_error(e),
                };
                match kind {
                    Ok(kind) => *outcomes.entry(kind).or_default() += 1,
                    Err(msg) => {
                        failures.push(format!("case {case} ({}, {config}): {msg}", model.name))
                    }
                }
                if peak > worst.0 {
                    worst = (peak, bytes.len(), model.name);
                }
                if bytes.len() >= 1 << 16 {
                    worst_ratio = worst_ratio.max(peak as f64 / bytes.len() as f64);
                }
                // The file family's bound. A config that is mostly a long list of one-digit
                // sizes grows ~4x when parsed (8 bytes per entry) and is held a few times
                // (metadata, parsed config, the builders' copies): ~16x measured.
                if peak > 64 * bytes.len() + (1 << 20) {
                    failures.push(format!(
                        "case {case} ({}, {config}): {peak} bytes allocated for a {}-byte file",
                        model.name,
                        bytes.len()
                    ));
                }
            }
            Err(_) => failures.push(format!("case {case} ({}, {config}): PANIC", model.name)),
        }
        if failures.len() >= 10 {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{cases} hostile configs over {} models (seed {seed}): {outcomes:?}; largest peak \
         allocation {} bytes (a {}-byte {} file); largest peak / file size for files of \
         64 KiB or more {worst_ratio:.2}",
        models.len(),
        worst.0,
        worst.1,
        worst.2
    );
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
}

#[test]
fn hostile_configs_never_panic_and_allocate_within_the_file() {
    let cases = std::env::var("ARTIFEX_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let seed = std::env::var("ARTIFEX_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    fuzz_configs(cases, seed);
}

#[test]
fn the_allocation_counter_counts() {
    let (_, peak) = peak_of(|| vec![0u8; 1 << 20]);
    assert!(peak >= 1 << 20);
}
