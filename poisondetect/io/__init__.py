"""Loading instruction datasets (JSON, JSONL, CSV/TSV, Parquet, HF datasets; Alpaca,
Dolly, GPTeacher, prompt/completion, ShareGPT, OpenAI messages, chat-template text) into
:class:`~poisondetect.types.Pairs`, and writing subsets of the input back byte-for-byte.

    from poisondetect.io import load, write_subset, write_split
    ld = load("data.jsonl")            # -> LoadedDataset
    ld.pairs, ld.info()
    write_split(ld, flagged_rows, "clean.jsonl", "quarantine.jsonl")
"""
from __future__ import annotations

from .formats import RawRecord
from .layouts import LAYOUT_NAMES
from .loader import LoadedDataset, PairStream, iter_records, load
from .writers import write_split, write_subset

__all__ = ["load", "LoadedDataset", "PairStream", "write_subset", "write_split", "iter_records", "RawRecord", "LAYOUT_NAMES"]
