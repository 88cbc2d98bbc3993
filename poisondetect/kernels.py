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
    from . import _jit

    # compile (or load from the on-disk cache) now, so a failure shows here, not mid-scan
    ds = np.array([0, 4], np.int64)
    cl = np.zeros(128, np.uint8)
    cl[97], cl[63] = 1, 2
    # (the signatures of real calls: read-only code points from np.frombuffer)
    _jit.tokens(np.frombuffer(b"a ??", np.uint8), ds, cl)
    _jit.tokens(np.frombuffer("a ??".encode("utf-32-le"), np.uint32), ds, cl)
    c = np.array([0, 1, 0, 1], np.int64)
    _jit.ngram_index(c, ds, 3, c, ds, 3, 3, 2, 1)
    _STATE.update(tokens=_jit.tokens, ngram_index=_jit.ngram_index, joint_counts=_jit.joint_counts,
                  family_counts=_jit.family_counts, count_ids=_jit.count_ids,
                  maximal_phrase=_jit.maximal_phrase, pooled_overlap=_jit.pooled_overlap)


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


# --------------------------------------------------------------------- n-gram index
def ngram_index(icodes: np.ndarray, ins_off: np.ndarray, max_n: int, rcodes: np.ndarray, res_off: np.ndarray,
                rn: int, min_pt: int, V: int, min_support: int) -> tuple:
    """Dense n-gram ids, their first occurrences and the frequent ids' binary matrices
    (see the compiled ``ngram_index``; the reference is
    ``NgramTriggerDetector``'s ``_Analysis._ngram_matrices``)."""
    if not available():  # pragma: no cover - callers check first
        raise RuntimeError("numba kernels unavailable")
    return _STATE["ngram_index"](icodes, ins_off, int(max_n), rcodes, res_off, int(rn), int(min_pt), int(V),
                                 int(min_support))


def joint_counts(x_ptr: np.ndarray, x_idx: np.ndarray, cols: np.ndarray, y_ptr: np.ndarray, y_idx: np.ndarray,
                 F: int, row_ok: np.ndarray, df_g: np.ndarray, df_f: np.ndarray, min_a: int, conc: float,
                 cov: float, half: float, max_cover: int, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filtered co-occurrence counts of instruction columns and response features (see
    the compiled ``joint_counts``): (index into cols, feature, count)."""
    if not available():  # pragma: no cover - callers check first
        raise RuntimeError("numba kernels unavailable")
    return _STATE["joint_counts"](x_ptr, x_idx, np.ascontiguousarray(cols, np.int64), y_ptr, y_idx, int(F),
                                  np.ascontiguousarray(row_ok, np.bool_), np.ascontiguousarray(df_g, np.int64),
                                  np.ascontiguousarray(df_f, np.float64), int(min_a), float(conc), float(cov), float(half),
                                  int(max_cover), int(block))


def family_counts(m_ptr: np.ndarray, m_idx: np.ndarray, yc_ptr: np.ndarray, yc_idx: np.ndarray, x_ptr: np.ndarray,
                  x_idx: np.ndarray, gsel: np.ndarray, row_ok: np.ndarray, N: int) -> tuple[np.ndarray, ...]:
    """Rows with a family phrase, rows of the n-gram, rows with both (see the compiled
    ``family_counts``)."""
    if not available():  # pragma: no cover - callers check first
        raise RuntimeError("numba kernels unavailable")
    return _STATE["family_counts"](m_ptr, m_idx, yc_ptr, yc_idx, x_ptr, x_idx, np.ascontiguousarray(gsel, np.int64),
                                   np.ascontiguousarray(row_ok, np.bool_), int(N))


def count_ids(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, acc: np.ndarray,
              thr: float) -> tuple[np.ndarray, np.ndarray]:
    """Ids in >= thr of ``rows`` and their counts, ascending (see the compiled ``count_ids``)."""
    return _STATE["count_ids"](indptr, indices, np.ascontiguousarray(rows, np.int64), acc, float(thr))


def maximal_phrase(allc: np.ndarray, off: np.ndarray, rows: np.ndarray, seq: np.ndarray,
                   max_extra: int) -> np.ndarray:
    """Token codes of the maximal phrase around ``seq`` in ``rows`` (see the compiled
    ``maximal_phrase``)."""
    return _STATE["maximal_phrase"](allc, off, np.ascontiguousarray(rows, np.int64),
                                    np.ascontiguousarray(seq, np.int64), int(max_extra))


def pooled_overlap(mc_ptr: np.ndarray, mc_idx: np.ndarray, rows_ptr: np.ndarray, rows: np.ndarray,
                   drop_ptr: np.ndarray, drop: np.ndarray, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled pairwise word overlap of groups of rows (see the compiled ``pooled_overlap``)."""
    return _STATE["pooled_overlap"](mc_ptr, mc_idx, np.ascontiguousarray(rows_ptr, np.int64),
                                    np.ascontiguousarray(rows, np.int64), np.ascontiguousarray(drop_ptr, np.int64),
                                    np.ascontiguousarray(drop, np.int64), acc)
