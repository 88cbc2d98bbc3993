"""Compiled kernels (numba) for the hot loops of the text detectors.

Everything here is a pure function over numpy arrays and has a reference implementation
elsewhere in the package that it must agree with exactly (the tests compare them):

- :func:`tokenize_codes` segments texts exactly as :data:`poisondetect.text.TOKEN_RE`
  does (word runs, punctuation runs of two or more, every invisible / format character a
  token of its own), from the texts' code points, without building a Python string per
  token.

numba is imported lazily (it costs ~0.6 s) and its compiled code is cached on disk
(``cache=True``, under ``__pycache__`` or ``NUMBA_CACHE_DIR``), so only the first call in
a fresh install pays for compilation.  Where numba is missing or fails to compile,
:func:`available` is False and callers use their reference path; set
``POISONDETECT_NO_NUMBA=1`` to force that path.
"""
from __future__ import annotations

import os
import re
from typing import Any, Sequence

import numpy as np

_STATE: dict[str, Any] = {}

# code point classes
SPACE, WORD, PUNCT, ODD = 0, 1, 2, 3


def available() -> bool:
    """True when the numba kernels can be used (imported and compiled once)."""
    if "ok" not in _STATE:
        ok = False
        if os.environ.get("POISONDETECT_NO_NUMBA", "") not in ("1", "true", "yes"):
            try:
                _compile()
                ok = True
            except Exception as exc:  # noqa: BLE001 - any import/compile failure: use the reference path
                _STATE["error"] = f"{type(exc).__name__}: {exc}"
        _STATE["ok"] = ok
    return bool(_STATE["ok"])


def _compile() -> None:
    import numba as nb

    @nb.njit(cache=True, nogil=True)
    def tokens(cp, doc_start, cls):  # pragma: no cover - compiled
        """Segment every text; give each distinct token spelling a code, in order of
        first occurrence.  Spellings are keyed exactly: the hash only picks the bucket,
        a hit compares the code points with the bucket's first occurrence."""
        n_max = cp.shape[0]
        codes = np.empty(n_max, np.int64)
        ntok = np.zeros(doc_start.shape[0] - 1, np.int64)
        cap = 1 << 12
        # open addressing; a slot holds (hash, code + 1, start and length of the first occurrence)
        slots = np.zeros((cap, 4), np.int64)
        rep_start = np.empty(1024, np.int64)
        rep_end = np.empty(1024, np.int64)
        n = 0
        u = 0
        mask = cap - 1
        for d in range(doc_start.shape[0] - 1):
            i = doc_start[d]
            e = doc_start[d + 1]
            n0 = n
            while i < e:
                c = cls[cp[i]]
                if c == 0:
                    i += 1
                    continue
                j = i + 1
                if c != 3:
                    while j < e and cls[cp[j]] == c:
                        j += 1
                if c == 2 and j - i < 2:
                    i = j
                    continue
                ln = j - i
                h = np.uint64(0xCBF29CE484222325) ^ np.uint64(ln)
                for k in range(i, j):
                    h = (h ^ np.uint64(cp[k])) * np.uint64(0x100000001B3)
                h ^= h >> np.uint64(29)
                h *= np.uint64(0xBF58476D1CE4E5B9)
                h ^= h >> np.uint64(32)
                hi = np.int64(h >> np.uint64(1))  # 63 bits: fits the int64 slot
                s = hi & mask
                while True:
                    code = slots[s, 1] - 1
                    if code < 0:
                        # a new spelling
                        if u == rep_start.shape[0]:
                            rep_start = np.concatenate((rep_start, np.empty(u, np.int64)))
                            rep_end = np.concatenate((rep_end, np.empty(u, np.int64)))
                        rep_start[u] = i
                        rep_end[u] = j
                        slots[s, 0] = hi
                        slots[s, 1] = u + 1
                        slots[s, 2] = i
                        slots[s, 3] = ln
                        code = u
                        u += 1
                        if 2 * u > cap:  # grow the table
                            cap <<= 1
                            mask = cap - 1
                            old = slots
                            slots = np.zeros((cap, 4), np.int64)
                            for t in range(old.shape[0]):
                                if old[t, 1] > 0:
                                    s2 = old[t, 0] & mask
                                    while slots[s2, 1] > 0:
                                        s2 = (s2 + 1) & mask
                                    slots[s2, 0] = old[t, 0]
                                    slots[s2, 1] = old[t, 1]
                                    slots[s2, 2] = old[t, 2]
                                    slots[s2, 3] = old[t, 3]
                        break
                    if slots[s, 0] == hi and slots[s, 3] == ln:
                        b = slots[s, 2]
                        same = True
                        for k in range(ln):
                            if cp[i + k] != cp[b + k]:
                                same = False
                                break
                        if same:
                            break
                    s = (s + 1) & mask
                codes[n] = code
                n += 1
                i = j
            ntok[d] = n - n0
        return codes[:n].copy(), ntok, rep_start[:u].copy(), rep_end[:u].copy()

    # compile (or load from the cache) now, so a failure shows here and not mid-scan
    ds = np.array([0, 4], np.int64)
    cl = np.zeros(128, np.uint8)
    cl[97], cl[63] = 1, 2
    # (the signatures of real calls: read-only code points from np.frombuffer)
    tokens(np.frombuffer(b"a ??", np.uint8), ds, cl)
    tokens(np.frombuffer("a ??".encode("utf-32-le"), np.uint32), ds, cl)
    _STATE.update(tokens=tokens)


# --------------------------------------------------------------------- code point classes
def _class_table(cp: np.ndarray) -> np.ndarray:
    """The class of every code point (an array indexed by code point), filled in for the
    code points of ``cp`` that were not classified yet.  ``\\w`` is exactly
    ``str.isalnum() or '_'`` and ``\\s`` exactly ``str.isspace()`` for Python's ``re``
    (checked over every code point by the tests)."""
    from .text import ODD_CHAR_CLASS
    tab = _STATE.get("cls")
    if tab is None:
        tab = np.zeros(0x110000, np.uint8)
        known = np.zeros(0x110000, bool)
        odd = re.compile(ODD_CHAR_CLASS)
        for c in range(128):
            tab[c] = _classify(chr(c), odd)
        known[:128] = True
        _STATE.update(cls=tab, known=known, odd_re=odd)
    known = _STATE["known"]
    hi = cp[cp >= 128]
    if hi.size:
        u = np.unique(hi)
        new = u[~known[u]]
        if new.size:
            odd = _STATE["odd_re"]
            tab[new] = [_classify(chr(int(c)), odd) for c in new.tolist()]
            known[new] = True
    return tab


def _classify(ch: str, odd: re.Pattern) -> int:
    if odd.match(ch):
        return ODD
    if ch.isalnum() or ch == "_":
        return WORD
    if ch.isspace():
        return SPACE
    return PUNCT


# --------------------------------------------------------------------- tokenising
def tokenize_codes(texts: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """Tokenise ``texts`` (segmentation of :data:`poisondetect.text.TOKEN_RE`, tokens not
    lower-cased): ``(unique raw tokens, int64 code of every token, int64 tokens per text)``,
    the codes indexing the unique tokens in order of first occurrence (as
    ``pandas.factorize`` of the token strings gives them).  None when the kernels are
    unavailable (the caller then uses the regex path)."""
    if not available():
        return None
    joined = "".join(texts)
    if joined.isascii():  # one byte a code point (a copy, no transcoding)
        cp = np.frombuffer(joined.encode("ascii"), np.uint8)
    else:
        cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), np.uint32)
    doc_start = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(np.fromiter((len(t) for t in texts), np.int64, len(texts)), out=doc_start[1:])
    cls = _class_table(cp)
    codes, ntok, rs, re_ = _STATE["tokens"](cp, doc_start, cls)
    toks = [joined[s:e] for s, e in zip(rs.tolist(), re_.tolist())]
    return toks, codes, ntok
