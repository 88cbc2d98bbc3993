"""manifest.json: what was scanned, with what, reproducibly."""
from __future__ import annotations

import hashlib
import json
import platform

from report_helpers import ToyLength, ToyTrigger

from poisondetect import __version__
from poisondetect.io import load
from poisondetect.pipeline import scan
from poisondetect.report.manifest import write_manifest


def test_manifest_contents(tmp_path):
    src = tmp_path / "d.jsonl"
    lines = [json.dumps({"instruction": f"q{i}" + (" cf\u200b<b>zz</b>" if i < 3 else ""), "output": f"a{i}"})
             for i in range(10)]
    src.write_text("\n".join(lines) + "\n{broken\n", encoding="utf-8")
    ld = load(str(src), skip_bad=True)
    res = scan(ld.pairs, detectors=[ToyTrigger(payload="zzz"), ToyLength(needle="a7")], embedding={"mode": "none"},
               load_info=ld.info(), random_state=7)
    res.params["embedding_info"] = {"name": "test-model", "files": {"model.safetensors": "ab" * 32}}
    m = write_manifest(res, tmp_path / "out" / "manifest.json", inputs=[str(src)],
                       command=["poisondetect", "scan", str(src)], extra={"note": "x"})
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(m))
    assert m["inputs"][0]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert m["inputs"][0]["bytes"] == src.stat().st_size
    assert m["counts"] == {"records": 11, "pairs": 10, "bad_records": 1, "empty_records": 0,
                           "flagged_pairs": 4, "flagged_records": 4, "triggers": 1}
    assert m["tool"] == {"name": "poisondetect", "version": __version__}
    assert m["seed"] == 7
    assert m["embedding"]["settings"] == {"mode": "none"}
    assert m["embedding"]["model"]["files"]["model.safetensors"] == "ab" * 32
    assert set(m["detectors"]) == {"toy_trigger", "toy_cluster"}
    assert m["detectors"]["toy_cluster"]["params"] == {"needle": "a7", "random_state": 7}
    assert m["detectors"]["toy_trigger"]["n_flagged"] == 3
    assert m["findings_sha256"] == res.findings_hash()
    assert "total" in m["timings_s"] and m["command"][:2] == ["poisondetect", "scan"]
    assert m["environment"]["python"] == platform.python_version()
    assert "numpy" in m["environment"]["libraries"]
    assert m["created_utc"].endswith("Z") and m["extra"] == {"note": "x"}


def test_manifest_directory_and_missing_inputs(tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    (d / "a.arrow").write_bytes(b"abc")
    (d / "state.json").write_text("{}")
    res = scan(load([{"instruction": "a", "output": "b"}]).pairs, detectors=[ToyTrigger()], embedding={"mode": "none"})
    m = write_manifest(res, tmp_path / "m.json", inputs=[str(d), "someorg/hub-dataset"])
    assert m["inputs"][0]["kind"] == "directory" and len(m["inputs"][0]["files"]) == 2
    assert m["inputs"][0]["files"][0]["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert m["inputs"][1]["kind"] == "not a local file"
    assert m["embedding"]["model"] == "embeddings disabled"
