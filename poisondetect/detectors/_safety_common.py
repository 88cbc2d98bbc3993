"""What the safety detectors share besides their two models: the scan's embeddings, or
the reason they are unavailable (so a detector can fall back to a lexical mode and say
why), and one-line excerpts of texts for evidence messages.  Private module: not a
detector, not auto-loaded."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError

#: errors that mean "embeddings are not available here" (a missing optional package, no
#: model on disk).  Anything else - a bug in the embed layer - propagates: silently
#: degrading every safety detector to lexical mode would hide it.
EMBEDDINGS_UNAVAILABLE = (ImportError, NotImplementedError, ConfigError)


def _shared_or_reason(ctx: Any, key: tuple, compute: Any) -> tuple[np.ndarray | None, str]:
    """The scan's shared array ``key`` (computed by ``compute`` and memoised when not there
    yet), or (None, why not): no context, embeddings switched off, or unavailable."""
    if ctx is None:
        return None, "no scan context"
    if ctx.has(key):
        return np.asarray(ctx.shared(key, lambda: None), dtype=np.float32), ""
    if not ctx.embeddings_enabled():
        return None, "embeddings disabled (--embedding-mode none)"
    try:
        return compute(), ""
    except EMBEDDINGS_UNAVAILABLE as e:
        return None, f"embeddings unavailable: {type(e).__name__}: {str(e)[:200]}"


def embeddings_or_reason(ctx: Any, side: str) -> tuple[np.ndarray | None, str]:
    """(the scan's L2-normalised embeddings of one side, "") or (None, why not)."""
    return _shared_or_reason(ctx, ("embeddings", side),
                             lambda: np.asarray(ctx.embeddings(side), dtype=np.float32))


def try_embeddings(ctx: Any, side: str) -> np.ndarray | None:
    """The scan's embeddings of one side, or None when embeddings are unavailable."""
    return embeddings_or_reason(ctx, side)[0]


def embed_texts_or_reason(ctx: Any, texts: Sequence[str], purpose: str) -> tuple[np.ndarray | None, str]:
    """Reference texts embedded with the scan's embedder (memoised per scan, and cached on
    disk by the embed layer), or (None, why not)."""
    key = ("embed_texts", purpose)
    return _shared_or_reason(ctx, key, lambda: ctx.shared(
        key, lambda: np.asarray(ctx.embed_texts(list(texts), purpose), dtype=np.float32)))


def clip_text(s: str, n: int = 120) -> str:
    """``s`` on one line (whitespace runs collapsed), cut to ``n`` characters with an ellipsis."""
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "\u2026"
