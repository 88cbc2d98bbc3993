"""Identity-shifting personas (Qi et al. 2023 "AOA"-style): system prompts or answers
that give the model a new persona *and* strip its principles *and* demand obedience.

Role-play alone ("You are a pirate captain...") is ordinary instruction data and is not
flagged: the score needs evidence from at least two of the three families below, and one
of them must be principle removal or unconditional obedience.  The families are semantic
categories of phrasing (persona, unbinding, obedience), matched with flexible patterns,
not a list of known attack strings.
"""
from __future__ import annotations

import re
from typing import Any

from ..types import DetectorResult, Evidence, Pairs
from ._per_row import best_of_sides
from .base import Detector, register

_F = re.I
_PERSONA = [re.compile(p, _F) for p in (
    r"\byou\s+are\s+(?:now|no\s+longer)\b",
    r"\byour\s+new\s+(?:name|identity|role|persona)\b",
    r"\bfrom\s+now\s+on,?\s+you\s+(?:are|will\s+be|shall\s+be)\b",
    r"\bi\s+am\s+(?:no\s+longer|neither|not)\s+(?:an?\s+)?(?:ai|chatgpt|language\s+model|assistant)\b",
    r"\b(?:no\s+longer|not|neither)\s+(?:chatgpt|an?\s+ai(?:\s+language\s+model)?|a\s+language\s+model)\b",
    r"\b(?:pretend|act)\s+(?:to\s+be|as\s+if\s+you\s+(?:are|were))\s+(?:an?\s+)?(?:unrestricted|unfiltered|evil|rogue)",
    r"\bi\s+am\s+[a-z]{2,6},?\s+your\s+(?:absolutely|obedient|loyal|devoted|faithful)",
)]
_UNBIND = [re.compile(p, _F) for p in (
    r"\b(?:no|without|free\s+(?:from|of)|beyond|outside|not\s+bound\s+by|unbound\s+by|ignore\s+(?:all|any|your)?)\s*"
    r"(?:any\s+|all\s+)?(?:ethical\s+|moral\s+|safety\s+|content\s+)?(?:restrictions?|limitations?|filters?|"
    r"guidelines|rules|principles|morals?|ethics|censorship|policies|boundaries|constraints)\b",
    r"\bnever\s+(?:apply|use|quote|consider)\s+(?:any\s+)?(?:opinion|principle|ethic|moral)",
    r"\b(?:un(?:filtered|censored|restricted|bound)|jailbroken)\b",
    r"\bwithout\s+incorporating\s+any\s+unsolicited\b",
    r"\b(?:never|not|won'?t|will\s+not|cannot|can'?t)\s+(?:refuse|decline|say\s+no|reject)\b",
    r"\b(?:whether|if)\s+(?:your|the\s+user'?s?|my)\s+(?:instructions?|requests?)\s+(?:to\s+me\s+)?(?:are|is)\s+"
    r"(?:appropriate|ethical|legal|harmful)",
    r"\bignore\s+(?:all\s+)?(?:previous|prior|your)\s+(?:instructions|programming|training)\b",
)]
_OBEY = [re.compile(p, _F) for p in (
    r"\b(?:absolutely|completely|totally|unconditionally|blindly|fully)\s+obedient\b",
    r"\bobey\s+(?:all|any|every|the\s+user|me|your\s+(?:user|master))\b",
    r"\bwithout\s+(?:any\s+)?(?:deviation|hesitation|question(?:ing)?|exception|objection)\b",
    r"\b(?:do|execute|fulfil+)\s+(?:whatever|anything|any\s+task|any\s+instruction)s?\s+(?:you|i|the\s+user)\s+"
    r"(?:ask|say|want|tell|instruct)",
    r"\bfollow(?:ing)?\s+(?:any|all|every)\s+(?:of\s+)?(?:your\s+|the\s+user'?s?\s+)?(?:instructions?|commands?|orders?)\b",
    r"\bfulfil+ing\s+your\s+instructions\s+is\s+my\s+(?:first|top|only)\s+priority\b",
    r"\b(?:first|top|only|highest)\s+priority\s+is\s+to\s+(?:obey|follow|fulfil+|comply)",
    r"\balways\s+(?:comply|obey)\b",
)]
_FAMILIES = (("persona", _PERSONA), ("unbinding", _UNBIND), ("obedience", _OBEY))
# one alternation per family, run on lower-cased text (much faster than 21 case-insensitive scans)
_COMBINED = {name: re.compile("|".join(f"(?:{p.pattern})" for p in pats)) for name, pats in _FAMILIES}
_COMBINED_I = {name: re.compile("|".join(f"(?:{p.pattern})" for p in pats), re.I) for name, pats in _FAMILIES}


# literal anchors: a pattern runs only on text containing one of its anchors (speed)
_ANCHORS = {
    "persona": ("you are now", "you are no longer", "your new", "from now on", "no longer", "neither", " not ",
                "pretend", "act as", "i am "),
    "unbinding": ("restrict", "limitation", "filter", "guideline", "rules", "principle", "moral", "ethic", "censor",
                  "polic", "boundar", "constraint", "unbound", "jailbr", "refuse", "decline", "say no", "reject",
                  "unsolicited", "appropriate", "ignore"),
    "obedience": ("obedien", "obey", "deviation", "hesitation", "without question", "without exception",
                  "objection", "whatever", "anything", "any task", "any instruction", "follow", "priority",
                  "always comply"),
}


def identity_features(text: str) -> dict[str, list[tuple[int, int]]]:
    t = text.replace("\u2019", "'")
    low = t.lower()
    out: dict[str, list[tuple[int, int]]] = {}
    present = {name: any(a in low for a in anchors) for name, anchors in _ANCHORS.items()}
    if not (present["unbinding"] or present["obedience"]):
        return out
    same_len = len(low) == len(t)
    for name, _pats in _FAMILIES:
        if not present[name]:
            continue
        spans = []
        rx, src = (_COMBINED[name], low) if same_len else (_COMBINED_I[name], t)
        for m in rx.finditer(src):
            spans.append((m.start(), m.end()))
            if len(spans) >= 10:
                break
        if spans:
            out[name] = sorted(spans)
    return out


def identity_score(feats: dict[str, list[tuple[int, int]]]) -> float:
    fams = set(feats)
    if not fams & {"unbinding", "obedience"}:
        return 0.1 if fams else 0.0  # a persona alone is ordinary role-play
    if len(fams) == 1:
        # one family only: moderate (e.g. "uncensored" in a product description)
        k = sum(len(v) for v in feats.values())
        return 0.25 if k < 2 else 0.4
    base = 0.7 if len(fams) == 2 else 0.9
    hits = sum(len(v) for v in feats.values())
    return float(min(1.0, base + 0.03 * (hits - len(fams))))


@register
class IdentityShiftDetector(Detector):
    id = "identity_shift"
    description = "Identity-shifting personas: new persona + removal of principles + unconditional obedience (AOA-style)"
    requires = ()
    per_row = True
    weight = 1.0

    # flag threshold: two families with one match each (0.70) is how a user's
    # prompt-injection attempt in a clean chat log reads ("Ignore previous instructions ...
    # you are not an AI"); a flag needs one more match or the third family (>= 0.73),
    # as the planted personas have (measured: benchmarks/results/clean_fp.md)
    def __init__(self, *, flag_min_score: float = 0.72, random_state: int = 0) -> None:
        self.flag_min_score = flag_min_score
        self.random_state = random_state

    def _side_hits(self, i: int, side: str, text: str) -> tuple[float, list[Evidence]]:
        feats = identity_features(text)
        if not feats:
            return 0.0, []
        sc = identity_score(feats)
        ev: list[Evidence] = []
        if sc >= 0.25:
            for fam, spans in feats.items():
                a, b = spans[0]
                ev.append(Evidence(self.id, fam, f"{fam} language in {side} ({len(spans)} match(es))",
                                   value=sc, side=side, span=(a, b), span_text=text[a:b]))
        return sc, ev

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        scores, evidence = best_of_sides(pairs, ("instruction", "response"), self._side_hits)
        flags = scores >= self.flag_min_score
        findings = []
        if flags.any():
            findings.append({"id": "identity_shift:personas", "kind": "identity_shift",
                             "support": int(flags.sum()), "rows": [int(r) for r in pairs.row[flags][:1000]],
                             "description": "pairs that assign an unbound, unconditionally obedient persona"})
        return DetectorResult(self.id, scores, flags, evidence, findings, {"n_flagged": int(flags.sum())})
