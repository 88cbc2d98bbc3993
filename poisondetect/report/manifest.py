"""Provenance manifest (``manifest.json``): enough to say exactly what was scanned, with
what, and to reproduce the scan.

Contents: input files (path, size, sha256; a directory input hashes every file in it),
record/pair counts, the embedding settings and the embedder's identity and weight-file
hashes (``result.params["embedding_info"]``, provided by the embed layer), every
detector with its parameters, the tool version, seed, timings, the findings' hash, the
command line, python/platform/library versions and a UTC timestamp.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__
from ..hashing import file_sha256

MANIFEST_VERSION = 1
_LIBS = ("numpy", "scipy", "scikit-learn", "hdbscan", "torch", "sentence-transformers", "transformers",
         "pyarrow", "datasets", "jinja2", "matplotlib", "detect-secrets")


def describe_input(path: str | os.PathLike, max_files: int = 10000) -> dict[str, Any]:
    """Path, kind, size and sha256 of an input file, or of every file under a directory
    (plus one combined digest over the sorted relative paths and their hashes)."""
    p = Path(path)
    if p.is_file():
        return {"path": str(p), "kind": "file", "bytes": p.stat().st_size, "sha256": file_sha256(p)}
    if p.is_dir():
        # not hashing.dir_sha256: this digest orders files as sorted Paths (dir_sha256 walks
        # with os.walk, so nested folders order differently) and stops at max_files; kept
        # as it is so that manifests stay comparable across versions
        files = sorted(q for q in p.rglob("*") if q.is_file())
        h = hashlib.sha256()
        listed = []
        for q in files[:max_files]:
            rel = q.relative_to(p).as_posix()
            d = file_sha256(q)
            h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + d.encode() + b"\n")
            listed.append({"path": rel, "bytes": q.stat().st_size, "sha256": d})
        out = {"path": str(p), "kind": "directory", "sha256": h.hexdigest(), "files": listed}
        if len(files) > max_files:
            out["files_truncated"] = len(files) - max_files
        return out
    # a hub dataset name or an in-memory object: nothing on disk to hash
    return {"path": str(path), "kind": "not a local file"}


def library_versions(names: Iterable[str] = _LIBS) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return out


def build_manifest(result: Any, inputs: Sequence[str | os.PathLike] = (), command: Sequence[str] | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest as a dict (pure apart from hashing the named input files)."""
    params = result.params or {}
    load = result.load_info or {}
    bad = load.get("bad_records") or {}
    detectors = {}
    for d, r in result.results.items():
        detectors[d] = {
            "params": r.info.get("params", {}),
            "n_flagged": int(r.flags.sum()),
            "summary": r.summary,
        }
    m: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "tool": {"name": "poisondetect", "version": __version__},
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": list(command) if command is not None else list(sys.argv),
        "inputs": [describe_input(p) for p in inputs],
        "input": {k: v for k, v in load.items() if k not in ("bad_records", "empty_records")},
        "counts": {
            "records": int(load.get("n_records", 0) or 0),
            "pairs": int(result.n_pairs),
            "bad_records": int(bad.get("count", 0) or 0),
            "empty_records": int((load.get("empty_records") or {}).get("count", 0) or 0),
            "flagged_pairs": int(result.flagged.sum()),
            "flagged_records": len({int(x) for x in result.pairs.row[result.flagged]}),
            "triggers": len(result.triggers),
        },
        "seed": params.get("random_state"),
        "embedding": {
            "settings": params.get("embedding", {}),
            "model": params.get("embedding_info"),
        },
        "detectors": detectors,
        "skipped_detectors": load.get("skipped_detectors", {}),
        "timings_s": {k: round(float(v), 4) for k, v in result.timings.items()},
        "findings_sha256": result.findings_hash(),
        "environment": {
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "libraries": library_versions(),
        },
    }
    if m["embedding"]["model"] is None:
        m["embedding"]["model"] = ("embeddings disabled" if (params.get("embedding") or {}).get("mode") == "none"
                                   else "not reported by the embedding layer")
    if extra:
        m["extra"] = extra
    return m


def write_manifest(result: Any, path: str | os.PathLike, inputs: Sequence[str | os.PathLike] = (),
                   command: Sequence[str] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``manifest.json`` to ``path``; returns the manifest dict."""
    m = build_manifest(result, inputs=inputs, command=command, extra=extra)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        json.dump(m, f, indent=2, ensure_ascii=False, default=repr)
        f.write("\n")
    return m
