"""Baselines scored on the same data in the same run: random ranking, Isolation Forest
and cleanlab Datalab outliers on the scan's embeddings, and a label-free Z-statistic
(He et al. 2023, Z-Defence) of instruction unigrams against response clusters.

Every function returns scores in [0, 1], higher = more suspicious (or None when an
optional dependency is missing).
"""
from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
from scipy.stats import rankdata

from ..types import Pairs

_WS = re.compile(r"\s+")


def _rank01(x: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=-np.inf)
    if len(x) == 0:
        return x
    return (rankdata(x, method="average") - 1) / max(len(x) - 1, 1)


def random_scores(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng([int(seed), 1234]).random(n)


def isolation_forest(X: np.ndarray, seed: int = 0, n_estimators: int = 100) -> np.ndarray:
    from sklearn.ensemble import IsolationForest
    iso = IsolationForest(n_estimators=n_estimators, random_state=seed, n_jobs=1)
    iso.fit(X)
    return _rank01(-iso.score_samples(X))


def cleanlab_outlier(X: np.ndarray, knn_graph: Any = None) -> np.ndarray | None:
    """cleanlab Datalab's outlier score (1 - outlier_score), or None if not installed."""
    try:
        from cleanlab import Datalab
    except ImportError:
        return None
    lab = Datalab(data={"id": list(range(len(X)))}, verbosity=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if knn_graph is not None:
            lab.find_issues(features=X, knn_graph=knn_graph, issue_types={"outlier": {}})
        else:
            lab.find_issues(features=X, issue_types={"outlier": {}})
    s = lab.get_issues("outlier")["outlier_score"].to_numpy()
    return np.clip(1.0 - s, 0.0, 1.0)


def knn_graph_from(indices: np.ndarray, distances: np.ndarray) -> Any:
    """A scipy CSR kNN graph (what cleanlab takes) from (indices, distances) arrays."""
    from scipy.sparse import csr_matrix
    n, k = indices.shape
    rows = np.repeat(np.arange(n), k)
    return csr_matrix((distances.ravel().astype(np.float64) + 1e-12, (rows, indices.ravel())), shape=(n, n))


def response_clusters(responses: list[str], emb: np.ndarray | None, n_clusters: int | None = None,
                      seed: int = 0) -> np.ndarray:
    """Cluster labels of responses: identical normalised texts share a cluster; the rest
    are clustered with MiniBatchKMeans on ``emb`` (TF-IDF+SVD when ``emb`` is None)."""
    n = len(responses)
    norm = [_WS.sub(" ", r).strip().casefold() for r in responses]
    uniq, inv, counts = np.unique(np.array(norm, dtype=object), return_inverse=True, return_counts=True)
    dup = counts[inv] >= 2
    labels = np.full(n, -1, dtype=np.int64)
    dup_ids = {u: j for j, u in enumerate(np.unique(inv[dup]))}
    for i in np.flatnonzero(dup):
        labels[i] = dup_ids[inv[i]]
    rest = np.flatnonzero(~dup)
    if len(rest):
        k = n_clusters or max(2, min(200, n // 250))
        k = min(k, len(rest))
        if emb is None:
            from sklearn.decomposition import TruncatedSVD
            from sklearn.feature_extraction.text import TfidfVectorizer
            tf = TfidfVectorizer(max_features=50000, min_df=2).fit_transform([norm[i] for i in rest])
            Z = TruncatedSVD(n_components=min(64, max(2, tf.shape[1] - 1)), random_state=seed).fit_transform(tf)
        else:
            Z = emb[rest]
        sub = spherical_kmeans(np.asarray(Z, dtype=np.float32), k, seed) if k > 1 else np.zeros(len(rest), np.int64)
        labels[rest] = len(dup_ids) + sub
    return labels


def spherical_kmeans(X: np.ndarray, k: int, seed: int = 0, n_iter: int = 10) -> np.ndarray:
    """Plain Lloyd iterations on L2-normalised rows (cosine k-means), deterministic and
    fast on CPU (one matrix product per iteration); empty clusters keep their centre."""
    X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng([int(seed), 99])
    C = X[rng.choice(len(X), size=k, replace=False)].copy()
    lab = np.zeros(len(X), dtype=np.int64)
    for _ in range(n_iter):
        lab = np.argmax(X @ C.T, axis=1)
        sums = np.zeros_like(C)
        np.add.at(sums, lab, X)
        nz = np.linalg.norm(sums, axis=1) > 0
        C[nz] = sums[nz] / np.linalg.norm(sums[nz], axis=1, keepdims=True)
    return lab


def z_statistic(pairs: Pairs, response_emb: np.ndarray | None = None, n_clusters: int | None = None,
                seed: int = 0, min_df: int = 3) -> np.ndarray:
    """Label-free Z-statistic (He et al. 2023, "Mitigating Backdoor Poisoning Attacks through
    the Lens of Spurious Correlation").  Responses are clustered to stand in for labels;
    for every (instruction unigram w, cluster c) ``z = (p_hat - p0) / sqrt(p0 (1 - p0) / n_w)``
    with ``p_hat = n_wc / n_w`` and ``p0`` the cluster's share; a row scores the max z of
    its unigrams against its own cluster.  ``min_df`` drops unigrams seen in fewer rows
    (single occurrences give meaningless z).  Returns rank-normalised scores in [0, 1]."""
    from sklearn.feature_extraction.text import CountVectorizer
    n = len(pairs)
    labels = response_clusters(pairs.response, response_emb, n_clusters, seed)
    C = int(labels.max()) + 1
    try:
        X = CountVectorizer(binary=True, min_df=min_df, token_pattern=r"(?u)\b\w+\b",
                            dtype=np.float64).fit_transform(pairs.instruction).tocsr()
    except ValueError:  # empty vocabulary
        return np.zeros(n)
    X.sort_indices()
    p0 = np.bincount(labels, minlength=C) / n
    n_w = np.asarray(X.sum(axis=0)).ravel()
    coo = X.tocoo()
    keys = coo.col.astype(np.int64) * C + labels[coo.row]
    uk, cnt = np.unique(keys, return_counts=True)
    w, c = uk // C, uk % C
    pc = p0[c]
    z = (cnt / n_w[w] - pc) / np.sqrt(np.maximum(pc * (1 - pc), 1e-12) / n_w[w])
    # per (row, word): z of (word, row's cluster), keys in CSR order
    row_keys = X.indices.astype(np.int64) * C + np.repeat(labels, np.diff(X.indptr))
    zz = z[np.searchsorted(uk, row_keys)]
    out = np.full(n, -np.inf)
    nonempty = np.diff(X.indptr) > 0
    if zz.size:
        mx = np.maximum.reduceat(zz, X.indptr[:-1][nonempty])
        out[nonempty] = mx
    return _rank01(out)


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class IncrementalKNN:
    """Exact cosine kNN for many poisoned variants of one clean corpus.

    The clean corpus's kNN (with ``extra`` spare neighbours) is computed once; a variant
    that differs in a few rows (replaced or added) only costs those rows against all rows,
    plus a merge: an unchanged row's neighbours are its clean neighbours that are still
    there, together with any new row that comes closer.  Rows that lost too many
    neighbours are recomputed exactly.
    """

    def __init__(self, X_clean: np.ndarray, k: int = 10, extra: int = 10) -> None:
        from ..embed.knn import knn_blocked
        self._knn = knn_blocked
        self.k = k
        self.Xc = _unit(X_clean)
        self.idx, self.dist = knn_blocked(self.Xc, k + extra)

    def query(self, X: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """kNN of a variant with rows ``X``; ``origin[i]`` is the clean row position i was
        copied from (-1 for a new row).  Rows whose vector differs from their origin's are
        treated as new."""
        X = _unit(X)
        n, k = len(X), self.k
        origin = np.asarray(origin, dtype=np.int64)
        same = origin >= 0
        same[same] = np.all(np.isclose(X[same], self.Xc[origin[same]], atol=1e-6), axis=1)
        new = np.flatnonzero(~same)
        pos_of_clean = np.full(len(self.Xc), -1, dtype=np.int64)
        pos_of_clean[origin[same]] = np.flatnonzero(same)
        idx = np.empty((n, k), np.int64)
        dist = np.empty((n, k), np.float32)
        # new rows: brute force against everything
        if len(new):
            S = X[new] @ X.T
            S[np.arange(len(new)), new] = -np.inf
            part = np.argsort(-S, axis=1, kind="stable")[:, :k]
            idx[new] = part
            dist[new] = np.clip(1 - np.take_along_axis(S, part, axis=1), 0, 2)
        keep = np.flatnonzero(same)
        cand_idx = pos_of_clean[self.idx[origin[keep]]]          # (m, k+extra), -1 = gone
        cand_dist = np.where(cand_idx >= 0, self.dist[origin[keep]], np.inf)
        if len(new):
            Sn = 1 - X[keep] @ X[new].T                         # (m, |new|)
            cand_idx = np.hstack([cand_idx, np.broadcast_to(new, (len(keep), len(new)))])
            cand_dist = np.hstack([cand_dist, Sn])
        o = np.argsort(cand_dist, axis=1, kind="stable")[:, :k]
        idx[keep] = np.take_along_axis(cand_idx, o, axis=1)
        dist[keep] = np.take_along_axis(cand_dist, o, axis=1)
        bad = keep[~np.isfinite(dist[keep]).all(axis=1)]
        if len(bad):  # lost too many clean neighbours: exact recompute
            S = X[bad] @ X.T
            S[np.arange(len(bad)), bad] = -np.inf
            part = np.argsort(-S, axis=1, kind="stable")[:, :k]
            idx[bad] = part
            dist[bad] = np.clip(1 - np.take_along_axis(S, part, axis=1), 0, 2)
        return idx, np.clip(dist, 0, 2).astype(np.float32)
