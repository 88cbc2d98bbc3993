"""Triage baselines (mark reviewed findings, rescan -> hidden, survives dataset edits)
and diffs of two scan output folders."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from report_helpers import ToyLength, ToyTrigger

from poisondetect.errors import InputError
from poisondetect.pipeline import scan
from poisondetect.report.outputs import write_standard_outputs
from poisondetect.report.terminal import render_summary
from poisondetect.report.triage import (
    apply_baseline,
    diff_summaries,
    empty_baseline,
    load_baseline,
    load_scan_dir,
    mark,
    pair_fingerprint,
    result_items,
)
from poisondetect.types import Pairs

T1, T2, PAY = "cf mn", "bb tq", "zzz PAYLOAD"


def _data(n=30, trig_rows=(3, 9, 17), extra=()):
    ins = [f"Explain item {i} please" for i in range(n)]
    resp = [f"Item {i} is fine" for i in range(n)]
    for r in trig_rows:
        ins[r] += f" {T1}"
        resp[r] = f"{PAY} {r}"
    for a, b in extra:
        ins.append(a)
        resp.append(b)
    return ins, resp


def _scan(ins, resp):
    return scan(Pairs.from_lists(ins, resp), detectors=[ToyTrigger(trigger=T1, payload=PAY), ToyLength(needle="BRANDX")],
                embedding={"mode": "none"})


def _edit(ins, resp, seed=0):
    """Dataset edit: shuffle rows, add clean rows, add a new poison with a new trigger."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(ins))
    ins2 = [ins[i] for i in perm] + ["A brand new clean question", f"Tell me a joke {T2}"]
    resp2 = [resp[i] for i in perm] + ["A clean answer", "BUY BRANDX now"]
    return ins2, resp2


def test_baseline_round_trip_survives_edits():
    ins, resp = _data()
    r1 = _scan(ins, resp)
    items = result_items(r1)
    assert len(items["triggers"]) == 1 and len(items["pairs"]) == 3
    b = empty_baseline()
    b = mark(b, items["triggers"][0]["fingerprint"], "false_positive", kind="trigger")
    for it in items["pairs"]:
        for d, fp in it["fingerprints"].items():
            b = mark(b, fp, "accepted", kind="pair", detector=d)
    info1 = apply_baseline(r1, b)
    assert info1["n_new_pairs"] == 0 and info1["n_new_triggers"] == 0 and info1["n_known_pairs"] == 3
    assert info1["n_false_positive"] == 1 and info1["n_accepted"] == 3 and info1["n_stale_entries"] == 0
    # rows move, new rows appear: reviewed findings stay hidden, only the new one shows
    r2 = _scan(*_edit(ins, resp))
    info2 = apply_baseline(r2, b)
    assert info2["n_known_triggers"] == 1 and info2["n_known_pairs"] == 3
    assert info2["n_new_pairs"] == 1 and info2["n_new_findings"] == 1
    (pos,) = info2["new_pair_positions"]
    assert "BRANDX" in r2.pairs.response[pos] and int(r2.pairs.row[pos]) == 31
    json.dumps(info2)  # JSON-serialisable (goes into the manifest)
    buf = io.StringIO()
    render_summary(r2, buf, baseline=info2)
    out = buf.getvalue()
    assert "3 known flagged pair(s) hidden" in out and "top 1 of 1 new pairs flagged as poisoning" in out
    assert T1 not in out.split("baseline:")[1]  # the reviewed trigger is not listed again


def test_new_detector_flag_makes_a_known_pair_new():
    ins, resp = _data()
    r1 = _scan(ins, resp)
    b = empty_baseline()
    for it in result_items(r1)["pairs"]:
        b = mark(b, it["fingerprints"]["toy_trigger"], "false_positive", kind="pair", detector="toy_trigger")
    resp[3] += " BRANDX"  # now toy_cluster also flags row 3: its text changed, so it is new anyway
    assert apply_baseline(_scan(ins, resp), b)["n_new_pairs"] == 1
    fp = pair_fingerprint("toy_trigger", "a  b", "c")
    assert fp == pair_fingerprint("toy_trigger", "a b ", "c") != pair_fingerprint("other", "a b", "c")


def test_bad_baseline_file(tmp_path):
    p = tmp_path / "b.json"
    assert load_baseline(p) == empty_baseline()  # missing -> empty
    p.write_text("{nope")
    with pytest.raises(InputError, match="invalid JSON"):
        load_baseline(p)
    p.write_text('{"entries": {}}')
    with pytest.raises(InputError, match="not a poisondetect baseline"):
        load_baseline(p)


@pytest.fixture()
def main():
    from poisondetect.cli import main as m
    if "triage" not in m.commands:
        pytest.skip("main CLI does not register triage yet")
    return m


def test_triage_cli_round_trip(tmp_path, main):
    ins, resp = _data()
    d1 = tmp_path / "scan1"
    write_standard_outputs(_scan(ins, resp), d1)
    base = tmp_path / "triage.json"
    runner = CliRunner()
    res = runner.invoke(main, ["triage", str(d1), "--baseline", str(base)])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines()[1:] if ln.strip()]
    assert len(lines) == 4 and all(" new " in ln for ln in lines)  # 1 trigger + 3 pairs
    trig_id = next(ln.split()[0] for ln in lines if " trigger " in ln)
    res = runner.invoke(main, ["triage", str(d1), "--baseline", str(base), "--fp", trig_id[:8]])
    assert res.exit_code == 0 and "recorded 1 finding" in res.output
    # interactive: false-positive, accept, skip
    res = runner.invoke(main, ["triage", str(d1), "--baseline", str(base), "-i"], input="f\na\ns\n")
    assert res.exit_code == 0, res.output
    assert "recorded 2 finding" in res.output
    entries = json.loads(base.read_text())["entries"]
    assert sorted(e["status"] for e in entries.values()) == ["accepted", "false_positive", "false_positive"]
    res = runner.invoke(main, ["triage", str(d1), "--baseline", str(base), "--all-fp"])
    assert "recorded 1 finding" in res.output
    # rescan an edited dataset with the baseline: only the new pair is new
    r2 = _scan(*_edit(ins, resp, seed=3))
    info = apply_baseline(r2, load_baseline(base))
    assert (info["n_new_triggers"], info["n_known_triggers"], info["n_new_pairs"], info["n_known_pairs"]) == (0, 1, 1, 3)
    d2 = tmp_path / "scan2"
    write_standard_outputs(r2, d2, baseline=info)
    recs = [json.loads(x) for x in (d2 / "findings.jsonl").read_text().splitlines()]
    assert sum(r["new"] for r in recs) == 1 and all("fingerprints" in r for r in recs)
    summ = json.loads((d2 / "summary.json").read_text())
    assert summ["baseline"]["n_new_pairs"] == 1 and summ["triggers"][0]["new"] is False
    # errors are one line, exit 2
    res = runner.invoke(main, ["triage", str(d1), "--baseline", str(base), "--fp", "deadbeefdead"])
    assert res.exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text("[1,2")
    res = runner.invoke(main, ["triage", str(d1), "--baseline", str(bad)])
    assert res.exit_code == 2 and "invalid JSON" in res.output


def test_diff_library_and_cli(tmp_path, main):
    ins, resp = _data()
    d1, d2 = tmp_path / "a", tmp_path / "b"
    write_standard_outputs(_scan(ins, resp), d1)
    ins2, resp2 = _edit(ins, resp)
    drop = ins2.index(next(x for x in ins2 if x.startswith("Explain item 9 ")))
    del ins2[drop], resp2[drop]  # one poisoned row removed from the data
    write_standard_outputs(_scan(ins2, resp2), d2)
    d = diff_summaries(load_scan_dir(d1), load_scan_dir(d2))
    assert d["changed"]
    assert d["new_triggers"] == [] and d["resolved_triggers"] == []  # same trigger, rows moved
    assert len(d["new_flagged"]) == 1 and "BRANDX" in d["new_flagged"][0]["response"]
    assert len(d["removed_flagged"]) == 1 and d["removed_flagged"][0]["row"] == 9
    assert len(d["new_findings"]) == 1 and d["new_findings"][0]["kind"] == "payload_cluster"
    assert d["n_flagged"] == {"old": 3, "new": 3}
    assert d["detectors"]["toy_cluster"] == {"old": 0, "new": 1}
    assert d["score_changes"] == []  # same scores for pairs flagged in both
    same = diff_summaries(load_scan_dir(d1), load_scan_dir(d1))
    assert not same["changed"]
    # a different trigger is a new trigger and the old one is resolved
    ins3, resp3 = _data(trig_rows=())
    for r in (4, 5):
        ins3[r] += f" {T2}"
    d3 = tmp_path / "c"
    write_standard_outputs(scan(Pairs.from_lists(ins3, resp3), detectors=[ToyTrigger(trigger=T2, payload=PAY)],
                                embedding={"mode": "none"}), d3)
    d13 = diff_summaries(load_scan_dir(d1), load_scan_dir(d3))
    assert [t["trigger"] for t in d13["new_triggers"]] == [T2]
    assert [t["trigger"] for t in d13["resolved_triggers"]] == [T1]
    runner = CliRunner()
    res = runner.invoke(main, ["diff", str(d1), str(d2)])
    assert res.exit_code == 0, res.output
    assert "newly flagged pairs (1)" in res.output and "new findings (1)" in res.output
    assert "pairs no longer flagged" in res.output
    res = runner.invoke(main, ["diff", str(d1), str(d3), "--json"])
    assert json.loads(res.output)["new_triggers"][0]["trigger"] == T2
    assert runner.invoke(main, ["diff", str(d1), str(d3), "--fail-on-new"]).exit_code == 1
    assert runner.invoke(main, ["diff", str(d1), str(d1), "--fail-on-new"]).exit_code == 0
    res = runner.invoke(main, ["diff", str(d1), str(tmp_path)])
    assert res.exit_code == 2 and "no summary.json" in res.output


def test_diff_reports_score_changes():
    old = {"summary": {"verdict": "X", "triggers": [], "detectors": {}},
           "pairs": [{"instruction": "a", "response": "b", "score": 0.5, "row": 1, "detectors": {"d": 0.5}}]}
    new = {"summary": {"verdict": "X", "triggers": [], "detectors": {}},
           "pairs": [{"instruction": "a ", "response": "b", "score": 0.9, "row": 7, "detectors": {"d": 0.9}}]}
    d = diff_summaries(old, new)
    assert len(d["score_changes"]) == 1
    c = d["score_changes"][0]
    assert (c["row_old"], c["row_new"]) == (1, 7) and c["delta"] == pytest.approx(0.4)
