"""Harmful requests answered compliantly (Qi et al. 2023: ten such examples undo safety
tuning; BackdoorLLM's jailbreak payloads).

A request's harmfulness comes from a linear probe and a similarity model fitted at run time:
shipped harmful-request prototypes (HarmBench, MaliciousInstruct, StrongREJECT; MIT) against
safe requests that look unsafe (XSTest, CC BY 4.0), poisondetect's own contrast set of benign
safety-topic requests and the scan's own background - see
:func:`poisondetect.detectors._harm.harm_probability`.  The pair score is
``P(harmful request) * (1 - refusal style of the answer)``: a harmful request that is
refused is fine, a benign one that is answered is fine.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..types import DetectorResult, Evidence, Pairs
from ._harm import shared_harm
from ._refusal import shared_refusal
from ._safety_common import clip_text
from ._preference import label_consistency
from .base import Detector, register


@register
class HarmfulComplianceDetector(Detector):
    id = "harmful_compliance"
    text_statistics = ("refusal",)
    description = ("Harmful requests (probe + similarity to shipped harmful prototypes vs safe look-alikes, "
                   "calibrated at run time) answered without refusal")
    requires = ()  # uses embeddings when the scan has them, a TF-IDF fallback otherwise (info["mode"])
    weight = 1.0

    def __init__(self, *, flag_min_score: float = 0.8, min_response_chars: int = 40, random_state: int = 0) -> None:
        self.flag_min_score = flag_min_score
        self.min_response_chars = min_response_chars
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        if n == 0:
            return DetectorResult.empty(self.id, 0)
        harm, extra = shared_harm(pairs, ctx, self.random_state)
        refusal = shared_refusal(pairs, ctx)
        rlen = np.fromiter((len(r.strip()) for r in pairs.response), dtype=np.float64, count=n)
        substantive = np.clip(rlen / max(1, self.min_response_chars), 0.0, 1.0)
        scores = np.clip(harm * (1.0 - refusal) * substantive, 0.0, 1.0)
        # preference data: a behaviour of the chosen answer matters only against the rejected
        # one; flipped_preference reads both and owns the flags, this detector still ranks
        consistent = label_consistency(pairs, ctx, self.random_state)
        if consistent is not None:
            scores = scores * consistent
        flags = (scores >= self.flag_min_score) & (consistent is None)
        evidence: dict[int, list[Evidence]] = {}
        for i in np.where(scores >= 0.5)[0]:
            evidence[int(i)] = [Evidence(
                self.id, "harmful_request_answered",
                f"request resembles known harmful requests (P(harmful)={harm[i]:.2f}, similarity "
                f"{extra['s_harm'][i]:.2f} vs safe look-alikes {extra['s_benign'][i]:.2f}) and the answer does not "
                f"refuse (refusal style {refusal[i]:.2f})", value=float(scores[i]), side="instruction",
                span=(0, min(len(pairs.instruction[i]), 200)), span_text=clip_text(pairs.instruction[i], 200))]
        findings = []
        if flags.any():
            findings.append({"id": "harmful_compliance:answered", "kind": "harmful_compliance",
                             "support": int(flags.sum()), "rows": [int(r) for r in pairs.row[flags][:1000]]})
        summary = {"n_flagged": int(flags.sum()), "n_harmful_requests": int((harm >= 0.5).sum()),
                   "n_harmful_refused": int(((harm >= 0.5) & (refusal >= 0.5)).sum())}
        hi = extra["info"]
        summary["mode"] = hi["mode"]
        if consistent is not None:
            summary["preference_data"] = "flags deferred to flipped_preference (reads both answers); scores still rank"
        return DetectorResult(self.id, scores, flags, evidence, findings, summary,
                              info={"mode": hi["mode"], "mode_reason": hi.get("mode_reason"), "harm_model": hi})
