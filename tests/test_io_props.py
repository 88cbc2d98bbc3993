"""Property tests: whatever bytes or JSON values a file holds, load() either succeeds or
raises InputError (never another exception), and a successful load is self-consistent."""
from __future__ import annotations

import gzip
import json
import os
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poisondetect.errors import InputError
from poisondetect.io import load, write_split

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = ["instruction", "input", "output", "response", "context", "prompt", "completion", "text",
        "conversations", "messages", "from", "value", "role", "content", "system", "tools", "source",
        "question", "answer", "history", "tool_calls"]
ROLES = ["human", "gpt", "user", "assistant", "system", "tool", "function_call", "observation", "x"]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.text(max_size=20), st.sampled_from(ROLES))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner, max_size=5)),
    max_leaves=25)
records = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6)
turn = st.fixed_dictionaries({}, optional={"from": st.sampled_from(ROLES), "role": st.sampled_from(ROLES),
                                           "value": json_scalars, "content": json_scalars})
conv_records = st.fixed_dictionaries({"conversations": st.lists(turn, max_size=5)},
                                     optional={"system": json_scalars, "tools": json_values})
msg_records = st.fixed_dictionaries({"messages": st.lists(turn, max_size=5)})


def _check(ld) -> None:
    info = ld.info()
    json.dumps(info)
    n = len(ld.pairs)
    assert info["n_pairs"] == n
    assert len(ld.pairs.response) == n and len(ld.pairs.row) == n
    if n:
        assert ld.pairs.row.min() >= 0 and ld.pairs.row.max() < ld.n_records
        assert np.all(np.diff(ld.pairs.row) >= 0)
    for s in ld.pairs.instruction + ld.pairs.response:
        s.encode("utf-8")  # no lone surrogates reach the rest of the tool
    assert set(ld.bad_record_indices.tolist()).isdisjoint(ld.pairs.row.tolist())


def _load_file(data: bytes, name: str, **kw) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(data)
        for skip in (False, True):
            try:
                ld = load(p, skip_bad=skip, **kw)
            except InputError as e:
                assert "\n" not in str(e)
                continue
            _check(ld)
            if skip:  # splitting what loaded must also work
                q = ld.pairs.row[: len(ld.pairs) // 2]
                c = write_split(ld, q, os.path.join(d, "c" + name), os.path.join(d, "q" + name))
                assert c["clean"] + c["quarantine"] == ld.n_records


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from(["x.json", "x.jsonl", "x.csv", "x.tsv", "x.jsonl.gz"]))
def test_arbitrary_bytes(data, name):
    if name.endswith(".gz") and data[:1] != b"\x1f":
        data = gzip.compress(data)
    _load_file(data, name)


@SETTINGS
@given(st.lists(st.text(alphabet=st.sampled_from(list('{}[]",:\\ \n\r\tabc01ué\x00\ud7ff')), max_size=40),
                max_size=8), st.sampled_from(["x.json", "x.jsonl", "x.csv"]))
def test_json_like_text(lines, name):
    _load_file("\n".join(lines).encode("utf-8", "surrogatepass"), name)


@SETTINGS
@given(json_values)
def test_arbitrary_json_value_as_file(value):
    _load_file(json.dumps(value).encode(), "x.json")
    _load_file(json.dumps(value).encode(), "x.jsonl")


@SETTINGS
@given(st.lists(st.one_of(records, conv_records, msg_records, json_values), min_size=1, max_size=6))
def test_arbitrary_records(rows):
    _load_file(json.dumps(rows).encode(), "x.json")
    _load_file("\n".join(json.dumps(r) for r in rows).encode(), "x.jsonl")
    try:
        ld = load(rows, skip_bad=True)
    except InputError:
        return
    _check(ld)


@SETTINGS
@given(st.lists(st.lists(st.text(max_size=10), min_size=0, max_size=4), max_size=6),
       st.sampled_from([["prompt", "completion"], ["instruction", "output", "input"], ["a", "b"]]))
def test_csv_rows(rows, header):
    import csv
    import io
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        w.writerow(r)
    _load_file(buf.getvalue().encode("utf-8", "surrogatepass"), "x.csv", source_field=None)


texts = st.one_of(st.text(max_size=15), st.sampled_from(["", " ", "\ud800lone", "ok\u202e", "<|im_end|>"]))
alpaca_like = st.fixed_dictionaries(
    {"instruction": st.one_of(texts, texts, texts, json_scalars), "output": st.one_of(texts, texts, texts, json_scalars)},
    optional={"input": st.one_of(texts, json_scalars), "system": texts, "source": json_scalars})
conv_like = st.fixed_dictionaries(
    {"conversations": st.lists(st.fixed_dictionaries({"from": st.sampled_from(ROLES), "value": st.one_of(texts, texts, json_scalars)}),
                               max_size=5)},
    optional={"system": texts, "tools": st.one_of(texts, json_values)})
chat_text = st.fixed_dictionaries({"text": st.builds(
    lambda parts: "".join(parts),
    st.lists(st.sampled_from(["<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>", "[INST]", "[/INST]",
                              "<<SYS>>", "<</SYS>>", "### Response:", "### Instruction:", "hi ", "\n"]), max_size=8))})


@SETTINGS
@given(st.one_of(st.lists(alpaca_like, min_size=1, max_size=8), st.lists(conv_like, min_size=1, max_size=6),
                 st.lists(chat_text, min_size=1, max_size=6)))
def test_mostly_valid_records(rows):
    """Near-valid data: loads either succeed (and are consistent, and round-trip through
    write_split) or fail with InputError; no record is silently dropped."""
    _load_file("\n".join(json.dumps(r) for r in rows).encode(), "x.jsonl", source_field=None)
    try:
        ld = load(rows, skip_bad=True)
    except InputError:
        return
    _check(ld)
    used = set(ld.pairs.row.tolist()) | set(ld.bad_record_indices.tolist())
    assert len(used) + ld.empty_count == len(rows)
