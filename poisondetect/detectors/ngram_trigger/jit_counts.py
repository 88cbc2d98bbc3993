"""numba kernels of the n-gram tests (module-level, ``cache=True``): co-occurrence counts
(single candidates, payload families, pairs of terms), per-id row counts, the maximal
phrase around a trigger, pooled and pairwise overlap of requests, CSC joins and the 2x2
counts of the conditional tests.  Importing this module imports numba; :mod:`.kernels`
does so lazily."""
from __future__ import annotations

import numba as nb
import numpy as np

from .jit_index import room

__all__ = ['joint_counts', 'count_ids', 'maximal_phrase', 'pooled_overlap', 'pair_counts', 'join_csc', 'companion_counts', 'pair_jaccard', 'family_joint']


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
            buf_g = room(buf_g, m, 1)
            buf_f = room(buf_f, m, 1)
            buf_a = room(buf_a, m, 1)
            buf_c = room(buf_c, m, 1)
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
        fidx = room(fidx, m, nf)
        fidx[m:m + nf] = fam[:nf]
        m += nf
        nk += 1
        fptr[nk] = m
    return kj[:nk].copy(), ku[:nk].copy(), kn[:nk].copy(), kx[:nk].copy(), fptr[:nk + 1].copy(), fidx[:m].copy()
