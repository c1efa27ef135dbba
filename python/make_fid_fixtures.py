#!/usr/bin/env python3
"""Reference values for artifex_core::metrics (Fréchet distance, precision/recall).

    python3 python/make_fid_fixtures.py

Writes tests/fixtures/metrics/<case>.safetensors, read by artifex-models/tests/integration/metrics.rs. Each file holds

  real, generated   feature sets (N, D), f32 (both sides convert them to f64 exactly)
  fid               f64 scalar: pytorch-fid's `calculate_frechet_distance` formula on the
                    numpy.cov / mean statistics of the f64 features
  precision_k3, recall_k3, precision_k5, recall_k5
                    f64 scalars: Kynkäänniemi et al. (2019) improved precision/recall with
                    k = 3 and k = 5, from a plain numpy implementation of the definition

The Fréchet distance is computed the way pytorch-fid (v0.3) does it, re-implemented here
(no torch): `scipy.linalg.sqrtm(sigma1 @ sigma2)`; when the result is not finite, an
eps * I offset is added to both covariances; the real part is kept when the imaginary
diagonal is within 1e-3 of zero. The script also prints the Fréchet distance from the
symmetric-eigendecomposition formula the Rust code uses, as a cross-check.

Only numpy, scipy and safetensors are needed. The output is deterministic (fixed seeds,
one metadata key).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import linalg
from safetensors.numpy import save_file

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "metrics"


def calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's formula: |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    assert mu1.shape == mu2.shape and sigma1.shape == sigma2.shape
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        print(f"  sqrtm not finite; adding {eps} to the diagonals")
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def eigen_frechet_distance(mu1, sigma1, mu2, sigma2):
    """The formula of the Rust code: tr sqrt(S1 S2) = sum sqrt(eig(A S2 A)), A = sqrt(S1)."""
    w, v = np.linalg.eigh(sigma1)
    a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = a @ sigma2 @ a
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * np.sqrt(np.clip(lam, 0, None)).sum())


def stats(x):
    return x.mean(axis=0), np.cov(x, rowvar=False)


def squared_distances(a, b, chunk=64):
    """All squared Euclidean distances, by explicit differences, in row chunks."""
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), chunk):
        d = a[i:i + chunk, None, :] - b[None, :, :]
        out[i:i + chunk] = (d * d).sum(-1)
    return out


def knn_radii(x, k):
    """Squared distance of each sample to its k-th nearest neighbour, itself excluded."""
    d = squared_distances(x, x)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def coverage(points, centres, radii):
    """Fraction of `points` inside some ball (centre, radius) of `centres`."""
    d = squared_distances(points, centres)
    return float((d <= radii[None, :]).any(axis=1).mean())


def precision_recall(real, generated, k):
    return (coverage(generated, real, knn_radii(real, k)),
            coverage(real, generated, knn_radii(generated, k)))


def cases():
    rng = np.random.default_rng(20260214)
    out = {}

    # Correlated Gaussians with different means and covariances.
    d = 16
    mix1, mix2 = rng.normal(size=(d, d)), rng.normal(size=(d, d)) * 0.8
    real = rng.normal(size=(400, d)) @ mix1
    generated = rng.normal(size=(300, d)) @ mix2 + 0.5
    out["gaussian"] = (real, generated)

    # The same set twice: distance ~0, precision = recall = 1.
    x = rng.normal(size=(200, 8)) @ rng.normal(size=(8, 8))
    out["identical"] = (x, x.copy())

    # Ill-conditioned covariances: eigenvalues spanning 1e-8 .. 1e2 (condition ~1e10).
    d = 24
    q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scales = np.logspace(-4, 1, d)
    real = (rng.normal(size=(300, d)) * scales) @ q1.T
    generated = (rng.normal(size=(250, d)) * scales[::-1]) @ q2.T + 0.01
    out["ill_conditioned"] = (real, generated)

    # More samples than one 512-row block of the Rust pairwise distances, non-Gaussian.
    d = 12
    real = np.abs(rng.normal(size=(1100, d))) ** 1.5
    generated = rng.uniform(0, 2, size=(700, d))
    out["blocks"] = (real, generated)
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (real, generated) in cases().items():
        real = real.astype(np.float32)
        generated = generated.astype(np.float32)
        r64, g64 = real.astype(np.float64), generated.astype(np.float64)
        mu1, s1 = stats(r64)
        mu2, s2 = stats(g64)
        fid = calculate_frechet_distance(mu1, s1, mu2, s2)
        eig = eigen_frechet_distance(mu1, s1, mu2, s2)
        tensors = {
            "real": real,
            "generated": generated,
            "fid": np.array(fid),
        }
        for k in (3, 5):
            p, r = precision_recall(r64, g64, k)
            tensors[f"precision_k{k}"] = np.array(p)
            tensors[f"recall_k{k}"] = np.array(r)
        path = OUT / f"{name}.safetensors"
        save_file(tensors, str(path), metadata={"source": "python/make_fid_fixtures.py"})
        rel = abs(eig - fid) / max(abs(fid), 1e-300)
        print(f"{name:16} real {real.shape} generated {generated.shape}  fid {fid:.10g} "
              f"(eigh formula {eig:.10g}, rel diff {rel:.1e})  "
              f"P/R k=3 {tensors['precision_k3']:.4f}/{tensors['recall_k3']:.4f}  "
              f"{path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
