"""The exact one-sided Fisher p-values the n-gram test needs, and a cheap bound where the
exact value cannot change a Benjamini-Hochberg q-value."""
from __future__ import annotations

import numpy as np
from scipy import special

from ... import stats as S


def fisher_greater_bh(a: np.ndarray, N: int, n_f: np.ndarray, n_g: np.ndarray, tau: float,
                       threads: int = 1) -> np.ndarray:
    """:func:`poisondetect.stats.hypergeom_upper` where it can matter to Benjamini-Hochberg, a bound elsewhere.

    With ``tau`` = (p-values listed) / (tests counted) of the BH family they join, a
    p-value >= tau contributes only terms >= 1 to every BH q-value, so any value >= tau
    gives the same q-values.  Where the first term of the tail, pmf(a) (a lower bound on
    the p-value), is above ``tau`` the cheap upper bound :func:`poisondetect.stats.hypergeom_upper_bound` is used
    (>= the exact p >= tau); the exact tail (scipy, slow: ~70 us a value) is computed for
    the rest."""
    a = np.asarray(a, float)
    n_f = np.asarray(n_f, float)
    n_g = np.asarray(n_g, float)
    out = np.ones(len(a))
    if len(a) == 0:
        return out
    gl = special.gammaln
    logpmf = (gl(n_f + 1) - gl(a + 1) - gl(n_f - a + 1) + gl(N - n_f + 1) - gl(n_g - a + 1)
              - gl(N - n_f - n_g + a + 1) - gl(N + 1) + gl(n_g + 1) + gl(N - n_g + 1))
    lower_big = np.exp(logpmf) >= 2.0 * tau if tau > 0 else np.zeros(len(a), bool)  # (margin for rounding)
    out[lower_big] = S.hypergeom_upper_bound(a[lower_big], float(N), n_f[lower_big], n_g[lower_big])
    ex = np.flatnonzero(~lower_big)
    if len(ex) > 2000 and threads > 1:
        # (scipy's tail releases the GIL: two threads, each half the values)
        from concurrent.futures import ThreadPoolExecutor
        parts = np.array_split(ex, threads)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for part, val in zip(parts, pool.map(lambda e: S.hypergeom_upper(a[e], N, n_f[e], n_g[e]), parts)):
                out[part] = val
    elif len(ex):
        out[ex] = S.hypergeom_upper(a[ex], N, n_f[ex], n_g[ex])
    return out
