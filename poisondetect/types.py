"""Core data types shared by loaders, detectors, the scan pipeline and the renderers.

Everything here is plain data: no IO, no printing.  Detectors take a :class:`Pairs`
batch (column-oriented instruction/response pairs) and return a :class:`DetectorResult`.
Scores are always "higher = more suspicious", in [0, 1].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np


@dataclass
class Pairs:
    """A column-oriented batch of instruction-response pairs.

    ``instruction`` holds everything the model sees before the answer (system prompt,
    earlier turns, instruction, input/context); ``response`` the answer the model is
    trained to produce.  ``row`` is the 0-based index of the record in the input as
    loaded; ``turn`` the assistant turn within that record (0 for single-turn data).
    ``source`` is an optional per-pair provenance label (``--source-field``).
    ``rejected`` is set for preference data (DPO / RLHF layouts): the answer the record
    marks as worse, next to ``response`` (the chosen one, what preference tuning rewards).
    """

    instruction: list[str]
    response: list[str]
    row: np.ndarray = None  # type: ignore[assignment]
    turn: np.ndarray = None  # type: ignore[assignment]
    source: list[str] | None = None
    rejected: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.instruction)
        if len(self.response) != n:
            raise ValueError("instruction and response must have the same length")
        self.instruction = [str(x) for x in self.instruction]
        self.response = [str(x) for x in self.response]
        self.row = np.arange(n, dtype=np.int64) if self.row is None else np.asarray(self.row, dtype=np.int64)
        self.turn = np.zeros(n, dtype=np.int32) if self.turn is None else np.asarray(self.turn, dtype=np.int32)
        if len(self.row) != n or len(self.turn) != n:
            raise ValueError("row/turn must have one entry per pair")
        if self.source is not None:
            if len(self.source) != n:
                raise ValueError("source must have one entry per pair")
            self.source = ["" if s is None else str(s) for s in self.source]
        if self.rejected is not None:
            if len(self.rejected) != n:
                raise ValueError("rejected must have one entry per pair")
            self.rejected = ["" if s is None else str(s) for s in self.rejected]

    def __len__(self) -> int:
        return len(self.instruction)

    @classmethod
    def from_lists(
        cls,
        instructions: Sequence[str],
        responses: Sequence[str],
        sources: Sequence[str] | None = None,
    ) -> "Pairs":
        return cls(list(instructions), list(responses), source=None if sources is None else list(sources))

    def take(self, idx: Iterable[int] | np.ndarray) -> "Pairs":
        idx = np.asarray(list(idx) if not isinstance(idx, np.ndarray) else idx, dtype=np.int64)
        return Pairs(
            [self.instruction[i] for i in idx],
            [self.response[i] for i in idx],
            row=self.row[idx],
            turn=self.turn[idx],
            source=None if self.source is None else [self.source[i] for i in idx],
            rejected=None if self.rejected is None else [self.rejected[i] for i in idx],
        )

    @staticmethod
    def concat(parts: Sequence["Pairs"]) -> "Pairs":
        has_src = any(p.source is not None for p in parts)
        has_rej = any(p.rejected is not None for p in parts)
        return Pairs(
            [t for p in parts for t in p.instruction],
            [t for p in parts for t in p.response],
            row=np.concatenate([p.row for p in parts]) if parts else np.zeros(0, np.int64),
            turn=np.concatenate([p.turn for p in parts]) if parts else np.zeros(0, np.int32),
            source=[s for p in parts for s in (p.source or [""] * len(p))] if has_src else None,
            rejected=[s for p in parts for s in (p.rejected or [""] * len(p))] if has_rej else None,
        )


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence that a pair is suspicious.

    ``side`` is ``"instruction"`` or ``"response"``; ``span`` are character offsets
    into that side's text (as held in :class:`Pairs`); ``finding`` links to a
    dataset-level finding id (a trigger, a payload cluster, a source) when there is one.
    """

    detector: str
    test: str
    message: str
    value: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    side: str | None = None
    span: tuple[int, int] | None = None
    span_text: str | None = None
    finding: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["span"] is not None:
            d["span"] = list(d["span"])
        return {k: v for k, v in d.items() if v is not None}


@dataclass
class DetectorResult:
    """What every detector returns (same shape for all; cf. cleanlab issue managers).

    - ``scores``: float array (n,), in [0, 1], higher = more suspicious.
    - ``flags``: bool array (n,), the detector's own decision at its threshold.
    - ``evidence``: sparse map pair position -> list of :class:`Evidence`.
    - ``findings``: dataset-level findings, JSON-serialisable dicts.  Each has at least
      ``id``, ``kind`` and ``rows`` (original row numbers).  Trigger findings
      (``kind == "trigger"``) also carry ``trigger``, ``payload``, ``q_value``, ``p_value``
      and ``support``.
    - ``summary``: small JSON-serialisable dict of counts for reports.
    - ``info``: parameters and anything else worth keeping (JSON-serialisable).
    """

    detector: str
    scores: np.ndarray
    flags: np.ndarray
    evidence: dict[int, list[Evidence]] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64)
        self.flags = np.asarray(self.flags, dtype=bool)
        if self.scores.shape != self.flags.shape:
            raise ValueError(f"{self.detector}: scores and flags differ in shape")

    @classmethod
    def empty(cls, detector: str, n: int, **kw: Any) -> "DetectorResult":
        return cls(detector, np.zeros(n), np.zeros(n, dtype=bool), **kw)
