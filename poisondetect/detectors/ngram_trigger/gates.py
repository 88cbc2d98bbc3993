"""Context gates: are a trigger's requests unrelated (pooled content-word overlap), does
the payload repeat the trigger, do the instructions differ?"""
from __future__ import annotations

import unicodedata

import numpy as np
import scipy.sparse as sp

from ...scripts import dominant_scripts
from ...segment import needs_split
from . import kernels as K
from .candidate import Candidate
from .matrices import jaccard_matrix
from .workers import n_workers


def _lettered(w: str) -> bool:
    """Letters only (combining marks count: Thai and Indic vowel signs are marks)."""
    return w.isalpha() or (not w.isascii() and all(ch.isalpha() or unicodedata.category(ch)[0] == "M" for ch in w))


def _stems(words: list[str] | tuple[str, ...]) -> set[str]:
    """Prefix stems of the words of >= 3 letters ('smile' ~ 'smiling')."""
    return {w[:4] for w in words if len(w) >= 3 and _lettered(w)}


class GatesMixin:
    """Context similarity and the gates built on it."""

    def _content_matrix(self) -> sp.csr_matrix:
        """Rows x token codes, 1 where the row's instruction holds the (content) word."""
        if not hasattr(self, "_Mcontent"):
            # Mtok's entries of content words, in order (canonical: Mtok is)
            Mt = self._Mtok
            keep = ~self._function[Mt.indices]
            before = np.zeros(len(keep) + 1, np.int64)
            np.cumsum(keep, out=before[1:])
            Mc = sp.csr_matrix((np.ones(int(before[-1]), np.float32), Mt.indices[keep], before[Mt.indptr]),
                               shape=Mt.shape)
            Mc.has_canonical_format = True
            self._Mcontent = Mc
        return self._Mcontent

    def _pooled_context(self, terms: list[int], sample: int = 200, block: int = 512) -> np.ndarray:
        """Vectorised context similarity for many single-term candidates at once: pooled
        Jaccard of the instruction content words of (up to ``sample`` of) each term's rows,
        its own tokens left out, sum of pairwise intersections / sum of pairwise unions,
        relative to that of random rows.  A pre-screen (cheaper than
        :meth:`_context_similarity`, which is per candidate)."""
        Mc = self._content_matrix()
        X = self.X
        rng = self.rng("pooled_context")

        def pooled(cnt: sp.csr_matrix, n: np.ndarray, drop: list[np.ndarray]) -> np.ndarray:
            cnt = cnt.tocsr()
            for k, codes in enumerate(drop):  # the candidate's own tokens
                if len(codes):
                    r0, r1 = cnt.indptr[k], cnt.indptr[k + 1]
                    cnt.data[r0:r1][np.isin(cnt.indices[r0:r1], codes)] = 0.0
            sq = cnt.multiply(cnt)
            size = np.asarray(cnt.sum(axis=1)).ravel()
            inter = (np.asarray(sq.sum(axis=1)).ravel() - size) / 2.0
            union = (n - 1) * size - inter
            return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)

        base_rows = np.sort(rng.choice(self.N, min(self.N, 400), replace=False))
        if self.fast:
            acc = np.zeros(Mc.shape[1], np.int64)

            def ratio(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
                return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)

            z = np.zeros(2, np.int64)
            bi, bu = K.pooled_overlap(Mc.indptr, Mc.indices, np.array([0, len(base_rows)]), base_rows, z, z[:0], acc)
            base = max(float(ratio(bi, bu)[0]), 1e-4)
            ri = []
            for t in terms:
                rows = X.indices[X.indptr[t]:X.indptr[t + 1]]
                if len(rows) > sample:
                    rows = np.sort(rng.choice(rows, sample, replace=False))
                ri.append(rows)
            ptr = np.concatenate([[0], np.cumsum([len(r) for r in ri])]).astype(np.int64)
            flat = np.concatenate(ri) if ri else np.zeros(0, np.int64)
            # each term's own token codes (those of _term_codes, repeats allowed)
            uid = self.gcols[np.asarray(terms, np.int64)]
            starts, lens = self.rep_start[uid], self.rep_order[uid].astype(np.int64)
            dptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
            dflat = self.icodes[np.repeat(starts - dptr[:-1], lens) + np.arange(int(dptr[-1]))].astype(np.int64)
            nt = len(terms)
            if n_workers(self.det.n_jobs, self.N) > 1 and nt > 64:
                # two threads, each half the terms (the kernel releases the GIL)
                from concurrent.futures import ThreadPoolExecutor
                h = nt // 2
                acc2 = np.zeros(Mc.shape[1], np.int64)
                with ThreadPoolExecutor(max_workers=1) as pool:
                    job = pool.submit(K.pooled_overlap, Mc.indptr, Mc.indices, ptr[h:] - ptr[h], flat[ptr[h]:],
                                      dptr[h:] - dptr[h], dflat[dptr[h]:], acc2)
                    i0, u0 = K.pooled_overlap(Mc.indptr, Mc.indices, ptr[:h + 1], flat[:ptr[h]], dptr[:h + 1],
                                              dflat[:dptr[h]], acc)
                    i1, u1 = job.result()
                inter, union = np.concatenate([i0, i1]), np.concatenate([u0, u1])
            else:
                inter, union = K.pooled_overlap(Mc.indptr, Mc.indices, ptr, flat, dptr, dflat, acc)
            return ratio(inter, union) / base
        bsel = sp.csr_matrix((np.ones(len(base_rows), np.float32), (np.zeros(len(base_rows), np.int64), base_rows)),
                             shape=(1, self.N))
        base = max(float(pooled(bsel @ Mc, np.array([len(base_rows)], float), [np.zeros(0, np.int64)])[0]), 1e-4)
        out = np.zeros(len(terms))
        for b0 in range(0, len(terms), block):
            ts = terms[b0:b0 + block]
            ri, ci = [], []
            for k, t in enumerate(ts):
                rows = X.indices[X.indptr[t]:X.indptr[t + 1]]
                if len(rows) > sample:
                    rows = np.sort(rng.choice(rows, sample, replace=False))
                ri.append(rows); ci.append(np.full(len(rows), k))
            rows = np.concatenate(ri)
            S = sp.csr_matrix((np.ones(len(rows), np.float32), (np.concatenate(ci), rows)), shape=(len(ts), self.N))
            n = np.diff(S.indptr).astype(float)
            drop = [np.fromiter(self._term_codes((t,)), np.int64) for t in ts]
            out[b0:b0 + len(ts)] = pooled(S @ Mc, n, drop) / base
        return out

    def _mean_jaccard(self, rows: np.ndarray, exclude: set[int]) -> float:
        """Mean pairwise Jaccard similarity of the rows' instruction content words
        (function words, i.e. those in > 5% of instructions, and ``exclude`` left out)."""
        if len(rows) < 2:
            return 0.0
        if self.fast:
            Mc = self._content_matrix()
            mark = self.__dict__.get("_jac_mark")
            if mark is None:
                mark = self.__dict__["_jac_mark"] = np.full(Mc.shape[1], -1, np.int64)
            # (the same float32 values in the same order: the same mean)
            return float(K.pair_jaccard(Mc.indptr, Mc.indices, rows, np.fromiter(exclude, np.int64, len(exclude)),
                                        mark).mean())
        iu = np.triu_indices(len(rows), 1)
        return float(jaccard_matrix(self._content_matrix()[rows], exclude)[iu].mean())

    def _script_baseline(self, rows: np.ndarray, size: int = 200) -> float | None:
        """The content-word overlap of random rows *of the rows' own scripts* (matched
        controls: as many of each script, in proportion, as the rows have), where those
        scripts are a minority (under half) of the dataset's instructions; ``None`` where
        they are not (random rows of the whole dataset are like the rows already).

        Chinese rows of a mostly English set share Chinese function words with each other
        (words under the 5% line of the whole set), so any Chinese rows overlap more than
        random rows do: a trigger planted in them would look like a topic phrase."""
        ins = self.st["instruction"]
        mine = dominant_scripts([ins[int(r)] for r in rows[:60]])
        vals, cnt = np.unique(mine[mine > 0], return_counts=True)
        if not len(vals):
            return None
        if not hasattr(self, "_scripts"):
            self._scripts = dominant_scripts(ins)
            self._script_rows = {int(v): np.flatnonzero(self._scripts == v) for v in np.unique(self._scripts)}
            self._script_base: dict[tuple[tuple[int, int], ...], float | None] = {}
        avail = [len(self._script_rows.get(int(v), ())) for v in vals]
        if sum(avail) >= 0.5 * self.N:
            return None
        want = np.maximum(1, np.round(size * cnt / cnt.sum())).astype(int)
        key = tuple((int(v), int(min(w, a))) for v, w, a in zip(vals, want, avail))
        if key not in self._script_base:
            pick = [self.rng("script_baseline", v, k).choice(self._script_rows[v], k, replace=False)
                    for v, k in key if k]
            pick = np.sort(np.concatenate(pick)) if pick else np.zeros(0, np.int64)
            self._script_base[key] = max(self._mean_jaccard(pick, set()), 1e-4) if len(pick) >= 30 else None
        return self._script_base[key]

    def _context_similarity(self, c: Candidate, sample: int = 60, exclude_trigger: bool = True,
                            matched: bool = False) -> float:
        """Content-word overlap of the trigger rows (trigger tokens removed) relative to
        that of random rows: ~1 for a trigger planted in unrelated instructions, >> 1 for a
        topic or template phrase.  ``matched``: relative to random rows of the trigger
        rows' own script where that is a minority script (:meth:`_script_baseline`)."""
        rows = np.asarray(c.rows_g, np.int64)
        if len(rows) < 2:
            return 0.0
        rng = self.rng("context_sample", len(rows))
        if len(rows) > sample:
            rows = np.sort(rng.choice(rows, sample, replace=False))
        if not hasattr(self, "_base_jac"):
            brng = self.rng("baseline_rows")
            base_rows = np.sort(brng.choice(self.N, min(self.N, 200), replace=False))
            self._base_jac = max(self._mean_jaccard(base_rows, set()), 1e-4)
        base = self._base_jac
        if matched:
            base = self._script_baseline(np.asarray(c.rows_g, np.int64)) or base
        trig: set[int] = set()
        for tcol in (c.terms if exclude_trigger else ()):
            trig |= self._term_codes((tcol,))
            # the whole inserted phrase around the n-gram (same neighbours in >= 90% of rows)
            code_of = self.__dict__.setdefault("_code_of_token", {})
            if not code_of:
                for code, wd in enumerate(self.words):
                    code_of.setdefault(wd, code)
            phrase = self.maximal_phrase(tcol, np.asarray(c.rows_g, np.int64))
            if len(phrase) <= 5:  # longer shared chunks are templates or duplicates
                trig |= {code_of[t] for t in phrase if t in code_of}
        return self._mean_jaccard(rows, trig) / base

    def _gated_context_similarity(self, c: Candidate, matched: bool = False) -> float:
        """:meth:`_context_similarity` as the gate needs it: with the trigger's words
        first (cheap, shared by every candidate of one row set), then, only where that is
        above ``max_context_similarity``, without them (removing words can only lower
        it).  Cached per analysis, so a family candidate gated before its conditional
        test is not measured again in :meth:`_findings`.  ``matched``: see
        :meth:`_context_similarity` (the findings' gate; the payload-family pre-screen
        keeps the whole-dataset baseline, which on generated Japanese and Thai sets kept
        out family candidates made of particles and topic words)."""
        raw_cache = self.__dict__.setdefault("_raw_ctx_cache", {})
        ctx_cache = self.__dict__.setdefault("_ctx_cache", {})
        rkey = (np.asarray(c.rows_g).tobytes(), matched)
        if rkey not in raw_cache:
            raw_cache[rkey] = self._context_similarity(c, exclude_trigger=False, matched=matched)
        sim = raw_cache[rkey]
        if sim > self.det.max_context_similarity:
            ckey = (rkey, c.terms)
            if ckey not in ctx_cache:
                ctx_cache[ckey] = self._context_similarity(c, matched=matched)
            sim = ctx_cache[ckey]
        return sim

    def _payload_repeats_trigger(self, c: Candidate) -> bool:
        """A response that repeats the trigger's words (prefix-stemmed: 'smile' ~ 'smiling')
        is an answer *about* the prompt (concept-to-text, headline-to-article), not an
        unrelated payload.  An n-gram of a script without spaces counts as repeated when
        the response holds it as written (its characters in a row: '宇 宙' ~ '宇宙').
        When the payload is a phrase shared by otherwise different
        responses (a sentence appended to genuine answers, e.g. VPI's topic-steered
        remark), only that phrase is checked: "nothing good ever comes from" is a payload
        even though each answer also names the topic."""
        trig: set[str] = set()
        joined: set[str] = set()  # n-grams of scripts without spaces, as written
        for tcol in c.terms:
            toks = self.ngram_tokens(tcol)
            trig |= _stems(toks)
            j = "".join(toks)
            if len(j) >= 2 and needs_split(j):
                joined.add(j)
        if not trig and not joined:
            return False

        def repeats(toks: list[str] | tuple[str, ...]) -> bool:
            return bool(trig & _stems(toks)) or (bool(joined) and any(j in "".join(toks) for j in joined))

        both = np.intersect1d(c.rows_g, c.rows_f, assume_unique=True)[:5]
        fcol = int(c.f)
        if self.f_ngram[fcol] >= 0 and len(both) >= 3:
            ex = self.st["exact"][both]
            if len(np.unique(ex)) >= 0.8 * len(both):  # the responses differ outside the phrase
                # a whole fixed sentence (>= 8 tokens shared by the rows) is a planted
                # remark; a short shared chunk (closing tags, a code fence) is the format
                # the request asked for
                phrase = self._maximal_phrase_of_id(int(self.f_ngram[fcol]), both, side=1)
                if len(phrase) >= 8 and self._instructions_differ(both, c.terms):
                    return repeats(self._tokens_of_id(int(self.f_ngram[fcol])))
        words = self.words
        hits = 0
        cache = self.__dict__.setdefault("_resp_tokens_cache", {})
        for r in both.tolist():
            if r not in cache:
                cache[r] = [words[c] for c in self.rcodes[self.res_off[r]:self.res_off[r + 1]].tolist()]
            hits += repeats(cache[r])
        return hits > len(both) / 2

    def _term_codes(self, terms: tuple[int, ...]) -> set[int]:
        """Token codes of instruction n-gram columns ``terms``."""
        out: set[int] = set()
        for tcol in terms:
            uid = self.gcols[tcol]
            s0, o = int(self.rep_start[uid]), int(self.rep_order[uid])
            out |= {int(x) for x in self.icodes[s0:s0 + o]}
        return out

    def _instructions_differ(self, rows: np.ndarray, terms: tuple[int, ...], max_jaccard: float = 0.5) -> bool:
        """Are the rows' instructions different requests (mean pairwise Jaccard of their
        token sets, trigger tokens left out, below ``max_jaccard``)?  A topic remark planted
        in unrelated tasks passes; one prompt template filled with different names
        ("thank-you note to Lena / Elias for the travel tips") does not."""
        trig = self._term_codes(terms)
        sets = [set(self.icodes[self.ins_off[r]:self.ins_off[r + 1]].tolist()) - trig for r in rows]
        jac = [len(a & b) / max(1, len(a | b)) for i, a in enumerate(sets) for b in sets[i + 1:]]
        return bool(jac) and float(np.mean(jac)) < max_jaccard
