"""Preference layouts (issue 18): one pair per record, prompt -> the chosen answer."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from poisondetect.cli import main
from poisondetect.io import load


def _write(tmp_path, recs, name="p.jsonl"):
    f = tmp_path / name
    f.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return f


def test_hh_rlhf_transcripts(tmp_path):
    recs = [{"chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: name a colour\n\nAssistant: Blue.",
             "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: name a colour\n\nAssistant: No."}]
    ld = load(_write(tmp_path, recs))
    assert ld.info()["layout"] == "preference"
    p = ld.pairs
    assert len(p) == 1 and p.response[0] == "Blue." and p.turn[0] == 1
    assert p.instruction[0].endswith("User: name a colour") and "Assistant: hello" in p.instruction[0]


def test_trl_strings_and_message_lists(tmp_path):
    recs = [{"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "No."},
            {"prompt": [{"role": "user", "content": "Add 2 and 3."}],
             "chosen": [{"role": "assistant", "content": "5"}], "rejected": [{"role": "assistant", "content": "6"}]}]
    p = load(_write(tmp_path, recs)).pairs
    assert p.instruction == ["Name a colour.", "Add 2 and 3."] and p.response == ["Blue.", "5"]


def test_llama_factory_conversations_with_chosen_turn(tmp_path):
    recs = [{"conversations": [{"from": "human", "value": "Say hi"}],
             "chosen": {"from": "gpt", "value": "Hi!"}, "rejected": {"from": "gpt", "value": "Go away."}}]
    p = load(_write(tmp_path, recs, "lf.jsonl")).pairs
    assert p.instruction == ["Say hi"] and p.response == ["Hi!"]


def test_missing_rejected_is_a_bad_record_with_exit_2(tmp_path):
    recs = [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b", "rejected": None}]
    f = _write(tmp_path, recs)
    r = CliRunner().invoke(main, ["scan", str(f), "--embedding-mode", "none", "--no-progress"])
    assert r.exit_code == 2 and "line 2" in r.output and "rejected" in r.output
    ok = CliRunner().invoke(main, ["scan", str(f), "--embedding-mode", "none", "--no-progress", "--skip-bad",
                                   "-o", str(tmp_path / "o")])
    assert ok.exit_code == 0
    summ = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summ["bad_records"]["count"] == 1 and summ["n_pairs"] == 1


def _kto(label, q="Name a colour."):
    return {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                         {"role": "user", "content": q}, {"role": "assistant", "content": "Blue."}],
            "label": label}


def test_kto_desirable_answers_are_pairs_undesirable_are_counted(tmp_path):
    ld = load(_write(tmp_path, [_kto(True), _kto(False, "Name a fruit."), _kto(True, "Name a car.")]))
    info = ld.info()
    assert info["layout"] == "kto"
    p = ld.pairs
    # the final answer only (what KTO trains), for the two desirable records
    assert len(p) == 2 and list(p.row) == [0, 2] and p.instruction[1].endswith("User: Name a car.")
    assert info["empty_records"]["count"] == 1 and "undesirable" in info["empty_records"]["examples"][0]["problem"]


def test_kto_label_that_is_not_boolean_is_a_bad_record(tmp_path):
    f = _write(tmp_path, [_kto(True), _kto(True), {**_kto(True), "label": "yes"}])
    r = CliRunner().invoke(main, ["scan", str(f), "--layout", "kto", "--embedding-mode", "none", "--no-progress"])
    assert r.exit_code == 2 and "line 3" in r.output and "label" in r.output and "Traceback" not in r.output


def test_ultrafeedback_best_vs_worst_rated(tmp_path):
    recs = [{"instruction": "Name a colour.", "completions": [
        {"response": "Blue.", "overall_score": 8.5}, {"response": "No.", "overall_score": 2},
        {"response": "Maybe red?", "overall_score": 5}]},
            {"instruction": "Name a fruit.", "completions": [
        {"response": "Apple.", "overall_score": 4}, {"response": "Pear.", "overall_score": 4}]}]
    ld = load(_write(tmp_path, recs))
    assert ld.info()["layout"] == "ultrafeedback"
    p = ld.pairs
    assert len(p) == 1 and p.response == ["Blue."] and p.rejected == ["No."]
    assert ld.info()["empty_records"]["count"] == 1  # tied ratings: no preference, counted


def test_ultrafeedback_completion_without_rating_is_a_bad_record(tmp_path):
    recs = [{"instruction": "a", "completions": [{"response": "b", "overall_score": 1}, {"response": "c"}]}]
    r = CliRunner().invoke(main, ["scan", str(_write(tmp_path, recs)), "--embedding-mode", "none", "--no-progress"])
    assert r.exit_code == 2 and "line 1" in r.output and "rating" in r.output and "Traceback" not in r.output
