"""A full default scan (every detector, auto embeddings) of the harness's clean 50k mix:
wall time, peak RSS and the time of each stage.  Run it on an otherwise idle machine.

    python benchmarks/bench_full_scan.py [--data-dir ../shared/data] [--n-pairs 50000] [--out benchmarks/results]

The first run also fills the embedding cache (static model; the harm model's MiniLM
re-scoring of ~1,000 candidate requests); the figure reported is the *second*, cached run,
which is what a re-scan costs.  Writes full_scan_<n>.json/.md.  Skips (exit 0) without the
shared data.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from poisondetect.bench.data import build_mix, find_data_dir  # noqa: E402
from poisondetect.pipeline import scan  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir")
    ap.add_argument("--n-pairs", type=int, default=50_000)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    d = find_data_dir(args.data_dir)
    if d is None:
        print("shared data not found: pass --data-dir or set POISONDETECT_DATA; skipping")
        return
    pairs = build_mix(d, args.n_pairs, 0)
    runs = []
    for _ in range(2):
        t = time.perf_counter()
        res = scan(pairs, random_state=0)
        runs.append((time.perf_counter() - t, res.timings))
    wall, timings = runs[-1]
    out = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "command": "python " + " ".join(sys.argv),
        "n_pairs": len(pairs),
        "first_run_wall_s": round(runs[0][0], 1),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "stages_s": {k: round(v, 2) for k, v in sorted(timings.items(), key=lambda kv: -kv[1]) if v >= 0.05},
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    stem = Path(args.out) / f"full_scan_{len(pairs)}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1))
    rows = "\n".join(f"| {k} | {v} |" for k, v in out["stages_s"].items())
    stem.with_suffix(".md").write_text(
        f"# Full default scan, {len(pairs)} pairs\n\n- date: {out['date']}\n- machine: {out['machine']}\n"
        f"- command: `{out['command']}`\n- wall (cached second run): **{out['wall_s']} s**; first run "
        f"{out['first_run_wall_s']} s; peak RSS of the process (both runs, data included): "
        f"**{out['peak_rss_mb']} MB**; load average at the end: {out['load_avg_1m']}\n\n"
        f"| stage | seconds |\n|---|---|\n{rows}\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
