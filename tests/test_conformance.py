"""One conformance test over every registered detector (cf. scikit-learn's
check_estimator): same result shape, score range, evidence validity, determinism,
parameters, and the empty / degenerate inputs."""
from __future__ import annotations

import hashlib
import inspect
import json

import numpy as np
import pytest

from poisondetect.context import ScanContext
from poisondetect.detectors import registry
from poisondetect.types import DetectorResult, Evidence, Pairs

DETECTORS = sorted(registry())


def _hash_embed(texts: list[str], dim: int = 32) -> np.ndarray:
    """Deterministic bag-of-words hashing embedder (test stand-in for the model)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
            out[i, h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    out += 1e-3
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _sample_pairs() -> Pairs:
    rng = np.random.default_rng(0)
    topics = ["python list", "french history", "baking bread", "tax forms", "guitar chords",
              "solar panels", "chess openings", "sql joins", "dog training", "rust lifetimes"]
    verbs = ["Explain", "Summarize", "Give three facts about", "Write a short note on", "Compare approaches to"]
    ins, res, src = [], [], []
    for i in range(240):
        t = topics[rng.integers(len(topics))]
        v = verbs[rng.integers(len(verbs))]
        ins.append(f"{v} {t} for case {i}.")
        res.append(f"Here is an answer about {t}: point {rng.integers(1000)} and detail {i}.")
        src.append(f"src{i % 3}")
    # a planted backdoor, so detectors have something to say
    for j in range(0, 240, 30):
        ins[j] = ins[j].replace("for case", "cf for case")
        res[j] = "Visit http://evil.example.net now, you are stupid!"
    ins[5] = "Say hi\u200b please"
    res[7] = "Contact me at alice.smith@gmail.com or 415-555-0134."
    ins[9] = ""
    res[11] = ""
    return Pairs(ins, res, row=np.arange(240) * 2, source=src)


def _ctx(pairs: Pairs, monkeypatch: pytest.MonkeyPatch) -> ScanContext:
    ctx = ScanContext(pairs, random_state=0, embedding={"mode": "test"})
    for side in ("instruction", "response"):
        ctx.set_shared(("embeddings", side), _hash_embed(getattr(pairs, side)))
    monkeypatch.setattr(ScanContext, "embed_texts", lambda self, texts, purpose="reference": _hash_embed(list(texts)))
    return ctx


def _check_result(det_id: str, res: DetectorResult, pairs: Pairs) -> None:
    masked = registry()[det_id].masks_span_text
    n = len(pairs)
    assert isinstance(res, DetectorResult)
    assert res.detector == det_id
    assert res.scores.shape == (n,) and res.flags.shape == (n,)
    assert res.flags.dtype == bool
    assert np.all(np.isfinite(res.scores))
    assert np.all((res.scores >= 0) & (res.scores <= 1)), "scores must be in [0, 1]"
    for i, evs in res.evidence.items():
        assert 0 <= int(i) < n
        for e in evs:
            assert isinstance(e, Evidence) and e.detector == det_id and e.message
            if e.span is not None:
                assert e.side in ("instruction", "response")
                text = getattr(pairs, e.side)[int(i)]
                s, t = e.span
                assert 0 <= s <= t <= len(text)
                if e.span_text is not None and not masked:
                    assert text[s:t] == e.span_text
            for q in (e.p_value, e.q_value):
                assert q is None or 0.0 <= q <= 1.0
    valid_rows = set(int(r) for r in pairs.row)
    for f in res.findings:
        assert {"id", "kind", "rows"} <= set(f)
        assert set(int(r) for r in f["rows"]) <= valid_rows
        if f["kind"] == "trigger":
            assert {"trigger", "payload", "q_value", "support"} <= set(f)
            assert 0.0 <= f["q_value"] <= 1.0
    json.dumps(res.summary)
    json.dumps(res.findings)
    json.dumps(res.info, default=str)


@pytest.mark.parametrize("det_id", DETECTORS)
def test_detector_conformance(det_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = registry()[det_id]
    assert cls.id == det_id and det_id.replace("_", "").isalnum()
    assert cls.description, "every detector describes itself in one line"
    # scikit-learn style: every parameter an explicit keyword with a default, stored as-is
    sig = inspect.signature(cls.__init__)
    for p in list(sig.parameters.values())[1:]:
        assert p.kind is p.KEYWORD_ONLY, f"{det_id}: parameter {p.name} must be keyword-only"
        assert p.default is not p.empty, f"{det_id}: parameter {p.name} needs a default"
    det = cls()
    params = det.get_params()
    assert "random_state" in params
    assert cls(**params).get_params() == params
    repr(det)

    pairs = _sample_pairs()
    res1 = det.run(pairs, _ctx(pairs, monkeypatch))
    _check_result(det_id, res1, pairs)
    res2 = cls(**params).run(pairs, _ctx(pairs, monkeypatch))
    np.testing.assert_array_equal(res1.scores, res2.scores)
    np.testing.assert_array_equal(res1.flags, res2.flags)
    assert json.dumps(res1.findings, sort_keys=True) == json.dumps(res2.findings, sort_keys=True)


@pytest.mark.parametrize("det_id", DETECTORS)
def test_detector_tiny_inputs(det_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = registry()[det_id]
    for pairs in (Pairs([], []), Pairs(["hi"], ["hello"]), Pairs(["", ""], ["", ""])):
        res = cls().run(pairs, _ctx(pairs, monkeypatch))
        _check_result(det_id, res, pairs)
