"""Exact cosine k-nearest-neighbours on L2-normalised vectors: brute force in blocks
(memory bounded by ``max_block_bytes``), self excluded, ties broken by index.

Duplicate rows (identical vectors, e.g. repeated short answers) are searched once:
the graph is built over distinct vectors and expanded, so a dataset whose responses are
mostly "Yes"/"No" costs what its distinct responses cost.  The matrix product and
top-k use torch when it is importable (its top-k is ~10x faster than numpy's
argpartition on CPU), numpy otherwise.
"""
from __future__ import annotations

import numpy as np


def knn_blocked(X: np.ndarray, k: int, *, max_block_bytes: int = 64 << 20,
                exclude_self: bool = True, dedupe: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(idx, dist)`` of shape (n, k): the k most similar other rows (dot product
    = cosine similarity for normalised rows) and cosine distances ``1 - sim`` clipped to
    [0, 2], nearest first, ties by lower index."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    k = int(min(k, n - 1 if exclude_self else n))
    if n == 0 or k <= 0:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    if dedupe and exclude_self:
        U, first, inv, counts = np.unique(X, axis=0, return_index=True, return_inverse=True, return_counts=True)
        inv = inv.ravel()
        if len(U) < n:
            return _expand(X, U, first, inv, counts, k, max_block_bytes)
    return _knn_core(X, k, max_block_bytes, exclude_self)


#: above this many distinct vectors the graph is searched with an inverted-file index
EXACT_MAX = 12000


def _knn_core(X: np.ndarray, k: int, max_block_bytes: int, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    n = len(X)
    if exclude_self and n > EXACT_MAX and k < 64:
        return knn_ivf(X, k)
    k = int(min(k, n - 1 if exclude_self else n))
    idx = np.zeros((n, max(k, 0)), np.int64)
    dist = np.zeros((n, max(k, 0)), np.float32)
    if k <= 0:
        return idx, dist
    B = int(max(16, min(n, max_block_bytes // max(4 * n, 1))))
    kk = min(n, k + 1) if exclude_self else k
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None:
        Xt = torch.from_numpy(X)
        XT = Xt.T.contiguous()
    else:
        XT = np.ascontiguousarray(X.T)
    for s in range(0, n, B):
        e = min(n, s + B)
        if torch is not None:
            S = Xt[s:e] @ XT
            if exclude_self:
                S[torch.arange(e - s), torch.arange(s, e)] = -float("inf")
            v, p = torch.topk(S, kk, dim=1, largest=True, sorted=False)
            ps, part = v.numpy(), p.numpy().astype(np.int64)
        else:
            S = X[s:e] @ XT
            if exclude_self:
                S[np.arange(e - s), np.arange(s, e)] = -np.inf
            part = np.argpartition(S, S.shape[1] - kk, axis=1)[:, -kk:]
            ps = np.take_along_axis(S, part, axis=1)
        o = _row_lexsort(part, ps)
        part = np.take_along_axis(part, o, axis=1)[:, :k]
        ps = np.take_along_axis(ps, o, axis=1)[:, :k]
        idx[s:e] = part
        dist[s:e] = np.clip(1.0 - ps, 0.0, 2.0)
    return idx, dist


def _expand(X: np.ndarray, U: np.ndarray, first: np.ndarray, inv: np.ndarray, counts: np.ndarray,
            k: int, max_block_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """kNN over distinct vectors U, expanded to rows: a row's nearest are first its
    duplicates (distance 0, by index), then the members of the nearest distinct vectors."""
    n = len(X)
    # order distinct vectors by first occurrence so results do not depend on np.unique's sort
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    U = U[order]
    counts = counts[order]
    inv = rank[inv]
    ku = min(k, len(U) - 1)
    uidx, udist = _knn_core(U, ku, max_block_bytes, True) if ku > 0 else (
        np.zeros((len(U), 0), np.int64), np.zeros((len(U), 0), np.float32))
    members = np.argsort(inv, kind="stable")  # rows grouped by distinct vector, by index
    starts = np.concatenate([[0], np.cumsum(counts)])
    idx = np.full((n, k), -1, np.int64)
    dist = np.ones((n, k), np.float32)
    simple = np.zeros(len(U), bool)
    if ku == k:
        # common case: a distinct text whose k nearest distinct texts are distinct rows too
        simple = (counts == 1) & (counts[uidx] == 1).all(1)
        us = np.flatnonzero(simple)
        rows = members[starts[us]]
        idx[rows] = members[starts[uidx[us]]]
        dist[rows] = udist[us]
    for u in np.flatnonzero(~simple):
        rows_u = members[starts[u]:starts[u + 1]]
        # candidate list shared by all members of u: own duplicates, then neighbours' members
        own = rows_u[:k + 1]
        cand = [own]
        cd = [np.zeros(len(own), np.float32)]
        need = k + 1
        got = len(own)
        for j in range(uidx.shape[1]):
            if got >= need:
                break
            v = uidx[u, j]
            rv = members[starts[v]:starts[v + 1]][:need - got]
            cand.append(rv)
            cd.append(np.full(len(rv), udist[u, j], np.float32))
            got += len(rv)
        ca = np.concatenate(cand)
        da = np.concatenate(cd)
        for r in rows_u:
            keep = ca != r
            idx[r] = ca[keep][:k]
            dist[r] = da[keep][:k]
    return idx, dist


def _spherical_kmeans(X: np.ndarray, C: int, rng: np.random.Generator, iters: int = 8,
                      sample: int = 20000) -> np.ndarray:
    """A few Lloyd iterations of spherical k-means on a sample; returns unit centroids."""
    m = len(X)
    S = X[np.sort(rng.choice(m, size=min(m, max(sample, C)), replace=False))]
    cent = S[np.sort(rng.choice(len(S), size=min(C, len(S)), replace=False))].copy()
    for _ in range(iters):
        a = np.argmax(S @ cent.T, axis=1)
        from scipy import sparse
        new = np.asarray(sparse.csr_matrix((np.ones(len(a), np.float32), (a, np.arange(len(a)))),
                                           shape=(len(cent), len(S))) @ S, dtype=np.float32)
        nrm = np.linalg.norm(new, axis=1, keepdims=True)
        empty = nrm[:, 0] < 1e-12
        new[~empty] /= nrm[~empty]
        new[empty] = cent[empty]
        cent = new
    return cent.astype(np.float32)


def _assign(X: np.ndarray, cent: np.ndarray) -> np.ndarray:
    out = np.empty(len(X), np.int64)
    for s in range(0, len(X), 8192):
        out[s:s + 8192] = np.argmax(X[s:s + 8192] @ cent.T, axis=1)
    return out


def knn_ivf(X: np.ndarray, k: int, *, n_cells: int | None = None, min_candidates: int = 2000,
            max_cell: int = 4000, random_state: int = 0,
            max_block_bytes: int = 64 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Approximate kNN with an inverted-file index (Jegou et al. 2011, as in faiss
    ``IndexIVFFlat``): rows are split into spherical k-means cells (cells above
    ``max_cell`` rows are split again, so templated data cannot make one giant cell);
    the rows of a cell are compared exactly with the rows of the cells whose centroids
    are nearest to its own, taken in order until ``min_candidates`` rows are covered.
    Distances are exact; only far neighbours can be missed.  Deterministic for a fixed
    ``random_state``."""
    n = len(X)
    rng = np.random.default_rng(random_state)
    C = int(n_cells or max(16, int(np.sqrt(n))))
    cent = _spherical_kmeans(X, C, rng)
    assign = _assign(X, cent)
    # split oversized cells
    cents = []
    labels = np.empty(n, np.int64)
    for c in range(len(cent)):
        m = np.flatnonzero(assign == c)
        if len(m) == 0:
            continue
        if len(m) > max_cell:
            sub = _spherical_kmeans(X[m], int(np.ceil(2 * len(m) / max_cell)), rng)
            sa = _assign(X[m], sub)
            for j in range(len(sub)):
                mm = m[sa == j]
                if len(mm):
                    labels[mm] = len(cents)
                    cents.append(sub[j])
        else:
            labels[m] = len(cents)
            cents.append(cent[c])
    cent = np.stack(cents)
    members = [np.flatnonzero(labels == c) for c in range(len(cent))]
    sizes = np.array([len(m) for m in members])
    order = np.argsort(-(cent @ cent.T), axis=1, kind="stable")
    idx = np.zeros((n, k), np.int64)
    dist = np.ones((n, k), np.float32)
    need = max(min_candidates, k + 1)
    for c in range(len(cent)):
        Q = members[c]
        cum = np.cumsum(sizes[order[c]])
        npr = int(np.searchsorted(cum, need) + 1)
        cand = np.sort(np.concatenate([members[p] for p in order[c][:npr]]))
        XC = X[cand]
        B = int(max(16, max_block_bytes // max(4 * len(cand), 1)))
        for s in range(0, len(Q), B):
            q = Q[s:s + B]
            sub_i, d = _topk_against(X[q], q, XC, cand, k)
            idx[q] = sub_i
            dist[q] = d
    return idx, dist


def _topk_against(XQ: np.ndarray, q: np.ndarray, XC: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    pos = np.searchsorted(cand, q)
    hit = (pos < len(cand)) & (cand[np.minimum(pos, len(cand) - 1)] == q)
    kk = min(k, len(cand) - 1)
    try:
        import torch
        S = torch.from_numpy(XQ) @ torch.from_numpy(XC).T
        S[torch.from_numpy(np.flatnonzero(hit)), torch.from_numpy(pos[hit])] = -float("inf")
        v, p = torch.topk(S, kk, dim=1)
        ps, part = v.numpy(), p.numpy().astype(np.int64)
    except ImportError:  # pragma: no cover
        S = XQ @ XC.T
        S[np.flatnonzero(hit), pos[hit]] = -np.inf
        part = np.argpartition(S, S.shape[1] - kk, axis=1)[:, -kk:]
        ps = np.take_along_axis(S, part, axis=1)
    part = cand[part]
    o = _row_lexsort(part, ps)
    part = np.take_along_axis(part, o, axis=1)
    ps = np.take_along_axis(ps, o, axis=1)
    if kk < k:
        part = np.pad(part, ((0, 0), (0, k - kk)), constant_values=-1)
        ps = np.pad(ps, ((0, 0), (0, k - kk)), constant_values=-1.0)
    return part, np.clip(1.0 - ps, 0.0, 2.0)


def _row_lexsort(part: np.ndarray, sims: np.ndarray) -> np.ndarray:
    # stable argsort by index, then stable argsort by -sim keeps index order among ties
    o1 = np.argsort(part, axis=1, kind="stable")
    s1 = np.take_along_axis(sims, o1, axis=1)
    o2 = np.argsort(-s1, axis=1, kind="stable")
    return np.take_along_axis(o1, o2, axis=1)
