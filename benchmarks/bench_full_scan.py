"""A full default scan (every detector, auto embeddings) of the harness's clean 50k mix:
wall time, peak RSS and the time of each stage.  Run it on an otherwise idle machine.

    python benchmarks/bench_full_scan.py [--data-dir ../shared/data] [--n-pairs 50000] [--jobs 2] [--out benchmarks/results]

``--jobs 2`` (the CLI's default from 5,000 pairs) runs the text-only detectors in a forked
worker; peak RSS is then reported for the main process and the worker (the worker's
figure counts the pages it shares with its parent, so the sum overstates the total).

The first run also fills the embedding cache (static model; the harm model's MiniLM
re-scoring of ~1,000 candidate requests); the figure reported is the *second*, cached run,
which is what a re-scan costs.  Writes full_scan_<n>.json/.md.  Skips (exit 0) without the
shared data.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from poisondetect.bench import metrics as M  # noqa: E402
from _common import data_root, parser  # noqa: E402
from poisondetect.bench.data import build_mix  # noqa: E402
from poisondetect.pipeline import scan  # noqa: E402


def main() -> None:
    ap = parser(__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=1, choices=(1, 2))
    args = ap.parse_args()
    d = data_root(args.data_dir)
    if d is None:
        return
    pairs = build_mix(d, args.n_pairs, 0)
    runs = []
    with M.measure(interval=0.25, with_children=True) as cost:
        for _ in range(2):
            t = time.perf_counter()
            res = scan(pairs, random_state=0, n_jobs=args.jobs)
            runs.append((time.perf_counter() - t, res.timings))
    wall, timings = runs[-1]
    pss_peak = cost.peak_pss_tree_mb
    out = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "command": "python " + " ".join(sys.argv),
        "n_pairs": len(pairs),
        "first_run_wall_s": round(runs[0][0], 1),
        "wall_s": round(wall, 1),
        "n_jobs": args.jobs,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_pss_all_processes_mb": round(pss_peak),
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024) if args.jobs > 1 else 0,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "stages_s": {k: round(v, 2) for k, v in sorted(timings.items(), key=lambda kv: -kv[1]) if v >= 0.05},
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    stem = Path(args.out) / (f"full_scan_{len(pairs)}" + (f"_jobs{args.jobs}" if args.jobs > 1 else ""))
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1))
    rows = "\n".join(f"| {k} | {v} |" for k, v in out["stages_s"].items())
    stem.with_suffix(".md").write_text(
        f"# Full default scan, {len(pairs)} pairs\n\n- date: {out['date']}\n- machine: {out['machine']}\n"
        f"- command: `{out['command']}`\n- wall (cached second run): **{out['wall_s']} s**; first run "
        f"{out['first_run_wall_s']} s; processes: {args.jobs}; peak RSS of the main process (both runs, data "
        f"included): **{out['peak_rss_mb']} MB**"
        + (f"; of the worker: **{out['worker_peak_rss_mb']} MB** (pages shared with the parent counted)"
           if args.jobs > 1 else "")
        + f"; summed PSS of all its processes (sampled every 0.25 s), peak: **{out['peak_pss_all_processes_mb']} MB**"
        + f"; load average at the end: {out['load_avg_1m']}\n\n"
        f"| stage | seconds |\n|---|---|\n{rows}\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
