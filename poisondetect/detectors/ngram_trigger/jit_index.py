"""numba kernels of the n-gram index (module-level functions, so that ``cache=True`` keeps
their machine code on disk between processes): the tokeniser, the hashed n-gram id
tables, the frequent ids' row x id matrices, token presence, copied response features,
column selection and weighted column sums.  Importing this module imports numba;
:mod:`.kernels` does so lazily and wraps every function here."""
from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ['room', 'tokens', 'order_ids', 'response_ids', 'frequent_matrix', 'token_presence', 'copied_features', 'select_csc', 'csc_wsums']


@nb.njit(cache=True, nogil=True, inline="always")
def room(a, used, need):  # pragma: no cover - compiled
    """``a`` if it has room for ``need`` entries after its first ``used``, else a new
    array of at least twice the length holding those ``used`` entries (growing buffers)."""
    if used + need <= a.shape[0]:
        return a
    out = np.empty(max(2 * a.shape[0], used + need), a.dtype)
    out[:used] = a[:used]
    return out


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
                    rep_start = room(rep_start, u, 1)
                    rep_end = room(rep_end, u, 1)
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


@nb.njit(cache=True, nogil=True, inline="always")
def _slot(tab, bits, key):  # pragma: no cover - compiled
    """The slot of ``key`` in an open-addressing table of 2**bits rows (key + 1, value),
    or the empty slot where it would go (Fibonacci hashing, linear probing)."""
    mask = (1 << bits) - 1
    s = np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits))
    while tab[s, 0] != 0 and tab[s, 0] != key:
        s = (s + 1) & mask
    return s


@nb.njit(cache=True, nogil=True, inline="always")
def _key(codes, st, n, V, offset):  # pragma: no cover - compiled
    """The exact table key (+ 1, so 0 means empty) of the n-gram of ``codes`` at ``st``."""
    key = codes[st]
    for k in range(1, n):
        key = key * V + codes[st + k]
    return key + offset + 1


@nb.njit(cache=True, nogil=True)
def _grow(tab, bits):  # pragma: no cover - compiled
    """The open-addressing table (rows: key + 1, value) rehashed into twice the slots."""
    bits += 1
    new = np.zeros((1 << bits, 2), np.int64)
    for t in range(tab.shape[0]):
        k = tab[t, 0]
        if k != 0:
            s = _slot(new, bits, k)
            new[s, 0] = k
            new[s, 1] = tab[t, 1]
    return new, bits


@nb.njit(cache=True, nogil=True)
def order_ids(codes, off, n, V, offset, gid, tab_bits0):  # pragma: no cover - compiled
    """Local ids (0, 1, ... in order of first appearance) of the n-grams of one order that
    do not cross a row boundary, written to ``gid`` (-1 where no n-gram starts); returns
    (exact key of each id, first occurrence, occurrence count, hash table, its bits).
    Keys are ``offset`` + the base-V number of the n-gram's token codes."""
    bits = tab_bits0
    tab = np.zeros((1 << bits, 2), np.int64)  # (key + 1, local id << 32 | count); 0: empty
    keys = np.empty(4096, np.int64)
    rep = np.empty(4096, np.int64)
    u = 0
    N = off.shape[0] - 1
    for d in range(N):
        a = off[d]
        b = off[d + 1]
        for st in range(max(a, b - n + 1), b):
            gid[st] = -1
        for st in range(a, b - n + 1):
            key = _key(codes, st, n, V, offset)
            s = _slot(tab, bits, key)
            if tab[s, 0] == 0:
                keys = room(keys, u, 1)
                rep = room(rep, u, 1)
                keys[u] = key
                rep[u] = st
                tab[s, 0] = key
                tab[s, 1] = (np.int64(u) << 32) + 1
                gid[st] = u
                u += 1
                if 2 * u > tab.shape[0]:
                    tab, bits = _grow(tab, bits)
            else:
                tab[s, 1] += 1
                gid[st] = np.int32(tab[s, 1] >> 32)
    tf = np.zeros(u, np.int64)
    for t in range(tab.shape[0]):
        if tab[t, 0] != 0:
            tf[tab[t, 1] >> 32] = tab[t, 1] & 0xFFFFFFFF
    return keys[:u].copy(), rep[:u].copy(), tf, tab, bits


@nb.njit(cache=True, nogil=True)
def response_ids(rcodes, res_off, n, rn, min_pt, V, offset, tab, bits, base, fid, new_tab, new_bits, next_id,
                 new_rep):  # pragma: no cover - compiled
    """The response features of order n (rn-grams; whole responses of n < rn tokens, if
    n >= min_pt): global id of an instruction n-gram with the same key (``tab``, ids
    ``base`` + local), else a new id from ``next_id`` on (response-only keys: ``new_tab``),
    written to ``fid``.  Returns (next_id, new_tab, new_bits, new_rep, number of new ids
    so far)."""
    N = res_off.shape[0] - 1
    nn = 0
    for d in range(N):
        a = res_off[d]
        b = res_off[d + 1]
        ln = b - a
        if n < min_pt or not (n == rn or (ln < rn and n == ln)):
            continue
        for st in range(a, b - n + 1):
            key = _key(rcodes, st, n, V, offset)
            s = _slot(tab, bits, key)
            if tab[s, 0] != 0:
                fid[st] = base + (tab[s, 1] >> 32)
                continue
            s = _slot(new_tab, new_bits, key)
            if new_tab[s, 0] == 0:
                new_rep = room(new_rep, nn, 1)
                new_rep[nn] = st
                nn += 1
                new_tab[s, 0] = key
                new_tab[s, 1] = np.int64(next_id) << 32
                next_id += 1
                fid[st] = new_tab[s, 1] >> 32
                if 2 * nn > new_tab.shape[0]:
                    new_tab, new_bits = _grow(new_tab, new_bits)
            else:
                fid[st] = new_tab[s, 1] >> 32
    return next_id, new_tab, new_bits, new_rep[:nn].copy()


@nb.njit(cache=True, nogil=True)
def frequent_matrix(gid, base, tf_ok, off, d0, d1, U, W):  # pragma: no cover - compiled
    """Rows d0 <= d < d1 of the binary row x id matrix (CSR, unsorted within a row) of the
    ids with ``tf_ok``: row d holds each id among its n-grams once (orders in gid's rows,
    global id = base[order] + local id).  Returns (indptr from 0, indices, rows per id,
    per id the sums of W's columns over those rows, added in row order)."""
    max_n = gid.shape[0]
    k = W.shape[1]
    # per id one record (last row seen, rows, sums), so each entry touches one cache line
    # (the row numbers and counts are exact in float64)
    rec = np.zeros((U, 2 + k))
    rec[:, 0] = -1.0
    cnt = 0  # (room for every n-gram position; the pages past the end stay untouched)
    for n in range(max_n):
        for d in range(d0, d1):
            cnt += max(off[d + 1] - off[d] - n, 0)
    ptr = np.zeros(d1 - d0 + 1, np.int64)
    idx = np.empty(cnt, np.int32)
    m = 0
    for d in range(d0, d1):
        fd = float(d)
        for n in range(max_n):
            b = base[n]
            for st in range(off[d], off[d + 1] - n):
                g = b + gid[n, st]
                if tf_ok[g] and rec[g, 0] != fd:
                    rec[g, 0] = fd
                    rec[g, 1] += 1.0
                    for j in range(k):
                        rec[g, 2 + j] += W[d, j]
                    idx[m] = g
                    m += 1
        ptr[d + 1 - d0] = m
    df = np.empty(U, np.int64)
    for g in range(U):
        df[g] = np.int64(rec[g, 1])
    return ptr, idx[:m], df, rec[:, 2:].copy()


@nb.njit(cache=True, nogil=True)
def token_presence(codes, off, V):  # pragma: no cover - compiled
    """Binary row x token matrix (canonical CSR: each row's distinct codes, ascending)."""
    N = off.shape[0] - 1
    last = np.full(V, -1, np.int64)
    ptr = np.zeros(N + 1, np.int64)
    idx = np.empty(codes.shape[0], np.int32)
    m = 0
    for d in range(N):
        m0 = m
        for p in range(off[d], off[d + 1]):
            c = codes[p]
            if last[c] != d:
                last[c] = d
                idx[m] = c
                m += 1
        if m - m0 > 1:
            idx[m0:m] = np.sort(idx[m0:m])
        ptr[d + 1] = m
    return ptr, idx[:m].copy()


@nb.njit(cache=True, nogil=True)
def copied_features(y_ptr, y_idx, icodes, ins_off, rcodes, rep_start, rep_order, rep_side, function, V,
                    width):  # pragma: no cover - compiled
    """For each entry (row d, feature u) of the binary CSR matrix y: keep it unless all of
    u's content tokens (its first ``width`` tokens that are not ``function`` words) occur
    in row d's instruction, or it has none."""
    N = y_ptr.shape[0] - 1
    mark = np.full(V, -1, np.int64)
    keep = np.zeros(y_idx.shape[0], np.bool_)
    for d in range(N):
        for p in range(ins_off[d], ins_off[d + 1]):
            mark[icodes[p]] = d
        for p in range(y_ptr[d], y_ptr[d + 1]):
            u = y_idx[p]
            s = rep_start[u]
            o = min(np.int64(rep_order[u]), width)
            side = rep_side[u]
            content = False
            copied = True
            for j in range(o):
                c = rcodes[s + j] if side == 1 else icodes[s + j]
                if function[c]:
                    continue
                content = True
                if mark[c] != d:
                    copied = False
                    break
            keep[p] = content and not copied
    return keep


@nb.njit(cache=True, nogil=True)
def select_csc(indptr, indices, colmap, ncols, r0=0, r1=-1):  # pragma: no cover - compiled
    """The columns of a binary CSR matrix with colmap[c] >= 0, as a CSC matrix with
    column colmap[c] (rows ascending within each column): (indptr, indices).  Only rows
    r0 <= r < r1 (r1 < 0: to the end), so row ranges can be done in parallel and joined
    with :func:`join_csc`."""
    if r1 < 0:
        r1 = indptr.shape[0] - 1
    cnt = np.zeros(ncols + 1, np.int64)
    for p in range(indptr[r0], indptr[r1]):
        j = colmap[indices[p]]
        if j >= 0:
            cnt[j + 1] += 1
    for j in range(ncols):
        cnt[j + 1] += cnt[j]
    out = np.empty(cnt[ncols], np.int32)
    pos = cnt[:ncols].copy()
    for r in range(r0, r1):
        for p in range(indptr[r], indptr[r + 1]):
            j = colmap[indices[p]]
            if j >= 0:
                out[pos[j]] = r
                pos[j] += 1
    return cnt, out


@nb.njit(cache=True, nogil=True)
def csc_wsums(indptr, indices, cols, w):  # pragma: no cover - compiled
    """For each column c of ``cols``: the sum of w over its rows (a binary CSC matrix),
    added in index order from 0.0, as scipy's csr_matvec of the transpose adds them."""
    out = np.zeros(cols.shape[0])
    for k in range(cols.shape[0]):
        c = cols[k]
        s = 0.0
        for p in range(indptr[c], indptr[c + 1]):
            s += w[indices[p]]
        out[k] = s
    return out
