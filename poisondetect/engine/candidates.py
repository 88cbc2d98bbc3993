"""Global detectors on a bounded candidate subset (``unsupported="candidates"``): the
subset (flagged, top fused scores, a deterministic background sample), the run on it, and
its result spread back to every pair."""
from __future__ import annotations

import time

import numpy as np

from ..detectors.base import Detector
from ..errors import InputError
from ..fusion import fuse_scores
from ..hashing import GOLDEN64, MIX64_M1
from ..types import DetectorResult, Pairs
from .assembly import Collector, Tick, checked
from .chunking import ChunkSource, chunk_hash
from .plan import ScanPlan


def candidate_positions(results: dict[str, DetectorResult], plan: ScanPlan, rows: np.ndarray, n: int,
                        top: int, background: int) -> np.ndarray:
    """Positions of the subset a global detector runs on: flagged by a streamed detector,
    the ``top`` highest fused scores, and a deterministic background sample (a hash of the
    row number and the seed, so it does not depend on chunking or engine)."""
    streamed = [r for r in results.values()]
    keep = np.zeros(n, dtype=bool)
    if streamed:
        fused = fuse_scores(streamed, plan.weights())
        for r in streamed:
            keep |= r.flags
        if top > 0:
            order = np.lexsort((rows, -fused))[:top]
            keep[order[fused[order] > 0]] = True
    if background > 0:
        # splitmix64-style hash of (row, seed) -> uniform key; take the smallest keys
        x = (rows.astype(np.uint64) * GOLDEN64) ^ np.uint64(plan.random_state + 1)
        x ^= x >> np.uint64(31)
        x *= MIX64_M1
        x ^= x >> np.uint64(29)
        pos = np.lexsort((np.arange(n), x))[:background]
        keep[pos] = True
    return np.flatnonzero(keep)


def run_candidates(chunks: ChunkSource, plan: ScanPlan, cands: list[Detector], results: dict[str, DetectorResult],
                   n_total: int, hashes: list[str], cache_dir: str | None, top: int, background: int,
                   col: Collector, tick: Tick) -> None:
    """Run the global detectors ``cands`` on the candidate subset of the input (see
    :func:`candidate_positions`), into ``results``; the subset's texts are kept in ``col``."""
    rows = np.concatenate(col.rows) if col.rows else np.zeros(0, np.int64)
    pos = candidate_positions(results, plan, rows, n_total, top, background)
    parts: list[Pairs] = []
    offset = 0
    for k, chunk in enumerate(iter(chunks)):
        if k >= len(hashes) or chunk_hash(chunk) != hashes[k]:
            raise InputError("the input changed between the passes of a streamed scan")
        sel = pos[(pos >= offset) & (pos < offset + len(chunk))] - offset
        if len(sel):
            parts.append(chunk.take(sel))
            for i in sel:
                col.texts.setdefault(offset + int(i), (chunk.instruction[i], chunk.response[i]))
        offset += len(chunk)
    sub = Pairs.concat(parts) if parts else Pairs([], [])
    ctx = plan.context(sub, cache_dir)
    for det in cands:
        t = time.perf_counter()
        r = checked(det, det.run(sub, ctx), len(sub))
        tick(f"detector:{det.id}", time.perf_counter() - t)
        results[det.id] = expand_result(r, pos, n_total, len(pos))


def expand_result(r: DetectorResult, pos: np.ndarray, n: int, n_sub: int) -> DetectorResult:
    """A result over a subset (positions ``pos``) spread back to all ``n`` pairs (0 elsewhere)."""
    scores = np.zeros(n)
    flags = np.zeros(n, dtype=bool)
    scores[pos] = r.scores
    flags[pos] = r.flags
    ev = {int(pos[int(i)]): e for i, e in r.evidence.items()}
    info = dict(r.info)
    info["streaming"] = "candidates"
    info["n_candidates"] = int(n_sub)
    return DetectorResult(r.detector, scores, flags, ev, r.findings, dict(r.summary, n_candidates=int(n_sub)), info)
