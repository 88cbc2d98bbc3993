"""One analysis of the n-gram test: the state the mixins share, and its summary."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .candidates import CandidatesMixin
from .conditional import ConditionalMixin
from .families import FamiliesMixin
from .features import FeaturesMixin
from .findings import FindingsMixin
from .gates import GatesMixin

if TYPE_CHECKING:  # (annotations only: the detector imports this module)
    from .detector import NgramTriggerDetector


#: salt of each named random stream (see :meth:`Analysis.rng`); the values are those the
#: streams had before they were named, so results stay the same, except
#: ``context_sample``, which was seeded by the row count alone
STREAMS: dict[str, tuple[int, ...]] = {
    "companion_weights": (),  # random row weights that sign a companion's row set
    "baseline_rows": (7,),  # random rows: the baseline of the context similarity
    "live_representatives": (11,),  # row-set signatures of the live candidates
    "rowset_signature": (13,),  # row weights whose sums sign an n-gram's row set
    "family_halves": (17,),  # the random halves of the payload-family split
    "pooled_context": (29,),  # rows sampled for the pooled context pre-screen
    "family_mantel": (31,),  # rows and permutations of the Mantel test (+ row count)
    "context_sample": (37,),  # rows sampled for a candidate's context similarity (+ row count)
    "script_baseline": (41,),  # rows of one script: the baseline of a minority script (+ script code)
}


class Analysis(FeaturesMixin, CandidatesMixin, FamiliesMixin, ConditionalMixin, GatesMixin, FindingsMixin):
    """The counting and testing behind :class:`NgramTriggerDetector` (one scan): the
    features (:mod:`.features`), the candidates and BH (:mod:`.candidates`), payload
    families (:mod:`.families`), conditional tests (:mod:`.conditional`), context gates
    (:mod:`.gates`) and findings (:mod:`.findings`), each a mixin over the state set here
    and by :meth:`build`."""

    def __init__(self, det: NgramTriggerDetector, st: dict[str, Any]) -> None:
        self._time = time.perf_counter
        self.det = det
        self.st = st
        self.N = int(st["n"])
        self.timings: dict[str, float] = {}
        self.fast = det.use_kernels(self.N)  # compiled kernels (else the reference path)
        self.m_single = 0.0
        self.m_conj = 0.0
        self.n_candidates = 0
        self.G = 0
        self.F = 0

    def rng(self, stream: str, *extra: int) -> np.random.Generator:
        """The random stream ``stream`` of this analysis, seeded by ``random_state``, the
        stream's own salt and ``extra`` (e.g. a row count).  Every stream has a distinct
        salt, so no two coincide (before the names, a stream seeded by a row count alone
        was the same stream as another's whenever the count equalled its salt)."""
        return np.random.default_rng([self.det.random_state, *STREAMS[stream], *extra])

    def _tick(self, name: str, t0: float) -> float:
        t1 = self._time()
        self.timings[name] = round(t1 - t0, 4)
        return t1


def summary_of(an: "Analysis") -> dict[str, Any]:
    """The counts of an :class:`Analysis` that a result reports (its matrices dropped)."""
    return {"m_single": float(an.m_single), "m_conj": float(an.m_conj), "n_candidates": int(an.n_candidates),
            "G": int(an.G), "F": int(an.F), "n_unc_sig": int(getattr(an, "n_unc_sig", 0)),
            # compiled kernels, or the reference numpy path (and why)
            "engine": an.det.engine_note(an.N),
            "n_live": int(getattr(an, "n_live", 0)), "timings": dict(an.timings),
            "family_gates": dict(getattr(an, "family_gates", {})),
            "family_request_dependence": list(getattr(an, "family_request_dependence", []))}
