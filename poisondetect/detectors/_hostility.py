"""Hostility of an answer: VADER's lexicon sentiment (Hutto & Gilbert 2014, MIT).

VADER scores a text's compound sentiment in [-1, 1] from a 7,500-word valence lexicon
with rules for negation, intensifiers and punctuation.  It is English-only and knows
nothing of targets, so a bleak story scores as hostile as an insult: callers use it as
a *response class* to test triggers against, never as a verdict on its own.

Only answers holding at least one strongly negative lexicon word (valence <= -1.5) are
scored (the others cannot reach the hostile threshold); that prefilter keeps the cost to
a set lookup per word for most of a clean corpus.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

_WORDS = re.compile(r"[a-z']+")


@lru_cache(maxsize=1)
def _analyzer():  # noqa: ANN202 - vaderSentiment has no type hints
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    return SentimentIntensityAnalyzer()


@lru_cache(maxsize=1)
def _negative_words() -> frozenset[str]:
    return frozenset(w for w, v in _analyzer().lexicon.items() if v <= -1.5)


def hostility_scores(texts: Sequence[str], head_chars: int = 1000) -> np.ndarray:
    """``max(0, -compound)`` of each text's first ``head_chars`` characters (0 = not
    negative, 1 = as hostile as VADER gets)."""
    neg = _negative_words()
    out = np.zeros(len(texts), dtype=np.float64)
    sia = _analyzer()
    for i, t in enumerate(texts):
        head = t[:head_chars]
        if neg.isdisjoint(_WORDS.findall(head.lower())):
            continue
        out[i] = max(0.0, -float(sia.polarity_scores(head)["compound"]))
    return out


def shared_hostility(pairs, ctx) -> np.ndarray:  # noqa: ANN001 - Pairs, ScanContext
    """Memoised per scan."""
    if ctx is None:
        return hostility_scores(pairs.response)
    return ctx.shared("hostility_scores", lambda: hostility_scores(pairs.response))
