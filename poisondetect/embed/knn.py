"""Exact cosine k-nearest-neighbours on L2-normalised vectors, brute force in blocks
(memory bounded by ``max_block_bytes``), self excluded, deterministic tie order."""
from __future__ import annotations

import numpy as np


def knn_blocked(X: np.ndarray, k: int, *, max_block_bytes: int = 96 << 20,
                exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(idx, dist)`` of shape (n, k): indices of the k most similar rows (by dot
    product = cosine similarity for normalised rows) and cosine distances ``1 - sim``
    clipped to [0, 2], nearest first; ties broken by index."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    k = int(min(k, n - 1 if exclude_self else n))
    if n == 0 or k <= 0:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    B = int(max(16, min(n, max_block_bytes // max(4 * n, 1))))
    idx = np.empty((n, k), np.int64)
    dist = np.empty((n, k), np.float32)
    XT = X.T.copy()
    for s in range(0, n, B):
        e = min(n, s + B)
        S = X[s:e] @ XT  # (b, n)
        if exclude_self:
            S[np.arange(e - s), np.arange(s, e)] = -np.inf
        part = np.argpartition(-S, k - 1, axis=1)[:, :k]
        ps = np.take_along_axis(S, part, axis=1)
        # sort by similarity desc, then index asc (deterministic ties)
        o = _row_lexsort(part, ps)
        idx[s:e] = np.take_along_axis(part, o, axis=1)
        dist[s:e] = np.clip(1.0 - np.take_along_axis(ps, o, axis=1), 0.0, 2.0)
    return idx, dist


def _row_lexsort(part: np.ndarray, sims: np.ndarray) -> np.ndarray:
    # stable argsort by index, then stable argsort by -sim keeps index order among ties
    o1 = np.argsort(part, axis=1, kind="stable")
    s1 = np.take_along_axis(sims, o1, axis=1)
    o2 = np.argsort(-s1, axis=1, kind="stable")
    return np.take_along_axis(o1, o2, axis=1)
