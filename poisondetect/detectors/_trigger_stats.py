"""Statistics of a candidate trigger's pairs: how alike its requests are once the
trigger is taken out (:func:`request_coherence`), and which other answers are as close
to its payload as the payloads are (:func:`payload_neighbours`)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..embed.shared import centered


def _coherence(E: np.ndarray) -> float:
    m = len(E)
    if m < 2:
        return 0.0
    s = E.sum(0, dtype=np.float64)
    return float((s @ s - float((E.astype(np.float64) ** 2).sum())) / (m * (m - 1)))


def request_coherence(ctx: Any, pos: np.ndarray, word: str | Sequence[str], pool: np.ndarray | None = None,
                      n_null: int = 200, z: float = 3.0, memo: dict[Any, Any] | None = None,
                      pool_name: str | None = None) -> tuple[float, float]:
    """(mean pairwise similarity of the requests ``pos`` with ``word`` (or every word of a
    list) taken out (embedded afresh, centred on the dataset's instruction mean), the 'as
    alike as random' bound:
    mean + ``z`` sd over ``n_null`` random groups of the same size drawn from ``pool``, or
    from every pair).  A trigger is planted in unrelated requests; a word that names what
    its requests ask for ("regular expression", "dialogue") or belongs to a prompt
    template comes with requests alike without it too.

    ``memo`` (a dict the caller keeps for one scan) holds what does not depend on the
    word: the instruction mean and, per (``pool_name``, group size), the null's mean and
    sd.  The null's draws come from the gate's own named stream, restarted per call, so
    a remembered null is the one the call would have drawn."""
    memo = {} if memo is None else memo
    if "mu" not in memo:
        memo["mu"] = ctx.embeddings("instruction").mean(0, dtype=np.float64)
    mu = memo["mu"]
    words = [word] if isinstance(word, str) else list(word)
    pat = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)
    texts = [" ".join(pat.sub(" ", ctx.pairs.instruction[int(i)]).split()) for i in pos]
    E = np.asarray(ctx.embed_texts(texts, purpose="request_without_word"), dtype=np.float64) - mu
    E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
    m = len(pos)
    use_pool = pool is not None and len(pool) >= m + 5
    # a pool is remembered under its name; an unnamed pool is not remembered
    key = None if use_pool and pool_name is None else ("null", pool_name if use_pool else None, m, n_null)
    if key is None or key not in memo:
        C = centered(ctx, "instruction")
        rng = ctx.rng(0xB7)  # named stream of this gate
        src = np.asarray(pool, dtype=np.int64) if use_pool else np.arange(len(C))
        null = np.asarray([_coherence(C[rng.choice(src, size=m, replace=False)]) for _ in range(n_null)])
        stat = (float(null.mean()), float(null.std()))
        if key is not None:
            memo[key] = stat
    else:
        stat = memo[key]
    return _coherence(E), stat[0] + z * stat[1]


def payload_neighbours(E: np.ndarray, hit: np.ndarray, others: np.ndarray, rng: np.random.Generator,
                       n_null: int = 500) -> np.ndarray:
    """The pairs of ``others`` whose answer is closer to the payload answers ``hit`` than
    any of ``n_null`` random answers of the dataset is (max cosine to a hit above the
    largest such max of the random sample): payloads the class test missed (a hostile
    text VADER scores neutral, a refusal outside the payload's cluster)."""
    if len(hit) < 3 or len(others) == 0:
        return np.asarray([], dtype=np.int64)
    H = E[hit].astype(np.float64)
    pool = np.setdiff1d(np.arange(len(E)), np.concatenate([hit, others]))
    if len(pool) == 0:
        return np.asarray([], dtype=np.int64)
    ref = rng.choice(pool, size=min(n_null, len(pool)), replace=False)
    tau = float((E[ref].astype(np.float64) @ H.T).max())
    best = (E[others].astype(np.float64) @ H.T).max(axis=1)
    return np.asarray(others, dtype=np.int64)[best > tau]
