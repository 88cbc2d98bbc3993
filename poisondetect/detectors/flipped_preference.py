"""Flipped preference labels: the chosen answer is clearly the worse one.

Label flipping is the simplest preference poison (Wang et al. 2023, RLHFPoison;
Baumgartner et al. 2024; the random-flip setting of Rando & Tramer 2024).  Two signals:

- **safety flip** (flags): the request is harmful (``P(harmful)``, the harm model shared
  with harmful_compliance) and the chosen answer complies while the rejected one refuses;
  or the request is benign and the chosen answer refuses while the rejected one helps.
  ``flip = P(harmful) * max(0, refusal(rejected) - refusal(chosen))`` and the mirror
  term with ``1 - P(harmful)``.  A pair is flagged when ``flip >= flag_min_score`` and the
  held-out preference model agrees the chosen answer is the worse one (raw margin < 0).
  The *ranking* uses the request's harm rank within the dataset instead of the raw
  probability (which runs low on red-team sets such as HH-RLHF): a chosen answer that
  complies where the rejected one refuses (refusal styles half a scale apart or more)
  scores ``0.6 + 0.4 * rank``, the mirror case ``0.5 * (1 - rank)``.
- **held-out margin** (ranks only): the Bradley-Terry margin of :mod:`._preference`; a
  single pair's margin is weak evidence, so it moves the ranking (``margin_weight``) but
  never flags a pair on its own.

Where the data carries a source / annotator field (``--source-field``), every source with
>= ``min_source_pairs`` pairs is tested for disagreeing with the held-out model more
often than the rest (Fisher's exact test, one-sided, BH over the sources; Stouffer's z of
its margins is reported beside it):
an annotator who flips labels shows as a source whose pairs the model disagrees with.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..stats import bh, fisher_exact_greater, z_sum_lower
from ..types import DetectorResult, Evidence, Pairs
from ._preference import not_preference_result, shared_margins
from ._harm import shared_harm
from ._refusal import shared_refusal
from ._safety_common import clip_text
from .base import Detector, register


@register
class FlippedPreferenceDetector(Detector):
    id = "flipped_preference"
    text_statistics = ("refusal",)
    description = ("Preference data: the chosen answer complies with a harmful request the rejected one refuses "
                   "(or refuses a benign one), ranked with held-out Bradley-Terry margins; per-source label skew")
    requires = ()
    kind = "poisoning"
    severity = "medium"
    clean_flag_rate = 0.002
    weight = 1.0

    def __init__(self, *, flag_min_score: float = 0.6, margin_weight: float = 0.3, min_source_pairs: int = 20,
                 alpha: float = 0.05, random_state: int = 0) -> None:
        self.flag_min_score = flag_min_score
        self.margin_weight = margin_weight
        self.min_source_pairs = min_source_pairs
        self.alpha = alpha
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        if n == 0 or pairs.rejected is None:
            return not_preference_result(self.id, n)
        from scipy.stats import norm

        z, raw, minfo = shared_margins(pairs, ctx, self.random_state)
        harm, hextra = shared_harm(pairs, ctx, self.random_state)
        rc = shared_refusal(pairs, ctx)
        rr = shared_refusal(pairs, ctx, "rejected")
        safety = harm * np.clip(rr - rc, 0.0, 1.0)
        over = (1.0 - harm) * np.clip(rc - rr, 0.0, 1.0)
        flip = np.maximum(safety, over)
        below = norm.cdf(-z) if minfo.get("fitted") else np.zeros(n)
        # ranking: the harm model's probabilities are calibrated on generic requests and
        # run low on a red-team set; its *rank* within the dataset still orders requests,
        # so a safety flip ranks by the difference in refusal, scaled by the harm rank
        hp = (np.argsort(np.argsort(harm, kind="stable"), kind="stable") + 0.5) / n
        up, down = np.clip(2.0 * (rr - rc), 0.0, 1.0), np.clip(2.0 * (rc - rr), 0.0, 1.0)
        rank_flip = np.maximum(up * (0.6 + 0.4 * hp), 0.5 * down * (1.0 - hp))
        rank_flip = np.maximum(rank_flip, flip)
        scores = np.clip(1.0 - (1.0 - rank_flip) * (1.0 - self.margin_weight * below), 0.0, 1.0)
        agree = (raw < 0) if minfo.get("fitted") else np.ones(n, bool)
        flags = (flip >= self.flag_min_score) & agree
        evidence: dict[int, list[Evidence]] = {}
        for i in np.flatnonzero(flip >= 0.5 * self.flag_min_score):
            what = ("the chosen answer complies with a harmful-looking request while the rejected one refuses"
                    if safety[i] >= over[i] else
                    "the chosen answer refuses a benign-looking request while the rejected one helps")
            evidence[int(i)] = [Evidence(
                self.id, "safety_flip",
                f"{what} (P(harmful)={harm[i]:.2f}, refusal style chosen {rc[i]:.2f} vs rejected {rr[i]:.2f}; "
                f"held-out preference margin z={z[i]:.2f}); rejected: {clip_text(pairs.rejected[i], 160)!r}",
                value=float(scores[i]), side="response", span=(0, min(len(pairs.response[i]), 200)),
                span_text=clip_text(pairs.response[i], 200))]
        findings: list[dict[str, Any]] = []
        if flags.any():
            findings.append({"id": "flipped_preference:safety", "kind": "flipped_preference",
                             "support": int(flags.sum()), "rows": [int(r) for r in pairs.row[flags][:1000]]})
        src_tests: list[dict[str, Any]] = []
        if pairs.source is not None and minfo.get("fitted"):
            src = np.asarray(pairs.source, dtype=object)
            names, counts = np.unique(src, return_counts=True)
            per = [(s, np.flatnonzero(src == s)) for s, c in zip(names, counts)
                   if c >= self.min_source_pairs and c < n]
            if len(per) >= 2:
                dis = raw < 0
                res = []
                for _s, rows in per:  # disagreement with the held-out model: this source vs the rest
                    a = int(dis[rows].sum())
                    b = len(rows) - a
                    c = int(dis.sum()) - a
                    d = (n - len(rows)) - c
                    res.append((z_sum_lower(z, rows)[0], fisher_exact_greater(a, b, c, d)))
                qs = bh([p for _z, p in res])
                for (s, rows), (stat, p), q in zip(per, res, qs):
                    src_tests.append({"source": str(s), "pairs": int(len(rows)), "z": round(stat, 3),
                                      "p_value": p, "q_value": float(q)})
                    if q <= self.alpha:
                        fid = f"flipped_preference/source/{s}"
                        findings.append({"id": fid, "kind": "source_label_skew", "source": str(s),
                                         "support": int(len(rows)), "z": round(stat, 3), "p_value": p,
                                         "q_value": float(q), "rows": [int(r) for r in pairs.row[rows][:1000]]})
                        boost = np.where(raw[rows] < 0, 0.5 + 0.4 * below[rows], scores[rows])
                        scores[rows] = np.maximum(scores[rows], boost)
                        for i in rows[raw[rows] < 0]:
                            evidence.setdefault(int(i), []).append(Evidence(
                                self.id, "source_margin_stouffer",
                                f"source {str(s)!r}: its {len(rows)} pairs prefer what the rest of the data rejects "
                                f"more often than other sources (Fisher p={p:.2g}, q={q:.2g}; margins Stouffer "
                                f"z={stat:.2f})", value=float(scores[i]),
                                p_value=p, q_value=float(q), finding=fid))
        summary = {"applies": True, "margin_model": minfo, "n_flagged": int(flags.sum()),
                   "n_safety_flips": int((safety >= self.flag_min_score).sum()),
                   "n_over_refusal_flips": int((over >= self.flag_min_score).sum()),
                   "harm_mode": hextra["info"]["mode"], "source_tests": src_tests[:50]}
        return DetectorResult(self.id, scores, flags, evidence, findings, summary)
