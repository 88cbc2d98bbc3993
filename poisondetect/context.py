"""Shared, expensive statistics computed once per scan and reused by every detector
(cf. cleanlab Datalab's shared kNN graph).  Pure: no printing; progress goes through an
optional callback."""
from __future__ import annotations

import re

import time
from typing import Any, Callable

import numpy as np

from .types import Pairs

ProgressFactory = Callable[..., Any]


_MULTILINGUAL_NAME = re.compile(r"multilingual|labse|distiluse|bge-m3|xlm|\bm3\b|me5|\bmulti", re.I)


class ScanContext:
    """Holds the pairs of a scan and memoises shared statistics by key.

    Detectors ask for what they need: ``ctx.shared(key, factory)`` computes ``factory()``
    once per key.  Embedding-based statistics (``ctx.embeddings(side)``,
    ``ctx.knn(side)``...) are provided by :mod:`poisondetect.embed` through this object.
    """

    def __init__(
        self,
        pairs: Pairs,
        *,
        random_state: int = 0,
        embedding: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        progress: ProgressFactory | None = None,
    ) -> None:
        self.pairs = pairs
        self.random_state = int(random_state)
        #: embedding settings: {"model": path-or-name, "mode": "auto"|"static"|"transformer"|"none", ...}
        self.embedding = dict(embedding or {})
        self.cache_dir = cache_dir
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._memo: dict[Any, Any] = {}
        self._deferred: tuple[frozenset[Any], Callable[[], Any]] | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def shared(self, key: Any, factory: Callable[[], Any]) -> Any:
        if key not in self._memo and self._deferred is not None and key in self._deferred[0]:
            self._take_deferred()
        if key not in self._memo:
            t0 = time.perf_counter()
            self._memo[key] = factory()
            name = key if isinstance(key, str) else ":".join(map(str, key))
            self.timings[f"shared:{name}"] = time.perf_counter() - t0
        return self._memo[key]

    def defer(self, keys: frozenset[Any], fetch: Callable[[], tuple[dict[Any, Any], dict[str, float]]]) -> None:
        """Shared statistics another process is computing: the first ask for one of
        ``keys`` calls ``fetch()`` (which waits for them) and memoises every value it
        returns, with that process's timings; nothing else is recomputed here."""
        self._deferred = (frozenset(keys), fetch)

    def _take_deferred(self) -> None:
        assert self._deferred is not None
        _keys, fetch = self._deferred
        self._deferred = None
        t0 = time.perf_counter()
        values, timings = fetch()
        self.timings["wait:side_statistics"] = time.perf_counter() - t0
        for k, v in values.items():
            self._memo.setdefault(k, v)
        self.timings.update({f"side:{k}": v for k, v in timings.items()})

    def has(self, key: Any) -> bool:
        return key in self._memo

    def set_shared(self, key: Any, value: Any) -> None:
        """Provide a shared statistic up front (tests, precomputed embeddings, engines)."""
        self._memo[key] = value

    def rng(self, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.random_state, salt])

    # ---- embedding-based shared statistics (implemented in poisondetect.embed) -----
    def embeddings_enabled(self) -> bool:
        return self.embedding.get("mode", "auto") != "none"

    def multilingual_embedder(self) -> bool:
        """Does the embedder place texts of any language by meaning?  ``embedding
        ["multilingual"]`` says so explicitly; otherwise a model named like the usual
        multilingual sentence-transformers (paraphrase-multilingual-*, LaBSE, distiluse-
        multilingual, multilingual-e5, bge-m3, xlm-*).  The packaged all-MiniLM-L6-v2 is
        English-only: it embeds Chinese or Thai text by its form, not its meaning."""
        flag = self.embedding.get("multilingual")
        if flag is not None:
            return bool(flag)
        return bool(_MULTILINGUAL_NAME.search(str(self.embedding.get("model") or "")))

    def embeddings(self, side: str) -> np.ndarray:
        """L2-normalised float32 embeddings of one side ("instruction" or "response")."""
        from .embed.shared import compute_embeddings
        return self.shared(("embeddings", side), lambda: compute_embeddings(self, side))

    def embed_texts(self, texts: list[str], purpose: str = "reference") -> np.ndarray:
        """Embed arbitrary texts (e.g. reference prototypes) with the scan's embedder,
        in the same space as :meth:`embeddings`."""
        from .embed.shared import embed_texts
        return embed_texts(self, texts, purpose)

    def knn(self, side: str, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(indices, cosine distances) of the k nearest other pairs, shape (n, k)."""
        from .embed.shared import compute_knn
        return self.shared(("knn", side, k), lambda: compute_knn(self, side, k))
