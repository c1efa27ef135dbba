#!/usr/bin/env python3
"""Write optax reference values for the classification losses of artifex-core.

    python3 python/make_classification_fixtures.py

Writes tests/fixtures/optax/classification.safetensors, read by
artifex-core/tests/integration/losses_classification.rs. Each case `<case>` holds:

  <case>.logits            logits (*leading, C), f32 or f64
  <case>.labels            integer labels (*leading), u32 / i64 / u8
  <case>.loss              optax.softmax_cross_entropy_with_integer_labels, per example
  <case>.mean              mean of <case>.loss
  <case>.grad              gradient of <case>.mean with respect to the logits
  <case>.smooth.loss       optax.softmax_cross_entropy(logits,
                               optax.smooth_labels(one_hot(labels), ALPHA)), per example
  <case>.smooth.mean       its mean
  <case>.smooth.grad       gradient of <case>.smooth.mean with respect to the logits
  <case>.accuracy          mean(argmax(logits, -1) == labels), f32 scalar

Reference values are optax's, computed in float64 (jax x64 enabled) on the case's logits
and stored as f64 for every case, f32 ones included: XLA's float32 exp/log are themselves
off by up to ~1e-6 relative (the script prints by how much), so an f32 implementation is
checked against the exact value instead.
The file is byte-for-byte deterministic (fixed numpy seed, sorted header, own writer).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
import safetensors  # noqa: E402
from safetensors import safe_open  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "optax" / "classification.safetensors"
ALPHA = 0.1

SAFETENSORS_DTYPES = {
    np.dtype(np.float32): "F32",
    np.dtype(np.float64): "F64",
    np.dtype(np.uint8): "U8",
    np.dtype(np.uint32): "U32",
    np.dtype(np.int64): "I64",
}


def save(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """A safetensors file with sorted header keys and data in key order, little endian."""
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        array = np.array(tensors[name], order="C")
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little"))
        f.write(encoded)
        for raw in chunks:
            f.write(raw)
    with safe_open(str(path), "np") as f:
        assert f.metadata() == metadata
        for name, array in tensors.items():
            assert np.array_equal(f.get_tensor(name), array), name


def reference(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Every reference value of one case, computed by optax in the logits' dtype."""
    x = jnp.asarray(logits)
    y = jnp.asarray(labels.astype(np.int64))
    classes = logits.shape[-1]

    def plain(x):
        return optax.softmax_cross_entropy_with_integer_labels(x, y)

    def smoothed(x):
        targets = optax.smooth_labels(jax.nn.one_hot(y, classes, dtype=x.dtype), ALPHA)
        return optax.softmax_cross_entropy(x, targets)

    out = {}
    for prefix, per_example in (("", plain), ("smooth.", smoothed)):
        out[prefix + "loss"] = per_example(x)
        out[prefix + "mean"] = jnp.mean(per_example(x))
        out[prefix + "grad"] = jax.grad(lambda v: jnp.mean(per_example(v)))(x)
    out["accuracy"] = jnp.mean(jnp.argmax(x, axis=-1) == y).astype(jnp.float32)
    result = {k: np.asarray(v) for k, v in out.items()}
    for k, v in result.items():
        assert np.all(np.isfinite(v)), k
        if k != "accuracy":
            assert v.dtype == logits.dtype, (k, v.dtype)
    return result


def worst_deviation(ours: dict[str, np.ndarray], exact: dict[str, np.ndarray]) -> float:
    """Largest |a - b| / max(1, |b|) over every value of a case."""
    return max(
        float(np.max(np.abs(ours[k].astype(np.float64) - exact[k]) / np.maximum(1.0, np.abs(exact[k]))))
        for k in exact
    )


def cases(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    basic = rng.normal(0.0, 3.0, size=(16, 10))
    basic_labels = rng.integers(0, 10, size=16)
    # Half of the rows put the label on the argmax, so accuracy is not trivially 0.
    basic_labels[::2] = np.argmax(basic[::2], axis=-1)

    # Logits at +-100: a naive exp overflows f32 and log(softmax) underflows to -inf.
    extreme = rng.choice([-100.0, 100.0], size=(6, 5)) + rng.normal(0.0, 1.0, size=(6, 5))
    extreme[0] = [100.0, -100.0, -100.0, -100.0, -100.0]
    extreme[1] = [100.0, 100.0, 100.0, 100.0, 100.0]
    extreme_labels = np.array([4, 2, 0, 1, 3, 2])  # row 0: the label's logit is -100
    extreme_labels[2:4] = np.argmax(extreme[2:4], axis=-1)  # two correct predictions

    rank3 = rng.normal(0.0, 2.0, size=(2, 3, 7))
    rank3_labels = rng.integers(0, 7, size=(2, 3))

    return {
        "basic_f32": (basic.astype(np.float32), basic_labels.astype(np.uint32)),
        "basic_f64": (basic.astype(np.float64), basic_labels.astype(np.int64)),
        "extreme_f32": (extreme.astype(np.float32), extreme_labels.astype(np.uint8)),
        "extreme_f64": (extreme.astype(np.float64), extreme_labels.astype(np.int64)),
        "rank3_f32": (rank3.astype(np.float32), rank3_labels.astype(np.int64)),
    }


def main() -> None:
    rng = np.random.default_rng(20261202)
    tensors: dict[str, np.ndarray] = {}
    xla_f32 = {}
    for name, (logits, labels) in cases(rng).items():
        tensors[f"{name}.logits"] = logits
        tensors[f"{name}.labels"] = labels
        # References are optax's values in float64 on the (exactly representable) logits,
        # so f32 cases are checked against the exact result, not against XLA's f32 exp/log
        # (which themselves are off by up to ~1e-6 relative; printed below).
        exact = reference(logits.astype(np.float64), labels)
        for key, value in exact.items():
            tensors[f"{name}.{key}"] = value
        if logits.dtype == np.float32:
            xla_f32[name] = worst_deviation(reference(logits, labels), exact)
    metadata = {
        "generator": "python/make_classification_fixtures.py",
        "label_smoothing": str(ALPHA),
        "versions": json.dumps(
            {"jax": jax.__version__, "optax": optax.__version__, "numpy": np.__version__,
             "safetensors": safetensors.__version__},
            sort_keys=True,
        ),
    }
    save(OUT, tensors, metadata)
    print(f"wrote {OUT.relative_to(REPO)}: {len(tensors)} tensors, {OUT.stat().st_size} bytes")
    for name in cases(np.random.default_rng(20261202)):
        print(f"  {name}: mean {tensors[name + '.mean']:.6f}  smoothed {tensors[name + '.smooth.mean']:.6f}"
              f"  accuracy {tensors[name + '.accuracy']:.4f}")
    for name, worst in xla_f32.items():
        print(f"  optax in float32 on {name} deviates from float64 by {worst:.2e} (max |a-b|/max(1,|b|))")


if __name__ == "__main__":
    main()
