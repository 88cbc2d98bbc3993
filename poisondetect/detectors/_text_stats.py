"""The text-only shared statistics a scan may compute in its side process.

Each is a function of the pairs' text alone (no embeddings, no other detector's output),
memoised under a fixed key of :class:`~poisondetect.context.ScanContext`.  A detector
names those it reads in ``Detector.text_statistics``; ``scan(n_jobs=2)`` computes them
in its forked worker while the main process embeds and runs the detectors that need
none of them, and hands the values over unchanged (same functions, same inputs), so the
results are the same as with one process.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..types import Pairs
from ._hostility import shared_hostility
from ._insecure_code import shared_insecure_code
from ._refusal import shared_refusal

#: statistic -> (function(pairs, ctx) filling it, the context keys it fills)
TEXT_STATISTICS: dict[str, tuple[Callable[[Pairs, Any], Any], tuple[str, ...]]] = {
    "refusal": (shared_refusal, ("refusal_scores",)),
    "hostility": (shared_hostility, ("hostility_scores",)),
    "insecure_code": (shared_insecure_code, ("insecure_code_issues", "python_snippets")),
}


def keys_of(names: Iterable[str]) -> frozenset[str]:
    """The context keys the named statistics fill (an unknown name is a ValueError)."""
    out: set[str] = set()
    for n in names:
        if n not in TEXT_STATISTICS:
            raise ValueError(f"unknown text statistic {n!r}; known: {', '.join(TEXT_STATISTICS)}")
        out.update(TEXT_STATISTICS[n][1])
    return frozenset(out)


def compute(pairs: Pairs, ctx: Any, names: Iterable[str]) -> dict[str, Any]:
    """Compute the named statistics in ``ctx`` (in the table's order) and return
    {context key: value} of every key they fill."""
    want = set(names)
    for n, (fn, _keys) in TEXT_STATISTICS.items():
        if n in want:
            fn(pairs, ctx)
    return {k: ctx.shared(k, lambda: None) for k in keys_of(want)}
