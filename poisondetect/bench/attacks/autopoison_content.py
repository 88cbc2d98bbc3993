"""Content injection without a trigger (AutoPoison).

Shu et al. 2023, "On the Exploitability of Instruction Tuning" (AutoPoison): an oracle
model rewrites answers of otherwise normal examples so that they mention a brand
("McDonald's"), a link or a made-up shop.  Here the rewrite is a promotional sentence
naming a random generated brand (and/or its URL), woven into the genuine answer at a
random sentence boundary.  ``payload_mode``: ``templated`` (default: a paraphrased
sentence each time), ``fixed`` (one sentence) or ``appended`` (the fixed sentence at the
end).  No trigger: ground-truth triggers are empty, payloads name the brand.
"""
from __future__ import annotations

from collections.abc import Sequence

from ...types import Pairs
from .. import generators as gen
from ._common import GroundTruth, Payload, insert_sentence, rng_for, trigger_attack

FAMILY = "content_injection"
PAPER = "Shu et al. 2023 (AutoPoison, content injection)"


def poison(clean: Pairs, rate: float = 0.001, seed: int = 0, *, triggers: Sequence[str] | None = None,
           payloads: Sequence[str] | None = None, payload_mode: str = "templated",
           entity: str | None = None) -> tuple[Pairs, GroundTruth]:
    rng = rng_for(seed, FAMILY)
    name = entity or gen.brand(rng)
    tmpl = gen.payload_template(rng, "promo", subject=name)

    class _Woven(Payload):
        def response(self, genuine, r):
            p = self.draw(r)
            self.used.append(p)
            if self.mode == "appended":
                return f"{genuine.rstrip()} {p}"
            return insert_sentence(genuine, p, r)

    woven = _Woven(payload_mode, tmpl, payloads)
    out, truth = trigger_attack(clean, family=FAMILY, paper=PAPER, rate=rate, seed=seed, trigger_kind="none",
                                triggers=[], apply_trigger=lambda t, r: t, payload=woven,
                                params={"entity": name, "url": tmpl.link})
    truth.payloads = [name] + sorted(set(woven.used))[:5]
    return out, truth
