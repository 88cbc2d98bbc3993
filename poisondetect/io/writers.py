"""Write a subset of the input's records back, in the input's own format.

JSONL and CSV/TSV subsets are the original bytes of each record's line(s) (the CSV
header kept); JSON-list subsets are the original text of each element; Parquet subsets
are the rows of the original table; in-memory and HF datasets are written as Parquet or
JSON Lines (by the output's extension).  Writing the complement of a subset to a second
file therefore splits the input into two files that hold every record exactly once.
An output path ending in ``.gz`` is gzip-compressed (reproducibly: no timestamp).
"""
from __future__ import annotations

import gzip
import json
import os
from typing import Any, Iterable

import numpy as np

from ..errors import InputError
from ..hashing import file_sha256
from .files import decode_utf8, read_all
from .loader import LoadedDataset


def _indices(ld: LoadedDataset, record_indices: Iterable[int]) -> np.ndarray:
    idx = np.asarray(list(record_indices) if not isinstance(record_indices, np.ndarray) else record_indices,
                     dtype=np.int64).reshape(-1)
    idx = np.unique(idx)
    if len(idx) and (idx[0] < 0 or idx[-1] >= ld.n_records):
        raise ValueError(f"record indices must be in [0, {ld.n_records}); got {idx[0]}..{idx[-1]}")
    return idx


def _open_out(out_path: str):
    d = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(d, exist_ok=True)
    if out_path.lower().endswith(".gz"):
        return gzip.GzipFile(filename=os.path.basename(out_path[:-3]), mode="wb",
                             fileobj=open(out_path, "wb"), mtime=0)
    return open(out_path, "wb")


class _Closing:
    """Closes a GzipFile and the file under it."""

    def __init__(self, fh):
        self.fh = fh

    def __enter__(self):
        return self.fh

    def __exit__(self, *exc):
        inner = getattr(self.fh, "fileobj", None)
        self.fh.close()
        if inner is not None:
            inner.close()


def _check_unchanged(ld: LoadedDataset) -> None:
    if ld.path and ld.sha256 and os.path.isfile(ld.path):
        if file_sha256(ld.path) != ld.sha256:
            raise InputError("the input file changed since it was loaded; load it again before writing",
                             path=ld.path)


def write_subset(ld: LoadedDataset, record_indices: Iterable[int], out_path: str | os.PathLike) -> int:
    """Write the records ``record_indices`` (0-based, as in ``pairs.row`` and
    ``bad_records``) of the loaded input to ``out_path``, in the input's own format and
    input order.  Returns the number of records written."""
    out_path = os.fspath(out_path)
    idx = _indices(ld, record_indices)
    fmt = ld.format
    shape = ld._container.get("shape")
    if fmt in ("jsonl", "csv", "tsv") or (fmt == "json" and shape == "list"):
        _check_unchanged(ld)
        data = read_all(ld.path, ld.compression)
        spans = ld._spans
        with _Closing(_open_out(out_path)) as out:
            if fmt == "json":
                text = decode_utf8(data, ld.path)
                parts = [text[s:e] for s, e in spans[idx]]
                out.write(("[\n" + ",\n".join(parts) + "\n]\n" if parts else "[]\n").encode("utf-8"))
            else:
                if fmt != "jsonl":
                    hs, he = ld._container["header_span"]
                    head = data[hs:he]
                    out.write(head if head.endswith(b"\n") or not len(idx) else head + b"\n")
                for s, e in spans[idx]:
                    chunk = data[s:e]
                    out.write(chunk if chunk.endswith(b"\n") else chunk + b"\n")
        return len(idx)
    if fmt == "json":
        rows = _json_rows(ld)
        with _Closing(_open_out(out_path)) as out:
            if shape == "columns":
                keys = ld._container["keys"]
                obj: Any = {k: [rows[i][k] for i in idx] for k in keys}
            elif shape == "wrapped":
                obj = {ld._container["key"]: [rows[i] for i in idx]}
            else:
                obj = [rows[i] for i in idx]
                if shape == "single" and len(idx) == 1:
                    obj = rows[0]
            out.write(json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8", "surrogatepass") + b"\n")
        return len(idx)
    if fmt == "parquet":
        _check_unchanged(ld)
        import pyarrow.parquet as pq
        table = pq.read_table(ld.path)
        pq.write_table(table.take(idx), out_path)
        return len(idx)
    if fmt == "hf":
        ds = ld._container["dataset"].select(idx.tolist())
        if out_path.lower().endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
            rows = ds.with_format(None).to_list()
            _write_jsonl(rows, out_path)
        else:
            ds.to_parquet(out_path)
        return len(idx)
    if fmt == "records":
        rows = ld._container["rows"]
        sel = [rows[i] for i in idx]
        if out_path.lower().endswith((".parquet", ".pq")):
            import pyarrow as pa
            import pyarrow.parquet as pq
            pq.write_table(pa.Table.from_struct_array(pa.array(sel)), out_path)  # schema from every row
        elif out_path.lower().endswith((".json", ".json.gz")):
            with _Closing(_open_out(out_path)) as out:
                out.write(json.dumps(sel, ensure_ascii=False, indent=2, default=str)
                          .encode("utf-8", "surrogatepass") + b"\n")
        else:
            _write_jsonl(sel, out_path)
        return len(idx)
    raise InputError(f"cannot write a subset of a {fmt} input")


def _json_rows(ld: LoadedDataset) -> list[Any]:
    shape = ld._container.get("shape")
    data = read_all(ld.path, ld.compression)
    obj = json.loads(decode_utf8(data, ld.path))
    if shape == "columns":
        keys = ld._container["keys"]
        n = len(obj[keys[0]]) if keys else 0
        return [{k: obj[k][i] for k in keys} for i in range(n)]
    if shape == "wrapped":
        return obj[ld._container["key"]]
    return [obj]


def _write_jsonl(rows: list[Any], out_path: str) -> None:
    with _Closing(_open_out(out_path)) as out:
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass") + b"\n")


def write_split(ld: LoadedDataset, quarantine_indices: Iterable[int], clean_path: str | os.PathLike,
                quarantine_path: str | os.PathLike) -> dict[str, int]:
    """Split the input into ``clean_path`` (every record not in ``quarantine_indices``)
    and ``quarantine_path`` (those records plus every malformed record): each input record
    lands in exactly one file.  Returns the counts."""
    q = np.union1d(_indices(ld, quarantine_indices), ld.bad_indices).astype(np.int64)
    keep = np.setdiff1d(np.arange(ld.n_records, dtype=np.int64), q)
    write_subset(ld, keep, clean_path)
    write_subset(ld, q, quarantine_path)
    return {"clean": int(len(keep)), "quarantine": int(len(q))}
