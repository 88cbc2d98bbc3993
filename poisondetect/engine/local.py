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
   ``finalize_stats(stats)``, run once between the passes (see
   :func:`~poisondetect.engine.assembly.finalize_all`); without it, any dataset-level
   analysis inside ``score`` is repeated for every chunk.

Only the merged statistics, the per-pair scores/flags/evidence and the text of the pairs
that end up flagged or in the top ``top_text`` are held in memory; the input is read again
for pass 2.  Every chunk's partial statistics and results are checkpointed in
``work_dir`` (pickle-free ``.npz``, see :mod:`.codec`), keyed by the chunk's content hash
and the scan configuration, so a killed scan rerun with the same ``work_dir`` skips the
chunks it already did and ends with the same result.

Detectors that are neither mergeable nor per-row ("global": they need the whole dataset,
e.g. clustering, kNN density) are handled by ``unsupported`` (see :mod:`.assembly` and
:mod:`.candidates`):

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
import os
import tempfile
import time
from collections import deque
from typing import Any, Callable, Iterable

from .._parallel import fork_pool, result_of
from ..context import ScanContext
from ..detectors.base import Detector
from ..errors import InputError
from ..fusion import jsonable
from ..pipeline import ScanResult
from ..types import Pairs
from . import codec
from .assembly import Collector, checked, finalize_all, finish, run_whole
from .candidates import run_candidates
from .chunking import ChunkSource, chunk_hash, concat_results
from .plan import ScanPlan

OnChunk = Callable[[str, int, int], None]


# --------------------------------------------------------------------------------------
# the local two-pass engine
# --------------------------------------------------------------------------------------

def scan_local(chunks: ChunkSource, plan: ScanPlan, *, work_dir: str | None, cache_dir: str | None,
               keep_text: str, top_text: int, candidate_top: int, candidate_background: int, progress: Any,
               on_chunk: OnChunk | None, load_info: dict[str, Any] | None, chunk_size: int,
               n_jobs: int = 1) -> ScanResult:
    """The local engine of :func:`poisondetect.engine.scan_streaming` (see the module doc):
    checkpoints in ``work_dir`` (default: a temporary folder, removed at the end)."""
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="poisondetect-scan-") as tmp:
            return _scan_local(chunks, plan, tmp, cache_dir, keep_text, top_text, candidate_top,
                               candidate_background, progress, on_chunk, load_info, chunk_size, n_jobs)
    return _scan_local(chunks, plan, work_dir, cache_dir, keep_text, top_text, candidate_top,
                       candidate_background, progress, on_chunk, load_info, chunk_size, n_jobs)


def _scan_local(chunks: ChunkSource, plan: ScanPlan, work_dir: str, cache_dir: str | None, keep_text: str,
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
    col = Collector(plan, "all" if whole else keep_text, top_text)
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
        results[det.id].info.setdefault("params", jsonable(det.get_params()))
        results[det.id].info["streaming"] = plan.modes[det.id]

    # ---- detectors that need the whole dataset ---------------------------------------
    if whole:
        t = time.perf_counter()
        run_whole(whole, whole_parts, plan, cache_dir, results, tick)
        timings["whole"] = time.perf_counter() - t
    if cands:
        t = time.perf_counter()
        run_candidates(chunks, plan, cands, results, n_total, hashes, cache_dir, candidate_top,
                        candidate_background, col, tick)
        timings["candidates"] = time.perf_counter() - t

    results = {d.id: results[d.id] for d in plan.dets}  # registry order, as pipeline.scan
    pairs = col.pairs()
    info = col.scan_info(chunks.info, load_info, n_total, {
        "engine": "local", "chunk_size": chunk_size, "n_chunks": len(hashes),
        "modes": dict(plan.modes), "resumed_chunks": resumed}, plan.skipped)
    if not_checkpointed:
        info["streaming"]["not_checkpointed"] = not_checkpointed
    timings["total"] = time.perf_counter() - t_start
    return finish(pairs, results, plan, timings, info, "local", chunk_size)


# --------------------------------------------------------------------------------------
# per-chunk work (run inline, or in forked worker processes with n_jobs > 1)
# --------------------------------------------------------------------------------------

_JOB: dict[str, Any] = {}  # what forked workers inherit (set before the pool forks)


def _pass1_chunk(job: dict[str, Any], k: int, chunk: Pairs) -> dict[str, Any]:
    """Per-row detectors and partial statistics of one chunk (from its checkpoint when
    there is one)."""
    plan: ScanPlan = job["plan"]
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
                out["results"][det.id] = checked(det, det.run(chunk, ctx), len(chunk))
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
    plan: ScanPlan = job["plan"]
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
        out["results"][det.id] = checked(det, det.score(chunk, ctx, job["merged"][det.id]), len(chunk))
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
    global _JOB
    _JOB = job  # before the pool forks its workers
    pool = fork_pool(n_jobs)
    if pool is None:  # pragma: no cover - platforms without fork
        _JOB = {}
        for k, chunk in enumerate(chunks):
            yield k, chunk, fn(job, k, chunk)
        return
    window: deque = deque()

    def take() -> Any:
        k0, c0, fut = window.popleft()
        return k0, c0, result_of(fut, f"a worker process of the streamed scan (n_jobs={n_jobs})",
                                 " or smaller chunks (--chunk-size)")

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
                 ckdir: str, stats_key: str, plan: "ScanPlan", cache_dir: str | None, wrap: Any,
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
