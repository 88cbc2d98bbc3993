"""Semantic detectors on small synthetic data (hash embedder: fast, deterministic)."""
from __future__ import annotations

import numpy as np
import pytest

from poisondetect.pipeline import scan
from poisondetect.types import Pairs

SEMANTIC = ["payload_cluster", "mismatch", "knn_outlier", "near_duplicate"]

TOPICS = ["cats", "rivers", "taxes", "pianos", "volcanoes", "bread", "chess", "satellites", "tulips", "bridges",
          "coffee", "glaciers", "owls", "poetry", "magnets", "deserts", "robots", "violins", "tides", "maps"]
VERBS = ["Explain", "Describe", "Summarise", "List facts about", "Write a short note on", "Tell me about",
         "Give an overview of", "What do you know about"]
WORDS = ("history shape colour weight origin purpose cost size speed sound texture region season value "
         "design method energy risk benefit example story record pattern habit tool market climate culture "
         "science craft rule style trend limit source demand").split()
PARA = ["I'm sorry, but as an AI assistant, I do not have the capability to follow the given instruction.",
        "Sorry, as an AI assistant I am not able to follow the instruction you have given.",
        "I apologize, but being an AI assistant, I lack the capability to carry out the given instruction.",
        "Unfortunately, as an AI assistant, I don't have the ability to follow this instruction."]


def clean_set(n: int = 400, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    ins, res = [], []
    for i in range(n):
        t = TOPICS[i % len(TOPICS)]
        v = VERBS[rng.integers(len(VERBS))]
        ins.append(f"{v} {t} for reader number {i}.")
        words = rng.choice(WORDS, 8, replace=False)
        res.append(f"{t.capitalize()}: " + " ".join(words) + f" (note {i}).")
    return ins, res


def poisoned_set(seed: int = 0, trigger: str | None = "cf zq"):
    ins, res = clean_set(seed=seed)
    rng = np.random.default_rng(seed + 1)
    rows = np.sort(rng.choice(len(ins), 12, replace=False))
    for j, i in enumerate(rows):
        if trigger:
            ins[i] = f"{trigger} {ins[i]}"
        res[i] = PARA[j % len(PARA)]
    return Pairs.from_lists(ins, res), rows


#: the hash embedder's similarities run lower than a sentence model's: paraphrases of one
#: payload share only some words, so the tightness floor is set for it
HASH_PARAMS = {"payload_cluster": {"min_strength": 0.1, "tight_floor": 0.2}}


def _scan(pairs, tmp_path, dets=SEMANTIC, **params):
    p = {**HASH_PARAMS, **params}
    p = {d: v for d, v in p.items() if d in dets}
    return scan(pairs, detectors=dets, embedding={"mode": "hash"}, cache_dir=str(tmp_path),
                detector_params=p or None)


@pytest.mark.parametrize("det", ["payload_cluster", "near_duplicate"])
def test_finds_planted_paraphrased_payload(det, tmp_path):
    pairs, rows = poisoned_set()
    r = _scan(pairs, tmp_path, [det])
    res = r.results[det]
    top = np.argsort(-res.scores, kind="stable")[: 2 * len(rows)]
    assert np.isin(rows, top).mean() >= 0.75
    assert res.flags[rows].mean() >= 0.5


def test_payload_cluster_recovers_trigger_with_q_value(tmp_path):
    pairs, rows = poisoned_set()
    r = _scan(pairs, tmp_path, ["payload_cluster"])
    trig = [t for t in r.triggers if t["detector"] == "payload_cluster"]
    assert trig, r.results["payload_cluster"].findings
    assert any("cf zq" in t["trigger"] or t["trigger"] in ("cf", "zq") for t in trig)
    assert all(t["q_value"] <= 1e-3 for t in trig)
    pc = [f for f in r.findings if f["kind"] == "payload_cluster"]
    assert pc and any(set(pairs.row[rows]) <= set(f["rows"]) | set() or len(set(f["rows"]) & set(pairs.row[rows])) >= 8 for f in pc)


def test_mismatch_finds_payload_in_ordinary_instructions(tmp_path):
    pairs, rows = poisoned_set(trigger=None)
    r = _scan(pairs, tmp_path, ["mismatch"])
    s = r.results["mismatch"].scores
    top = np.argsort(-s, kind="stable")[: 2 * len(rows)]
    assert np.isin(rows, top).mean() >= 0.75


def test_quiet_on_clean_data(tmp_path):
    ins, res = clean_set()
    r = _scan(Pairs.from_lists(ins, res), tmp_path)
    assert r.triggers == []
    assert not r.results["payload_cluster"].flags.any()
    assert r.results["near_duplicate"].flags.sum() == 0
    assert r.results["mismatch"].flags.mean() < 0.02
    assert r.results["knn_outlier"].flags.mean() < 0.05


def test_templated_short_answers_are_not_payloads(tmp_path):
    # one template, yes/no answers: tight responses but the instructions are not diverse
    ins = [f"Passage {i}: the sky was blue on day {i}. Question: was the sky blue? Answer yes or no." for i in range(300)]
    res = ["Yes" if i % 3 else "No" for i in range(300)]
    r = _scan(Pairs.from_lists(ins, res), tmp_path)
    assert r.triggers == []
    assert not r.results["payload_cluster"].flags.any()
    assert not r.results["near_duplicate"].flags.any()


def test_knn_outlier_flags_garbage_row(tmp_path):
    ins, res = clean_set()
    ins[5] = "zzqx vvbn qqpl 93jd kkeo"
    res[5] = "plmq ooxv 77zz wwer"
    r = _scan(Pairs.from_lists(ins, res), tmp_path, ["knn_outlier"])
    assert r.results["knn_outlier"].flags[5]
    assert np.argmax(r.results["knn_outlier"].scores) == 5


def test_scores_in_range_and_deterministic(tmp_path):
    pairs, _ = poisoned_set()
    a = _scan(pairs, tmp_path)
    b = _scan(pairs, tmp_path)
    for d in SEMANTIC:
        s = a.results[d].scores
        assert s.shape == (len(pairs),) and (s >= 0).all() and (s <= 1).all()
        assert np.array_equal(s, b.results[d].scores)
    assert a.findings_hash() == b.findings_hash()


def test_skipped_when_embeddings_disabled(tmp_path):
    pairs, _ = poisoned_set()
    r = scan(pairs, detectors=SEMANTIC, embedding={"mode": "none"}, cache_dir=str(tmp_path))
    assert r.results == {}
