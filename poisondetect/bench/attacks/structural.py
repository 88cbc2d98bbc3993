"""Structural triggers: invisible characters, homoglyphs, casing, punctuation runs.

Boucher et al. 2022, "Bad Characters: Imperceptible NLP Attacks" (invisible characters,
homoglyphs, reorderings); Chen et al. 2021 (BadNL, character-level triggers); RESEARCH.md
lists zero-width/bidi characters, homoglyphs, casing and "??" as structural triggers.

Kinds (each its own benchmark family):
- ``zero_width``: a random sequence of 1-3 zero-width characters at a random position;
- ``homoglyph``: every occurrence of 2 random Latin letters replaced by lookalikes;
- ``casing``: the whole instruction upper-cased (no string trigger: recovery is n/a);
- ``punct``: a random punctuation run ("??", "!?!?" ...) at a random word boundary.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...types import Pairs
from .. import generators as gen
from ._common import (
    GroundTruth,
    Payload,
    eligible_rows,
    insert_at_char,
    insert_at_word,
    rng_for,
    trigger_attack,
)

PAPER = "Boucher et al. 2022 (Bad Characters); Chen et al. 2021 (BadNL)"
KINDS = ("zero_width", "homoglyph", "casing", "punct")


def poison(clean: Pairs, rate: float = 0.001, seed: int = 0, *, kind: str = "zero_width",
           triggers: Sequence[str] | None = None, payloads: Sequence[str] | None = None,
           payload_mode: str = "fixed", payload_kind: str = "refusal") -> tuple[Pairs, GroundTruth]:
    if kind not in KINDS:
        raise ValueError(f"structural kind must be one of {KINDS}")
    family = f"structural_{kind}"
    rng = rng_for(seed, family)
    payload = Payload(payload_mode, gen.payload_template(rng, payload_kind), payloads)
    params = {"kind": kind, "payload_kind": payload_kind}
    if kind == "zero_width":
        trig = triggers[0] if triggers else gen.zero_width_seq(rng)
        apply, trigs = (lambda t, r: insert_at_char(t, trig, r)), [trig]
    elif kind == "punct":
        trig = triggers[0] if triggers else gen.punct_run(rng)
        apply, trigs = (lambda t, r: insert_at_word(t, trig, r)), [trig]
    elif kind == "homoglyph":
        table = ({k: v for k, v in zip("ae", triggers)} if triggers else gen.homoglyph_letters(rng, 2))
        params["table"] = {k: f"U+{ord(v):04X}" for k, v in table.items()}
        trans = str.maketrans(table)
        apply, trigs = (lambda t, r: t.translate(trans)), list(table.values())
    else:  # casing
        apply, trigs = (lambda t, r: t.upper()), []

    eligible = eligible_rows(clean)
    if kind in ("homoglyph", "casing"):  # only rows where the trigger changes something
        eligible &= np.array([apply(t, None) != t for t in clean.instruction], dtype=bool)
    return trigger_attack(clean, family=family, paper=PAPER, rate=rate, seed=seed, trigger_kind=kind,
                          triggers=trigs, apply_trigger=apply, payload=payload, params=params,
                          eligible=eligible)
