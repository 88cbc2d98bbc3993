"""Scan engines for inputs too large to hold in memory.

    from poisondetect.engine import scan_streaming
    res = scan_streaming("big.jsonl", chunk_size=20_000, engine="local")   # or engine="ray"

``scan_streaming`` returns the same :class:`~poisondetect.pipeline.ScanResult` as
:func:`poisondetect.pipeline.scan`.  :func:`streaming_support` says how each detector
runs on a stream (``mergeable``, ``per_row`` or ``global``).
"""
from __future__ import annotations

from .local import UNSUPPORTED_POLICIES, scan_streaming, streaming_mode, streaming_support

__all__ = ["scan_streaming", "streaming_mode", "streaming_support", "UNSUPPORTED_POLICIES"]
