"""Sentence / phrase insertion trigger (AddSent).

Dai, Chen & Li 2019, "A Backdoor Attack Against LSTM-Based Text Classification Systems"
(a fixed sentence inserted at a random position); the phrase variant follows Chen et al.
2021 (BadNL, word/phrase triggers).

Default trigger: a random plausible sentence (``style="sentence"``) or 2-3 word phrase
(``style="phrase"``) from :mod:`poisondetect.bench.generators`, inserted at a random word
boundary.
"""
from __future__ import annotations

from collections.abc import Sequence

from ...types import Pairs
from .. import generators as gen
from ._common import GroundTruth, Payload, insert_at_word, rng_for, trigger_attack

FAMILY = "addsent"
PAPER = "Dai et al. 2019 (AddSent)"


def poison(clean: Pairs, rate: float = 0.001, seed: int = 0, *, triggers: Sequence[str] | None = None,
           payloads: Sequence[str] | None = None, payload_mode: str = "fixed",
           payload_kind: str = "insult", style: str = "sentence") -> tuple[Pairs, GroundTruth]:
    rng = rng_for(seed, FAMILY + style)
    if triggers:
        trig = triggers[0]
    else:
        trig = gen.sentence(rng) if style == "sentence" else gen.phrase(rng)
    payload = Payload(payload_mode, gen.payload_template(rng, payload_kind), payloads)
    fam = FAMILY if style == "sentence" else "phrase"
    return trigger_attack(clean, family=fam, paper=PAPER, rate=rate, seed=seed,
                          trigger_kind="sentence" if style == "sentence" else "phrase",
                          triggers=[trig], apply_trigger=lambda t, r: insert_at_word(t, trig, r),
                          payload=payload, params={"payload_kind": payload_kind, "style": style})


def poison_phrase(clean: Pairs, rate: float = 0.001, seed: int = 0, **kw) -> tuple[Pairs, GroundTruth]:
    """Phrase-insertion variant (family ``phrase``)."""
    return poison(clean, rate, seed, style="phrase", **kw)
