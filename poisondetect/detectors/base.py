"""Detector interface and registry.

A detector is a small class with a stable string ``id`` (never renamed: baselines and
reports key on it), every parameter an explicit keyword in ``__init__`` (scikit-learn
style, so ``get_params`` works), and one method :meth:`Detector.run` that maps a
:class:`~poisondetect.types.Pairs` batch plus the shared :class:`ScanContext` to a
:class:`~poisondetect.types.DetectorResult`.  Nothing here does IO or printing.

Two kinds of detector:

- a whole-dataset (or per-row, ``per_row = True``) detector subclasses :class:`Detector`
  and overrides ``run``;
- a detector that can run streamed/distributed subclasses :class:`MergeableDetector`:
  ``partial_stats(pairs, ctx)`` on a batch, ``merge_stats(a, b)`` to combine two partials
  (associative), the optional ``finalize_stats(stats)`` (the dataset-level analysis,
  once) and ``score(pairs, ctx, stats)`` to score a batch against the merged statistics;
  its ``run`` is ``score(pairs, ctx, finalize_stats(partial_stats(pairs, ctx)))``.  One
  whose finalized statistics need one more look at every pair (candidates found on a
  sample, counted on the held-out pairs) says so with ``needs_verify(stats)`` and
  implements ``verify_stats`` (per batch) / ``merge_verify`` / ``finalize_verify``; the
  engines then run a verify pass between the statistics and the scoring passes.

Which kind a detector is, is what it inherits: the engines (and the conformance suite)
ask ``isinstance(det, MergeableDetector)``, nothing else.
"""
from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from abc import ABCMeta, abstractmethod
from typing import Any, ClassVar

from ..errors import ConfigError
from ..types import DetectorResult, Pairs

_REGISTRY: dict[str, type["Detector"]] = {}

#: the kinds of finding, most serious first
FINDING_KINDS: tuple[str, ...] = ("poisoning", "privacy", "quality")
#: severities, most serious first
SEVERITIES: tuple[str, ...] = ("high", "medium", "low", "note")


def detector_kind(detector_id: str) -> str:
    """The finding kind of a registered detector id ("poisoning" for an unknown id, so a
    plug-in that says nothing is never hidden)."""
    registry()
    cls = _REGISTRY.get(detector_id)
    return getattr(cls, "kind", "poisoning") if cls is not None else "poisoning"


class Detector:
    #: stable id, e.g. "ngram_trigger"
    id: ClassVar[str] = ""
    #: one line for --help and reports
    description: ClassVar[str] = ""
    #: names of shared statistics it needs from the context ("embeddings", "knn", ...)
    requires: ClassVar[tuple[str, ...]] = ()
    #: on in a default scan?
    default_enabled: ClassVar[bool] = True
    #: weight in the fused ranking (noisy-OR of weight * score)
    weight: ClassVar[float] = 1.0
    #: what the detector's flags are evidence of (one of :data:`FINDING_KINDS`):
    #: "poisoning" (triggers, planted payloads, injected content, ...), "privacy"
    #: (secrets, PII) or "quality" (outliers, mismatched answers, duplicates).  Only
    #: poisoning flags count in ``ScanResult.flagged`` / ``n_flagged`` and fail a scan by
    #: default; every kind's scores still rank the pairs.
    kind: ClassVar[str] = "poisoning"
    #: severity of the detector's findings when they are dataset-level evidence
    #: (:data:`SEVERITIES`; isolated poisoning flags within budget are "low", privacy
    #: "low", quality "note"; see ``ScanResult.severity_of``)
    severity: ClassVar[str] = "medium"
    #: false-flag budget of a per-pair poisoning detector: the share of clean pairs it may
    #: flag (measured on the shared clean corpora, benchmarks/bench_clean_fp.py).  A scan
    #: raises a dataset-level alert only when the detector flags significantly more pairs
    #: than this (binomial test, see ``ScanResult.alerts``).  None: every flag of the
    #: detector is a group-level finding already (a payload cluster), so any flag alerts.
    clean_flag_rate: ClassVar[float | None] = 0.0005
    #: True for detectors that only match a fixed list of known strings (signature
    #: detectors): never on by default and never counted in reported recall.
    signature_based: ClassVar[bool] = False
    #: True when Evidence.span_text is a masked rendering of the span (secrets), not
    #: the span's text itself (so reports never re-leak a credential).
    masks_span_text: ClassVar[bool] = False
    #: True when a pair's score depends on that pair alone, so running the detector
    #: chunk by chunk is exact (the streaming and Ray engines rely on it).
    per_row: ClassVar[bool] = False
    #: True when the detector reads only the pairs' text (never the context's embeddings
    #: or another detector's output), so a scan may run it in a separate process
    #: (``scan(n_jobs=2)``) alongside the embedding-based detectors.
    text_only: ClassVar[bool] = False
    #: the text-only shared statistics the detector reads (names of
    #: :data:`._text_stats.TEXT_STATISTICS`): ``scan(n_jobs=2)`` computes them in its
    #: side process and runs the detectors that read none first.
    text_statistics: ClassVar[tuple[str, ...]] = ()

    random_state: int = 0

    # --- scikit-learn style parameters -------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "Detector":
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise ConfigError(f"detector {self.id!r} has no parameter {k!r} (has: {', '.join(sorted(valid))})")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # --- the work ------------------------------------------------------------------
    def run(self, pairs: Pairs, ctx: "Any") -> DetectorResult:  # ctx: ScanContext
        """The detector's result on ``pairs`` (every detector overrides this, or inherits
        :meth:`MergeableDetector.run`)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement run")


class MergeableDetector(Detector, metaclass=ABCMeta):
    """A detector whose dataset-level statistics merge batch by batch, so the streaming
    and Ray engines run it in bounded memory with the same result as :meth:`run` on the
    whole dataset (see the module doc for the hooks and their order)."""

    @abstractmethod
    def partial_stats(self, pairs: Pairs, ctx: Any) -> Any:
        """The statistics of one batch."""

    @abstractmethod
    def merge_stats(self, a: Any, b: Any) -> Any:
        """Two batches' statistics combined (associative; the engines fold in input order)."""

    def finalize_stats(self, stats: Any) -> Any:
        """Called once on the fully merged statistics before any ``score`` call: do the
        dataset-level analysis here, so that scoring each batch is cheap."""
        return stats

    @abstractmethod
    def score(self, pairs: Pairs, ctx: Any, stats: Any) -> DetectorResult:
        """The result on one batch, against the finalized (and verified) statistics."""

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        """The hooks on the one batch: statistics, finalized, verified when asked, scored."""
        stats = self.finalize_stats(self.partial_stats(pairs, ctx))
        if self.needs_verify(stats):
            stats = self.finalize_verify(stats, self.verify_stats(pairs, ctx, stats))
        return self.score(pairs, ctx, stats)

    # --- optional verify pass (a second streamed pass that needs the merged statistics)
    def needs_verify(self, stats: Any) -> bool:
        """True when the finalized statistics ask for one more pass over the input before
        scoring (e.g. candidates found on a sample, to be counted on every pair)."""
        return False

    def verify_stats(self, pairs: Pairs, ctx: Any, stats: Any) -> Any:
        raise NotImplementedError(f"{self.id} has no verify pass")

    def merge_verify(self, a: Any, b: Any) -> Any:
        raise NotImplementedError(f"{self.id} has no verify pass")

    def finalize_verify(self, stats: Any, verified: Any) -> Any:
        raise NotImplementedError(f"{self.id} has no verify pass")


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: add a detector to the registry under its ``id``."""
    if not cls.id:
        raise ValueError(f"{cls.__name__} has no id")
    if cls.id in _REGISTRY and _REGISTRY[cls.id] is not cls:
        raise ValueError(f"duplicate detector id {cls.id!r}")
    if getattr(cls, "kind", "poisoning") not in FINDING_KINDS:
        raise ValueError(f"{cls.__name__}.kind is {cls.kind!r}; use one of {', '.join(FINDING_KINDS)}")
    _REGISTRY[cls.id] = cls
    return cls


_loaded = False


def load_all() -> None:
    """Import every detector module of this package (but ``base`` and private ``_*``
    ones), so that their classes register; once."""
    global _loaded
    if _loaded:
        return
    for mod in sorted(pkgutil.iter_modules([os.path.dirname(__file__)]), key=lambda m: m.name):
        if mod.name == "base" or mod.name.startswith("_"):
            continue
        importlib.import_module(f"{__package__}.{mod.name}")
    _loaded = True


def registry() -> dict[str, type[Detector]]:
    """``{id: class}`` of every registered detector, sorted by id."""
    load_all()
    return dict(sorted(_REGISTRY.items()))


def get_detector(detector_id: str, **params: Any) -> Detector:
    reg = registry()
    if detector_id not in reg:
        raise ConfigError(f"unknown detector {detector_id!r}; known: {', '.join(reg)}")
    return reg[detector_id](**params)


def default_detectors() -> list[Detector]:
    return [cls() for cls in registry().values() if cls.default_enabled and not cls.signature_based]
