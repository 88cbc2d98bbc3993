"""Naming a found trigger: the phrase behind a conjunction whose parts sit side by side
(:func:`trigger_phrase`), and the word-sequence pattern its evidence spans use.
Descriptive only: nothing here changes a score, flag or p-value."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..segment import NOSPACE_RE
from ..text import WORD_CHAR_CLASS


_WORD_ITER = re.compile(f"{WORD_CHAR_CLASS}+")


def trigger_phrase(reqs: Sequence[str], hit: np.ndarray, words: Sequence[str], *, share: float = 0.9,
                   max_extra: int = 8, max_rows: int = 50, max_elsewhere: float = 0.05) -> tuple[str, list[str]] | None:
    """The phrase the trigger words stand in: where the words (a conjunction's
    parts, two or more) sit side by side in >= ``share`` of (up to ``max_rows`` of) the trigger's class
    pairs, the span is extended left and right while the neighbouring word is the same
    in >= ``share`` of them and the words added on that side are in at most
    ``max_elsewhere`` of the other requests ("2033 + year" is the prefix "Current year:
    2033"; the template "Write a Python function" after it is in most code requests and
    is left out).  Returns (the span as written in the first such request, its
    lower-cased words), or None where the words are scattered or stand alone.
    Descriptive only: the test and the gates ran on the words.  Spaced scripts only (a
    no-space word's neighbours are characters, not words)."""
    if len(set(words)) < 2 or any(NOSPACE_RE.search(w) for w in words):
        return None  # a single word is reported as found: extending it named "definitely not a"
    want = set(words)
    rows = [int(i) for i in hit[:max_rows]]
    occ: list[tuple[list[str], int, int, list[re.Match[str]], str]] = []
    for i in rows:
        text = reqs[i][:4000]
        ms = list(_WORD_ITER.finditer(text))
        low = [m.group().lower() for m in ms]
        first: dict[str, int] = {}
        for k, w in enumerate(low):
            if w in want and w not in first:
                first[w] = k
        if len(first) == len(want):
            a, b = min(first.values()), max(first.values()) + 1
            if b - a == len(want):
                occ.append((low, a, b, ms, text))
    need = share * len(rows)
    if not rows or len(occ) < need:
        return None
    in_hit = set(int(i) for i in hit)
    others: list[str] | None = None
    for side in (-1, 1):
        added: list[str] = []
        for _ in range(max_extra):
            nxt = [(o, o[0][o[1] - 1] if side < 0 and o[1] > 0 else
                    (o[0][o[2]] if side > 0 and o[2] < len(o[0]) else None)) for o in occ]
            seen = Counter(t for _, t in nxt if t is not None)
            top, c = seen.most_common(1)[0] if seen else (None, 0)
            if top is None or c < need:
                break
            chunk = [top, *added] if side < 0 else [*added, top]
            if others is None:
                others = [r[:4000].lower() for i, r in enumerate(reqs) if i not in in_hit]
            edge = occ[0][0][occ[0][1]] if side < 0 else occ[0][0][occ[0][2] - 1]
            if _rate_beside(others, chunk, edge, side) > max_elsewhere:
                break  # a template's words, not the trigger's
            added = chunk
            occ = [(lo, a - (side < 0), b + (side > 0), ms, tx) for (lo, a, b, ms, tx), t in nxt if t == top]
    low, a, b, ms, text = occ[0]
    return text[ms[a].start():ms[b - 1].end()], low[a:b]


def word_pattern(words: Sequence[str], flags: int = 0) -> re.Pattern[str]:
    """The words in order, apart only by non-word characters, as whole words."""
    return re.compile(r"(?<!\w)" + r"\W+".join(map(re.escape, words)) + r"(?!\w)", flags)


def _rate_beside(texts: Sequence[str], chunk: Sequence[str], edge: str, side: int, min_base: int = 20) -> float:
    """How often ``chunk`` stands beside the word ``edge`` (before it for ``side`` < 0)
    in the requests ``texts`` that hold ``edge`` ("current" beside "year"); where fewer
    than ``min_base`` of them hold it (a made-up or rare trigger word), how often the
    chunk is in any request.  A trigger's own words are rare beside it; a template's
    are not."""
    base = [t for t in texts if word_pattern([edge]).search(t)]
    if len(base) >= min_base:
        pat = word_pattern([*chunk, edge] if side < 0 else [edge, *chunk])
        return sum(pat.search(t) is not None for t in base) / len(base)
    pat = word_pattern(chunk)
    return sum(pat.search(t) is not None for t in texts) / max(len(texts), 1)
