"""Compiled kernels (numba) for the hot loops of the text detectors.

Everything here is a pure function over numpy arrays and has a reference implementation
elsewhere in the package that it must agree with exactly (``tests/test_kernels.py``
compares them, down to the order of entries and the bits of float sums):

- :func:`tokenize_codes` segments texts exactly as :data:`poisondetect.text.TOKEN_RE`
  does (word runs, punctuation runs of two or more, every invisible / format character a
  token of its own), from the texts' code points, without building a Python string per
  token; spellings are keyed exactly (a hash hit is checked character by character);
- :func:`ngram_index`: dense n-gram ids (one table per order, orders in parallel
  threads), first occurrences, the frequent ids' row x id matrices (by row ranges in
  parallel threads) and their row-set signatures;
- :func:`joint_counts`, :func:`family_joint`, :func:`pair_counts`, :func:`count_ids`:
  co-occurrence and row counts of the n-gram trigger detector, filtered in the kernel;
- :func:`companion_counts`: the 2 x 2 counts of every conditional test in one pass;
- :func:`copied_features`: response features copied from the row's own prompt;
- :func:`maximal_phrase`, :func:`pooled_overlap`, :func:`pair_jaccard`,
  :func:`token_presence`, :func:`csc_wsums`, :func:`select_csc`:
  the smaller loops and matrix builds.

The compiled functions live in :mod:`.jit_index` and :mod:`.jit_counts` and release the GIL, so callers
may run them in threads.

numba is imported lazily (it costs ~0.6 s) and its compiled code is cached on disk
(``cache=True``, under ``__pycache__`` or ``NUMBA_CACHE_DIR``), so only the first call in
a fresh install pays for compilation.  Where numba is missing or fails to compile,
:func:`available` is False and callers use their reference path; set
``POISONDETECT_NO_NUMBA=1`` to force that path.
"""
from __future__ import annotations

import os
import re
import threading
from typing import Any, Sequence

import numpy as np

from ...segment import MARKS, NOSPACE_RE, split_word

_STATE: dict[str, Any] = {}
_LOCK = threading.Lock()

# code point classes
SPACE, WORD, PUNCT, ODD = 0, 1, 2, 3


def _compiled() -> Any:
    """The compiled functions of :mod:`.jit_index` and :mod:`.jit_counts` (imports numba)."""
    import types

    from . import jit_counts, jit_index
    return types.SimpleNamespace(**{n: getattr(m, n) for m in (jit_index, jit_counts) for n in m.__all__})


def available() -> bool:
    """True when the numba kernels can be used (imported and compiled once)."""
    if "ok" in _STATE:
        return bool(_STATE["ok"])
    with _LOCK:
        return _available_locked()


def unavailable_reason() -> str | None:
    """Why the kernels are not used (import / compile error, or :func:`disable`'s reason);
    None when they are, or when the environment switched them off."""
    return _STATE.get("error")


def disable(reason: str) -> None:
    """Use the reference paths from now on in this process (``reason`` is reported)."""
    with _LOCK:
        _STATE["ok"] = False
        _STATE["error"] = reason[:500]


def is_numba_error(exc: BaseException) -> bool:
    """Is ``exc`` numba failing to type or compile a kernel (not a bug in the caller)?"""
    try:
        from numba.core.errors import NumbaError
    except Exception:  # noqa: BLE001 - numba missing: nothing of it failed
        return False
    return isinstance(exc, NumbaError)


def _available_locked() -> bool:
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
    _jit = _compiled()

    # compile (or load from the on-disk cache) now, so a failure shows here, not mid-scan
    ds = np.array([0, 4], np.int64)
    cl = np.zeros(128, np.uint8)
    cl[97], cl[63] = 1, 2
    # (the signatures of real calls: read-only code points from np.frombuffer)
    _jit.tokens(np.frombuffer(b"a ??", np.uint8), ds, cl)
    _jit.tokens(np.frombuffer("a ??".encode("utf-32-le"), np.uint32), ds, cl)
    c = np.array([0, 1, 0, 1], np.int64)
    _STATE["ok"] = True  # (ngram_index checks it)
    try:
        ngram_index(c, ds, 3, c, ds, 3, 3, 2, 1)
    finally:
        del _STATE["ok"]
    _STATE.update(tokens=_jit.tokens, joint_counts=_jit.joint_counts,
                  count_ids=_jit.count_ids,
                  maximal_phrase=_jit.maximal_phrase, pooled_overlap=_jit.pooled_overlap,
                  token_presence=_jit.token_presence, pair_counts=_jit.pair_counts,
                  select_csc=_jit.select_csc,
                  companion_counts=_jit.companion_counts, pair_jaccard=_jit.pair_jaccard,
                  csc_wsums=_jit.csc_wsums, copied_features=_jit.copied_features,
                  family_joint=_jit.family_joint, join_csc=_jit.join_csc)


# --------------------------------------------------------------------- code point classes
def _class_table(cp: np.ndarray) -> np.ndarray:
    """The class of every code point (an array indexed by code point), filled in for the
    code points of ``cp`` that were not classified yet.  ``\\w`` is exactly
    ``str.isalnum() or '_'`` (to which the tokenisers add the combining marks) and ``\\s`` exactly ``str.isspace()`` for Python's ``re``
    (checked over every code point by the tests)."""
    with _LOCK:  # (tokenising threads share the table)
        return _class_table_locked(cp)


def _class_table_locked(cp: np.ndarray) -> np.ndarray:
    from ...text import ODD_CHAR_CLASS
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


_WORD_CH = re.compile(f"[{MARKS}]")  # combining marks are word characters (as in text.TOKEN_RE)


def _classify(ch: str, odd: re.Pattern) -> int:
    if odd.match(ch):
        return ODD
    if ch.isalnum() or ch == "_" or _WORD_CH.match(ch):
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
    if not joined.isascii() and NOSPACE_RE.search(joined) is not None:
        return _split_codes(toks, codes, ntok)
    return toks, codes, ntok


def _split_codes(toks: list[str], codes: np.ndarray, ntok: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Apply :func:`poisondetect.segment.split_word` to the distinct tokens of
    :func:`tokenize_codes` and renumber: the tokens, codes and counts that tokenising the
    split token stream would give (codes in order of first occurrence)."""
    parts = [split_word(t) for t in toks]
    if all(len(p) == 1 for p in parts):
        return toks, codes, ntok
    sub_id: dict[str, int] = {}
    flat_sub = np.fromiter((sub_id.setdefault(w, len(sub_id)) for p in parts for w in p), np.int64)
    plen = np.fromiter((len(p) for p in parts), np.int64, len(parts))
    pstart = np.zeros(len(parts) + 1, np.int64)
    np.cumsum(plen, out=pstart[1:])
    n_each = plen[codes]  # sub-tokens of every token occurrence
    occ_start = np.repeat(pstart[:-1][codes], n_each)
    within = np.arange(int(n_each.sum()), dtype=np.int64) - np.repeat(np.cumsum(n_each) - n_each, n_each)
    new = flat_sub[occ_start + within]
    # renumber in order of first occurrence
    uniq, first = np.unique(new, return_index=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(sub_id), np.int64)
    rank[uniq[order]] = np.arange(len(order), dtype=np.int64)
    words = list(sub_id)
    doc = np.repeat(np.arange(len(ntok), dtype=np.int64), ntok)
    ntok_new = np.bincount(doc, weights=n_each, minlength=len(ntok)).astype(np.int64)
    return [words[u] for u in uniq[order].tolist()], rank[new], ntok_new


# --------------------------------------------------------------------- n-gram index
def ngram_index(icodes: np.ndarray, ins_off: np.ndarray, max_n: int, rcodes: np.ndarray, res_off: np.ndarray,
                rn: int, min_pt: int, V: int, min_support: int, threads: int = 1,
                W: np.ndarray | None = None) -> tuple:
    """Dense ids of every instruction 1..max_n-gram and every response feature (the
    rn-grams; the whole response when it is shorter, if >= min_pt tokens), in order of
    first appearance over [instruction order 1, ..., max_n, response features] (what
    ``pandas.factorize`` of the exact ids in that order gives, as the reference path
    ``FeaturesMixin._ngram_matrices`` does); the first occurrence of each; the binary row x id
    matrices (CSR) of the ids occurring >= min_support times on that side; the
    instruction document frequencies.  Each order has a table of its own, so with
    ``threads`` > 1 the orders are counted in parallel (the kernels release the GIL), and
    the matrix is built by row ranges in parallel.  ``W`` (rows x k weights, default
    none) gives each id's row-set signature: the sums of W's columns over its rows (a
    deterministic function of the row set: equal row sets, equal sums).

    Returns (U, rep_start, rep_order, rep_side, x_ptr, x_idx, df_g, y_ptr, y_idx, sig)."""
    if not available():  # pragma: no cover - callers check first
        raise RuntimeError("numba kernels unavailable")
    _jit = _compiled()
    W = np.zeros((len(ins_off) - 1, 0)) if W is None else np.ascontiguousarray(W, np.float64)
    icodes = np.ascontiguousarray(icodes, np.int64)
    rcodes = np.ascontiguousarray(rcodes, np.int64)
    ins_off = np.ascontiguousarray(ins_off, np.int64)
    res_off = np.ascontiguousarray(res_off, np.int64)
    N = len(ins_off) - 1
    offset = [0] * (max(max_n, rn) + 1)  # key offset of order n (keys of orders never collide)
    for n in range(2, len(offset)):
        offset[n] = offset[n - 1] + V ** (n - 1)
    gid = np.empty((max_n, len(icodes)), np.int32)

    def one(n: int) -> tuple:
        return _jit.order_ids(icodes, ins_off, n, V, offset[n], gid[n - 1], 16)

    order = list(range(max_n, 0, -1))  # longest first (the most distinct keys)
    if threads > 1 and max_n > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=threads) as ex:
            res = dict(zip(order, ex.map(one, order)))
    else:
        res = {n: one(n) for n in order}
    base = np.zeros(max_n + 1, np.int64)
    for n in range(1, max_n + 1):
        base[n] = base[n - 1] + len(res[n][0])
    U_i = int(base[max_n])
    # response features, order by order (an id of an instruction n-gram, else a new one)
    fid = np.full(len(rcodes), -1, np.int64)
    next_id, new_bits = U_i, 12
    new_tab = np.zeros((1 << new_bits, 2), np.int64)
    new_reps, new_orders = [], []
    empty_tab = np.zeros((2, 2), np.int64)
    for n in range(1, rn + 1):
        tab, bits = (res[n][3], res[n][4]) if n <= max_n else (empty_tab, 1)
        b = int(base[n - 1]) if n <= max_n else 0
        before = next_id
        next_id, new_tab, new_bits, nr = _jit.response_ids(rcodes, res_off, n, rn, min_pt, V, offset[n], tab, bits,
                                                           b, fid, new_tab, new_bits, next_id,
                                                           np.empty(16, np.int64))
        new_reps.append(nr)
        new_orders.append(np.full(next_id - before, n, np.int8))
    U = int(next_id)
    rep_start = np.concatenate([res[n][1] for n in range(1, max_n + 1)] + new_reps)
    rep_order = np.concatenate([np.full(len(res[n][0]), n, np.int8) for n in range(1, max_n + 1)] + new_orders)
    rep_side = np.concatenate([np.zeros(U_i, np.int8), np.ones(U - U_i, np.int8)])
    tf_ok = np.zeros(U, bool)
    tf_ok[:U_i] = np.concatenate([res[n][2] for n in range(1, max_n + 1)]) >= min_support
    del res
    # the frequent ids' matrix, by row ranges (in threads), with the row-set signatures
    bounds = np.linspace(0, N, max(threads, 1) + 1).astype(np.int64)
    b0 = base[:max_n].copy()

    def part(k: int) -> tuple:
        return _jit.frequent_matrix(gid, b0, tf_ok, ins_off, int(bounds[k]), int(bounds[k + 1]), U, W)

    if threads > 1 and N > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=threads) as ex:
            parts = list(ex.map(part, range(threads)))
    else:
        parts = [part(0)]
    del gid
    x_ptr = np.concatenate([parts[0][0]] + [p[0][1:] + sum(len(q[1]) for q in parts[:k + 1])
                                            for k, p in enumerate(parts[1:])])
    x_idx = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1].copy()
    df_g = parts[0][2]
    sig = parts[0][3]
    for p in parts[1:]:
        df_g += p[2]
        sig += p[3]
    del parts
    # responses: one entry per (row, frequent feature), rows sorted
    ok = fid >= 0
    tf_f = np.bincount(fid[ok], minlength=U)
    pos = np.flatnonzero(ok)
    pos = pos[tf_f[fid[pos]] >= min_support]
    doc = np.searchsorted(res_off, pos, side="right") - 1
    key = np.sort(doc * np.int64(U) + fid[pos])  # (sort + adjacent test: np.unique's hash path is slow here)
    if len(key):
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    y_idx = (key % U).astype(np.int32)
    y_ptr = np.zeros(N + 1, np.int64)
    np.cumsum(np.bincount(key // U, minlength=N), out=y_ptr[1:])
    return U, rep_start, rep_order, rep_side, x_ptr, x_idx, df_g, y_ptr, y_idx, sig


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


def token_presence(codes: np.ndarray, off: np.ndarray, V: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of the binary row x token matrix, canonical (see ``token_presence``)."""
    return _STATE["token_presence"](np.ascontiguousarray(codes, np.int64), np.ascontiguousarray(off, np.int64),
                                    int(V))


def pair_counts(x_ptr: np.ndarray, x_idx: np.ndarray, t1: np.ndarray, t2: np.ndarray, y_ptr: np.ndarray,
                y_idx: np.ndarray, fcol: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of each n-gram pair and their part in a feature's rows (see ``pair_counts``)."""
    return _STATE["pair_counts"](x_ptr, x_idx, np.ascontiguousarray(t1, np.int64), np.ascontiguousarray(t2, np.int64),
                                 y_ptr, y_idx, np.ascontiguousarray(fcol, np.int64), int(N))


def select_csc(indptr: np.ndarray, indices: np.ndarray, colmap: np.ndarray, ncols: int,
               threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Selected columns of a binary CSR matrix as CSC (see ``select_csc``); with
    ``threads`` > 1 by row ranges in parallel, then joined (the same matrix)."""
    colmap = np.ascontiguousarray(colmap, np.int64)
    N = len(indptr) - 1
    if threads <= 1 or N < 2:
        return _STATE["select_csc"](indptr, indices, colmap, int(ncols), 0, -1)
    from concurrent.futures import ThreadPoolExecutor
    h = N // 2
    with ThreadPoolExecutor(max_workers=1) as pool:
        job = pool.submit(_STATE["select_csc"], indptr, indices, colmap, int(ncols), h, N)
        pa, ia = _STATE["select_csc"](indptr, indices, colmap, int(ncols), 0, h)
        pb, ib = job.result()
    return _STATE["join_csc"](pa, ia, pb, ib)


def companion_counts(c_ptr: np.ndarray, c_idx: np.ndarray, x_ptr: np.ndarray, x_idx: np.ndarray, y_ptr: np.ndarray,
                     y_idx: np.ndarray, t: np.ndarray, f: np.ndarray, b: np.ndarray, half: np.ndarray,
                     h2: np.ndarray, N: int) -> np.ndarray:
    """(rows of the companion, of them with the trigger, with the feature, with both) per
    test (see the compiled ``companion_counts``)."""
    i64 = np.int64
    return _STATE["companion_counts"](c_ptr, c_idx, x_ptr, x_idx, y_ptr, y_idx, np.ascontiguousarray(t, i64),
                                      np.ascontiguousarray(f, i64), np.ascontiguousarray(b, i64),
                                      np.ascontiguousarray(half, np.bool_), np.ascontiguousarray(h2, np.bool_), int(N))


def pair_jaccard(mc_ptr: np.ndarray, mc_idx: np.ndarray, rows: np.ndarray, excl: np.ndarray,
                 mark: np.ndarray) -> np.ndarray:
    """Pairwise Jaccard similarities of rows' id sets, upper triangle row-major, float32
    (see the compiled ``pair_jaccard``)."""
    return _STATE["pair_jaccard"](mc_ptr, mc_idx, np.ascontiguousarray(rows, np.int64),
                                  np.ascontiguousarray(excl, np.int64), mark)


def csc_wsums(indptr: np.ndarray, indices: np.ndarray, cols: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(M.T @ w)[cols]`` of a binary CSC matrix, bitwise as scipy sums it (see the
    compiled ``csc_wsums``)."""
    return _STATE["csc_wsums"](indptr, indices, np.ascontiguousarray(cols, np.int64),
                               np.ascontiguousarray(w, np.float64))


def copied_features(y_ptr: np.ndarray, y_idx: np.ndarray, icodes: np.ndarray, ins_off: np.ndarray, rcodes: np.ndarray,
                    rep_start: np.ndarray, rep_order: np.ndarray, rep_side: np.ndarray, function: np.ndarray,
                    V: int, width: int) -> np.ndarray:
    """Which entries of a row x response-feature CSR matrix to keep: not copied from the
    row's instruction (see the compiled ``copied_features``)."""
    i64 = np.int64
    return _STATE["copied_features"](y_ptr, y_idx, np.ascontiguousarray(icodes, i64), np.ascontiguousarray(ins_off, i64),
                                     np.ascontiguousarray(rcodes, i64), rep_start, rep_order, rep_side,
                                     np.ascontiguousarray(function, np.bool_), int(V), int(width))


def family_joint(x_ptr: np.ndarray, x_idx: np.ndarray, gsel: np.ndarray, yr_ptr: np.ndarray, yr_idx: np.ndarray,
                 yc_ptr: np.ndarray, yc_idx: np.ndarray, F: int, h1: np.ndarray, h2: np.ndarray, df1_f: np.ndarray,
                 conc: float, N: int) -> tuple[np.ndarray, ...]:
    """The payload-family counts of the candidates that pass (see the compiled
    ``family_joint``): (j, u, n, x, family indptr, family features)."""
    return _STATE["family_joint"](x_ptr, x_idx, np.ascontiguousarray(gsel, np.int64), yr_ptr, yr_idx, yc_ptr, yc_idx,
                                  int(F), np.ascontiguousarray(h1, np.bool_), np.ascontiguousarray(h2, np.bool_),
                                  np.ascontiguousarray(df1_f, np.float64), float(conc), int(N))
