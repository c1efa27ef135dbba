#!/usr/bin/env python3
"""The floor of ``bench_vae``'s training step: the time numpy (its BLAS, OpenBLAS in the
pip wheels) needs for just the matrix products of one step of the seed's CustomVAE
(784-512-256-128, latent 20, decoder 128-256-512-784, batch 128), at their real shapes.

    python3 python/gemm_floor.py [--batch 128] [--steps 200] [--warmup 20] [--threads N]

Per Linear layer ``(in, out)`` of the step: the forward ``x (batch, in) @ w (in, out)``,
the kernel gradient ``x^T (in, batch) @ g (batch, out)`` and, except for the first layer
(its input is the data), the input gradient ``g (batch, out) @ w^T (out, in)``. The
encoder's two heads (mean, log-variance) are two layers. Nothing else of the step (bias,
BatchNorm, activations, the loss, Adam) is counted, so no implementation of the step can
beat this rate on the same BLAS. Prints one machine-readable line that bench_vae reads:

    gemm_floor vae batch=128 steps_per_s=152.3 gflop_per_s=96.1
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _threads_from_argv() -> int | None:
    """``--threads N``, read before numpy is imported (OpenBLAS reads it once)."""
    if "--threads" in sys.argv:
        return int(sys.argv[sys.argv.index("--threads") + 1])
    return None


_THREADS = _threads_from_argv()
if _THREADS is not None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(_THREADS)

import numpy as np  # noqa: E402

INPUT = 784
LATENT = 20
ENCODER = [512, 256, 128]
DECODER = [128, 256, 512]


def layers() -> list[tuple[int, int, bool]]:
    """``(in, out, needs_input_gradient)`` of every Linear layer of the step."""
    out = []
    features = INPUT
    for w in ENCODER:
        out.append((features, w, features != INPUT))
        features = w
    out += [(features, LATENT, True), (features, LATENT, True)]
    features = LATENT
    for w in DECODER:
        out.append((features, w, True))
        features = w
    out.append((features, INPUT, True))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads (as RAYON_NUM_THREADS for candle); default: the BLAS's own")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    mats = []
    flop = 0
    for fan_in, fan_out, needs_dx in layers():
        x = rng.standard_normal((args.batch, fan_in), dtype=np.float32)
        w = rng.standard_normal((fan_in, fan_out), dtype=np.float32)
        g = rng.standard_normal((args.batch, fan_out), dtype=np.float32)
        y = np.empty((args.batch, fan_out), dtype=np.float32)
        dw = np.empty((fan_in, fan_out), dtype=np.float32)
        dx = np.empty((args.batch, fan_in), dtype=np.float32) if needs_dx else None
        mats.append((x, w, g, y, dw, dx))
        flop += 2 * args.batch * fan_in * fan_out * (3 if needs_dx else 2)

    def step() -> None:
        for x, w, g, y, dw, dx in mats:
            np.matmul(x, w, out=y)
            np.matmul(x.T, g, out=dw)
            if dx is not None:
                np.matmul(g, w.T, out=dx)

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    rate = args.steps / (time.perf_counter() - start)
    config = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
    blas = config.get("Build Dependencies", {}).get("blas", {}).get("name", "unknown")
    print(f"numpy {np.__version__}, BLAS {blas}, threads {_THREADS or 'default'}")
    print(f"gemm_floor vae batch={args.batch} steps_per_s={rate:.2f} "
          f"gflop_per_s={rate * flop / 1e9:.2f}")


if __name__ == "__main__":
    main()
