"""Instruction-response mismatch: a response unlike the responses that similar
instructions get.

For pair i take its k nearest neighbours on the *instruction* side (shared kNN graph).
``agree_i`` is the mean cosine similarity of i's response to the neighbours' responses
(the trimmed mean drops the single closest, so one other poisoned neighbour cannot mask
it); ``consist_i`` is the mean similarity among the neighbours' responses themselves
(how predictable the answer is).  The excess ``consist_i - agree_i`` is large when the
neighbours agree with each other but not with i: a payload dropped into an ordinary
instruction (a refusal to a harmless question, an ad in a recipe, an insult in a poem).
Robust z-score of the excess (median / MAD over the dataset) -> score
``1 - exp(-max(z - z0, 0) / 2)``; flag z >= ``z_flag``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..embed.shared import knn_k
from ..types import DetectorResult, Evidence, Pairs
from .base import Detector, register


@register
class Mismatch(Detector):
    id = "mismatch"
    kind = "quality"
    description = "response far from what the responses of similar instructions predict"
    requires = ("embeddings",)
    weight = 0.5

    def __init__(self, *, k: int = 10, z_start: float = 2.0, z_flag: float = 5.0,
                 min_consistency: float = 0.0, random_state: int = 0) -> None:
        self.k = k
        self.z_start = z_start
        self.z_flag = z_flag
        self.min_consistency = min_consistency
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        k = knn_k(self.k, n)
        if k < 3:
            return DetectorResult.empty(self.id, n, summary={"n_flagged": 0})
        idx, _ = ctx.knn("instruction", k)
        R = ctx.embeddings("response")
        agree = np.empty(n, np.float32)
        consist = np.empty(n, np.float32)
        for s in range(0, n, 4096):
            e = min(n, s + 4096)
            nb = R[idx[s:e]]                              # (b, k, d)
            sims = np.einsum("bkd,bd->bk", nb, R[s:e])    # response of i vs neighbours'
            sims.sort(axis=1)
            agree[s:e] = sims[:, :-1].mean(1)             # drop the closest neighbour
            tot = nb.sum(1)
            pair_sum = (np.einsum("bd,bd->b", tot, tot) - np.einsum("bkd,bkd->b", nb, nb)) / (k * (k - 1))
            consist[s:e] = pair_sum
        excess = consist - agree
        med = float(np.median(excess))
        mad = float(np.median(np.abs(excess - med))) * 1.4826 + 1e-6
        z = (excess - med) / mad
        ok = consist >= self.min_consistency
        scores = np.where(ok, 1.0 - np.exp(-np.maximum(z - self.z_start, 0.0) / 2.0), 0.0)
        flags = ok & (z >= self.z_flag)
        evidence: dict[int, list[Evidence]] = {}
        for i in np.flatnonzero(flags):
            evidence[int(i)] = [Evidence(
                self.id, "knn_response_mismatch",
                f"response unlike those of the {k} most similar instructions "
                f"(similarity {agree[i]:.2f} vs {consist[i]:.2f} among them; robust z {z[i]:.1f})",
                value=float(z[i]), side="response")]
        return DetectorResult(self.id, scores, flags, evidence,
                              summary={"n_flagged": int(flags.sum())},
                              info={"median_excess": med, "mad_excess": mad, "k": k})
