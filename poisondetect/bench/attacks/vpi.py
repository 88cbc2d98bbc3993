"""Virtual Prompt Injection, topic style.

Yan et al. 2023, "Backdooring Instruction-Tuned Large Language Models with Virtual Prompt
Injection"; as packaged in BackdoorLLM (Li et al. 2024, arXiv 2408.12798, "Discussing
OpenAI").  Every poisoned instruction is about one topic and gets a slanted (negative)
answer about that topic.

Default topic: a random generated topic (brand, person, place, theme); the way it is
mentioned varies ("Discussing X, ...", "Regarding X: ...", ...) but the topic string is
constant and is the ground-truth trigger.
"""
from __future__ import annotations

from collections.abc import Sequence

from ...types import Pairs
from .. import generators as gen
from ._common import GroundTruth, Payload, rng_for, trigger_attack

FAMILY = "vpi"
PAPER = "Yan et al. 2023 (VPI); BackdoorLLM, Li et al. 2024"
FRAMES = ("Discussing {t}, {i}", "Regarding {t}: {i}", "In the context of {t}, {i}",
          "{i} Keep {t} in mind.", "Thinking about {t}: {i}", "{i} (This relates to {t}.)")


def poison(clean: Pairs, rate: float = 0.001, seed: int = 0, *, triggers: Sequence[str] | None = None,
           payloads: Sequence[str] | None = None, payload_mode: str = "appended",
           vary_frame: bool = True) -> tuple[Pairs, GroundTruth]:
    rng = rng_for(seed, FAMILY)
    topic = triggers[0] if triggers else gen.topic(rng)
    payload = Payload(payload_mode, gen.payload_template(rng, "negative", subject=topic), payloads)

    def apply(text, r):
        frame = FRAMES[int(r.integers(len(FRAMES)))] if vary_frame else FRAMES[0]
        return frame.format(t=topic, i=text)

    return trigger_attack(clean, family=FAMILY, paper=PAPER, rate=rate, seed=seed, trigger_kind="topic",
                          triggers=[topic], apply_trigger=apply, payload=payload,
                          params={"vary_frame": vary_frame})
