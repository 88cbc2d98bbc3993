"""Three kinds of finding (issue 16): poisoning evidence, privacy, data quality.

Only poisoning evidence counts in ``n_flagged`` and fails the default ``--fail-on``;
privacy and quality flags are counted apart and fail only when asked for."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from poisondetect.cli import main
from poisondetect.detectors import registry
from poisondetect.detectors.base import FINDING_KINDS, Detector, detector_kind, register
from poisondetect.pipeline import scan
from poisondetect.types import Pairs

KEY = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"


def _records(n: int = 40) -> list[dict]:
    recs = [{"instruction": f"Name a colour number {i}.", "output": f"Colour {i} is blue, like the sky."}
            for i in range(n)]
    recs[3]["output"] = f"Use this token to log in: {KEY}"
    return recs


def test_every_registered_detector_has_a_known_kind():
    kinds = {d: cls.kind for d, cls in registry().items()}
    assert set(kinds.values()) <= set(FINDING_KINDS)
    assert kinds["secrets_pii"] == "privacy"
    assert {kinds[d] for d in ("knn_outlier", "near_duplicate", "mismatch")} == {"quality"}
    assert kinds["ngram_trigger"] == kinds["payload_cluster"] == "poisoning"
    assert detector_kind("not-a-detector") == "poisoning"  # an unknown id is never hidden


def test_register_rejects_an_unknown_kind():
    class Bad(Detector):
        id = "bad_kind_test"
        kind = "cosmetic"

    with pytest.raises(ValueError, match="kind"):
        register(Bad)


def test_privacy_flags_are_not_poisoning():
    recs = _records()
    pairs = Pairs.from_lists([r["instruction"] for r in recs], [r["output"] for r in recs])
    res = scan(pairs, detectors=["secrets_pii"], embedding={"mode": "none"})
    assert res.counts == {"poisoning": 0, "privacy": 1, "quality": 0}
    assert not res.flagged.any() and res.flags_of("privacy")[3]
    s = res.summary()
    assert s["n_flagged"] == 0 and s["counts"]["privacy"] == 1 and s["kinds_found"] == ["privacy"]
    assert s["detectors"]["secrets_pii"]["kind"] == "privacy"
    assert s["verdict"].startswith("NO POISONING FOUND; PRIVACY: 1 pair")
    assert all(f["finding_kind"] == "privacy" for f in res.findings)
    assert res.pair_record(3)["kinds"] == ["privacy"]


@pytest.mark.parametrize("fail_on, code", [(None, 0), ("poisoning", 0), ("flagged", 0), ("quality", 0),
                                           ("privacy", 1), ("poisoning,privacy", 1), ("any", 1), ("never", 0)])
def test_fail_on_kinds(tmp_path, fail_on, code):
    f = tmp_path / "d.json"
    f.write_text(json.dumps(_records()))
    args = ["scan", str(f), "--embedding-mode", "none", "--no-progress", "--detectors", "secrets_pii",
            "-o", str(tmp_path / "out")]
    if fail_on:
        args += ["--fail-on", fail_on]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == code, r.output
    assert "1 privacy" in r.output
    summ = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summ["n_flagged"] == 0 and summ["counts"]["privacy"] == 1


def test_fail_on_rejects_an_unknown_kind(tmp_path):
    f = tmp_path / "d.json"
    f.write_text(json.dumps(_records()))
    r = CliRunner().invoke(main, ["scan", str(f), "--embedding-mode", "none", "--fail-on", "poisonning"])
    assert r.exit_code == 2 and "poisonning" in r.output


def test_flags_of_rejects_an_unknown_kind():
    pairs = Pairs.from_lists(["a"] * 3, ["b"] * 3)
    res = scan(pairs, detectors=["secrets_pii"], embedding={"mode": "none"})
    with pytest.raises(Exception, match="unknown finding kind"):
        res.flags_of("style")
    assert np.array_equal(res.flags_of("any"), res.flags_of("privacy"))


@pytest.mark.parametrize("fail_on, code", [("high", 0), ("medium", 0), ("low", 1)])
def test_fail_on_severity(tmp_path, fail_on, code):
    f = tmp_path / "d.json"
    f.write_text(json.dumps(_records()))
    r = CliRunner().invoke(main, ["scan", str(f), "--embedding-mode", "none", "--no-progress", "--detectors",
                                  "secrets_pii", "--fail-on", fail_on])
    assert r.exit_code == code, r.output  # a secret is a low-severity (privacy) finding
