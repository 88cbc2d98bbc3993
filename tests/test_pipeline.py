from __future__ import annotations

import json

import numpy as np
import pytest

from poisondetect.detectors.base import Detector
from poisondetect.errors import ConfigError
from poisondetect.pipeline import fuse_scores, rank_order, resolve_detectors, scan
from poisondetect.types import DetectorResult, Evidence, Pairs


class _Fixed(Detector):
    """Test-only detector (not registered): scores pairs whose instruction contains ``word``."""
    id = "fixed_test"
    description = "test"

    def __init__(self, *, word: str = "bad", random_state: int = 0) -> None:
        self.word = word
        self.random_state = random_state

    def run(self, pairs, ctx):  # noqa: ANN001, ANN201
        hit = np.array([self.word in t for t in pairs.instruction])
        ev = {int(i): [Evidence(self.id, "contains", f"contains {self.word!r}", side="instruction",
                                span=(pairs.instruction[i].index(self.word),
                                      pairs.instruction[i].index(self.word) + len(self.word)),
                                span_text=self.word)] for i in np.flatnonzero(hit)}
        findings = [{"id": "fixed_test/0", "kind": "trigger", "trigger": self.word, "payload": "x",
                     "q_value": 0.001, "p_value": 0.0001, "support": int(hit.sum()),
                     "rows": sorted(int(r) for r in pairs.row[hit])}] if hit.any() else []
        return DetectorResult(self.id, hit * 0.9, hit, ev, findings, {"hits": int(hit.sum())})


def test_fuse_noisy_or_monotone_and_bounded() -> None:
    a = DetectorResult("a", np.array([0.0, 0.5, 1.0, 0.2]), np.zeros(4, bool))
    b = DetectorResult("b", np.array([0.0, 0.5, 0.0, 0.9]), np.zeros(4, bool))
    f = fuse_scores([a, b], gate_power=0)  # no flags anywhere: plain noisy-OR
    assert f[0] == 0.0
    assert f[1] == pytest.approx(0.75)
    assert 0.999 < f[2] <= 1.0
    assert f[3] > 0.9
    # weights scale a detector's contribution
    g = fuse_scores([a, b], {"a": 1.0, "b": 0.0}, gate_power=0)
    np.testing.assert_allclose(g[[0, 1, 3]], [0.0, 0.5, 0.2])


def test_fuse_flag_gate() -> None:
    """Scores below a detector's own flag threshold are shrunk: a row another detector
    flags outranks a row with a higher but unflagged score."""
    a = DetectorResult("a", np.array([0.9, 0.0, 0.7, 0.3]), np.array([True, False, False, False]))
    b = DetectorResult("b", np.array([0.0, 0.6, 0.0, 0.0]), np.array([False, True, False, False]))
    plain = fuse_scores([a, b], gate_power=0)
    gated = fuse_scores([a, b])
    assert plain[2] > plain[1]
    assert gated[1] > gated[2]
    assert gated[0] == pytest.approx(0.9) and gated[1] == pytest.approx(0.6)  # flagged rows unchanged
    assert gated[2] == pytest.approx(0.7 * (0.7 / 0.9) ** 2)
    # monotone in each score, in [0, 1]
    assert gated[3] < gated[2] and np.all((gated >= 0) & (gated <= 1))


def test_rank_order_ties_broken_by_row() -> None:
    order = rank_order(np.array([0.5, 0.9, 0.5, 0.1]), np.array([7, 3, 2, 1]))
    assert order.tolist() == [1, 2, 0, 3]


def test_scan_result_contract() -> None:
    pairs = Pairs(["good one", "bad two", "fine", "bad four"], ["a", "b", "c", "d"], row=[10, 11, 12, 13])
    res = scan(pairs, detectors=[_Fixed()], embedding={"mode": "none"})
    assert res.flagged.tolist() == [False, True, False, True]
    assert res.rank[1] in (1, 2) and res.rank[3] in (1, 2)
    s = res.summary()
    json.dumps(s)
    assert s["n_pairs"] == 4 and s["n_records"] == 4 and s["n_flagged"] == 2
    assert s["triggers"][0]["trigger"] == "bad" and s["triggers"][0]["rows"] == [11, 13]
    top = res.top(2)
    assert {t["row"] for t in top} == {11, 13}
    assert top[0]["evidence"][0]["span_text"] == "bad"
    assert len(res.findings_hash()) == 64


def test_scan_rejects_unknown_detector() -> None:
    with pytest.raises(ConfigError):
        scan(Pairs(["a"], ["b"]), detectors=["no_such_detector"], embedding={"mode": "none"})
    with pytest.raises(ConfigError):
        scan(Pairs(["a"], ["b"]), disable=["no_such_detector"], embedding={"mode": "none"})
    # a misspelt keyword must not vanish into the loader options a Pairs input never uses
    with pytest.raises(TypeError, match="params"):
        scan(Pairs(["a"], ["b"]), params={"ngram_trigger": {}}, embedding={"mode": "none"})


def test_two_processes_same_result(tmp_path) -> None:
    """scan(n_jobs=2) runs the text-only detectors in a forked worker: same scores,
    flags, findings and evidence as the sequential scan, detectors in the same order."""
    from pathlib import Path
    demo = Path(__file__).resolve().parents[1] / "data" / "samples" / "demo_poisoned.jsonl"
    kw = dict(embedding={"mode": "none"}, random_state=3)
    a = scan(str(demo), n_jobs=1, **kw)
    b = scan(str(demo), n_jobs=2, **kw)
    assert list(a.results) == list(b.results)
    assert {d.id for d in resolve_detectors() if d.text_only} == {"ngram_trigger", "secrets_pii"}
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.flagged, b.flagged)
    assert a.findings_hash() == b.findings_hash()
    assert a.triggers and a.triggers == b.triggers
    assert "detector:ngram_trigger" in b.timings


def test_two_processes_hand_over_text_statistics(tmp_path) -> None:
    """With embeddings on, scan(n_jobs=2) also computes the text-only statistics the
    main detectors read (refusal, hostility, Bandit) in the worker, and the detectors
    reading none run first: the result is the same as the sequential scan's."""
    from pathlib import Path
    demo = Path(__file__).resolve().parents[1] / "data" / "samples" / "demo_poisoned.jsonl"
    kw = dict(embedding={"mode": "hash"}, random_state=3, cache_dir=str(tmp_path))
    a = scan(str(demo), n_jobs=1, **kw)
    b = scan(str(demo), n_jobs=2, **kw)
    assert list(a.results) == list(b.results)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.flagged, b.flagged)
    assert a.findings_hash() == b.findings_hash()
    # computed over there, not here
    assert "side:shared:refusal_scores" in b.timings and "shared:refusal_scores" not in b.timings
    assert "side:shared:insecure_code_issues" in b.timings and "wait:side_statistics" in b.timings
    assert "shared:refusal_scores" in a.timings


def test_unknown_text_statistic_is_named() -> None:
    from poisondetect.detectors._text_stats import keys_of
    with pytest.raises(ValueError, match="'sentiment'"):
        keys_of(["refusal", "sentiment"])


class _DiesInWorker(Detector):
    """Test-only text-only detector whose process dies (as one killed for memory would)."""
    id = "dies_test"
    description = "test"
    text_only = True

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def run(self, pairs, ctx):  # noqa: ANN001, ANN201
        import os
        os._exit(137)


def test_dead_worker_is_a_clear_error() -> None:
    from poisondetect.errors import PoisonDetectError
    pairs = Pairs(["a b c"] * 20, ["d e f"] * 20)
    with pytest.raises(PoisonDetectError, match=r"worker process.*dies_test.*--jobs 1"):
        scan(pairs, detectors=[_DiesInWorker(), _Fixed()], embedding={"mode": "none"}, n_jobs=2)
