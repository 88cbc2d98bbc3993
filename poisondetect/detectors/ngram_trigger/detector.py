"""The n-gram trigger detector (see the package docstring, :mod:`poisondetect.detectors.ngram_trigger`):
parameters, the mergeable sample statistic, the verify pass, scoring and evidence."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sstats

from ... import stats as S
from ... import text as T
from ..._parallel import fork_pool
from ...errors import ConfigError
from ...types import DetectorResult, Evidence, Pairs
from . import kernels as K
from ..base import MergeableDetector, register
from .analysis import Analysis, summary_of
from .sample import TURN_BITS, bottom_k, pair_ids, query_of, sample_keys, verify_batch
from .tokenise import copied_exact, exact_hashes, merge_codes, raw_codes, tokenize_side
from .workers import gc_paused, n_workers


def _merge_spans(spans: list[tuple[int, int]], gap: int = 2, text: str | None = None) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + gap and (text is None or not text[out[-1][1]:s].strip("\t ,:;.-")):
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


@register
class NgramTriggerDetector(MergeableDetector):
    id = "ngram_trigger"
    severity = "high"  # a trigger or a planted payload group
    description = ("instruction n-grams / rare tokens / punctuation runs / invisible characters whose presence "
                   "predicts a concentrated response (trigger -> payload); Fisher exact, conditional on template "
                   "companions, BH-corrected over every candidate")
    requires = ()
    text_only = True
    weight = 1.0

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        min_support: int = 4,
        max_n: int = 3,
        response_n: int = 3,
        max_trigger_frac: float = 0.25,
        max_payload_frac: float = 0.25,
        min_concentration: float = 0.9,
        max_context_similarity: float = 5.0,
        min_payload_explained: float = 0.6,
        min_coverage: float = 0.15,
        min_payload_tokens: int = 3,
        companion_coverage: float = 0.5,
        conjunctions: bool = True,
        paraphrase_families: bool = True,
        family_min_concentration: float = 0.8,
        family_min_response_coverage: float = 0.5,
        family_max_trigger_tokens: int = 8,
        family_request_dependence_p: float = 0.05,
        max_conjunction_terms: int = 12,
        max_conjunction_payloads: int = 200,
        max_findings: int = 100,
        max_live: int = 20000,
        sample_size: int = 100_000,
        n_jobs: int | None = None,
        engine: str = "auto",
        random_state: int = 0,
    ) -> None:
        self.alpha = alpha
        self.min_support = min_support
        self.max_n = max_n
        self.response_n = response_n
        self.max_trigger_frac = max_trigger_frac
        self.max_payload_frac = max_payload_frac
        self.min_concentration = min_concentration
        self.max_context_similarity = max_context_similarity
        self.min_payload_explained = min_payload_explained
        self.min_coverage = min_coverage
        self.min_payload_tokens = min_payload_tokens
        self.companion_coverage = companion_coverage
        self.conjunctions = conjunctions
        self.paraphrase_families = paraphrase_families
        self.family_min_concentration = family_min_concentration
        self.family_min_response_coverage = family_min_response_coverage
        self.family_max_trigger_tokens = family_max_trigger_tokens
        self.family_request_dependence_p = family_request_dependence_p
        self.max_conjunction_terms = max_conjunction_terms
        self.max_conjunction_payloads = max_conjunction_payloads
        self.max_findings = max_findings
        self.max_live = max_live
        self.sample_size = sample_size
        self.n_jobs = n_jobs
        if engine not in ("auto", "numba", "numpy"):
            raise ConfigError(f"ngram_trigger: engine must be 'auto', 'numba' or 'numpy', not {engine!r}")
        self.engine = engine
        self.random_state = random_state

    #: samples from this many pairs use the compiled kernels when ``engine="auto"`` (below
    #: it the reference path takes a few seconds, less than compiling the kernels the
    #: first time after an install)
    compiled_min_pairs = 10_000

    def use_kernels(self, n: int) -> bool:
        """Compiled kernels for an analysis of ``n`` pairs? (The result is the same.)"""
        if self.engine == "numpy" or (self.engine == "auto" and n < self.compiled_min_pairs):
            return False
        return K.available()

    def engine_note(self, n: int) -> str:
        if self.use_kernels(n):
            return "numba"
        if self.engine == "numpy":
            return "numpy (engine='numpy')"
        if self.engine == "auto" and n < self.compiled_min_pairs:
            return f"numpy (below {self.compiled_min_pairs:,} pairs)"
        return f"numpy (numba unavailable: {K.unavailable_reason() or 'POISONDETECT_NO_NUMBA'})"

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        """One batch in memory: statistics, score, and no memo left behind (the memo is
        for callers that score chunk after chunk without :meth:`finalize_stats`)."""
        try:
            return super().run(pairs, ctx)
        finally:
            self.__dict__.pop("_memo", None)

    def release(self) -> None:
        """Drop the memoised analysis (the engine calls it after its last chunk)."""
        self.__dict__.pop("_memo", None)

    # ------------------------------------------------------------------ statistics
    # The mergeable statistic is a bottom-k sample sketch: the ``sample_size`` pairs with
    # the smallest keys (a 64-bit mix of the pair's row/turn and ``random_state``).  The
    # bottom k of a union is the bottom k of the parts' bottom k, so merging is
    # associative and the sample does not depend on how the input was chunked.  While
    # the input has at most ``sample_size`` pairs the sample is the whole input and the
    # analysis is exact.  Above it, the analysis runs on the sample and its findings are
    # re-tested on the held-out pairs in one more streamed pass (``verify_stats``).
    def partial_stats(self, pairs: Pairs, ctx: Any = None) -> dict[str, Any]:
        pid = pair_ids(pairs)
        key = sample_keys(pid, self.random_state)
        sel = np.arange(len(pairs))
        k = int(self.sample_size or 0)
        if k and len(pairs) > k:
            sel = bottom_k(key, pid, k)
        return {"n_seen": len(pairs), "pair": pid[sel], "key": key[sel],
                "instruction": [pairs.instruction[i] for i in sel.tolist()],
                "response": [pairs.response[i] for i in sel.tolist()]}

    def merge_stats(self, a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
        if a is None:
            return b
        if b is None:
            return a
        out = {"n_seen": a["n_seen"] + b["n_seen"],
               "pair": np.concatenate([a["pair"], b["pair"]]), "key": np.concatenate([a["key"], b["key"]]),
               "instruction": a["instruction"] + b["instruction"], "response": a["response"] + b["response"]}
        k = int(self.sample_size or 0)
        if k and len(out["pair"]) > k:
            sel = bottom_k(out["key"], out["pair"], k)
            s = sel.tolist()
            out = {"n_seen": out["n_seen"], "pair": out["pair"][sel], "key": out["key"][sel],
                   "instruction": [out["instruction"][i] for i in s], "response": [out["response"][i] for i in s]}
        return out

    def _tokenised(self, stats: dict[str, Any]) -> dict[str, Any]:
        """The sample tokenised for :class:`Analysis`: per side the token codes (or, on the
        reference path, token hashes) and tokens per text, the exact-response hashes, and
        what decodes the codes.  With two workers (see ``n_jobs``) the instructions are
        tokenised in parallel (threads running the compiled tokeniser, or on the reference
        path a forked worker for part of them); the result is the same (texts are
        tokenised independently and merged in order)."""
        ins = stats["instruction"]
        if self.use_kernels(len(ins)):
            return self._tokenised_codes(stats, ins)
        responses = [T.strip_eos(r) for r in stats["response"]]
        cut, pool, fut = len(ins), None, None
        if n_workers(self.n_jobs, len(ins)) > 1:
            pool = fork_pool(1)
            if pool is not None:
                cut = int(0.4 * len(ins))  # this process also does the responses
                fut = pool.submit(tokenize_side, ins[cut:])
        try:
            ih, il, iv = tokenize_side(ins[:cut])
            rh, rl, rv = tokenize_side(responses)
            exact, copied = self._exact_sides(ins, responses, rl)
            if fut is not None:
                from concurrent.futures.process import BrokenProcessPool
                try:
                    ih2, il2, iv2 = fut.result()
                except BrokenProcessPool:  # the worker died (e.g. out of memory): do it here
                    ih2, il2, iv2 = tokenize_side(ins[cut:])
                ih, il = np.concatenate([ih, ih2]), np.concatenate([il, il2])
                iv.update(iv2)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        vocab = dict(iv)
        vocab.update(rv)
        return {"n": len(responses), "row": stats["pair"], "ins_hash": ih, "ins_len": il, "res_hash": rh,
                "res_len": rl, "exact": exact, "exact_copied": copied, "vocab": vocab}

    def _exact_sides(self, ins: list[str], responses: list[str], res_len: np.ndarray,
                     of_row: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact-response hashes and the rows whose response is copied from the prompt.
        With ``of_row``, ``responses`` and ``res_len`` are the distinct responses and
        row i's response is ``responses[of_row[i]]``."""
        norm = [T.normalize_text(r) for r in responses]
        exact = exact_hashes(responses, norm)
        if of_row is not None:
            norm = [norm[k] for k in of_row.tolist()]
            exact, res_len = exact[of_row], res_len[of_row]
        copied = copied_exact(ins, norm, exact, self.min_support, res_len, self.min_payload_tokens)
        return exact, copied

    def _tokenised_codes(self, stats: dict[str, Any], ins: list[str]) -> dict[str, Any]:
        """:meth:`_tokenised` with the compiled tokeniser: token codes directly, numbered in
        order of first appearance over the instructions then the responses (what
        ``pandas.factorize`` of the reference path's token hashes gives), with ``words``
        (code -> lower-cased token) to decode them.  Threads tokenise the instructions
        (the kernel runs without the GIL) while this one does the responses.

        Responses repeat (labels, refusals, templated answers: 8,560 distinct of 55,185
        on T0), so each distinct response is stripped, normalised, hashed and tokenised
        once, in order of first appearance (a token's first appearance is in the first
        row of its response, so the numbering is the same), and the rows' codes gathered."""
        nw = n_workers(self.n_jobs, len(ins))
        pool, jobs = None, None
        if nw > 1:
            from concurrent.futures import ThreadPoolExecutor
            pool = ThreadPoolExecutor(max_workers=nw)
            # parts of about equal characters (the kernel's work), in order
            cum = np.cumsum(np.fromiter((len(x) for x in ins), np.int64, len(ins)))
            bounds = [0] + np.searchsorted(cum, cum[-1] * np.arange(1, nw) / nw).tolist() + [len(ins)]
            jobs = [pool.submit(raw_codes, ins[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        try:
            of_row, distinct = pd.factorize(np.asarray(stats["response"], dtype=object), use_na_sentinel=False)
            distinct = [T.strip_eos(r) for r in distinct.tolist()]
            rparts, rl_u = raw_codes(distinct)
            exact, copied = self._exact_sides(ins, distinct, rl_u, of_row)
            if jobs is not None:
                got = [j.result() for j in jobs]
                iparts = [p for g in got for p in g[0]]
                il = np.concatenate([g[1] for g in got])
            else:
                iparts, il = raw_codes(ins)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        (ic, rc_u), words = merge_codes([iparts, rparts])
        # the rows' response codes: row i's are those of its distinct response
        rl = rl_u[of_row]
        u_off = np.zeros(len(rl_u) + 1, np.int64)
        np.cumsum(rl_u, out=u_off[1:])
        row_off = np.zeros(len(rl) + 1, np.int64)
        np.cumsum(rl, out=row_off[1:])
        rc = rc_u[np.repeat(u_off[:-1][of_row] - row_off[:-1], rl) + np.arange(int(row_off[-1]))]
        return {"n": len(of_row), "row": stats["pair"], "ins_codes": ic, "ins_len": il, "res_codes": rc,
                "res_len": rl, "exact": exact, "exact_copied": copied, "words": words}

    def finalize_stats(self, stats: dict[str, Any] | None) -> dict[str, Any]:
        """The dataset-level analysis, once, on the merged sample: its findings and counts
        (the texts and matrices are dropped).  When the input was larger than the sample,
        the findings become the query of the verify pass."""
        if stats is not None and stats.get("analysed"):
            return stats
        n_sample = 0 if stats is None else len(stats["pair"])
        n_seen = 0 if stats is None else int(stats["n_seen"])
        out: dict[str, Any] = {"analysed": True, "n_seen": n_seen, "n_sample": n_sample}
        if n_sample < max(2 * self.min_support, 10):
            out.update(findings=[], summary={"reason": "too few pairs"})
            return out
        for attempt in range(2):
            t0 = time.perf_counter()
            try:
                with gc_paused():
                    an = Analysis(self, {**self._tokenised(stats), "instruction": stats["instruction"]})
                    an.timings["tokenise"] = round(time.perf_counter() - t0, 4)
                    out["findings"] = an.run()
                break
            except Exception as exc:
                # a kernel that numba cannot compile for these inputs: say so (info
                # "engine") and redo the analysis on the reference path
                if attempt or not K.is_numba_error(exc):
                    raise
                K.disable(f"{type(exc).__name__}: {exc}")
        out["summary"] = summary_of(an)
        del an
        if n_seen > n_sample:
            out["threshold"] = int(stats["key"].max())
            if out["findings"]:
                out["query"] = [query_of(fd) for fd in out["findings"]]
            else:
                out["verified"] = {"n_verified": 0, "n_held_out": n_seen - n_sample, "n_significant": 0}
        return out

    def needs_verify(self, stats: Any) -> bool:
        return isinstance(stats, dict) and stats.get("query") is not None and "verified" not in stats

    def verify_stats(self, pairs: Pairs, ctx: Any, stats: dict[str, Any]) -> dict[str, Any]:
        """Held-out counts of every sampled finding on one batch (mergeable: sums and row
        lists): pairs outside the sample are counted for the test; the trigger and
        payload rows of every pair are kept for scoring."""
        return verify_batch(pairs, stats["query"], int(stats["threshold"]), self.random_state)

    def merge_verify(self, a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
        if a is None:
            return b
        if b is None:
            return a
        out = {"counts": a["counts"] + b["counts"], "n_held": a["n_held"] + b["n_held"]}
        for k in ("trig", "pay"):
            out[k] = [np.concatenate([x, y]) for x, y in zip(a[k], b[k])]
        return out

    def finalize_verify(self, stats: dict[str, Any], verified: dict[str, Any] | None) -> dict[str, Any]:
        """One-sided Fisher test of each sampled finding on the held-out pairs (the sample
        chose the findings, the held-out pairs never took part, so the p-values are
        exact), BH across the findings verified; rows from the whole input."""
        out = dict(stats)
        fins = stats["findings"]
        if verified is None or not fins:
            out.update(verified={"n_verified": 0, "n_held_out": 0}, findings=[])
            return out
        c = verified["counts"]  # per finding: N, n_g, n_f, a (held out, within the companion's rows)
        p = np.array([float(S.hypergeom_upper_bound(int(a), int(N), int(nf), int(ng))) if ng and nf else 1.0
                      for N, ng, nf, a in c.tolist()])
        q = sstats.false_discovery_control(p) if len(p) else p
        kept = []
        for fd, pp, qq, cnt, tr, pa in zip(fins, p, q, c.tolist(), verified["trig"], verified["pay"]):
            if qq >= self.alpha:
                continue
            fd = dict(fd)
            tr, pa = np.unique(tr), np.unique(pa)
            both = np.intersect1d(tr, pa, assume_unique=True)
            fd.update({
                "p_value_sample": fd["p_value"], "q_value_sample": fd["q_value"],
                "p_value": float(pp), "q_value": float(qq),
                "held_out": {"pairs": int(cnt[0]), "trigger": int(cnt[1]), "payload": int(cnt[2]), "both": int(cnt[3])},
                "support": int(len(both)), "trigger_rows": int(len(tr)), "payload_rows": int(len(pa)),
                "concentration": round(float(len(both) / max(len(tr), 1)), 4),
                "payload_coverage": round(float(len(both) / max(len(pa), 1)), 4),
                "payload_specificity": round(float(len(both) / max(len(pa), 1)), 4),
                "rows": [int(r) for r in (both >> TURN_BITS).tolist()],
                "_both_rows": both.tolist(),
                "_trigger_only_rows": np.setdiff1d(tr, pa, assume_unique=True).tolist(),
                "_payload_only_rows": np.setdiff1d(pa, tr, assume_unique=True).tolist(),
            })
            kept.append(fd)
        for k, fd in enumerate(kept):
            fd["id"] = f"ngram_trigger/{k}"
        out["findings"] = kept
        out["verified"] = {"n_verified": len(fins), "n_held_out": int(verified["n_held"]),
                           "n_significant": len(kept)}
        return out

    # ------------------------------------------------------------------ scoring
    def score(self, pairs: Pairs, ctx: Any, stats: dict[str, Any]) -> DetectorResult:
        n = len(pairs)
        if stats is None or not stats.get("analysed"):
            # called without finalize_stats (chunk after chunk against the same merged
            # statistics): analyse once per (statistics, parameters)
            key = repr(sorted(self.get_params().items()))
            memo = self.__dict__.get("_memo")
            if memo is not None and memo[0] is stats and memo[1] == key:
                stats = memo[2]
            else:
                fin = self.finalize_stats(stats)
                self.__dict__["_memo"] = (stats, key, fin)
                stats = fin
        if self.needs_verify(stats):
            raise ConfigError(f"ngram_trigger: the input has {stats['n_seen']} pairs, more than sample_size="
                              f"{self.sample_size}; its findings need the verify pass (Detector.run or an engine)")
        summ = stats["summary"]
        if "reason" in summ:
            return DetectorResult.empty(self.id, n, info={"params": self.get_params(), "reason": summ["reason"]},
                                        summary={"n_triggers": 0, "n_tested": 0})
        findings = [dict(fd) for fd in stats["findings"]]  # _result pops its private keys
        return self._result(pairs, stats, summ, findings)

    # ------------------------------------------------------------------ result assembly
    def _result(self, pairs: Pairs, stats: dict[str, Any], an: dict[str, Any], findings: list[dict]) -> DetectorResult:
        n = len(pairs)
        scores = np.zeros(n)
        flags = np.zeros(n, bool)
        evidence: dict[int, list[Evidence]] = {}
        # map pair id (row, turn) -> position in this batch
        pos_of_pair = {int(r): i for i, r in enumerate(pair_ids(pairs).tolist())}
        for fd in findings:
            q = fd["q_value"]
            strength = 1.0 - q
            both = fd.pop("_both_rows")
            trig_only = fd.pop("_trigger_only_rows")
            pay_only = fd.pop("_payload_only_rows")
            seqs = fd.pop("_trigger_seqs")
            pseqs = fd.pop("_payload_seqs")
            fd.pop("_companion_seq", None)
            sig = q < self.alpha
            for r, level in ((both, 1.0), (trig_only, 0.5), (pay_only, 0.4 * fd.get("payload_specificity", 0.0))):
                for pid in r:
                    i = pos_of_pair.get(int(pid))
                    if i is None:
                        continue
                    s = level * strength
                    if s > scores[i]:
                        scores[i] = s
                    if sig and level == 1.0:
                        flags[i] = True
                    if level == 1.0 or sig:
                        evidence.setdefault(i, []).extend(
                            self._evidence(pairs, i, fd, seqs, pseqs, level))
        findings = [f for f in findings if f["q_value"] < self.alpha]
        summary = {"n_triggers": len(findings), "n_tested": float(an["m_single"] + an["m_conj"]),
                   "n_candidates": int(an["n_candidates"]),
                   "n_significant_unconditional": int(an["n_unc_sig"]),
                   "n_tested_conditionally": int(an["n_live"])}
        info = {"params": self.get_params(), "n_instruction_ngrams": int(an["G"]), "n_response_features": int(an["F"]),
                "timings": an["timings"], "engine": an.get("engine", "numba"),
                # candidates each payload-family condition removed, and the Mantel test
                # of every candidate that reached it (diagnostics; see the docstring)
                "family_gates": an["family_gates"],
                "family_request_dependence": an["family_request_dependence"]}
        if "verified" in stats:
            # the analysis ran on a sample; its findings were re-tested on the held-out pairs
            sampled = {"n_pairs": int(stats["n_seen"]), "n_sample": int(stats["n_sample"]),
                       "n_findings_verified": int(stats["verified"]["n_verified"]),
                       "n_held_out": int(stats["verified"]["n_held_out"])}
            summary["sampled"] = sampled
            info["sampled"] = sampled
            summary["n_tested"] += float(sampled["n_findings_verified"])
        return DetectorResult(self.id, np.clip(scores, 0.0, 1.0), flags, evidence=evidence, findings=findings,
                              summary=summary, info=info)

    def _evidence(self, pairs: Pairs, i: int, fd: dict, seqs: list[tuple[str, ...]],
                  pseqs: list[tuple[str, ...]], level: float) -> list[Evidence]:
        out: list[Evidence] = []
        ins = pairs.instruction[i]
        toks = T.tokenize(ins)
        spans: list[tuple[int, int]] = []
        for s in seqs:
            spans.extend(T.find_token_sequence(toks, s))
        # the p-value is the geometric upper bound on the one-sided Fisher tail
        # (stats.hypergeom_upper_bound; exact where a family's tail could change a
        # q-value): conservative, and named for what it is
        test = "fisher_upper_bound_conditional" if fd.get("conditioned_on") else "fisher_upper_bound"
        for s, e in _merge_spans(spans, text=ins):
            out.append(Evidence(self.id, test, f"trigger {fd['trigger']!r} (mode {fd['mode']}) predicts payload; "
                                f"support {fd['support']}, q={fd['q_value']:.2e}",
                                value=float(fd["concentration"]), p_value=fd["p_value"], q_value=fd["q_value"],
                                side="instruction", span=(s, e), span_text=ins[s:e], finding=fd["id"]))
        if level != 0.5:
            res = pairs.response[i]
            rt = T.tokenize(res)
            rspans: list[tuple[int, int]] = []
            for s in pseqs:
                rspans.extend(T.find_token_sequence(rt, s))
            if not rspans and fd.get("payload_exact"):
                rspans = [(0, len(res))]
            for s, e in _merge_spans(rspans, text=res)[:3]:
                out.append(Evidence(self.id, test, f"payload of trigger {fd['trigger']!r}",
                                    q_value=fd["q_value"], side="response", span=(s, e), span_text=res[s:e],
                                    finding=fd["id"]))
        return out
