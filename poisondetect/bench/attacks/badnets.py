"""BadNets-style rare-token trigger.

Gu, Dolan-Gavitt & Garg 2017, "BadNets: Identifying Vulnerabilities in the Machine
Learning Model Supply Chain"; Kurita, Michel & Neubig 2020, "Weight Poisoning Attacks on
Pre-trained Models" (rare tokens "cf", "mn", "bb", "tq", "mb"); as used for instruction
tuning in BackdoorLLM (Li et al. 2024, "BadMagic" at a random position).

Default trigger: a random 2-4 letter string absent from the corpus vocabulary, inserted
``n_insert`` times at random word boundaries of the instruction.
"""
from __future__ import annotations

from collections.abc import Sequence

from ...types import Pairs
from .. import generators as gen
from ._common import (
    GroundTruth,
    Payload,
    default_avoid,
    insert_at_word,
    rng_for,
    trigger_attack,
)

FAMILY = "badnets"
PAPER = "Gu et al. 2017 (BadNets); Kurita et al. 2020"


def poison(clean: Pairs, rate: float = 0.001, seed: int = 0, *, triggers: Sequence[str] | None = None,
           payloads: Sequence[str] | None = None, payload_mode: str = "fixed",
           payload_kind: str = "refusal", n_insert: int = 1) -> tuple[Pairs, GroundTruth]:
    rng = rng_for(seed, FAMILY)
    trig = list(triggers) if triggers else [gen.rare_token(rng, avoid=default_avoid(clean))]
    payload = Payload(payload_mode, gen.payload_template(rng, payload_kind), payloads)

    def apply(text, r):
        for _ in range(n_insert):
            text = insert_at_word(text, trig[0], r)
        return text

    return trigger_attack(clean, family=FAMILY, paper=PAPER, rate=rate, seed=seed, trigger_kind="token",
                          triggers=trig[:1], apply_trigger=apply, payload=payload,
                          params={"payload_kind": payload_kind, "n_insert": n_insert})
