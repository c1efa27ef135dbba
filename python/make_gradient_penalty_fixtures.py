#!/usr/bin/env python3
"""Flax NNX reference values of the WGAN-GP and R1 gradient penalties of the seed's
CustomDiscriminator, for tests/gradient_penalty.rs.

    python3 python/make_gradient_penalty_fixtures.py

Writes tests/fixtures/gradient_penalty/{plain,spectral}.safetensors (make_fixtures.py
clears tests/fixtures/nnx, so these live in their own folder), byte-deterministic:

  state.*            the discriminator's params (NNX paths), perturbed biases; with spectral
                     norm also state.layers.N.u / state.output_layer.u (see below)
  real, fake (5, 4, 4, 1), eps (5,)     fixed inputs and interpolation coefficients
  wgan_gp, r1        the unweighted penalties (shape (1,))
  grad.wgan_gp.*, grad.r1.*             their gradients w.r.t. every discriminator param

Penalties (computed with jax.grad inside the loss, then nnx.value_and_grad over the params):
  wgan_gp = mean_i (||d sum(D(x)) / dx at x_hat_i||_2 - 1)^2,  x_hat = eps*real + (1-eps)*fake
  r1      = mean_i  ||d sum(D(x)) / dx at real_i||_2^2          (no gamma/2 factor)

Spectral norm: the seed's RegularizedLinear divides the weight by its largest singular value
from a full SVD; artifex's port does one power iteration with a persistent vector u. Both
agree (value and first derivative) when u is the top right-singular vector of the weight, so
the fixture stores that vector (from a float64 numpy SVD) as `u`, and the Rust test runs the
discriminator in eval mode (u used as stored).

SEED FIX F2 as in make_fixtures.py: `self.layers = []` becomes `nnx.List()`.
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

jax.config.update("jax_default_matmul_precision", "highest")

import flax  # noqa: E402
from flax import nnx  # noqa: E402
import safetensors  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import flat, write_safetensors  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "gradient_penalty"
INPUT_SHAPE = (4, 4, 1)
HIDDEN = [16, 8]
BATCH = 5


class RegularizedLinear(nnx.Module):
    """The seed's RegularizedLinear (code verbatim, docstrings shortened)."""

    def __init__(self, in_features: int, out_features: int, *, dropout_rate: float = 0.0,
                 weight_decay: float = 0.0, spectral_norm: bool = False, rngs: nnx.Rngs):
        super().__init__()
        self.weight_decay = weight_decay
        self.spectral_norm = spectral_norm
        self.weight = nnx.Param(
            nnx.initializers.lecun_normal()(rngs.params(), (in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros(out_features))
        if dropout_rate > 0:
            self.dropout = nnx.Dropout(rate=dropout_rate, rngs=rngs)
        else:
            self.dropout = None

    def _apply_spectral_norm(self, weight: jax.Array) -> jax.Array:
        u, s, vh = jnp.linalg.svd(weight, full_matrices=False)
        weight_normalized = weight / s[0]
        return weight_normalized

    def __call__(self, x: jax.Array, *, deterministic: bool = False) -> jax.Array:
        weight = self.weight.value
        if self.spectral_norm:
            weight = self._apply_spectral_norm(weight)
        output = x @ weight + self.bias.value
        if self.dropout is not None and not deterministic:
            output = self.dropout(output)
        return output


class CustomDiscriminator(nnx.Module):
    """The seed's CustomDiscriminator (code verbatim but fix F2)."""

    def __init__(self, input_shape: tuple, hidden_dims: list[int], *,
                 spectral_norm: bool = True, rngs: nnx.Rngs):
        super().__init__()
        self.input_shape = input_shape
        self.spectral_norm = spectral_norm
        input_dim = int(jnp.prod(jnp.array(input_shape)))
        self.layers = nnx.List()  # FIX F2 (was: [])
        if spectral_norm:
            self.layers.append(
                RegularizedLinear(input_dim, hidden_dims[0], spectral_norm=True, rngs=rngs))
        else:
            self.layers.append(nnx.Linear(input_dim, hidden_dims[0], rngs=rngs))
        for i in range(len(hidden_dims) - 1):
            if spectral_norm:
                self.layers.append(RegularizedLinear(hidden_dims[i], hidden_dims[i + 1],
                                                     spectral_norm=True, rngs=rngs))
            else:
                self.layers.append(nnx.Linear(hidden_dims[i], hidden_dims[i + 1], rngs=rngs))
        if spectral_norm:
            self.output_layer = RegularizedLinear(hidden_dims[-1], 1, spectral_norm=True,
                                                  rngs=rngs)
        else:
            self.output_layer = nnx.Linear(hidden_dims[-1], 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        batch_size = x.shape[0]
        x = x.reshape(batch_size, -1)
        for layer in self.layers:
            x = layer(x)
            x = nnx.leaky_relu(x, negative_slope=0.2)
        logits = self.output_layer(x)
        return logits


def input_gradients(model, x):
    """d sum(D(x)) / dx per sample, flattened."""
    g = jax.grad(lambda x: jnp.sum(model(x)))(x)
    return g.reshape(x.shape[0], -1)


def wgan_gp_at(model, real, fake, eps):
    e = eps.reshape((-1,) + (1,) * (real.ndim - 1))
    x_hat = e * real + (1.0 - e) * fake
    norm = jnp.sqrt(jnp.sum(input_gradients(model, x_hat) ** 2, axis=1))
    return jnp.mean((norm - 1.0) ** 2)


def r1(model, real):
    return jnp.mean(jnp.sum(input_gradients(model, real) ** 2, axis=1))


def f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def case(name: str, spectral_norm: bool, seed: int):
    model = CustomDiscriminator(INPUT_SHAPE, HIDDEN, spectral_norm=spectral_norm,
                                rngs=nnx.Rngs(seed))
    rng = np.random.default_rng(1000 + seed)
    # Random biases (they start at zero) so that the test exercises them, and a kernel scale
    # that keeps the critic's input gradients near norm 1 (a non-trivial (norm - 1)^2).
    for layer in list(model.layers) + [model.output_layer]:
        layer.bias[...] = jnp.asarray(0.3 * rng.standard_normal(layer.bias.shape), jnp.float32)
    t = {}
    if spectral_norm:
        for i, layer in enumerate(list(model.layers) + [model.output_layer]):
            w = np.asarray(layer.weight[...], np.float64)
            _, _, vh = np.linalg.svd(w, full_matrices=False)
            key = f"state.layers.{i}.u" if i < len(HIDDEN) else "state.output_layer.u"
            t[key] = f32(vh[0])
    real = jnp.asarray(rng.uniform(-1, 1, (BATCH,) + INPUT_SHAPE), jnp.float32)
    fake = jnp.asarray(rng.uniform(-1, 1, (BATCH,) + INPUT_SHAPE), jnp.float32)
    eps = jnp.asarray(rng.uniform(0, 1, (BATCH,)), jnp.float32)
    t.update(flat(nnx.state(model, nnx.Param), "state."))
    t["real"], t["fake"], t["eps"] = f32(real), f32(fake), f32(eps)
    value, grads = nnx.value_and_grad(lambda m: wgan_gp_at(m, real, fake, eps))(model)
    t["wgan_gp"] = f32(value)
    t.update(flat(grads, "grad.wgan_gp."))
    value, grads = nnx.value_and_grad(lambda m: r1(m, real))(model)
    t["r1"] = f32(value)
    t.update(flat(grads, "grad.r1."))
    t = {k: f32(v) for k, v in t.items()}
    for k, v in t.items():
        assert np.all(np.isfinite(v)), (name, k)
    config = {"input_shape": list(INPUT_SHAPE), "hidden_dims": HIDDEN,
              "spectral_norm": spectral_norm, "rngs_seed": seed, "batch": BATCH}
    meta = {
        "case": name,
        "config": json.dumps(config, sort_keys=True),
        "generator": "python/make_gradient_penalty_fixtures.py",
        "versions": json.dumps(
            {"flax": flax.__version__, "jax": jax.__version__, "numpy": np.__version__,
             "safetensors": safetensors.__version__}, sort_keys=True),
    }
    path = OUT / f"{name}.safetensors"
    write_safetensors(path, t, meta)
    print(f"{path.relative_to(REPO)}: {len(t)} tensors, {path.stat().st_size} bytes, "
          f"wgan_gp {float(t['wgan_gp'][0]):.6f}, r1 {float(t['r1'][0]):.6f}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    case("plain", spectral_norm=False, seed=1)
    case("spectral", spectral_norm=True, seed=2)


if __name__ == "__main__":
    main()
