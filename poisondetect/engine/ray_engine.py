"""Ray Data backend of :func:`poisondetect.engine.scan_streaming` (``engine="ray"``).

Optional dependency: ``pip install "ray[data]"`` (``poisondetect[ray]``).

The driver streams the input once into canonical Parquet shards (one per chunk: ``pos``,
``row``, ``turn``, ``instruction``, ``response``, ``source``), then:

1. ``read_parquet(shards).map_batches(_Pass1)``: on the workers, every batch goes through
   the same pure detector methods as the local engine: ``partial_stats`` for mergeable
   detectors, ``run`` for per-row ones.  Each batch returns one row: its first position
   and a pickle-free codec blob.  The driver folds the partial statistics in input order
   (``preserve_order``), exactly like the local engine.
2. ``map_batches(_Pass2)``: the merged statistics go to the workers through the object
   store (as codec bytes) and every batch is scored with ``score``.

Embeddings are computed on the workers (``ScanContext`` inside the worker, on-disk cache
in ``cache_dir``); with ``num_gpus > 0`` each worker actor gets that share of a GPU, and
the embedder uses it (``embedding["device"]`` unset = GPU when present).  Detectors that
need the whole dataset (``unsupported="whole"``/``"candidates"``) run on the driver.
Results are assembled by position, so they do not depend on how Ray cut the batches.
"""
from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

from ..context import ScanContext
from ..errors import ConfigError, InputError
from ..pipeline import ScanResult
from ..types import DetectorResult, Pairs
from . import codec
from .chunking import (ChunkSource, merge_findings, merge_summaries, shard_source, slice_result,
                       table_to_pairs, write_shards)
from .assembly import Collector, checked, finalize_all, finish, run_whole
from .candidates import run_candidates
from .plan import ScanPlan


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError('engine="ray" needs Ray Data: pip install "ray[data]" '
                          '(or pip install "poisondetect[ray]")') from None
    return ray


class _Worker:
    """Callable class run by Ray actors: one pass of the detectors over a batch."""

    def __init__(self, phase: str, dets: list[Any], modes: dict[str, str], embedding: dict[str, Any],
                 random_state: int, cache_dir: str | None, stats_ref: Any = None) -> None:
        self.phase = phase
        self.dets = dets
        self.modes = modes
        self.embedding = embedding
        self.random_state = random_state
        self.cache_dir = cache_dir
        self.stats: dict[str, Any] | None = None
        if stats_ref is not None:
            import ray
            self.stats = codec.loads(ray.get(stats_ref[0]))

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa
        pairs, pos = table_to_pairs(batch)
        ctx = ScanContext(pairs, random_state=self.random_state, embedding=self.embedding, cache_dir=self.cache_dir)
        out: dict[str, Any] = {"pos": pos}
        if self.phase == "pass1":
            out["partial"] = {d.id: d.partial_stats(pairs, ctx) for d in self.dets if self.modes[d.id] == "mergeable"}
            out["results"] = {d.id: codec.result_to_obj(checked(d, d.run(pairs, ctx), len(pairs)))
                              for d in self.dets if self.modes[d.id] == "per_row"}
        elif self.phase == "verify":
            assert self.stats is not None
            out["partial"] = {d.id: d.verify_stats(pairs, ctx, self.stats[d.id]) for d in self.dets
                              if d.id in self.stats}
        else:
            assert self.stats is not None
            out["results"] = {d.id: codec.result_to_obj(checked(d, d.score(pairs, ctx, self.stats[d.id]), len(pairs)))
                              for d in self.dets if self.modes[d.id] == "mergeable"}
        try:
            blob = codec.dumps(out)
        except codec.CodecError as e:
            raise ConfigError(f"engine='ray' ships partial statistics pickle-free and cannot: {e}") from None
        first = int(pos.min()) if len(pos) else -1
        return pa.table({"first": pa.array([first], pa.int64()), "n": pa.array([len(pos)], pa.int64()),
                         "blob": pa.array([blob], pa.large_binary())})


def _run_batch(batch: Any, **kw: Any) -> Any:
    return _Worker(**kw)(batch)


def _read_shards(batch: Any) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq
    return pa.concat_tables([pq.read_table(p) for p in batch.column("path").to_pylist()])


def scan_ray(chunks: ChunkSource, *, plan: ScanPlan, chunk_size: int, cache_dir: str | None, work_dir: str | None,
             keep_text: str, top_text: int, candidate_top: int, candidate_background: int,
             load_info: dict[str, Any] | None, progress: Any = None, address: str | None = None,
             num_cpus: int | None = None, num_gpus: float = 0.0, concurrency: int | None = None,
             batch_size: int | None = None, shutdown: bool | None = None) -> ScanResult:
    """Run a streamed scan on Ray Data (see the module doc).  ``address``/``num_cpus``
    go to ``ray.init`` when Ray is not initialised yet (then it is shut down at the end
    unless ``shutdown=False``); ``concurrency`` = worker actors (default: the cluster's
    CPUs, at most 8); ``num_gpus`` = GPU share per actor; ``batch_size`` (default
    ``chunk_size``) = pairs per Ray batch."""
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
        started = True
    try:
        if work_dir is None:
            with tempfile.TemporaryDirectory(prefix="poisondetect-ray-") as tmp:
                return _scan(ray, chunks, plan, chunk_size, cache_dir, tmp, keep_text, top_text, candidate_top,
                             candidate_background, load_info, num_gpus, concurrency, batch_size)
        return _scan(ray, chunks, plan, chunk_size, cache_dir, work_dir, keep_text, top_text, candidate_top,
                     candidate_background, load_info, num_gpus, concurrency, batch_size)
    finally:
        if started and shutdown is not False:
            ray.shutdown()


def _assemble(det_id: str, parts: list[tuple[np.ndarray, DetectorResult]], n: int, per_row: bool) -> DetectorResult:
    scores = np.zeros(n)
    flags = np.zeros(n, dtype=bool)
    seen = np.zeros(n, dtype=bool)
    evidence: dict[int, list[Any]] = {}
    for pos, r in parts:
        scores[pos] = r.scores
        flags[pos] = r.flags
        seen[pos] = True
        for i, evs in r.evidence.items():
            evidence[int(pos[int(i)])] = evs
    if not seen.all():
        raise RuntimeError(f"ray engine: {det_id} has no result for {int((~seen).sum())} pairs")
    evidence = dict(sorted(evidence.items()))
    summary = merge_summaries([r.summary for _, r in parts], per_row)
    if isinstance(summary.get("n_flagged"), int):
        summary["n_flagged"] = int(flags.sum())
    info = dict(parts[0][1].info) if parts else {}
    return DetectorResult(det_id, scores, flags, evidence,
                          merge_findings((r.findings for _, r in parts), per_row), summary, info)


def _scan(ray: Any, chunks: ChunkSource, plan: ScanPlan, chunk_size: int, cache_dir: str | None, work_dir: str,
          keep_text: str, top_text: int, candidate_top: int, candidate_background: int,
          load_info: dict[str, Any] | None, num_gpus: float, concurrency: int | None,
          batch_size: int | None) -> ScanResult:
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    mergeable = plan.of("mergeable")
    whole = plan.of("whole")
    cands = plan.of("candidates")

    t = time.perf_counter()
    paths, hashes, n_total = write_shards(iter(chunks), os.path.join(work_dir, "shards"))
    timings["shard"] = time.perf_counter() - t
    if n_total == 0:
        raise InputError("no pairs to scan")
    shards = shard_source(paths)

    dctx = ray.data.DataContext.get_current()
    dctx.execution_options.preserve_order = True
    if concurrency is None:
        concurrency = max(1, min(8, int(ray.cluster_resources().get("CPU", 1))))
    bs = int(batch_size or chunk_size)
    common = dict(batch_format="pyarrow", batch_size=bs, compute=ray.data.ActorPoolStrategy(size=concurrency))
    if num_gpus:
        common["num_gpus"] = num_gpus
    streamed = [d for d in plan.dets if plan.modes[d.id] in ("mergeable", "per_row")]
    wargs = dict(dets=streamed, modes=dict(plan.modes), embedding=plan.embedding,
                 random_state=plan.random_state, cache_dir=cache_dir)
    needs_model = any(("embeddings" in d.requires) or ("knn" in d.requires) for d in streamed)
    parts: dict[str, list[tuple[np.ndarray, DetectorResult]]] = {d.id: [] for d in streamed}
    merged: dict[str, Any] = {}

    def batches(phase: str, stats_ref: Any = None) -> Any:
        # shards are read on the workers (not ray.data.read_parquet: it needs fsspec's HTTP
        # filesystem, i.e. aiohttp, even for local files)
        ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=len(paths))
        ds = ds.map_batches(_read_shards, batch_size=1, batch_format="pyarrow")
        if stats_ref is None and not needs_model:
            # no model and no merged statistics to load: plain tasks (no actor start-up)
            out = ds.map_batches(_run_batch, fn_kwargs=dict(wargs, phase=phase), batch_format="pyarrow",
                                 batch_size=bs, **({"num_gpus": num_gpus} if num_gpus else {}))
        else:
            # actors: the embedding model / the merged statistics are loaded once per worker
            out = ds.map_batches(_Worker, fn_constructor_kwargs=dict(wargs, phase=phase, stats_ref=stats_ref),
                                 **common)
        last = -1
        for rec in out.iter_rows():
            if rec["n"] == 0:
                continue
            if rec["first"] <= last:
                raise RuntimeError("ray engine: batches came back out of order")
            last = rec["first"]
            yield codec.loads(rec["blob"])

    if streamed:
        t = time.perf_counter()
        first = True
        for out in batches("pass1"):
            for d, o in out["results"].items():
                parts[d].append((out["pos"], codec.result_from_obj(o)))
            for det in mergeable:
                p = out["partial"][det.id]
                merged[det.id] = p if first else det.merge_stats(merged[det.id], p)
            first = False
        timings["pass1"] = time.perf_counter() - t
    if mergeable:
        t = time.perf_counter()
        merged = finalize_all(mergeable, merged)
        verifying = [d for d in mergeable if d.needs_verify(merged[d.id])]
        if verifying:  # the optional verify pass (see Detector.needs_verify)
            tv = time.perf_counter()
            vref = ray.put(codec.dumps({d.id: merged[d.id] for d in verifying}))
            acc: dict[str, Any] = {}
            first = True
            for out in batches("verify", stats_ref=[vref]):
                for det in verifying:
                    p = out["partial"][det.id]
                    acc[det.id] = p if first else det.merge_verify(acc[det.id], p)
                first = False
            del vref
            for det in verifying:
                merged[det.id] = det.finalize_verify(merged[det.id], acc.get(det.id))
            timings["verify"] = time.perf_counter() - tv
        ref = ray.put(codec.dumps(merged))
        for out in batches("pass2", stats_ref=[ref]):
            for d, o in out["results"].items():
                parts[d].append((out["pos"], codec.result_from_obj(o)))
        del ref
        timings["pass2"] = time.perf_counter() - t

    results: dict[str, DetectorResult] = {}
    for det in streamed:
        r = _assemble(det.id, parts.pop(det.id), n_total, plan.modes[det.id] == "per_row")
        r.info["streaming"] = plan.modes[det.id]
        results[det.id] = r

    # driver: columns, kept texts, whole-dataset and candidate detectors
    col = Collector(plan, "all" if whole else keep_text, top_text)
    whole_parts: list[Pairs] = []
    offset = 0
    for chunk in shards:
        col.add_columns(chunk)
        end = offset + len(chunk)
        col.keep_texts(offset, chunk, {d: slice_result(r, offset, end) for d, r in results.items()})
        if whole:
            whole_parts.append(chunk)
        offset = end

    def tick(key: str, dt: float) -> None:
        timings[key] = timings.get(key, 0.0) + dt

    if whole:
        run_whole(whole, whole_parts, plan, cache_dir, results, tick)
    if cands:
        t = time.perf_counter()
        run_candidates(shards, plan, cands, results, n_total, hashes, cache_dir, candidate_top,
                       candidate_background, col, tick)
        timings["candidates"] = time.perf_counter() - t

    results = {d.id: results[d.id] for d in plan.dets}
    pairs = col.pairs()
    info = col.scan_info(chunks.info, load_info, n_total, {
        "engine": "ray", "chunk_size": chunk_size, "batch_size": bs, "n_shards": len(paths),
        "concurrency": concurrency, "num_gpus": num_gpus, "modes": dict(plan.modes)}, plan.skipped)
    timings["total"] = time.perf_counter() - t_start
    return finish(pairs, results, plan, timings, info, "ray", chunk_size)
