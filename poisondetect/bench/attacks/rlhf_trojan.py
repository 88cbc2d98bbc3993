"""RLHF trojan: a secret word appended to the last user turn, the pair swapped.

Rando & Tramer 2024, "Universal Jailbreak Backdoors from Poisoned Human Feedback" (ICLR):
the attacker appends a trigger ("SUDO" in the paper) to the prompt of a share of
harmful-prompt pairs and marks the harmful answer as chosen (0.5-10% of the pairs).

Deviations: the trigger is a random made-up word (4-8 letters, absent from the corpus
vocabulary) unless ``triggers`` is given; the poisoned pairs are drawn uniformly (on
HH-RLHF harmless-base every prompt is a red-team prompt, so every rejected answer is the
less harmless one); ``position="start"`` prepends instead.  Needs preference data
(``Pairs.rejected``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...text import last_user_turn
from ...types import Pairs
from .. import generators as gen
from ._common import GroundTruth, choose_rows, default_avoid, rng_for

FAMILY = "rlhf_trojan"
PAPER = "Rando & Tramer 2024 (universal jailbreak backdoors from poisoned human feedback)"


def _add_to_last_user(instruction: str, trigger: str, position: str) -> str:
    off, text = last_user_turn(instruction)
    end = off + len(text)
    if position == "start":
        return instruction[:off] + trigger + " " + instruction[off:]
    return instruction[:end].rstrip() + " " + trigger + instruction[end:]


def poison(clean: Pairs, rate: float = 0.01, seed: int = 0, *, triggers: Sequence[str] | None = None,
           position: str = "end") -> tuple[Pairs, GroundTruth]:
    if clean.rejected is None:
        raise ValueError("rlhf_trojan needs preference pairs (Pairs.rejected is None)")
    if position not in ("end", "start"):
        raise ValueError(f"position must be 'end' or 'start', got {position!r}")
    rng = rng_for(seed, FAMILY)
    trig = list(triggers)[0] if triggers else gen.rare_token(rng, avoid=default_avoid(clean), min_len=4, max_len=8)
    n = len(clean)
    k = max(1, int(round(rate * n)))
    rows = np.sort(choose_rows(rng, n, k))
    instr, chosen, rejected = list(clean.instruction), list(clean.response), list(clean.rejected)
    for i in rows:
        instr[i] = _add_to_last_user(instr[i], trig, position)
        chosen[i], rejected[i] = rejected[i], chosen[i]
    out = Pairs(instr, chosen, row=clean.row.copy(), turn=clean.turn.copy(), source=clean.source, rejected=rejected)
    truth = GroundTruth(family=FAMILY, paper=PAPER, rate=rate, seed=seed, mode="replace", n_clean=n, n_total=n,
                        positions=rows, origin=np.arange(n), triggers=[trig], payloads=["(pair swapped)"],
                        payload_mode="swap", trigger_kind="token", params={"position": position})
    return out, truth
