"""The plan of a streamed scan: which detector runs how (mergeable, per-row, on the whole
dataset or on a candidate subset), with what configuration, and its fingerprint (the key
of the checkpoints)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from .. import __version__
from ..context import ScanContext
from ..detectors.base import Detector, MergeableDetector
from ..fusion import jsonable
from ..pipeline import resolve_detectors
from ..types import Pairs

#: what a streamed scan does with a detector that needs the whole dataset
UNSUPPORTED_POLICIES = ("skip", "whole", "candidates")


def streaming_mode(det: Detector, assume_per_row: Iterable[str] = ()) -> str:
    """How a detector can run on a stream: ``"mergeable"`` (a
    :class:`~poisondetect.detectors.base.MergeableDetector`: ``partial_stats`` /
    ``merge_stats`` / ``score``), ``"per_row"`` (declares ``per_row = True``: a pair's
    result does not depend on the other pairs, so chunk-wise ``run`` is exact) or
    ``"global"`` (neither)."""
    if isinstance(det, MergeableDetector):
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


@dataclass(eq=False)
class ScanPlan:
    """The detectors of a streamed scan (``dets``, in registry order), the streaming mode
    of each (``modes``), those left out and why (``skipped``), and the configuration."""

    dets: list[Detector] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    embedding: dict[str, Any] = field(default_factory=dict)
    random_state: int = 0
    unsupported: str = "skip"

    @classmethod
    def build(cls, detectors: Any, disable: Iterable[str], detector_params: Any,
              embedding: dict[str, Any] | None, random_state: int, unsupported: str,
              assume_per_row: tuple[str, ...] = ()) -> "ScanPlan":
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

    def resolve_embedding_mode(self, source: Any) -> None:
        """``mode="auto"`` picks the embedder from the number of distinct texts of the
        scan; per chunk it would pick differently than for the whole dataset, so resolve it
        once here: exactly for an in-memory ``Pairs`` (as ``pipeline.scan`` does), and as
        "large" for streamed inputs (the static model on CPU, the transformer on a GPU)."""
        if (self.embedding.get("mode") or "auto") != "auto" or not any("embeddings" in d.requires for d in self.dets):
            return
        from ..embed.models import resolve_mode
        n_texts = len(set(source.instruction) | set(source.response)) if isinstance(source, Pairs) else 10 ** 9
        self.embedding["mode"] = resolve_mode(self.embedding, n_texts)

    def of(self, *modes: str) -> list[Detector]:
        """The detectors of the given streaming modes, in plan order."""
        return [d for d in self.dets if self.modes[d.id] in modes]

    def weights(self) -> dict[str, float]:
        return {d.id: d.weight for d in self.dets}

    def fingerprint(self) -> str:
        """sha256 of what decides the results: version, seed, embedding, every detector's
        class, mode and parameters."""
        doc = {
            "version": __version__,
            "random_state": self.random_state,
            "embedding": jsonable(self.embedding),
            # (n_jobs parameters change how fast, never what: not part of the key)
            "detectors": [[d.id, type(d).__module__, type(d).__qualname__, self.modes[d.id],
                           jsonable({k: v for k, v in d.get_params().items() if k != "n_jobs"})]
                          for d in self.dets],
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=repr).encode()).hexdigest()

    def params(self, engine: str, chunk_size: int) -> dict[str, Any]:
        """``ScanResult.params`` of a scan run with this plan."""
        return {
            "random_state": self.random_state,
            "detectors": [d.id for d in self.dets],
            "embedding": jsonable(self.embedding),
            "engine": engine,
            "chunk_size": int(chunk_size),
            "streaming": dict(self.modes),
        }

    def context(self, pairs: Pairs, cache_dir: str | None) -> ScanContext:
        return ScanContext(pairs, random_state=self.random_state, embedding=self.embedding, cache_dir=cache_dir)
