"""Near-duplicate groups, cleanlab Datalab's definition (NearDuplicateIssueManager).

Per side, two pairs are near duplicates when their cosine distance is below
``threshold * median nearest-neighbour distance`` (0.13, cleanlab's default; when the
median is 0 because of exact duplicates, only exact duplicates count); groups are the
connected components of those edges in the shared kNN graph.

A group is scored by what it means for poisoning:
- the same (or a reworded) *response* given to unrelated instructions is a payload
  signal: score ``instr_div**4 * specificity`` of the group (diversity relative to random
  pairs; the 4th power keeps one passage asked about many times, diversity ~0.6, low) (see ``payload_cluster``),
  capped at 0.9; finding kind ``near_duplicate_payload``;
- a whole pair duplicated (both sides) is hygiene: score ``dup_score`` (small), finding
  kind ``near_duplicate``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ..embed.shared import group_profile, knn_k, specificity
from ..types import DetectorResult, Evidence, Pairs
from .base import Detector, register


def near_duplicate_groups(idx: np.ndarray, dist: np.ndarray, threshold: float) -> tuple[np.ndarray, float]:
    """Component labels (-1 = no near duplicate) and the absolute distance cut."""
    n = len(idx)
    if n == 0 or idx.shape[1] == 0:
        return np.full(n, -1, np.int64), 0.0
    med = float(np.median(dist[:, 0]))
    cut = threshold * med
    e = dist <= (cut if cut > 0 else 1e-6)
    rows = np.repeat(np.arange(n), idx.shape[1])[e.ravel()]
    cols = idx.ravel()[e.ravel()]
    ok = cols >= 0
    g = sparse.csr_matrix((np.ones(int(ok.sum()), np.int8), (rows[ok], cols[ok])), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    sizes = np.bincount(lab)
    lab = np.where(sizes[lab] > 1, lab, -1)
    # canonical ids by first member
    out = np.full(n, -1, np.int64)
    seen: dict[int, int] = {}
    for i, l in enumerate(lab):
        if l >= 0:
            out[i] = seen.setdefault(int(l), len(seen))
    return out, float(cut)


@register
class NearDuplicate(Detector):
    id = "near_duplicate"
    kind = "quality"
    description = "near-duplicate groups (cleanlab definition); shared responses with unrelated instructions"
    requires = ("embeddings",)
    weight = 0.8

    def __init__(self, *, k: int = 10, threshold: float = 0.13, min_payload_group: int = 3,
                 dup_score: float = 0.05, max_findings: int = 200, div_power: float = 4.0,
                 random_state: int = 0) -> None:
        self.k = k
        self.threshold = threshold
        self.min_payload_group = min_payload_group
        self.dup_score = dup_score
        self.max_findings = max_findings
        self.div_power = div_power
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        k = knn_k(self.k, n)
        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        evidence: dict[int, list[Evidence]] = {}
        findings: list[dict[str, Any]] = []
        if k < 1:
            return DetectorResult(self.id, scores, flags)
        labs = {}
        cuts = {}
        for side in ("response", "instruction"):
            idx, dist = ctx.knn(side, k)
            labs[side], cuts[side] = near_duplicate_groups(idx, dist, self.threshold)
        lr, li = labs["response"], labs["instruction"]
        n_groups = int(lr.max() + 1) if n else 0
        order = np.argsort(lr, kind="stable")
        bounds = np.searchsorted(lr[order], np.arange(-1, n_groups + 1))
        payload_groups = []
        for g in range(n_groups):
            rows = order[bounds[g + 1]:bounds[g + 2]]
            if len(rows) < self.min_payload_group:
                continue
            prof = group_profile(ctx, rows)
            spec = specificity(pairs.response[prof["medoid"]])
            s = min(0.9, prof["instr_div"] ** self.div_power * spec)
            if s <= 0.05:
                continue
            payload_groups.append((s, g, rows, prof, spec))
        payload_groups.sort(key=lambda t: (-t[0], int(t[2][0])))
        for s, g, rows, prof, spec in payload_groups:
            scores[rows] = np.maximum(scores[rows], s)
            flags[rows] |= s >= 0.25
            fid = f"near_duplicate_payload:{g}"
            if len(findings) < self.max_findings:
                findings.append({
                    "id": fid, "kind": "near_duplicate_payload", "detector": self.id,
                    "size": int(len(rows)), "rows": [int(r) for r in pairs.row[rows]],
                    "payload": pairs.response[prof["medoid"]][:500], "score": round(float(s), 4),
                    "instr_div": round(prof["instr_div"], 4), "specificity": round(spec, 4)})
            for i in rows:
                evidence.setdefault(int(i), []).append(Evidence(
                    self.id, "shared_response",
                    f"near-identical response shared by {len(rows)} pairs with unrelated instructions "
                    f"(instruction diversity {prof['instr_div']:.2f})",
                    value=float(s), side="response", finding=fid))
        # whole-pair duplicates
        both = (lr >= 0) & (li >= 0)
        if both.any():
            key = lr.astype(np.int64) * (int(li.max()) + 2) + li
            key = np.where(both, key, -1)
            _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
            dup = both & (cnt[inv] > 1)
            scores[dup] = np.maximum(scores[dup], self.dup_score)
            n_dup_groups = len(np.unique(key[dup]))
        else:
            dup = both
            n_dup_groups = 0
        return DetectorResult(
            self.id, scores, flags, evidence, findings,
            summary={"n_response_groups": n_groups, "n_payload_groups": len(payload_groups),
                     "n_duplicate_pairs": int(dup.sum()), "n_duplicate_groups": int(n_dup_groups)},
            info={"cut_response": cuts["response"], "cut_instruction": cuts["instruction"]})
