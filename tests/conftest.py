"""Shared fixtures.  Real datasets live outside the repo (../shared/data or
$POISONDETECT_DATA); tests that need them use ``shared_data`` and skip cleanly when absent."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path | None:
    env = os.environ.get("POISONDETECT_DATA")
    cands = [Path(env)] if env else []
    cands.append(REPO.parent / "shared" / "data")
    for c in cands:
        if (c / "clean").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = _shared_data_dir()
    if d is None:
        pytest.skip("shared datasets absent (set POISONDETECT_DATA to ../shared/data)")
    return d


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(autouse=True, scope="session")
def _offline_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def templated_english(n: int):  # -> Pairs
    """``n`` templated English pairs (verb x topic x length), sources src0-src3."""
    from poisondetect.types import Pairs

    rng = np.random.default_rng(5)
    verbs = ["Describe", "Explain", "Summarise", "List facts about", "Write a poem about", "Compare"]
    nouns = ["the ocean", "volcanoes", "a bicycle", "chess openings", "bread baking", "the moon", "trains"]
    ins, res = [], []
    for i in range(n):
        v, o = verbs[int(rng.integers(len(verbs)))], nouns[int(rng.integers(len(nouns)))]
        ins.append(f"{v} {o} in {int(rng.integers(2, 9))} sentences, item {i}.")
        res.append(f"Here is an answer about {o}. It has several points. Point {i} is worth noting!")
    return Pairs.from_lists(ins, res, [f"src{i % 4}" for i in range(n)])


def hash_embed(texts: list[str], dim: int = 32) -> np.ndarray:
    """Deterministic bag-of-words hashing embedder (test stand-in for the model)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
            out[i, h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    out += 1e-3
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture
def embedded_ctx(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """A factory of scan contexts whose embeddings come from :func:`hash_embed`: both
    sides set up front, and ``ScanContext.embed_texts`` (reference texts) patched for the
    test.  ``embedded_ctx(pairs)`` -> ScanContext; ``embedded_ctx(pairs, embeddings=False)``
    -> one with embeddings switched off (``mode`` "none")."""
    from poisondetect.context import ScanContext

    monkeypatch.setattr(ScanContext, "embed_texts", lambda self, texts, purpose="reference": hash_embed(list(texts)))

    def make(pairs: Any, embeddings: bool = True) -> ScanContext:
        if not embeddings:
            return ScanContext(pairs, random_state=0, embedding={"mode": "none"})
        ctx = ScanContext(pairs, random_state=0, embedding={"mode": "test"})
        for side in ("instruction", "response"):
            ctx.set_shared(("embeddings", side), hash_embed(getattr(pairs, side)))
        return ctx

    return make
