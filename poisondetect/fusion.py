"""Fusion and ranking of detector results: the fused score, the rank order, the flags,
and the JSON-able copy of the parameters a scan records."""
from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import numpy as np

from .detectors.base import detector_kind
from .types import DetectorResult


def fuse_scores(results: Sequence[DetectorResult], weights: dict[str, float] | None = None,
                gate_power: float = 2.0) -> np.ndarray:
    """Noisy-OR of weighted, flag-gated per-detector scores: 1 - prod(1 - w_d * g_d(s_d)).

    ``g_d`` leaves a score as it is on the rows the detector flags (its own decision,
    calibrated per detector) and shrinks it below that decision threshold:
    ``g(s) = s * (s / t_d) ** gate_power`` where ``t_d`` is the lowest score among the
    detector's flagged rows (1.0 when it flags none).  So a detector that spreads
    middling scores over hundreds of unflagged rows (a topic that merely looks unsafe, a
    large source) does not outrank the rows another detector actually flags, while a
    score just under a threshold still counts.  ``gate_power=0`` is the plain noisy-OR.

    Monotone in every detector's score, in [0, 1], and dominated by the strongest
    evidence (a single confident detector is enough to rank a pair high) while agreeing
    detectors add up.
    """
    if not results:
        return np.zeros(0)
    n = len(results[0].scores)
    log_keep = np.zeros(n)
    for r in results:
        w = 1.0 if weights is None else float(weights.get(r.detector, 1.0))
        s = np.clip(np.nan_to_num(np.asarray(r.scores, dtype=np.float64), nan=0.0), 0.0, 1.0)
        if gate_power > 0:
            flags = np.asarray(r.flags, dtype=bool)
            t = float(s[flags].min()) if flags.any() else 1.0
            if t > 0:
                s = np.where(flags | (s >= t), s, s * (s / t) ** gate_power)
        s = np.clip(s * w, 0.0, 1.0 - 1e-12)
        log_keep += np.log1p(-s)
    return -np.expm1(log_keep) + 0.0  # + 0.0 turns -0.0 into 0.0


def rank_order(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions sorted by score descending, ties broken by original row (deterministic)."""
    return np.lexsort((rows, -scores))


def or_flags(results: Iterable[DetectorResult], n: int, poisoning_only: bool = False) -> np.ndarray:
    """OR of the detectors' flags (of the poisoning detectors only, if asked)."""
    flagged = np.zeros(n, dtype=bool)
    for r in results:
        if not poisoning_only or detector_kind(r.detector) == "poisoning":
            flagged |= r.flags
    return flagged


def poisoning_flags(results: Iterable[DetectorResult], n: int) -> np.ndarray:
    """Pairs flagged as poisoning evidence (what ``ScanResult.flagged`` holds)."""
    return or_flags(results, n, poisoning_only=True)


def jsonable(obj: Any) -> Any:
    """``obj`` itself when ``json.dumps`` takes it, else a copy with string keys, lists for
    tuples and sets, and ``repr`` for anything else."""
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        if isinstance(obj, dict):
            return {str(k): jsonable(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple, set)):
            return [jsonable(v) for v in obj]
        return repr(obj)
