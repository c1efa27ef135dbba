#!/usr/bin/env python3
"""Independent NumPy (float64) re-computation of the NNX fixtures.

Run after make_fixtures.py:  python3 python/check_fixtures.py

Needs only numpy + safetensors (no jax/flax).  Every formula here is the arithmetic a
Rust port has to reproduce; if this script passes, the formulas written down in
python/README.md ("NNX arithmetic") are what Flax NNX 0.12.8 actually computes.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open

FIX = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "nnx"
TOL = 2e-5
FAILS: list[str] = []


def load(name):
    with safe_open(str(FIX / f"{name}.safetensors"), "np") as h:
        t = {k: h.get_tensor(k) for k in h.keys()}
        meta = h.metadata()
    return t, json.loads(meta["config"]), meta


def close(name, key, got, want, tol=None):
    tol = TOL if tol is None else tol
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        FAILS.append(f"{name}:{key} shape {got.shape} != {want.shape}")
        return
    err = np.max(np.abs(got - want) / (1.0 + np.abs(want))) if got.size else 0.0
    if not err <= tol:
        FAILS.append(f"{name}:{key} max rel err {err:.3g}")


def S(t, prefix="state."):
    return {k[len(prefix):]: t[k].astype(np.float64) for k in t if k.startswith(prefix)}


# ----------------------------------------------------------------- conv arithmetic
def same_pads(n, k, s, d):
    ek = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + ek - n, 0)
    return total // 2, total - total // 2


def conv_nd(x, w, strides, pads, dil, groups=1, lhs_dil=None):
    """Cross-correlation, channels-last.  x (N, *sp, Cin), w (*k, Cin/groups, Cout)."""
    nsp = x.ndim - 2
    if lhs_dil is not None:  # insert (s-1) zeros between input samples
        shape = [x.shape[0]] + [(n - 1) * s + 1 for n, s in zip(x.shape[1:-1], lhs_dil)] + [x.shape[-1]]
        xd = np.zeros(shape)
        xd[(slice(None),) + tuple(slice(None, None, s) for s in lhs_dil)] = x
        x = xd
    pad_w = [(0, 0)] + [tuple(max(p, 0) for p in pr) for pr in pads] + [(0, 0)]
    x = np.pad(x, pad_w)
    # negative padding crops
    sl = [slice(None)]
    for (lo, hi), n in zip(pads, x.shape[1:-1]):
        sl.append(slice(-lo if lo < 0 else 0, n + hi if hi < 0 else n))
    x = x[tuple(sl + [slice(None)])]
    ks = w.shape[:nsp]
    cin_g = w.shape[-2]
    cout = w.shape[-1]
    cout_g = cout // groups
    out_sp = [(n - ((k - 1) * d + 1)) // s + 1 for n, k, d, s in zip(x.shape[1:-1], ks, dil, strides)]
    y = np.zeros([x.shape[0]] + out_sp + [cout])
    for kidx in np.ndindex(*ks):
        sl = [slice(None)]
        for ki, d, s, o in zip(kidx, dil, strides, out_sp):
            st = ki * d
            sl.append(slice(st, st + (o - 1) * s + 1, s))
        patch = x[tuple(sl + [slice(None)])]
        for g in range(groups):
            y[..., g * cout_g:(g + 1) * cout_g] += (
                patch[..., g * cin_g:(g + 1) * cin_g] @ w[kidx][:, g * cout_g:(g + 1) * cout_g]
            )
    return y


def convT_pads(k, s, padding):
    """jax.lax._conv_transpose_padding (what nnx.ConvTranspose uses)."""
    if padding == "SAME":
        pad_len = k + s - 2
        pad_a = k - 1 if s > k - 1 else math.ceil(pad_len / 2)
    elif padding == "VALID":
        pad_len = k + s - 2 + max(k - s, 0)
        pad_a = k - 1
    else:
        raise ValueError(padding)
    return pad_a, pad_len - pad_a


# ----------------------------------------------------------------- layers
def bn(x, scale, bias, mean, var, eps):
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def batch_stats(x, axes):
    m = x.mean(axes)
    v = np.maximum((x * x).mean(axes) - m * m, 0.0)  # biased, E[x^2]-E[x]^2
    return m, v


def linear(p, x):
    y = x @ p["kernel"]
    return y + p["bias"] if "bias" in p else y


def sub(p, prefix):
    return {k[len(prefix):]: v for k, v in p.items() if k.startswith(prefix)}


def seed_mha(p, x, heads, mask=None):
    b, n, h = x.shape
    hd = h // heads
    q = linear(sub(p, "q_proj."), x).reshape(b, n, heads, hd).transpose(0, 2, 1, 3)
    k = linear(sub(p, "k_proj."), x).reshape(b, n, heads, hd).transpose(0, 2, 1, 3)
    v = linear(sub(p, "v_proj."), x).reshape(b, n, heads, hd).transpose(0, 2, 1, 3)
    sc = np.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(hd)
    if mask is not None:
        sc = np.where(mask[:, None].astype(bool), sc, -1e9)
    sc = sc - sc.max(-1, keepdims=True)
    a = np.exp(sc)
    a /= a.sum(-1, keepdims=True)
    ctx = np.einsum("bhqk,bhkd->bhqd", a, v).transpose(0, 2, 1, 3).reshape(b, n, h)
    return linear(sub(p, "out_proj."), ctx)


def softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


# ----------------------------------------------------------------- checks
def check_linear():
    for name in ["linear", "linear_nobias", "linear_rank3"]:
        t, cfg, _ = load(name)
        p, x, r = S(t), t["input"].astype(np.float64), t["grad_r"].astype(np.float64)
        close(name, "out_eval", t["out_eval"], linear(p, x))
        close(name, "grad.input", t["grad.input"], r @ p["kernel"].T)
        close(name, "grad.kernel", t["grad.kernel"], x.reshape(-1, 5).T @ r.reshape(-1, 7))
        if "bias" in p:
            close(name, "grad.bias", t["grad.bias"], r.reshape(-1, 7).sum(0))


def check_conv():
    for f in sorted(FIX.glob("conv*.safetensors")):
        name = f.stem
        t, cfg, meta = load(name)
        p, x = S(t), t["input"].astype(np.float64)
        nsp = x.ndim - 2
        k = cfg["kernel_size"]
        if meta["layer"] == "Conv":
            s = [cfg["strides"]] * nsp
            d = [cfg["kernel_dilation"]] * nsp
            pad = cfg["padding"]
            if pad == "SAME":
                pads = [same_pads(n, kk, ss, dd) for n, kk, ss, dd in zip(x.shape[1:-1], k, s, d)]
            elif pad == "VALID":
                pads = [(0, 0)] * nsp
            else:
                pads = [tuple(pp) for pp in pad]
            y = conv_nd(x, p["kernel"], s, pads, d, cfg["feature_group_count"])
        else:  # ConvTranspose: lhs-dilated correlation with the UNFLIPPED kernel
            s = cfg["strides"]
            pads = [convT_pads(kk, ss, cfg["padding"]) for kk, ss in zip(k, s)]
            y = conv_nd(x, p["kernel"], [1] * nsp, pads, [1] * nsp, 1, lhs_dil=s)
        if "bias" in p:
            y = y + p["bias"]
        close(name, "out_eval", t["out_eval"], y)


def check_norms():
    for name in ["batchnorm", "batchnorm_nhwc"]:
        t, cfg, _ = load(name)
        p, x = S(t), t["input"].astype(np.float64)
        axes = tuple(range(x.ndim - 1))
        close(name, "out_eval", t["out_eval"], bn(x, p["scale"], p["bias"], p["mean"], p["var"], 1e-5))
        m, v = batch_stats(x, axes)
        close(name, "out_train", t["out_train"], bn(x, p["scale"], p["bias"], m, v, 1e-5))
        close(name, "after_train.mean", t["after_train.mean"], 0.99 * p["mean"] + 0.01 * m)
        close(name, "after_train.var", t["after_train.var"], 0.99 * p["var"] + 0.01 * v)
        # train-mode gradient (batch statistics are differentiated through)
        r = t["grad_r"].astype(np.float64)
        xhat = (x - m) / np.sqrt(v + 1e-5)
        close(name, "grad.bias", t["grad.bias"], r.sum(axes))
        close(name, "grad.scale", t["grad.scale"], (r * xhat).sum(axes))
        g = r * p["scale"]
        nred = np.prod([x.shape[a] for a in axes])
        gx = (g - g.mean(axes) - xhat * (g * xhat).mean(axes)) / np.sqrt(v + 1e-5)
        close(name, "grad.input", t["grad.input"], gx, 1e-4)
        assert nred > 0
    for name in ["layernorm", "layernorm_rank3"]:
        t, cfg, _ = load(name)
        p, x = S(t), t["input"].astype(np.float64)
        m = x.mean(-1, keepdims=True)
        v = np.maximum((x * x).mean(-1, keepdims=True) - m * m, 0)
        close(name, "out_eval", t["out_eval"], (x - m) / np.sqrt(v + 1e-6) * p["scale"] + p["bias"])
    t, cfg, _ = load("groupnorm")
    p, x = S(t), t["input"].astype(np.float64)
    n, h, w, c = x.shape
    xg = x.reshape(n, h, w, 3, c // 3)
    m = xg.mean((1, 2, 4), keepdims=True)
    v = np.maximum((xg * xg).mean((1, 2, 4), keepdims=True) - m * m, 0)
    y = ((xg - m) / np.sqrt(v + 1e-6)).reshape(x.shape) * p["scale"] + p["bias"]
    close("groupnorm", "out_eval", t["out_eval"], y)
    t, cfg, _ = load("rmsnorm")
    p, x = S(t), t["input"].astype(np.float64)
    close("rmsnorm", "out_eval", t["out_eval"],
          x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * p["scale"])


def check_embed():
    t, _, _ = load("embed")
    close("embed", "out_eval", t["out_eval"], t["state.embedding"][t["input"].astype(np.int64)])


def check_mha():
    for name in ["mha_seed", "mha_seed_mask"]:
        t, cfg, _ = load(name)
        p, x = S(t), t["input"].astype(np.float64)
        y = seed_mha(p, x, cfg["num_heads"], t.get("mask"))
        close(name, "out_eval", t["out_eval"], y)
    t, _, _ = load("mha_seed_mask")
    assert not t["mask"][1, 2].any()


def check_activations():
    t, _, _ = load("activations")
    x = t["input"].astype(np.float64)
    erf = np.vectorize(math.erf)
    want = {
        "relu": np.maximum(x, 0),
        "leaky_relu_0.2": np.where(x >= 0, x, 0.2 * x),
        "elu": np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        "gelu_exact": 0.5 * x * (1 + erf(x / np.sqrt(2))),
        "gelu_tanh": 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
        "silu": x / (1 + np.exp(-x)),
        "sigmoid": 1 / (1 + np.exp(-x)),
        "tanh": np.tanh(x),
        "softplus": np.logaddexp(x, 0),
        "softmax_last": softmax(x, -1),
        "log_softmax_last": x - x.max(-1, keepdims=True)
        - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)),
        "softmax_axis0": softmax(x, 0),
    }
    for k, v in want.items():
        close("activations", k, t[k], v)


def relu(x):
    return np.maximum(x, 0)


def run_list(p, prefix, n, x, train, stats_out):
    """Seed VAE list: Linear/BatchNorm alternate; activation after EVERY layer."""
    for i in range(n):
        q = sub(p, f"{prefix}.{i}.")
        if "kernel" in q:
            x = linear(q, x)
        else:
            if train:
                m, v = batch_stats(x, (0,))
                stats_out[f"{prefix}.{i}.mean"] = 0.99 * q["mean"] + 0.01 * m
                stats_out[f"{prefix}.{i}.var"] = 0.99 * q["var"] + 0.01 * v
                x = bn(x, q["scale"], q["bias"], m, v, 1e-5)
            else:
                x = bn(x, q["scale"], q["bias"], q["mean"], q["var"], 1e-5)
        x = relu(x)
    return x


def check_vae():
    # 3-sample batch statistics after ReLU: some features have (near-)zero batch
    # variance, so f32 rounding is amplified by 1/sqrt(var + 1e-5); use 1e-4 here.
    def close(n, k, g, w):
        globals()["close"](n, k, g, w, 1e-4)

    t, cfg, _ = load("custom_vae")
    p = S(t)
    x = t["input"].astype(np.float64).reshape(t["input"].shape[0], -1)
    z = t["z"].astype(np.float64)
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    for train, tag in [(False, "eval"), (True, "train")]:
        st = {}
        h = run_list(p, "encoder", 4, x, train, st)
        close("custom_vae", f"enc_{tag}.mean", t[f"enc_{tag}.mean"], linear(sub(p, "mean_layer."), h))
        close("custom_vae", f"enc_{tag}.logvar", t[f"enc_{tag}.logvar"], linear(sub(p, "logvar_layer."), h))
        if train:
            for k, v in st.items():
                close("custom_vae", "after_train." + k, t["after_train." + k], v)
        st = {}
        h = run_list(p, "decoder", 4, z, train, st)
        y = sig(linear(sub(p, "output_layer."), h)).reshape(-1, 28, 28, 1)
        close("custom_vae", f"dec_{tag}", t[f"dec_{tag}"], y)
        if train:
            for k, v in st.items():
                close("custom_vae", "after_train_dec." + k, t["after_train_dec." + k], v)


def check_gan():
    t, cfg, _ = load("gan")
    p = S(t)
    g, dsc = sub(p, "generator."), sub(p, "discriminator.")
    z = t["input"].astype(np.float64)
    for train, tag in [(False, "eval"), (True, "train")]:
        x, st = z, {}
        for i in range(6):
            q = sub(g, f"layers.{i}.")
            if "kernel" in q:
                x = relu(linear(q, x))
            elif train:
                m, v = batch_stats(x, (0,))
                st[f"layers.{i}.mean"] = 0.99 * q["mean"] + 0.01 * m
                st[f"layers.{i}.var"] = 0.99 * q["var"] + 0.01 * v
                x = bn(x, q["scale"], q["bias"], m, v, 1e-5)
            else:
                x = bn(x, q["scale"], q["bias"], q["mean"], q["var"], 1e-5)
            if i == 3:  # len(layers)//2: attention over a length-1 sequence
                x = seed_mha(sub(g, "attention."), x[:, None, :], 4)[:, 0, :]
        out = np.tanh(linear(sub(g, "output_layer."), x)).reshape(3, 4, 4, 1)
        close("gan", f"gen_{tag}", t[f"gen_{tag}"], out)
        if train:
            for k, v in st.items():
                close("gan", "after_train.generator." + k, t["after_train.generator." + k], v)
        else:
            h = out.reshape(3, -1)
            for i in range(2):
                h = linear(sub(dsc, f"layers.{i}."), h)
                h = np.where(h >= 0, h, 0.2 * h)
            close("gan", "disc_eval", t["disc_eval"], linear(sub(dsc, "output_layer."), h))


def main():
    for fn in [check_linear, check_conv, check_norms, check_embed, check_mha,
               check_activations, check_vae, check_gan]:
        fn()
    if FAILS:
        print("FAILED:\n  " + "\n  ".join(FAILS))
        sys.exit(1)
    print(f"all fixture checks passed ({len(list(FIX.glob('*.safetensors')))} files)")


if __name__ == "__main__":
    main()
