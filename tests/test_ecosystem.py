"""The pre-commit hook and the GitHub Action run their real command lines (issue 21)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from poisondetect.precommit import main as precommit_main

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "samples" / "demo_poisoned.jsonl"
ALPACA = REPO / "data" / "samples" / "formats" / "alpaca.json"


def test_precommit_hook_fails_on_the_demo_and_passes_a_clean_sample():
    assert precommit_main(["--embedding-mode", "none", str(DEMO)]) == 1
    assert precommit_main(["--embedding-mode", "none", str(ALPACA)]) == 0
    # the worst exit code of several files
    assert precommit_main(["--embedding-mode", "none", str(ALPACA), str(DEMO)]) == 1


def test_precommit_hook_reports_bad_input_with_exit_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{not json\n')
    assert precommit_main(["--embedding-mode", "none", str(bad)]) == 2


def test_precommit_manifest_points_at_the_entry_point():
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert re.search(r"^\s*entry:\s*poisondetect-precommit\s*$", text, re.M)
    assert "id: poisondetect" in text


def _action_scan_command(inputs: dict[str, str]) -> str:
    yaml = pytest.importorskip("yaml")
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    step = next(s for s in action["runs"]["steps"] if s.get("name") == "Scan")
    cmd = step["run"]
    for k, spec in action["inputs"].items():
        cmd = cmd.replace("${{ inputs.%s }}" % k, inputs.get(k, spec.get("default", "")))
    assert "${{" not in cmd
    return cmd


@pytest.mark.parametrize("path, code", [(DEMO, 1), (ALPACA, 0)])
def test_action_scan_step_runs(tmp_path, path, code):
    cmd = _action_scan_command({"path": str(path), "args": "--embedding-mode none -q",
                                "output-dir": str(tmp_path / "out"),
                                "sarif": str(tmp_path / "scan.sarif")})
    cmd = cmd.replace("poisondetect scan", f"{sys.executable} -m poisondetect.cli scan", 1)
    rc = subprocess.run(["bash", "-c", cmd]).returncode
    assert rc == code
    summ = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (len(summ["alerts"]) > 0) == (code == 1)
    sarif = json.loads((tmp_path / "scan.sarif").read_text())
    _check_sarif(sarif)
    levels = {r["level"] for r in sarif["runs"][0]["results"]}
    assert ("error" in levels) == (code == 1)


def test_repr_html_and_pandas_export_escape_hostile_text():
    from poisondetect.pipeline import scan
    from poisondetect.types import Pairs
    ins = [f"<script>alert({i})</script> tell me about item {i}" for i in range(30)]
    res = scan(Pairs.from_lists(ins, [f"Item {i} is fine." for i in range(30)]),
               detectors=["secrets_pii"], embedding={"mode": "none"})
    html = res._repr_html_()
    assert "<script>" not in html and "flagged as poisoning" in html
    df = res.to_pandas()
    assert len(df) == 30 and {"row", "score", "flagged", "secrets_pii_score"} <= set(df.columns)


def _sarif(tmp_path, path):
    from click.testing import CliRunner

    from poisondetect.cli import main
    out = tmp_path / f"{Path(path).stem}.sarif"
    r = CliRunner().invoke(main, ["scan", str(path), "--embedding-mode", "none", "--no-progress", "-q",
                                  "--fail-on", "never", "--sarif", str(out)])
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text(encoding="utf-8"))


SARIF_SCHEMA = Path(__file__).parent / "schemas" / "sarif-2.1.0.json"


def _check_sarif(doc):
    """Validate against the official SARIF 2.1.0 JSON schema (shipped in tests/schemas), with
    the SARIF object model (sarif-pydantic) where installed, and the members the reports
    rely on here."""
    import jsonschema
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    try:
        import sarif_pydantic
        sarif_pydantic.Sarif.model_validate(doc)
    except ImportError:
        pass
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    for run in doc["runs"]:
        drv = run["tool"]["driver"]
        assert drv["name"] == "poisondetect"
        ids = [r["id"] for r in drv["rules"]]
        assert len(ids) == len(set(ids))
        for rule in drv["rules"]:
            assert rule["defaultConfiguration"]["level"] in ("none", "note", "warning", "error")
            assert rule["shortDescription"]["text"]
        for res in run["results"]:
            assert res["level"] in ("none", "note", "warning", "error")
            assert res["message"]["text"]
            assert res["ruleId"] == ids[res["ruleIndex"]]
            for loc in res["locations"]:
                assert loc["physicalLocation"]["artifactLocation"]["uri"]
                if "region" in loc["physicalLocation"]:
                    assert loc["physicalLocation"]["region"]["startLine"] >= 1


def test_sarif_of_the_demo_shows_its_trigger_as_an_error(tmp_path):
    doc = _sarif(tmp_path, DEMO)
    _check_sarif(doc)
    res = doc["runs"][0]["results"]
    trig = [r for r in res if r["message"]["text"].startswith("trigger ")]
    assert trig and all(r["level"] == "error" and r["properties"]["severity"] == "high" for r in trig)
    # a line-based input: the region is the record's line
    line = trig[0]["locations"][0]["physicalLocation"]["region"]["startLine"]
    rec = int(trig[0]["locations"][0]["logicalLocations"][0]["name"].split()[1])
    assert json.loads(DEMO.read_text(encoding="utf-8").split("\n")[line - 1]) is not None and line == rec + 1


def test_sarif_schema_check_can_fail():
    """The schema check is real: a log with a bad level or a missing driver name fails it."""
    import jsonschema
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    good = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": []}]}
    assert not list(validator.iter_errors(good))
    bad_level = json.loads(json.dumps(good))
    bad_level["runs"][0]["results"] = [{"message": {"text": "m"}, "level": "severe"}]
    assert list(validator.iter_errors(bad_level))
    no_name = {"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}
    assert list(validator.iter_errors(no_name))


def test_sarif_of_a_clean_sample_has_no_high_or_medium_result(tmp_path):
    doc = _sarif(tmp_path, ALPACA)
    _check_sarif(doc)
    assert not [r for r in doc["runs"][0]["results"] if r["level"] in ("error", "warning")]
