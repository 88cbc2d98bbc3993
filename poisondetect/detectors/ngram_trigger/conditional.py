"""Conditional tests: a candidate with template companions is tested only among the rows
of its most specific companion."""
from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from ... import stats as S
from . import kernels as K
from .candidate import Candidate
from .workers import n_workers


class ConditionalMixin:
    """Companions of a trigger and the conditional 2x2 tests."""

    def _distinct_terms(self, terms: list[int]) -> list[int]:
        """Keep one n-gram per group of n-grams sharing tokens with the same row set."""
        kept: list[int] = []
        kept_tok: list[set[str]] = []
        kept_rows: list[np.ndarray] = []
        X = self.X
        for tcol in sorted(terms, key=lambda c: (self.df_g[c], -len(self.ngram_tokens(c)), c)):
            toks = set(self.ngram_tokens(tcol))
            rows = X.indices[X.indptr[tcol]:X.indptr[tcol + 1]]
            dup = False
            for kt, kr in zip(kept_tok, kept_rows):
                if toks & kt and (len(rows) == len(kr) and np.array_equal(rows, kr) or toks <= kt or kt <= toks):
                    dup = True
                    break
            if not dup:
                kept.append(tcol)
                kept_tok.append(toks)
                kept_rows.append(rows)
        return kept

    def _conditional_tests(self, live: list[Candidate]) -> None:
        """Set each live candidate's final p-value and companion (``c.p``,
        ``c.companion``) and its rows (``c.rows_g``, ``c.rows_f``).

        The Fisher test is conditional on the trigger's most specific companion (if any):
        within the companion's rows, does the trigger still predict the payload?  One test
        per (trigger row set, payload): candidates with the same rows (by size and a
        random-weight sum) and payload share the test of the first of them.  The companion
        of each trigger row set is found once, the 2 x 2 counts of every test are made at
        once (:meth:`_companion_2x2`) and the tails in one vectorised call: p = max(tail,
        the candidate's unconditional p), or 1 when the payload repeats the trigger and
        the tail is below 1e-3."""
        N = self.N
        w = self.rng("companion_weights").random(N)
        X, Y = self.X, self.Y
        sig: dict[tuple, Any] = {}
        heads: list[tuple[tuple, Candidate]] = []
        wsum: dict[int, float] = {}
        for c in live:
            terms = c.terms
            if len(terms) == 1:
                t = terms[0]
                rows_g = X.indices[X.indptr[t]:X.indptr[t + 1]]
                ws = wsum.get(t)
                if ws is None:
                    ws = wsum[t] = float(w[rows_g].sum())
                # (a conjunction keeps its own companion search: its terms are not companions)
                key = (len(rows_g), ws, c.f, None)
            else:
                rows_g = self._rows_of_terms(terms)
                key = (len(rows_g), float(w[rows_g].sum()), c.f, terms)
            c.rows_g = rows_g
            c.rows_f = Y.indices[Y.indptr[c.f]:Y.indptr[c.f + 1]]
            c.test_key = key
            if key not in sig:
                sig[key] = None
                heads.append((key, c))
        # the companion of each head (its rows are those of its terms: one search each)
        cache = self.__dict__.setdefault("_comp_cache", {})
        by_terms: dict[tuple[int, ...], tuple[int | None, str | None]] = {}
        todo: list[tuple[tuple, Candidate, int, str | None]] = []
        for key, c in heads:
            got = by_terms.get(c.terms)
            if got is None:
                ck = companion_key(c.terms, c.rows_g)
                if ck not in cache:
                    cache[ck] = self._companion(c.terms, c.rows_g)
                got = by_terms[c.terms] = cache[ck]
            best, name = got
            if best is not None and best < 0:  # the "trigger" is the whole prompt
                sig[key] = (1.0, name)
            elif best is None:
                sig[key] = ((1.0, "(payload repeats the trigger)") if self._payload_repeats_trigger(c)
                            else (c.p_unc, None))
            else:
                todo.append((key, c, int(best), name))
        pend = []
        for (key, c, _, name), (n, n1, nf, a1) in zip(todo, self._companion_2x2(todo)):
            if n1 == 0 or n == n1:  # the companion's rows all with, or all without, the trigger
                sig[key] = (1.0, name)
            else:
                pend.append((key, c, name, (a1, n, nf, n1)))
        # the conditional tails in one vectorised call (the same values as one by one)
        if pend:
            cnt = np.array([v[3] for v in pend], float)
            pc = S.hypergeom_upper_bound(cnt[:, 0], cnt[:, 1], cnt[:, 2], cnt[:, 3])
            for (key, c0, name, _), p in zip(pend, pc.tolist()):
                if p < 1e-3 and self._payload_repeats_trigger(c0):
                    sig[key] = (1.0, "(payload repeats the trigger)")
                else:
                    sig[key] = (max(p, c0.p_unc), name)
        for c in live:
            c.p, c.companion = sig[c.test_key]

    def _companion_2x2(self, todo: list[tuple[tuple, Candidate, int, str | None]]) -> list[list[int]]:
        """For each (key, candidate, companion id, name): over the companion's rows (only
        the H2 rows for a payload family, whose phrases were chosen on H1), [their number,
        those with the trigger, with the payload, with both]."""
        if not todo:
            return []
        if not self.fast:
            Xall = self._xall_csc()
            out = []
            for _, c, best, _ in todo:
                rows_c = Xall.indices[Xall.indptr[best]:Xall.indptr[best + 1]]
                if c.is_family:
                    rows_c = rows_c[self._h2[rows_c]]
                in_g = self._member(rows_c, c.rows_g)
                in_f = self._member(rows_c, c.rows_f)
                out.append([len(rows_c), int(in_g.sum()), int(in_f.sum()), int((in_g & in_f).sum())])
            return out
        # compiled: only the companions' columns of Xall, and the trigger row sets as a
        # small CSC matrix of their own (one column per distinct terms, in order)
        Xall = self.Xall
        ub, bj = np.unique(np.array([t[2] for t in todo], np.int64), return_inverse=True)
        colmap = np.full(Xall.shape[1], -1, np.int64)
        colmap[ub] = np.arange(len(ub))
        cp, ci = K.select_csc(Xall.indptr, Xall.indices, colmap, len(ub), threads=n_workers(self.det.n_jobs, self.N))
        del colmap
        col_of: dict[tuple[int, ...], int] = {}
        trows: list[np.ndarray] = []
        tcol = np.empty(len(todo), np.int64)
        for k, (_, c, _, _) in enumerate(todo):
            j = col_of.get(c.terms)
            if j is None:
                j = col_of[c.terms] = len(trows)
                trows.append(c.rows_g)
            tcol[k] = j
        tp = np.zeros(len(trows) + 1, np.int64)
        np.cumsum([len(r) for r in trows], out=tp[1:])
        ti = np.concatenate(trows).astype(np.int64)
        half = np.array([t[1].is_family for t in todo], bool)
        Y = self.Y
        return K.companion_counts(cp, ci, tp, ti, Y.indptr, Y.indices, tcol,
                                  np.array([t[1].f for t in todo], np.int64), bj, half,
                                  self._h2 if half.any() else np.zeros(1, bool), self.N).tolist()

    def _member(self, rows: np.ndarray, of: np.ndarray) -> np.ndarray:
        """``np.isin(rows, of)`` for row indices, through a reused boolean buffer (the
        conditional tests call it ~40,000 times on T0)."""
        buf = self.__dict__.get("_row_buf")
        if buf is None:
            buf = self.__dict__["_row_buf"] = np.zeros(self.N, bool)
        buf[of] = True
        out = buf[rows]
        buf[of] = False
        return out

    def _companion(self, terms: tuple[int, ...], rows_g: np.ndarray) -> tuple[int | None, str | None]:
        """The most specific n-gram (sharing no token with the trigger) present in at least
        ``companion_coverage`` of the trigger's rows: the rest of a template / passage /
        duplicated prompt."""
        det = self.det
        ng = len(rows_g)
        Xall = self.Xall
        thr = max(det.companion_coverage * ng, 2)
        if self.fast:
            acc = self.__dict__.get("_id_acc")
            if acc is None:
                acc = self.__dict__["_id_acc"] = np.zeros(Xall.shape[1], np.int32)
            comp, cnt = K.count_ids(Xall.indptr, Xall.indices, rows_g, acc, thr)
        else:
            idx = (np.concatenate([Xall.indices[Xall.indptr[r]:Xall.indptr[r + 1]] for r in rows_g]) if ng
                   else np.zeros(0, np.int64))
            if len(idx) == 0:
                return None, None
            comp, cnt = np.unique(idx, return_counts=True)
            sel = cnt >= thr
            comp, cnt = comp[sel], cnt[sel]
        if len(comp) == 0:
            return None, None
        own = set()
        lens = self.st["ins_len"][rows_g[:50]].tolist()
        med = statistics.median(lens) if lens else float("nan")
        for tcol in terms:
            own |= set(self.ngram_tokens(tcol))
            phrase = self.maximal_phrase(tcol, rows_g)
            if len(phrase) >= 0.8 * med:
                return -1, "(duplicated instruction)"  # the "trigger" is the whole prompt
            own |= set(phrase)
        spec = cnt / np.maximum(self._df_all()[comp], 1)
        # most specific first (stable); those below 0.05 are never read
        sel = np.flatnonzero(spec >= 0.05)
        order = sel[np.argsort(-spec[sel], kind="stable")]
        for k in order[:500]:
            uid = int(comp[k])
            toks = self._tokens_of_id(uid)
            if set(toks) & own:
                continue
            return uid, " ".join(toks)
        return None, None


def companion_key(terms: tuple[int, ...], rows_g: np.ndarray) -> bytes:
    """Cache key of :meth:`Analysis._companion` (the trigger's rows and terms)."""
    return rows_g.tobytes() + repr(terms).encode()
