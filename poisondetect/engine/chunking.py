"""Chunked input for the streaming engines.

:func:`open_chunks` turns a source (a path, a :class:`Pairs`, a list of ``Pairs`` chunks,
or a zero-argument callable returning an iterator of ``Pairs``) into a re-iterable
:class:`ChunkSource`: every ``iter()`` streams the input again as ``Pairs`` chunks of
about ``chunk_size`` pairs (records are never split across chunks, so a chunk can hold a
few more pairs than ``chunk_size`` for multi-turn records).  Files are read incrementally
by :class:`poisondetect.io.PairStream`, the loader itself, so a streamed scan sees exactly
the pairs ``load`` builds, with the same row numbers and bad-record accounting, without
ever holding the whole dataset.

Also here: the content hash of a chunk (checkpoint keys) and merging per-chunk
:class:`DetectorResult` objects back into one.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..types import DetectorResult, Evidence, Pairs


class ChunkSource:
    """A re-iterable stream of ``Pairs`` chunks plus what was learnt about the input.

    ``info`` (filled while iterating, complete after a full pass) has the same keys as
    :meth:`poisondetect.io.LoadedDataset.info` where they apply.
    """

    def __init__(self, factory: Callable[[], Iterator[Pairs]], info: dict[str, Any] | None = None,
                 n_pairs: int | None = None) -> None:
        self._factory = factory
        self.info: dict[str, Any] = dict(info or {})
        self.n_pairs = n_pairs

    def __iter__(self) -> Iterator[Pairs]:
        return iter(self._factory())


def open_chunks(source: Any, chunk_size: int, **load_kwargs: Any) -> ChunkSource:
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    if isinstance(source, ChunkSource):
        return source
    if isinstance(source, Pairs):
        if load_kwargs:
            raise TypeError(f"loader options {sorted(load_kwargs)} do not apply to a Pairs source")
        return _pairs_source(source, chunk_size)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, str):
        return _file_source(source, chunk_size, **load_kwargs)
    if callable(source):
        return ChunkSource(lambda: _rechunk(iter(source()), chunk_size), {"format": "stream"})
    if isinstance(source, (list, tuple)) and source and all(isinstance(p, Pairs) for p in source):
        parts = list(source)
        return ChunkSource(lambda: _rechunk(iter(parts), chunk_size), {"format": "pairs"},
                           n_pairs=sum(len(p) for p in parts))
    # anything else load() understands (datasets.Dataset, DataFrame, list of dicts): these
    # are in memory already, so load once and slice.
    from ..io import load
    ld = load(source, **load_kwargs)
    src = _pairs_source(ld.pairs, chunk_size)
    src.info = ld.info()
    return src


def _pairs_source(pairs: Pairs, chunk_size: int) -> ChunkSource:
    n = len(pairs)
    info = {"format": "pairs", "n_records": int(len(np.unique(pairs.row))) if n else 0, "n_pairs": n}

    def gen() -> Iterator[Pairs]:
        for s in range(0, n, chunk_size):
            yield pairs.take(np.arange(s, min(n, s + chunk_size)))
    return ChunkSource(gen, info, n_pairs=n)


def _rechunk(parts: Iterator[Pairs], chunk_size: int) -> Iterator[Pairs]:
    """Re-cut a stream of Pairs into chunks of ``chunk_size`` (rows kept as given)."""
    buf: list[Pairs] = []
    have = 0
    for p in parts:
        if not isinstance(p, Pairs):
            raise TypeError(f"a chunk stream must yield Pairs, got {type(p).__name__}")
        start, n = 0, len(p)
        while start < n:
            take = min(n - start, chunk_size - have)
            buf.append(p if (start == 0 and take == n) else p.take(np.arange(start, start + take)))
            have += take
            start += take
            if have == chunk_size:
                yield Pairs.concat(buf)
                buf, have = [], 0
    if have:
        yield Pairs.concat(buf)


def _file_source(path: str, chunk_size: int, *, fmt: str | None = None, split: str | None = None,
                 **load_kwargs: Any) -> ChunkSource:
    """A file read incrementally by :class:`poisondetect.io.PairStream` (the loader's own
    format sniffing, layout detection, record judging and row numbering), re-cut into
    chunks of about ``chunk_size`` pairs at record boundaries."""
    holder = ChunkSource(lambda: iter(()), {"path": path})

    def gen() -> Iterator[Pairs]:
        from ..io.loader import PairStream
        stream = PairStream(path, fmt=fmt, split=split, chunk_records=chunk_size, **load_kwargs)
        n_pairs = 0
        for chunk in _cut_at_records(iter(stream), chunk_size):
            n_pairs += len(chunk)
            yield chunk
        if n_pairs == 0:
            stream._raise_empty()
        info = stream.info()
        info["n_pairs"] = n_pairs  # the stream's own dataset holds no pairs: they were handed out
        holder.info.update(info)
    holder._factory = gen
    return holder


def _cut_at_records(parts: Iterator[Pairs], chunk_size: int) -> Iterator[Pairs]:
    """Re-cut batches of whole records into chunks of the fewest whole records holding at
    least ``chunk_size`` pairs (a multi-turn record is never split across chunks)."""
    buf: list[Pairs] = []
    have = 0
    for p in parts:
        start, n = 0, len(p)
        while start < n:
            end = start + (chunk_size - have)
            if end > n:
                buf.append(p.take(np.arange(start, n)) if start else p)
                have += n - start
                break
            while end < n and p.row[end] == p.row[end - 1]:  # finish the record
                end += 1
            buf.append(p.take(np.arange(start, end)) if (start or end < n) else p)
            yield Pairs.concat(buf)
            buf, have, start = [], 0, end
    if buf:
        yield Pairs.concat(buf)


# --------------------------------------------------------------------------------------
# chunk identity
# --------------------------------------------------------------------------------------

def chunk_hash(pairs: Pairs) -> str:
    """Content hash of a chunk (texts, rows, turns, sources): the checkpoint key."""
    h = hashlib.blake2b(digest_size=16)
    h.update(len(pairs).to_bytes(8, "little"))
    h.update(np.ascontiguousarray(pairs.row, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(pairs.turn, dtype=np.int32).tobytes())
    for col in (pairs.instruction, pairs.response, pairs.source or ()):
        for t in col:
            b = t.encode("utf-8", "surrogatepass")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
        h.update(b"\xff" * 8)
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# merging per-chunk results
# --------------------------------------------------------------------------------------

def merge_findings(parts: Iterable[list[dict[str, Any]]], per_row: bool = False) -> list[dict[str, Any]]:
    """Findings of several chunks -> one list.  Findings with the same ``id`` are one
    finding whose ``rows`` are the union (sorted).  ``support``: for per-row detectors
    each chunk counted its own rows (chunks never share a record), so supports add up;
    for mergeable detectors support is dataset-level (from the merged statistics) and is
    kept, unless it counted the listed rows in every chunk.  Order: first appearance."""
    merged: dict[Any, dict[str, Any]] = {}
    support_is_rows: dict[Any, bool] = {}
    for findings in parts:
        for f in findings:
            key = f.get("id")
            if key is None:
                key = ("__noid__", len(merged))
            rows = [int(r) for r in f.get("rows", [])]
            is_rows = "support" in f and f["support"] == len(rows)
            if key not in merged:
                g = dict(f)
                g["rows"] = rows
                merged[key] = g
                support_is_rows[key] = is_rows
            else:
                g = merged[key]
                g["rows"] = g["rows"] + rows
                support_is_rows[key] = support_is_rows[key] and is_rows
                if per_row and isinstance(f.get("support"), int) and isinstance(g.get("support"), int):
                    g["support"] += f["support"]
    out = []
    for key, g in merged.items():
        g["rows"] = sorted(set(g["rows"]))
        if support_is_rows[key] and not per_row:
            g["support"] = len(g["rows"])
        out.append(g)
    return out


def merge_summaries(parts: Sequence[dict[str, Any]], per_row: bool) -> dict[str, Any]:
    """Per-chunk summaries -> one.  Per-row detectors count per chunk, so numbers add up;
    for mergeable detectors a number equal in every chunk is taken to be dataset-level
    (kept once) and anything else is added up.  Lists are concatenated without repeats,
    anything else is taken from the first chunk."""
    if not parts:
        return {}
    out: dict[str, Any] = {}
    keys = list(dict.fromkeys(k for p in parts for k in p))
    for k in keys:
        vals = [p[k] for p in parts if k in p]
        v0 = vals[0]
        if all(isinstance(v, bool) for v in vals):
            out[k] = any(vals)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            if not per_row and all(v == v0 for v in vals):
                out[k] = v0
            else:
                out[k] = sum(vals)
        elif all(isinstance(v, dict) for v in vals):
            out[k] = merge_summaries(vals, per_row)
        elif all(isinstance(v, list) for v in vals):
            seen: list[Any] = []
            for v in vals:
                for x in v:
                    if x not in seen:
                        seen.append(x)
            out[k] = seen
        else:
            out[k] = v0
    return out


def concat_results(det_id: str, parts: Sequence[DetectorResult], per_row: bool) -> DetectorResult:
    """Per-chunk results (in input order) -> one result over the concatenation."""
    if not parts:
        return DetectorResult.empty(det_id, 0)
    evidence: dict[int, list[Evidence]] = {}
    off = 0
    for p in parts:
        for i, evs in p.evidence.items():
            evidence[int(i) + off] = evs
        off += len(p.scores)
    scores = np.concatenate([p.scores for p in parts])
    flags = np.concatenate([p.flags for p in parts])
    summary = merge_summaries([p.summary for p in parts], per_row)
    for k in ("n_flagged", "flagged"):
        if isinstance(summary.get(k), int):
            summary[k] = int(flags.sum())
    return DetectorResult(det_id, scores, flags, evidence, merge_findings((p.findings for p in parts), per_row),
                          summary, dict(parts[0].info))


def slice_result(res: DetectorResult, start: int, end: int) -> DetectorResult:
    """Positions ``start:end`` of a result (evidence re-based to 0; findings kept)."""
    ev = {int(i) - start: e for i, e in res.evidence.items() if start <= int(i) < end}
    return DetectorResult(res.detector, res.scores[start:end], res.flags[start:end], ev, res.findings,
                          res.summary, res.info)


# --------------------------------------------------------------------------------------
# canonical Parquet shards (what the Ray engine's workers read)
# --------------------------------------------------------------------------------------

SHARD_COLUMNS = ("pos", "row", "turn", "instruction", "response", "source")


def pairs_to_table(pairs: Pairs, offset: int) -> Any:
    import pyarrow as pa
    n = len(pairs)
    return pa.table({
        "pos": pa.array(np.arange(offset, offset + n, dtype=np.int64)),
        "row": pa.array(pairs.row.astype(np.int64)),
        "turn": pa.array(pairs.turn.astype(np.int32)),
        "instruction": pa.array(pairs.instruction, type=pa.large_string()),
        "response": pa.array(pairs.response, type=pa.large_string()),
        "source": pa.array(pairs.source if pairs.source is not None else [None] * n, type=pa.string()),
    })


def table_to_pairs(tbl: Any) -> tuple[Pairs, np.ndarray]:
    """(pairs, positions) of a canonical table or record batch."""
    cols = {name: tbl.column(name) for name in tbl.schema.names}
    src = cols.get("source")
    sources = None
    if src is not None and src.null_count < len(src):
        sources = ["" if s is None else s for s in src.to_pylist()]
    pairs = Pairs(cols["instruction"].to_pylist(), cols["response"].to_pylist(),
                  row=np.asarray(cols["row"].to_numpy(), np.int64),
                  turn=np.asarray(cols["turn"].to_numpy(), np.int32), source=sources)
    pos = np.asarray(cols["pos"].to_numpy(), np.int64) if "pos" in cols else np.arange(len(pairs))
    return pairs, pos


def write_shards(chunks: Iterable[Pairs], folder: str) -> tuple[list[str], list[str], int]:
    """Write every chunk as one Parquet shard (zstd).  Returns (paths, chunk hashes, n)."""
    import pyarrow.parquet as pq
    os.makedirs(folder, exist_ok=True)
    paths, hashes, off = [], [], 0
    for k, chunk in enumerate(chunks):
        path = os.path.join(folder, f"part-{k:06d}.parquet")
        h = chunk_hash(chunk)
        tmp = path + ".tmp"
        pq.write_table(pairs_to_table(chunk, off), tmp, compression="zstd")
        os.replace(tmp, path)
        paths.append(path)
        hashes.append(h)
        off += len(chunk)
    return paths, hashes, off


def shard_source(paths: Sequence[str]) -> ChunkSource:
    """A :class:`ChunkSource` reading canonical shards back, one chunk per shard."""
    import pyarrow.parquet as pq
    paths = list(paths)

    def gen() -> Iterator[Pairs]:
        for p in paths:
            yield table_to_pairs(pq.read_table(p))[0]
    return ChunkSource(gen, {"format": "parquet-shards"})
