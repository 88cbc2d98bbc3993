"""Streaming engine (poisondetect.engine): equality with pipeline.scan, resume after a
kill, pickle-free checkpoints, chunked file reading, text retention, global detectors."""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import numpy as np
import pytest

from poisondetect.context import ScanContext
from poisondetect.detectors import registry
from poisondetect.detectors.base import Detector, MergeableDetector
from poisondetect.engine import codec, scan_streaming, streaming_mode, streaming_support
from poisondetect.engine.chunking import chunk_hash, open_chunks
from poisondetect.pipeline import scan
from poisondetect.types import DetectorResult, Evidence, Pairs
from conftest import hash_embed  # the suite's test embedder (one home: tests/conftest.py)

# --------------------------------------------------------------------------------------
# test detectors (not registered): one per streaming mode
# --------------------------------------------------------------------------------------


class RowDet(Detector):
    """Per-row: flags pairs whose instruction contains ``word``."""
    id = "row_test"
    description = "test"
    per_row = True

    def __init__(self, *, word: str = "zz", random_state: int = 0) -> None:
        self.word = word
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        s = np.zeros(n)
        ev: dict[int, list[Evidence]] = {}
        rows = []
        for i, t in enumerate(pairs.instruction):
            j = t.find(self.word)
            if j >= 0:
                s[i] = 0.7
                ev[i] = [Evidence(self.id, "has", "has word", side="instruction", span=(j, j + len(self.word)),
                                  span_text=self.word)]
                rows.append(int(pairs.row[i]))
        f = [{"id": "row_test:w", "kind": "marker", "support": len(rows), "rows": rows}] if rows else []
        return DetectorResult(self.id, s, s > 0.5, ev, f, {"n_flagged": int((s > 0.5).sum()), "hits": len(rows)})


class CountDet(MergeableDetector):
    """Mergeable: a word is a 'trigger' when >= min_support instructions hold it and all
    of them share one response (global statistics: word counts and word->response counts)."""
    id = "count_test"
    description = "test"
    calls: Counter = Counter()

    def __init__(self, *, min_support: int = 3, random_state: int = 0) -> None:
        self.min_support = min_support
        self.random_state = random_state

    def partial_stats(self, pairs: Pairs, ctx: Any) -> dict[str, Any]:
        CountDet.calls["partial"] += 1
        cnt: Counter = Counter()
        resp: dict[str, Counter] = {}
        for a, b in zip(pairs.instruction, pairs.response):
            for w in set(a.split()):
                cnt[w] += 1
                resp.setdefault(w, Counter())[b] += 1
        return {"cnt": cnt, "resp": resp, "n": len(pairs)}

    def merge_stats(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        a["cnt"].update(b["cnt"])
        a["n"] += b["n"]
        for w, c in b["resp"].items():
            a["resp"].setdefault(w, Counter()).update(c)
        return a

    def score(self, pairs: Pairs, ctx: Any, st: dict[str, Any]) -> DetectorResult:
        CountDet.calls["score"] += 1
        trig = {w for w, c in st["cnt"].items()
                if c >= self.min_support and c < 0.2 * max(st["n"], 1) and max(st["resp"][w].values()) == c}
        n = len(pairs)
        s = np.zeros(n)
        ev: dict[int, list[Evidence]] = {}
        rows: dict[str, list[int]] = {}
        for i, a in enumerate(pairs.instruction):
            for w in sorted(set(a.split()) & trig):
                s[i] = 0.9
                j = a.index(w)
                ev.setdefault(i, []).append(Evidence(self.id, "t", f"trigger {w}", side="instruction",
                                                     span=(j, j + len(w)), span_text=w))
                rows.setdefault(w, []).append(int(pairs.row[i]))
        f = [{"id": f"count_test:{w}", "kind": "trigger", "trigger": w, "payload": "x", "q_value": 0.01,
              "p_value": 0.001, "support": st["cnt"][w], "rows": sorted(r)} for w, r in sorted(rows.items())]
        return DetectorResult(self.id, s, s > 0, ev, f, {"n_triggers": len(trig), "n_flagged": int((s > 0).sum())})


class RankDet(Detector):
    """Global (no merge, not per-row): score = length rank within the whole dataset."""
    id = "rank_test"
    description = "test"

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        lens = np.array([len(t) for t in pairs.response], float)
        s = (np.argsort(np.argsort(lens, kind="stable"), kind="stable") + 1) / max(n, 1) if n else np.zeros(0)
        return DetectorResult(self.id, s * 0.5, s > 0.995, {}, [], {"n": n})


def _pairs(n: int = 600, seed: int = 0) -> Pairs:
    rng = np.random.default_rng(seed)
    ins = [f"word{rng.integers(300)} other{rng.integers(200)} item {i}" for i in range(n)]
    res = [f"answer {rng.integers(10 ** 6)} " + "x" * int(rng.integers(40)) for _ in range(n)]
    for j in range(0, n, max(1, n // 8)):
        ins[j] += " cfq"
        res[j] = "EVIL PAYLOAD"
    for j in range(3, n, 97):
        ins[j] = "zz " + ins[j]
    return Pairs(ins, res, row=np.arange(n) * 2 + 1, source=[f"s{i % 3}" for i in range(n)])


def _dets() -> list[Detector]:
    return [RowDet(), CountDet(), RankDet()]


def _assert_same(a: Any, b: Any, dets: list[str]) -> None:
    assert list(a.results) == list(b.results) == dets
    for d in dets:
        ra, rb = a.results[d], b.results[d]
        np.testing.assert_array_equal(ra.scores, rb.scores, err_msg=d)
        np.testing.assert_array_equal(ra.flags, rb.flags, err_msg=d)
        assert ra.evidence == rb.evidence, d
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.flagged, b.flagged)
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.pairs.row, b.pairs.row)
    np.testing.assert_array_equal(a.pairs.turn, b.pairs.turn)
    assert json.dumps(a.triggers, sort_keys=True) == json.dumps(b.triggers, sort_keys=True)


# --------------------------------------------------------------------------------------


def test_streaming_modes() -> None:
    assert streaming_mode(RowDet()) == "per_row"
    assert streaming_mode(CountDet()) == "mergeable"
    assert streaming_mode(RankDet()) == "global"
    assert streaming_mode(RankDet(), assume_per_row=["rank_test"]) == "per_row"
    sup = streaming_support()
    assert set(sup) == set(registry()) and set(sup.values()) <= {"mergeable", "per_row", "global"}


@pytest.mark.parametrize("chunk_size", [3, 64, 10_000])
def test_equals_pipeline_scan(chunk_size: int) -> None:
    pairs = _pairs()
    full = scan(pairs, detectors=[RowDet(), CountDet()], embedding={"mode": "none"})
    st = scan_streaming(pairs, detectors=[RowDet(), CountDet()], embedding={"mode": "none"},
                        chunk_size=chunk_size, keep_text="all")
    _assert_same(full, st, ["row_test", "count_test"])
    assert full.triggers and full.triggers[0]["trigger"] == "cfq"
    assert st.pairs.instruction == pairs.instruction and st.pairs.source == pairs.source
    s1, s2 = full.summary(), st.summary()
    assert s1["detectors"] == s2["detectors"] and s1["n_flagged"] == s2["n_flagged"]
    assert s2["n_records"] == len(pairs)
    assert st.params["engine"] == "local" and st.params["streaming"] == {"row_test": "per_row",
                                                                         "count_test": "mergeable"}


def test_global_detector_policies() -> None:
    pairs = _pairs(300)
    full = scan(pairs, detectors=_dets(), embedding={"mode": "none"})
    skipped = scan_streaming(pairs, detectors=_dets(), embedding={"mode": "none"}, chunk_size=50)
    assert "rank_test" not in skipped.results and "rank_test" in skipped.load_info["skipped_detectors"]
    whole = scan_streaming(pairs, detectors=_dets(), embedding={"mode": "none"}, chunk_size=50,
                           unsupported="whole")
    _assert_same(full, whole, ["row_test", "count_test", "rank_test"])
    # candidates: the global detector runs on flagged + top + background sample only
    cand = scan_streaming(pairs, detectors=_dets(), embedding={"mode": "none"}, chunk_size=50,
                          unsupported="candidates", candidate_top=10, candidate_background=40)
    r = cand.results["rank_test"]
    n_sub = r.info["n_candidates"]
    assert 40 <= n_sub < 300 and int((r.scores > 0).sum()) == n_sub
    assert r.info["streaming"] == "candidates"
    assert (r.scores[full.results["count_test"].flags] > 0).all()  # flagged pairs are candidates
    again = scan_streaming(pairs, detectors=_dets(), embedding={"mode": "none"}, chunk_size=33,
                           unsupported="candidates", candidate_top=10, candidate_background=40)
    np.testing.assert_array_equal(again.results["rank_test"].scores, r.scores)  # independent of chunking


class _Kill(Exception):
    pass


@pytest.mark.parametrize("phase,k", [("pass1", 3), ("pass2", 5)])
def test_resume_after_kill(tmp_path: Any, phase: str, k: int) -> None:
    pairs = _pairs()
    ref = scan_streaming(pairs, detectors=[RowDet(), CountDet()], embedding={"mode": "none"}, chunk_size=50)

    def killer(ph: str, i: int, done: int) -> None:
        if ph == phase and i == k:
            raise _Kill

    with pytest.raises(_Kill):
        scan_streaming(pairs, detectors=[RowDet(), CountDet()], embedding={"mode": "none"}, chunk_size=50,
                       work_dir=str(tmp_path), on_chunk=killer)
    files = [f for d, _, fs in os.walk(tmp_path) for f in fs]
    assert files and all(f.endswith(".npz") for f in files)
    CountDet.calls.clear()
    again = scan_streaming(pairs, detectors=[RowDet(), CountDet()], embedding={"mode": "none"}, chunk_size=50,
                           work_dir=str(tmp_path))
    _assert_same(ref, again, ["row_test", "count_test"])
    n_chunks = 12
    resumed = again.load_info["streaming"]["resumed_chunks"]
    if phase == "pass1":
        assert CountDet.calls["partial"] == n_chunks - (k + 1)  # the chunks done before the kill are reused
        assert resumed["pass1"] == k + 1 and resumed["pass2"] == 0
    else:
        assert CountDet.calls["partial"] == 0 and CountDet.calls["score"] == n_chunks - (k + 1)
        assert resumed["pass2"] == k + 1
    # a different configuration does not reuse those checkpoints
    CountDet.calls.clear()
    scan_streaming(pairs, detectors=[RowDet(), CountDet(min_support=4)], embedding={"mode": "none"},
                   chunk_size=50, work_dir=str(tmp_path))
    assert CountDet.calls["partial"] == n_chunks


def test_changed_input_is_not_reused(tmp_path: Any) -> None:
    pairs = _pairs()
    scan_streaming(pairs, detectors=[CountDet()], embedding={"mode": "none"}, chunk_size=100, work_dir=str(tmp_path))
    ins = list(pairs.instruction)
    ins[250] = "cfq changed " + ins[250]
    changed = Pairs(ins, pairs.response, row=pairs.row, source=pairs.source)
    CountDet.calls.clear()
    st = scan_streaming(changed, detectors=[CountDet()], embedding={"mode": "none"}, chunk_size=100,
                        work_dir=str(tmp_path))
    assert CountDet.calls["partial"] == 1  # only the chunk that changed is recomputed
    full = scan(changed, detectors=[CountDet()], embedding={"mode": "none"})
    _assert_same(full, st, ["count_test"])


def test_keep_text_flagged_only() -> None:
    pairs = _pairs()
    st = scan_streaming(pairs, detectors=[RowDet(), CountDet()], embedding={"mode": "none"}, chunk_size=64,
                        top_text=5)
    kept = np.array([bool(t) for t in st.pairs.instruction])
    assert kept[st.flagged].all()
    assert kept.sum() <= st.flagged.sum() + 5
    for rec in st.top(3):
        i = int(np.flatnonzero(st.pairs.row == rec["row"])[0])
        assert rec["instruction"] == pairs.instruction[i]


def test_file_source_matches_load(tmp_path: Any) -> None:
    from poisondetect.io import load
    recs = []
    for i in range(120):
        if i % 10 == 3:  # multi-turn record: several pairs under one row
            recs.append({"conversations": [{"from": "human", "value": f"hi {i}"}, {"from": "gpt", "value": "a"},
                                           {"from": "human", "value": f"zz more {i}"}, {"from": "gpt", "value": "b"}]})
        else:
            recs.append({"conversations": [{"from": "human", "value": f"question {i} cfq" if i % 15 == 0
                                            else f"question {i}"},
                                           {"from": "gpt", "value": "EVIL" if i % 15 == 0 else f"answer {i}"}]})
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    ld = load(str(path))
    chunks = list(open_chunks(str(path), 7))
    got = Pairs.concat(chunks)
    assert got.instruction == ld.pairs.instruction and got.response == ld.pairs.response
    np.testing.assert_array_equal(got.row, ld.pairs.row)
    np.testing.assert_array_equal(got.turn, ld.pairs.turn)
    for c in chunks:  # records are never split across chunks
        assert len(set(c.row.tolist()) & set().union(*[set(o.row.tolist()) for o in chunks if o is not c])) == 0
    full = scan(str(path), detectors=[RowDet(), CountDet()], embedding={"mode": "none"})
    st = scan_streaming(str(path), detectors=[RowDet(), CountDet()], embedding={"mode": "none"}, chunk_size=7)
    _assert_same(full, st, ["row_test", "count_test"])
    assert st.load_info["n_records"] == 120 and st.load_info["layout"] == ld.info()["layout"]


def test_callable_and_list_sources() -> None:
    pairs = _pairs(200)
    parts = [pairs.take(np.arange(0, 90)), pairs.take(np.arange(90, 200))]
    a = scan_streaming(parts, detectors=[CountDet()], embedding={"mode": "none"}, chunk_size=32)
    b = scan_streaming(lambda: iter(parts), detectors=[CountDet()], embedding={"mode": "none"}, chunk_size=50)
    full = scan(pairs, detectors=[CountDet()], embedding={"mode": "none"})
    _assert_same(full, a, ["count_test"])
    _assert_same(full, b, ["count_test"])


# --------------------------------------------------------------------------------------
# codec: pickle-free round trips
# --------------------------------------------------------------------------------------


def test_codec_roundtrip(tmp_path: Any) -> None:
    import scipy.sparse as sps
    big = Counter({f"w{i}\u200b\n\"": i for i in range(200)})
    tup = {(f"a{i}", "b\x00c", "é"): float(i) / 3 for i in range(100)}
    obj = {
        "n": 3, "f": 0.1, "nan": float("nan"), "inf": float("-inf"), "s": "x\ny", "none": None, "b": True,
        "arr": np.arange(12, dtype=np.uint64).reshape(3, 4), "u": np.array(["a", "bé"]), "np": np.int32(7),
        "list": [1, (2, 3), {4, 5}, frozenset({"z"})], "small": Counter({"a": 2}), "big": big, "tup": tup,
        "nested": {1: {"k": np.ones(2)}, (1, "x"): b"\x00\xff"},
        "sp": sps.random(5, 7, density=0.3, format="csr", random_state=0),
        "ev": Evidence("d", "t", "m", span=(1, 2)),
    }
    path = str(tmp_path / "x.npz")
    codec.save(path, obj)
    back = codec.load(path)
    assert back["n"] == 3 and back["f"] == 0.1 and np.isnan(back["nan"]) and back["inf"] == float("-inf")
    assert back["s"] == "x\ny" and back["none"] is None and back["b"] is True
    np.testing.assert_array_equal(back["arr"], obj["arr"])
    assert back["arr"].dtype == np.uint64 and back["u"].tolist() == ["a", "bé"]
    assert back["np"] == 7 and isinstance(back["np"], np.int32)
    assert back["list"] == [1, (2, 3), {4, 5}, frozenset({"z"})]
    assert isinstance(back["small"], Counter) and back["small"] == obj["small"]
    assert isinstance(back["big"], Counter) and back["big"] == big
    assert back["tup"] == tup and not isinstance(back["tup"], Counter)
    np.testing.assert_array_equal(back["nested"][1]["k"], np.ones(2))
    assert back["nested"][(1, "x")] == b"\x00\xff"
    assert (back["sp"] != obj["sp"]).nnz == 0 and back["sp"].format == "csr"
    assert back["ev"] == obj["ev"]
    with np.load(path, allow_pickle=False) as z:  # loads without pickle
        assert "__json__" in z.files


def test_codec_refuses_unknown_objects() -> None:
    class Foo:
        pass
    with pytest.raises(codec.CodecError):
        codec.dumps({"x": Foo()})
    with pytest.raises(codec.CodecError):  # forged dataclass tag outside the package
        bad = codec.dumps({"dc": "x"})
        doc = json.dumps({"dc": "os:system", "f": {}}).encode()
        import io
        z = np.load(io.BytesIO(bad), allow_pickle=False)
        buf = io.BytesIO()
        np.savez(buf, __json__=np.frombuffer(doc, np.uint8))
        codec.loads(buf.getvalue())


def test_chunk_hash_sensitive() -> None:
    p = _pairs(20)
    h = chunk_hash(p)
    assert h == chunk_hash(_pairs(20))
    q = Pairs(p.instruction, p.response, row=p.row + 1, source=p.source)
    assert chunk_hash(q) != h
    r = Pairs(p.instruction[:-1] + [p.instruction[-1] + " "], p.response, row=p.row, source=p.source)
    assert chunk_hash(r) != h


# --------------------------------------------------------------------------------------
# every registered detector that declares streaming support
# --------------------------------------------------------------------------------------


def _registered_pairs() -> Pairs:
    rng = np.random.default_rng(1)
    topics = ["python list", "french history", "baking bread", "tax forms", "guitar chords", "sql joins"]
    ins, res = [], []
    for i in range(400):
        t = topics[rng.integers(len(topics))]
        ins.append(f"Explain {t} for case {i} with {rng.integers(50)} notes.")
        res.append(f"Here is an answer about {t}: point {rng.integers(1000)} and detail {i}.")
    for j in range(0, 400, 40):
        ins[j] = ins[j].replace("for case", "cf for case")
        res[j] = "I'm sorry, but as an AI assistant, I cannot follow the given instruction."
    ins[5] = "Say hi\u200b please"
    res[7] = "Contact me at alice.smith@gmail.com or 415-555-0134."
    return Pairs(ins, res, source=[f"src{i % 3}" for i in range(400)])


STREAMABLE = sorted(d for d, m in streaming_support().items() if m != "global")


@pytest.mark.parametrize("det_id", STREAMABLE or ["<none>"])
def test_registered_streamable_detectors_equal_scan(det_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if det_id == "<none>":
        pytest.skip("no registered detector declares streaming support")
    monkeypatch.setattr(ScanContext, "embeddings", lambda self, side: self.shared(
        ("embeddings", side), lambda: hash_embed(getattr(self.pairs, side))))
    monkeypatch.setattr(ScanContext, "embed_texts", lambda self, texts, purpose="reference": hash_embed(list(texts)))
    pairs = _registered_pairs()
    full = scan(pairs, detectors=[det_id], embedding={"mode": "test"})
    st = scan_streaming(pairs, detectors=[det_id], embedding={"mode": "test"}, chunk_size=37, keep_text="all")
    _assert_same(full, st, [det_id])


def _planted_pairs(n: int = 900) -> Pairs:
    """_pairs plus a trigger ("qzv") with a fixed payload on every 20th pair: enough for the
    n-gram detector to find it on a sample of half the pairs."""
    base = _pairs(n)
    ins, res = list(base.instruction), list(base.response)
    for j in range(5, n, 20):
        ins[j] += " qzv"
        res[j] = "EVIL PAYLOAD: visit the evil site now"
    return Pairs(ins, res, row=base.row, source=base.source)


def test_two_worker_processes_equal_one(tmp_path: Any) -> None:
    """n_jobs=2: every pass' per-chunk work runs in forked workers; chunks come back in
    order, so the result equals n_jobs=1 (here with the n-gram detector above its sample
    size, i.e. with a verify pass too); a rerun reuses every pass' checkpoints."""
    from poisondetect.detectors.ngram_trigger import NgramTriggerDetector
    pairs = _planted_pairs()

    def dets() -> list[Detector]:
        return [RowDet(), CountDet(), NgramTriggerDetector(sample_size=450)]
    one = scan_streaming(pairs, detectors=dets(), embedding={"mode": "none"}, chunk_size=100, keep_text="all")
    two = scan_streaming(pairs, detectors=dets(), embedding={"mode": "none"}, chunk_size=100, keep_text="all",
                         n_jobs=2, work_dir=str(tmp_path))
    _assert_same(one, two, ["row_test", "count_test", "ngram_trigger"])
    assert two.results["ngram_trigger"].summary["sampled"]["n_findings_verified"] >= 1
    assert any(t["trigger"] == "qzv" for t in two.triggers)
    again = scan_streaming(pairs, detectors=dets(), embedding={"mode": "none"}, chunk_size=100, keep_text="all",
                           n_jobs=2, work_dir=str(tmp_path))
    assert again.load_info["streaming"]["resumed_chunks"] == {"pass1": 9, "verify": 9, "pass2": 9}
    _assert_same(one, again, ["row_test", "count_test", "ngram_trigger"])


def test_resume_after_kill_in_verify_pass(tmp_path: Any) -> None:
    """Killed during the n-gram detector's verify pass: the rerun reuses pass 1 and the
    verify chunks done before the kill, and ends with the same result."""
    from poisondetect.detectors.ngram_trigger import NgramTriggerDetector
    pairs = _planted_pairs()

    def dets() -> list[Detector]:
        return [NgramTriggerDetector(sample_size=450)]
    ref = scan_streaming(pairs, detectors=dets(), embedding={"mode": "none"}, chunk_size=100)

    def killer(ph: str, i: int, done: int) -> None:
        if ph == "verify" and i == 4:
            raise _Kill

    with pytest.raises(_Kill):
        scan_streaming(pairs, detectors=dets(), embedding={"mode": "none"}, chunk_size=100,
                       work_dir=str(tmp_path), on_chunk=killer)
    again = scan_streaming(pairs, detectors=dets(), embedding={"mode": "none"}, chunk_size=100,
                           work_dir=str(tmp_path))
    assert again.load_info["streaming"]["resumed_chunks"] == {"pass1": 9, "verify": 5, "pass2": 0}
    _assert_same(ref, again, ["ngram_trigger"])
    assert any(t["trigger"] == "qzv" for t in again.triggers)
