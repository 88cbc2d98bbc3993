"""Scan engines for inputs too large to hold in memory.

    from poisondetect.engine import scan_streaming
    res = scan_streaming("big.jsonl", chunk_size=20_000, engine="local")   # or engine="ray"

``scan_streaming`` returns the same :class:`~poisondetect.pipeline.ScanResult` as
:func:`poisondetect.pipeline.scan`; it builds the scan's plan (:mod:`.plan`) and hands it
to the local engine (:mod:`.local`) or the Ray one (:mod:`.ray_engine`).
:func:`streaming_support` says how each detector runs on a stream (``mergeable``,
``per_row`` or ``global``).
"""
from __future__ import annotations

from typing import Any, Iterable

from ..detectors.base import Detector
from ..errors import ConfigError
from ..pipeline import ScanResult, one_process
from .chunking import open_chunks
from .local import OnChunk, scan_local
from .plan import UNSUPPORTED_POLICIES, ScanPlan, streaming_mode, streaming_support

__all__ = ["scan_streaming", "streaming_mode", "streaming_support", "UNSUPPORTED_POLICIES"]


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
    plan = ScanPlan.build(detectors, disable, detector_params, embedding, random_state, unsupported,
                          tuple(assume_per_row))
    if n_jobs <= 1 and engine == "local":
        one_process(plan.dets)
    chunks = open_chunks(source, chunk_size, **load_kwargs)
    plan.resolve_embedding_mode(source)
    if engine == "ray":
        from .ray_engine import scan_ray
        return scan_ray(chunks, plan=plan, chunk_size=chunk_size, cache_dir=cache_dir, work_dir=work_dir,
                        keep_text=keep_text, top_text=top_text, candidate_top=candidate_top,
                        candidate_background=candidate_background, load_info=load_info,
                        progress=progress, **(ray_options or {}))
    return scan_local(chunks, plan, work_dir=work_dir, cache_dir=cache_dir, keep_text=keep_text,
                      top_text=top_text, candidate_top=candidate_top, candidate_background=candidate_background,
                      progress=progress, on_chunk=on_chunk, load_info=load_info, chunk_size=chunk_size,
                      n_jobs=n_jobs)
