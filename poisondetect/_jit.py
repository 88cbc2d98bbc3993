"""The numba kernels behind :mod:`poisondetect.kernels` (module-level functions, so that
``cache=True`` can keep their machine code on disk between processes).  Importing this
module imports numba; :mod:`poisondetect.kernels` does so lazily."""
from __future__ import annotations

import numba as nb
import numpy as np



@nb.njit(cache=True, nogil=True, inline="always")
def _room(a, used, need):  # pragma: no cover - compiled
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
                    rep_start = _room(rep_start, u, 1)
                    rep_end = _room(rep_end, u, 1)
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


@nb.njit(cache=True, nogil=True, inline="always")
def _cooccur(x_ptr, x_idx, g, row_ok, y_ptr, y_idx, acc, touched):  # pragma: no cover - compiled
    """Count into ``acc`` the features of column g's rows (with ``row_ok``): acc[f] = rows
    shared with feature f; the features touched, in order of first touch, go to
    ``touched``.  Returns how many were touched (acc is zero elsewhere)."""
    nt = 0
    for p in range(x_ptr[g], x_ptr[g + 1]):
        r = x_idx[p]
        if not row_ok[r]:
            continue
        for q in range(y_ptr[r], y_ptr[r + 1]):
            f = y_idx[q]
            if acc[f] == 0:
                touched[nt] = f
                nt += 1
            acc[f] += 1
    return nt


@nb.njit(cache=True, nogil=True)
def joint_counts(x_ptr, x_idx, cols, y_ptr, y_idx, F, row_ok, df_g, df_f, min_a, conc, cov, half, max_cover,
                 block):  # pragma: no cover - compiled
    """Co-occurrence counts a(g, f) = |rows(g) & rows(f)| for the instruction columns
    ``cols`` of X (CSC: x_ptr, x_idx, rows ascending) and every response feature of Y (CSR:
    y_ptr, y_idx, features ascending), over the rows with ``row_ok``, where a >= min_a,
    keeping only the entries a later step reads.  With ``conc`` < 0: every entry with
    a >= half * df_f[f].  Otherwise, with conc_ok = a / df_g >= conc and
    half_ok = a / df_f >= half:

    - candidates: conc_ok and a / df_f >= cov;
    - conc_ok and half_ok (they mark a payload as explained by a concentrated n-gram);
    - covers: half_ok but not conc_ok, only for the payloads with no such explained
      entry and 2..max_cover covers (the payloads the conjunction search reads; none
      when max_cover < 2).

    Entries come out in the order of the blocked scipy product they replace (by feature
    block of ``block`` features, then by position in ``cols``, then in reverse order of
    first touch, as scipy's csr_matmat gives), so the results stay identical; with
    ``block`` <= 0, by position in ``cols`` only (features unsorted).  One counting pass
    collects the entries in that order within each block (the covers provisionally,
    while their payload has at most max_cover); a stable counting sort by block then
    places them.  Returns (index into cols, f, a) as int32 arrays."""
    if block <= 0:  # one block; each column's entries sorted by feature instead
        block = F + 1
    acc = np.zeros(F, np.int32)
    touched = np.empty(F, np.int32)
    nb_ = (F + block - 1) // block
    has_conc = np.zeros(F, np.bool_)
    n_cover = np.zeros(F, np.int64)
    cap = 1 << 16
    buf_g = np.empty(cap, np.int32)
    buf_f = np.empty(cap, np.int32)
    buf_a = np.empty(cap, np.int32)
    buf_c = np.empty(cap, np.bool_)  # a provisional cover
    m = 0
    for j in range(cols.shape[0]):
        nt = _cooccur(x_ptr, x_idx, cols[j], row_ok, y_ptr, y_idx, acc, touched)
        for t in range(nt - 1, -1, -1):
            f = touched[t]
            a = acc[f]
            acc[f] = 0
            if a < min_a:
                continue
            half_ok = a / df_f[f] >= half
            is_cover = False
            if conc < 0:
                keep = half_ok
            else:
                conc_ok = a / df_g[j] >= conc
                if conc_ok:
                    keep = half_ok or a / df_f[f] >= cov
                    if half_ok:
                        has_conc[f] = True
                elif half_ok:
                    # (kept for now while f could still be a payload with <= max_cover
                    # covers; decided after the pass)
                    n_cover[f] += 1
                    keep = max_cover >= 2 and n_cover[f] <= max_cover
                    is_cover = True
                else:
                    keep = False
            if not keep:
                continue
            buf_g = _room(buf_g, m, 1)
            buf_f = _room(buf_f, m, 1)
            buf_a = _room(buf_a, m, 1)
            buf_c = _room(buf_c, m, 1)
            buf_g[m] = j
            buf_f[m] = f
            buf_a[m] = a
            buf_c[m] = is_cover
            m += 1
    n_prov = 0
    for k in range(m):
        n_prov += buf_c[k]
    if nb_ == 1 and n_prov == 0:  # already in order
        return buf_g[:m].copy(), buf_f[:m].copy(), buf_a[:m].copy()
    # the covers of the payloads the conjunction search reads; then by block, stably
    pos = np.zeros(nb_ + 1, np.int64)
    ok = np.zeros(m, np.bool_)
    for k in range(m):
        f = buf_f[k]
        ok[k] = (not buf_c[k]) or ((not has_conc[f]) and n_cover[f] >= 2 and n_cover[f] <= max_cover)
        if ok[k]:
            pos[f // block + 1] += 1
    for b in range(nb_):
        pos[b + 1] += pos[b]
    n = pos[nb_]
    out_g = np.empty(n, np.int32)
    out_f = np.empty(n, np.int32)
    out_a = np.empty(n, np.int32)
    for k in range(m):
        if ok[k]:
            b = buf_f[k] // block
            i = pos[b]
            out_g[i] = buf_g[k]
            out_f[i] = buf_f[k]
            out_a[i] = buf_a[k]
            pos[b] = i + 1
    return out_g, out_f, out_a


@nb.njit(cache=True, nogil=True)
def count_ids(indptr, indices, rows, acc, thr):  # pragma: no cover - compiled
    """The ids present in at least ``thr`` of ``rows`` (of a CSR row x id matrix, one entry
    per row and id), ascending, with their row counts (np.unique of the rows' entries,
    filtered).  ``acc`` is a zeroed int32 buffer of one slot per id, left zeroed."""
    nt = 0
    for r in rows:
        nt += indptr[r + 1] - indptr[r]
    touched = np.empty(nt, np.int64)
    k = 0
    for r in rows:
        for p in range(indptr[r], indptr[r + 1]):
            c = indices[p]
            if acc[c] == 0:
                touched[k] = c
                k += 1
            acc[c] += 1
    touched = np.sort(touched[:k])
    m = 0
    for t in range(k):
        if acc[touched[t]] >= thr:
            m += 1
    ids = np.empty(m, np.int64)
    cnt = np.empty(m, np.int64)
    m = 0
    for t in range(k):
        c = touched[t]
        if acc[c] >= thr:
            ids[m] = c
            cnt[m] = acc[c]
            m += 1
        acc[c] = 0
    return ids, cnt


@nb.njit(cache=True, nogil=True)
def _majority(vals, n):  # pragma: no cover - compiled
    """(most frequent value, its count) of vals[:n]; ties: the smallest value."""
    v = np.sort(vals[:n])
    best, best_c = v[0], 0
    i = 0
    while i < n:
        j = i
        while j < n and v[j] == v[i]:
            j += 1
        if j - i > best_c:
            best, best_c = v[i], j - i
        i = j
    return best, best_c


@nb.njit(cache=True, nogil=True)
def maximal_phrase(allc, off, rows, seq, max_extra):  # pragma: no cover - compiled
    """Token codes of the phrase around ``seq`` (extended left, then right, while the
    neighbouring token is the same in >= 90% of the rows' first occurrences of seq)."""
    o = seq.shape[0]
    n = rows.shape[0]
    occ_s = np.empty(n, np.int64)  # row start, occurrence start, row end
    occ_a = np.empty(n, np.int64)
    occ_e = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        r = rows[i]
        s0, e0 = off[r], off[r + 1]
        if e0 - s0 < o:
            continue
        for h in range(s0, e0 - o + 1):
            ok = True
            for t in range(o):
                if allc[h + t] != seq[t]:
                    ok = False
                    break
            if ok:
                occ_s[k] = s0
                occ_a[k] = h
                occ_e[k] = e0
                k += 1
                break
    left = np.empty(max_extra, np.int64)
    right = np.empty(max_extra, np.int64)
    nl = 0
    nr = 0
    if k > 0:
        need = 0.9 * k
        vals = np.empty(k, np.int64)
        for side in range(2):
            for step in range(1, max_extra + 1):
                m = 0
                for i in range(k):
                    j = occ_a[i] - step if side == 0 else occ_a[i] + o - 1 + step
                    if occ_s[i] <= j < occ_e[i]:
                        vals[m] = allc[j]
                        m += 1
                if m == 0:
                    break
                v, c = _majority(vals, m)
                if c < need:
                    break
                if side == 0:
                    left[nl] = v
                    nl += 1
                else:
                    right[nr] = v
                    nr += 1
    out = np.empty(nl + o + nr, np.int64)
    for i in range(nl):
        out[i] = left[nl - 1 - i]
    out[nl:nl + o] = seq
    out[nl + o:] = right[:nr]
    return out


@nb.njit(cache=True, nogil=True)
def pooled_overlap(mc_ptr, mc_idx, rows_ptr, rows, drop_ptr, drop, acc):  # pragma: no cover - compiled
    """For each group k of rows (rows[rows_ptr[k]:rows_ptr[k+1]]): with c(v) the number of
    its rows whose instruction holds content word v (rows of the binary CSR matrix
    mc_ptr/mc_idx), the words drop[drop_ptr[k]:drop_ptr[k+1]] left out, the sum over row
    pairs of shared words (sum c(c-1)/2) and of their union ((n-1) sum c - shared).
    ``acc`` is a zeroed int64 buffer of one slot per word, left zeroed."""
    K = rows_ptr.shape[0] - 1
    inter = np.zeros(K)
    union = np.zeros(K)
    touched = np.empty(acc.shape[0], np.int64)
    for k in range(K):
        nt = 0
        for i in range(rows_ptr[k], rows_ptr[k + 1]):
            r = rows[i]
            for p in range(mc_ptr[r], mc_ptr[r + 1]):
                v = mc_idx[p]
                if acc[v] == 0:
                    touched[nt] = v
                    nt += 1
                acc[v] += 1
        for i in range(drop_ptr[k], drop_ptr[k + 1]):
            acc[drop[i]] = 0
        size = 0
        sq = 0
        for t in range(nt):
            c = acc[touched[t]]
            size += c
            sq += c * c
            acc[touched[t]] = 0
        n = rows_ptr[k + 1] - rows_ptr[k]
        inter[k] = (sq - size) / 2.0
        union[k] = (n - 1) * float(size) - inter[k]
    return inter, union


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
                keys = _room(keys, u, 1)
                rep = _room(rep, u, 1)
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
                new_rep = _room(new_rep, nn, 1)
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
def pair_counts(x_ptr, x_idx, t1, t2, y_ptr, y_idx, fcol, N):  # pragma: no cover - compiled
    """For each k: n = |rows(t1[k]) & rows(t2[k])| (columns of X) and a = the part of those
    rows in feature fcol[k]'s rows (columns of Y)."""
    K = t1.shape[0]
    n = np.zeros(K, np.int64)
    a = np.zeros(K, np.int64)
    s1 = np.full(N, -1, np.int64)
    s2 = np.full(N, -1, np.int64)
    for k in range(K):
        for p in range(x_ptr[t1[k]], x_ptr[t1[k] + 1]):
            s1[x_idx[p]] = k
        for p in range(x_ptr[t2[k]], x_ptr[t2[k] + 1]):
            r = x_idx[p]
            if s1[r] == k:
                s2[r] = k
                n[k] += 1
        for p in range(y_ptr[fcol[k]], y_ptr[fcol[k] + 1]):
            if s2[y_idx[p]] == k:
                a[k] += 1
    return n, a


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
def join_csc(pa, ia, pb, ib):  # pragma: no cover - compiled
    """Two CSC matrices of the same columns over consecutive row ranges, as one (each
    column: a's rows, then b's)."""
    nc = pa.shape[0] - 1
    ptr = pa + pb
    out = np.empty(ptr[nc], np.int32)
    for j in range(nc):
        o = ptr[j]
        for p in range(pa[j], pa[j + 1]):
            out[o] = ia[p]
            o += 1
        for p in range(pb[j], pb[j + 1]):
            out[o] = ib[p]
            o += 1
    return ptr, out


@nb.njit(cache=True, nogil=True)
def companion_counts(c_ptr, c_idx, x_ptr, x_idx, y_ptr, y_idx, t, f, b, half, h2, N):  # pragma: no cover - compiled
    """The 2 x 2 counts of the conditional tests.  For each k, over the rows of companion
    b[k] (column of the CSC matrix C; only those with h2[r] where half[k]): their number,
    those in trigger column t[k] (of X), those in feature f[k] (of Y), those in both.
    Consecutive tests with the same trigger and companion share the first two counts."""
    K = t.shape[0]
    out = np.zeros((K, 4), np.int64)
    # r is in column t's rows iff sg[r] == t; in the current companion's rows iff sc[r] == g
    sg = np.full(N, -1, np.int64)
    sc = np.full(N, -1, np.int64)
    n = 0
    n1 = 0
    g = -1
    for k in range(K):
        tk = t[k]
        new_t = k == 0 or tk != t[k - 1]
        if new_t:
            for p in range(x_ptr[tk], x_ptr[tk + 1]):
                sg[x_idx[p]] = tk
        if new_t or b[k] != b[k - 1] or half[k] != half[k - 1]:
            g = k
            n = 0
            n1 = 0
            for p in range(c_ptr[b[k]], c_ptr[b[k] + 1]):
                r = c_idx[p]
                if half[k] and not h2[r]:
                    continue
                sc[r] = g
                n += 1
                if sg[r] == tk:
                    n1 += 1
        nf = 0
        a1 = 0
        fk = f[k]
        for p in range(y_ptr[fk], y_ptr[fk + 1]):
            r = y_idx[p]
            if sc[r] == g:
                nf += 1
                if sg[r] == tk:
                    a1 += 1
        out[k, 0] = n
        out[k, 1] = n1
        out[k, 2] = nf
        out[k, 3] = a1
    return out


@nb.njit(cache=True, nogil=True)
def pair_jaccard(mc_ptr, mc_idx, rows, excl, mark):  # pragma: no cover - compiled
    """Pairwise Jaccard similarities (float32, as scipy's float32 products give them) of
    the id sets of ``rows`` (row r: mc_idx[mc_ptr[r]:mc_ptr[r + 1]], distinct ids), the ids
    in ``excl`` left out; pairs i < j in row-major order, 0 where both sets are empty.
    Intersections come from an inverted index (each id's rows, as linked lists headed in
    ``mark``), so the cost is the pairs sharing an id, not all pairs times the set sizes.
    ``mark`` is an int64 buffer of one slot per id, all -1, and is left so."""
    n = rows.shape[0]
    for e in excl:
        mark[e] = -2
    tot = 0
    for i in range(n):
        tot += mc_ptr[rows[i] + 1] - mc_ptr[rows[i]]
    who = np.empty(tot, np.int64)  # the row (0..n-1) of each entry
    nxt = np.empty(tot, np.int64)  # the id's previous entry, -1 at the end
    words = np.empty(tot, np.int64)
    size = np.zeros(n, np.int64)
    m = 0
    nw = 0
    for i in range(n):
        r = rows[i]
        for p in range(mc_ptr[r], mc_ptr[r + 1]):
            c = mc_idx[p]
            h = mark[c]
            if h == -2:
                continue
            if h == -1:
                words[nw] = c
                nw += 1
            who[m] = i
            nxt[m] = h
            mark[c] = m
            m += 1
            size[i] += 1
    inter = np.zeros((n, n), np.int64)
    for t in range(nw):
        c = words[t]
        e = mark[c]
        while e >= 0:  # (rows in decreasing order along the list)
            f = nxt[e]
            while f >= 0:
                inter[who[f], who[e]] += 1
                f = nxt[f]
            e = nxt[e]
        mark[c] = -1
    for e in excl:
        mark[e] = -1
    out = np.empty(n * (n - 1) // 2, np.float32)
    k = 0
    for i in range(n):
        for j in range(i + 1, n):
            a = inter[i, j]
            u = size[i] + size[j] - a
            out[k] = np.float32(a) / np.float32(u) if u > 0 else np.float32(0.0)
            k += 1
    return out


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
def family_joint(x_ptr, x_idx, gsel, yr_ptr, yr_idx, yc_ptr, yc_idx, F, h1, h2, df1_f, conc,
                 N):  # pragma: no cover - compiled
    """The payload-family counts in one pass, keeping only the candidates that pass.  For
    each instruction column g = gsel[j] (X by columns): its family is every feature f
    with a1 >= 2 and a1 / df1_f[f] >= 0.5, a1 = |rows(g) & rows(f)| over the H1 rows
    (Y by rows: yr_ptr, yr_idx); over the H2 rows, u = rows carrying some family feature
    (Y by columns: yc_ptr, yc_idx), n = rows of g, x = rows of g carrying one.  Kept
    where n >= 3 and x >= conc * n.  Returns (j, u, n, x) of the kept, and their
    families as (indptr, features)."""
    J = gsel.shape[0]
    acc = np.zeros(F, np.int32)
    touched = np.empty(F, np.int32)
    fam = np.empty(F, np.int32)
    stamp = np.full(N, -1, np.int64)
    kj = np.empty(J, np.int64)
    ku = np.empty(J, np.int64)
    kn = np.empty(J, np.int64)
    kx = np.empty(J, np.int64)
    cap = 1 << 16
    fidx = np.empty(cap, np.int32)
    fptr = np.zeros(J + 1, np.int64)
    nk = 0
    m = 0
    for j in range(J):
        g = gsel[j]
        n = 0
        for p in range(x_ptr[g], x_ptr[g + 1]):
            n += h2[x_idx[p]]
        if n < 3:
            continue
        nt = _cooccur(x_ptr, x_idx, g, h1, yr_ptr, yr_idx, acc, touched)
        nf = 0
        for t in range(nt - 1, -1, -1):
            f = touched[t]
            a = acc[f]
            acc[f] = 0
            if a >= 2 and a / df1_f[f] >= 0.5:
                fam[nf] = f
                nf += 1
        u = 0
        for k in range(nf):
            f = fam[k]
            for q in range(yc_ptr[f], yc_ptr[f + 1]):
                r = yc_idx[q]
                if h2[r] and stamp[r] != j:
                    stamp[r] = j
                    u += 1
        x = 0
        for p in range(x_ptr[g], x_ptr[g + 1]):
            r = x_idx[p]
            if h2[r] and stamp[r] == j:
                x += 1
        if not x >= conc * n:
            continue
        kj[nk] = j
        ku[nk] = u
        kn[nk] = n
        kx[nk] = x
        fidx = _room(fidx, m, nf)
        fidx[m:m + nf] = fam[:nf]
        m += nf
        nk += 1
        fptr[nk] = m
    return kj[:nk].copy(), ku[:nk].copy(), kn[:nk].copy(), kx[:nk].copy(), fptr[:nk + 1].copy(), fidx[:m].copy()
