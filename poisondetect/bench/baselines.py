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
        if k <= 1:
            sub = np.zeros(len(rest), dtype=np.int64)
        else:
            from sklearn.cluster import MiniBatchKMeans
            sub = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048).fit_predict(Z)
        labels[rest] = len(dup_ids) + sub
    return labels


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
