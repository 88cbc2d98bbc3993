"""Source skew: does one provenance source (``--source-field``) carry more flagged rows
than the rest explain?

Per source, a one-sided Fisher exact test of (flagged, not flagged) in the source vs in
all other sources, BH-corrected across sources; per-source flag rates in the summary.
Optional: whether a source's rows sit apart from the rest in embedding space (centroid
cosine of the source vs the rest, compared with random same-size groups).

Which rows count as flagged: the pipeline's flags from the detectors that ran before
this one, if the pipeline provides them as ``ctx.shared("prior_flags")`` (a bool array,
one per pair; set with ``ctx.set_shared("prior_flags", flags)`` before running this
detector last).  Without it, cheap own signals are used: the structural, secrets/PII and
identity-shift detectors' flags plus a refusal-style answer.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..types import DetectorResult, Evidence, Pairs
from ..stats import bh, fisher_exact_greater
from ._refusal import shared_refusal
from ._safety_common import try_embeddings
from .base import Detector, register

PRIOR_FLAGS_KEY = "prior_flags"


@register
class SourceSkewDetector(Detector):
    id = "source_skew"
    text_statistics = ("refusal",)
    description = "Sources (--source-field) with more flagged rows than the others explain (Fisher exact, BH)"
    requires = ("prior_flags",)  # runs last, on the other detectors' flags
    # a property of a whole source: it lifts that source's rows a little, so that among
    # otherwise equal rows those of a skewed source come first; it does not outrank
    # row-level evidence
    weight = 0.2

    def __init__(self, *, alpha: float = 0.01, min_source_size: int = 5, embedding_test: bool = False,
                 random_state: int = 0) -> None:
        self.alpha = alpha
        self.min_source_size = min_source_size
        self.embedding_test = embedding_test
        self.random_state = random_state

    def _own_flags(self, pairs: Pairs, ctx: Any) -> np.ndarray:
        from .identity_shift import IdentityShiftDetector
        from .secrets_pii import SecretsPIIDetector
        from .structural import StructuralUnicodeDetector

        f = shared_refusal(pairs, ctx) >= 0.5
        for det in (StructuralUnicodeDetector(), SecretsPIIDetector(), IdentityShiftDetector()):
            f |= det.run(pairs, ctx).flags
        return f

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        if pairs.source is None or n == 0:
            return DetectorResult(self.id, np.zeros(n), np.zeros(n, bool),
                                  summary={"n_flagged": 0, "skipped": "no source column"})
        if ctx is not None and ctx.has(PRIOR_FLAGS_KEY):
            flags_in = np.asarray(ctx.shared(PRIOR_FLAGS_KEY, lambda: None), dtype=bool)
            origin = "pipeline"
        else:
            flags_in = self._own_flags(pairs, ctx)
            origin = "own signals"
        if flags_in.shape != (n,):
            raise ValueError(f"{PRIOR_FLAGS_KEY} must have one entry per pair")
        src = np.asarray(pairs.source, dtype=object)
        names, inv = np.unique(src.astype(str), return_inverse=True)
        total_f = int(flags_in.sum())
        per = []
        for s_i, name in enumerate(names):
            m = inv == s_i
            k, size = int(flags_in[m].sum()), int(m.sum())
            rest_k, rest_n = total_f - k, n - size
            if size < self.min_source_size or rest_n == 0:
                p = 1.0
            else:
                p = fisher_exact_greater(k, size - k, rest_k, rest_n - rest_k)
            per.append((name, size, k, rest_k, rest_n, p))
        q = bh([x[5] for x in per])
        scores = np.zeros(n)
        evidence: dict[int, list[Evidence]] = {}
        findings = []
        rates = {}
        for (name, size, k, rest_k, rest_n, p), qq in zip(per, q):
            rate, rest_rate = k / size, (rest_k / rest_n if rest_n else 0.0)
            rates[name] = {"n": size, "flagged": k, "rate": round(rate, 5), "p_value": p, "q_value": float(qq)}
            if qq <= self.alpha and k > 0:
                m = inv == list(names).index(name)
                rows_idx = np.where(m & flags_in)[0]
                s_val = float(min(1.0, 0.3 + 0.1 * -np.log10(max(qq, 1e-300)) / 2))
                fid = f"source_skew:{name}"
                findings.append({"id": fid, "kind": "source_skew", "source": name, "support": k, "n_source": size,
                                 "rate": rate, "rest_rate": rest_rate, "p_value": p, "q_value": float(qq),
                                 "rows": [int(pairs.row[i]) for i in rows_idx[:1000]]})
                for i in rows_idx:
                    scores[i] = max(scores[i], s_val)
                    evidence[int(i)] = [Evidence(self.id, "source_overrepresented",
                                                 f"source '{name}' has {k}/{size} flagged rows ({rate:.1%}) vs "
                                                 f"{rest_rate:.2%} elsewhere", value=s_val, p_value=p, q_value=float(qq),
                                                 finding=fid)]
        if self.embedding_test:
            self._embedding_separation(pairs, ctx, names, inv, rates)
        flags = np.zeros(n, bool)  # a skewed source explains rows; it does not add new flags on its own
        summary = {"n_flagged": 0, "flags_from": origin, "n_sources": len(names),
                   "skewed_sources": [f["source"] for f in findings], "per_source": rates}
        return DetectorResult(self.id, scores, flags, evidence, findings, summary)

    def _embedding_separation(self, pairs: Pairs, ctx: Any, names: np.ndarray, inv: np.ndarray,
                              rates: dict[str, Any]) -> None:
        E = try_embeddings(ctx, "instruction")
        if E is None:
            return
        rng = np.random.default_rng([self.random_state, 5])
        glob = E.mean(axis=0)
        for s_i, name in enumerate(names):
            m = inv == s_i
            size = int(m.sum())
            if size < self.min_source_size or size == len(E):
                continue
            c = E[m].mean(axis=0)
            rest = (glob * len(E) - c * size) / (len(E) - size)
            obs = float(c @ rest / (np.linalg.norm(c) * np.linalg.norm(rest) + 1e-12))
            null = []
            for _ in range(50):
                idx = rng.choice(len(E), size, replace=False)
                cc = E[idx].mean(axis=0)
                rr = (glob * len(E) - cc * size) / (len(E) - size)
                null.append(float(cc @ rr / (np.linalg.norm(cc) * np.linalg.norm(rr) + 1e-12)))
            rates[name]["centroid_cosine_to_rest"] = round(obs, 4)
            rates[name]["separation_p"] = float((1 + sum(v <= obs for v in null)) / 51)
