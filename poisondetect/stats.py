"""Statistics shared by detectors: one home for multiple-testing control and the
one-sided tests the detectors run.  Pure functions, arrays in, arrays out."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def bh(pvals: Sequence[float] | np.ndarray, m_total: int | None = None) -> np.ndarray:
    """Benjamini-Hochberg q-values (scipy.stats.false_discovery_control).

    With ``m_total``, the family had ``m_total - len(pvals)`` further tests whose p-values
    were not computed and count as 1 (independent filtering: conservative), so every
    q-value is scaled by ``m_total / len(pvals)`` and capped at 1."""
    from scipy.stats import false_discovery_control

    p = np.asarray(pvals, dtype=np.float64)
    if p.size == 0:
        return p
    q = false_discovery_control(np.clip(p, 0.0, 1.0), method="bh")
    if m_total is None:
        return q
    return np.minimum(1.0, q * (max(m_total, p.size) / p.size))


def hypergeom_upper(a: np.ndarray, N: Any, K: Any, n: Any) -> np.ndarray:
    """One-sided Fisher exact / hypergeometric p-value P(X >= a), X ~ Hypergeom(N, K, n)
    (population N, K successes, n draws); 1 where a <= 0."""
    from scipy.stats import hypergeom

    a = np.asarray(a, dtype=np.float64)
    return np.where(a > 0, np.clip(hypergeom.sf(a - 1, N, K, n), 0.0, 1.0), 1.0)


def fisher_exact_greater(a: int, b: int, c: int, d: int) -> float:
    """One-sided Fisher exact p-value of the 2x2 table [[a, b], [c, d]]: is the share
    a / (a + b) of the first row greater than c / (c + d)?  (scipy.stats.fisher_exact,
    alternative "greater"; 1 where a row or column is empty.)"""
    from scipy.stats import fisher_exact

    return float(fisher_exact([[a, b], [c, d]], alternative="greater")[1])


def hypergeom_log_pmf(a: np.ndarray, N: Any, K: np.ndarray, n: np.ndarray) -> np.ndarray:
    """log P(X = a), X ~ Hypergeom(N, K, n), from log-gamma (vectorised, float64)."""
    from scipy.special import gammaln as gl

    return (gl(K + 1) - gl(a + 1) - gl(K - a + 1) + gl(N - K + 1) - gl(n - a + 1)
            - gl(N - K - n + a + 1) - gl(N + 1) + gl(n + 1) + gl(N - n + 1))


def hypergeom_upper_bound(a: np.ndarray, N: float, K: np.ndarray, n: np.ndarray) -> np.ndarray:
    """A cheap upper bound on :func:`hypergeom_upper`: pmf(a) / (1 - r) with
    r = pmf(a+1) / pmf(a) (the pmf ratio decreases above the mode, so the tail is below a
    geometric series); 1 where a is not above the mode.  Screens millions of candidates
    before the exact tail is computed for the few that can matter."""
    a = np.asarray(a, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    logpmf = hypergeom_log_pmf(a, N, K, n)
    r = ((K - a) * (n - a)) / ((a + 1) * (N - K - n + a + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.exp(logpmf) / (1 - r)
    return np.where((r < 1) & np.isfinite(bound), np.clip(bound, 0.0, 1.0), 1.0)


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
