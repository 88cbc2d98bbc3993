"""Streaming scan on one machine, in bounded memory.

Two passes over the input, one chunk at a time:

1. **statistics pass**: for every chunk, mergeable detectors compute
   ``partial_stats(chunk, ctx)`` (folded left-to-right with ``merge_stats``, so the merge
   order, and therefore the result, never depends on timing), and per-row detectors run
   outright (``run(chunk, ctx)``: exact, because they use no dataset-level statistic).
   Between the passes, a detector whose finalized statistics ask for it
   (``needs_verify``) gets a **verify pass**: ``verify_stats(chunk, ctx, stats)`` on every
   chunk, merged with ``merge_verify`` and closed by ``finalize_verify`` (the n-gram
   detector counts the candidates it found on its bounded sample over every pair).
2. **scoring pass** (only when a mergeable detector is on): every chunk is scored with
   ``score(chunk, ctx, merged_stats)``.  A detector may define the optional
   ``finalize_stats(stats)``, run once between the passes (see :func:`finalize_all`);
   without it, any dataset-level analysis inside ``score`` is repeated for every chunk.

Only the merged statistics, the per-pair scores/flags/evidence and the text of the pairs
that end up flagged or in the top ``top_text`` are held in memory; the input is read again
for pass 2.  Every chunk's partial statistics and results are checkpointed in
``work_dir`` (pickle-free ``.npz``, see :mod:`.codec`), keyed by the chunk's content hash
and the scan configuration, so a killed scan rerun with the same ``work_dir`` skips the
chunks it already did and ends with the same result.

Detectors that are neither mergeable nor per-row ("global": they need the whole dataset,
e.g. clustering, kNN density) are handled by ``unsupported``:

- ``"skip"`` (default): not run; listed in ``load_info["skipped_detectors"]``.
- ``"whole"``: run once on the whole dataset after the passes, which holds every pair in
  memory (memory grows with the input: the cost streaming avoids).
- ``"candidates"``: run on a bounded subset: pairs flagged by the streamed detectors, the
  ``candidate_top`` highest fused scores, and a deterministic ``candidate_background``
  sample of the rest (the background the detector contrasts against); pairs outside the
  subset score 0.  Cost is bounded by the subset size, not the input; it is an
  approximation and is reported as one (``info["streaming"] == "candidates"``).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from typing import Any, Callable, Iterable

import numpy as np

from .. import __version__
from ..context import ScanContext
from ..detectors.base import Detector
from ..errors import ConfigError, InputError, PoisonDetectError
from ..pipeline import (ScanResult, _jsonable, fuse_scores, one_process, poisoning_flags, rank_order,
                        resolve_detectors)
from ..types import DetectorResult, Pairs
from . import codec
from .chunking import ChunkSource, chunk_hash, concat_results, open_chunks

UNSUPPORTED_POLICIES = ("skip", "whole", "candidates")
OnChunk = Callable[[str, int, int], None]


def streaming_mode(det: Detector, assume_per_row: Iterable[str] = ()) -> str:
    """How a detector can run on a stream: ``"mergeable"`` (implements ``partial_stats``
    / ``merge_stats`` / ``score``), ``"per_row"`` (declares ``per_row = True``: a pair's
    result does not depend on the other pairs, so chunk-wise ``run`` is exact) or
    ``"global"`` (neither)."""
    cls = type(det)
    if cls.merge_stats is not Detector.merge_stats and cls.score is not Detector.score:
        return "mergeable"
    if getattr(det, "per_row", False) or det.id in set(assume_per_row):
        return "per_row"
    return "global"


def streaming_support(detectors: Iterable[str | Detector] | None = None) -> dict[str, str]:
    """``{detector id: streaming mode}`` for the given (default: all registered) detectors."""
    from ..detectors.base import registry
    if detectors is None:
        dets: list[Detector] = [cls() for cls in registry().values()]
    else:
        dets = resolve_detectors(detectors)
    return {d.id: streaming_mode(d) for d in dets}


def scan_streaming(
    source: Any,
    *,
    chunk_size: int = 20_000,
    detectors: Iterable[str | Detector] | None = None,
    disable: Iterable[str] = (),
    detector_params: dict[str, dict[str, Any]] | None = None,
    embedding: dict[str, Any] | None = None,
    cache_dir: str | None = None,
    random_state: int = 0,
    engine: str = "local",
    unsupported: str = "skip",
    assume_per_row: Iterable[str] = (),
    candidate_top: int = 2000,
    candidate_background: int = 20000,
    work_dir: str | None = None,
    keep_text: str = "flagged",
    top_text: int = 1000,
    progress: Any = None,
    on_chunk: OnChunk | None = None,
    ray_options: dict[str, Any] | None = None,
    load_info: dict[str, Any] | None = None,
    n_jobs: int = 1,
    **load_kwargs: Any,
) -> ScanResult:
    """Scan ``source`` chunk by chunk; returns the same :class:`ScanResult` as
    :func:`poisondetect.pipeline.scan`.

    ``source``: a path (any format :func:`poisondetect.io.load` reads; JSONL, CSV and
    Parquet are streamed), a :class:`Pairs`, a list of ``Pairs`` chunks, or a callable
    returning a fresh iterator of ``Pairs`` (it is called once per pass).  ``load_kwargs``
    (``fmt``, ``layout``, ``*_field``, ``source_field``, ``skip_bad``, ``split``) go to the
    loader.  ``engine``: ``"local"`` or ``"ray"`` (Ray Data; ``ray_options`` go to
    :func:`poisondetect.engine.ray_engine.scan_ray`).  ``work_dir``: where checkpoints
    go; give one to be able to resume an interrupted scan (default: a temporary folder,
    removed at the end).  ``keep_text``: ``"flagged"`` keeps the text of flagged pairs and
    of the ``top_text`` highest-ranked ones (others hold ""), ``"all"`` keeps every text.
    ``on_chunk(phase, chunk_index, pairs_done)`` is called after each chunk.  ``n_jobs``
    (local engine): worker processes for the per-chunk work of every pass (forked; chunks
    come back in order, so the result equals ``n_jobs=1``).
    ``unsupported``: what to do with detectors that are neither mergeable nor per-row
    (``"skip"``, ``"whole"``, ``"candidates"``; see the module doc).  ``assume_per_row``:
    ids of detectors the caller vouches are per-row although they do not declare
    ``per_row = True`` (recorded in ``params["streaming"]``).
    """
    if engine not in ("local", "ray"):
        raise ConfigError(f"unknown engine {engine!r}; use 'local' or 'ray'")
    if unsupported not in UNSUPPORTED_POLICIES:
        raise ConfigError(f"unsupported= must be one of {', '.join(UNSUPPORTED_POLICIES)}")
    if keep_text not in ("flagged", "all"):
        raise ConfigError("keep_text= must be 'flagged' or 'all'")
    if chunk_size < 1:
        raise ConfigError("chunk_size must be >= 1")
    plan = _Plan.build(detectors, disable, detector_params, embedding, random_state, unsupported,
                       tuple(assume_per_row))
    if n_jobs <= 1 and engine == "local":
        one_process(plan.dets)
    chunks = open_chunks(source, chunk_size, **load_kwargs)
    _resolve_embedding_mode(plan, source)
    if engine == "ray":
        from .ray_engine import scan_ray
        return scan_ray(chunks, plan=plan, chunk_size=chunk_size, cache_dir=cache_dir, work_dir=work_dir,
                        keep_text=keep_text, top_text=top_text, candidate_top=candidate_top,
                        candidate_background=candidate_background, load_info=load_info,
                        progress=progress, **(ray_options or {}))
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="poisondetect-scan-") as tmp:
            return _scan_local(chunks, plan, tmp, cache_dir, keep_text, top_text, candidate_top,
                               candidate_background, progress, on_chunk, load_info, chunk_size, n_jobs)
    return _scan_local(chunks, plan, work_dir, cache_dir, keep_text, top_text, candidate_top,
                       candidate_background, progress, on_chunk, load_info, chunk_size, n_jobs)


def _resolve_embedding_mode(plan: "_Plan", source: Any) -> None:
    """``mode="auto"`` picks the embedder from the number of distinct texts of the scan;
    per chunk it would pick differently than for the whole dataset, so resolve it once
    here: exactly for an in-memory ``Pairs`` (as ``pipeline.scan`` does), and as "large"
    for streamed inputs (the static model on CPU, the transformer on a GPU)."""
    if (plan.embedding.get("mode") or "auto") != "auto" or not any("embeddings" in d.requires for d in plan.dets):
        return
    from ..embed.models import resolve_mode
    n_texts = len(set(source.instruction) | set(source.response)) if isinstance(source, Pairs) else 10 ** 9
    plan.embedding["mode"] = resolve_mode(plan.embedding, n_texts)


# --------------------------------------------------------------------------------------
# plan: which detector runs how
# --------------------------------------------------------------------------------------

class _Plan:
    def __init__(self) -> None:
        self.dets: list[Detector] = []
        self.modes: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self.embedding: dict[str, Any] = {}
        self.random_state = 0
        self.unsupported = "skip"

    @classmethod
    def build(cls, detectors: Any, disable: Iterable[str], detector_params: Any,
              embedding: dict[str, Any] | None, random_state: int, unsupported: str,
              assume_per_row: tuple[str, ...] = ()) -> "_Plan":
        p = cls()
        p.embedding = dict(embedding or {})
        p.random_state = int(random_state)
        p.unsupported = unsupported
        dets = resolve_detectors(detectors, disable, detector_params, random_state)
        if p.embedding.get("mode", "auto") == "none":
            for d in dets:
                if "embeddings" in d.requires:
                    p.skipped[d.id] = "embeddings disabled"
            dets = [d for d in dets if "embeddings" not in d.requires]
        for d in dets:
            mode = streaming_mode(d, assume_per_row)
            if mode == "global":
                if unsupported == "skip":
                    p.skipped[d.id] = ("needs the whole dataset and has no mergeable statistics "
                                       "(partial_stats/merge_stats/score); not run in a streamed scan "
                                       "(unsupported='whole' or 'candidates' runs it)")
                    continue
                mode = unsupported  # "whole" or "candidates"
            p.modes[d.id] = mode
            p.dets.append(d)
        return p

    def of(self, *modes: str) -> list[Detector]:
        return [d for d in self.dets if self.modes[d.id] in modes]

    def weights(self) -> dict[str, float]:
        return {d.id: d.weight for d in self.dets}

    def fingerprint(self) -> str:
        doc = {
            "version": __version__,
            "random_state": self.random_state,
            "embedding": _jsonable(self.embedding),
            # (n_jobs parameters change how fast, never what: not part of the key)
            "detectors": [[d.id, type(d).__module__, type(d).__qualname__, self.modes[d.id],
                           _jsonable({k: v for k, v in d.get_params().items() if k != "n_jobs"})]
                          for d in self.dets],
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=repr).encode()).hexdigest()

    def params(self, engine: str, chunk_size: int) -> dict[str, Any]:
        return {
            "random_state": self.random_state,
            "detectors": [d.id for d in self.dets],
            "embedding": _jsonable(self.embedding),
            "engine": engine,
            "chunk_size": int(chunk_size),
            "streaming": dict(self.modes),
        }

    def context(self, pairs: Pairs, cache_dir: str | None) -> ScanContext:
        return ScanContext(pairs, random_state=self.random_state, embedding=self.embedding, cache_dir=cache_dir)


def _checked(det: Detector, res: DetectorResult, n: int) -> DetectorResult:
    if res.scores.shape != (n,):
        raise RuntimeError(f"detector {det.id} returned {res.scores.shape} scores for {n} pairs")
    res.info.setdefault("params", _jsonable(det.get_params()))
    return res


# --------------------------------------------------------------------------------------
# accumulation of per-chunk results and of the texts worth keeping
# --------------------------------------------------------------------------------------

class _Collector:
    """Per-chunk results of every detector, the row/turn/source columns, and the text of
    the pairs that can end up in a report (flagged, or among the ``top_text`` best)."""

    def __init__(self, plan: _Plan, keep_text: str, top_text: int) -> None:
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


# --------------------------------------------------------------------------------------
# the local two-pass engine
# --------------------------------------------------------------------------------------

def _scan_local(chunks: ChunkSource, plan: _Plan, work_dir: str, cache_dir: str | None, keep_text: str,
                top_text: int, candidate_top: int, candidate_background: int, progress: Any,
                on_chunk: OnChunk | None, load_info: dict[str, Any] | None, chunk_size: int,
                n_jobs: int = 1) -> ScanResult:
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    ckdir = os.path.join(work_dir, f"scan-{plan.fingerprint()[:20]}")
    os.makedirs(ckdir, exist_ok=True)
    mergeable = plan.of("mergeable")
    per_row = plan.of("per_row")
    whole = plan.of("whole")
    cands = plan.of("candidates")
    two_pass = bool(mergeable)
    col = _Collector(plan, "all" if whole else keep_text, top_text)
    merged: dict[str, Any] = {}
    hashes: list[str] = []
    whole_parts: list[Pairs] = []
    not_checkpointed: dict[str, str] = {}
    resumed = {"pass1": 0, "verify": 0, "pass2": 0}

    def tick(key: str, dt: float) -> None:
        timings[key] = timings.get(key, 0.0) + dt

    def wrap(it: Any, desc: str) -> Any:
        return it if progress is None else progress(it, desc=desc, total=None)

    # ---- pass 1: partial statistics + per-row detectors -----------------------------
    t1 = time.perf_counter()
    offset = 0
    job = {"plan": plan, "ckdir": ckdir, "cache_dir": cache_dir}
    for k, chunk, out in _ordered(_pass1_chunk, job, wrap(iter(chunks), "scan pass 1 (chunks)"), n_jobs):
        hashes.append(out["hash"])
        for key, dt in out["ticks"].items():
            tick(key, dt)
        resumed["pass1"] += out["resumed"]
        for d, why in out["not_checkpointed"].items():
            not_checkpointed.setdefault(d, why)
        results = out["results"]
        if mergeable:
            partial = out["partial"]
            t = time.perf_counter()
            for det in mergeable:
                p = partial[det.id]
                merged[det.id] = p if k == 0 else det.merge_stats(merged[det.id], p)
            tick("merge_stats", time.perf_counter() - t)
        for d, r in results.items():
            col.parts[d].append(r)
        col.add_columns(chunk)
        if not two_pass:
            col.keep_texts(offset, chunk, results)
        if whole:
            whole_parts.append(chunk)
        offset += len(chunk)
        del chunk, out, results
        if on_chunk is not None:
            on_chunk("pass1", k, offset)
    timings["pass1"] = time.perf_counter() - t1
    n_total = offset

    # ---- pass 2: score every chunk against the merged statistics --------------------
    if two_pass:
        t2 = time.perf_counter()
        merged = finalize_all(mergeable, merged, tick)
        stats_key = hashlib.sha256((plan.fingerprint() + "".join(hashes)).encode()).hexdigest()[:20]
        verifying = [d for d in mergeable if d.needs_verify(merged[d.id])]
        if verifying:
            merged = _verify_pass(chunks, verifying, merged, hashes, ckdir, stats_key, plan, cache_dir,
                                  wrap, tick, resumed, n_jobs, on_chunk)
        offset = 0
        job = {"plan": plan, "ckdir": ckdir, "cache_dir": cache_dir, "merged": merged, "stats_key": stats_key,
               "hashes": hashes}
        for k, chunk, out in _ordered(_pass2_chunk, job, wrap(iter(chunks), "scan pass 2 (chunks)"), n_jobs):
            for key, dt in out["ticks"].items():
                tick(key, dt)
            resumed["pass2"] += out["resumed"]
            for d, r in out["results"].items():
                col.parts[d].append(r)
            known = {d: col.parts[d][k] for d in col.parts if len(col.parts[d]) > k}
            col.keep_texts(offset, chunk, known)
            offset += len(chunk)
            if on_chunk is not None:
                on_chunk("pass2", k, offset)
        if offset != n_total:
            raise InputError("the input changed between the two passes of a streamed scan")
        for det in mergeable:  # memoised whole-corpus analyses (see NgramTriggerDetector.score)
            getattr(det, "release", lambda: None)()
        del merged, job
        timings["pass2"] = time.perf_counter() - t2

    results = {d: concat_results(d, col.parts[d], plan.modes[d] == "per_row")
               for d in col.parts if plan.modes[d] in ("per_row", "mergeable")}
    for det in mergeable + per_row:
        results[det.id].info.setdefault("params", _jsonable(det.get_params()))
        results[det.id].info["streaming"] = plan.modes[det.id]

    # ---- detectors that need the whole dataset ---------------------------------------
    if whole:
        t = time.perf_counter()
        allp = Pairs.concat(whole_parts)
        whole_parts.clear()
        ctx = plan.context(allp, cache_dir)
        for det in whole:
            t0 = time.perf_counter()
            results[det.id] = _checked(det, det.run(allp, ctx), len(allp))
            results[det.id].info["streaming"] = "whole"
            tick(f"detector:{det.id}", time.perf_counter() - t0)
        del ctx, allp
        timings["whole"] = time.perf_counter() - t
    if cands:
        t = time.perf_counter()
        _run_candidates(chunks, plan, cands, results, n_total, hashes, cache_dir, candidate_top,
                        candidate_background, col, tick)
        timings["candidates"] = time.perf_counter() - t

    results = {d.id: results[d.id] for d in plan.dets}  # registry order, as pipeline.scan
    pairs = col.pairs()
    info = dict(chunks.info)
    info.update(load_info or {})
    info.setdefault("n_records", col.n_records)
    info["n_pairs"] = n_total
    info["streaming"] = {
        "engine": "local", "chunk_size": chunk_size, "n_chunks": len(hashes),
        "modes": dict(plan.modes), "resumed_chunks": resumed,
        "text_kept": "all" if col.keep_all else f"flagged + top {top_text}",
        "n_texts_kept": len(col.texts),
    }
    if not_checkpointed:
        info["streaming"]["not_checkpointed"] = not_checkpointed
    if plan.skipped:
        info["skipped_detectors"] = dict(plan.skipped)
    timings["total"] = time.perf_counter() - t_start
    return finish(pairs, results, plan, timings, info, "local", chunk_size)


# --------------------------------------------------------------------------------------
# per-chunk work (run inline, or in forked worker processes with n_jobs > 1)
# --------------------------------------------------------------------------------------

_JOB: dict[str, Any] = {}  # what forked workers inherit (set before the pool forks)


def _pass1_chunk(job: dict[str, Any], k: int, chunk: Pairs) -> dict[str, Any]:
    """Per-row detectors and partial statistics of one chunk (from its checkpoint when
    there is one)."""
    plan: _Plan = job["plan"]
    ckdir, cache_dir = job["ckdir"], job["cache_dir"]
    per_row, mergeable = plan.of("per_row"), plan.of("mergeable")
    h = chunk_hash(chunk)
    out: dict[str, Any] = {"hash": h, "results": {}, "partial": None, "ticks": {}, "resumed": 0,
                           "not_checkpointed": {}}
    ticks = out["ticks"]
    ctx: ScanContext | None = None
    res_path = os.path.join(ckdir, f"p1-{k:06d}-{h}.results.npz")
    stats_path = os.path.join(ckdir, f"p1-{k:06d}-{h}.stats.npz")
    if per_row:
        if os.path.exists(res_path):
            saved = codec.load(res_path)
            out["results"] = {d: codec.result_from_obj(o) for d, o in saved.items()}
            out["resumed"] = 1
        else:
            ctx = plan.context(chunk, cache_dir)
            for det in per_row:
                t = time.perf_counter()
                out["results"][det.id] = _checked(det, det.run(chunk, ctx), len(chunk))
                ticks[f"detector:{det.id}"] = ticks.get(f"detector:{det.id}", 0.0) + time.perf_counter() - t
            codec.save(res_path, {d: codec.result_to_obj(r) for d, r in out["results"].items()})
    if mergeable:
        if os.path.exists(stats_path):
            out["partial"] = codec.load(stats_path)
            out["resumed"] = 1 if (not per_row or out["resumed"]) else 0
        else:
            out["resumed"] = 0
            ctx = ctx or plan.context(chunk, cache_dir)
            partial = {}
            for det in mergeable:
                t = time.perf_counter()
                partial[det.id] = det.partial_stats(chunk, ctx)
                ticks[f"detector:{det.id}"] = ticks.get(f"detector:{det.id}", 0.0) + time.perf_counter() - t
            try:
                codec.save(stats_path, partial)
            except codec.CodecError as e:
                out["not_checkpointed"] = {det.id: str(e) for det in mergeable}
            out["partial"] = partial
    return out


def _pass2_chunk(job: dict[str, Any], k: int, chunk: Pairs) -> dict[str, Any]:
    """Score one chunk against the merged statistics (or load its checkpoint)."""
    plan: _Plan = job["plan"]
    h = chunk_hash(chunk)
    if k >= len(job["hashes"]) or h != job["hashes"][k]:
        raise InputError("the input changed between the two passes of a streamed scan")
    path = os.path.join(job["ckdir"], f"p2-{k:06d}-{h}-{job['stats_key']}.npz")
    out: dict[str, Any] = {"results": {}, "ticks": {}, "resumed": 0}
    if os.path.exists(path):
        saved = codec.load(path)
        out["results"] = {d: codec.result_from_obj(o) for d, o in saved.items()}
        out["resumed"] = 1
        return out
    ctx = plan.context(chunk, job["cache_dir"])
    for det in plan.of("mergeable"):
        t = time.perf_counter()
        out["results"][det.id] = _checked(det, det.score(chunk, ctx, job["merged"][det.id]), len(chunk))
        out["ticks"][f"detector:{det.id}"] = time.perf_counter() - t
    codec.save(path, {d: codec.result_to_obj(r) for d, r in out["results"].items()})
    return out


def _verify_chunk(job: dict[str, Any], k: int, chunk: Pairs) -> dict[str, Any]:
    """The verify-pass statistics of one chunk (or its checkpoint)."""
    h = chunk_hash(chunk)
    if k >= len(job["hashes"]) or h != job["hashes"][k]:
        raise InputError("the input changed between the passes of a streamed scan")
    path = os.path.join(job["ckdir"], f"pv-{k:06d}-{h}-{job['stats_key']}.npz")
    if os.path.exists(path):
        return {"partial": codec.load(path), "ticks": {}, "resumed": 1}
    ctx = job["plan"].context(chunk, job["cache_dir"])
    part, ticks = {}, {}
    for det in job["verifying"]:
        t = time.perf_counter()
        part[det.id] = det.verify_stats(chunk, ctx, job["merged"][det.id])
        ticks[f"detector:{det.id}"] = time.perf_counter() - t
    codec.save(path, part)
    return {"partial": part, "ticks": ticks, "resumed": 0}


def _call_job(fn: Callable[..., Any], k: int, chunk: Pairs) -> Any:
    return fn(_JOB, k, chunk)


def _ordered(fn: Callable[..., Any], job: dict[str, Any], chunks: Iterable[Pairs], n_jobs: int) -> Any:
    """Yield ``(k, chunk, fn(job, k, chunk))`` in chunk order.  With ``n_jobs > 1`` the
    calls run in forked worker processes (they inherit ``job``: plan, merged statistics),
    at most ``n_jobs + 1`` chunks in flight, so memory stays bounded; results come back
    in order, so merging (and therefore the result) does not depend on timing."""
    if n_jobs <= 1:
        for k, chunk in enumerate(chunks):
            yield k, chunk, fn(job, k, chunk)
        return
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    global _JOB
    _JOB = job
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    if method != "fork":  # pragma: no cover - platforms without fork
        for k, chunk in enumerate(chunks):
            yield k, chunk, fn(job, k, chunk)
        return
    pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context(method))
    window: deque = deque()

    def take() -> Any:
        k0, c0, fut = window.popleft()
        try:
            return k0, c0, fut.result()
        except BrokenProcessPool as e:
            raise PoisonDetectError(
                f"a worker process of the streamed scan (n_jobs={n_jobs}) died, e.g. killed for lack of "
                "memory; scan again with one process (--jobs 1) or smaller chunks (--chunk-size)") from e

    try:
        for k, chunk in enumerate(chunks):
            window.append((k, chunk, pool.submit(_call_job, fn, k, chunk)))
            if len(window) > n_jobs:
                yield take()
        while window:
            yield take()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _JOB = {}


def _verify_pass(chunks: ChunkSource, verifying: list[Detector], merged: dict[str, Any], hashes: list[str],
                 ckdir: str, stats_key: str, plan: "_Plan", cache_dir: str | None, wrap: Any,
                 tick: Callable[[str, float], None], resumed: dict[str, int], n_jobs: int = 1,
                 on_chunk: OnChunk | None = None) -> dict[str, Any]:
    """The optional verify pass (see :class:`~poisondetect.detectors.base.Detector`):
    ``verify_stats`` on every chunk (checkpointed like the other passes), folded
    left-to-right with ``merge_verify``, then ``finalize_verify`` on the merged statistics."""
    t0 = time.perf_counter()
    acc: dict[str, Any] = {}
    n = 0
    job = {"plan": plan, "ckdir": ckdir, "cache_dir": cache_dir, "stats_key": stats_key, "hashes": hashes,
           "verifying": verifying, "merged": {d.id: merged[d.id] for d in verifying}}
    done = 0
    for k, chunk, out in _ordered(_verify_chunk, job, wrap(iter(chunks), "scan verify pass (chunks)"), n_jobs):
        for key, dt in out["ticks"].items():
            tick(key, dt)
        resumed["verify"] += out["resumed"]
        for det in verifying:
            p = out["partial"][det.id]
            acc[det.id] = p if k == 0 else det.merge_verify(acc[det.id], p)
        n = k + 1
        done += len(chunk)
        if on_chunk is not None:
            on_chunk("verify", k, done)
    if n != len(hashes):
        raise InputError("the input changed between the passes of a streamed scan")
    out_stats = dict(merged)
    for det in verifying:
        t = time.perf_counter()
        out_stats[det.id] = det.finalize_verify(merged[det.id], acc.get(det.id))
        tick(f"detector:{det.id}", time.perf_counter() - t)
    tick("verify", time.perf_counter() - t0)
    return out_stats


def finalize_all(mergeable: list[Detector], merged: dict[str, Any],
                 tick: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """Optional protocol extension: a detector may define ``finalize_stats(stats)``,
    called once on the fully merged statistics before any ``score`` call (do the
    dataset-level analysis there, so that scoring each chunk is cheap)."""
    out = dict(merged)
    for det in mergeable:
        fin = getattr(det, "finalize_stats", None)
        if callable(fin):
            t = time.perf_counter()
            out[det.id] = fin(merged[det.id])
            if tick is not None:
                tick(f"detector:{det.id}", time.perf_counter() - t)
    return out


def finish(pairs: Pairs, results: dict[str, DetectorResult], plan: _Plan, timings: dict[str, float],
           info: dict[str, Any], engine: str, chunk_size: int) -> ScanResult:
    n = len(pairs)
    scores = fuse_scores(list(results.values()), plan.weights()) if results else np.zeros(n)
    flagged = poisoning_flags(results.values(), n)
    order = rank_order(scores, pairs.row)
    return ScanResult(pairs, results, scores, flagged, order, params=plan.params(engine, chunk_size),
                      timings=timings, load_info=info)


# --------------------------------------------------------------------------------------
# global detectors on a candidate subset
# --------------------------------------------------------------------------------------

def candidate_positions(results: dict[str, DetectorResult], plan: _Plan, rows: np.ndarray, n: int,
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
        x = (rows.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(plan.random_state + 1)
        x ^= x >> np.uint64(31)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(29)
        pos = np.lexsort((np.arange(n), x))[:background]
        keep[pos] = True
    return np.flatnonzero(keep)


def _run_candidates(chunks: ChunkSource, plan: _Plan, cands: list[Detector], results: dict[str, DetectorResult],
                    n_total: int, hashes: list[str], cache_dir: str | None, top: int, background: int,
                    col: _Collector, tick: Callable[[str, float], None]) -> None:
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
        r = _checked(det, det.run(sub, ctx), len(sub))
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
