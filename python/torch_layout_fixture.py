#!/usr/bin/env python3
"""Write a PyTorch-layout safetensors file from numpy (no torch needed), for the Rust Adapter test.

    python3 python/torch_layout_fixture.py

Writes to tests/fixtures/interop/:

* `torch_mlp.safetensors`: the `state_dict()` that torch would save for

      net  = nn.Sequential(nn.Linear(6, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Dropout(0.5),
                           nn.Linear(10, 3))
      conv = nn.Conv2d(3, 4, kernel_size=(2, 3))
      up   = nn.ConvTranspose2d(4, 2, kernel_size=3, stride=2)

  with torch's key names and layouts (Linear weight (out, in), Conv OIHW, ConvTranspose
  (in, out, kh, kw), BatchNorm weight / bias / running_mean / running_var and an int64
  num_batches_tracked), written by `safetensors.numpy.save_file`, as torch files in the wild.

* `torch_mlp.expected.safetensors`: an input `x` (4, 6), the eval-mode output `y` of `net`
  computed with torch's formulas in float64 (BatchNorm eps 1e-5, dropout off), and the
  kernels the adapter must produce: `conv.kernel` (HWIO) and `up.kernel` ((kh, kw, in, out),
  spatially flipped).

Before writing, the script checks with Flax NNX that the converted kernels are the ones NNX
layers need: `nnx.Conv` with `conv.kernel` on NHWC input equals torch's conv2d (computed here
in numpy) on NCHW input, and `nnx.ConvTranspose` (padding VALID) with `up.kernel` equals
torch's conv_transpose2d.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402
from safetensors.numpy import save_file, load_file  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import write_safetensors  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "interop"


def torch_conv2d(x, w, b):
    """torch.nn.functional.conv2d, stride 1, no padding: x NCHW, w OIHW."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    out = np.zeros((n, o, h - kh + 1, wd - kw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            patch = x[:, :, i:i + kh, j:j + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out + b[None, :, None, None]


def torch_conv_transpose2d(x, w, b, s):
    """torch.nn.functional.conv_transpose2d, no padding: x NCHW, w (in, out, kh, kw)."""
    n, c, h, wd = x.shape
    _, o, kh, kw = w.shape
    out = np.zeros((n, o, (h - 1) * s + kh, (wd - 1) * s + kw))
    for i in range(h):
        for j in range(wd):
            out[:, :, i * s:i * s + kh, j * s:j * s + kw] += np.einsum("nc,cohw->nohw", x[:, :, i, j], w)
    return out + b[None, :, None, None]


def main():
    rng = np.random.default_rng(900)
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    sd = {
        "net.0.weight": f(10, 6) * 0.4,
        "net.0.bias": f(10) * 0.5,
        "net.1.weight": rng.uniform(0.5, 1.5, 10).astype(np.float32),
        "net.1.bias": f(10) * 0.5,
        "net.1.running_mean": f(10) * 0.5,
        "net.1.running_var": rng.uniform(0.5, 2.0, 10).astype(np.float32),
        "net.1.num_batches_tracked": np.array(37, dtype=np.int64),
        "net.4.weight": f(3, 10) * 0.3,
        "net.4.bias": f(3) * 0.5,
        "conv.weight": f(4, 3, 2, 3),
        "conv.bias": f(4),
        "up.weight": f(4, 2, 3, 3),
        "up.bias": f(2),
    }
    x = rng.uniform(-1, 1, (4, 6)).astype(np.float32)

    # torch eval-mode forward of `net`, float64.
    d = {k: v.astype(np.float64) for k, v in sd.items()}
    h = x.astype(np.float64) @ d["net.0.weight"].T + d["net.0.bias"]
    h = (h - d["net.1.running_mean"]) / np.sqrt(d["net.1.running_var"] + 1e-5) * d["net.1.weight"] + d["net.1.bias"]
    h = np.maximum(h, 0.0)
    y = h @ d["net.4.weight"].T + d["net.4.bias"]

    conv_kernel = np.ascontiguousarray(sd["conv.weight"].transpose(2, 3, 1, 0))
    up_kernel = np.ascontiguousarray(sd["up.weight"].transpose(2, 3, 0, 1)[::-1, ::-1])

    # The converted kernels are what NNX layers need to reproduce torch's outputs.
    img = rng.standard_normal((2, 3, 5, 6))
    conv = nnx.Conv(3, 4, kernel_size=(2, 3), padding="VALID", rngs=nnx.Rngs(0))
    conv.kernel[...] = jnp.asarray(conv_kernel)
    conv.bias[...] = jnp.asarray(sd["conv.bias"])
    want = torch_conv2d(img, d["conv.weight"], d["conv.bias"]).transpose(0, 2, 3, 1)
    got = np.asarray(conv(jnp.asarray(img.transpose(0, 2, 3, 1), jnp.float32)))
    assert np.allclose(got, want, atol=1e-4), np.abs(got - want).max()

    small = rng.standard_normal((2, 4, 3, 4))
    up = nnx.ConvTranspose(4, 2, kernel_size=(3, 3), strides=(2, 2), padding="VALID", rngs=nnx.Rngs(0))
    up.kernel[...] = jnp.asarray(up_kernel)
    up.bias[...] = jnp.asarray(sd["up.bias"])
    want = torch_conv_transpose2d(small, d["up.weight"], d["up.bias"], 2).transpose(0, 2, 3, 1)
    got = np.asarray(up(jnp.asarray(small.transpose(0, 2, 3, 1), jnp.float32)))
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.allclose(got, want, atol=1e-4), np.abs(got - want).max()

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "torch_mlp.safetensors"
    save_file(sd, str(path), metadata={"format": "pt"})
    back = load_file(str(path))
    assert sorted(back) == sorted(sd) and all(np.array_equal(back[k], sd[k]) for k in sd)
    write_safetensors(
        OUT / "torch_mlp.expected.safetensors",
        {"x": x, "y": y.astype(np.float32), "conv.kernel": conv_kernel, "up.kernel": up_kernel},
        {"generator": "python/torch_layout_fixture.py",
         "notes": "y = eval-mode torch forward of net (float64, cast to float32)"},
    )
    for p in (path, OUT / "torch_mlp.expected.safetensors"):
        print(f"{p.relative_to(OUT.parent.parent.parent)}: {p.stat().st_size} bytes")
    print("NNX Conv / ConvTranspose with the converted kernels match torch's formulas")


if __name__ == "__main__":
    main()
