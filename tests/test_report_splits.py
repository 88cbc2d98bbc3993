"""--split: clean + quarantine hold every input record exactly once, byte-identical
where the format allows, in the input's own format; --redact rewrites the clean split."""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import sys
import types
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_helpers import ToyTrigger

from poisondetect.errors import ConfigError
from poisondetect.io import load
from poisondetect.pipeline import scan
from poisondetect.report.splits import write_splits

TRIG = "cf TRIG"


def _records(n=12):
    recs = []
    for i in range(n):
        trig = f" {TRIG}" if i % 4 == 1 else ""
        recs.append({"instruction": f"Question {i}, with \"quotes\", commas and ünïcode{trig}", "input": "",
                     "output": f"Answer {i} mail me at user{i}@example.com"})
    return recs


def _write(fmt, path, recs, bad_line=False):
    if fmt in ("jsonl", "jsonl.gz"):
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
        if bad_line:
            body = body.replace("\n", "\n{not json at all\n", 1)
        data = body.encode("utf-8")
        if fmt.endswith(".gz"):
            with gzip.open(path, "wb") as f:
                f.write(data)
        else:
            path.write_bytes(data)
    elif fmt == "json":
        path.write_text(json.dumps(recs, ensure_ascii=False, indent=2), encoding="utf-8")
    elif fmt in ("csv", "tsv"):
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["instruction", "input", "output"], delimiter="," if fmt == "csv" else "\t")
            w.writeheader()
            w.writerows(recs)
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(recs), path)


def _units(fmt, path):
    """The file's records as hashable units: raw bytes for line formats, canonical JSON otherwise."""
    if fmt in ("jsonl", "jsonl.gz"):
        if str(path).endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
        return [hashlib.sha256(line).hexdigest() for line in raw.splitlines() if line.strip()], raw
    if fmt in ("csv", "tsv"):
        raw = path.read_bytes()
        lines = raw.splitlines()
        return [hashlib.sha256(line).hexdigest() for line in lines[1:] if line.strip()], lines[0]
    if fmt == "json":
        objs = json.loads(path.read_text(encoding="utf-8"))
    else:
        objs = pq.read_table(path).to_pylist()
    return [hashlib.sha256(json.dumps(o, sort_keys=True, ensure_ascii=False).encode()).hexdigest() for o in objs], None


def _scan(ld):
    return scan(ld.pairs, detectors=[ToyTrigger(trigger=TRIG, payload="zzz")], embedding={"mode": "none"},
                load_info=ld.info())


@pytest.mark.parametrize("fmt,bad", [("jsonl", False), ("jsonl", True), ("jsonl.gz", False), ("json", False),
                                     ("csv", False), ("tsv", False), ("parquet", False)])
def test_split_conservation(tmp_path, fmt, bad):
    recs = _records()
    src = tmp_path / f"data.{fmt}"
    _write(fmt, src, recs, bad_line=bad)
    ld = load(str(src), skip_bad=bad)
    res = _scan(ld)
    info = write_splits(res, ld, tmp_path / "out")
    clean, quar = tmp_path / "out" / f"clean.{fmt}", tmp_path / "out" / f"quarantine.{fmt}"
    assert clean.is_file() and quar.is_file()
    orig_u, orig_head = _units(fmt, src)
    clean_u, clean_head = _units(fmt, clean)
    quar_u, _ = _units(fmt, quar)
    # every record exactly once, byte-identical (raw line hashes) where the format allows
    assert Counter(clean_u) + Counter(quar_u) == Counter(orig_u)
    assert len(clean_u) + len(quar_u) == ld.n_records
    if fmt in ("csv", "tsv"):
        assert clean_head == orig_head  # header kept
    # quarantine = records with a flagged pair + bad records
    expected = {int(r) for r in res.pairs.row[res.flagged]} | {int(b) for b in ld.bad_indices}
    assert len(expected) == 3 + int(bad)
    assert {q["record"] for q in info["quarantined"]} == expected
    assert info["quarantine"]["records"] == len(expected) == len(quar_u)
    exp_units = Counter(orig_u[i] for i in expected)
    assert Counter(quar_u) == exp_units
    assert info["clean"]["sha256"] == hashlib.sha256(clean.read_bytes()).hexdigest()
    # the split files load back in the same format
    assert load(str(quar), skip_bad=True).format == ld.format
    assert json.loads((tmp_path / "out" / "splits.json").read_text())["n_records"] == ld.n_records


def test_split_multi_turn_record_goes_whole(tmp_path):
    convs = []
    for i in range(5):
        second = f"follow up {TRIG}" if i == 2 else "follow up"
        convs.append({"conversations": [{"from": "human", "value": f"hi {i}"}, {"from": "gpt", "value": "hello"},
                                        {"from": "human", "value": second}, {"from": "gpt", "value": "ok"}]})
    src = tmp_path / "chat.jsonl"
    src.write_text("".join(json.dumps(c) + "\n" for c in convs), encoding="utf-8")
    ld = load(str(src))
    assert len(ld.pairs) == 10
    res = _scan(ld)
    assert res.flagged.sum() == 1 and int(res.pairs.turn[res.flagged][0]) == 1
    write_splits(res, ld, tmp_path / "o")
    q = (tmp_path / "o" / "quarantine.jsonl").read_text().splitlines()
    c = (tmp_path / "o" / "clean.jsonl").read_text().splitlines()
    assert q == [src.read_text().splitlines()[2]] and len(c) == 4


def _fake_redact(text):
    import re

    new, n = re.subn(r"[\w.]+@example\.com", "[EMAIL]", text)
    return new, n


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_redact_clean_split(tmp_path, monkeypatch, fmt):
    mod = types.ModuleType("poisondetect.redact")
    mod.redact = _fake_redact
    monkeypatch.setitem(sys.modules, "poisondetect.redact", mod)
    recs = _records()
    recs[0]["output"] = "no pii here"
    src = tmp_path / f"d.{fmt}"
    _write(fmt, src, recs)
    ld = load(str(src))
    res = _scan(ld)
    info = write_splits(res, ld, tmp_path / "out", redact=True)
    clean = tmp_path / "out" / f"clean.{fmt}"
    quar = tmp_path / "out" / f"quarantine.{fmt}"
    text = clean.read_bytes().decode("utf-8") if fmt != "parquet" else json.dumps(pq.read_table(clean).to_pylist())
    assert "@example.com" not in text and "[EMAIL]" in text
    assert info["redaction"]["records_redacted"] == 8  # 9 clean records, one without PII
    # quarantine is left as found, for review
    qtext = quar.read_bytes().decode("utf-8", "replace") if fmt != "parquet" else json.dumps(pq.read_table(quar).to_pylist())
    assert "@example.com" in qtext
    cl = load(str(clean))
    assert len(cl.pairs) == 9 and cl.format == ld.format
    if fmt == "jsonl":  # the record with nothing to redact keeps its original bytes
        assert src.read_bytes().splitlines()[0] == clean.read_bytes().splitlines()[0]


def test_redact_missing_module_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "poisondetect.redact", None)
    src = tmp_path / "d.jsonl"
    _write("jsonl", src, _records())
    ld = load(str(src))
    with pytest.raises(ConfigError, match="redact"):
        write_splits(_scan(ld), ld, tmp_path / "out", redact=True)
    assert not (tmp_path / "out").exists()  # failed before writing anything


def test_split_conservation_hf_and_in_memory(tmp_path):
    datasets = pytest.importorskip("datasets")
    recs = _records()
    canon = Counter(hashlib.sha256(json.dumps(o, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
                    for o in recs)
    hf_dir = tmp_path / "hf"
    datasets.Dataset.from_list(recs).save_to_disk(str(hf_dir))
    for name, source in (("hf", str(hf_dir)), ("records", recs)):
        ld = load(source)
        res = _scan(ld)
        info = write_splits(res, ld, tmp_path / name)
        clean, quar = info["clean"]["path"], info["quarantine"]["path"]
        if ld.format == "hf":
            assert clean.endswith(".parquet")
            rows = pq.read_table(clean).to_pylist() + pq.read_table(quar).to_pylist()
        else:
            assert clean.endswith(".jsonl")
            rows = [json.loads(x) for p in (clean, quar) for x in Path(p).read_text(encoding="utf-8").splitlines()
                    if x.strip()]
        got = Counter(hashlib.sha256(json.dumps(o, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
                      for o in rows)
        assert got == canon, name
        assert info["quarantine"]["records"] == 3


def test_split_releases_reviewed_false_positives(tmp_path):
    from poisondetect.report.triage import (
        apply_baseline,
        empty_baseline,
        mark,
        result_items,
    )

    src = tmp_path / "d.jsonl"
    _write("jsonl", src, _records())
    ld = load(str(src))
    res = _scan(ld)
    pairs = result_items(res)["pairs"]
    b = empty_baseline()
    (d, fp), = pairs[0]["fingerprints"].items()
    b = mark(b, fp, "false_positive", kind="pair", detector=d)
    (d, fp), = pairs[1]["fingerprints"].items()
    b = mark(b, fp, "accepted", kind="pair", detector=d)
    info = write_splits(res, ld, tmp_path / "o", baseline=apply_baseline(res, b))
    released = int(res.pairs.row[pairs[0]["position"]])
    assert info["quarantine"]["records"] == 2
    assert released not in {q["record"] for q in info["quarantined"]}
    assert int(res.pairs.row[pairs[1]["position"]]) in {q["record"] for q in info["quarantined"]}
