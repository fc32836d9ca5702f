"""Summaries with bootstrap intervals and the paired comparison of two models.

- ``summarize``: mean, median and 10th percentile of per-video values, each with a
  percentile-bootstrap 95 % interval (videos resampled with replacement, fixed seed: a
  report is reproducible).
- ``paired_difference``: over the videos both models scored, the mean of the per-video
  differences (B - A) with its bootstrap interval and a two-sided sign-flip permutation
  test (exact for up to 16 videos, else 20,000 random sign patterns). Under "no
  difference" each difference is as likely positive as negative; the p-value is the share
  of sign patterns whose mean is at least as far from 0 as the one observed. A model
  against itself gives differences of exactly 0: mean 0, interval [0, 0], p = 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

BOOTSTRAP = 2000
LEVEL = 0.95
EXACT_UP_TO = 16
PERMUTATIONS = 20_000
SEED = 20240611


def _interval(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_interval(
    values: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], resamples: int = BOOTSTRAP, seed: int = SEED
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` (applied along axis 1 of (resamples, n) draws)."""
    x = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = x[rng.integers(0, len(x), size=(resamples, len(x)))]
    return _interval(statistic(draws))


STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": lambda a: np.mean(a, axis=-1),
    "median": lambda a: np.median(a, axis=-1),
    "p10": lambda a: np.percentile(a, 10, axis=-1),
}


def summarize(values: list[float] | np.ndarray) -> dict[str, float | int | list[float] | None]:
    """n, and each statistic with ``<name>_ci`` [low, high]; None for no values."""
    x = np.asarray(values, dtype=np.float64)
    out: dict[str, float | int | list[float] | None] = {"n": int(len(x))}
    for name, fn in STATISTICS.items():
        if len(x) == 0:
            out[name], out[f"{name}_ci"] = None, None
            continue
        out[name] = float(fn(x))
        out[f"{name}_ci"] = list(bootstrap_interval(x, fn))
    return out


def sign_flip_p_value(differences: np.ndarray, seed: int = SEED) -> float:
    """Two-sided p-value of the mean of paired differences (module docstring)."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) == 0:
        return float("nan")
    observed = abs(d.mean())
    if len(d) <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(PERMUTATIONS, len(d)))
    means = np.abs(signs @ d) / len(d)
    # a relative tolerance so that patterns equal to the observed one up to round-off count as "as far"
    return float(np.mean(means >= observed * (1 - 1e-12)))


def paired_difference(a: np.ndarray, b: np.ndarray) -> dict[str, float | int | list[float] | None]:
    """Mean of ``b - a`` over paired values, its bootstrap interval and the sign-flip p-value."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if len(d) == 0:
        return {"n": 0, "mean_diff": None, "mean_diff_ci": None, "p_value": None}
    return {
        "n": int(len(d)),
        "mean_diff": float(d.mean()),
        "mean_diff_ci": list(bootstrap_interval(d, STATISTICS["mean"])),
        "p_value": sign_flip_p_value(d),
    }
