"""Fréchet distance between Gaussians, and between two feature sets through their means and
covariances (FVD when the features are I3D's).

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

``S1 S2`` is similar to ``R S2 R`` with ``R = S1^(1/2)`` (symmetric, positive semi-definite),
so the trace of its square root is the sum of the square roots of that matrix's eigenvalues:
two symmetric eigendecompositions in float64, no general matrix square root (scipy's
``sqrtm`` is not needed, and its complex round-off never appears).
"""

from __future__ import annotations

import numpy as np

from latentsync_core.common.errors import CodedError


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) of (N, D) features in float64 (unbiased, N - 1)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise CodedError("TOO_FEW_VIDEOS", f"a Fréchet distance needs at least 2 feature vectors, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) of two covariance matrices."""
    root = _psd_sqrt(np.asarray(s1, dtype=np.float64))
    inner = root @ np.asarray(s2, dtype=np.float64) @ root
    values = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """The squared Fréchet (2-Wasserstein) distance of N(mu1, S1) and N(mu2, S2); never
    below 0 (round-off of a distance that is 0 is clipped there)."""
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.atleast_2d(np.asarray(s1, dtype=np.float64)), np.atleast_2d(np.asarray(s2, dtype=np.float64))
    diff = mu1 - mu2
    value = float(diff @ diff) + float(np.trace(s1) + np.trace(s2)) - 2.0 * trace_sqrt_product(s1, s2)
    return max(value, 0.0)


def feature_distance(fake: np.ndarray, real: np.ndarray) -> float:
    """Fréchet distance of two (N, D) feature sets (FVD for I3D features of videos).

    With fewer vectors than dimensions (a few dozen test videos, 400 I3D features) both
    covariances live in the span of the centred vectors: the traces are computed in an
    orthonormal basis of that span (the same value, from matrices of N_fake + N_real
    columns instead of D x D), the mean difference in the full space."""
    a, b = np.asarray(fake, dtype=np.float64), np.asarray(real, dtype=np.float64)
    mu_a, s_a = gaussian_stats(a)
    mu_b, s_b = gaussian_stats(b)
    if len(a) + len(b) >= a.shape[1]:
        return frechet_distance(mu_a, s_a, mu_b, s_b)
    basis, _ = np.linalg.qr(np.concatenate([a - mu_a, b - mu_b]).T)  # (D, Na + Nb), orthonormal columns
    diff = mu_a - mu_b
    small = frechet_distance(
        np.zeros(basis.shape[1]), basis.T @ s_a @ basis, np.zeros(basis.shape[1]), basis.T @ s_b @ basis
    )
    return max(float(diff @ diff) + small, 0.0)
