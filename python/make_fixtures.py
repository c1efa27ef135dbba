#!/usr/bin/env python3
"""Generate Flax NNX reference fixtures for the artifex-rs Rust tests.

Run from the repository root (or anywhere):

    python3 python/make_fixtures.py

Writes one safetensors file per case to tests/fixtures/nnx/ (see python/README.md
for the file format).  The output is deterministic: every random value comes from
a fixed seed (nnx.Rngs(...) for module construction, numpy default_rng(...) for
inputs, perturbations and gradient cotangents).

SEED FIXES (changes made to the classes copied from
/work/shared/seed/custom-architectures.md so that they run on flax 0.12.8):

  F1. CustomVAE._build_encoder / _build_decoder: the returned plain Python list is
      wrapped in nnx.List(...) (NNX 0.12 refuses a list of Modules as an attribute).
  F2. CustomGenerator / CustomDiscriminator: `self.layers = []` becomes
      `self.layers = nnx.List()` (same reason; `.append` is unchanged).
  F3. CustomGenerator: the attention layer is built with
      `hidden_size=hidden_dims[i]` instead of `hidden_dims[i + 1]`.  As written the
      seed creates attention of width hidden_dims[n//2 + 1] (n = len(hidden_dims))
      but applies it after layer index len(self.layers)//2 == n, where the
      activation width is hidden_dims[n//2]; the seed therefore crashes with a
      dot_general shape error for every hidden_dims whose consecutive widths differ
      (including its own example [256, 512, 1024]).  With F3 the widths always
      match; the construction order (and so the rng draw order) is unchanged.
  F4. The `from artifex.generative_models... import ...` lines are dropped
      (not needed to run the classes).
  Docstrings/comments of the copied classes are shortened; the code is otherwise
  verbatim (MultiHeadAttention, CustomVAE, CustomGenerator, CustomDiscriminator).
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
from safetensors import safe_open  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "nnx"
MAX_FILE_BYTES = 300_000
MAX_TOTAL_BYTES = 3 * 1024 * 1024


# ---------------------------------------------------------------------------
# Seed classes (copied from the seed document; see SEED FIXES above)
# ---------------------------------------------------------------------------


class MultiHeadAttention(nnx.Module):
    """Multi-head attention layer (seed, verbatim code)."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        *,
        dropout_rate: float = 0.0,
        rngs: nnx.Rngs,
    ):
        super().__init__()

        assert hidden_size % num_heads == 0, "hidden_size must be divisible by num_heads"

        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads

        # Q, K, V projections
        self.q_proj = nnx.Linear(hidden_size, hidden_size, rngs=rngs)
        self.k_proj = nnx.Linear(hidden_size, hidden_size, rngs=rngs)
        self.v_proj = nnx.Linear(hidden_size, hidden_size, rngs=rngs)

        # Output projection
        self.out_proj = nnx.Linear(hidden_size, hidden_size, rngs=rngs)

        # Dropout
        if dropout_rate > 0:
            self.dropout = nnx.Dropout(rate=dropout_rate, rngs=rngs)
        else:
            self.dropout = None

    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array | None = None,
        *,
        deterministic: bool = False,
    ) -> jax.Array:
        batch_size, seq_len, _ = x.shape

        # Project to Q, K, V
        q = self.q_proj(x)  # (batch, seq_len, hidden_size)
        k = self.k_proj(x)
        v = self.v_proj(x)

        # Reshape for multi-head attention
        q = q.reshape(batch_size, seq_len, self.num_heads, self.head_dim)
        k = k.reshape(batch_size, seq_len, self.num_heads, self.head_dim)
        v = v.reshape(batch_size, seq_len, self.num_heads, self.head_dim)

        # Transpose: (batch, num_heads, seq_len, head_dim)
        q = jnp.transpose(q, (0, 2, 1, 3))
        k = jnp.transpose(k, (0, 2, 1, 3))
        v = jnp.transpose(v, (0, 2, 1, 3))

        # Scaled dot-product attention
        scale = jnp.sqrt(self.head_dim)
        scores = jnp.einsum("bhqd,bhkd->bhqk", q, k) / scale

        # Apply mask if provided
        if mask is not None:
            # Expand mask for heads: (batch, 1, seq_len, seq_len)
            mask = mask[:, None, :, :]
            scores = jnp.where(mask, scores, -1e9)

        # Softmax
        attention_weights = nnx.softmax(scores, axis=-1)

        # Apply dropout
        if self.dropout is not None and not deterministic:
            attention_weights = self.dropout(attention_weights)

        # Attend to values
        context = jnp.einsum("bhqk,bhkd->bhqd", attention_weights, v)

        # Reshape back: (batch, seq_len, hidden_size)
        context = jnp.transpose(context, (0, 2, 1, 3))
        context = context.reshape(batch_size, seq_len, self.hidden_size)

        # Output projection
        output = self.out_proj(context)

        return output


class CustomVAE(nnx.Module):
    """Custom VAE with flexible architecture (seed; fix F1)."""

    def __init__(
        self,
        input_shape: tuple,
        latent_dim: int,
        encoder_layers: list[int],
        decoder_layers: list[int],
        *,
        activation: callable = nnx.relu,
        use_batch_norm: bool = True,
        rngs: nnx.Rngs,
    ):
        super().__init__()

        self.input_shape = input_shape
        self.latent_dim = latent_dim
        self.activation = activation

        # Flatten input size
        self.input_dim = int(jnp.prod(jnp.array(input_shape)))

        # Encoder
        self.encoder = self._build_encoder(encoder_layers, use_batch_norm, rngs)

        # Latent projections
        self.mean_layer = nnx.Linear(
            in_features=encoder_layers[-1],
            out_features=latent_dim,
            rngs=rngs,
        )
        self.logvar_layer = nnx.Linear(
            in_features=encoder_layers[-1],
            out_features=latent_dim,
            rngs=rngs,
        )

        # Decoder
        self.decoder = self._build_decoder(decoder_layers, use_batch_norm, rngs)

        # Output layer
        self.output_layer = nnx.Linear(
            in_features=decoder_layers[-1],
            out_features=self.input_dim,
            rngs=rngs,
        )

    def _build_encoder(self, layers: list[int], use_batch_norm: bool, rngs: nnx.Rngs):
        encoder_layers = []

        # Input layer
        encoder_layers.append(nnx.Linear(self.input_dim, layers[0], rngs=rngs))
        if use_batch_norm:
            encoder_layers.append(nnx.BatchNorm(layers[0], rngs=rngs))

        # Hidden layers
        for i in range(len(layers) - 1):
            encoder_layers.append(nnx.Linear(layers[i], layers[i + 1], rngs=rngs))
            if use_batch_norm:
                encoder_layers.append(nnx.BatchNorm(layers[i + 1], rngs=rngs))

        return nnx.List(encoder_layers)  # FIX F1

    def _build_decoder(self, layers: list[int], use_batch_norm: bool, rngs: nnx.Rngs):
        decoder_layers = []

        # Input layer (from latent)
        decoder_layers.append(nnx.Linear(self.latent_dim, layers[0], rngs=rngs))
        if use_batch_norm:
            decoder_layers.append(nnx.BatchNorm(layers[0], rngs=rngs))

        # Hidden layers
        for i in range(len(layers) - 1):
            decoder_layers.append(nnx.Linear(layers[i], layers[i + 1], rngs=rngs))
            if use_batch_norm:
                decoder_layers.append(nnx.BatchNorm(layers[i + 1], rngs=rngs))

        return nnx.List(decoder_layers)  # FIX F1

    def encode(self, x: jax.Array, *, use_running_average: bool = False) -> dict[str, jax.Array]:
        # Flatten input
        batch_size = x.shape[0]
        x = x.reshape(batch_size, -1)

        # Forward through encoder
        for layer in self.encoder:
            if isinstance(layer, nnx.BatchNorm):
                x = layer(x, use_running_average=use_running_average)
            else:
                x = layer(x)
            x = self.activation(x)

        # Latent parameters
        mean = self.mean_layer(x)
        logvar = self.logvar_layer(x)

        return {"mean": mean, "logvar": logvar}

    def reparameterize(self, mean, logvar, *, rngs: nnx.Rngs | None = None):
        if rngs is not None and "sample" in rngs:
            key = rngs.sample()
        else:
            key = jax.random.key(0)

        std = jnp.exp(0.5 * logvar)
        eps = jax.random.normal(key, mean.shape)
        z = mean + eps * std

        return z

    def decode(self, z: jax.Array, *, use_running_average: bool = False) -> jax.Array:
        x = z

        # Forward through decoder
        for layer in self.decoder:
            if isinstance(layer, nnx.BatchNorm):
                x = layer(x, use_running_average=use_running_average)
            else:
                x = layer(x)
            x = self.activation(x)

        # Output layer
        x = self.output_layer(x)
        x = nnx.sigmoid(x)  # Normalize to [0, 1]

        # Reshape to input shape
        batch_size = z.shape[0]
        x = x.reshape(batch_size, *self.input_shape)

        return x

    def __call__(self, x, *, rngs: nnx.Rngs | None = None, use_running_average: bool = False):
        latent_params = self.encode(x, use_running_average=use_running_average)
        z = self.reparameterize(latent_params["mean"], latent_params["logvar"], rngs=rngs)
        reconstruction = self.decode(z, use_running_average=use_running_average)
        return {
            "reconstruction": reconstruction,
            "mean": latent_params["mean"],
            "logvar": latent_params["logvar"],
            "latent": z,
        }


class CustomGenerator(nnx.Module):
    """Custom generator with self-attention (seed; fixes F2, F3)."""

    def __init__(
        self,
        latent_dim: int,
        output_shape: tuple,
        hidden_dims: list[int],
        *,
        use_attention: bool = True,
        rngs: nnx.Rngs,
    ):
        super().__init__()

        self.latent_dim = latent_dim
        self.output_shape = output_shape
        self.use_attention = use_attention

        # Build generator network
        self.layers = nnx.List()  # FIX F2 (was: [])

        # Initial projection
        self.layers.append(nnx.Linear(latent_dim, hidden_dims[0], rngs=rngs))
        self.layers.append(nnx.BatchNorm(hidden_dims[0], rngs=rngs))

        # Hidden layers
        for i in range(len(hidden_dims) - 1):
            self.layers.append(nnx.Linear(hidden_dims[i], hidden_dims[i + 1], rngs=rngs))
            self.layers.append(nnx.BatchNorm(hidden_dims[i + 1], rngs=rngs))

            # Add self-attention at middle layer
            if use_attention and i == len(hidden_dims) // 2:
                self.attention = MultiHeadAttention(
                    hidden_size=hidden_dims[i],  # FIX F3 (was: hidden_dims[i + 1])
                    num_heads=4,
                    rngs=rngs,
                )

        # Output layer
        output_dim = int(jnp.prod(jnp.array(output_shape)))
        self.output_layer = nnx.Linear(hidden_dims[-1], output_dim, rngs=rngs)

    def __call__(self, z: jax.Array, *, use_running_average: bool = False) -> jax.Array:
        x = z

        # Forward through layers
        for i, layer in enumerate(self.layers):
            if isinstance(layer, nnx.BatchNorm):
                x = layer(x, use_running_average=use_running_average)
            else:
                x = layer(x)
                x = nnx.relu(x)

            # Apply self-attention if available
            if self.use_attention and hasattr(self, "attention"):
                if i == len(self.layers) // 2:
                    # Reshape for attention (add sequence dimension)
                    batch_size = x.shape[0]
                    x = x.reshape(batch_size, 1, -1)
                    x = self.attention(x)
                    x = x.reshape(batch_size, -1)

        # Output layer with tanh activation
        x = self.output_layer(x)
        x = nnx.tanh(x)

        # Reshape to output shape
        batch_size = z.shape[0]
        x = x.reshape(batch_size, *self.output_shape)

        return x


class CustomDiscriminator(nnx.Module):
    """Custom discriminator (seed; fix F2).  Only spectral_norm=False is used here,
    so the seed's RegularizedLinear is not needed and not copied."""

    def __init__(
        self,
        input_shape: tuple,
        hidden_dims: list[int],
        *,
        spectral_norm: bool = True,
        rngs: nnx.Rngs,
    ):
        super().__init__()
        assert not spectral_norm, "RegularizedLinear is not copied into this script"

        self.input_shape = input_shape
        self.spectral_norm = spectral_norm

        input_dim = int(jnp.prod(jnp.array(input_shape)))

        # Build discriminator network
        self.layers = nnx.List()  # FIX F2 (was: [])

        # Input layer
        self.layers.append(nnx.Linear(input_dim, hidden_dims[0], rngs=rngs))

        # Hidden layers
        for i in range(len(hidden_dims) - 1):
            self.layers.append(nnx.Linear(hidden_dims[i], hidden_dims[i + 1], rngs=rngs))

        # Output layer (binary classification)
        self.output_layer = nnx.Linear(hidden_dims[-1], 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        # Flatten input
        batch_size = x.shape[0]
        x = x.reshape(batch_size, -1)

        # Forward through layers
        for layer in self.layers:
            x = layer(x)
            x = nnx.leaky_relu(x, negative_slope=0.2)

        # Output layer (no activation, return logits)
        logits = self.output_layer(x)

        return logits


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

SUMMARY: list[tuple[str, int, int]] = []


def _val(v):
    return v[...] if isinstance(v, nnx.Variable) else v


def flat(state, prefix: str) -> dict[str, np.ndarray]:
    """nnx.State -> {prefix + 'a.0.b': np.ndarray} (paths joined by '.')."""
    out = {}
    for path, v in nnx.to_flat_state(state):
        out[prefix + ".".join(str(p) for p in path)] = np.asarray(_val(v))
    return out


def params_and_stats(model):
    # NB: nnx.state(model, nnx.Param, nnx.BatchStat) returns a *tuple* of two
    # States; the tuple filter (Param, BatchStat) gives one State with both.
    return nnx.state(model, (nnx.Param, nnx.BatchStat))


def perturb(model, rng: np.random.Generator) -> None:
    """Overwrite the deterministically initialised variables (bias = 0, scale = 1,
    mean = 0, var = 1) with random values so that tests exercise them.  Kernels and
    embeddings keep their NNX-initialised values."""
    for path, v in nnx.to_flat_state(params_and_stats(model)):
        name = path[-1]
        shape = v.shape
        if name == "bias":
            new = 0.5 * rng.standard_normal(shape)
        elif name == "scale":
            new = rng.uniform(0.5, 1.5, shape)
        elif name == "mean":
            new = 0.5 * rng.standard_normal(shape)
        elif name == "var":
            new = rng.uniform(0.5, 2.0, shape)
        else:
            continue
        obj = model
        for p in path[:-1]:
            obj = obj[p] if isinstance(p, int) else getattr(obj, p)
        getattr(obj, name)[...] = jnp.asarray(new, jnp.float32)


def grads(model, inputs: tuple, r, call):
    """d sum(call(m, *inputs) * r) / d (inputs[0], Params).  `model` must be a
    throw-away clone: a train-mode call updates its batch stats in place."""
    r = jnp.asarray(r)

    def loss(m, x):
        return jnp.sum(call(m, x, *inputs[1:]) * r)

    gp, gx = nnx.grad(loss, argnums=(0, 1))(model, jnp.asarray(inputs[0]))
    return np.asarray(gx), flat(gp, "grad.")


_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8", np.dtype(np.uint32): "U32"}


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]):
    """Byte-deterministic safetensors writer.  (safetensors.numpy.save_file writes the
    __metadata__ entries in hash-map order, which changes from run to run.)  Header keys
    are sorted; tensor data is laid out in sorted-name order, little endian."""
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape),
                     "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    with open(path, "wb") as f:
        f.write(len(hjson).to_bytes(8, "little"))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)
    # round-trip through the reference reader
    with safe_open(str(path), "np") as h:
        assert h.metadata() == metadata
        assert sorted(h.keys()) == sorted(tensors)
        for k in tensors:
            assert np.array_equal(h.get_tensor(k), tensors[k]), (path, k)


def f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def write(name: str, layer: str, config: dict, tensors: dict, notes: str | None = None):
    clean = {}
    for k, v in tensors.items():
        v = np.asarray(v)
        if v.dtype in (np.uint8, np.uint32):
            clean[k] = np.ascontiguousarray(v)
        else:
            assert v.dtype == np.float32, (name, k, v.dtype)
            assert np.all(np.isfinite(v)), (name, k)
            clean[k] = np.ascontiguousarray(v)
    meta = {
        "layer": layer,
        "config": json.dumps(config, sort_keys=True),
        "generator": "python/make_fixtures.py",
        "versions": json.dumps(
            {"flax": flax.__version__, "jax": jax.__version__, "numpy": np.__version__,
             "safetensors": safetensors.__version__}, sort_keys=True),
    }
    if notes:
        meta["notes"] = notes
    path = OUT / f"{name}.safetensors"
    write_safetensors(path, clean, meta)
    size = path.stat().st_size
    assert size < MAX_FILE_BYTES, (name, size)
    SUMMARY.append((name, len(clean), size))


def layer_case(
    name: str,
    layer: str,
    config: dict,
    make,
    x,
    *,
    seed: int,
    call=None,
    extra_inputs: tuple = (),
    extra_tensors: dict | None = None,
    train_differs: bool = False,
    grad: str | None = None,  # None, "eval" or "train"
    notes: str | None = None,
):
    """Generic single-module case.  call(m, x, *extra_inputs) -> output; the
    mode is set with m.eval() / m.train() before the call."""
    if call is None:
        call = lambda m, x: m(x)  # noqa: E731
    rng = np.random.default_rng(seed)
    model0 = make()
    perturb(model0, rng)
    t = {}
    t.update(flat(params_and_stats(model0), "state."))
    t["input"] = np.asarray(x)
    if extra_tensors:
        t.update(extra_tensors)
    inputs = (jnp.asarray(x),) + tuple(jnp.asarray(e) for e in extra_inputs)

    m = nnx.clone(model0)
    m.eval()
    out_eval = np.asarray(call(m, *inputs))
    t["out_eval"] = f32(out_eval)

    if train_differs:
        m = nnx.clone(model0)
        m.train()
        t["out_train"] = f32(call(m, *inputs))
        t.update(flat(nnx.state(m, nnx.BatchStat), "after_train."))

    if grad is not None:
        r = rng.standard_normal(out_eval.shape).astype(np.float32)
        m = nnx.clone(model0)
        m.eval() if grad == "eval" else m.train()
        gx, gp = grads(m, inputs, r, call)
        t["grad_r"] = r
        t["grad.input"] = f32(gx)
        t.update(gp)
        config = dict(config, grad_mode=grad)
    # the model used for the fixture state must be untouched by the calls above
    for k, v in flat(params_and_stats(model0), "state.").items():
        assert np.array_equal(v, t[k]), (name, k)
    write(name, layer, config, t, notes)


def randn(seed, shape, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


def linear_cases():
    for name, use_bias, shape, seed in [
        ("linear", True, (3, 5), 100),
        ("linear_nobias", False, (3, 5), 101),
        ("linear_rank3", True, (2, 3, 5), 102),
    ]:
        cfg = {"in_features": 5, "out_features": 7, "use_bias": use_bias, "rngs_seed": 0,
               "input_shape": list(shape)}
        layer_case(name, "Linear", cfg,
                   lambda: nnx.Linear(5, 7, use_bias=use_bias, rngs=nnx.Rngs(0)),
                   randn(seed, shape), seed=seed, grad="eval")


def conv_cases():
    img3 = (2, 9, 7, 3)
    cases = [
        # name, in, out, kernel, strides, padding, dilation, groups, bias, input shape
        ("conv_same_3x3", 3, 4, (3, 3), 1, "SAME", 1, 1, True, img3),
        ("conv_same_even_kernel", 3, 4, (2, 4), 1, "SAME", 1, 1, True, img3),
        ("conv_stride2_odd", 3, 4, (3, 3), 2, "SAME", 1, 1, True, img3),
        ("conv_valid_stride2", 3, 4, (3, 3), 2, "VALID", 1, 1, True, img3),
        ("conv_explicit_pad", 3, 4, (3, 3), 1, ((1, 2), (0, 1)), 1, 1, True, img3),
        ("conv_dilation", 3, 4, (3, 3), 1, "SAME", 2, 1, True, img3),
        ("conv_groups", 4, 6, (3, 3), 1, "SAME", 1, 2, True, (2, 9, 7, 4)),
        ("conv_nobias", 3, 4, (3, 3), 1, "SAME", 1, 1, False, img3),
        ("conv1d_same", 3, 4, (3,), 1, "SAME", 1, 1, True, (2, 11, 3)),
    ]
    for i, (name, cin, cout, k, s, pad, d, g, bias, shape) in enumerate(cases):
        seed = 200 + i
        cfg = {
            "in_features": cin, "out_features": cout, "kernel_size": list(k),
            "strides": s, "padding": pad if isinstance(pad, str) else [list(p) for p in pad],
            "kernel_dilation": d, "feature_group_count": g, "use_bias": bias,
            "rngs_seed": 0, "input_shape": list(shape),
        }

        def make(cin=cin, cout=cout, k=k, s=s, pad=pad, d=d, g=g, bias=bias):
            return nnx.Conv(cin, cout, kernel_size=k, strides=s, padding=pad,
                            kernel_dilation=d, feature_group_count=g, use_bias=bias,
                            rngs=nnx.Rngs(0))

        layer_case(name, "Conv", cfg, make, randn(seed, shape), seed=seed, grad="eval")


def conv_transpose_cases():
    shape = (2, 5, 4, 3)
    cases = [
        ("convT_same_stride2", (3, 3), 2, "SAME"),
        ("convT_valid_stride2", (3, 3), 2, "VALID"),
        ("convT_same_stride1", (3, 3), 1, "SAME"),
        ("convT_even_kernel_stride2", (4, 4), 2, "SAME"),
    ]
    for i, (name, k, s, pad) in enumerate(cases):
        seed = 300 + i
        cfg = {"in_features": 3, "out_features": 4, "kernel_size": list(k),
               "strides": [s, s], "padding": pad, "kernel_dilation": 1,
               "transpose_kernel": False, "use_bias": True, "rngs_seed": 0,
               "input_shape": list(shape)}

        def make(k=k, s=s, pad=pad):
            return nnx.ConvTranspose(3, 4, kernel_size=k, strides=(s, s), padding=pad,
                                     rngs=nnx.Rngs(0))

        layer_case(name, "ConvTranspose", cfg, make, randn(seed, shape), seed=seed,
                   grad="eval")


def norm_cases():
    for name, shape, seed in [("batchnorm", (4, 6), 400), ("batchnorm_nhwc", (2, 3, 3, 6), 401)]:
        cfg = {"num_features": 6, "momentum": 0.99, "epsilon": 1e-5, "rngs_seed": 0,
               "input_shape": list(shape)}
        layer_case(name, "BatchNorm", cfg, lambda: nnx.BatchNorm(6, rngs=nnx.Rngs(0)),
                   randn(seed, shape, 2.0) + 0.5, seed=seed, train_differs=True,
                   grad="train",
                   notes="out_train, after_train.* and grad.* are each computed from the "
                         "initial state (one train-mode call)")
    for name, shape, seed in [("layernorm", (3, 6), 410), ("layernorm_rank3", (2, 3, 6), 411)]:
        cfg = {"num_features": 6, "epsilon": 1e-6, "rngs_seed": 0, "input_shape": list(shape)}
        layer_case(name, "LayerNorm", cfg, lambda: nnx.LayerNorm(6, rngs=nnx.Rngs(0)),
                   randn(seed, shape, 2.0) + 0.5, seed=seed, grad="eval")
    shape = (2, 3, 3, 6)
    cfg = {"num_features": 6, "num_groups": 3, "epsilon": 1e-6, "rngs_seed": 0,
           "input_shape": list(shape)}
    layer_case("groupnorm", "GroupNorm", cfg,
               lambda: nnx.GroupNorm(num_features=6, num_groups=3, rngs=nnx.Rngs(0)),
               randn(420, shape, 2.0) + 0.5, seed=420, grad="eval")
    shape = (3, 6)
    cfg = {"num_features": 6, "epsilon": 1e-6, "rngs_seed": 0, "input_shape": list(shape)}
    layer_case("rmsnorm", "RMSNorm", cfg, lambda: nnx.RMSNorm(6, rngs=nnx.Rngs(0)),
               randn(430, shape, 2.0) + 0.5, seed=430, grad="eval")


def embed_case():
    idx = np.array([[0, 3, 9, 3, 1], [7, 2, 5, 9, 0], [4, 4, 8, 6, 1]], dtype=np.uint32)
    cfg = {"num_embeddings": 10, "features": 4, "rngs_seed": 0, "input_shape": list(idx.shape)}
    rng = np.random.default_rng(500)
    model = nnx.Embed(10, 4, rngs=nnx.Rngs(0))
    perturb(model, rng)  # no-op (no bias/scale)
    t = flat(params_and_stats(model), "state.")
    t["input"] = idx
    model.eval()
    t["out_eval"] = f32(model(jnp.asarray(idx, jnp.int32)))
    write("embed", "Embed", cfg, t)


def mha_seed_cases():
    x = randn(600, (2, 5, 8))
    mask = np.random.default_rng(601).uniform(size=(2, 5, 5)) < 0.6
    mask[:, :, 0] |= ~mask.any(axis=-1)  # every row has >= 1 True ...
    mask[1, 2, :] = False  # ... except query 2 of batch 1: fully masked
    base = {"hidden_size": 8, "num_heads": 2, "dropout_rate": 0.0, "rngs_seed": 0,
            "input_shape": [2, 5, 8], "source": "seed custom-architectures.md MultiHeadAttention"}

    def make():
        return MultiHeadAttention(hidden_size=8, num_heads=2, dropout_rate=0.0, rngs=nnx.Rngs(0))

    layer_case("mha_seed", "MultiHeadAttention(seed)", base, make, x, seed=602,
               call=lambda m, x: m(x, deterministic=True), grad="eval")
    layer_case("mha_seed_mask", "MultiHeadAttention(seed)", dict(base, mask_shape=[2, 5, 5]),
               make, x, seed=602,
               call=lambda m, x, mk: m(x, mk.astype(bool), deterministic=True),
               extra_inputs=(mask.astype(np.uint8),),
               extra_tensors={"mask": mask.astype(np.uint8)}, grad="eval",
               notes="mask uint8 (batch,q,k), 1 = attend; row [1,2,:] is fully masked: the "
                     "seed fills -1e9 so that row gets uniform attention over all keys")


def activations_case():
    x = np.array(
        [
            [-20.0, -5.0, -1.0, -0.5, 0.0, 0.5, 1.0, 5.0, 20.0],
            [-3.0, -2.0, -0.1, -1e-3, 1e-3, 0.1, 2.0, 3.0, 0.0],
            [-100.0, -30.0, -10.0, -0.7, 0.3, 0.9, 10.0, 30.0, 100.0],
            [1.5, -1.5, 2.5, -2.5, 0.25, -0.25, 7.0, -7.0, 0.0],
        ],
        dtype=np.float32,
    )
    xj = jnp.asarray(x)
    t = {
        "input": x,
        "relu": jax.nn.relu(xj),
        "leaky_relu_0.2": jax.nn.leaky_relu(xj, negative_slope=0.2),
        "elu": jax.nn.elu(xj),
        "gelu_exact": jax.nn.gelu(xj, approximate=False),
        "gelu_tanh": jax.nn.gelu(xj, approximate=True),
        "silu": jax.nn.silu(xj),
        "sigmoid": jax.nn.sigmoid(xj),
        "tanh": jnp.tanh(xj),
        "softplus": jax.nn.softplus(xj),
        "softmax_last": jax.nn.softmax(xj, axis=-1),
        "log_softmax_last": jax.nn.log_softmax(xj, axis=-1),
        "softmax_axis0": jax.nn.softmax(xj, axis=0),
    }
    t = {k: f32(v) for k, v in t.items()}
    cfg = {"input_shape": list(x.shape), "elu_alpha": 1.0, "leaky_relu_negative_slope": 0.2,
           "functions": sorted(k for k in t if k != "input")}
    write("activations", "jax.nn", cfg, t)


def custom_vae_case():
    cfg = {"input_shape": [28, 28, 1], "latent_dim": 4, "encoder_layers": [16, 8],
           "decoder_layers": [8, 16], "use_batch_norm": True, "activation": "relu",
           "rngs_seed": 0, "state_perturbed": True}
    rng = np.random.default_rng(700)
    model0 = CustomVAE(input_shape=(28, 28, 1), latent_dim=4, encoder_layers=[16, 8],
                       decoder_layers=[8, 16], use_batch_norm=True, rngs=nnx.Rngs(0))
    perturb(model0, rng)
    x = np.random.default_rng(701).uniform(size=(16, 28, 28, 1)).astype(np.float32)
    z = randn(702, (16, 4))
    t = flat(params_and_stats(model0), "state.")
    t["input"] = x
    t["z"] = z

    m = nnx.clone(model0)
    m.eval()
    enc = m.encode(jnp.asarray(x), use_running_average=True)
    t["enc_eval.mean"], t["enc_eval.logvar"] = f32(enc["mean"]), f32(enc["logvar"])
    t["dec_eval"] = f32(m.decode(jnp.asarray(z), use_running_average=True))

    m = nnx.clone(model0)
    enc = m.encode(jnp.asarray(x), use_running_average=False)
    t["enc_train.mean"], t["enc_train.logvar"] = f32(enc["mean"]), f32(enc["logvar"])
    t.update(flat(nnx.state(m, nnx.BatchStat), "after_train."))

    m = nnx.clone(model0)  # reset to the initial state
    t["dec_train"] = f32(m.decode(jnp.asarray(z), use_running_average=False))
    t.update(flat(nnx.state(m, nnx.BatchStat), "after_train_dec."))

    for k, v in flat(params_and_stats(model0), "state.").items():
        assert np.array_equal(v, t[k]), k
    write("custom_vae", "CustomVAE", cfg, t,
          notes="eval = encode/decode(use_running_average=True); train = (False). "
                "after_train.* = all BatchStats after ONE encode train call from the initial "
                "state; after_train_dec.* = all BatchStats after ONE decode train call from the "
                "initial state (separate clone). State is perturbed (bias/scale/mean/var "
                "random) after construction; kernels are NNX init values.")


class GAN(nnx.Module):
    """Holder so that the state flattens to generator.* / discriminator.*."""

    def __init__(self, generator, discriminator):
        self.generator = generator
        self.discriminator = discriminator


def gan_case():
    cfg = {
        "generator": {"latent_dim": 6, "output_shape": [4, 4, 1], "hidden_dims": [8, 12, 16],
                      "use_attention": True, "attention_num_heads": 4,
                      "attention_hidden_size": 12, "rngs_seed": 0},
        "discriminator": {"input_shape": [4, 4, 1], "hidden_dims": [16, 8],
                          "spectral_norm": False, "rngs_seed": 1},
        "seed_fixes": ["F2: self.layers = nnx.List()",
                       "F3: attention hidden_size = hidden_dims[i] (not hidden_dims[i + 1])"],
        "state_perturbed": True,
    }
    gen = CustomGenerator(latent_dim=6, output_shape=(4, 4, 1), hidden_dims=[8, 12, 16],
                          use_attention=True, rngs=nnx.Rngs(0))
    disc = CustomDiscriminator(input_shape=(4, 4, 1), hidden_dims=[16, 8], spectral_norm=False,
                               rngs=nnx.Rngs(1))
    model0 = GAN(gen, disc)
    perturb(model0, np.random.default_rng(800))
    z = randn(801, (3, 6))
    t = flat(params_and_stats(model0), "state.")
    t["input"] = z

    m = nnx.clone(model0)
    m.eval()
    g_eval = m.generator(jnp.asarray(z), use_running_average=True)
    t["gen_eval"] = f32(g_eval)
    t["disc_eval"] = f32(m.discriminator(g_eval))

    m = nnx.clone(model0)
    t["gen_train"] = f32(m.generator(jnp.asarray(z), use_running_average=False))
    t.update(flat(nnx.state(m, nnx.BatchStat), "after_train."))

    for k, v in flat(params_and_stats(model0), "state.").items():
        assert np.array_equal(v, t[k]), k
    write("gan", "CustomGenerator+CustomDiscriminator", cfg, t,
          notes="generator layers: [Linear(6,8), BN8, Linear(8,12), BN12, Linear(12,16), "
                "BN16]; relu only after Linear; attention (seq len 1) applied after layer "
                "index 3 (BN12). eval = use_running_average=True. disc_eval = "
                "discriminator(gen_eval). after_train.* after ONE generator train call from "
                "the initial state. State perturbed after construction.")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.safetensors"):
        old.unlink()
    linear_cases()
    conv_cases()
    conv_transpose_cases()
    norm_cases()
    embed_case()
    mha_seed_cases()
    activations_case()
    custom_vae_case()
    gan_case()

    total = sum(s for _, _, s in SUMMARY)
    print(f"{'case':<28} {'keys':>5} {'bytes':>8}")
    for name, nkeys, size in SUMMARY:
        print(f"{name:<28} {nkeys:>5} {size:>8}")
    print(f"{'TOTAL (' + str(len(SUMMARY)) + ' files)':<28} {'':>5} {total:>8}")
    assert total < MAX_TOTAL_BYTES, total
    print(f"flax {flax.__version__}, jax {jax.__version__}, numpy {np.__version__}, "
          f"safetensors {safetensors.__version__}; written to {OUT}")


if __name__ == "__main__":
    main()
