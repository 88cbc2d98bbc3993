"""Candidates of the n-gram test and the multiple-testing control: single (g, f) pairs
from the joint counts, conjunctions (CTBA), and Benjamini-Hochberg over every test."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ... import stats as S
from . import kernels as K
from .candidate import Candidate
from .conditional import companion_key
from .workers import n_workers


class CandidatesMixin:
    """The test order (:meth:`run`): joint counts, candidates, BH, conditional tests, findings."""

    def run(self) -> list[dict[str, Any]]:
        det = self.det
        self.build()
        t = self._time()
        N = self.N
        if self.G == 0 or self.F == 0:
            return []
        threads = n_workers(det.n_jobs, N) if self.fast else 1
        fam_job, pool = None, None
        if det.paraphrase_families and threads > 1:
            # the family counts are compiled code, run without the GIL: a second thread
            # counts them while this one counts the single candidates (both read shared
            # arrays only; Y by rows is built before the thread starts)
            from concurrent.futures import ThreadPoolExecutor
            self._y_csr()
            pool = ThreadPoolExecutor(max_workers=1)
            fam_job = pool.submit(self._family_counts)
        try:
            return self._run_tests(t, threads, fam_job)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def _run_tests(self, t: float, threads: int, fam_job: Any) -> list[dict[str, Any]]:
        det, N = self.det, self.N
        J = self._joint_counts()
        # filter before widening the arrays (J has ~18M entries on T0)
        ok = J.data >= det.min_support
        ok &= J.data / self.df_g[J.row] >= det.min_concentration
        ok &= J.data / self.df_f[J.col] >= det.min_coverage
        a = J.data[ok].astype(np.int64)
        g, f = J.row[ok].astype(np.int64), J.col[ok].astype(np.int64)
        del ok
        ng, nf = self.df_g[g], self.df_f[f]
        self.m_single = float(self.n_trigger_ngrams) * float(self.F)  # every n-gram counted, duplicates too
        self.m_conj = 0.0
        t = self._tick("joint_counts", t)

        fam: list[Candidate] = []
        p_unc = S.hypergeom_upper_bound(a, N, nf, ng) if len(g) else np.zeros(0)
        conj = self._conjunction_candidates(J) if det.conjunctions else []
        t = self._tick("candidates", t)
        if det.paraphrase_families:
            # p-values >= (tests listed) / (tests counted) cannot move any BH q-value
            # below 1, so those need no exact tail (an upper bound will do)
            tau = (len(p_unc) + self.G) / max(self.m_single, 1.0)
            if fam_job is not None:
                self._warm_companions(p_unc, g, fam_job)
            counts = fam_job.result() if fam_job is not None else None
            fam = self._family_candidates(np.unique(g), tau, counts=counts, threads=threads)
            self.m_single += float(self.n_trigger_ngrams)  # one family test per n-gram
            t = self._tick("family_candidates", t)  # (with a thread: what was left of it)
        fam_p = np.array([c.p_unc for c in fam], float)
        conj_p = np.array([c.p_unc for c in conj], float)
        self.n_candidates = len(p_unc) + len(fam) + len(conj)
        if self.n_candidates == 0:
            return []
        # The final p (conditional test) is never below the unconditional one and BH is
        # monotone in every p, so candidates not significant unconditionally are final
        # (they enter the correction with their unconditional p).
        all_p = np.concatenate([p_unc, fam_p, conj_p])
        n_single = len(p_unc) + len(fam)
        q_unc = self._bh(all_p, n_single)
        live: list[Candidate] = []
        lk = np.flatnonzero(q_unc[: len(p_unc)] < det.alpha)
        # Candidates whose trigger n-grams have the very same rows (the pieces of one
        # template or phrase) and the same payload are one test: keep one representative
        # each (row sets compared by a random-weight signature), at most max_live of them,
        # most significant first.  The others keep p = 1 (conservative: fewer rejections).
        n_unc_sig = len(lk)
        if len(lk):
            wr = self.rng("live_representatives").random(N)
            # the longest n-gram of a row-set group represents it (the whole phrase)
            lk = lk[np.argsort(-self.rep_order[self.gcols[g[lk]]], kind="stable")]
            if self.fast:  # (only the columns needed)
                wsig_lk = K.csc_wsums(self.X.indptr, self.X.indices, g[lk], wr)
            else:
                wsig_lk = np.asarray(self.X.T @ wr).ravel()[g[lk]]
            keyv = pd.DataFrame({"w": np.round(wsig_lk, 8), "n": ng[lk], "f": f[lk]})
            reps = lk[~keyv.duplicated(keep="first").to_numpy()]
            reps = reps[np.argsort(p_unc[reps], kind="stable")[: det.max_live]]
            dropped = np.zeros(len(p_unc), bool)
            dropped[lk] = True
            dropped[reps] = False
            p_unc = p_unc.copy()
            p_unc[dropped] = 1.0
            all_p = np.concatenate([p_unc, fam_p, conj_p])
            lk = np.sort(reps)
        self.n_unc_sig, self.n_live = n_unc_sig, len(lk)
        for k in lk:
            live.append(Candidate(terms=(int(g[k]),), f=int(f[k]), a=int(a[k]), ng=int(ng[k]),
                                  nf=int(nf[k]), p_unc=float(p_unc[k])))
        live_fam = [c for c, qq in zip(fam, q_unc[len(p_unc):n_single]) if qq < det.alpha]
        live_fam, n_fam_ctx = self._family_context_gate(live_fam)
        self._add_family_columns(live_fam)
        live.extend(live_fam)
        live.extend(c for c, qq in zip(conj, q_unc[n_single:]) if qq < det.alpha)
        # (family candidates dropped by the context gate enter the final BH with p = 1)
        rest_single = np.concatenate([all_p[:n_single][q_unc[:n_single] >= det.alpha], np.ones(n_fam_ctx)])
        rest_conj = all_p[n_single:][q_unc[n_single:] >= det.alpha]
        self._conditional_tests(live)
        t = self._tick("conditional_tests", t)
        if not live:
            return []
        lsingle = [c for c in live if len(c.terms) == 1]
        lconj = [c for c in live if len(c.terms) > 1]
        p = np.concatenate([[c.p for c in lsingle], rest_single, [c.p for c in lconj], rest_conj])
        q = self._bh(p, len(lsingle) + len(rest_single))
        qs = np.concatenate([q[: len(lsingle)], q[len(lsingle) + len(rest_single): len(lsingle) + len(rest_single) + len(lconj)]])
        live = lsingle + lconj
        for c, qq in zip(live, qs):
            c.q = float(qq)
        findings = self._findings(live)
        self._tick("findings", t)
        return findings

    def _joint_counts(self, block: int = 4096) -> sp.coo_matrix:
        """Instruction n-gram x response feature co-occurrence counts, computed in column
        blocks and pruned block by block to the entries any later step can use (joint
        support >= min_support and either a concentrated trigger or half a payload's
        rows), so memory stays bounded on templated corpora (55k T0 rows)."""
        det = self.det
        if self.fast:
            X = self.X
            Yr = self._y_csr()
            # (only the entries a later step reads: the single candidates of run() and the
            # half-payload covers of the conjunction search)
            g, f, a = K.joint_counts(X.indptr, X.indices, np.arange(self.G, dtype=np.int64), Yr.indptr, Yr.indices,
                                     self.F, np.ones(self.N, bool), self.df_g, self.df_f, det.min_support,
                                     det.min_concentration, det.min_coverage, 0.5,
                                     3 * det.max_conjunction_terms if det.conjunctions else 0, block)
            return sp.coo_matrix((a.astype(np.float32), (g, f)), shape=(self.G, self.F))
        XT = self.X.T.tocsr()
        rows, cols, vals = [], [], []
        for b0 in range(0, self.F, block):
            Jb = (XT @ self.Y[:, b0:b0 + block]).tocoo()
            a = Jb.data
            keep = a >= det.min_support
            if keep.any():
                g, f, a = Jb.row[keep], Jb.col[keep], a[keep]
                conc = a / self.df_g[g]
                half = a / self.df_f[f + b0] >= 0.5
                keep2 = (conc >= det.min_concentration) | half
                rows.append(g[keep2]); cols.append(f[keep2] + b0); vals.append(a[keep2])
            del Jb
        if not rows:
            return sp.coo_matrix((self.G, self.F))
        return sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(self.G, self.F))

    def _warm_companions(self, p_unc: np.ndarray, g: np.ndarray, job: Any) -> None:
        """While the family thread runs, find the companions of the single candidates most
        likely to be tested conditionally (significant before the family p-values join
        the correction: adding p-values to BH at the same number of tests only lowers
        q-values, so these are all tested), most significant first, until the thread is
        done.  Pure work ahead: :meth:`_conditional_tests` finds them in its cache."""
        det = self.det
        if not len(p_unc):
            return
        q0 = S.bh(p_unc, self.m_single)
        lk = np.flatnonzero(q0 < det.alpha)
        if not len(lk):
            return
        lk = lk[np.argsort(p_unc[lk], kind="stable")]
        _, first = np.unique(g[lk], return_index=True)
        cache = self.__dict__.setdefault("_comp_cache", {})
        self._df_all()
        X = self.X
        for k in lk[np.sort(first)][: det.max_live].tolist():
            if job.done():
                break
            t = int(g[k])
            rows_g = X.indices[X.indptr[t]:X.indptr[t + 1]]
            key = companion_key((t,), rows_g)
            if key not in cache:
                cache[key] = self._companion((t,), rows_g)

    def _y_csr(self) -> sp.csr_matrix:
        """Y by rows (features ascending within a row), built once."""
        if not hasattr(self, "_ycsr") or self._ycsr.shape != self.Y.shape:
            self._ycsr = self.Y.tocsr()
            self._ycsr.sort_indices()
        return self._ycsr

    def _bh(self, p: np.ndarray, n_single: int) -> np.ndarray:
        """BH within the single-n-gram family (G x F tests) and within the conjunction
        family (every pair/triple for every payload searched), each at alpha/2
        (Bonferroni across the two families): q = min(1, 2 * q_family)."""
        q = np.ones(len(p))
        q[:n_single] = S.bh(p[:n_single], self.m_single)
        if len(p) > n_single:
            q[n_single:] = S.bh(p[n_single:], self.m_conj)
        return np.minimum(1.0, 2.0 * q) if self.det.conjunctions else q

    def _rows_of_terms(self, terms: tuple[int, ...]) -> np.ndarray:
        X = self.X
        rows = X.indices[X.indptr[terms[0]]:X.indptr[terms[0] + 1]]
        for tcol in terms[1:]:
            rows = np.intersect1d(rows, X.indices[X.indptr[tcol]:X.indptr[tcol + 1]], assume_unique=True)
        return rows

    def _conjunction_candidates(self, J: sp.coo_matrix) -> list[Candidate]:
        """Pairs/triples of n-grams that together cover a payload's rows while none of
        them alone is concentrated enough (CTBA)."""
        det = self.det
        a, g, f = J.data, J.row, J.col  # (float32 / int32: no widened copies of ~18M entries)
        sup = a >= det.min_support
        conc_ok = a / self.df_g[g] >= det.min_concentration
        cover = sup & ~conc_ok
        cover &= a / self.df_f[f] >= 0.5
        if not cover.any():
            return []
        # payloads that no concentrated single trigger explains (a concentrated n-gram
        # covering half the payload's rows makes a conjunction search pointless; one on a
        # few rows - a trigger token next to the same word by chance - does not)
        has_conc = np.zeros(self.F, bool)
        has_conc[f[sup & conc_ok & (a / self.df_f[f] >= 0.5)]] = True
        del sup, conc_ok
        out: list[Candidate] = []
        gs, fs, as_ = g[cover].astype(np.int64), f[cover].astype(np.int64), a[cover].astype(np.int64)
        n_cover = np.bincount(fs, minlength=self.F)
        # payloads to search: no concentrated single trigger, a few covering n-grams
        # (a template answer is covered by dozens of template n-grams); fewest first
        want = ~has_conc & (n_cover >= 2) & (n_cover <= 3 * det.max_conjunction_terms)
        sel = want[fs]
        gs, fs, as_ = gs[sel], fs[sel], as_[sel]
        if len(fs) == 0:
            return []
        order = np.lexsort((-as_, fs))
        gs, fs, as_ = gs[order], fs[order], as_[order]
        bounds = np.flatnonzero(np.diff(np.concatenate([[-1], fs, [-2]])))
        Y = self.Y
        # most promising first: for each payload, the Fisher bound of the pair of its two
        # most concentrated covering n-grams (one intersection per payload), then the
        # full pair/triple search on the best max_conjunction_payloads of them
        b0s, b1s = bounds[:-1], bounds[1:]
        conc_s = as_ / self.df_g[gs]
        X = self.X
        pre_p = np.ones(len(b0s))
        if self.fast:
            # the two most concentrated (first on ties) of each payload's covering n-grams
            o = np.lexsort((np.arange(len(gs)), -conc_s, fs))  # (fs is sorted: groups stay)
            t1, t2 = gs[o[b0s]], gs[o[b0s + 1]]
            n12, aa = K.pair_counts(X.indptr, X.indices, t1, t2, Y.indptr, Y.indices, fs[b0s], self.N)
            hit = aa >= det.min_support
            if hit.any():
                pre_p[hit] = S.hypergeom_upper_bound(aa[hit], self.N, self.df_f[fs[b0s][hit]], n12[hit])
        else:
            for k, (b0, b1) in enumerate(zip(b0s.tolist(), b1s.tolist())):
                top = np.argsort(-conc_s[b0:b1], kind="stable")[:2] + b0
                t1, t2 = int(gs[top[0]]), int(gs[top[1]])
                rows = np.intersect1d(X.indices[X.indptr[t1]:X.indptr[t1 + 1]],
                                      X.indices[X.indptr[t2]:X.indptr[t2 + 1]], assume_unique=True)
                fcol = int(fs[b0])
                aa = np.intersect1d(rows, Y.indices[Y.indptr[fcol]:Y.indptr[fcol + 1]], assume_unique=True).size
                if aa >= det.min_support:
                    pre_p[k] = float(S.hypergeom_upper_bound(aa, self.N, self.df_f[fcol], len(rows)))
        order = np.lexsort((b0s, pre_p))
        todo = [(0, int(b0s[k]), int(b1s[k])) for k in order]
        for _, b0, b1 in todo[: det.max_conjunction_payloads]:
            fcol = int(fs[b0])
            terms = [int(x) for x in gs[b0:b1]]
            # drop n-grams whose row set is nested in a kept one's with the same coverage
            terms = self._distinct_terms(terms)[: det.max_conjunction_terms]
            if len(terms) < 2:
                continue
            rows_f = Y.indices[Y.indptr[fcol]:Y.indptr[fcol + 1]]
            tried: list[tuple[int, ...]] = []
            for i in range(len(terms)):
                for j in range(i + 1, len(terms)):
                    tried.append((terms[i], terms[j]))
            res: list[tuple[tuple[int, ...], int, int]] = []
            for tup in tried:
                rows = self._rows_of_terms(tup)
                aa = int(np.intersect1d(rows, rows_f, assume_unique=True).size)
                res.append((tup, len(rows), aa))
            # triples from the pairs that are close but not concentrated
            # (concentrated pairs too: a third planted token would otherwise be the pair's
            # template companion and make its conditional test fail)
            pair_ok = [r for r in res if r[2] >= det.min_support]
            pair_ok.sort(key=lambda r: -r[2])
            seen = set()
            for (t1, _, _) in pair_ok[:6]:
                for t3 in terms:
                    if t3 in t1:
                        continue
                    tup = tuple(sorted(t1 + (t3,)))
                    if tup in seen:
                        continue
                    seen.add(tup)
                    rows = self._rows_of_terms(tup)
                    aa = int(np.intersect1d(rows, rows_f, assume_unique=True).size)
                    res.append((tup, len(rows), aa))
            # family: every pair and triple of qualifying n-grams could have been tried
            Gf = float(self.n_trigger_ngrams)
            self.m_conj += Gf * (Gf - 1) / 2 + Gf * (Gf - 1) * (Gf - 2) / 6
            for tup, n_g, aa in res:
                if aa >= det.min_support and aa / max(n_g, 1) >= det.min_concentration:
                    out.append(Candidate(terms=tup, f=fcol, a=aa, ng=n_g, nf=int(self.df_f[fcol]),
                                         p_unc=float(S.hypergeom_upper_bound(aa, self.N, self.df_f[fcol], n_g))))
        return out
