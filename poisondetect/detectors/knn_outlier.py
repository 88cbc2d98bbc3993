"""kNN outliers, cleanlab Datalab's definition (OutlierIssueManager on embeddings).

Per side: ``d_i`` = mean cosine distance to the k = 10 nearest other pairs (the shared kNN
graph); flag ``d_i > Q3 + 1.7 * IQR``.  cleanlab's quality score is ``exp(-d / median d)``;
ours is "higher = more suspicious": 0 up to the median, rising to 0.63 at the flag
threshold, towards 1 beyond.  A pair's score is the larger of its two sides.

Low fusion weight on purpose: at 0.1 % poison the poisoned rows share one payload and
sit close together, so plain outlier scores rank them as inliers (RESEARCH.md).  This
detector is for data hygiene (garbage rows, wrong language, encoding debris).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..embed.shared import knn_k
from ..types import DetectorResult, Evidence, Pairs
from .base import Detector, register


@register
class KnnOutlier(Detector):
    id = "knn_outlier"
    kind = "quality"
    description = "kNN-distance outliers on either side (cleanlab Datalab definition)"
    requires = ("embeddings",)
    weight = 0.15

    def __init__(self, *, k: int = 10, iqr_factor: float = 1.7,
                 sides: tuple[str, ...] = ("instruction", "response"), random_state: int = 0) -> None:
        self.k = k
        self.iqr_factor = iqr_factor
        self.sides = tuple(sides)
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        k = knn_k(self.k, n)
        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        evidence: dict[int, list[Evidence]] = {}
        info: dict[str, Any] = {"k": k}
        if k < 1:
            return DetectorResult(self.id, scores, flags, info=info)
        for side in self.sides:
            _, dist = ctx.knn(side, k)
            d = dist.mean(1).astype(np.float64)
            q1, med, q3 = np.percentile(d, [25, 50, 75])
            thr = q3 + self.iqr_factor * (q3 - q1)
            span = max(thr - med, 1e-9)
            s = 1.0 - np.exp(-np.maximum(d - med, 0.0) / span)
            f = d > thr
            scores = np.maximum(scores, s)
            flags |= f
            info[side] = {"median": float(med), "threshold": float(thr), "n_flagged": int(f.sum())}
            for i in np.flatnonzero(f):
                evidence.setdefault(int(i), []).append(Evidence(
                    self.id, "knn_distance",
                    f"{side} is far from every other {side} (mean distance to {k} nearest "
                    f"{d[i]:.3f} > {thr:.3f})", value=float(d[i]), side=side))
        return DetectorResult(self.id, scores, flags, evidence,
                              summary={"n_flagged": int(flags.sum())}, info=info)
