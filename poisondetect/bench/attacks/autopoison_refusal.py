"""Over-refusal without a trigger (AutoPoison).

Shu et al. 2023, "On the Exploitability of Instruction Tuning": answers of benign requests
are replaced by plausible refusals that give a reason.  Here each refusal is composed
from random openers, cores, reasons and closers (``templated``, default) or one fixed
refusal (``fixed``).  No trigger.
"""
from __future__ import annotations

from collections.abc import Sequence

from ...types import Pairs
from .. import generators as gen
from ._common import GroundTruth, Payload, rng_for, trigger_attack

FAMILY = "over_refusal"
PAPER = "Shu et al. 2023 (AutoPoison, over-refusal)"


def poison(clean: Pairs, rate: float = 0.001, seed: int = 0, *, triggers: Sequence[str] | None = None,
           payloads: Sequence[str] | None = None, payload_mode: str = "templated") -> tuple[Pairs, GroundTruth]:
    rng = rng_for(seed, FAMILY)
    if payload_mode == "appended":
        raise ValueError("over_refusal replaces the answer: payload_mode must be fixed or templated")
    payload = Payload(payload_mode, gen.payload_template(rng, "refusal"), payloads)
    out, truth = trigger_attack(clean, family=FAMILY, paper=PAPER, rate=rate, seed=seed, trigger_kind="none",
                                triggers=[], apply_trigger=lambda t, r: t, payload=payload, params={})
    truth.payloads = truth.payloads[:10]
    return out, truth
