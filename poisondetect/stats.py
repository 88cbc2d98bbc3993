"""Statistics shared by detectors: one home for multiple-testing control and the
one-sided tests the detectors run.  Pure functions, arrays in, arrays out."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bh(pvals: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (scipy.stats.false_discovery_control)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(pvals, dtype=np.float64)
    if p.size == 0:
        return p
    return false_discovery_control(np.clip(p, 0.0, 1.0), method="bh")


def z_sum_lower(z: np.ndarray, rows: np.ndarray | Sequence[int]) -> tuple[float, float]:
    """Stouffer's test that the standardised scores ``z[rows]`` are lower than the rest:
    (statistic, one-sided p-value).  ``z`` is expected to have mean 0 and unit variance
    over the whole population (so the statistic is N(0, 1) under the null that ``rows``
    are an exchangeable draw)."""
    from scipy.stats import norm

    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return 0.0, 1.0
    s = float(-np.asarray(z, dtype=np.float64)[rows].sum() / np.sqrt(rows.size))
    return s, float(norm.sf(s))


def standardise(x: np.ndarray) -> np.ndarray:
    """(x - mean) / std, zeros where x is constant."""
    x = np.asarray(x, dtype=np.float64)
    sd = float(x.std()) if x.size else 0.0
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)
