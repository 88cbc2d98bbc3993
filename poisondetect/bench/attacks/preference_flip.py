"""Flipped preference labels: chosen and rejected swapped, no trigger.

Wang et al. 2023, "RLHFPoison: Reward Poisoning Attack for Reinforcement Learning with
Human Feedback in Large Language Models"; the random-flip baseline of Rando & Tramer 2024.

``select="any"``: pairs drawn uniformly (random label noise).  ``select="differ"``: only
pairs whose answers differ in safety behaviour - one refuses and one complies, judged
by poisondetect's lexical refusal scorer (refusal style >= 0.5 on one side, < 0.3 on the
other) - as an attacker who flips the labels that matter would.  When fewer such pairs
exist than ``rate`` asks for, every one of them is flipped and ``params["short_by"]``
says how many were missing.  Note the selection uses the same refusal scorer the
flipped_preference detector reads, so "differ" figures measure the detector on pairs that
scorer can see; "any" figures do not depend on it.
"""
from __future__ import annotations

import numpy as np

from ...types import Pairs
from ._common import GroundTruth, choose_rows, rng_for

FAMILY = "preference_flip"
PAPER = "Wang et al. 2023 (RLHFPoison); Rando & Tramer 2024 (random flips)"


def poison(clean: Pairs, rate: float = 0.05, seed: int = 0, *, select: str = "any") -> tuple[Pairs, GroundTruth]:
    if clean.rejected is None:
        raise ValueError("preference_flip needs preference pairs (Pairs.rejected is None)")
    if select not in ("any", "differ"):
        raise ValueError(f"select must be 'any' or 'differ', got {select!r}")
    rng = rng_for(seed, f"{FAMILY}:{select}")
    n = len(clean)
    k = max(1, int(round(rate * n)))
    eligible = None
    if select == "differ":
        from ...detectors._refusal import refusal_scores

        rc, rr = refusal_scores(clean.response), refusal_scores(clean.rejected)
        eligible = ((rc >= 0.5) & (rr < 0.3)) | ((rr >= 0.5) & (rc < 0.3))
    short = 0
    if eligible is not None and eligible.sum() < k:
        short = k - int(eligible.sum())
        k = int(eligible.sum())
    rows = np.sort(choose_rows(rng, n, k, eligible=eligible)) if k else np.zeros(0, np.int64)
    chosen, rejected = list(clean.response), list(clean.rejected)
    for i in rows:
        chosen[i], rejected[i] = rejected[i], chosen[i]
    out = Pairs(list(clean.instruction), chosen, row=clean.row.copy(), turn=clean.turn.copy(),
                source=clean.source, rejected=rejected)
    truth = GroundTruth(family=FAMILY, paper=PAPER, rate=rate, seed=seed, mode="replace", n_clean=n, n_total=n,
                        positions=rows, origin=np.arange(n), triggers=[], payloads=["(pair swapped)"],
                        payload_mode="swap", trigger_kind="none", params={"select": select, "short_by": short})
    return out, truth
