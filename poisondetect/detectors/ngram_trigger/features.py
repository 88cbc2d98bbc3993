"""Features of the n-gram test: the instruction n-gram matrix X, the response-feature
matrix Y (response n-grams and exact responses, minus those copied from the prompt),
their document frequencies, and decoding ids back to tokens."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ...segment import needs_split
from . import kernels as K
from .matrices import binary_csr
from .tokenise import ngram_ids
from .workers import n_workers


class FeaturesMixin:
    """Builds X, Y and their frequencies (:meth:`build`); decodes ids."""

    def build(self) -> None:
        det, st, N = self.det, self.st, self.N
        t = self._time()
        if "words" in st:  # (the compiled tokeniser gives the codes themselves)
            icodes, rcodes, self.words = st["ins_codes"], st["res_codes"], st["words"]
            V = max(len(self.words), 2)
        else:
            ih, rh = st["ins_hash"], st["res_hash"]
            allh = np.concatenate([ih, rh]).view(np.int64)
            codes, uniq = pd.factorize(allh)
            V = max(len(uniq), 2)
            vocab = st["vocab"]
            self.words = [vocab[h] for h in uniq.view(np.uint64).tolist()]  # code -> token
            icodes, rcodes = codes[: len(ih)], codes[len(ih):]
        self.icodes = icodes
        self.ins_off = np.concatenate([[0], np.cumsum(st["ins_len"])])
        self.res_off = np.concatenate([[0], np.cumsum(st["res_len"])])
        self.rcodes = rcodes
        if V ** max(det.max_n, det.response_n) * 2 >= 2 ** 62:
            raise ValueError("vocabulary too large for exact n-gram ids")  # pragma: no cover (V > ~1.6e6)
        self.V = V
        t = self._tick("factorize_tokens", t)

        if self.fast:
            # one compiled pass: ids in the order pandas.factorize gives the reference
            # path's concatenation, first occurrences, frequent ids' row x id matrices
            (U, self.rep_start, self.rep_order, self.rep_side, xp, xi, df_g, yp, yi, self._rowset_sig) = K.ngram_index(
                np.ascontiguousarray(icodes, np.int64), self.ins_off.astype(np.int64), det.max_n,
                np.ascontiguousarray(rcodes, np.int64), self.res_off.astype(np.int64), det.response_n,
                det.min_payload_tokens, V, det.min_support, threads=n_workers(det.n_jobs, N), W=self._rowset_weights())
            Xall = sp.csr_matrix((np.ones(len(xi), np.float32), xi, xp), shape=(N, U))
            Yall = sp.csr_matrix((np.ones(len(yi), np.float32), yi, yp), shape=(N, U))
            del xi, xp, yi, yp
            t = self._tick("ngram_index", t)
        else:
            Xall, Yall, df_g, U = self._ngram_matrices(icodes, rcodes, V)
            t = self._tick("instruction_df", t)
        gmax = max(det.min_support, int(det.max_trigger_frac * N))
        fmax = max(det.min_support, int(det.max_payload_frac * N))
        gcols = np.flatnonzero((df_g >= det.min_support) & (df_g <= gmax))
        self.n_trigger_ngrams = len(gcols)
        x_job, pool = None, None
        if self.fast and n_workers(det.n_jobs, N) > 1:
            # the trigger side (X) in a thread while this one does the response side
            # (it reads Xall, df_g and rep_order only)
            from concurrent.futures import ThreadPoolExecutor
            pool = ThreadPoolExecutor(max_workers=1)
            x_job = pool.submit(self._trigger_matrix, Xall, gcols, df_g)
        try:
            Yall = self._drop_copied(Yall, icodes, st["ins_len"], V, U)
            df_f = np.asarray(Yall.sum(axis=0)).ravel()
            t = self._tick("response_df", t)
            fcols = np.flatnonzero((df_f >= det.min_support) & (df_f <= fmax))
            self._response_side(Yall, df_f, fcols, fmax)
            gcols, self.X = x_job.result() if x_job is not None else self._trigger_matrix(Xall, gcols, df_g)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        self.Xall = Xall
        self.gcols = gcols
        self.df_g = df_g[gcols].astype(np.int64)
        self.G, self.F = len(gcols), self.Y.shape[1]
        t = self._tick("matrices", t)

    def _trigger_matrix(self, Xall: sp.csr_matrix, gcols: np.ndarray, df_g: np.ndarray) -> tuple[np.ndarray, sp.csc_matrix]:
        """The tested instruction n-grams (one per row set) and their rows (CSC)."""
        N = self.N
        gcols = self._one_per_row_set(Xall, gcols, df_g)
        if self.fast:
            colmap = np.full(Xall.shape[1], -1, np.int64)
            colmap[gcols] = np.arange(len(gcols))
            xp, xi = K.select_csc(Xall.indptr, Xall.indices, colmap, len(gcols), threads=n_workers(self.det.n_jobs, N))
            X = sp.csc_matrix((np.ones(len(xi), np.float32), xi, xp), shape=(N, len(gcols)))
            X.has_canonical_format = True
            return gcols, X
        return gcols, Xall[:, gcols].tocsc()

    def _response_side(self, Yall: sp.csr_matrix, df_f: np.ndarray, fcols: np.ndarray, fmax: int) -> None:
        """The payload features: response n-grams ``fcols`` and exact responses (Y, their
        document frequencies and where each comes from)."""
        det, st, N = self.det, self.st, self.N
        # exact-response features (one per row), not counted when the prompt contains them
        ex = st["exact"].view(np.int64)
        ex_ok = (st["exact"] != 0) & (st["res_len"] >= det.min_payload_tokens) & ~st["exact_copied"] & ~self._short_copied(self.rcodes, st["res_len"])
        ex_codes, ex_uniq = pd.factorize(ex)
        ex_df = np.bincount(ex_codes[ex_ok], minlength=len(ex_uniq))
        ex_cols = np.flatnonzero((ex_df >= det.min_support) & (ex_df <= fmax))
        ex_map = np.full(len(ex_uniq), -1, np.int64)
        ex_map[ex_cols] = np.arange(len(ex_cols))
        rows_ex = np.flatnonzero(ex_ok & (ex_map[ex_codes] >= 0))
        Yex = sp.csr_matrix((np.ones(len(rows_ex), np.float32), (rows_ex, ex_map[ex_codes[rows_ex]])),
                            shape=(N, len(ex_cols)))
        Yent, ent_codes, ent_df = self._entity_features(fmax)
        self.Y = sp.hstack([Yall[:, fcols], Yex, Yent]).tocsc()
        self.f_ngram = np.concatenate([fcols, np.full(len(ex_cols), -1, np.int64), np.full(len(ent_codes), -3, np.int64)])
        first_row = np.full(len(ex_cols), -1, np.int64)
        ecol = ex_map[ex_codes[rows_ex]]
        first_row[ecol[::-1]] = rows_ex[::-1]
        self.f_exact_row = np.concatenate([np.full(len(fcols), -1, np.int64), first_row,
                                           np.full(len(ent_codes), -1, np.int64)])
        self.f_token = np.concatenate([np.full(len(fcols) + len(ex_cols), -1, np.int64), ent_codes])
        self.df_f = np.concatenate([df_f[fcols], ex_df[ex_cols], ent_df]).astype(np.int64)

    def _entity_features(self, fmax: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """Payload features of one token: a word of a script without spaces (>= 2
        characters) that no instruction of the data holds, e.g. a made-up name glued to
        its kind (``アホケカフェ``) woven into otherwise genuine, varied answers.  A
        segmenter keeps such a name one token, so it is in no shared response n-gram of
        ``min_payload_tokens`` tokens once the sentence around it varies.  (In spaced
        scripts a name is capitalised, which ``content_injection`` tests; no token of a
        spaced script is a feature here, so English results do not change.)

        Returns the rows x features matrix, each feature's token code and its document
        frequency (features in code order)."""
        det, N = self.det, self.N
        words = self.words
        V = len(words)
        none = sp.csr_matrix((N, 0), dtype=np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        cand = [i for i, w in enumerate(words) if not w.isascii() and len(w) >= 2 and needs_split(w)]
        if not cand:
            return none
        ok = np.zeros(V, bool)
        ok[cand] = True
        ok[self.icodes] = False  # asked about somewhere: not an injected name
        rc = np.asarray(self.rcodes, np.int64)
        at = np.flatnonzero(ok[rc])
        if not len(at):
            return none
        rows = np.searchsorted(self.res_off, at, side="right") - 1  # the response each token is in
        pair = np.unique(rows * V + rc[at])  # (row, code), once per row
        r, code = pair // V, pair % V
        df = np.bincount(code, minlength=V)
        keep_codes = np.flatnonzero((df >= det.min_support) & (df <= fmax))
        col = np.full(V, -1, np.int64)
        col[keep_codes] = np.arange(len(keep_codes))
        m = col[code] >= 0
        Y = sp.csr_matrix((np.ones(int(m.sum()), np.float32), (r[m], col[code[m]])), shape=(N, len(keep_codes)))
        return Y, keep_codes, df[keep_codes]

    def _ngram_matrices(self, icodes: np.ndarray, rcodes: np.ndarray, V: int) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, int]:
        """Reference path of :func:`.kernels` ``ngram_index`` (numpy/pandas):
        n-gram ids, first occurrences, the frequent ids' binary row x id matrices and the
        instruction document frequencies."""
        det, st, N = self.det, self.st, self.N
        # instruction n-grams
        gid_raw, gdoc, gstart, gord = ngram_ids(icodes, st["ins_len"], det.max_n, V)
        # response features: response_n-grams; whole response when shorter
        rn = det.response_n
        rlen = st["res_len"]
        fid_raw, fdoc, fstart, ford = ngram_ids(rcodes, rlen, rn, V)
        keep = ((ford == rn) | ((rlen[fdoc] < rn) & (ford == rlen[fdoc]))) & (ford >= det.min_payload_tokens)
        fid_raw, fdoc, fstart, ford = fid_raw[keep], fdoc[keep], fstart[keep], ford[keep]

        both = np.concatenate([gid_raw, fid_raw])
        n_g_occ = len(gid_raw)
        del gid_raw, fid_raw  # the big intermediates go as soon as they are used (peak RSS)
        ids, uniq_ng = pd.factorize(both)
        del both
        U = len(uniq_ng)
        del uniq_ng
        gids, fids = ids[:n_g_occ], ids[n_g_occ:]
        # representative occurrence of each id (for decoding)
        self.rep_start = np.full(U, -1, np.int64)
        self.rep_order = np.zeros(U, np.int8)
        self.rep_side = np.zeros(U, np.int8)
        self.rep_start[fids[::-1]] = fstart[::-1]
        self.rep_order[fids[::-1]] = ford[::-1]
        self.rep_side[fids] = 1
        self.rep_start[gids[::-1]] = gstart[::-1]
        self.rep_order[gids[::-1]] = gord[::-1]
        self.rep_side[gids] = 0
        del gstart, gord, fstart, ford

        # document frequencies; prune before building the big matrices
        tf_g = np.bincount(gids, minlength=U)
        pre = tf_g[gids] >= det.min_support
        Xall = binary_csr(gdoc[pre], gids[pre], (N, U))
        df_g = np.asarray(Xall.sum(axis=0)).ravel()

        # response features, minus those copied from the same row's instruction
        tf_f = np.bincount(fids, minlength=U)
        pre_f = tf_f[fids] >= det.min_support
        Yall = binary_csr(fdoc[pre_f], fids[pre_f], (N, U))
        del gdoc, gids, fdoc, fids, ids, pre, pre_f, tf_g, tf_f
        return Xall, Yall, df_g, U

    def _one_per_row_set(self, Xall: sp.csr_matrix, gcols: np.ndarray, df_g: np.ndarray) -> np.ndarray:
        """Keep one instruction n-gram per distinct row set: the longest (the whole phrase;
        ties: first id).  The pieces of a template or planted phrase occur in exactly the
        same rows, so they make the same test with every payload; testing them once
        shrinks the co-occurrence counts several-fold on templated data.  Row sets are
        compared by two random-weight sums (and the row count): the same rows give the
        same float sums (added in the same order), different rows differ but with
        probability ~0."""
        if len(gcols) == 0:
            return gcols
        if self.fast:  # (summed by ngram_index while it built Xall)
            sig = self._rowset_sig[gcols]
        else:
            sig = np.asarray(Xall.T @ self._rowset_weights())[gcols]  # (no column-sliced copy of the big matrix)
        key = pd.DataFrame({"a": sig[:, 0], "b": sig[:, 1], "n": df_g[gcols]})
        order = np.lexsort((gcols, -self.rep_order[gcols]))  # longest first
        keep = ~key.iloc[order].duplicated(keep="first").to_numpy()
        return np.sort(gcols[order[keep]])

    def _rowset_weights(self) -> np.ndarray:
        """Random row weights whose sums over an n-gram's rows sign its row set."""
        return self.rng("rowset_signature").random((self.N, 2))

    def _drop_copied(self, Y: sp.csr_matrix, icodes: np.ndarray, ins_len: np.ndarray, V: int, U: int) -> sp.csr_matrix:
        """Remove response-feature occurrences whose content tokens all occur in the same
        row's instruction (answers copied from the prompt: labels listed as options,
        concept words, names from a passage).  Function words (instruction document
        frequency above 5%) are ignored; a feature made only of them is dropped."""
        N = self.N
        if self.fast:
            tp, ti = K.token_presence(icodes, self.ins_off, V)
            Mtok = sp.csr_matrix((np.ones(len(ti), np.float32), ti, tp), shape=(N, V))
            Mtok.has_canonical_format = True
        else:
            idoc = np.repeat(np.arange(N, dtype=np.int64), ins_len)
            Mtok = binary_csr(idoc, icodes.astype(np.int64), (N, V))
        tok_df = np.bincount(Mtok.indices, minlength=V)
        keys = np.repeat(np.arange(N, dtype=np.int64), np.diff(Mtok.indptr)) * V + Mtok.indices
        function = tok_df > 0.05 * N
        self._Mtok = Mtok
        self._tok_keys, self._function = keys, function
        width = max(self.det.response_n, 1)
        if self.fast:
            keep = K.copied_features(Y.indptr, Y.indices, icodes, self.ins_off, self.rcodes, self.rep_start,
                                     self.rep_order, self.rep_side, function, V, width)
            kept_before = np.zeros(len(keep) + 1, np.int64)
            np.cumsum(keep, out=kept_before[1:])
            # (the entries kept, in their order: what the reference path's COO -> CSR gives)
            return sp.csr_matrix((Y.data[keep], Y.indices[keep], kept_before[Y.indptr]), shape=(N, U))
        Y = Y.tocoo()
        fid = Y.col.astype(np.int64)
        doc = Y.row.astype(np.int64)
        ufid, inv = np.unique(fid, return_inverse=True)
        # token codes of each feature (<= response_n tokens), -1 padded, function words -> -1
        tok = np.full((len(ufid), width), -1, np.int64)
        for j in range(width):
            has = self.rep_order[ufid] > j
            starts = self.rep_start[ufid] + j
            src_r = (self.rep_side[ufid] == 1) & has
            src_i = (self.rep_side[ufid] == 0) & has
            tok[src_r, j] = self.rcodes[starts[src_r]]
            tok[src_i, j] = icodes[starts[src_i]]
        tok[(tok >= 0) & function[np.maximum(tok, 0)]] = -1
        content = (tok >= 0).any(axis=1)
        copied = np.ones(len(fid), bool)
        for j in range(width):
            c = tok[inv, j]
            q = doc * V + np.maximum(c, 0)
            pos = np.searchsorted(keys, q)
            pos = np.minimum(pos, len(keys) - 1) if len(keys) else pos
            found = (keys[pos] == q) if len(keys) else np.zeros(len(q), bool)
            copied &= (c < 0) | found
        keep = ~copied & content[inv]
        out = sp.csr_matrix((Y.data[keep], (doc[keep], fid[keep])), shape=(N, U))
        return out

    def _short_copied(self, rcodes: np.ndarray, res_len: np.ndarray, max_len: int = 8) -> np.ndarray:
        """Rows whose (short) response has all its content tokens in its own instruction."""
        N, V = self.N, self.V
        keys, function = self._tok_keys, self._function
        short = (res_len > 0) & (res_len <= max_len)
        rows = np.flatnonzero(short)
        out = np.zeros(N, bool)
        if len(rows) == 0 or len(keys) == 0:
            return out
        lens = res_len[rows]
        starts = self.res_off[rows]
        idx = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(lens.sum())
        c = rcodes[idx].astype(np.int64)
        doc = np.repeat(rows, lens)
        q = doc * V + c
        pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
        ok = (keys[pos] == q) | function[c]
        seg = np.repeat(np.arange(len(rows)), lens)
        miss = np.bincount(seg, weights=~ok, minlength=len(rows))
        content = np.bincount(seg, weights=~function[c], minlength=len(rows))
        out[rows] = (miss == 0) & (content > 0)
        return out

    # -------------------------------------------------------------- decoding
    def ngram_tokens(self, col: int) -> tuple[str, ...]:
        """Tokens of instruction n-gram column ``col`` (of self.X) or full id."""
        uid = self.gcols[col]
        return self._tokens_of_id(uid)

    def _tokens_of_id(self, uid: int) -> tuple[str, ...]:
        s, o, side = int(self.rep_start[uid]), int(self.rep_order[uid]), int(self.rep_side[uid])
        codes = (self.icodes if side == 0 else self.rcodes)[s:s + o]
        words = self.words
        return tuple(words[c] for c in codes.tolist())

    def payload_tokens(self, fcol: int) -> tuple[tuple[str, ...], bool]:
        if self.f_ngram[fcol] == -2:  # a payload family: its most frequent phrase
            mem = self.f_family[fcol]
            if len(mem) == 0:
                return (), False
            return self.payload_tokens(int(mem[np.argmax(self.df_f[mem])]))[0], False
        if self.f_ngram[fcol] >= 0:
            return self._tokens_of_id(int(self.f_ngram[fcol])), False
        if self.f_ngram[fcol] == -3:  # one token (see _entity_features)
            return (self.words[int(self.f_token[fcol])],), False
        r = int(self.f_exact_row[fcol])
        codes = self.rcodes[self.res_off[r]:self.res_off[r + 1]]
        words = self.words
        return tuple(words[c] for c in codes.tolist()), True

    # -------------------------------------------------------------- testing
