"""Recompute trigger recovery of a finished harness run from the triggers it recorded
(``trigger_top_reported`` of each run), with the current matcher of
:mod:`poisondetect.bench.metrics`, and rewrite its .md/.json.  For runs that finished
before a fix of the matcher; nothing is re-scanned.

    python benchmarks/rescore_triggers.py benchmarks/results/harness_full.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from poisondetect.bench import metrics as M  # noqa: E402
from poisondetect.bench.harness import BenchConfig, write_outputs  # noqa: E402


def main(path: str) -> None:
    p = Path(path)
    res = json.loads(p.read_text())
    changed = 0
    for run in res.get("runs", []):
        truth = run.get("truth", {}).get("triggers") or []
        if not truth:
            continue
        rec = M.trigger_recovery(run.get("trigger_top_reported", []), truth, top=3)["recovered"]
        if rec != run.get("trigger_recovery"):
            changed += 1
            run["trigger_recovery"] = rec
    res.setdefault("notes", []).append("trigger recovery recomputed from the recorded reported triggers "
                                       "by benchmarks/rescore_triggers.py (conjunction parts and word-token "
                                       "matches count)")
    cfg = BenchConfig(**{k: v for k, v in res["config"].items() if k in BenchConfig.__dataclass_fields__})
    cfg.out = str(p.parent)
    cfg.plots = False
    write_outputs(res, cfg)
    print(f"{changed} runs changed; rewrote {p}")


if __name__ == "__main__":
    main(sys.argv[1])
