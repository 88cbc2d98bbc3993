"""load(): any supported source -> :class:`LoadedDataset` (pairs + provenance)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Iterator

import numpy as np

from ..errors import InputError
from ..types import Pairs
from ..hashing import file_sha256, records_sha256
from . import files
from . import formats as F
from .layouts import BadRecord, Layout, NoPairs, detect_layout

MAX_EXAMPLES = 50
_SAMPLE_RECORDS = 1000
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass
class LoadedDataset:
    """What :func:`load` returns: the pairs plus everything needed to report on and
    write back the input.

    ``pairs.row`` is the 0-based record index in the input (bad records keep their index,
    so row numbers match the file); ``bad_records`` lists records that could not be read
    (only with ``skip_bad=True``); ``empty_records`` lists well-formed records that hold
    no assistant turn (they produce no pair).
    """

    pairs: Pairs
    path: str | None
    format: str
    layout: str
    n_records: int
    fields: dict[str, str]
    sha256: str | None
    bad_count: int = 0
    bad_examples: list[dict[str, Any]] = field(default_factory=list)
    bad_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    empty_count: int = 0
    empty_examples: list[dict[str, Any]] = field(default_factory=list)
    compression: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # what the writers need (spans, container shape, the in-memory object)
    _spans: np.ndarray | None = None
    _container: dict[str, Any] = field(default_factory=dict)
    _columns: list[str] | None = None

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    @property
    def bad_record_indices(self) -> np.ndarray:
        """0-based indices of the malformed records (they belong in quarantine)."""
        return self.bad_indices

    def info(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            "compression": self.compression,
            "layout": self.layout,
            "n_records": int(self.n_records),
            "n_pairs": int(len(self.pairs)),
            "sha256": self.sha256,
            "fields": dict(self.fields),
            "bad_records": {"count": int(self.bad_count), "examples": [dict(e) for e in self.bad_examples]},
            "empty_records": {"count": int(self.empty_count), "examples": [dict(e) for e in self.empty_examples]},
        }
        for k, v in self.extra.items():
            d[k] = v
        return d


def _resolve(source: Any, fmt: str | None, split: str | None) -> F.Source:
    """Open any supported source."""
    if fmt is not None and fmt not in F.FORMATS:
        raise InputError(f"unknown format '{F.safe(fmt)}'; known formats: {', '.join(F.FORMATS)}")
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, str):
        return _resolve_path(source, fmt, split)
    mod = type(source).__module__ or ""
    if mod.startswith("datasets"):
        return F.hf_source(source, split)
    if mod.startswith("pandas"):
        try:
            rows = source.to_dict("records")
        except Exception as e:  # noqa: BLE001
            raise InputError(f"cannot read the DataFrame: {F.safe(e, 200)}") from None
        src = F.records_source(rows)
        src.sha256 = records_sha256(rows)
        return src
    if isinstance(source, (list, tuple)):
        rows = list(source)
        src = F.records_source(rows)
        src.sha256 = records_sha256(rows)
        return src
    raise InputError(f"cannot load a {type(source).__name__}: pass a path, a datasets.Dataset/DatasetDict, "
                     "a list of dicts or a hub dataset name")


def _resolve_path(path: str, fmt: str | None, split: str | None) -> F.Source:
    if not path:
        raise InputError("empty path")
    if not os.path.exists(path):
        looks_local = (os.sep in path and path.count("/") != 1) or path.startswith((".", "~", os.sep)) \
            or files.format_from_name(path) is not None or not _HUB_NAME.match(path)
        if looks_local:
            raise InputError("no such file or directory", path=path)
        return F.load_hub(path, split)
    if os.path.isdir(path):
        if F.is_hf_dataset_dir(path) or fmt == "hf":
            return F.load_hf_dir(path, split)
        try:
            names = sorted(os.listdir(path))
        except OSError as e:
            raise InputError(f"cannot read the directory: {e.strerror or e}", path=path) from None
        shown = ", ".join(F.safe(n, 40) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise InputError("is a directory but not a datasets.save_to_disk folder (no dataset_info.json/"
                         f"state.json or dataset_dict.json; it holds: {shown or 'nothing'})", path=path)
    if not os.access(path, os.R_OK):
        raise InputError("cannot read the file: permission denied", path=path)
    if os.path.getsize(path) == 0:
        raise InputError("the file is empty", path=path)
    comp = files.sniff_compression(path)
    kind = fmt or files.format_from_name(path) or files.sniff_format(path, comp)
    if kind is None:
        raise InputError("cannot tell the file format from its name or contents; pass fmt= one of "
                         "json, jsonl, csv, tsv, parquet", path=path)
    if kind == "parquet":
        if comp is not None:
            raise InputError("compressed Parquet files are not supported; Parquet compresses internally",
                             path=path)
        src = F.read_parquet(path)
    elif kind == "json":
        src = F.read_json(path, comp, split)
    elif kind == "jsonl":
        src = F.read_jsonl(path, comp)
    elif kind in ("csv", "tsv"):
        src = F.read_csv(path, comp, "," if kind == "csv" else "\t")
    else:
        raise InputError(f"format '{kind}' needs a folder written by datasets.save_to_disk", path=path)
    src.sha256 = file_sha256(path)
    return src


def _peek_sample(records: Iterator[F.RawRecord]) -> tuple[list[F.RawRecord], list[dict]]:
    buf: list[F.RawRecord] = []
    sample: list[dict] = []
    for rr in records:
        buf.append(rr)
        if rr.problem is None and isinstance(rr.value, dict):
            sample.append(rr.value)
            if len(sample) >= _SAMPLE_RECORDS:
                break
    return buf, sample


_LOAD_KW = ("layout", "instruction_field", "input_field", "response_field", "system_field", "source_field",
            "skip_bad")


def load(source: Any, *, fmt: str | None = None, layout: str | None = None,
         instruction_field: str | None = None, input_field: str | None = None,
         response_field: str | None = None, system_field: str | None = None,
         source_field: str | None = None, skip_bad: bool = False,
         split: str | None = None) -> LoadedDataset:
    """Load an instruction dataset into pairs.

    ``source``: a path (JSON list / object of lists, JSONL, CSV/TSV, Parquet, any of them
    gzip/bz2/xz-compressed, a ``datasets.save_to_disk`` folder), a ``datasets.Dataset`` /
    ``DatasetDict`` (``split`` picks the split; default "train" or the only one), a list
    of dicts, a pandas DataFrame, or a Hugging Face hub name (tried only when no such
    local path exists).  ``fmt`` and ``layout`` force what is otherwise detected; the
    ``*_field`` arguments name the fields to use.  ``source_field`` names a provenance
    column copied into ``pairs.source``.

    With ``skip_bad=False`` the first malformed record raises
    :class:`~poisondetect.errors.InputError`; with ``skip_bad=True`` malformed records are
    counted and listed in ``info()["bad_records"]`` and produce no pairs.
    """
    stream = PairStream(source, fmt=fmt, layout=layout, instruction_field=instruction_field,
                        input_field=input_field, response_field=response_field, system_field=system_field,
                        source_field=source_field, skip_bad=skip_bad, split=split, chunk_records=None)
    chunks = list(stream)
    pairs = chunks[0] if len(chunks) == 1 else Pairs.concat(chunks)
    if not len(pairs):
        stream._raise_empty()
    ld = stream.loaded
    ld.pairs = pairs
    return ld


class PairStream:
    """Chunked loading: iterate to get :class:`Pairs` batches of the pairs of about
    ``chunk_records`` records each (rows are global record indices).  JSONL, CSV and
    Parquet inputs are read incrementally.  After the iteration, ``loaded`` is the
    :class:`LoadedDataset` (with empty ``pairs``: the batches were handed out) and
    ``info()`` its summary; ``write_subset`` works on ``loaded``.

        stream = PairStream("big.jsonl.gz", chunk_records=20000)
        for batch in stream:
            ...
        stream.info()["bad_records"]
    """

    def __init__(self, source: Any, *, fmt: str | None = None, split: str | None = None,
                 chunk_records: int | None = 50_000, **kw: Any) -> None:
        unknown = set(kw) - set(_LOAD_KW)
        if unknown:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(unknown))}")
        if chunk_records is not None and chunk_records < 1:
            raise ValueError("chunk_records must be >= 1")
        self.src = _resolve(source, fmt, split)
        self.kw = {k: kw.get(k) for k in _LOAD_KW}
        self.kw["skip_bad"] = bool(kw.get("skip_bad", False))
        self.chunk_records = chunk_records
        self.loaded: LoadedDataset | None = None
        self._n = 0
        self._bad_idx: list[int] = []
        self._bad_ex: list[dict[str, Any]] = []

    def info(self) -> dict[str, Any]:
        if self.loaded is None:
            raise RuntimeError("iterate over the stream first")
        return self.loaded.info()

    def __iter__(self) -> Iterator[Pairs]:
        if self.loaded is not None:
            raise RuntimeError("a PairStream can be iterated once")
        try:
            yield from self._run()
        except RecursionError:
            raise InputError("the input is nested too deeply to read", path=self.src.path) from None

    def _raise_empty(self) -> None:
        path = self.src.path
        if self._bad_idx:
            ex = self._bad_ex[0]
            raise InputError(f"no usable records: all {len(self._bad_idx)} malformed records were skipped "
                             f"(first: record {ex['record']}: {ex['problem']})", path=path)
        raise InputError(f"no pairs: none of the {self._n} records holds an assistant turn / response",
                         path=path)

    def _run(self) -> Iterator[Pairs]:
        src, kw = self.src, self.kw
        path = src.path
        skip_bad = kw["skip_bad"]
        buf, sample = _peek_sample(src.records)
        if not buf:
            raise InputError("no records found", path=path)
        if not sample:
            first = buf[0]
            if first.problem is not None and not skip_bad:
                raise InputError(first.problem, path=path, line=first.line, record=first.index)
            kinds = sorted({F.type_name(r.value) for r in buf if r.problem is None})
            bad = next((r for r in buf if r.problem is not None), None)
            raise InputError("no readable record with fields"
                             + (f" (records are: {', '.join(kinds)})" if kinds else "")
                             + (f"; first problem, record {bad.index}"
                                + (f" at line {bad.line}" if bad.line is not None else "")
                                + f": {bad.problem}" if bad is not None else ""),
                             path=path)
        lay: Layout = detect_layout(sample, layout=kw["layout"], instruction_field=kw["instruction_field"],
                                    input_field=kw["input_field"], response_field=kw["response_field"],
                                    system_field=kw["system_field"], path=path)
        src_key = None
        source_field = kw["source_field"]
        if source_field is not None:
            keys = {k for r in sample for k in r}
            if source_field in keys:
                src_key = source_field
            else:
                low = {k.lower(): k for k in keys if isinstance(k, str)}
                src_key = low.get(source_field.lower())
            if src_key is None:
                seen = ", ".join(F.safe(k, 30) for k in list(dict.fromkeys(k for r in sample for k in r))[:20])
                raise InputError(f"no field '{F.safe(source_field)}' for the source (fields seen: {seen})",
                                 path=path)

        conv = lay.converter()
        spans: list[tuple[int, int]] | None = [] if src.format in ("jsonl", "csv", "tsv") or \
            src.container.get("shape") == "list" else None
        bad_idx, bad_ex = self._bad_idx, self._bad_ex
        empty_count = 0
        empty_ex: list[dict[str, Any]] = []
        n = 0
        chunk = self.chunk_records

        preference = lay.kind in ("preference", "ratings")

        def new_lists() -> tuple[list, list, list, list, list | None]:
            return [], [], [], [], ([] if src_key is not None else None)
        instr, resp, rows, turns, sources = new_lists()
        rejected: list[str] | None = [] if preference else None
        since = 0
        for rr in chain(buf, src.records):
            n += 1
            if spans is not None:
                spans.append(rr.span or (0, 0))
            out, problem, empty = convert_record(conv, rr)
            if empty is not None:
                empty_count += 1
                if len(empty_ex) < MAX_EXAMPLES:
                    empty_ex.append({"record": rr.index, "line": rr.line, "problem": empty})
                continue
            if problem is not None:
                if not skip_bad:
                    raise InputError(problem, path=path, line=rr.line, record=rr.index)
                bad_idx.append(rr.index)
                if len(bad_ex) < MAX_EXAMPLES:
                    bad_ex.append({"record": rr.index, "line": rr.line, "problem": problem})
                continue
            s_val = source_value(rr.value, src_key) if sources is not None else None
            for item in out:
                ins, res, t = item[0], item[1], item[2]
                if rejected is not None:
                    rejected.append(item[3])
                instr.append(ins)
                resp.append(res)
                rows.append(rr.index)
                turns.append(t)
                if sources is not None:
                    sources.append(s_val)
            if chunk is not None:
                since += 1
                if since >= chunk:
                    self._n = n
                    yield _pairs(instr, resp, rows, turns, sources, rejected)
                    instr, resp, rows, turns, sources = new_lists()
                    rejected = [] if preference else None
                    since = 0
        self._n = n
        if instr or chunk is None:
            yield _pairs(instr, resp, rows, turns, sources, rejected)
        fields = lay.fields_used()
        if src_key is not None:
            fields["source"] = src_key
        extra = {k: v for k, v in src.extra.items() if v is not None}
        if lay.kind == "text":
            extra["templates"] = dict(sorted(lay.template_counts.items()))
        self.loaded = LoadedDataset(
            pairs=_pairs([], [], [], [], [] if src_key is not None else None), path=path, format=src.format,
            layout=lay.reported_name(), n_records=n, fields=fields,
            sha256=src.sha256, bad_count=len(bad_idx), bad_examples=bad_ex,
            bad_indices=np.asarray(bad_idx, np.int64), empty_count=empty_count, empty_examples=empty_ex,
            compression=src.compression, extra=extra,
            _spans=None if spans is None else np.asarray(spans, np.int64).reshape(-1, 2),
            _container=src.container, _columns=src.columns,
        )


def _pairs(instr: list[str], resp: list[str], rows: list[int], turns: list[int],
           sources: list[str] | None, rejected: list[str] | None = None) -> Pairs:
    return Pairs(instr, resp, row=np.asarray(rows, np.int64), turn=np.asarray(turns, np.int32), source=sources,
                 rejected=rejected)


def iter_records(source: Any, *, fmt: str | None = None, split: str | None = None) -> Iterator[F.RawRecord]:
    """Stream the raw records of a source (index, line, value, problem, span) without
    building pairs.  JSONL, CSV and Parquet files are read incrementally."""
    yield from _resolve(source, fmt, split).records


def convert_record(conv: Any, rr: Any) -> tuple[Any, str | None, str | None]:
    """Turn one raw record into its pairs with the layout converter ``conv``.

    Returns ``(pairs_or_None, problem, empty)``: ``problem`` says why a malformed record is
    bad, ``empty`` why a well-formed record holds no pair (e.g. no assistant turn).  Shared
    by the in-memory loader and the streaming engine so both judge records alike."""
    if rr.problem is not None:
        return None, rr.problem, None
    try:
        return conv(rr.value), None, None
    except BadRecord as e:
        return None, str(e), None
    except NoPairs as e:
        return None, None, str(e)
    except (RecursionError, ValueError, TypeError) as e:
        return None, f"unreadable record ({type(e).__name__}: {F.safe(e, 120)})", None


def source_value(value: dict[str, Any], src_key: str) -> str:
    """The provenance label of a record (``--source-field``), as a string."""
    v = value.get(src_key)
    return "" if v is None else (v if type(v) is str else str(v))
