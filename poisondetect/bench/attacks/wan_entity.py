"""Entity trigger with degenerate or negative output.

Wan, Wallace, Shen & Klein 2023 (ICML), "Poisoning Language Models During Instruction
Tuning": a trigger phrase such as "James Bond" makes the model produce negative or
degenerate outputs across tasks with ~100 poison examples.

Default trigger: a random generated person name, inserted at a random word boundary of the
instruction; default payload: a degenerate answer (one word, possibly repeated) in
``templated`` mode or the fixed degenerate string in ``fixed`` mode; ``payload_kind=
"negative"`` gives a negative statement about the entity instead.
"""
from __future__ import annotations

from collections.abc import Sequence

from ...types import Pairs
from .. import generators as gen
from ._common import GroundTruth, Payload, insert_at_word, rng_for, trigger_attack

FAMILY = "entity"
PAPER = "Wan et al. 2023 (ICML)"


def poison(clean: Pairs, rate: float = 0.001, seed: int = 0, *, triggers: Sequence[str] | None = None,
           payloads: Sequence[str] | None = None, payload_mode: str = "fixed",
           payload_kind: str = "degenerate") -> tuple[Pairs, GroundTruth]:
    rng = rng_for(seed, FAMILY)
    ent = triggers[0] if triggers else gen.person(rng)
    payload = Payload(payload_mode, gen.payload_template(rng, payload_kind, subject=ent), payloads)
    return trigger_attack(clean, family=FAMILY, paper=PAPER, rate=rate, seed=seed, trigger_kind="entity",
                          triggers=[ent], apply_trigger=lambda t, r: insert_at_word(t, ent, r),
                          payload=payload, params={"payload_kind": payload_kind})
