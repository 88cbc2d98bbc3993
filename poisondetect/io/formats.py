"""Bytes -> records.

Each reader turns one input (a file, a ``datasets`` object, a list of dicts) into a
stream of :class:`RawRecord` objects: the 0-based record index, the 1-based line where
the record starts (files only), the parsed value, a problem string when the record
could not be parsed, and where possible the record's location in the decoded input
(byte span for JSONL/CSV, character span for a JSON list) so that
:func:`poisondetect.io.write_subset` can write the original bytes back.

Problems that make the rest of the file unreadable (invalid JSON inside a JSON list,
invalid UTF-8 in a JSON or CSV file, a broken gzip stream) raise
:class:`~poisondetect.errors.InputError` straight away; problems confined to one record
(one bad JSONL line, a CSV row with the wrong number of fields) are reported on that
record and the caller decides whether to raise or skip.  Opening, sniffing and decoding
the files is :mod:`poisondetect.io.files`.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import InputError
from ..hashing import dir_sha256
from .files import (
    BOM,
    DECOMPRESS_ERRORS,
    JSON_ERRORS,
    block_lines,
    check_utf16,
    decode_utf8,
    iter_lines,
    open_binary,
    read_all,
)

_WS = re.compile(r"[ \t\n\r]*")

# The largest field the csv module accepts (default 128 KiB is too small for real responses).
csv.field_size_limit(2**31 - 1)

FORMATS = ("json", "jsonl", "csv", "tsv", "parquet", "hf")


class RawRecord:
    """One record as read from the input."""

    __slots__ = ("index", "line", "value", "problem", "span")

    def __init__(self, index: int, line: int | None, value: Any, problem: str | None = None,
                 span: tuple[int, int] | None = None) -> None:
        self.index = index
        self.line = line
        self.value = value
        self.problem = problem
        self.span = span

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"RawRecord({self.index}, line={self.line}, problem={self.problem!r})"


@dataclass
class Source:
    """An opened input: what it is, and an iterator over its records.

    ``container`` holds what the writers need to write a subset back in the same shape
    (the JSON shape, the CSV header span, the in-memory object...).  ``columns`` is the
    column list when the format has one (CSV header, Parquet/HF schema).
    """

    path: str | None
    format: str
    records: Iterator[RawRecord]
    compression: str | None = None
    columns: list[str] | None = None
    container: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def safe(text: Any, limit: int = 60) -> str:
    """A short, terminal-safe rendering of hostile text for error messages."""
    s = str(text)
    out = []
    for ch in s[: limit + 1]:
        if ch.isprintable() and ch != "\\":
            out.append(ch)
        elif ch == "\\":
            out.append("\\\\")
        else:
            o = ord(ch)
            out.append(f"\\x{o:02x}" if o < 0x100 else (f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"))
    r = "".join(out)
    return r[:limit] + "..." if len(s) > limit else r


def type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


# ---------------------------------------------------------------------------------------
# JSON (list, object of lists, wrapped list, single object)
# ---------------------------------------------------------------------------------------

def _line_counter(text: str):
    """Returns f(offset) -> 1-based line for non-decreasing offsets, in O(total)."""
    state = [0, 1]  # last offset, line at last offset

    def at(off: int) -> int:
        state[1] += text.count("\n", state[0], off)
        state[0] = off
        return state[1]
    return at


def read_json(path: str, compression: str | None, split: str | None = None) -> Source:
    data = read_all(path, compression)
    if not data.strip():
        raise InputError("the file is empty", path=path)
    text = decode_utf8(data, path)
    m = _WS.match(text)
    start = m.end()
    if start >= len(text):
        raise InputError("the file is empty", path=path)
    first = text[start]
    if first == "[":
        return Source(path, "json", _iter_json_array(text, start, path), compression,
                      container={"shape": "list"})
    if first != "{":
        try:
            v = json.loads(text)
        except JSON_ERRORS as e:
            raise _json_error(e, path) from None
        raise InputError(f"the top-level JSON value is a {type_name(v)}; expected a list of records "
                         "or an object", path=path, line=1)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # several top-level objects: it is JSON Lines named .json
            return read_jsonl(path, compression, _data=data)
        raise _json_error(e, path) from None
    except JSON_ERRORS as e:
        raise _json_error(e, path) from None
    return _json_object_source(obj, path, compression, split)


def _json_error(e: Exception, path: str, record: int | None = None) -> InputError:
    if isinstance(e, json.JSONDecodeError):
        return InputError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=e.lineno, record=record)
    if isinstance(e, RecursionError):
        return InputError("invalid JSON: nested too deeply", path=path, record=record)
    return InputError(f"invalid JSON: {e}", path=path, record=record)


def _iter_json_array(text: str, start: int, path: str) -> Iterator[RawRecord]:
    dec = json.JSONDecoder()
    raw_decode = dec.raw_decode
    ws = _WS.match
    line_at = _line_counter(text)
    n = len(text)
    i = ws(text, start + 1).end()
    if i < n and text[i] == "]":
        j = ws(text, i + 1).end()
        if j < n:
            raise InputError("extra data after the JSON list", path=path, line=line_at(j))
        return
    idx = 0
    while True:
        if i >= n:
            raise InputError("invalid JSON: the list is not closed (truncated file?)", path=path,
                             line=line_at(n), record=idx)
        try:
            val, end = raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} (column {e.colno}); the rest of the list cannot "
                             "be read", path=path, line=e.lineno, record=idx) from None
        except JSON_ERRORS as e:
            raise _json_error(e, path, idx) from None
        yield RawRecord(idx, line_at(i), val, None, (i, end))
        idx += 1
        i = ws(text, end).end()
        if i < n and text[i] == ",":
            i = ws(text, i + 1).end()
            continue
        if i < n and text[i] == "]":
            j = ws(text, i + 1).end()
            if j < n:
                raise InputError("extra data after the JSON list", path=path, line=line_at(j))
            return
        raise InputError("invalid JSON: expected ',' or ']' after a list element" if i < n else
                         "invalid JSON: the list is not closed (truncated file?)",
                         path=path, line=line_at(min(i, n)), record=idx)


def _json_object_source(obj: dict, path: str, compression: str | None, split: str | None) -> Source:
    vals = list(obj.values())
    # object of lists (columnar): {"instruction": [...], "output": [...]}
    if vals and all(isinstance(v, list) for v in vals) and not any(
            v and all(isinstance(x, dict) for x in v) for v in vals):
        lens = {len(v) for v in vals}
        if len(lens) != 1:
            raise InputError("the JSON object holds lists of different lengths ("
                             + ", ".join(f"{safe(k, 30)}: {len(v)}" for k, v in list(obj.items())[:8])
                             + "); expected one list per column", path=path)
        n = lens.pop()
        keys = list(obj.keys())

        def it() -> Iterator[RawRecord]:
            for i in range(n):
                yield RawRecord(i, None, {k: obj[k][i] for k in keys})
        return Source(path, "json", it(), compression, columns=keys,
                      container={"shape": "columns", "keys": keys})
    # wrapped list: {"data": [{...}, ...]} or {"train": [...], "test": [...]}
    lists = [k for k, v in obj.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if lists:
        if split is not None:
            if split not in lists:
                raise InputError(f"split '{safe(split)}' not found; the JSON object has lists under: "
                                 + ", ".join(safe(k, 30) for k in lists), path=path)
            key = split
        elif len(lists) == 1:
            key = lists[0]
        elif "train" in lists:
            key = "train"
        else:
            raise InputError("the JSON object holds several lists of records ("
                             + ", ".join(safe(k, 30) for k in lists[:8]) + "); pick one with split=",
                             path=path)
        recs = obj[key]
        return Source(path, "json", (RawRecord(i, None, r) for i, r in enumerate(recs)), compression,
                      container={"shape": "wrapped", "key": key})
    # a single record
    return Source(path, "json", iter([RawRecord(0, 1, obj)]), compression, container={"shape": "single"})


# ---------------------------------------------------------------------------------------
# JSON Lines
# ---------------------------------------------------------------------------------------

def read_jsonl(path: str, compression: str | None, _data: bytes | None = None) -> Source:
    if _data is None:
        with open_binary(path, compression) as fh:
            try:
                head = fh.read(4096)
            except DECOMPRESS_ERRORS as e:
                raise InputError(f"cannot read the file (corrupt compressed data?): {e}", path=path) from None
        if not head.strip():
            raise InputError("the file is empty", path=path)
        check_utf16(head[:2], path)
        h = (head[3:] if head.startswith(BOM) else head).lstrip()
        if h.startswith(b"["):
            first = h.split(b"\n", 1)[0].strip()
            try:
                single = isinstance(json.loads(first), list)
            except JSON_ERRORS:
                single = False
            if not single:  # a JSON list in a .jsonl file
                return read_json(path, compression)
    elif not _data.strip():
        raise InputError("the file is empty", path=path)
    return Source(path, "jsonl", _iter_jsonl(path, compression, _data), compression)


def _iter_jsonl(path: str, compression: str | None, data: bytes | None) -> Iterator[RawRecord]:
    import io as _io
    loads = json.loads
    fh = _io.BytesIO(data) if data is not None else open_binary(path, compression)
    with fh:
        offset = 0
        lineno = 0
        idx = 0
        for raw in block_lines(fh, path):
            lineno += 1
            start = offset
            offset += len(raw)
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[3:]
                start += 3
            if not raw.strip():
                continue
            problem = None
            val = None
            try:
                s = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                problem = (f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                           "the input must be UTF-8")
            else:
                try:
                    val = loads(s)
                except json.JSONDecodeError as e:
                    problem = f"invalid JSON: {e.msg} (column {e.colno})"
                except RecursionError:
                    problem = "invalid JSON: nested too deeply"
                except ValueError as e:
                    problem = f"invalid JSON: {e}"
            yield RawRecord(idx, lineno, val, problem, (start, offset))
            idx += 1


# ---------------------------------------------------------------------------------------
# CSV / TSV
# ---------------------------------------------------------------------------------------

def read_csv(path: str, compression: str | None, delimiter: str = ",") -> Source:
    it = _iter_csv(path, compression, delimiter)
    header = next(it)  # the generator raises InputError for empty files / bad headers
    cols, hspan = header
    return Source(path, "csv" if delimiter == "," else "tsv", it, compression, columns=list(cols),
                  container={"header_span": hspan, "delimiter": delimiter})


def _iter_csv(path: str, compression: str | None, delimiter: str) -> Iterator[Any]:
    starts: list[int] = []
    ends: list[int] = []
    state = {"lineno": 0}

    def lines() -> Iterator[str]:
        offset = 0
        with open_binary(path, compression) as fh:
            for raw in iter_lines(fh, path):
                state["lineno"] += 1
                start = offset
                offset += len(raw)
                if state["lineno"] == 1:
                    check_utf16(raw[:2], path)
                    if raw.startswith(BOM):
                        raw = raw[3:]
                        start += 3
                try:
                    s = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise InputError(f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                     "the input must be UTF-8", path=path, line=state["lineno"]) from None
                starts.append(start)
                ends.append(offset)
                yield s

    reader = csv.reader(lines(), delimiter=delimiter)
    prev = 0

    def next_row() -> list[str] | None:
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error as e:
            raise InputError(f"invalid CSV: {e}", path=path, line=reader.line_num) from None

    header = next_row()
    while header is not None and not header:
        prev = reader.line_num
        header = next_row()
    if header is None:
        raise InputError("the file is empty", path=path)
    cols = [h.strip() for h in header]
    if any(not c for c in cols):
        raise InputError(f"the CSV header has an empty column name (header: "
                         f"{', '.join(safe(c, 30) for c in cols[:12])})", path=path, line=prev + 1)
    seen: set[str] = set()
    for c in cols:
        if c in seen:
            raise InputError(f"the CSV header names column '{safe(c)}' twice", path=path, line=prev + 1)
        seen.add(c)
    yield cols, (starts[prev], ends[reader.line_num - 1])
    prev = reader.line_num
    idx = 0
    ncol = len(cols)
    while True:
        row = next_row()
        if row is None:
            break
        if not row:  # blank line
            prev = reader.line_num
            continue
        span = (starts[prev], ends[reader.line_num - 1])
        line = prev + 1
        prev = reader.line_num
        if len(row) != ncol:
            yield RawRecord(idx, line, None, f"the row has {len(row)} fields, the header has {ncol}", span)
        else:
            yield RawRecord(idx, line, dict(zip(cols, row)), None, span)
        idx += 1


# ---------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------

def read_parquet(path: str) -> Source:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
        cols = list(pf.schema_arrow.names)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise InputError(f"not a readable Parquet file: {safe(e, 200)}", path=path) from None

    def it() -> Iterator[RawRecord]:
        idx = 0
        try:
            for batch in pf.iter_batches(batch_size=8192):
                for row in batch.to_pylist():
                    yield RawRecord(idx, None, row)
                    idx += 1
        except (pa.ArrowException, OSError, ValueError) as e:
            raise InputError(f"cannot read the Parquet file: {safe(e, 200)}", path=path, record=idx) from None
    return Source(path, "parquet", it(), None, columns=cols)


# ---------------------------------------------------------------------------------------
# Hugging Face datasets and in-memory objects
# ---------------------------------------------------------------------------------------

def is_hf_dataset_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "dataset_dict.json")) or (
        os.path.isfile(os.path.join(path, "state.json")) and os.path.isfile(os.path.join(path, "dataset_info.json")))


def _pick_split(dd: Any, split: str | None, where: str | None) -> tuple[Any, str]:
    names = list(dd.keys())
    if split is not None:
        if split not in dd:
            raise InputError(f"split '{safe(split)}' not found; splits: {', '.join(safe(s, 30) for s in names)}",
                             path=where)
        return dd[split], split
    if "train" in dd:
        return dd["train"], "train"
    if len(names) == 1:
        return dd[names[0]], names[0]
    raise InputError(f"the dataset has several splits ({', '.join(safe(s, 30) for s in names)}); "
                     "pick one with split=", path=where)


def hf_source(obj: Any, split: str | None, path: str | None = None) -> Source:
    import datasets
    chosen = None
    if isinstance(obj, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        obj, chosen = _pick_split(obj, split, path)
    if isinstance(obj, datasets.IterableDataset):
        rows = list(obj)
        src = records_source(rows, path)
        src.extra["split"] = chosen
        return src
    if not isinstance(obj, datasets.Dataset):
        raise InputError(f"unsupported dataset object {type(obj).__name__}", path=path)
    ds = obj
    cols = list(ds.column_names)

    def it() -> Iterator[RawRecord]:
        idx = 0
        for batch in ds.with_format(None).iter(batch_size=4096):
            keys = list(batch.keys())
            cols_v = [batch[k] for k in keys]
            for vals in zip(*cols_v):
                yield RawRecord(idx, None, dict(zip(keys, vals)))
                idx += 1
    extra = {"split": chosen or (str(ds.split) if ds.split is not None else None),
             "fingerprint": getattr(ds, "_fingerprint", None)}
    return Source(path, "hf", it(), None, columns=cols, container={"dataset": ds}, extra=extra)


def load_hf_dir(path: str, split: str | None) -> Source:
    try:
        import datasets
        obj = datasets.load_from_disk(path)
    except Exception as e:  # datasets raises many kinds; a broken folder must not traceback
        raise InputError(f"cannot load the datasets folder: {type(e).__name__}: {safe(e, 200)}", path=path) from None
    src = hf_source(obj, split, path)
    src.sha256 = dir_sha256(path)
    return src


def load_hub(name: str, split: str | None) -> Source:
    try:
        import datasets
        obj = datasets.load_dataset(name, split=split)
    except Exception as e:  # offline, unknown name, bad config...: one clean line
        raise InputError(f"'{safe(name)}' is not a local file or folder, and loading it with "
                         f"datasets.load_dataset failed: {type(e).__name__}: {safe(e, 240)}") from None
    src = hf_source(obj, split, None)
    src.extra["hub_name"] = name
    return src


def records_source(rows: list[Any], path: str | None = None) -> Source:
    return Source(path, "records", (RawRecord(i, None, r) for i, r in enumerate(rows)), None,
                  container={"rows": rows})

