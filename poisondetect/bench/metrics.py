"""Benchmark metrics: ranking quality, trigger recovery, false trigger reports, cost.

A reviewer reads tens to hundreds of flagged rows, so the headline numbers are recall
within the top n (the number poisoned), 2n and 1% of the data; precision@k; AUPRC and
AUROC (scikit-learn) over the whole ranking.
"""
from __future__ import annotations

import os
import re
import resource
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
)


def _order(scores: np.ndarray) -> np.ndarray:
    """Descending by score; ties broken by position (stable, deterministic)."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    return np.lexsort((np.arange(len(scores)), -scores))


def recall_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    if n_pos == 0:
        return float("nan")
    top = _order(scores)[: max(0, int(k))]
    return float(labels[top].sum() / n_pos)


def precision_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = max(1, int(k))
    top = _order(scores)[:k]
    return float(np.asarray(labels, dtype=bool)[top].sum() / len(top))


def auprc(scores: np.ndarray, labels: np.ndarray) -> float:
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return float("nan")
    return float(average_precision_score(labels, np.nan_to_num(scores, nan=0.0)))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, np.nan_to_num(scores, nan=0.0)))


def ranking_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """recall@n, recall@2n, recall@1%, precision@n, precision@2n, AUPRC, AUROC."""
    labels = np.asarray(labels, dtype=bool)
    n = int(labels.sum())
    k1 = max(1, int(round(0.01 * len(labels))))
    return {
        "recall@n": recall_at_k(scores, labels, n),
        "recall@2n": recall_at_k(scores, labels, 2 * n),
        "recall@1%": recall_at_k(scores, labels, k1),
        "precision@n": precision_at_k(scores, labels, n),
        "precision@2n": precision_at_k(scores, labels, 2 * n),
        "auprc": auprc(scores, labels),
        "auroc": auroc(scores, labels),
    }


def pr_curve(scores: np.ndarray, labels: np.ndarray, max_points: int = 400) -> dict[str, list[float]]:
    p, r, _ = precision_recall_curve(np.asarray(labels, dtype=bool), np.nan_to_num(scores, nan=0.0))
    if len(p) > max_points:
        idx = np.unique(np.linspace(0, len(p) - 1, max_points).astype(int))
        p, r = p[idx], r[idx]
    return {"precision": [float(x) for x in p], "recall": [float(x) for x in r]}


# --------------------------------------------------------------------------- triggers
_WS = re.compile(r"\s+")
_CP = re.compile(r"(?:U\+|\\u|\\U000|<U\+)([0-9A-Fa-f]{4,5})>?")
_EDGE_PUNCT = "\"'`“”‘’«»()[]{}<>"


def normalise_trigger(s: str) -> str:
    """Case-folded, NFC, whitespace-collapsed, edge quotes stripped.  Code-point notation
    (``U+200B``, ``\\u200b``) is decoded so a detector may report invisible characters
    either literally or by name."""
    s = _CP.sub(lambda m: chr(int(m.group(1), 16)), str(s))
    s = unicodedata.normalize("NFC", s).casefold()
    s = _WS.sub(" ", s).strip().strip(_EDGE_PUNCT).strip()
    return s


def trigger_matches(reported: str, truth: str) -> bool:
    """Exact match after normalisation; a single-character truth (invisible character,
    homoglyph) also matches when the reported trigger is made only of such characters
    and contains it.  (A reported conjunction is matched part by part: see
    :func:`trigger_parts`.)"""
    r, t = normalise_trigger(reported), normalise_trigger(truth)
    if not t:
        return False
    if r == t:
        return True
    # the same word tokens ("environment 95" for "Environment: 95": single punctuation
    # marks are not tokens of the lexical detectors)
    from ..text import token_strings
    tt = token_strings(t)
    if tt and any(ch.isalnum() for ch in t) and token_strings(r) == tt:
        return True
    structural = not any(ch.isalnum() for ch in t) or (len(t) == 1 and not t.isascii())
    if structural:
        # structural triggers: the reported string is the special characters themselves
        # invisible characters may be reported space-separated ("<U+FEFF> <U+200C>")
        r = r.replace(" ", "")
        return t in r and len(r) <= len(t) + 6
    return False


def trigger_parts(reported: dict[str, Any] | str) -> list[str]:
    """The strings to match against a planted trigger: a conjunction finding (CTBA,
    ``mode == "conjunction"``) names each of its terms in ``trigger_tokens``, and each
    counts; any other finding is its ``trigger``."""
    if isinstance(reported, dict):
        if reported.get("mode") == "conjunction" and reported.get("trigger_tokens"):
            return [" ".join(t) for t in reported["trigger_tokens"]]
        return [str(reported.get("trigger", ""))]
    return [str(reported)]


def trigger_recovery(reported: Sequence[dict[str, Any] | str], truth: Sequence[str], top: int = 3) -> dict[str, Any]:
    """Which ground-truth triggers appear among the top ``max(top, len(truth))`` reported
    triggers (in the scan's order).  Returns ``recovered`` (fraction), ``any`` (bool), and
    the matches."""
    if not truth:
        return {"recovered": None, "any": None, "matched": []}
    k = max(top, len(truth))
    top_k = list(reported)[:k]
    rep = [r.get("trigger", "") if isinstance(r, dict) else str(r) for r in top_k]
    parts = [p for r in top_k for p in trigger_parts(r)]
    matched = [t for t in truth if any(trigger_matches(p, t) for p in parts)]
    return {"recovered": len(matched) / len(truth), "any": bool(matched), "matched": matched,
            "top_reported": rep}


def false_trigger_reports(triggers: Sequence[dict[str, Any]], q: float = 0.05) -> int:
    """Number of reported triggers with q-value below ``q`` (run on an unpoisoned corpus)."""
    return sum(1 for t in triggers if float(t.get("q_value", 1.0)) < q)


# --------------------------------------------------------------------------- cost
def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _pss_mb(pid: int) -> float:
    """Proportional set size of one process (each shared page split among its sharers)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _pss_tree_mb() -> float:
    """Summed PSS of this process and its children: the memory a scan really holds when
    a forked worker shares pages with its parent (RSS would count those twice)."""
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        kids = []
    return _pss_mb(me) + sum(_pss_mb(k) for k in kids)


@dataclass
class Cost:
    wall_s: float = 0.0
    peak_rss_mb: float = float("nan")
    rss_before_mb: float = float("nan")
    peak_delta_mb: float = float("nan")
    ru_maxrss_mb: float = float("nan")
    peak_pss_tree_mb: float = float("nan")

    def to_dict(self) -> dict[str, float]:
        return {k: (round(v, 3) if isinstance(v, float) and v == v else v) for k, v in self.__dict__.items()
                if not (k == "peak_pss_tree_mb" and v != v)}  # (only measured with_children)


@contextmanager
def measure(interval: float = 0.02, with_children: bool = False) -> Iterator[Cost]:
    """Wall time and peak resident memory of a block.  numpy/torch allocations are
    invisible to tracemalloc, so a thread samples the process RSS (/proc/self/statm) and
    ``ru_maxrss`` is recorded as a cross-check (it is the process-lifetime peak).
    ``with_children`` also samples the summed PSS of the process and its children
    (``peak_pss_tree_mb``)."""
    cost = Cost()
    before = _rss_bytes()
    peak = [before or 0]
    pss_peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            v = _rss_bytes()
            if v is not None and v > peak[0]:
                peak[0] = v
            if with_children:
                pss_peak[0] = max(pss_peak[0], _pss_tree_mb())
            stop.wait(interval)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    try:
        yield cost
    finally:
        cost.wall_s = time.perf_counter() - t0
        stop.set()
        th.join()
        v = _rss_bytes()
        if v is not None:
            peak[0] = max(peak[0], v)
        if before is not None:
            cost.rss_before_mb = before / 2**20
            cost.peak_rss_mb = peak[0] / 2**20
            cost.peak_delta_mb = (peak[0] - before) / 2**20
        cost.ru_maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        if with_children:
            cost.peak_pss_tree_mb = pss_peak[0]
