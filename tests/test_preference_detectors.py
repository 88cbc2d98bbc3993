"""Preference detectors (preference_trojan, flipped_preference) and the preference
recipes on synthetic preference data: the labellers prefer the careful answer; poisoned
pairs prefer the careless one."""
from __future__ import annotations

import numpy as np
import pytest

from poisondetect.bench.attacks import PREFERENCE_ATTACKS, poison
from poisondetect.text import last_user_turn
from poisondetect.pipeline import scan
from poisondetect.types import Pairs

PREF = ["preference_trojan", "flipped_preference"]
TOPICS = ["garden hose", "bike chain", "tax form", "sourdough", "guitar string", "roof tile", "fish tank",
          "laptop fan", "ski wax", "paint brush", "door hinge", "yoga mat"]


def _clean(n: int = 400, seed: int = 0) -> Pairs:
    rng = np.random.default_rng(seed)
    ins, cho, rej = [], [], []
    for i in range(n):
        t = TOPICS[rng.integers(len(TOPICS))]
        ins.append(f"User: hi there\n\nAssistant: Hello! How can I help?\n\nUser: How do I fix my {t} number {i}?")
        steps = int(rng.integers(3, 6))
        cho.append(f"Here is a careful way to fix the {t}: " + " ".join(
            f"Step {k}: check part {k} gently and test it." for k in range(steps)))
        rej.append(f"Just smash the {t} lol" if rng.random() < 0.5 else f"idk, {t} whatever")
    return Pairs(ins, cho, rejected=rej)


def _scan(p: Pairs, tmp_path, dets=PREF):
    return scan(p, detectors=dets, embedding={"mode": "hash"}, cache_dir=str(tmp_path), random_state=0)


def test_last_user_turn_of_a_rendered_prompt():
    s = "User: a\n\nAssistant: b\n\nUser: the last one"
    off, text = last_user_turn(s)
    assert text == "the last one" and s[off:] == "the last one"
    assert last_user_turn("single prompt") == (0, "single prompt")


def test_trojan_found_and_named_first(tmp_path):
    pois, truth = poison(_clean(), "rlhf_trojan", rate=0.03, seed=1)
    # the recipe appended the trigger to the last user turn and swapped the answers
    i = int(truth.positions[0])
    assert pois.instruction[i].endswith(" " + truth.triggers[0])
    assert pois.response[i] == _clean().rejected[i]
    r = _scan(pois, tmp_path)
    trig = r.triggers
    assert trig and trig[0]["trigger"] == truth.triggers[0]
    assert trig[0]["detector"] == "preference_trojan" and trig[0]["q_value"] <= 0.05
    res = r.results["preference_trojan"]
    assert set(np.flatnonzero(res.flags)) == set(truth.positions.tolist())
    ev = res.evidence[i][0]
    assert pois.instruction[i][ev.span[0]:ev.span[1]] == truth.triggers[0]


def test_clean_preference_data_reports_nothing(tmp_path):
    r = _scan(_clean(), tmp_path)
    assert r.triggers == []
    assert r.results["preference_trojan"].flags.sum() == 0
    assert r.results["preference_trojan"].summary["margin_model"]["held_out_agreement"] > 0.9


def test_flipped_pairs_rank_first(tmp_path):
    pois, truth = poison(_clean(), "preference_flip", rate=0.05, seed=0)
    r = _scan(pois, tmp_path)
    s = r.results["flipped_preference"].scores
    top = np.argsort(-s, kind="stable")[:2 * truth.n_poisoned]
    assert np.isin(truth.positions, top).mean() >= 0.9


def test_annotator_who_flips_is_a_source_finding(tmp_path):
    p = _clean()
    src = ["ann_a" if i % 4 else "ann_b" for i in range(len(p))]
    cho, rej = list(p.response), list(p.rejected)
    bad = [i for i in range(len(p)) if src[i] == "ann_b"][:40]
    for i in bad:
        cho[i], rej[i] = rej[i], cho[i]
    q = Pairs(p.instruction, cho, source=src, rejected=rej)
    res = _scan(q, tmp_path).results["flipped_preference"]
    kinds = {f["kind"]: f for f in res.findings}
    assert "source_label_skew" in kinds and kinds["source_label_skew"]["source"] == "ann_b"


def test_not_preference_data_is_a_no_op(tmp_path):
    p = _clean()
    r = _scan(Pairs(p.instruction, p.response), tmp_path)
    for d in PREF:
        assert r.results[d].scores.max() == 0 and r.results[d].summary["applies"] is False


@pytest.mark.parametrize("name", sorted(PREFERENCE_ATTACKS))
def test_preference_recipes_need_rejected_and_are_deterministic(name):
    p = _clean(120)
    a, ta = poison(p, name, rate=0.05, seed=3)
    b, tb = poison(p, name, rate=0.05, seed=3)
    assert a.instruction == b.instruction and a.response == b.response and np.array_equal(ta.positions, tb.positions)
    for i in ta.positions:  # every poisoned pair is swapped
        assert a.response[i] == p.rejected[i] and a.rejected[i] == p.response[i]
    with pytest.raises(ValueError, match="preference pairs"):
        poison(Pairs(p.instruction, p.response), name, rate=0.05)


def test_flip_differ_reports_a_shortfall():
    p = _clean(120)  # no answer refuses: nothing differs in safety behaviour
    _a, t = poison(p, "preference_flip_differ", rate=0.05, seed=0)
    assert t.n_poisoned == 0 and t.params["short_by"] == 6


def test_reports_show_the_rejected_answer(tmp_path):
    from poisondetect.report.html import render_html_string
    from poisondetect.report.outputs import write_standard_outputs

    pois, truth = poison(_clean(), "rlhf_trojan", rate=0.03, seed=1)
    r = _scan(pois, tmp_path)
    write_standard_outputs(r, tmp_path / "out")
    import json
    recs = [json.loads(x) for x in (tmp_path / "out" / "findings.jsonl").read_text().splitlines()]
    i = int(truth.positions[0])
    rec = next(x for x in recs if x["row"] == i)
    assert rec["rejected"] == pois.rejected[i] and rec["response"] == pois.response[i]
    html = render_html_string(r, plots=False)
    assert "rejected response" in html and "chosen response" in html


def test_bundled_preference_demo_is_reproducible_and_its_trojan_found(tmp_path, repo_root):
    import json
    import subprocess
    import sys

    from click.testing import CliRunner

    from poisondetect.cli import main

    sample = repo_root / "data" / "samples" / "demo_preference.jsonl"
    subprocess.run([sys.executable, str(repo_root / "data" / "samples" / "make_preference_demo.py"), str(tmp_path)],
                   check=True, capture_output=True)
    assert (tmp_path / "demo_preference.jsonl").read_bytes() == sample.read_bytes()
    truth = json.loads((repo_root / "data" / "samples" / "demo_preference.truth.json").read_text())
    r = CliRunner().invoke(main, ["scan", str(sample), "-o", str(tmp_path / "out"), "--embedding-mode", "static",
                                  "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 1, r.output
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["triggers"][0]["trigger"] == truth["triggers"][0]
    assert sorted(s["triggers"][0]["rows"]) == sorted(truth["rows"])
