"""Input files: naming, sniffing, opening and decoding.

The format from the file name or its first bytes, the compression from its magic bytes
(gzip, bz2, xz; zstd is refused), a binary stream over the decompressed bytes, and
UTF-8 decoding that names the line of a bad byte.  Read and decompression errors
become :class:`~poisondetect.errors.InputError`.  The record readers built on these are
in :mod:`poisondetect.io.formats`; file digests are in :mod:`poisondetect.hashing`.
"""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import zlib
from typing import Iterator

from ..errors import InputError

BOM = b"\xef\xbb\xbf"
#: what ``json.loads`` raises on bad input (JSONDecodeError is a ValueError; so is the int-digit limit)
JSON_ERRORS = (ValueError, RecursionError)
#: what reading a corrupt or truncated compressed stream raises
DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)

#: file extension -> format
EXT_FORMAT = {
    ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonlines": "jsonl",
    ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
}
COMPRESSION_EXT = (".gz", ".gzip", ".bz2", ".xz")


def sniff_compression(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise InputError(f"cannot read the file: {e.strerror or e}", path=path) from None
    if magic.startswith(b"\x1f\x8b"):
        return "gzip"
    if magic.startswith(b"BZh"):
        return "bz2"
    if magic.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        raise InputError("zstd-compressed input is not supported; decompress it first", path=path)
    return None


def open_binary(path: str, compression: str | None):
    try:
        if compression == "gzip":
            return gzip.open(path, "rb")
        if compression == "bz2":
            return bz2.open(path, "rb")
        if compression == "xz":
            return lzma.open(path, "rb")
        return open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot read the file: {e.strerror or e}", path=path) from None


def iter_lines(fh, path: str) -> Iterator[bytes]:
    """Binary lines of a (possibly compressed) stream; decompression errors -> InputError."""
    try:
        for raw in fh:
            yield raw
    except DECOMPRESS_ERRORS as e:
        raise InputError(f"cannot read the file (corrupt or truncated compressed data?): {e}", path=path) from None


def read_all(path: str, compression: str | None) -> bytes:
    with open_binary(path, compression) as fh:
        try:
            return fh.read()
        except DECOMPRESS_ERRORS as e:
            raise InputError(f"cannot read the file (corrupt or truncated compressed data?): {e}",
                             path=path) from None


def check_utf16(head: bytes, path: str) -> None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("the file is UTF-16 encoded; convert it to UTF-8", path=path, line=1)


def decode_utf8(data: bytes, path: str) -> str:
    """Decode a whole buffer as UTF-8 (a leading BOM is dropped); errors name the line."""
    check_utf16(data[:2], path)
    if data.startswith(BOM):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(f"invalid UTF-8 (byte 0x{data[e.start]:02x} at column {col}); "
                         "the input must be UTF-8", path=path, line=line) from None


def format_from_name(path: str) -> str | None:
    low = path.lower()
    for ext in COMPRESSION_EXT:
        if low.endswith(ext):
            low = low[: -len(ext)]
            break
    return EXT_FORMAT.get(os.path.splitext(low)[1])


def sniff_format(path: str, compression: str | None) -> str | None:
    with open_binary(path, compression) as fh:
        try:
            head = fh.read(4096)
        except DECOMPRESS_ERRORS as e:
            raise InputError(f"cannot read the file (corrupt compressed data?): {e}", path=path) from None
    if head.startswith(b"PAR1"):
        return "parquet"
    h = head[3:] if head.startswith(BOM) else head
    h = h.lstrip()
    if h.startswith(b"["):
        return "json"
    if h.startswith(b"{"):
        first = h.split(b"\n", 1)[0].strip()
        try:
            json.loads(first)
            return "jsonl" if b"\n" in h.strip() else "json"
        except JSON_ERRORS:
            return "json"
    return None


def block_lines(fh, path: str, block: int = 1 << 22) -> Iterator[bytes]:
    """Lines (with their b"\n") read in large blocks: much less per-line overhead than
    readline on a compressed stream."""
    rest = b""
    try:
        while True:
            chunk = fh.read(block)
            if not chunk:
                break
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            for p in parts:
                yield p + b"\n"
    except DECOMPRESS_ERRORS as e:
        raise InputError(f"cannot read the file (corrupt or truncated compressed data?): {e}", path=path) from None
    if rest:
        yield rest
