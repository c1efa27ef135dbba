#!/usr/bin/env python3
"""Flax NNX <-> artifex checkpoints, both directions, with the seed's CustomVAE.

    python3 python/nnx_interop.py

(a) NNX -> artifex. Builds the seed `CustomVAE((6, 6, 1), 3, [8, 6], [6, 8])` (the class of
    make_fixtures.py, state perturbed the same way), exports
    `nnx.state(model, (nnx.Param, nnx.BatchStat))` with `.`-joined paths using the standard
    `safetensors.flax.save_file` to tests/fixtures/interop/nnx_vae_state.safetensors, and its
    outputs to nnx_vae_state.expected.safetensors (config in the metadata). The Rust test
    artifex-models/tests/integration/interop_nnx.rs loads the state into `artifex_models::CustomVAE` with
    `LoadOptions::nnx()` and no renaming.

(b) artifex -> NNX. Reads tests/fixtures/interop/rust_vae.safetensors, a checkpoint written by
    the Rust code (`cargo test --release -p artifex-models --test integration -- --ignored write_rust_vae_fixture`),
    rebuilds the NNX CustomVAE from the config stored in its metadata, loads every Param and
    BatchStat by path (the only other keys allowed are artifex's rng state `rngs.key` /
    `rngs.count`), and checks NNX's outputs against the ones the Rust code computed and stored
    in rust_vae.expected.safetensors (eval encode/decode, train-mode encode and the batch
    statistics after it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402
from safetensors import safe_open  # noqa: E402
import safetensors.flax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import CustomVAE, flat, params_and_stats, perturb, write_safetensors  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "interop"
RNG_KEYS = {"rngs.key", "rngs.count"}


def f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def outputs(model: CustomVAE, x: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    """Eval encode/decode, then a train-mode encode and the encoder batch stats after it."""
    m = nnx.clone(model)
    enc = m.encode(jnp.asarray(x), use_running_average=True)
    out = {"enc_eval.mean": f32(enc["mean"]), "enc_eval.logvar": f32(enc["logvar"]),
           "dec_eval": f32(m.decode(jnp.asarray(z), use_running_average=True))}
    enc = m.encode(jnp.asarray(x), use_running_average=False)
    out["enc_train.mean"] = f32(enc["mean"])
    for k, v in flat(nnx.state(m.encoder, nnx.BatchStat), "after_train.encoder.").items():
        out[k] = f32(v)
    return out


def export_nnx_state():
    cfg = {"input_shape": [6, 6, 1], "latent_dim": 3, "encoder_layers": [8, 6],
           "decoder_layers": [6, 8], "use_batch_norm": True, "activation": "relu",
           "rngs_seed": 1, "state_perturbed": True}
    model = CustomVAE(input_shape=(6, 6, 1), latent_dim=3, encoder_layers=[8, 6],
                      decoder_layers=[6, 8], rngs=nnx.Rngs(1))
    perturb(model, np.random.default_rng(910))
    # The user-facing export: flatten nnx.state with '.'-joined paths, save with safetensors.
    state = {".".join(str(p) for p in path): v[...]
             for path, v in nnx.to_flat_state(params_and_stats(model))}
    path = OUT / "nnx_vae_state.safetensors"
    safetensors.flax.save_file(state, str(path), metadata={"format": "flax-nnx"})

    x = np.random.default_rng(911).uniform(size=(5, 6, 6, 1)).astype(np.float32)
    z = np.random.default_rng(912).standard_normal((5, 3)).astype(np.float32)
    t = {"x": x, "z": z, **outputs(model, x, z)}
    write_safetensors(OUT / "nnx_vae_state.expected.safetensors", t,
                      {"config": json.dumps(cfg, sort_keys=True),
                       "generator": "python/nnx_interop.py"})
    print(f"(a) wrote {path.name} ({len(state)} entries, {path.stat().st_size} bytes) and its outputs")


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b) / (np.abs(b.astype(np.float64)) + 1.0)))


def import_rust_checkpoint() -> bool:
    path = OUT / "rust_vae.safetensors"
    if not path.exists():
        print(f"(b) {path.relative_to(REPO)} is missing; write it with\n"
              "    cargo test --release -p artifex-models --test integration -- --ignored write_rust_vae_fixture")
        return False
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        file_state = {k: f.get_tensor(k) for k in f.keys()}
    assert meta["format"] == "artifex", meta
    cfg = json.loads(meta["config"])
    assert str(cfg.get("activation", "relu")).lower() == "relu", cfg
    model = CustomVAE(input_shape=tuple(cfg["input_shape"]), latent_dim=cfg["latent_dim"],
                      encoder_layers=cfg["encoder_layers"], decoder_layers=cfg["decoder_layers"],
                      use_batch_norm=cfg.get("use_batch_norm", True), rngs=nnx.Rngs(0))
    # Load by path: every NNX Param and BatchStat must be in the file, same shape and dtype.
    loaded = set()
    for p, var in nnx.to_flat_state(params_and_stats(model)):
        key = ".".join(str(s) for s in p)
        value = file_state[key]
        assert value.shape == var.shape and value.dtype == np.float32, (key, value.shape, var.shape)
        obj = model
        for s in p[:-1]:
            obj = obj[s] if isinstance(s, int) else getattr(obj, s)
        getattr(obj, p[-1])[...] = jnp.asarray(value)
        loaded.add(key)
    extra = set(file_state) - loaded
    assert extra <= RNG_KEYS, f"keys NNX does not know: {sorted(extra - RNG_KEYS)}"

    with safe_open(str(OUT / "rust_vae.expected.safetensors"), "np") as f:
        want = {k: f.get_tensor(k) for k in f.keys()}
    got = outputs(model, want["x"], want["z"])
    worst = 0.0
    for k, v in got.items():
        tol = 1e-4 if k == "enc_train.mean" else 1e-5
        err = rel_err(v, want[k])
        assert err <= tol, (k, err)
        worst = max(worst, err)
    print(f"(b) NNX loaded {len(loaded)} entries of {path.name} (ignoring {sorted(extra)}); "
          f"{len(got)} outputs match the Rust ones (worst relative error {worst:.1e})")
    return True


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    export_nnx_state()
    if not import_rust_checkpoint():
        sys.exit(1)


if __name__ == "__main__":
    main()
