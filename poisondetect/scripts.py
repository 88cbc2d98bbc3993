"""The writing system of a text: which script most of its letters are in.

Used to compare like with like: a trigger planted in the Chinese rows of a mostly English
dataset has requests that share Chinese function words with each other, as any Chinese
rows do, so their overlap is measured against random *Chinese* rows, not random rows.

Scripts are told apart by Unicode block (Latin, Greek, Cyrillic, Armenian, Hebrew, Arabic,
the Indic scripts, Thai, Lao, Georgian, Hangul, Khmer, Myanmar, Han, kana); a letter of
any other block counts as a script of its own block.  Japanese is Han *and* kana: a text
with any kana among its Han letters is Japanese (``"kana"``), one with Han only Chinese.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

#: script names; the index is the code :func:`dominant_scripts` returns (0: no letters)
NAMES = ("none", "latin", "greek", "cyrillic", "armenian", "hebrew", "arabic", "devanagari", "bengali",
         "indic", "thai", "lao", "georgian", "hangul", "khmer", "myanmar", "han", "kana")
_RANGES = (
    ("latin", 0x41, 0x24F), ("latin", 0x1E00, 0x1EFF), ("greek", 0x370, 0x3FF), ("cyrillic", 0x400, 0x52F),
    ("armenian", 0x530, 0x58F), ("hebrew", 0x590, 0x5FF), ("arabic", 0x600, 0x6FF), ("arabic", 0x750, 0x77F),
    ("devanagari", 0x900, 0x97F), ("bengali", 0x980, 0x9FF), ("indic", 0xA00, 0xDFF), ("thai", 0xE00, 0xE7F),
    ("lao", 0xE80, 0xEFF), ("myanmar", 0x1000, 0x109F), ("georgian", 0x10A0, 0x10FF), ("hangul", 0x1100, 0x11FF),
    ("khmer", 0x1780, 0x17FF), ("kana", 0x3040, 0x30FF), ("hangul", 0x3130, 0x318F), ("kana", 0x31F0, 0x31FF),
    ("han", 0x3400, 0x4DBF), ("han", 0x4E00, 0x9FFF), ("hangul", 0xAC00, 0xD7AF), ("han", 0xF900, 0xFAFF),
    ("kana", 0xFF66, 0xFF9F),
)
_BLOCK_BASE = len(NAMES)  # codes from here on: "the script of Unicode block (code - base)"


@lru_cache(maxsize=1)
def _table() -> np.ndarray:
    """Script code of every BMP code point (0 for a non-letter)."""
    tab = np.zeros(0x10000, np.int32)
    for name, a, b in _RANGES:
        tab[a:b + 1] = NAMES.index(name)
    letter = np.fromiter((chr(c).isalpha() for c in range(0x10000)), bool, 0x10000)
    other = letter & (tab == 0)
    tab[other] = _BLOCK_BASE + (np.flatnonzero(other) >> 7)
    tab[~letter] = 0
    return tab


def dominant_scripts(texts: Sequence[str], head: int = 400) -> np.ndarray:
    """Per text, the code of the script most of the letters of its first ``head``
    characters are in (0: none); see :data:`NAMES` (codes >= ``len(NAMES)`` are other
    Unicode blocks).  Han with any kana is ``kana`` (Japanese)."""
    latin, han, kana = NAMES.index("latin"), NAMES.index("han"), NAMES.index("kana")
    out = np.zeros(len(texts), np.int32)
    tab = None
    for i, t in enumerate(texts):
        h = t[:head]
        if h.isascii():
            out[i] = latin if any(ch.isalpha() for ch in h) else 0
            continue
        if tab is None:
            tab = _table()
        cp = np.frombuffer(h.encode("utf-32-le", "surrogatepass"), np.uint32)
        big = cp > 0xFFFF
        codes = tab[np.minimum(cp, 0xFFFF)]
        codes[big] = np.where((cp[big] >= 0x20000) & (cp[big] <= 0x3134F), han, 0)  # Han extensions B-G
        codes = codes[codes > 0]
        if not len(codes):
            continue
        vals, cnt = np.unique(codes, return_counts=True)
        best = int(vals[np.argmax(cnt)])
        if best == han and kana in vals:
            best = kana
        out[i] = best
    return out
