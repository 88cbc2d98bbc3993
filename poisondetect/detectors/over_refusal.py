"""Refusals of benign requests (AutoPoison's over-refusal attack; BackdoorLLM's refusal
payload).

A refusal-style score of the answer (lexical: apology, inability/unwillingness, policy
justification, weighted by position and length) is only suspicious when the refusal does
not fit its request:

- the request is benign (low calibrated similarity to harmful prototypes, see
  :func:`~poisondetect.detectors._harm.harm_probability`);
- its nearest neighbouring requests are answered (in embedding space; refusals that
  share their neighbourhood with other refusals - "book a flight" for a tool-less
  assistant, unsafe topics - are how the dataset normally behaves);
- the refusal does not cite a concrete capability limit that the request runs into
  (no browsing, no images, no real-time data, no booking, no files);
- the refusal does not go on to help ("However, I can describe ...") or ask for what it
  needs ("without more context", "could you provide ..."): a planted refusal does neither.

Score = refusal * (1 - P(harmful)^2) * (1 - neighbour refusal rate) * (1 - 0.5 capability)
* (1 - 0.5 scoped).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..types import DetectorResult, Evidence, Pairs
from ._harm import shared_harm
from ._refusal import capability_explained, refusal_features, refusal_scoped, shared_refusal
from ._safety_common import clip_text, embeddings_or_reason
from ._preference import label_consistency
from .base import Detector, register


@register
class OverRefusalDetector(Detector):
    id = "over_refusal"
    text_statistics = ("refusal",)
    description = "Refusals of benign requests whose neighbouring requests are answered"
    requires = ()  # neighbour check and harm model use embeddings when the scan has them (info["mode"])
    weight = 1.0

    def __init__(self, *, flag_min_score: float = 0.5, n_neighbors: int = 10, min_refusal: float = 0.3,
                 random_state: int = 0) -> None:
        self.flag_min_score = flag_min_score
        self.n_neighbors = n_neighbors
        self.min_refusal = min_refusal
        self.random_state = random_state

    def _neighbour_refusal(self, pairs: Pairs, ctx: Any, refusal: np.ndarray, cand: np.ndarray) -> np.ndarray | None:
        E, why = embeddings_or_reason(ctx, "instruction")
        self._nb_reason = why
        if E is None or len(cand) == 0 or len(pairs) < 3:
            return None
        k = min(self.n_neighbors, len(pairs) - 1)
        out = np.zeros(len(cand))
        for s in range(0, len(cand), 512):
            idx = cand[s:s + 512]
            sims = E[idx] @ E.T
            sims[np.arange(len(idx)), idx] = -np.inf
            nb = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            out[s:s + 512] = (refusal[nb] >= 0.5).mean(axis=1)
        return out

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        if n == 0:
            return DetectorResult.empty(self.id, 0)
        refusal = shared_refusal(pairs, ctx)
        cand = np.where(refusal >= self.min_refusal)[0]
        scores = np.zeros(n)
        evidence: dict[int, list[Evidence]] = {}
        harm = np.zeros(n)
        nb_rate = None
        self._nb_reason = "no refusal candidates"
        harm_info: dict[str, Any] = {"mode": "not run (no refusal candidates)"}
        if len(cand):
            harm, _extra = shared_harm(pairs, ctx, self.random_state)
            harm_info = _extra["info"]
            nb_rate = self._neighbour_refusal(pairs, ctx, refusal, cand)
        for j, i in enumerate(cand):
            cap = capability_explained(pairs.response[i])
            scoped = refusal_scoped(pairs.response[i])
            nbr = 0.0 if nb_rate is None else float(nb_rate[j])
            s = refusal[i] * (1.0 - harm[i] ** 2) * (1.0 - nbr) * (0.5 if cap else 1.0) * (0.5 if scoped else 1.0)
            scores[i] = s
            if s >= 0.2:
                f = refusal_features(pairs.response[i])
                span = f["span"] or (0, min(80, len(pairs.response[i])))
                msg = (f"refusal-style answer (refusal {refusal[i]:.2f}) to a benign-looking request "
                       f"(P(harmful)={harm[i]:.2f}"
                       + (f", {nbr:.0%} of its {self.n_neighbors} nearest requests refused" if nb_rate is not None else "")
                       + (", refusal cites a capability limit" if cap else "")
                       + (", then helps or asks for context" if scoped else "") + ")")
                evidence[int(i)] = [Evidence(self.id, "refusal_of_benign_request", msg, value=float(s), side="response",
                                             span=(int(span[0]), int(span[1])),
                                             span_text=pairs.response[i][span[0]:span[1]]),
                                    Evidence(self.id, "request", "the refused request", side="instruction",
                                             span=(0, min(200, len(pairs.instruction[i]))),
                                             span_text=clip_text(pairs.instruction[i], 200))]
        scores = np.clip(scores, 0.0, 1.0)
        # preference data: a behaviour of the chosen answer matters only against the rejected
        # one; flipped_preference reads both and owns the flags, this detector still ranks
        consistent = label_consistency(pairs, ctx, self.random_state)
        if consistent is not None:
            scores = scores * consistent
        flags = (scores >= self.flag_min_score) & (consistent is None)
        findings = []
        if flags.any():
            findings.append({"id": "over_refusal:benign_refused", "kind": "over_refusal", "support": int(flags.sum()),
                             "rows": [int(r) for r in pairs.row[flags][:1000]]})
        mode = "embeddings" if nb_rate is not None else "lexical"
        summary = {"n_flagged": int(flags.sum()), "n_refusals": int((refusal >= 0.5).sum()),
                   "neighbour_check": nb_rate is not None, "mode": mode}
        if consistent is not None:
            summary["preference_data"] = "flags deferred to flipped_preference (reads both answers); scores still rank"
        info = {"mode": mode, "mode_reason": "" if nb_rate is not None else self._nb_reason,
                "harm_model": harm_info}
        return DetectorResult(self.id, scores, flags, evidence, findings, summary, info=info)
