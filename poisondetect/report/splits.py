"""``--split DIR``: write ``clean.<ext>`` and ``quarantine.<ext>`` in the input's format.

Every input record lands in exactly one of the two files: a record goes to quarantine
when any of its pairs is flagged as poisoning or when it was a malformed (bad) record; everything else
(including well-formed records with no assistant turn) is clean.  The bytes come from
:func:`poisondetect.io.write_subset`, which copies each record's original bytes where the
format allows (JSONL, CSV/TSV, JSON lists) and the original table rows for Parquet.

``redact=True`` rewrites PII and secrets in the **clean** split with
:func:`poisondetect.redact.redact` (quarantine stays as found, for review).  Only the
records a redaction changed are re-serialised; the others keep their original bytes.
A ``splits.json`` next to the two files records counts, hashes and why each
quarantined record is there.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..hashing import file_sha256
from ..io import write_subset

_EXT = {"jsonl": "jsonl", "json": "json", "csv": "csv", "tsv": "tsv", "parquet": "parquet", "hf": "parquet",
        "records": "jsonl"}


def split_extension(loaded: Any) -> str:
    """The extension of the split files: the input's format, gzip kept (bz2/xz inputs are
    written uncompressed)."""
    ext = _EXT.get(loaded.format, "jsonl")
    if getattr(loaded, "compression", None) == "gzip" and ext != "parquet":
        ext += ".gz"
    return ext


def quarantine_records(result: Any, loaded: Any, baseline: dict[str, Any] | None = None) -> dict[int, list[str]]:
    """Record index -> reasons it is quarantined (``"<kind>:<detector>"`` for each
    detector flagging one of its pairs, or "bad record").

    A record is quarantined for poisoning evidence; privacy and quality flags of a
    quarantined record are listed beside it (e.g. ``"quality:knn_outlier"``) but never
    quarantine a record on their own (``--redact`` handles privacy in the clean split).

    With ``baseline`` (from :func:`poisondetect.report.triage.apply_baseline`), pairs
    whose every flag was reviewed as a false positive do not quarantine their record;
    "accepted" findings still do."""
    reasons: dict[int, list[str]] = {}
    released = set() if baseline is None else {int(i) for i in baseline.get("fp_pair_positions", ())}
    for i in np.flatnonzero(result.flagged):
        if int(i) in released:
            continue
        row = int(result.pairs.row[i])
        dets = [f"{result.kind_of(d)}:{d}" for d, r in result.results.items() if r.flags[i]]
        cur = reasons.setdefault(row, [])
        cur.extend(d for d in dets if d not in cur)
    for b in np.asarray(getattr(loaded, "bad_indices", np.zeros(0)), dtype=np.int64):
        reasons.setdefault(int(b), [])
        if "bad record" not in reasons[int(b)]:
            reasons[int(b)].append("bad record")
    return dict(sorted(reasons.items()))


def _load_redactor() -> Callable[[str], tuple[str, int]]:
    # deferred, and guarded: the redactor pulls in the secrets/PII detector (detect-secrets),
    # a heavy import needed only with --redact
    try:
        from ..redact import redact  # type: ignore[attr-defined]
    except ImportError as e:
        raise ConfigError(f"--redact needs poisondetect.redact, which could not be imported ({e})") from None
    return redact


def write_splits(result: Any, loaded_dataset: Any, outdir: str | os.PathLike, redact: bool = False,
                 baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``clean.<ext>`` and ``quarantine.<ext>`` (and ``splits.json``) under ``outdir``.

    ``baseline``: apply_baseline info; pairs reviewed as false positives stay clean.

    Returns the split info (paths, record counts, sha256 of each file, redaction counts).
    """
    redactor = _load_redactor() if redact else None
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    ext = split_extension(loaded_dataset)
    clean_p, quar_p = out / f"clean.{ext}", out / f"quarantine.{ext}"
    reasons = quarantine_records(result, loaded_dataset, baseline)
    n = int(loaded_dataset.n_records)
    q_idx = np.asarray(sorted(r for r in reasons if 0 <= r < n), dtype=np.int64)
    keep = np.setdiff1d(np.arange(n, dtype=np.int64), q_idx)
    n_clean = write_subset(loaded_dataset, keep, clean_p)
    n_quar = write_subset(loaded_dataset, q_idx, quar_p)
    if n_clean + n_quar != n:  # the IO layer's contract; never silently lose a record
        raise RuntimeError(f"split wrote {n_clean} + {n_quar} records for {n} input records")
    info: dict[str, Any] = {
        "format": loaded_dataset.format,
        "n_records": n,
        "clean": {"path": str(clean_p), "records": int(n_clean)},
        "quarantine": {"path": str(quar_p), "records": int(n_quar)},
    }
    if redactor is not None:
        info["redaction"] = redact_file(clean_p, loaded_dataset.format, redactor)
    info["clean"]["sha256"] = file_sha256(clean_p)
    info["quarantine"]["sha256"] = file_sha256(quar_p)
    info["quarantined"] = [{"record": r, "reasons": why} for r, why in reasons.items()]
    with open(out / "splits.json", "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return info


# ---- redaction ----------------------------------------------------------------------------
def _redact_obj(obj: Any, redactor: Callable[[str], tuple[str, int]]) -> tuple[Any, int]:
    """Redact every string value (not keys) in a JSON-like object."""
    if isinstance(obj, str):
        new, k = redactor(obj)
        return new, int(k)
    if isinstance(obj, dict):
        tot = 0
        out = {}
        for key, v in obj.items():
            out[key], k = _redact_obj(v, redactor)
            tot += k
        return out, tot
    if isinstance(obj, list):
        tot = 0
        lst = []
        for v in obj:
            nv, k = _redact_obj(v, redactor)
            lst.append(nv)
            tot += k
        return lst, tot
    return obj, 0


def _redact_all(records: list[Any], redactor: Callable[[str], tuple[str, int]]) -> tuple[list[Any], int, int]:
    """Every record redacted, the number of records changed and of redactions."""
    out = []
    n_rec = n_red = 0
    for rec in records:
        nv, k = _redact_obj(rec, redactor)
        out.append(nv)
        if k:
            n_rec += 1
            n_red += k
    return out, n_rec, n_red


def _read(path: Path) -> bytes:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if path.name.endswith(".gz"):
        with open(tmp, "wb") as raw, gzip.GzipFile(filename=path.name[:-3], mode="wb", fileobj=raw, mtime=0) as g:
            g.write(data)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def redact_file(path: Path, fmt: str, redactor: Callable[[str], tuple[str, int]]) -> dict[str, int]:
    """Redact a split file in place, in its own format.  Returns counts."""
    n_rec = n_red = 0
    if fmt in ("jsonl", "records") or (fmt == "hf" and not path.name.endswith(".parquet")):
        lines = _read(path).splitlines(keepends=True)
        out = []
        for line in lines:
            if not line.strip():
                out.append(line)
                continue
            obj, k = _redact_obj(json.loads(line), redactor)
            if k:
                n_rec += 1
                n_red += k
                end = b"\r\n" if line.endswith(b"\r\n") else b"\n"
                out.append(json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass") + end)
            else:
                out.append(line)
        if n_rec:
            _write(path, b"".join(out))
    elif fmt == "json":
        data = json.loads(_read(path).decode("utf-8"))
        new_items, n_rec, n_red = _redact_all(data if isinstance(data, list) else [data], redactor)
        if n_rec:
            obj = new_items if isinstance(data, list) else new_items[0]
            _write(path, json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8", "surrogatepass") + b"\n")
    elif fmt in ("csv", "tsv"):
        text = _read(path).decode("utf-8-sig" if _read(path).startswith(b"\xef\xbb\xbf") else "utf-8")
        delim = "," if fmt == "csv" else "\t"
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delim))
        for r_i in range(1, len(rows)):  # row 0 is the header
            changed = 0
            for c_i, cell in enumerate(rows[r_i]):
                new, k = redactor(cell)
                if k:
                    rows[r_i][c_i] = new
                    changed += int(k)
            if changed:
                n_rec += 1
                n_red += changed
        if n_rec:
            buf = io.StringIO(newline="")
            csv.writer(buf, delimiter=delim, lineterminator="\r\n" if "\r\n" in text else "\n").writerows(rows)
            _write(path, buf.getvalue().encode("utf-8"))
    elif fmt in ("parquet", "hf"):
        # deferred: pyarrow is a heavy import, needed only for Parquet splits
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        new_rows, n_rec, n_red = _redact_all(table.to_pylist(), redactor)
        if n_rec:
            tmp = path.with_name(path.name + ".tmp")
            pq.write_table(pa.Table.from_pylist(new_rows, schema=table.schema), tmp)
            os.replace(tmp, path)
    else:
        raise ConfigError(f"cannot redact a {fmt} split")
    return {"records_redacted": n_rec, "redactions": n_red}
