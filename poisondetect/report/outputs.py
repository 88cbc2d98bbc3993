"""Machine-readable scan outputs: scores.csv, summary.json, findings.jsonl.

Schema (documented in README.md):
- ``scores.csv``: one row per pair, ordered by input row; columns ``row, turn, score, rank,
  flagged`` then ``<detector>_score`` for every detector that ran.
- ``summary.json``: :meth:`ScanResult.summary`; every trigger and finding also carries
  ``detector`` and a stable ``fingerprint`` (see :mod:`poisondetect.report.triage`), and
  with a baseline a ``baseline`` block and a ``new`` flag per trigger/finding.
- ``findings.jsonl``: the flagged pairs, most suspicious first, one JSON object per line
  with text and evidence (:meth:`ScanResult.pair_record`) plus ``flagged_by`` (detector
  ids whose own flag is set), ``pair_key`` (text identity, for diffs) and
  ``fingerprints`` (detector id -> triage fingerprint); with a baseline, ``new``.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .triage import result_items


def write_scores_csv(result: Any, path: str | os.PathLike) -> None:
    dets = list(result.results)
    rank = result.rank
    order = np.lexsort((result.pairs.turn, result.pairs.row))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["row", "turn", "score", "rank", "flagged"] + [f"{d}_score" for d in dets])
        for i in order:
            w.writerow([int(result.pairs.row[i]), int(result.pairs.turn[i]), f"{result.scores[i]:.6f}",
                        int(rank[i]), int(result.flagged[i])]
                       + [f"{result.results[d].scores[i]:.6f}" for d in dets])


def summary_with_fingerprints(result: Any, baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """:meth:`ScanResult.summary` plus ``detector``/``fingerprint`` on every finding."""
    s = result.summary()
    items = result_items(result)
    new_fps = None
    if baseline is not None:
        new_fps = set(baseline.get("new_trigger_fps", ())) | set(baseline.get("new_finding_fps", ()))
        s["baseline"] = {k: v for k, v in baseline.items() if not isinstance(v, list)}
    # summary()["triggers"] follows result.triggers, summary()["findings"] the non-trigger
    # findings in result order: the same order result_items uses.
    for rec, it in zip(s.get("triggers", []), items["triggers"]):
        rec.setdefault("detector", it["detector"])
        rec["fingerprint"] = it["fingerprint"]
        if new_fps is not None:
            rec["new"] = it["fingerprint"] in new_fps
    for rec, it in zip(s.get("findings", []), items["findings"]):
        rec = rec if isinstance(rec, dict) else {}
        rec.setdefault("detector", it["detector"])
        rec["fingerprint"] = it["fingerprint"]
        if new_fps is not None:
            rec["new"] = it["fingerprint"] in new_fps
    return s


def write_summary_json(result: Any, path: str | os.PathLike, baseline: dict[str, Any] | None = None) -> None:
    s = summary_with_fingerprints(result, baseline)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(s, f, indent=2, ensure_ascii=False, sort_keys=False, default=_json_default)
        f.write("\n")


def write_findings_jsonl(result: Any, path: str | os.PathLike, baseline: dict[str, Any] | None = None) -> int:
    new_pos = None if baseline is None else {int(i) for i in baseline.get("new_pair_positions", ())}
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for it in result_items(result)["pairs"]:
            i = it["position"]
            rec = result.pair_record(i)
            rec["flagged_by"] = sorted(it["fingerprints"])
            rec["pair_key"] = it["pair_key"]
            rec["fingerprints"] = it["fingerprints"]
            if new_pos is not None:
                rec["new"] = i in new_pos
            f.write(_jsonl_line(rec) + "\n")
            n += 1
    return n


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return repr(o)


def write_standard_outputs(result: Any, outdir: str | os.PathLike,
                           baseline: dict[str, Any] | None = None) -> dict[str, str]:
    """Write scores.csv, summary.json and findings.jsonl under ``outdir``.

    ``baseline`` (from :func:`poisondetect.report.triage.apply_baseline`) marks which
    findings are new; nothing is dropped from the files.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"scores": out / "scores.csv", "summary": out / "summary.json", "findings": out / "findings.jsonl"}
    write_scores_csv(result, paths["scores"])
    write_summary_json(result, paths["summary"], baseline)
    write_findings_jsonl(result, paths["findings"], baseline)
    return {k: str(v) for k, v in paths.items()}


_LINE_BREAKERS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"}


def _jsonl_line(rec: Any) -> str:
    """One JSON object on one line even for readers that split on Unicode line breaks
    (U+2028, U+2029, U+0085 are escaped; everything else stays UTF-8)."""
    line = json.dumps(rec, ensure_ascii=False, default=_json_default)
    for ch, esc in _LINE_BREAKERS.items():
        line = line.replace(ch, esc)
    return line
