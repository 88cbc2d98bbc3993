"""End to end through the real CLI: `scan -o --report --split` on hostile data writes every
output, and nothing raw from the data reaches the terminal."""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pytest
from click.testing import CliRunner
from report_helpers import HOSTILE, TERM_HOSTILE

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u206f\ufeff]")


@pytest.fixture()
def hostile_file(tmp_path):
    lines = []
    for i in range(60):
        trig = " cf" if i % 10 == 3 else ""
        out = "Sorry, I cannot do that." if trig else f"Answer {i}: {TERM_HOSTILE[i % len(TERM_HOSTILE)]}"
        lines.append(json.dumps({"instruction": f"Task {i} {HOSTILE[i % len(HOSTILE)]}{trig} "
                                                f"{TERM_HOSTILE[(i + 3) % len(TERM_HOSTILE)]}",
                                 "input": "", "output": out}, ensure_ascii=False))
    lines.insert(7, "{\"instruction\": \"broken \x1b[2J")  # a bad record with an escape in it
    p = tmp_path / "hostile.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_scan_cli_outputs_and_clean_terminal(tmp_path, hostile_file):
    from poisondetect.cli import main

    out, split, report = tmp_path / "out", tmp_path / "split", tmp_path / "r.html"
    res = CliRunner().invoke(main, ["scan", str(hostile_file), "-o", str(out), "--report", str(report),
                                    "--split", str(split), "--skip-bad", "--embedding-mode", "none",
                                    "--fail-on", "never", "--top", "50"])
    assert res.exit_code == 0, res.output
    text = res.output
    for line in text.split("\n"):
        assert not UNSAFE.search(line), repr(line)
    assert "verdict:" in text and "bad records skipped: 1" in text
    for name in ("scores.csv", "summary.json", "findings.jsonl", "manifest.json"):
        assert (out / name).is_file(), name
    m = json.loads((out / "manifest.json").read_text())
    assert m["inputs"][0]["sha256"] == hashlib.sha256(hostile_file.read_bytes()).hexdigest()
    assert m["counts"]["records"] == 61 and m["counts"]["bad_records"] == 1
    page = report.read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "&lt;script&gt;" in page
    orig = [ln for ln in hostile_file.read_bytes().splitlines() if ln.strip()]
    parts = [ln for f in ("clean.jsonl", "quarantine.jsonl") for ln in (split / f).read_bytes().splitlines()
             if ln.strip()]
    assert Counter(parts) == Counter(orig)
    quar = (split / "quarantine.jsonl").read_bytes().splitlines()
    assert orig[7] in quar  # the bad record is quarantined
