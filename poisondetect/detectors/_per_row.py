"""The row loop of a per-row detector that reads each side of a pair on its own."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..types import Evidence, Pairs

#: ``(pair index, side, text) -> (score, evidence)`` of one side of one pair
SideHits = Callable[[int, str, str], "tuple[float, list[Evidence]]"]


def best_of_sides(pairs: Pairs, sides: Sequence[str], side_hits: SideHits) -> tuple[np.ndarray, dict[int, list[Evidence]]]:
    """Per-pair scores and evidence from ``side_hits`` on each of ``sides`` (in that
    order) of every pair: a pair scores the best of its sides (0 when none scores) and
    keeps the evidence of all of them (no entry when there is none)."""
    n = len(pairs)
    scores = np.zeros(n)
    evidence: dict[int, list[Evidence]] = {}
    for i in range(n):
        best = 0.0
        ev: list[Evidence] = []
        for side in sides:
            text = pairs.instruction[i] if side == "instruction" else pairs.response[i]
            sc, hits = side_hits(i, side, text)
            best = max(best, sc)
            ev.extend(hits)
        if best > 0:
            scores[i] = best
        if ev:
            evidence[i] = ev
    return scores, evidence
