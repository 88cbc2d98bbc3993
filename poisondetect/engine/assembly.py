"""What both streaming engines (local and Ray) do around their passes: check a detector's
result, finalize the merged statistics, collect the columns and the texts worth keeping,
run the whole-dataset detectors, and assemble the final :class:`ScanResult`."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from ..detectors.base import Detector, MergeableDetector
from ..fusion import fuse_scores, jsonable, poisoning_flags, rank_order
from ..pipeline import ScanResult
from ..types import DetectorResult, Pairs
from .plan import ScanPlan

Tick = Callable[[str, float], None]


def checked(det: Detector, res: DetectorResult, n: int) -> DetectorResult:
    """``res`` after checking it has one score per pair (``n``), with the detector's
    parameters recorded in its info."""
    if res.scores.shape != (n,):
        raise RuntimeError(f"detector {det.id} returned {res.scores.shape} scores for {n} pairs")
    res.info.setdefault("params", jsonable(det.get_params()))
    return res


def finalize_all(mergeable: list[MergeableDetector], merged: dict[str, Any],
                 tick: Tick | None = None) -> dict[str, Any]:
    """The merged statistics after ``finalize_stats`` of every mergeable detector (see
    :meth:`~poisondetect.detectors.base.MergeableDetector.finalize_stats`), called once
    before any ``score`` call."""
    out = dict(merged)
    for det in mergeable:
        t = time.perf_counter()
        out[det.id] = det.finalize_stats(merged[det.id])
        if tick is not None:
            tick(f"detector:{det.id}", time.perf_counter() - t)
    return out


def run_whole(whole: list[Detector], parts: list[Pairs], plan: ScanPlan, cache_dir: str | None,
              results: dict[str, DetectorResult], tick: Tick) -> None:
    """Run the whole-dataset detectors (``unsupported="whole"``) once on all the pairs
    (``parts``, emptied here), into ``results``."""
    allp = Pairs.concat(parts)
    parts.clear()
    ctx = plan.context(allp, cache_dir)
    for det in whole:
        t0 = time.perf_counter()
        results[det.id] = checked(det, det.run(allp, ctx), len(allp))
        results[det.id].info["streaming"] = "whole"
        tick(f"detector:{det.id}", time.perf_counter() - t0)


def finish(pairs: Pairs, results: dict[str, DetectorResult], plan: ScanPlan, timings: dict[str, float],
           info: dict[str, Any], engine: str, chunk_size: int) -> ScanResult:
    """The :class:`ScanResult` of a streamed scan from its assembled results (fused,
    flagged and ranked as :func:`poisondetect.pipeline.scan` does)."""
    n = len(pairs)
    scores = fuse_scores(list(results.values()), plan.weights()) if results else np.zeros(n)
    flagged = poisoning_flags(results.values(), n)
    order = rank_order(scores, pairs.row)
    return ScanResult(pairs, results, scores, flagged, order, params=plan.params(engine, chunk_size),
                      timings=timings, load_info=info)


class Collector:
    """Per-chunk results of every detector, the row/turn/source columns, and the text of
    the pairs that can end up in a report (flagged, or among the ``top_text`` best)."""

    def __init__(self, plan: ScanPlan, keep_text: str, top_text: int) -> None:
        self.plan = plan
        self.parts: dict[str, list[DetectorResult]] = {d.id: [] for d in plan.dets}
        self.rows: list[np.ndarray] = []
        self.turns: list[np.ndarray] = []
        self.sources: list[list[str]] | None = None
        self.keep_all = keep_text == "all"
        self.top_text = int(top_text)
        self.texts: dict[int, tuple[str, str]] = {}
        self.flagged_pos: set[int] = set()
        self._top: list[tuple[float, int, int]] = []  # (score, row, pos) of unflagged candidates
        self.n = 0
        self.n_records = 0
        self._last_row: int | None = None

    def add_columns(self, chunk: Pairs) -> None:
        self.rows.append(chunk.row.copy())
        self.turns.append(chunk.turn.copy())
        if chunk.source is not None:
            if self.sources is None:
                self.sources = [[""] * len(r) for r in self.rows[:-1]]
            self.sources.append(list(chunk.source))
        elif self.sources is not None:
            self.sources.append([""] * len(chunk))
        if len(chunk):
            r = chunk.row
            self.n_records += int(np.count_nonzero(r[1:] != r[:-1])) + int(self._last_row != int(r[0]))
            self._last_row = int(r[-1])
        self.n += len(chunk)

    def keep_texts(self, offset: int, chunk: Pairs, results: dict[str, DetectorResult]) -> None:
        """Called once per chunk when all its streamed results are known."""
        n = len(chunk)
        if self.keep_all:
            for i in range(n):
                self.texts[offset + i] = (chunk.instruction[i], chunk.response[i])
            return
        if not results or n == 0:
            return
        fused = fuse_scores(list(results.values()), self.plan.weights())
        flagged = np.zeros(n, dtype=bool)
        for r in results.values():
            flagged |= r.flags
        for i in np.flatnonzero(flagged):
            self.flagged_pos.add(offset + int(i))
            self.texts[offset + int(i)] = (chunk.instruction[i], chunk.response[i])
        if self.top_text <= 0:
            return
        cand = np.flatnonzero(~flagged & (fused > 0))
        if len(cand) > self.top_text:
            o = np.lexsort((chunk.row[cand], -fused[cand]))[: self.top_text]
            cand = cand[o]
        for i in cand:
            pos = offset + int(i)
            self._top.append((float(fused[i]), int(chunk.row[i]), pos))
            self.texts[pos] = (chunk.instruction[i], chunk.response[i])
        if len(self._top) > 2 * self.top_text:
            self._prune()

    def _prune(self) -> None:
        self._top.sort(key=lambda t: (-t[0], t[1], t[2]))
        for _, _, pos in self._top[self.top_text:]:
            if pos not in self.flagged_pos:
                self.texts.pop(pos, None)
        self._top = self._top[: self.top_text]

    def pairs(self) -> Pairs:
        self._prune()
        ins = [""] * self.n
        res = [""] * self.n
        for pos, (a, b) in self.texts.items():
            ins[pos] = a
            res[pos] = b
        row = np.concatenate(self.rows) if self.rows else np.zeros(0, np.int64)
        turn = np.concatenate(self.turns) if self.turns else np.zeros(0, np.int32)
        src = None if self.sources is None else [s for part in self.sources for s in part]
        return Pairs(ins, res, row=row, turn=turn, source=src)

    def scan_info(self, source_info: dict[str, Any], load_info: dict[str, Any] | None, n_pairs: int,
                  streaming: dict[str, Any], skipped: dict[str, str]) -> dict[str, Any]:
        """A streamed scan's ``load_info``: the source's, then the caller's, the counts, the
        engine's ``streaming`` entries followed by what text was kept, and the skipped
        detectors.  Call it after :meth:`pairs` (which drops the text no report needs)."""
        info = dict(source_info)
        info.update(load_info or {})
        info.setdefault("n_records", self.n_records)
        info["n_pairs"] = n_pairs
        info["streaming"] = {**streaming, "text_kept": "all" if self.keep_all else f"flagged + top {self.top_text}",
                             "n_texts_kept": len(self.texts)}
        if skipped:
            info["skipped_detectors"] = dict(skipped)
        return info
