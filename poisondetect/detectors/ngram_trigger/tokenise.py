"""Tokenising both sides of the sample for the n-gram test: token codes (the compiled
tokeniser) or token hashes (the reference path), exact-response hashes, responses copied
from their prompt, and the integer ids of every word n-gram."""
from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd

from ... import text as T
from . import kernels as K


def tokenize_side(texts: list[str], chunk: int = 4096) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Reference path: token hashes (flat uint64), per-doc lengths, vocab hash ->
    lower-cased token.  Tokenised ``chunk`` texts at a time, so the Python token strings
    of only one chunk are alive at once (they cost ~60 bytes each; the hashes 8)."""
    vocab: dict[int, str] = {}
    hash_of: dict[str, int] = {}
    parts, lens_all = [], []
    for s0 in range(0, len(texts), chunk):
        flat, lens = T.tokenize_many(texts[s0:s0 + chunk])
        lens_all.append(lens)
        if not flat:
            continue
        arr = np.empty(len(flat), dtype=object)
        arr[:] = flat
        codes, uniq = pd.factorize(arr)
        del flat, arr
        new = [u for u in uniq if u not in hash_of]
        if new:
            low = [u.lower() for u in new]
            for u, lw, h in zip(new, low, T.hash_strings(low).tolist()):
                hash_of[u] = h
                vocab[h] = lw
        uh = np.fromiter((hash_of[u] for u in uniq), dtype=np.uint64, count=len(uniq))
        parts.append(uh[codes])
    lens = np.concatenate(lens_all) if lens_all else np.zeros(0, np.int64)
    if not parts:
        return np.zeros(0, np.uint64), lens, {}
    return np.concatenate(parts), lens, vocab


def raw_codes(texts: list[str], chunk: int = 8192) -> tuple[list[tuple[np.ndarray, list[str]]], np.ndarray]:
    """The compiled tokeniser over ``texts``, ``chunk`` texts a call (bounded transcoding
    buffers): per chunk (codes, the chunk's distinct raw tokens by code), and the tokens
    per text."""
    parts, lens = [], []
    for s0 in range(0, len(texts), chunk):
        got = K.tokenize_codes(texts[s0:s0 + chunk])
        if got is None:  # pragma: no cover - callers check K.available() first
            raise RuntimeError("numba kernels unavailable")
        uniq, codes, ln = got
        parts.append((codes, uniq))
        lens.append(ln)
    return parts, (np.concatenate(lens) if lens else np.zeros(0, np.int64))


def merge_codes(sides: list[list[tuple[np.ndarray, list[str]]]]) -> tuple[list[np.ndarray], list[str]]:
    """One numbering of the lower-cased tokens over the chunks of :func:`raw_codes`, in
    order: each side's codes (int64, flat) and code -> lower-cased token.  Each chunk's
    distinct raw tokens are listed in order of first appearance, so factorising their
    lower-cased forms chunk after chunk numbers the tokens in order of first appearance
    over all the texts."""
    chunks = [p for parts in sides for p in parts]
    low = np.empty(sum(len(u) for _, u in chunks), dtype=object)
    low[:] = [u.lower() for _, uniq in chunks for u in uniq]
    ids, words = pd.factorize(low, use_na_sentinel=False)
    del low
    out, at = [], 0
    for parts in sides:
        flat = []
        for codes, uniq in parts:
            m = ids[at:at + len(uniq)].astype(np.int64)
            at += len(uniq)
            flat.append(m[codes])
        out.append(np.concatenate(flat) if flat else np.zeros(0, np.int64))
    return out, words.tolist()


def exact_hashes(texts: list[str], norm: list[str] | None = None) -> np.ndarray:
    norm = [T.normalize_text(t) for t in texts] if norm is None else norm
    h = T.hash_strings(norm)
    empty = np.fromiter((len(s) == 0 for s in norm), bool, len(norm))
    h[empty] = 0
    return h


def copied_exact(ins: list[str], norm_responses: list[str], exact: np.ndarray, min_support: int,
                  res_len: np.ndarray | None = None, min_tokens: int = 0) -> np.ndarray:
    """Rows whose whole (normalised) response is contained in their (normalised)
    instruction.  Only rows whose exact response occurs at least ``min_support`` times
    and has at least ``min_tokens`` tokens (``res_len``) can make an exact-response
    feature, so only those are checked (the others are False)."""
    out = np.zeros(len(norm_responses), bool)
    _, inv, cnt = np.unique(exact, return_inverse=True, return_counts=True)
    todo = (cnt[inv] >= min_support) & (exact != 0)
    if res_len is not None:
        todo &= res_len >= min_tokens
    for i in np.flatnonzero(todo).tolist():
        e = norm_responses[i]
        if not e:
            continue
        x = ins[i]
        if x.isascii() or unicodedata.is_normalized("NFKC", x):
            # NFKC leaves x alone, so normalising x only lower-cases it and collapses its
            # whitespace runs; e (single spaces) can only be in that if each of its words
            # is in x.lower() (a cheap first check)
            xl = x.lower()
            if all(w in xl for w in e.split(" ")):
                out[i] = e in " ".join(xl.split())
            continue
        out[i] = e in T.normalize_text(x)
    return out


def ngram_ids(codes: np.ndarray, lens: np.ndarray, max_n: int, V: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer ids of all 1..max_n-grams (unique across orders), their doc, start and order."""
    N = len(lens)
    pos_t = np.int32 if len(codes) < 2**31 - 1 else np.int64  # doc/start arrays: half the memory
    doc = np.repeat(np.arange(N, dtype=pos_t), lens)
    c = codes.astype(np.int64)
    ids, docs, starts, orders = [c], [doc], [np.arange(len(c), dtype=pos_t)], [np.ones(len(c), np.int8)]
    acc = c
    offset = 0
    width = V
    for n in range(2, max_n + 1):
        if len(c) < n:
            break
        same = doc[: len(c) - n + 1] == doc[n - 1:]
        acc = acc[:-1] * V + c[n - 1:]
        offset += width
        width *= V
        ids.append(acc[same] + offset)
        docs.append(doc[: len(c) - n + 1][same])
        starts.append(np.arange(len(c) - n + 1, dtype=pos_t)[same])
        orders.append(np.full(int(same.sum()), n, np.int8))
    return np.concatenate(ids), np.concatenate(docs), np.concatenate(starts), np.concatenate(orders)
