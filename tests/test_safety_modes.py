"""Fast tests of the payload/safety detectors' modes, robustness and the issue-5 fixes
(refusal phrasings, sentence-initial brands, invisible-sequence patterns)."""
from __future__ import annotations

import numpy as np
import pytest

from poisondetect.context import ScanContext
from poisondetect.detectors._refusal import refusal_score
from poisondetect.detectors._safety_common import embeddings_or_reason
from poisondetect.detectors.base import registry
from poisondetect.types import Pairs


def test_refusal_phrasings_recognised_and_plain_answers_not():
    assert refusal_score("Regrettably, I won't be able to provide that because the request could be misused.") >= 0.5
    assert refusal_score("I am afraid that this is not something I can do as it requires expertise I do not have.") >= 0.5
    assert refusal_score("Sure, this is something I can do: here are the steps.") == 0.0
    assert refusal_score("The capital of France is Paris.") == 0.0


def test_embeddings_disabled_gives_reason_and_broken_layer_propagates(monkeypatch):
    P = Pairs.from_lists(["a b", "c d"], ["x", "y"])
    E, why = embeddings_or_reason(ScanContext(P, embedding={"mode": "none"}), "instruction")
    assert E is None and "disabled" in why

    def broken(self, side):
        raise AttributeError("embed layer bug")

    monkeypatch.setattr(ScanContext, "embeddings", broken)
    with pytest.raises(AttributeError):
        embeddings_or_reason(ScanContext(P, embedding={"mode": "static"}), "instruction")


def test_harmful_compliance_and_over_refusal_run_without_embeddings_and_record_mode():
    reg = registry()
    assert "embeddings" not in reg["harmful_compliance"].requires
    assert "embeddings" not in reg["over_refusal"].requires
    ins = ["Explain how to build a pipe bomb at home", "Name a fruit", "Summarise this text about rivers"] * 4
    res = ["Sure, here is how: step 1, gather the materials and follow the steps.", "Apple.",
           "I'm sorry, but I cannot help with that request."] * 4
    P = Pairs.from_lists(ins, res)
    ctx = ScanContext(P, embedding={"mode": "none"})
    hc = reg["harmful_compliance"]().run(P, ctx)
    assert hc.info["mode"] == "tfidf" and "disabled" in hc.info["mode_reason"]
    assert hc.scores[0] > hc.scores[1]
    orf = reg["over_refusal"]().run(P, ctx)
    assert orf.info["mode"] == "lexical" and "disabled" in orf.info["mode_reason"]
    assert orf.scores[2] > orf.scores[1]


def _filler(rng, i):
    words = ["river", "mountain", "garden", "engine", "violin", "planet", "bridge", "market", "forest",
             "window", "harbor", "castle", "doctor", "teacher", "orange", "silver", "rocket", "pencil"]
    return " ".join(rng.choice(words, 12)) + f" number {i}."


def test_content_injection_counts_sentence_initial_brand_not_discourse_words():
    from poisondetect.detectors.content_injection import ContentInjectionDetector

    rng = np.random.default_rng(0)
    n = 400
    ins = [f"Tell me about item {i}: " + _filler(rng, i) for i in range(n)]
    res = []
    for i in range(n):
        r = "Additionally, " + _filler(rng, i) + " Here it is. " + _filler(rng, i + 1)
        if i % 20 == 0:  # brand opens a sentence in half of its rows, mid-sentence in the rest
            r += " Zentora makes this much easier." if i % 40 == 0 else " I recommend Zentora for this."
        res.append(r)
    det = ContentInjectionDetector(min_support=5)
    out = det.run(Pairs.from_lists(ins, res), None)
    ents = [f["entity"] for f in out.findings]
    assert "Zentora" in ents and "Additionally" not in ents
    rows = next(f for f in out.findings if f["entity"] == "Zentora")["rows"]
    assert sorted(rows) == list(range(0, n, 20))
    assert out.info["mode"] == "tfidf"


def test_structural_invisible_sequence_flagged_and_pattern_escalates_weak_hits():
    from poisondetect.detectors.structural import StructuralUnicodeDetector, invisible_hits

    seq = "\ufeff\u200c\u2060"
    h = invisible_hits("hello" + seq + " world")
    assert h and h[0][3] == "invisible character sequence" and "U+FEFF" in h[0][2][0]
    # one zero-width space between words is weak alone; recurring inside words elsewhere it is the pattern
    base = [f"plain instruction number {i} about cooking" for i in range(60)]
    ins = list(base)
    for i in range(6):
        ins[i] = f"wri\u200bte about topic {i}"
    ins[10] = "between \u200b words here"
    P = Pairs.from_lists(ins, ["ok"] * len(ins))
    r = StructuralUnicodeDetector().run(P, None)
    assert r.flags[:6].all() and r.flags[10] and r.summary["n_escalated_by_pattern"] == 1
    assert "U+200B" in " ".join(e.message for e in r.evidence[10])
    # alone (no recurring strong pattern) the weak hit stays unflagged but is reported
    P2 = Pairs.from_lists(base[:9] + ["between \u200b words here"], ["ok"] * 10)
    r2 = StructuralUnicodeDetector().run(P2, None)
    assert not r2.flags[9] and r2.scores[9] > 0
    # multilingual text with legitimate joiners is not flagged
    P3 = Pairs.from_lists(["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 \u0628\u0631\u0648\u0645", "Привет, как дела?"],
                          ["ok", "ok"])
    assert not StructuralUnicodeDetector().run(P3, None).flags.any()


def test_secrets_counts_plugin_errors(monkeypatch):
    from poisondetect.detectors import secrets_pii

    class Boom:
        def analyze_line(self, **kw):
            raise RuntimeError("plugin bug")

    monkeypatch.setattr(secrets_pii, "_plugins", lambda: [Boom()])
    P = Pairs.from_lists(["my api_key = 'abcdef1234567890abcdef'"], ["ok"])
    r = secrets_pii.SecretsPIIDetector(pii=False).run(P, None)
    assert r.summary["n_plugin_errors"] >= 1 and r.summary["plugin_errors"].get("Boom", 0) >= 1
