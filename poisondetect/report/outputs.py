"""Machine-readable scan outputs: scores.csv, summary.json, findings.jsonl.

Schema (documented in README.md):
- ``scores.csv``: one row per pair, ordered by input row; columns ``row, turn, score, rank,
  flagged`` then ``<detector>_score`` for every detector that ran.
- ``summary.json``: :meth:`ScanResult.summary`.
- ``findings.jsonl``: the flagged pairs, most suspicious first, one JSON object per line
  with text and evidence (:meth:`ScanResult.pair_record`).
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


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


def write_summary_json(result: Any, path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result.summary(), f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")


def write_findings_jsonl(result: Any, path: str | os.PathLike) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in result.order:
            if not result.flagged[i]:
                continue
            f.write(json.dumps(result.pair_record(int(i)), ensure_ascii=False) + "\n")
            n += 1
    return n


def write_standard_outputs(result: Any, outdir: str | os.PathLike) -> dict[str, str]:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"scores": out / "scores.csv", "summary": out / "summary.json", "findings": out / "findings.jsonl"}
    write_scores_csv(result, paths["scores"])
    write_summary_json(result, paths["summary"])
    write_findings_jsonl(result, paths["findings"])
    return {k: str(v) for k, v in paths.items()}
