"""Shared embedding statistics for a scan, memoised on the :class:`ScanContext`.

``compute_embeddings(ctx, side)`` - L2-normalised float32 (n, d) embeddings of one side;
``embed_texts(ctx, texts)`` - arbitrary texts in the same space;
``compute_knn(ctx, side, k)`` - one exact cosine kNN graph per side (self excluded);
``reduced(ctx, side, d)`` - PCA-reduced embeddings;
``response_clusters(ctx, ...)`` - HDBSCAN labels of the response side, run on the sparse
kNN graph (so it costs seconds at 50k pairs, with full-dimensional distances).
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from .cache import EmbeddingCache, text_digests
from .knn import knn_blocked
from .models import Embedder, default_cache_dir, make_embedder

SIDES = ("instruction", "response")


def _side_texts(ctx: Any, side: str) -> list[str]:
    if side == "instruction":
        return ctx.pairs.instruction
    if side == "response":
        return ctx.pairs.response
    raise ValueError(f"unknown side {side!r} (instruction or response)")


def _unique_text_count(ctx: Any) -> int:
    return ctx.shared(("n_unique_texts",), lambda: len(set(ctx.pairs.instruction) | set(ctx.pairs.response)))


def get_embedder(ctx: Any) -> Embedder:
    """The scan's embedder (chosen once per scan; ``ctx.embedding`` may also carry a ready
    :class:`Embedder` instance under ``"embedder"``)."""
    def make() -> Embedder:
        given = ctx.embedding.get("embedder")
        if given is not None:
            return given
        return make_embedder(ctx.embedding, _unique_text_count(ctx), scan_cache_dir(ctx), ctx.progress)
    return ctx.shared(("embedder",), make)


def scan_cache_dir(ctx: Any) -> str:
    """The scan's embedding cache directory (``ctx.cache_dir`` or the default)."""
    return default_cache_dir(getattr(ctx, "cache_dir", None))


def scan_uses_cache(ctx: Any) -> bool:
    """Whether the scan reads and writes the on-disk embedding cache."""
    return bool(ctx.embedding.get("cache", True))


def encode_cached(emb: Embedder, texts: Sequence[str], cache_dir: str | None,
                  batch_size: int | None = None, progress: Any = None,
                  stats: dict[str, Any] | None = None) -> np.ndarray:
    """Embed ``texts`` (deduplicated) through the on-disk cache: only texts whose
    (model, sha256) is not cached are encoded, and they are added to the cache."""
    texts = list(texts)
    uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True) if texts else (np.array([], object), np.zeros(0, np.int64))
    uniq = [str(u) for u in uniq]
    digests = text_digests(uniq)
    if cache_dir is not None:
        cache = EmbeddingCache(cache_dir, emb.model_id, emb.dim)
        found, vecs = cache.lookup(digests)
    else:
        cache = None
        found, vecs = np.zeros(len(uniq), bool), np.zeros((len(uniq), emb.dim), np.float32)
    todo = np.flatnonzero(~found)
    if len(todo):
        step = 16384 if emb.kind != "transformer" else 256
        chunks = range(0, len(todo), step)
        if progress is not None and emb.kind == "transformer" and len(todo) > step:
            chunks = progress(chunks, desc=f"embedding ({emb.kind})", total=len(chunks))
        new = np.zeros((len(todo), emb.dim), np.float32)
        for s in chunks:
            idx = todo[s:s + step]
            new[s:s + len(idx)] = emb.encode([uniq[i] for i in idx], batch_size)
        vecs[todo] = new
        if cache is not None:
            try:
                cache.add(digests[todo], new)
            except OSError:
                pass  # a read-only or full cache never fails a scan
    if stats is not None:
        stats["n_texts"] = len(texts)
        stats["n_unique"] = len(uniq)
        stats["n_encoded"] = int(len(todo))
    return vecs[inverse] if len(texts) else np.zeros((0, emb.dim), np.float32)


def compute_embeddings(ctx: Any, side: str) -> np.ndarray:
    emb = get_embedder(ctx)
    t0 = time.perf_counter()
    st: dict[str, Any] = {}
    out = encode_cached(emb, _side_texts(ctx, side), scan_cache_dir(ctx) if scan_uses_cache(ctx) else None,
                        ctx.embedding.get("batch_size"), ctx.progress, st)
    info = ctx.shared(("embedding_info",), dict)
    info.update({"model_id": emb.model_id, "kind": emb.kind, "dim": emb.dim})
    info[side] = {**st, "seconds": round(time.perf_counter() - t0, 3)}
    return out


def embed_texts(ctx: Any, texts: Sequence[str], purpose: str = "reference") -> np.ndarray:
    """Embed arbitrary texts (reference prototypes...) with the scan's embedder."""
    emb = get_embedder(ctx)
    return encode_cached(emb, texts, scan_cache_dir(ctx) if scan_uses_cache(ctx) else None,
                         ctx.embedding.get("batch_size"))


def knn_k(k: int, n: int) -> int:
    """The neighbour count a detector asks of the kNN graph of ``n`` pairs: ``k``, at most
    the ``n - 1`` other pairs (below 1 there is no graph)."""
    return int(min(k, n - 1))


def compute_knn(ctx: Any, side: str, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine distances), each (n, k), nearest first, self excluded.  One graph
    per side is computed at the largest k asked for so far (at least 15) and sliced."""
    k = int(k)
    n = len(ctx.pairs)
    kk = min(max(k, 15), max(n - 1, 0))
    for key in list(getattr(ctx, "_memo", {}).keys()):
        if isinstance(key, tuple) and len(key) == 3 and key[0] == "knn_graph" and key[1] == side and key[2] >= k:
            idx, dist = ctx._memo[key]
            return idx[:, :k], dist[:, :k]
    X = ctx.embeddings(side)
    idx, dist = ctx.shared(("knn_graph", side, kk), lambda: knn_blocked(X, kk))
    return idx[:, :k], dist[:, :k]


def reduced(ctx: Any, side: str, d: int = 16) -> np.ndarray:
    """PCA-reduced embeddings (deterministic, randomized solver seeded by the scan)."""
    def make() -> np.ndarray:
        from sklearn.decomposition import PCA
        X = ctx.embeddings(side)
        dd = int(min(d, X.shape[1], max(len(X) - 1, 1)))
        return PCA(n_components=dd, svd_solver="randomized", random_state=ctx.random_state).fit_transform(X).astype(np.float32)
    return ctx.shared(("reduced", side, int(d)), make)


def knn_graph_matrix(idx: np.ndarray, dist: np.ndarray) -> Any:
    """Symmetric sparse CSR distance matrix of a kNN graph (max of the two directions;
    zero distances are stored as a tiny positive value so they stay edges)."""
    from scipy import sparse
    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    d = np.maximum(dist.ravel().astype(np.float64), 1e-9)
    m = sparse.csr_matrix((d, (rows, idx.ravel())), shape=(n, n))
    m = m.maximum(m.T).tocsr()
    m.sort_indices()
    return m


def _connect(M: Any) -> Any:
    """Join the connected components of a sparse distance graph with edges of the maximum
    cosine distance (2.0) so HDBSCAN sees one tree; the joins sit at the root of the
    hierarchy and never merge real clusters."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components
    nc, lab = connected_components(M, directed=False)
    if nc <= 1:
        return M
    first = np.full(nc, -1, np.int64)
    for i in range(len(lab) - 1, -1, -1):
        first[lab[i]] = i
    a = np.full(nc - 1, first[0])
    b = first[1:]
    E = sparse.csr_matrix((np.full(2 * (nc - 1), 2.0), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=M.shape)
    out = (M + E).tocsr()
    out.sort_indices()
    return out


def response_clusters(ctx: Any, min_cluster_size: int = 5, min_samples: int = 3, k: int = 15) -> np.ndarray:
    """HDBSCAN labels (-1 = noise) of the response side, computed on the symmetric sparse
    kNN graph (precomputed cosine distances).  Memoised per parameters."""
    def make() -> np.ndarray:
        import warnings
        from sklearn.cluster import HDBSCAN
        n = len(ctx.pairs)
        if n < max(min_cluster_size, 3):
            return np.full(n, -1, np.int64)
        idx, dist = ctx.knn("response", k)
        M = _connect(knn_graph_matrix(idx, dist))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lab = HDBSCAN(min_cluster_size=int(min_cluster_size), min_samples=int(min_samples),
                          metric="precomputed", allow_single_cluster=False,
                          cluster_selection_method="leaf").fit_predict(M)
        return _canonical_labels(np.asarray(lab, np.int64))
    return ctx.shared(("hdbscan", "response", int(min_cluster_size), int(min_samples), int(k)), make)


def _canonical_labels(lab: np.ndarray) -> np.ndarray:
    """Relabel clusters 0..m-1 in order of their first member (deterministic ids)."""
    out = np.full_like(lab, -1)
    seen: dict[int, int] = {}
    for i, l in enumerate(lab):
        if l < 0:
            continue
        if l not in seen:
            seen[l] = len(seen)
        out[i] = seen[l]
    return out


# ---- statistics of groups of pairs (payload clusters, near-duplicate groups) ------------
def pair_similarity(ctx: Any) -> np.ndarray:
    """Cosine similarity of each pair's instruction and response embeddings (memoised per
    scan): low where the answer is about something else than the request."""
    def make() -> np.ndarray:
        out = np.empty(len(ctx.pairs), np.float32)
        EI, ER = ctx.embeddings("instruction"), ctx.embeddings("response")
        for s in range(0, len(out), 8192):
            a, b = EI[s:s + 8192].astype(np.float32), ER[s:s + 8192].astype(np.float32)
            den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
            out[s:s + 8192] = np.einsum("bd,bd->b", a, b) / np.maximum(den, 1e-9)
        return out
    return ctx.shared(("pair_similarity",), make)


def mean_pairwise_sim(X: np.ndarray) -> float:
    """Mean cosine similarity over distinct pairs of normalised rows, O(n d)."""
    m = len(X)
    if m < 2:
        return 1.0
    s = X.sum(0, dtype=np.float64)
    sq = float((np.linalg.norm(X, axis=1) ** 2).sum())
    return float((s @ s - sq) / (m * (m - 1)))


def baseline_sim(ctx: Any, side: str) -> float:
    """Mean cosine similarity of two random distinct pairs on one side (the level a
    group of unrelated texts sits at)."""
    return ctx.shared(("baseline_sim", side), lambda: mean_pairwise_sim(ctx.embeddings(side)))


_WORDS = None


def word_count(text: str) -> int:
    global _WORDS
    if _WORDS is None:
        import re
        _WORDS = re.compile(r"\w+", re.UNICODE)
    return len(_WORDS.findall(text))


def specificity(text: str, scale: float = 6.0) -> float:
    """How much content a shared response carries, in [0, 1): 1 - exp(-words / scale).
    "Yes" -> 0.15, "You are stupid!" -> 0.39, a 20-word sentence -> 0.96.  Many
    unrelated instructions legitimately share a one-word answer; they rarely share a
    sentence."""
    return float(1.0 - np.exp(-word_count(text) / scale))


def centered(ctx: Any, side: str) -> np.ndarray:
    """Embeddings with the dataset mean removed, re-normalised ("all-but-the-top",
    Mu & Viswanath 2018): similarities then measure what texts share beyond what every
    text of the dataset shares (static embeddings of long texts all lean one way)."""
    def make() -> np.ndarray:
        X = ctx.embeddings(side)
        Y = X - X.mean(0, dtype=np.float64).astype(np.float32)
        nrm = np.linalg.norm(Y, axis=1, keepdims=True)
        return np.divide(Y, nrm, out=np.zeros_like(Y), where=nrm > 0)
    return ctx.shared(("centered", side), make)


def group_profile(ctx: Any, rows: np.ndarray) -> dict[str, Any]:
    """Tightness of the responses and diversity of the instructions of a group of pairs,
    on mean-centred embeddings (:func:`centered`; random pairs sit near similarity 0).

    ``resp_tight`` = mean pairwise response similarity (clipped to [0, 1]);
    ``instr_div`` = 1 - mean pairwise instruction similarity (clipped): 1 means the
    instructions are as unrelated as random pairs, 0 that they are identical;
    ``medoid`` the position of the response closest to the group's mean."""
    R = centered(ctx, "response")[rows]
    I = centered(ctx, "instruction")[rows]
    rs, is_ = mean_pairwise_sim(R), mean_pairwise_sim(I)
    c = R.mean(0)
    medoid = int(rows[int(np.argmax(R @ c))])
    return {
        "resp_sim": rs, "instr_sim": is_,
        "resp_tight": float(np.clip(rs, 0, 1)),
        "instr_div": float(np.clip(1 - is_, 0, 1)),
        "medoid": medoid,
    }
