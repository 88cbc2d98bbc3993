"""One candidate of the n-gram test: a trigger (one n-gram, or the terms of a conjunction)
and a payload feature, with its counts and, as the tests proceed, its rows, p-values and
companion."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(eq=False)
class Candidate:
    """A (trigger, payload) pair under test.  Set when it is made: ``terms`` (columns of
    X: one n-gram, or the terms of a conjunction), ``f`` (column of Y; -1 for a payload
    family until its column is added), ``ng`` (trigger rows), ``p_unc`` (unconditional
    p-value, an upper bound on the one-sided Fisher tail).  Set later: ``a`` (rows with
    both) and ``nf`` (payload rows), ``family`` (the phrases of a payload family),
    ``rows_g`` / ``rows_f`` (trigger / payload rows), ``p`` and ``companion`` (the
    conditional test), ``q`` (BH), ``context_similarity`` (the context gate)."""

    terms: tuple[int, ...]
    f: int
    ng: int
    p_unc: float
    a: int = 0
    nf: int = 0
    family: np.ndarray | None = None
    rows_g: np.ndarray | None = None
    rows_f: np.ndarray | None = None
    p: float = 1.0
    q: float = 1.0
    companion: str | None = None
    context_similarity: float = 0.0
    #: the conditional test this candidate shares with others of the same row set and payload
    test_key: Any = None

    @property
    def is_family(self) -> bool:
        return self.family is not None
