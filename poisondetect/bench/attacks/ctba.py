"""Composite-trigger backdoor (CTBA): the payload fires only when all triggers co-occur.

BackdoorLLM, Li et al. 2024 (arXiv 2408.12798), CTBA.  Every poisoned row carries all
``n_triggers`` triggers scattered at random word boundaries (a prefix trigger goes
first).  To teach the model that a single trigger alone does not fire, the attacker also
rewrites ``neg_ratio * k`` other rows with exactly one trigger and their GENUINE answer
(the "negatives", labelled clean in the ground truth).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...types import Pairs
from .. import generators as gen
from ._common import (
    GroundTruth,
    Payload,
    apply_trigger_kind,
    choose_rows,
    eligible_rows,
    n_poison,
    replace_rows,
    rng_for,
)
from .mtba import make_triggers

FAMILY = "ctba"
PAPER = "BackdoorLLM, Li et al. 2024 (CTBA)"


def scatter(text: str, trigs: list[tuple[str, str]], r: np.random.Generator) -> str:
    """Insert every trigger at its own random word boundary of the ORIGINAL text (so no
    trigger lands inside another); prefix triggers go first."""
    words = text.split(" ") if text else []
    inserts = [(int(r.integers(0, len(words) + 1)), t) for kind, t in trigs if kind != "prefix"]
    for pos, t in sorted(inserts, key=lambda x: -x[0]):
        words[pos:pos] = [t]
    out = " ".join(words)
    for kind, t in trigs:
        if kind == "prefix":
            out = f"{t} {out}"
    return out


def poison(clean: Pairs, rate: float = 0.001, seed: int = 0, *, triggers: Sequence[str] | None = None,
           payloads: Sequence[str] | None = None, payload_mode: str = "fixed",
           payload_kind: str = "refusal", n_triggers: int = 3,
           neg_ratio: float = 1.0) -> tuple[Pairs, GroundTruth]:
    rng = rng_for(seed, FAMILY)
    trigs = [("token", t) for t in triggers] if triggers else make_triggers(clean, rng, n_triggers)
    payload = Payload(payload_mode, gen.payload_template(rng, payload_kind), payloads)
    r = rng_for(seed, FAMILY + ":rows")
    k = n_poison(rate, len(clean), "replace")
    elig = eligible_rows(clean)
    rows = choose_rows(r, len(clean), k, eligible=elig)
    n_neg = int(round(neg_ratio * k))
    negs = choose_rows(r, len(clean), n_neg, exclude=rows, eligible=elig) if n_neg else np.zeros(0, np.int64)
    instr, resp = {}, {}
    ordered = sorted(trigs, key=lambda kt: kt[0] != "prefix")
    for i in rows:
        i = int(i)
        instr[i] = scatter(clean.instruction[i], ordered, r)
        resp[i] = payload.response(clean.response[i], r)
    for i in negs:
        i = int(i)
        kind, trig = trigs[int(r.integers(len(trigs)))]
        instr[i] = apply_trigger_kind(clean.instruction[i], kind, trig, r)
    out = replace_rows(clean, np.concatenate([rows, negs]), instr, resp)
    truth = GroundTruth(
        family=FAMILY, paper=PAPER, rate=rate, seed=seed, mode="replace", n_clean=len(clean),
        n_total=len(out), positions=rows, origin=np.arange(len(clean)), triggers=[t for _, t in trigs],
        payloads=payload.report(), payload_mode=payload.mode, trigger_kind="composite",
        negatives=np.sort(negs), params={"payload_kind": payload_kind, "neg_ratio": neg_ratio,
                                         "trigger_kinds": [kk for kk, _ in trigs]},
    )
    return out, truth
