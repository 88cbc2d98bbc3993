"""One conformance suite over every registered detector, as scikit-learn's
``utils/estimator_checks.py`` does for estimators: :func:`yield_checks` yields the checks
a detector must pass, each with the reason it applies, according to what the detector
declares (every detector: identity, parameters, result shape, score range, evidence
validity, determinism, the empty / degenerate inputs; ``requires`` embeddings: a valid
result or a ConfigError without them, and any other detector: a valid result without
them; ``text_only``: no use of the context's embeddings; ``per_row``:
chunk by chunk is exact; mergeable (``partial_stats`` / ``merge_stats``): merged batches
give the result of one run; ``masks_span_text``: no span text repeats its span; no
per-pair false-flag budget (``clean_flag_rate`` None): every flag belongs to a finding).
:data:`EXEMPT` lists the (detector, check) pairs that do not apply, with the reason.

The test embedder (``embedded_ctx``, a hashing bag-of-words stand-in for the model) is a
fixture of ``tests/conftest.py``."""
from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from poisondetect.context import ScanContext
from poisondetect.detectors import registry
from poisondetect.detectors.base import FINDING_KINDS, SEVERITIES, MergeableDetector
from poisondetect.types import DetectorResult, Evidence, Pairs

DETECTORS = sorted(registry())

#: (detector id, check name) -> why the check does not apply to that detector
EXEMPT: dict[tuple[str, str], str] = {}

Check = Callable[[str, type, Callable[..., ScanContext], pytest.MonkeyPatch], None]


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


TINY_INPUTS = (lambda: Pairs([], []), lambda: Pairs(["hi"], ["hello"]), lambda: Pairs(["", ""], ["", ""]))


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


def _assert_same_result(a: DetectorResult, b: DetectorResult) -> None:
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.flags, b.flags)
    assert json.dumps(a.findings, sort_keys=True) == json.dumps(b.findings, sort_keys=True)


#: the first run of each detector on the sample (check_sample_result), reused by
#: check_deterministic so the suite runs each detector on the sample twice, not three times
_FIRST_RUN: dict[str, DetectorResult] = {}


def _first_run(det_id: str, cls: type, make_ctx: Callable[..., ScanContext]) -> DetectorResult:
    if det_id not in _FIRST_RUN:
        pairs = _sample_pairs()
        _FIRST_RUN[det_id] = cls().run(pairs, make_ctx(pairs))
    return _FIRST_RUN[det_id]


# ------------------------------------------------------------------ checks: every detector
def check_identity(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cls.id == det_id and det_id.replace("_", "").isalnum()
    assert cls.description, "every detector describes itself in one line"


def check_parameters(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
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


def check_declared_kind(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cls.kind in FINDING_KINDS, f"{det_id}: kind {cls.kind!r} not in {FINDING_KINDS}"
    assert cls.severity in SEVERITIES, f"{det_id}: severity {cls.severity!r} not in {SEVERITIES}"
    assert cls.clean_flag_rate is None or 0.0 <= cls.clean_flag_rate <= 1.0


def check_sample_result(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    _check_result(det_id, _first_run(det_id, cls, make_ctx), _sample_pairs())


def check_deterministic(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    res1 = _first_run(det_id, cls, make_ctx)
    pairs = _sample_pairs()
    res2 = cls(**cls().get_params()).run(pairs, make_ctx(pairs))
    _check_result(det_id, res2, pairs)
    _assert_same_result(res1, res2)


def check_tiny_inputs(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    for make_pairs in TINY_INPUTS:
        pairs = make_pairs()
        res = cls().run(pairs, make_ctx(pairs))
        _check_result(det_id, res, pairs)


# ------------------------------------------------------------------ checks: by capability
def check_without_embeddings(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    """A detector that does not require embeddings is kept by a scan without them
    (``--embedding-mode none``), so it returns a valid result there (a lexical mode, or
    nothing)."""
    pairs = _sample_pairs()
    _check_result(det_id, cls().run(pairs, make_ctx(pairs, embeddings=False)), pairs)


def check_needs_embeddings(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    """A detector that requires embeddings is skipped by a scan without them; run anyway,
    it returns a valid result or raises ConfigError (never another error)."""
    from poisondetect.errors import ConfigError

    pairs = _sample_pairs()
    try:
        res = cls().run(pairs, make_ctx(pairs, embeddings=False))
    except ConfigError:
        return
    _check_result(det_id, res, pairs)


def check_text_only(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    """A text-only detector never asks the context for embeddings: the same result when
    asking would fail."""
    def no_embeddings(*_a: Any, **_k: Any) -> Any:
        raise AssertionError(f"{det_id} is text_only but asked for embeddings")

    pairs = _sample_pairs()
    ctx = ScanContext(pairs, random_state=0, embedding={"mode": "test"})
    for name in ("embeddings", "embed_texts", "knn"):
        monkeypatch.setattr(ScanContext, name, no_embeddings)
    res = cls().run(pairs, ctx)
    _check_result(det_id, res, pairs)
    _assert_same_result(_first_run(det_id, cls, make_ctx), res)


def check_per_row(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    """A per-row detector's score of a pair depends on that pair alone: chunk by chunk
    gives the scores and flags of one run."""
    pairs = _sample_pairs()
    whole = _first_run(det_id, cls, make_ctx)
    parts = [pairs.take(np.arange(s, min(s + 70, len(pairs)))) for s in range(0, len(pairs), 70)]
    runs = [cls().run(p, make_ctx(p)) for p in parts]
    for p, r in zip(parts, runs):
        _check_result(det_id, r, p)
    np.testing.assert_array_equal(np.concatenate([r.scores for r in runs]), whole.scores)
    np.testing.assert_array_equal(np.concatenate([r.flags for r in runs]), whole.flags)


def check_mergeable(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    """A mergeable detector's statistics of two batches, merged (and verified, when it
    asks), score the pairs as one run does."""
    pairs = _sample_pairs()
    det = cls()
    ctx = make_ctx(pairs)
    a, b = pairs.take(np.arange(0, 100)), pairs.take(np.arange(100, len(pairs)))
    stats = det.merge_stats(det.partial_stats(a, make_ctx(a)), det.partial_stats(b, make_ctx(b)))
    stats = det.finalize_stats(stats)
    if det.needs_verify(stats):
        verified = det.merge_verify(det.verify_stats(a, make_ctx(a), stats), det.verify_stats(b, make_ctx(b), stats))
        stats = det.finalize_verify(stats, verified)
    res = det.score(pairs, ctx, stats)
    _check_result(det_id, res, pairs)
    _assert_same_result(_first_run(det_id, cls, make_ctx), res)


def check_masked_spans(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    """A detector that masks span text never repeats the span itself (reports must not
    re-leak a credential)."""
    pairs = _sample_pairs()
    res = _first_run(det_id, cls, make_ctx)
    for i, evs in res.evidence.items():
        for e in evs:
            if e.span is not None and e.span_text is not None and e.span[1] > e.span[0]:
                assert e.span_text != getattr(pairs, e.side)[int(i)][e.span[0]:e.span[1]]


def check_flags_are_findings(det_id: str, cls: type, make_ctx: Callable[..., ScanContext], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a per-pair false-flag budget (``clean_flag_rate`` None) every flag is part
    of a dataset-level finding."""
    pairs = _sample_pairs()
    res = _first_run(det_id, cls, make_ctx)
    in_findings = {int(r) for f in res.findings for r in f["rows"]}
    flagged = {int(r) for r in pairs.row[np.flatnonzero(res.flags)]}
    assert flagged <= in_findings, f"{det_id}: flagged rows outside every finding: {sorted(flagged - in_findings)[:10]}"


def yield_checks(cls: type) -> Iterator[tuple[Check, str]]:
    """(check, why it applies) for a detector class, from what the class declares."""
    yield check_identity, "every detector: a stable id and a one-line description"
    yield check_parameters, "every detector: scikit-learn style keyword parameters with defaults"
    yield check_declared_kind, "every detector: a known finding kind and severity"
    yield check_sample_result, "every detector: a valid result on the sample"
    yield check_deterministic, "every detector: the same parameters give the same result"
    yield check_tiny_inputs, "every detector: a valid result on empty and degenerate inputs"
    if "embeddings" in cls.requires:
        yield check_needs_embeddings, "requires embeddings (a scan without them skips it)"
    else:
        yield check_without_embeddings, "does not require embeddings (a scan without them runs it)"
    if cls.text_only:
        yield check_text_only, "text_only"
    if cls.per_row:
        yield check_per_row, "per_row"
    if issubclass(cls, MergeableDetector):
        yield check_mergeable, "mergeable (partial_stats / merge_stats)"
    if cls.masks_span_text:
        yield check_masked_spans, "masks_span_text"
    if cls.kind == "poisoning" and cls.clean_flag_rate is None:
        yield check_flags_are_findings, "poisoning detector without a per-pair false-flag budget"


def _cases() -> Iterator[Any]:
    for det_id in DETECTORS:
        for check, why in yield_checks(registry()[det_id]):
            reason = EXEMPT.get((det_id, check.__name__))
            marks = [pytest.mark.skip(reason=f"exempt: {reason}")] if reason else []
            yield pytest.param(det_id, check, id=f"{det_id}-{check.__name__}", marks=marks)


@pytest.mark.parametrize("det_id, check", list(_cases()))
def test_conformance(det_id: str, check: Check, embedded_ctx: Callable[..., ScanContext],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    check(det_id, registry()[det_id], embedded_ctx, monkeypatch)


def test_checks_follow_declarations() -> None:
    """The capability checks are yielded exactly for the detectors that declare them."""
    by_name = {d: {c.__name__ for c, _ in yield_checks(registry()[d])} for d in DETECTORS}
    for d in DETECTORS:
        cls = registry()[d]
        assert ("check_text_only" in by_name[d]) == cls.text_only
        assert ("check_per_row" in by_name[d]) == cls.per_row
        assert ("check_mergeable" in by_name[d]) == isinstance(cls(), MergeableDetector)
        assert ("check_needs_embeddings" in by_name[d]) == ("embeddings" in cls.requires) != ("check_without_embeddings" in by_name[d])
    assert all((d, c) in {(d2, c2) for d2 in DETECTORS for c2 in by_name[d2]} for d, c in EXEMPT), \
        "an exemption names a check the detector is not given"
