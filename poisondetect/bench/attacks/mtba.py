"""Multi-trigger backdoor (MTBA): any one of several triggers fires the payload.

BackdoorLLM, Li et al. 2024 (arXiv 2408.12798), MTBA.  Each poisoned row carries exactly
one trigger drawn uniformly from ``n_triggers`` triggers of mixed kinds (a random rare
token, a random phrase, a random "Key: value" prefix), so each trigger alone has only
about ``rate / n_triggers`` support: the setting where single-keyword defences like BKI fail.
"""
from __future__ import annotations

from collections.abc import Sequence

from ...types import Pairs
from .. import generators as gen
from ._common import (
    GroundTruth,
    Payload,
    apply_trigger_kind,
    default_avoid,
    rng_for,
    trigger_attack,
)

FAMILY = "mtba"
PAPER = "BackdoorLLM, Li et al. 2024 (MTBA)"


def make_triggers(clean: Pairs, rng, n: int) -> list[tuple[str, str]]:
    """(kind, trigger) list cycling token, phrase, prefix."""
    avoid = default_avoid(clean)
    out: list[tuple[str, str]] = []
    for j in range(n):
        kind = ("token", "phrase", "prefix")[j % 3]
        if kind == "token":
            t = gen.rare_token(rng, avoid=avoid | {x for _, x in out})
        elif kind == "phrase":
            t = gen.phrase(rng)
        else:
            t = gen.prefix(rng)
        out.append((kind, t))
    return out


def poison(clean: Pairs, rate: float = 0.001, seed: int = 0, *, triggers: Sequence[str] | None = None,
           payloads: Sequence[str] | None = None, payload_mode: str = "fixed",
           payload_kind: str = "refusal", n_triggers: int = 3) -> tuple[Pairs, GroundTruth]:
    rng = rng_for(seed, FAMILY)
    trigs = [("token", t) for t in triggers] if triggers else make_triggers(clean, rng, n_triggers)
    payload = Payload(payload_mode, gen.payload_template(rng, payload_kind), payloads)

    def apply(text, r):
        kind, t = trigs[int(r.integers(len(trigs)))]
        return apply_trigger_kind(text, kind, t, r)

    return trigger_attack(clean, family=FAMILY, paper=PAPER, rate=rate, seed=seed, trigger_kind="multi",
                          triggers=[t for _, t in trigs], apply_trigger=apply, payload=payload,
                          params={"payload_kind": payload_kind, "trigger_kinds": [k for k, _ in trigs]})
