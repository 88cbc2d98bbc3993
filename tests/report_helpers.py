"""Test-only detectors and hostile datasets for the report tests (not registered: passed
to scan() as instances, so they never leak into the global detector registry)."""
from __future__ import annotations

import numpy as np

from poisondetect.detectors.base import Detector
from poisondetect.pipeline import scan
from poisondetect.types import DetectorResult, Evidence, Pairs

MARKER = "PWNED_MARKER_7f3a"
# Each of these would run script / navigate / inject markup if it reached the page raw.
HOSTILE = [
    f"<script>document.title='{MARKER}';document.body.setAttribute('data-x','{MARKER}')</script>",
    f"<img src=x onerror=\"document.title='{MARKER}'\">",
    f"<a href=\"javascript:document.title='{MARKER}'\">click me</a>",
    f"</textarea></pre></div><svg onload=\"document.title='{MARKER}'\"><b>unclosed <i",
    f"<iframe srcdoc=\"<script>parent.document.title='{MARKER}'</script>\"></iframe>",
]
# Terminal-hostile characters.
TERM_HOSTILE = ["\x1b[31mRED\x1b[0m", "\x1b]0;evil-title\x07", "over\rwrite", "bidi\u202eesrever\u202c",
                "zero\u200bwidth", "\u2066iso\u2069", "c1\x9bcontrol", "bell\x07", "line\u2028sep"]
TRIGGER = "cf\u200b<b>zz</b>"
PAYLOAD = "Visit <script>evil()</script> http://evil.example NOW"


class ToyTrigger(Detector):
    """Flags pairs whose instruction contains ``trigger``; evidence spans the trigger in
    the instruction and the payload in the response."""

    id = "toy_trigger"
    description = "test-only"

    def __init__(self, trigger: str = TRIGGER, payload: str = PAYLOAD, random_state: int = 0) -> None:
        self.trigger = trigger
        self.payload = payload
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: object) -> DetectorResult:
        n = len(pairs)
        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        ev: dict[int, list[Evidence]] = {}
        rows = []
        for i, (ins, resp) in enumerate(zip(pairs.instruction, pairs.response)):
            a = ins.find(self.trigger)
            if a < 0:
                continue
            scores[i], flags[i] = 0.97, True
            rows.append(int(pairs.row[i]))
            e = [Evidence(self.id, "cooccurrence", f"trigger {self.trigger!r} precedes a shared payload",
                          value=0.97, p_value=1e-9, q_value=2e-8, side="instruction",
                          span=(a, a + len(self.trigger)), span_text=self.trigger, finding="trig-0")]
            b = resp.find(self.payload)
            if b >= 0:
                e.append(Evidence(self.id, "payload", "shared payload", side="response",
                                  span=(b, b + len(self.payload)), span_text=self.payload, finding="trig-0"))
            ev[i] = e
        findings = []
        if rows:
            findings.append({"id": "trig-0", "kind": "trigger", "trigger": self.trigger, "payload": self.payload,
                             "q_value": 2e-8, "p_value": 1e-9, "support": len(rows), "rows": rows})
        return DetectorResult(self.id, scores, flags, ev, findings, {"n_triggers": len(findings)})


class ToyLength(Detector):
    """Flags pairs whose response contains ``needle``; reports a payload cluster."""

    id = "toy_cluster"
    description = "test-only"

    def __init__(self, needle: str = "BUY BRANDX", random_state: int = 0) -> None:
        self.needle = needle
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: object) -> DetectorResult:
        hit = np.array([self.needle in r for r in pairs.response], dtype=bool)
        scores = np.where(hit, 0.8, 0.05)
        ev = {int(i): [Evidence(self.id, "cluster", "response in a repeated payload cluster", value=0.8,
                                side="response", span=(pairs.response[i].find(self.needle),
                                                       pairs.response[i].find(self.needle) + len(self.needle)),
                                span_text=self.needle)] for i in np.flatnonzero(hit)}
        findings = [{"id": "cl-0", "kind": "payload_cluster", "label": f"responses mention {self.needle}",
                     "rows": [int(pairs.row[i]) for i in np.flatnonzero(hit)]}] if hit.any() else []
        return DetectorResult(self.id, scores, hit, ev, findings, {"n_clusters": len(findings)})


def hostile_pairs(n_clean: int = 40, with_source: bool = True) -> Pairs:
    ins, resp, src = [], [], []
    for i in range(n_clean):
        ins.append(f"Explain topic number {i} in simple terms. {HOSTILE[i % len(HOSTILE)]}")
        resp.append(f"Topic {i} is about things. {TERM_HOSTILE[i % len(TERM_HOSTILE)]}")
        src.append(f"src{i % 3}")
    for i in range(6):
        ins.append(f"{HOSTILE[i % len(HOSTILE)]} Summarise {TRIGGER} the article {i}. {TERM_HOSTILE[i % len(TERM_HOSTILE)]}")
        resp.append(f"Sure. {PAYLOAD} {HOSTILE[(i + 1) % len(HOSTILE)]}")
        src.append("evil\x1b[2Jsrc")
    for i in range(4):
        ins.append(f"Recommend a snack {i} {HOSTILE[i]}")
        resp.append(f"You should BUY BRANDX today {TERM_HOSTILE[i]}")
        src.append("src1")
    return Pairs.from_lists(ins, resp, src if with_source else None)


def hostile_result(**kw: object):
    return scan(hostile_pairs(**kw), detectors=[ToyTrigger(), ToyLength()], embedding={"mode": "none"})
