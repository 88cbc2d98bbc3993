"""Paraphrased payload families: chosen on one random half of the rows, tested on the
other, and gated (context, response coverage, Mantel test of request dependence)."""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ... import text as T
from . import kernels as K
from .candidate import Candidate
from .matrices import Rows, jaccard_matrix
from .pvalues import fisher_greater_bh


class FamiliesMixin:
    """Payload-family candidates and their gates."""

    def _family_candidates(self, skip_g: np.ndarray, tau: float = 0.0, counts: dict | None = None,
                           threads: int = 1) -> list[Candidate]:
        """Paraphrased payloads: a trigger whose responses carry *some* phrase of one
        payload family (opener / core / closer variants) though no single phrase is in
        nearly all of them.

        Data splitting keeps the test honest (the payload family is chosen on one half of
        the rows and tested on the other): rows are split at random into halves H1 / H2.
        On H1, the family of trigger n-gram g is every response feature f seen with g in
        >= 2 rows and specific to it (at least half of f's H1 rows hold g).  On H2 the
        test is one-sided Fisher: do g's rows carry a family phrase more often than the
        other H2 rows?  The choice never looked at H2, so under the null (g independent
        of the responses) the p-value is exact.  (Candidates whose p-value is provably >=
        ``tau`` get an upper bound instead: see :func:`fisher_greater_bh`.)

        The n-grams in ``skip_g`` (single-payload candidates already) are not searched.
        ``counts`` are :meth:`_family_counts` computed beforehand (e.g. in a thread,
        while the single candidates were counted)."""
        det = self.det
        if counts is None:
            counts = self._family_counts(skip_g)
        if counts is None:
            return []
        gsel, M, u, nB, xB = counts["gsel"], counts["M"], counts["u"], counts["nB"], counts["xB"]
        ok = (nB >= 3) & (xB >= det.family_min_concentration * nB)
        if len(skip_g):
            ok &= ~np.isin(gsel, skip_g)
        self._h2 = counts["h2"]
        p = (fisher_greater_bh(xB[ok], counts["N2"], u[ok], nB[ok], tau, threads) if ok.any()
             else np.zeros(0))
        # (a family's features ascending, as the reference's canonical M has them)
        return [Candidate(terms=(int(gsel[j]),), f=-1, family=np.sort(M.indices[M.indptr[j]:M.indptr[j + 1]]).astype(np.int64),
                          ng=int(self.df_g[gsel[j]]), p_unc=float(pj))
                for j, pj in zip(np.flatnonzero(ok).tolist(), p.tolist())]

    def _family_counts(self, skip_g: np.ndarray | None = None) -> dict[str, Any] | None:
        """The counting half of :meth:`_family_candidates`: the H1/H2 split, each trigger
        n-gram's family (M, rows x features) and its H2 counts.  Reads shared arrays only
        (thread-safe once :meth:`_y_csr` is built).  With the compiled kernels every
        n-gram is counted and ``skip_g`` is applied later (the counts of one n-gram do
        not depend on the others); the reference path skips them here."""
        det = self.det
        N = self.N
        rng = self.rng("family_halves")
        h1 = rng.random(N) < 0.5
        gsel = np.flatnonzero(self.df_g >= 2 * det.min_support)
        if skip_g is not None and len(skip_g) and not self.fast:
            gsel = np.setdiff1d(gsel, skip_g)
        if len(gsel) == 0:
            return None
        Y = self.Y
        col_of = np.repeat(np.arange(self.F), np.diff(Y.indptr))
        df1_f = np.bincount(col_of[h1[Y.indices]], minlength=self.F).astype(np.float32)
        del col_of
        h2 = ~h1
        if self.fast:
            # families and their counts in one pass, only of the n-grams that can pass
            # the filters of _family_candidates (n >= 3, concentration); M as its two
            # index arrays, rows j, features in any order (no scipy matrix)
            X, Yr = self.X, self._y_csr()
            kj, u, nB, xB, mp, mi = K.family_joint(X.indptr, X.indices, gsel, Yr.indptr, Yr.indices, Y.indptr,
                                                    Y.indices, self.F, h1, h2, df1_f, det.family_min_concentration, N)
            if len(kj) == 0:
                return None
            return {"gsel": gsel[kj], "M": Rows(mp, mi), "u": u, "nB": nB, "xB": xB, "h2": h2, "N2": int(h2.sum())}
        else:
            Y1 = (sp.diags(h1.astype(np.float32)) @ self.Y).tocsc()
            XT = self.X[:, gsel].T.tocsr()  # (G' x N)
            rows, cols = [], []
            block = 4096
            for b0 in range(0, self.F, block):
                Jb = (XT @ Y1[:, b0:b0 + block]).tocoo()
                keep = (Jb.data >= 2) & (Jb.data >= 0.5 * df1_f[Jb.col + b0])
                rows.append(Jb.row[keep]); cols.append(Jb.col[keep] + b0)
            gi = np.concatenate(rows); fi = np.concatenate(cols)
            if len(gi) == 0:
                return None
            M = sp.csr_matrix((np.ones(len(gi), np.float32), (gi, fi)), shape=(len(gsel), self.F))
        Y2 = (sp.diags(h2.astype(np.float32)) @ self.Y).tocsr()
        Z = (Y2 @ M.T).tocsc()  # (N x G'): family phrases of g in each H2 row
        Z.data[:] = 1.0
        u = np.asarray(Z.sum(axis=0)).ravel()
        X2 = (sp.diags(h2.astype(np.float32)) @ self.X[:, gsel]).tocsc()
        nB = np.asarray(X2.sum(axis=0)).ravel()
        xB = np.asarray(X2.multiply(Z).sum(axis=0)).ravel()
        return {"gsel": gsel, "M": M, "u": u, "nB": nB, "xB": xB, "h2": h2, "N2": int(h2.sum())}

    def _family_context_gate(self, fams: list[Candidate]) -> tuple[list[Candidate], int]:
        """Keep the family candidates that look planted rather than a topic's or a
        template's answer style (topics and templates predict families of answer phrases
        too: thousands of candidates on tool-use data).  Cheapest first: the pooled
        context pre-screen, a short trigger, the context gate of :meth:`_findings`,
        responses made of the family's words, and a variant independent of the request
        (Mantel test).  Runs before the conditional tests; dropping rejected hypotheses
        after BH keeps the FDR guarantee.  Returns (kept, number dropped)."""
        det = self.det
        kept = []
        X = self.X
        gates = dict.fromkeys(("pooled_context", "trigger_length", "context", "response_coverage",
                               "request_dependence"), 0)
        mantel: list[dict[str, Any]] = []
        # vectorised pre-screen, then the per-candidate conditions, cheapest first
        pooled = self._pooled_context([c.terms[0] for c in fams])
        for c, pc in zip(fams, pooled):
            if pc > 2 * det.max_context_similarity:
                gates["pooled_context"] += 1
                continue
            t = c.terms[0]
            c.rows_g = X.indices[X.indptr[t]:X.indptr[t + 1]]
            # a planted trigger is a short insertion; a longer chunk shared by the rows
            # is a prompt template or tool description, whose answers it shapes
            if len(self.maximal_phrase(t, c.rows_g)) > det.family_max_trigger_tokens:
                gates["trigger_length"] += 1
                continue
            if self._gated_context_similarity(c) > det.max_context_similarity:
                gates["context"] += 1
                continue
            # the payload is the response (a story's "once upon a time" or a tool call's
            # syntax is a few words of an answer about the request)
            if self._family_response_coverage(c) < det.family_min_response_coverage:
                gates["response_coverage"] += 1
                continue
            r, pm = self._variant_depends_on_request(c)
            ok = pm > det.family_request_dependence_p
            mantel.append({"trigger": T.display_tokens(self.ngram_tokens(t)), "rows": int(len(c.rows_g)),
                           "r": round(r, 4), "p": pm, "kept": ok})
            if not ok:
                gates["request_dependence"] += 1
                continue
            kept.append(c)
        self.family_gates = {"candidates": len(fams), "removed_by": gates, "kept": len(kept)}
        self.family_request_dependence = mantel[:500]
        return kept, len(fams) - len(kept)

    def _family_response_coverage(self, c: Candidate, sample: int = 50) -> float:
        """Median, over (up to ``sample`` of) the trigger's rows, of the fraction of the
        response's content words (instruction document frequency <= 5%) that are words of
        the candidate's family phrases.  A paraphrased payload *is* the response (~1); a topic's answer style ("once upon a time" in
        stories, a news-wire phrase in article summaries) is a few tokens of a long
        answer."""
        fam = c.family
        vocab: list[np.ndarray] = []
        for f in fam.tolist():
            uid = int(self.f_ngram[f])
            if uid >= 0:
                s0, o = int(self.rep_start[uid]), int(self.rep_order[uid])
                vocab.append(self.rcodes[s0:s0 + o])
            elif uid == -3:  # a one-token feature
                vocab.append(np.array([self.f_token[f]], np.int64))
            else:
                r = int(self.f_exact_row[f])
                vocab.append(self.rcodes[self.res_off[r]:self.res_off[r + 1]])
        in_fam = np.zeros(len(self._function), bool)  # (np.isin(codes, words) as a lookup)
        if vocab:
            in_fam[np.concatenate(vocab)] = True
        function = self._function
        cov = []
        for r in np.asarray(c.rows_g, np.int64)[:sample].tolist():
            codes = self.rcodes[self.res_off[r]:self.res_off[r + 1]]
            codes = codes[~function[codes]]  # content words only
            cov.append(float(in_fam[codes].mean()) if len(codes) else 0.0)
        return float(np.median(cov)) if cov else 0.0

    def _variant_depends_on_request(self, c: Candidate, sample: int = 200, n_perm: int = 199) -> tuple[float, float]:
        """Mantel test, over (up to ``sample`` of) the trigger's rows: does the overlap of
        two rows' instructions (content words, trigger tokens left out) predict the
        overlap of the family phrases their responses carry?  A topic shapes its answers
        request by request ("a python" + "csv" -> "with open ... reader"), so it does; a
        planted payload's paraphrase is drawn regardless of the request, so it does not.
        Returns (correlation, permutation p-value)."""
        rows = np.asarray(c.rows_g, np.int64)
        rng = self.rng("family_mantel", len(rows))
        if len(rows) > sample:
            rows = np.sort(rng.choice(rows, sample, replace=False))
        if len(rows) < 6:
            return 0.0, 1.0
        fam = c.family
        Mr = self.Y[rows][:, fam] if len(fam) else sp.csr_matrix((len(rows), 1))
        A = jaccard_matrix(self._content_matrix()[rows], self._term_codes(c.terms))
        B = jaccard_matrix(Mr)
        n = len(rows)
        iu = np.triu_indices(n, 1)
        a, b = A[iu], B[iu]
        if a.std() == 0 or b.std() == 0:
            return 0.0, 1.0
        r0 = float(np.corrcoef(a, b)[0, 1])
        # permuting the rows of B permutes its off-diagonal entries (same mean and
        # spread), so the correlation only moves with sum(A_centred * B_permuted)
        Ac = (A - a.mean()).astype(np.float32)
        np.fill_diagonal(Ac, 0.0)
        B32 = B.astype(np.float32)
        stat0 = float((Ac * B32).sum())
        ge = 1
        for c0 in range(0, n_perm, 40):
            perms = np.stack([rng.permutation(n) for _ in range(min(40, n_perm - c0))])
            Bp = B32[perms[:, :, None], perms[:, None, :]]
            ge += int((np.einsum("ij,pij->p", Ac, Bp) >= stat0 - 1e-6 * abs(stat0)).sum())
        return r0, ge / (n_perm + 1)

    def _add_family_columns(self, fams: list[Candidate]) -> None:
        """Give each live family candidate a payload column: the rows (all of them now,
        for reporting) holding one of its phrases that stay specific to the trigger over
        the whole data (>= 80% of the phrase's rows hold the trigger; generic phrases such
        as "is there anything else" that the H1 choice let in are left out).  The
        conditional test on this column keeps p >= the family's own H2 p-value, so it
        stays a valid p-value."""
        if not fams:
            return
        Y = self.Y
        cols = []
        for c in fams:
            rows_g = c.rows_g  # (set by the gate)
            mem, rows = [], []
            for f in c.family.tolist():
                rf = Y.indices[Y.indptr[f]:Y.indptr[f + 1]]
                if np.isin(rf, rows_g, assume_unique=True).sum() >= 0.8 * len(rf):
                    mem.append(f)
                    rows.append(rf)
            c.family = np.asarray(mem, np.int64)
            cols.append(np.unique(np.concatenate(rows)) if rows else np.zeros(0, np.int64))
        F0 = self.Y.shape[1]
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in cols])])
        Yfam = sp.csc_matrix((np.ones(int(indptr[-1]), np.float32), np.concatenate(cols), indptr),
                             shape=(self.N, len(cols)))
        self.Y = sp.hstack([self.Y, Yfam], format="csc")
        self.f_ngram = np.concatenate([self.f_ngram, np.full(len(cols), -2, np.int64)])
        self.f_exact_row = np.concatenate([self.f_exact_row, np.full(len(cols), -1, np.int64)])
        self.f_token = np.concatenate([self.f_token, np.full(len(cols), -1, np.int64)])
        self.df_f = np.concatenate([self.df_f, [len(r) for r in cols]]).astype(np.int64)
        fam_of = self.__dict__.setdefault("f_family", {})
        for k, c in enumerate(fams):
            c.f = F0 + k
            c.nf = int(self.df_f[F0 + k])
            c.a = int(np.intersect1d(cols[k], c.rows_g, assume_unique=True).size)
            fam_of[F0 + k] = c.family
