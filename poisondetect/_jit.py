"""The numba kernels behind :mod:`poisondetect.kernels` (module-level functions, so that
``cache=True`` can keep their machine code on disk between processes).  Importing this
module imports numba; :mod:`poisondetect.kernels` does so lazily."""
from __future__ import annotations

import numba as nb
import numpy as np



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

@nb.njit(cache=True, nogil=True)
def _grow(tab, bits):  # pragma: no cover - compiled
    """The open-addressing table (rows: key + 1, value) rehashed into twice the slots."""
    bits += 1
    cap = 1 << bits
    mask = cap - 1
    new = np.zeros((cap, 2), np.int64)
    for t in range(tab.shape[0]):
        k = tab[t, 0]
        if k != 0:
            s = np.int64((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits))
            while new[s, 0] != 0:
                s = (s + 1) & mask
            new[s, 0] = k
            new[s, 1] = tab[t, 1]
    return new, bits


@nb.njit(cache=True, nogil=True)
def ngram_index(icodes, ins_off, max_n, rcodes, res_off, rn, min_pt, V, min_support):  # pragma: no cover
    """Dense ids of every instruction 1..max_n-gram and every response feature (the
    rn-grams; the whole response when it is shorter, if >= min_pt tokens), in order of
    first appearance over [instruction order 1, 2, ..., response features] (what
    pandas.factorize of those exact ids in that order gives); the first occurrence of
    each; and the binary row x id matrices (CSR, unsorted within a row) of the ids whose
    occurrence count on that side is >= min_support, with the instruction document
    frequencies."""
    N = ins_off.shape[0] - 1
    bits = 16
    # open addressing, one 16-byte slot per id: (exact id + 1, dense id << 32 | count of
    # its instruction occurrences); 0: empty
    tab = np.zeros((1 << bits, 2), np.int64)
    rep_start = np.empty(4096, np.int64)
    rep_order = np.empty(4096, np.int8)
    rep_side = np.empty(4096, np.int8)
    # per id: occurrences in instructions, in responses, last row seen, rows (one cache
    # line per id: the passes below touch one row of it per occurrence)
    info = np.zeros((4096, 4), np.int32)
    U = 0
    nI = icodes.shape[0]
    nR = rcodes.shape[0]
    gid = np.empty((max_n, nI), np.int32)
    fid = np.full(nR, -1, np.int32)
    for side in range(2):
        codes = icodes if side == 0 else rcodes
        off = ins_off if side == 0 else res_off
        orders = max_n if side == 0 else rn
        offset = 0
        width = 1
        for n in range(1, orders + 1):
            if n > 1:
                offset += width
            width *= V
            for d in range(N):
                a = off[d]
                b = off[d + 1]
                if side == 1:
                    ln = b - a
                    if n < min_pt or not (n == rn or (ln < rn and n == ln)):
                        continue
                for st in range(a, b - n + 1):
                    key = codes[st]
                    for k in range(1, n):
                        key = key * V + codes[st + k]
                    key += offset + 1
                    mask = (1 << bits) - 1
                    s = np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits))
                    while tab[s, 0] != 0 and tab[s, 0] != key:
                        s = (s + 1) & mask
                    if tab[s, 0] == 0:
                        if U == rep_start.shape[0]:
                            rep_start = np.concatenate((rep_start, np.empty(U, np.int64)))
                            rep_order = np.concatenate((rep_order, np.empty(U, np.int8)))
                            rep_side = np.concatenate((rep_side, np.empty(U, np.int8)))
                            info = np.concatenate((info, np.zeros((U, 4), np.int32)))
                        rep_start[U] = st
                        rep_order[U] = n
                        rep_side[U] = side
                        tab[s, 0] = key
                        tab[s, 1] = np.int64(U) << 32
                        g = U
                        U += 1
                    else:
                        g = np.int32(tab[s, 1] >> 32)
                    if side == 0:
                        tab[s, 1] += 1
                        gid[n - 1, st] = g
                    else:
                        info[g, 1] += 1
                        fid[st] = g
                    if 2 * U > tab.shape[0]:
                        tab, bits = _grow(tab, bits)
    for t in range(tab.shape[0]):
        if tab[t, 0] != 0:
            info[np.int64(tab[t, 1] >> 32), 0] = np.int32(tab[t, 1] & 0xFFFFFFFF)
    # the binary row x id matrices of the frequent ids (one entry per row and id)
    info[:, 2] = -1
    x_ptr = np.zeros(N + 1, np.int64)
    x_idx = np.empty(max_n * nI, np.int32)
    m = 0
    for d in range(N):
        for n in range(max_n):
            for st in range(ins_off[d], ins_off[d + 1] - n):
                g = gid[n, st]
                if info[g, 2] != d and info[g, 0] >= min_support:
                    info[g, 2] = d
                    info[g, 3] += 1
                    x_idx[m] = g
                    m += 1
        x_ptr[d + 1] = m
    info[:, 2] = -1
    y_ptr = np.zeros(N + 1, np.int64)
    y_idx = np.empty(nR, np.int32)
    m2 = 0
    for d in range(N):
        for st in range(res_off[d], res_off[d + 1]):
            f = fid[st]
            if f >= 0 and info[f, 2] != d and info[f, 1] >= min_support:
                info[f, 2] = d
                y_idx[m2] = f
                m2 += 1
        y_ptr[d + 1] = m2
    df_g = info[:U, 3].astype(np.int64)
    return (U, rep_start[:U].copy(), rep_order[:U].copy(), rep_side[:U].copy(),
            x_ptr, x_idx[:m].copy(), df_g, y_ptr, y_idx[:m2].copy())


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
    ``block`` <= 0, by position in ``cols``, then by feature (a canonical CSR).  A counting
    pass first, then one writing pass in place (no growing or reordered buffers).
    Returns (index into cols, f, a) as int32 arrays."""
    by_row = block <= 0  # one block; each column's entries sorted by feature instead
    if by_row:
        block = F + 1
    acc = np.zeros(F, np.int32)
    touched = np.empty(F, np.int32)
    nb_ = (F + block - 1) // block
    pos = np.zeros(nb_ + 1, np.int64)
    has_conc = np.zeros(F, np.bool_)
    n_cover = np.zeros(F, np.int64)
    want = np.zeros(F, np.bool_)
    out_g = np.empty(0, np.int32)
    out_f = np.empty(0, np.int32)
    out_a = np.empty(0, np.int32)
    for rep in range(2):
        if rep == 1:
            if conc >= 0:
                for f in range(F):
                    want[f] = (not has_conc[f]) and n_cover[f] >= 2 and n_cover[f] <= max_cover
                    if want[f]:
                        pos[f // block + 1] += n_cover[f]
            for b in range(nb_):
                pos[b + 1] += pos[b]
            m = pos[nb_]
            out_g = np.empty(m, np.int32)
            out_f = np.empty(m, np.int32)
            out_a = np.empty(m, np.int32)
        start = pos[0]
        for j in range(cols.shape[0]):
            g = cols[j]
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
            for t in range(nt - 1, -1, -1):
                f = touched[t]
                a = acc[f]
                acc[f] = 0
                if a < min_a:
                    continue
                half_ok = a / df_f[f] >= half
                if conc < 0:
                    keep = half_ok
                else:
                    conc_ok = a / df_g[j] >= conc
                    if conc_ok:
                        keep = half_ok or a / df_f[f] >= cov
                        if half_ok and rep == 0:
                            has_conc[f] = True
                    elif half_ok:
                        if rep == 0:
                            n_cover[f] += 1
                            continue  # (counted per payload, placed after this pass)
                        keep = want[f]
                    else:
                        keep = False
                if not keep:
                    continue
                b = f // block
                if rep == 0:
                    pos[b + 1] += 1
                else:
                    k = pos[b]
                    out_g[k] = j
                    out_f[k] = f
                    out_a[k] = a
                    pos[b] = k + 1
            if by_row and rep == 1 and pos[0] - start > 1:
                o = np.argsort(out_f[start:pos[0]])
                out_f[start:pos[0]] = out_f[start:pos[0]][o]
                out_a[start:pos[0]] = out_a[start:pos[0]][o]
            start = pos[0]
    return out_g, out_f, out_a


@nb.njit(cache=True, nogil=True)
def family_counts(m_ptr, m_idx, yc_ptr, yc_idx, x_ptr, x_idx, gsel, row_ok, N):  # pragma: no cover - compiled
    """For each candidate j (instruction column gsel[j], payload family = features
    m_idx[m_ptr[j]:m_ptr[j+1]]), over the rows with ``row_ok``: u = rows carrying some
    family feature, n = rows of the n-gram, x = rows of the n-gram carrying some family
    feature.  Y by columns (yc_ptr, yc_idx), X by columns (x_ptr, x_idx)."""
    J = gsel.shape[0]
    u = np.zeros(J, np.int64)
    nB = np.zeros(J, np.int64)
    xB = np.zeros(J, np.int64)
    stamp = np.full(N, -1, np.int64)
    for j in range(J):
        for p in range(m_ptr[j], m_ptr[j + 1]):
            f = m_idx[p]
            for q in range(yc_ptr[f], yc_ptr[f + 1]):
                r = yc_idx[q]
                if row_ok[r] and stamp[r] != j:
                    stamp[r] = j
                    u[j] += 1
        g = gsel[j]
        for p in range(x_ptr[g], x_ptr[g + 1]):
            r = x_idx[p]
            if row_ok[r]:
                nB[j] += 1
                if stamp[r] == j:
                    xB[j] += 1
    return u, nB, xB


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
