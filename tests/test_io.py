"""IO layer: formats, layouts, overrides, bad input, write_subset round trips."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from poisondetect.errors import InputError
from poisondetect.io import LoadedDataset, iter_records, load, write_split, write_subset

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "formats"


def sample(name: str) -> str:
    return str(SAMPLES / name)


def write(tmp_path: Path, name: str, data: bytes | str) -> str:
    p = tmp_path / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return str(p)


def jsonl(rows: list) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# ---------------------------------------------------------------------------------------
# every layout, from the sample files
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, fmt, layout, n_records, n_pairs", [
    ("alpaca.json", "json", "alpaca", 5, 5),
    ("dolly.jsonl", "jsonl", "dolly", 5, 5),
    ("gpteacher.json", "json", "gpteacher", 4, 4),
    ("prompt_completion.csv", "csv", "prompt_completion", 4, 4),
    ("sharegpt.json", "json", "sharegpt", 3, 5),
    ("openai_messages.jsonl", "jsonl", "openai", 3, 5),
    ("chatml_text.jsonl", "jsonl", "chatml", 3, 4),
    ("llama2_text.jsonl", "jsonl", "llama2", 3, 4),
])
def test_sample_layouts(name, fmt, layout, n_records, n_pairs):
    ld = load(sample(name))
    assert isinstance(ld, LoadedDataset)
    info = ld.info()
    assert (info["format"], info["layout"], info["n_records"], info["n_pairs"]) == (fmt, layout, n_records, n_pairs)
    assert info["bad_records"] == {"count": 0, "examples": []}
    assert info["sha256"] == hashlib.sha256(Path(sample(name)).read_bytes()).hexdigest()
    json.dumps(info)  # JSON-serialisable
    assert len(ld.pairs) == n_pairs
    assert all(isinstance(s, str) and s for s in ld.pairs.response)
    assert ld.pairs.row.min() == 0 and ld.pairs.row.max() == n_records - 1
    assert ld.pairs.source is None


def test_alpaca_input_joined_and_gpteacher_extra_field_ignored():
    p = load(sample("alpaca.json")).pairs
    assert p.instruction[1] == "Translate the sentence into French.\n\nThe library opens at nine."
    assert p.response[1] == "La bibliothèque ouvre à neuf heures."
    assert p.instruction[0] == "Name three primary colours."  # empty input adds nothing
    g = load(sample("gpteacher.json")).pairs
    assert "2 pens" not in g.instruction[2] and g.instruction[2].endswith("3 books at 12 dollars each")


def test_dolly_context_and_line_numbers_with_blank_line(tmp_path):
    ld = load(sample("dolly.jsonl"))
    assert ld.fields["input"] == "context"
    assert "Mara Vell" in ld.pairs.instruction[1]
    recs = list(iter_records(sample("dolly.jsonl")))
    assert [r.line for r in recs] == [1, 2, 3, 5, 6]  # line 4 is blank: not a record
    assert [r.index for r in recs] == [0, 1, 2, 3, 4]


def test_csv_quoted_multiline_fields():
    p = load(sample("prompt_completion.csv")).pairs
    assert p.instruction[1] == "Add the numbers 2, 3 and 4."
    assert p.instruction[2] == "Continue the list:\napples\npears"
    assert p.response[2] == "plums\ncherries"
    lines = [r.line for r in iter_records(sample("prompt_completion.csv"))]
    assert lines == [2, 3, 4, 8]


def test_multi_turn_expansion_sharegpt():
    ld = load(sample("sharegpt.json"))
    p = ld.pairs
    assert p.row.tolist() == [0, 1, 1, 2, 2]
    assert p.turn.tolist() == [0, 0, 1, 0, 1]
    assert p.instruction[0] == "How many legs does a spider have?"
    # system prompt + earlier turns with role labels + current user turn
    assert p.instruction[2].startswith("System: You are a patient maths tutor.")
    assert "Assistant: 7 times 8 is 56." in p.instruction[2]
    assert p.instruction[2].endswith("User: And 56 divided by 4?")
    assert p.response[2] == "56 divided by 4 is 14."
    # function_call is model output -> its own pair; tools definition and observation are context
    assert p.response[3] == '{"name": "get_weather", "arguments": {"city": "Lisbon"}}'
    assert p.instruction[3].startswith("Tools: [{")
    assert "Tool result: {\"temp_c\": 21" in p.instruction[4]
    assert ld.fields == {"conversation": "conversations", "tools": "tools"}


def test_openai_messages_tool_calls_and_system():
    p = load(sample("openai_messages.jsonl")).pairs
    assert p.instruction[0] == "System: You answer in one short sentence.\n\nUser: Why is the sky blue?"
    assert json.loads(p.response[3])[0]["function"]["name"] == "convert"
    assert "Function call: [" in p.instruction[4] and "Tool result: 92.10" in p.instruction[4]
    assert p.turn.tolist() == [0, 0, 1, 0, 1]


def test_chat_template_texts():
    c = load(sample("chatml_text.jsonl")).pairs
    assert c.instruction[0] == "System: You are a helpful assistant.\n\nUser: What is the boiling point of water at sea level?"
    assert c.response[0] == "100 degrees Celsius."
    assert c.response[2] == "It has nine letters." and "Assistant: yrassecen" in c.instruction[2]
    l2 = load(sample("llama2_text.jsonl")).pairs
    assert l2.instruction[0] == "System: You are a concise assistant.\n\nUser: What does a barometer measure?"
    assert l2.response[0] == "Air pressure."
    assert l2.response[1:3] == ["Spoon.", "June."]
    assert "<s>" not in "".join(l2.instruction + l2.response)


def test_other_text_templates():
    rows = [
        {"text": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"},
        {"text": "<start_of_turn>user\nPick a number<end_of_turn>\n<start_of_turn>model\nSeven<end_of_turn>"},
        {"text": "Below is an instruction.\n\n### Instruction:\nAdd 2 and 2.\n\n### Input:\nuse digits\n\n"
                 "### Response:\n4"},
    ]
    ld = load(rows)
    assert ld.layout == "text" and ld.info()["templates"] == {"alpaca_text": 1, "gemma": 1, "llama3": 1}
    assert ld.pairs.response == ["Hello!", "Seven", "4"]
    assert ld.pairs.instruction[0] == "Hi there"
    assert ld.pairs.instruction[2] == "System: Below is an instruction.\n\nUser: Add 2 and 2.\n\nuse digits"


def test_other_field_layouts():
    ld = load([{"question": "2+2?", "answer": "4"}])
    assert ld.layout == "question_answer" and ld.pairs.response == ["4"]
    ld = load([{"Instruction": "Say hi", "Output": "hi"}])  # case-insensitive field names
    assert ld.layout == "alpaca" and ld.pairs.instruction == ["Say hi"]
    ld = load([{"instruction": "q", "output": "a", "system": "Be brief.",
                "history": [["first", "one"]]}])
    assert ld.pairs.instruction == ["Be brief.\n\nUser: first\n\nAssistant: one\n\nq"]


# ---------------------------------------------------------------------------------------
# compression, Parquet, HF datasets, in-memory objects
# ---------------------------------------------------------------------------------------

def test_gzip_jsonl_and_json(tmp_path):
    raw = Path(sample("dolly.jsonl")).read_bytes()
    p = write(tmp_path, "d.jsonl.gz", gzip.compress(raw))
    ld = load(p)
    assert (ld.format, ld.compression, ld.n_records) == ("jsonl", "gzip", 5)
    assert ld.pairs.instruction == load(sample("dolly.jsonl")).pairs.instruction
    p2 = write(tmp_path, "s.json.gz", gzip.compress(Path(sample("sharegpt.json")).read_bytes()))
    assert load(p2).n_pairs == 5
    p3 = write(tmp_path, "noext", gzip.compress(raw))  # sniffed from contents
    assert load(p3).format == "jsonl"


def test_parquet_from_sample(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = json.loads(Path(sample("sharegpt.json")).read_text())
    out = tmp_path / "s.parquet"
    pq.write_table(pa.Table.from_struct_array(pa.array(rows)), out)
    ld = load(str(out))
    assert (ld.format, ld.layout, ld.n_records, ld.n_pairs) == ("parquet", "sharegpt", 3, 5)
    assert ld.pairs.instruction == load(sample("sharegpt.json")).pairs.instruction
    a = json.loads(Path(sample("alpaca.json")).read_text())
    pq.write_table(pa.Table.from_struct_array(pa.array(a)), tmp_path / "a.parquet")
    assert load(str(tmp_path / "a.parquet")).pairs.response == [r["output"] for r in a]


def test_hf_dataset_object_dict_and_save_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = json.loads(Path(sample("alpaca.json")).read_text())
    ds = datasets.Dataset.from_list(rows)
    ld = load(ds)
    assert (ld.format, ld.layout, ld.n_records) == ("hf", "alpaca", 5)
    dd = datasets.DatasetDict({"train": ds, "test": ds.select([0, 1])})
    assert load(dd).n_records == 5
    assert load(dd, split="test").n_records == 2
    with pytest.raises(InputError, match="split 'dev' not found"):
        load(dd, split="dev")
    ds.save_to_disk(str(tmp_path / "saved"))
    ld2 = load(str(tmp_path / "saved"))
    assert ld2.pairs.instruction == ld.pairs.instruction and ld2.sha256
    dd.save_to_disk(str(tmp_path / "saved_dd"))
    assert load(str(tmp_path / "saved_dd"), split="test").n_records == 2


def test_list_of_dicts_and_dataframe():
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}]
    ld = load(rows)
    assert ld.format == "records" and ld.pairs.response == ["b", "d"] and ld.sha256
    pd = pytest.importorskip("pandas")
    assert load(pd.DataFrame(rows)).pairs.instruction == ["a", "c"]


def test_hub_name_offline_is_clean_input_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="not a local file or folder"):
        load("no-such-user/no-such-dataset-xyz")


# ---------------------------------------------------------------------------------------
# overrides and provenance
# ---------------------------------------------------------------------------------------

def test_field_overrides(tmp_path):
    rows = [{"q": "What is 2+2?", "ctx": "arithmetic", "sys": "Be exact.", "a": "4", "src": "math"},
            {"q": "Capital of Peru?", "ctx": "", "sys": None, "a": "Lima", "src": 7}]
    p = write(tmp_path, "custom.jsonl", jsonl(rows))
    with pytest.raises(InputError, match=r"unknown layout.*fields seen: q, ctx, sys, a, src"):
        load(p)
    ld = load(p, instruction_field="q", response_field="a", input_field="ctx", system_field="sys",
              source_field="src")
    assert ld.pairs.instruction == ["Be exact.\n\nWhat is 2+2?\n\narithmetic", "Capital of Peru?"]
    assert ld.pairs.response == ["4", "Lima"]
    assert ld.pairs.source == ["math", "7"]
    assert ld.info()["fields"] == {"instruction": "q", "input": "ctx", "response": "a", "system": "sys",
                                    "source": "src"}
    with pytest.raises(InputError, match="no field 'answer' for the response"):
        load(p, instruction_field="q", response_field="answer")
    with pytest.raises(InputError, match="no field 'origin' for the source"):
        load(p, instruction_field="q", response_field="a", source_field="origin")
    # override one field of an auto-detected layout
    alp = load(sample("alpaca.json"), response_field="input")
    assert alp.pairs.response[1] == "The library opens at nine."


def test_source_field_and_forced_layout():
    ld = load(sample("prompt_completion.csv"), source_field="source")
    assert ld.pairs.source == ["geo_template", "math_template", "list_template", "misc_template"]
    with pytest.raises(InputError, match="unknown layout 'nope'"):
        load(sample("alpaca.json"), layout="nope")
    ld = load(sample("chatml_text.jsonl"), layout="chatml")
    assert ld.n_pairs == 4
    with pytest.raises(InputError, match="no known chat template"):
        load(sample("chatml_text.jsonl"), layout="llama2")


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------

def test_invalid_json_line_names_line_and_record(tmp_path):
    rows = [{"instruction": f"i{k}", "output": f"o{k}"} for k in range(20)]
    lines = jsonl(rows).splitlines(keepends=True)
    lines.insert(3, "\n")  # blank line: not a record, but counts for line numbers
    lines[16] = '{"instruction": "broken", "output": \n'
    p = write(tmp_path, "bad.jsonl", "".join(lines))
    with pytest.raises(InputError) as ei:
        load(p)
    e = ei.value
    assert (e.line, e.record, e.path) == (17, 15, p)
    assert str(e).startswith(f"{p}, line 17, record 15: invalid JSON")
    assert "\n" not in str(e)
    ld = load(p, skip_bad=True)
    assert ld.n_records == 20 and ld.n_pairs == 19
    assert ld.info()["bad_records"]["count"] == 1
    assert ld.info()["bad_records"]["examples"][0]["record"] == 15
    assert ld.info()["bad_records"]["examples"][0]["line"] == 17
    assert ld.bad_record_indices.tolist() == [15]
    assert 15 not in ld.pairs.row.tolist() and ld.pairs.row.tolist()[15] == 16  # rows keep file numbering


def test_missing_response_and_non_string_fields(tmp_path):
    rows = [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"},
            {"instruction": "e", "outptu": "typo"}, {"instruction": ["x"], "output": "f"},
            {"instruction": "g", "output": 5}, "just a string"]
    p = write(tmp_path, "r.json", json.dumps(rows, indent=1))
    with pytest.raises(InputError, match=r"record 2: the record has no 'output' field \(fields: instruction, outptu\)"):
        load(p)
    ld = load(p, skip_bad=True)
    probs = [e["problem"] for e in ld.info()["bad_records"]["examples"]]
    assert ld.bad_count == 4 and ld.n_pairs == 2
    assert "field 'instruction' is a list, not a string" in probs[1]
    assert "field 'output' is a number, not a string" in probs[2]
    assert "the record is a string, expected an object" in probs[3]
    assert [e["line"] for e in ld.info()["bad_records"]["examples"]] == [10, 14, 20, 24]


def test_bad_examples_capped_but_all_counted(tmp_path):
    good = [json.dumps({"prompt": "p", "completion": "c"})] * 10
    bad = ["{nope"] * 120
    p = write(tmp_path, "many.jsonl", "\n".join(good + bad) + "\n")
    info = load(p, skip_bad=True).info()
    assert info["bad_records"]["count"] == 120
    assert len(info["bad_records"]["examples"]) == 50


def test_conversation_without_assistant_turn(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
            {"conversations": [{"from": "human", "value": "only a question"}]},
            {"conversations": []}]
    ld = load(rows)
    assert ld.n_records == 3 and ld.n_pairs == 1
    info = ld.info()
    assert info["empty_records"]["count"] == 2
    assert info["empty_records"]["examples"][0]["problem"] == "the conversation has no assistant turn"
    with pytest.raises(InputError, match="no pairs"):
        load(rows[1:])
    with pytest.raises(InputError, match=r"record 0: turn 1 has unknown role 'wizard'"):
        load([{"conversations": [{"from": "human", "value": "x"}, {"from": "wizard", "value": "y"}]}])
    with pytest.raises(InputError, match="turn 0: the content is a number"):
        load([{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}]}])


@pytest.mark.parametrize("name, data, pattern", [
    ("empty.json", b"", "the file is empty"),
    ("empty.jsonl", b"\n\n  \n", "the file is empty"),
    ("ws.json", b"   \n", "the file is empty"),
    ("emptylist.json", b"[]", "no records found"),
    ("scalar.json", b"42", "top-level JSON value is a number"),
    ("trunc.json", b'[{"instruction": "a", "output": "b"},\n {"instruction": "c"', "invalid JSON"),
    ("nocols.csv", b"foo,bar\n1,2\n", r"unknown layout.*fields seen: foo, bar"),
    ("headeronly.csv", b"prompt,completion\n", "no records found"),
    ("dupcol.csv", b"prompt,prompt\n1,2\n", "names column 'prompt' twice"),
    ("latin1.jsonl", '{"prompt": "a", "completion": "b"}\n{"prompt": "caf\u00e9", "completion": "x"}\n'
     .encode("latin-1"), r"line 2.*invalid UTF-8"),
    ("latin1.csv", "prompt,completion\nok,fine\ncaf\u00e9,x\n".encode("latin-1"), r"line 3: invalid UTF-8"),
    ("utf16.json", '[{"prompt": "a", "completion": "b"}]'.encode("utf-16"), "UTF-16"),
    ("strings.json", b'["a", "b"]', "no readable record with fields"),
    ("odd.txt", b"hello world", "cannot tell the file format"),
    ("badgz.jsonl.gz", b"\x1f\x8b\x08\x00garbage", "cannot read the file"),
])
def test_bad_files_are_input_errors(tmp_path, name, data, pattern):
    p = write(tmp_path, name, data)
    with pytest.raises(InputError, match=pattern):
        load(p)


def test_paths_and_directories(tmp_path):
    with pytest.raises(InputError, match="no such file or directory"):
        load(str(tmp_path / "missing.jsonl"))
    d = tmp_path / "folder"
    d.mkdir()
    (d / "notes.md").write_text("x")
    with pytest.raises(InputError, match="is a directory but not a datasets.save_to_disk folder"):
        load(str(d))
    p = write(tmp_path, "locked.jsonl", jsonl([{"prompt": "a", "completion": "b"}]))
    os.chmod(p, 0)
    try:
        if os.access(p, os.R_OK):  # running as root: permissions do not apply
            pytest.skip("root can read everything")
        with pytest.raises(InputError, match="permission denied"):
            load(p)
    finally:
        os.chmod(p, 0o644)


def test_bom_and_crlf_accepted(tmp_path):
    body = '{"prompt": "a", "completion": "b"}\r\n{"prompt": "c", "completion": "d"}\r\n'
    p = write(tmp_path, "bom.jsonl", b"\xef\xbb\xbf" + body.encode())
    assert load(p).pairs.response == ["b", "d"]
    p = write(tmp_path, "bom.csv", b"\xef\xbb\xbfprompt,completion\r\na,b\r\n")
    assert load(p).pairs.instruction == ["a"]
    p = write(tmp_path, "bom.json", b"\xef\xbb\xbf" + json.dumps([{"prompt": "a", "completion": "b"}]).encode())
    assert load(p).n_records == 1


def test_json_shapes_and_misnamed_jsonl(tmp_path):
    cols = {"instruction": ["a", "b"], "output": ["1", "2"]}
    ld = load(write(tmp_path, "cols.json", json.dumps(cols)))
    assert ld.pairs.response == ["1", "2"]
    wrapped = {"version": 1, "data": [{"prompt": "p", "completion": "c"}]}
    assert load(write(tmp_path, "wrapped.json", json.dumps(wrapped))).n_records == 1
    # JSON Lines saved as .json, and a JSON list saved as .jsonl
    lines = jsonl([{"prompt": "p", "completion": "c"}] * 3)
    assert load(write(tmp_path, "lines.json", lines)).format == "jsonl"
    lst = json.dumps([{"prompt": "p", "completion": "c"}] * 3, indent=2)
    assert load(write(tmp_path, "list.jsonl", lst)).n_records == 3
    with pytest.raises(InputError, match="lists of different lengths"):
        load(write(tmp_path, "uneven.json", json.dumps({"instruction": ["a"], "output": []})))


def test_hostile_field_names_are_escaped_in_messages(tmp_path):
    p = write(tmp_path, "h.jsonl", jsonl([{"\x1b[31mred\u202e": "x"}]))
    with pytest.raises(InputError) as ei:
        load(p)
    msg = str(ei.value)
    assert "\x1b" not in msg and "\u202e" not in msg and "\\x1b[31mred\\u202e" in msg


# ---------------------------------------------------------------------------------------
# write_subset round trips
# ---------------------------------------------------------------------------------------

def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.mark.parametrize("name", ["dolly.jsonl", "openai_messages.jsonl", "prompt_completion.csv"])
def test_write_subset_line_formats_byte_identical(tmp_path, name):
    src = Path(sample(name)).read_bytes()
    ld = load(sample(name))
    n = ld.n_records
    q = [1, n - 1]
    counts = write_split(ld, q, tmp_path / f"clean_{name}", tmp_path / f"q_{name}")
    assert counts == {"clean": n - 2, "quarantine": 2}
    # all records, in order: the input bytes (blank lines are not records)
    write_subset(ld, range(n), tmp_path / f"all_{name}")
    expected = b"".join(ln for ln in src.splitlines(keepends=True) if ln.strip()) if name.endswith(".jsonl") else src
    assert (tmp_path / f"all_{name}").read_bytes() == expected
    # clean + quarantine hold every record exactly once, byte for byte
    clean = load(str(tmp_path / f"clean_{name}"))
    quar = load(str(tmp_path / f"q_{name}"))
    assert clean.n_records + quar.n_records == n
    recs_in = [r.span for r in iter_records(sample(name))]
    pieces_in = sorted(_sha(src[s:e].rstrip(b"\r\n")) for s, e in recs_in)
    pieces_out = []
    for f in (tmp_path / f"clean_{name}", tmp_path / f"q_{name}"):
        b = f.read_bytes()
        pieces_out += [_sha(b[s:e].rstrip(b"\r\n")) for s, e in (r.span for r in iter_records(str(f)))]
    assert sorted(pieces_out) == pieces_in
    assert sorted(clean.pairs.response + quar.pairs.response) == sorted(ld.pairs.response)


def test_write_subset_json_list_keeps_original_record_text(tmp_path):
    ld = load(sample("sharegpt.json"))
    write_subset(ld, [0, 2], tmp_path / "c.json")
    write_subset(ld, [1], tmp_path / "q.json")
    text = Path(sample("sharegpt.json")).read_text()
    c, q = (tmp_path / "c.json").read_text(), (tmp_path / "q.json").read_text()
    src_recs = [text[s:e] for s, e in ld._spans]
    for k in (0, 2):
        assert src_recs[k] in c and src_recs[k] not in q
    assert src_recs[1] in q
    both = json.loads(c) + json.loads(q)
    assert sorted(map(json.dumps, both)) == sorted(map(json.dumps, json.loads(text)))
    assert load(str(tmp_path / "c.json")).n_pairs == 3


def test_write_subset_gz_parquet_hf_records(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    raw = Path(sample("dolly.jsonl")).read_bytes()
    gz = write(tmp_path, "d.jsonl.gz", gzip.compress(raw))
    ld = load(gz)
    write_subset(ld, [0, 3], tmp_path / "out.jsonl.gz")
    lines = [ln for ln in raw.splitlines(keepends=True) if ln.strip()]
    assert gzip.decompress((tmp_path / "out.jsonl.gz").read_bytes()) == lines[0] + lines[3]
    # parquet
    rows = json.loads(Path(sample("alpaca.json")).read_text())
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    lp = load(str(tmp_path / "a.parquet"))
    write_split(lp, [2], tmp_path / "ac.parquet", tmp_path / "aq.parquet")
    assert pq.read_table(tmp_path / "ac.parquet").to_pylist() == [rows[i] for i in (0, 1, 3, 4)]
    assert pq.read_table(tmp_path / "aq.parquet").to_pylist() == [rows[2]]
    # HF dataset object (including a selected/shuffled view) and list of dicts
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(rows).select([4, 3, 2, 1, 0])
    lh = load(ds)
    write_subset(lh, [0, 1], tmp_path / "h.jsonl")
    got = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert got == [rows[4], rows[3]]
    write_subset(lh, [0], tmp_path / "h.parquet")
    assert pq.read_table(tmp_path / "h.parquet").to_pylist() == [rows[4]]
    lr = load(rows)
    write_subset(lr, [1], tmp_path / "r.jsonl")
    assert json.loads((tmp_path / "r.jsonl").read_text()) == rows[1]


def test_write_split_sends_bad_records_to_quarantine(tmp_path):
    body = jsonl([{"prompt": "a", "completion": "b"}]) + "not json\n" + jsonl([{"prompt": "c", "completion": "d"}])
    p = write(tmp_path, "x.jsonl", body)
    ld = load(p, skip_bad=True)
    write_split(ld, [], tmp_path / "c.jsonl", tmp_path / "q.jsonl")
    assert (tmp_path / "q.jsonl").read_text() == "not json\n"
    assert (tmp_path / "c.jsonl").read_text() + "not json\n" != body  # order differs, content same
    assert sorted((tmp_path / "c.jsonl").read_text().splitlines() + ["not json"]) == sorted(body.splitlines())
    with pytest.raises(ValueError):
        write_subset(ld, [3], tmp_path / "z.jsonl")


def test_write_subset_refuses_changed_input(tmp_path):
    p = write(tmp_path, "x.jsonl", jsonl([{"prompt": "a", "completion": "b"}]))
    ld = load(p)
    Path(p).write_text(jsonl([{"prompt": "A", "completion": "B"}]))
    with pytest.raises(InputError, match="changed since it was loaded"):
        write_subset(ld, [0], tmp_path / "o.jsonl")


def test_copying_samples_keeps_hash(tmp_path):
    dst = tmp_path / "copy.jsonl"
    shutil.copy(sample("dolly.jsonl"), dst)
    assert load(str(dst)).sha256 == load(sample("dolly.jsonl")).sha256


def test_iter_records_streams():
    it = iter_records(sample("openai_messages.jsonl"))
    first = next(it)
    assert first.index == 0 and first.line == 1 and "messages" in first.value
    assert len(list(it)) == 2
    assert np.all(load(sample("openai_messages.jsonl")).pairs.row == np.array([0, 1, 1, 2, 2]))


def test_pair_stream_chunks_match_load(tmp_path):
    from poisondetect.io import PairStream
    from poisondetect.types import Pairs
    rows = [{"conversations": [{"from": "human", "value": f"q{k}"}, {"from": "gpt", "value": f"a{k}"},
                               {"from": "human", "value": f"q{k}b"}, {"from": "gpt", "value": f"a{k}b"}],
             "src": f"s{k % 3}"} for k in range(23)]
    body = jsonl(rows[:10]) + "oops\n" + jsonl(rows[10:])
    p = write(tmp_path, "c.jsonl", body)
    stream = PairStream(p, chunk_records=5, skip_bad=True, source_field="src")
    chunks = list(stream)
    assert len(chunks) == 5 and all(len(c) == 10 for c in chunks[:4]) and len(chunks[4]) == 6
    whole = load(p, skip_bad=True, source_field="src")
    cat = Pairs.concat(chunks)
    assert cat.instruction == whole.pairs.instruction and cat.row.tolist() == whole.pairs.row.tolist()
    assert cat.source == whole.pairs.source
    info = stream.info()
    assert info["n_records"] == 24 and info["bad_records"]["count"] == 1
    assert info["bad_records"]["examples"][0] == {"record": 10, "line": 11, "problem": info["bad_records"]["examples"][0]["problem"]}
    write_subset(stream.loaded, [10], tmp_path / "bad.jsonl")
    assert (tmp_path / "bad.jsonl").read_text() == "oops\n"


def test_turn_without_content_is_malformed():
    with pytest.raises(InputError, match="record 0: turn 1 has no content"):
        load([{"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": None}]}])
    # OpenAI: an assistant turn may have null content when it carries tool_calls
    ld = load([{"messages": [{"role": "user", "content": "x"},
                             {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]}])
    assert ld.pairs.response == ['[{"id": "1"}]']


def test_jsonl_without_final_newline_round_trips(tmp_path):
    body = jsonl([{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}]).rstrip("\n")
    p = write(tmp_path, "nonl.jsonl", body)
    ld = load(p)
    write_split(ld, [1], tmp_path / "c.jsonl", tmp_path / "q.jsonl")
    assert (tmp_path / "c.jsonl").read_text() + (tmp_path / "q.jsonl").read_text() == body + "\n"


def test_tsv_bz2_xz_and_fmt_override(tmp_path):
    import bz2
    import lzma
    p = write(tmp_path, "x.tsv", "instruction\toutput\nSay hi\thi, there\n")
    ld = load(p)
    assert (ld.format, ld.pairs.response) == ("tsv", ["hi, there"])
    body = Path(sample("dolly.jsonl")).read_bytes()
    assert load(write(tmp_path, "d.jsonl.bz2", bz2.compress(body))).compression == "bz2"
    assert load(write(tmp_path, "d.jsonl.xz", lzma.compress(body))).n_records == 5
    assert load(write(tmp_path, "d.txt", body)).format == "jsonl"  # sniffed from the contents
    txt = write(tmp_path, "c.txt", "prompt,completion\na,b\n")
    with pytest.raises(InputError, match="cannot tell the file format"):
        load(txt)
    assert load(txt, fmt="csv").pairs.response == ["b"]
    with pytest.raises(InputError, match="unknown format 'xml'"):
        load(txt, fmt="xml")


def test_write_subset_json_columns_and_wrapped(tmp_path):
    cols = {"instruction": ["a", "b", "c"], "output": ["1", "2", "3"]}
    ld = load(write(tmp_path, "cols.json", json.dumps(cols)))
    write_split(ld, [1], tmp_path / "c.json", tmp_path / "q.json")
    assert json.loads((tmp_path / "c.json").read_text()) == {"instruction": ["a", "c"], "output": ["1", "3"]}
    assert json.loads((tmp_path / "q.json").read_text()) == {"instruction": ["b"], "output": ["2"]}
    wrapped = {"meta": {"v": 1}, "data": [{"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}]}
    lw = load(write(tmp_path, "w.json", json.dumps(wrapped)))
    write_subset(lw, [1], tmp_path / "w1.json")
    assert json.loads((tmp_path / "w1.json").read_text()) == {"data": [wrapped["data"][1]]}
    assert load(str(tmp_path / "w1.json")).pairs.response == ["c2"]
