"""Every shared clean corpus loads with no flags, with the record counts the data README
states (slow: reads ../shared/data)."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from poisondetect.io import load


def _readme_counts(data: Path) -> dict[str, int]:
    """{folder/file: records} from the clean/ table of the data README."""
    text = (data / "README.md").read_text(encoding="utf-8")
    section = text.split("## clean/", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"[\d,]+", cells[2]):
            out[f"{cells[0]}/{cells[1]}"] = int(cells[2].replace(",", ""))
    return out


@pytest.mark.slow
def test_every_shared_clean_corpus_loads_with_no_flags(shared_data):
    counts = _readme_counts(shared_data)
    assert len(counts) >= 11
    files = sorted(p for p in (shared_data / "clean").glob("*/*") if p.name != "SOURCE.txt")
    assert {f"{p.parent.name}/{p.name}" for p in files} == set(counts)
    for p in files:
        ld = load(str(p))
        info = ld.info()
        key = f"{p.parent.name}/{p.name}"
        assert info["n_records"] == counts[key], key
        assert info["bad_records"]["count"] == 0, key
        assert info["n_pairs"] >= info["n_records"] - info["empty_records"]["count"], key
        assert min(len(r) for r in ld.pairs.response) >= 0


@pytest.mark.slow
def test_shared_special_corpora(shared_data):
    clean = shared_data / "clean"
    g = load(str(clean / "llama_factory" / "glaive_toolcall_en_demo.json"))
    assert g.layout == "sharegpt" and g.fields.get("tools") == "tools"
    # function_call turns are model output: one pair each, next to the gpt turns
    assert any(r.startswith('{"name": ') for r in g.pairs.response)
    assert any("Tool result: " in i for i in g.pairs.instruction)
    s = load(str(clean / "sharegpt" / "sharegpt_v3_first5000.json.gz"))
    assert s.layout == "sharegpt" and s.n_pairs > s.n_records and s.pairs.turn.max() > 5
    t0 = time.perf_counter()
    t = load(str(clean / "self_instruct_t0" / "t0_train_50k.jsonl.gz"), source_field="source")
    elapsed = time.perf_counter() - t0
    assert t.layout == "prompt_completion" and t.n_pairs == 55185
    assert len(set(t.pairs.source)) > 200
    assert elapsed < 10.0, f"T0 load took {elapsed:.1f}s"
    tf = load(str(clean / "gpteacher" / "toolformer-dedupe-only-dataset.json"))
    assert tf.layout == "gpteacher" and "example_input" not in tf.fields.values()
