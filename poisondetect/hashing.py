"""Hashing, in one place: sha256 digests of files, folders and in-memory records (hex
strings, for provenance and change checks), and the splitmix64 mixing that the n-gram
and sampling code builds its stable 64-bit integer hashes from.

Nothing here depends on the rest of the package.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

#: bytes read per ``read`` call while hashing a file
CHUNK = 1 << 20


# ---- sha256 digests ---------------------------------------------------------------------
def file_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


_memo: dict[tuple[str, int, int], str] = {}


def cached_file_sha256(path: str | os.PathLike) -> str:
    """:func:`file_sha256`, memoised on (absolute path, size, mtime) for the life of the
    process: for large files hashed again and again (model weights)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _memo:
        _memo[key] = file_sha256(path)
    return _memo[key]


def dir_sha256(path: str) -> str:
    """Hash of a folder: every file's relative path and contents, in sorted order
    (``os.walk``, folders and file names sorted)."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            h.update(os.path.relpath(p, path).encode("utf-8", "surrogateescape") + b"\0")
            h.update(file_sha256(p).encode() + b"\n")
    return h.hexdigest()


def records_sha256(rows: list[Any]) -> str | None:
    """sha256 of in-memory records, as canonical JSON (sorted keys); None when they
    cannot be serialised."""
    try:
        blob = json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        return None
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


# ---- splitmix64 -------------------------------------------------------------------------
#: splitmix64's increment (2**64 / golden ratio) and its two finaliser multipliers
GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)
MIX64_M1 = np.uint64(0xBF58476D1CE4E5B9)
MIX64_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (vectorised, wraps mod 2**64)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> _S30)) * MIX64_M1
        x = (x ^ (x >> _S27)) * MIX64_M2
        return x ^ (x >> _S31)


def combine64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Order-dependent combination of two hash arrays."""
    with np.errstate(over="ignore"):
        return mix64(np.asarray(a, np.uint64) * GOLDEN64 + np.asarray(b, np.uint64))
