"""Paired speed check of two source trees (e.g. before and after a refactor) in one run.

The runs alternate A, B, A, B, ... in fresh processes, so drift of this noisy machine falls
on both.  Each run imports poisondetect from its tree (``PYTHONPATH``), builds the same
mix from the shared data and times one workload:

- ``ngram``: the n-gram detector alone on the mix (compiled kernels);
- ``scan``: the full default scan (every default detector) with the given embedding mode;
- ``detector``: one detector through the scan, ``scan(pairs, detectors=[ID],
  embedding={"mode": "none"})`` (``--detector ID``).

    python benchmarks/bench_paired.py --trees /tmp/base . --what ngram --n 50000 --repeat 3 \\
        --data-dir ../shared/data --out benchmarks/results/paired_ngram

Writes ``<out>.json`` and ``<out>.md`` (per run wall seconds, medians, B/A ratio).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

_CHILD = r"""
import json, sys, time
from poisondetect.bench.data import build_mix
pairs = build_mix(sys.argv[1], int(sys.argv[2]), 0)
what, emb, det = sys.argv[3], sys.argv[4], sys.argv[5]
if what == "ngram":
    from poisondetect.detectors.ngram_trigger import NgramTriggerDetector
    NgramTriggerDetector(engine="numba").run(pairs.take(list(range(min(len(pairs), 2000)))), None)  # warm numba
    t = time.perf_counter()
    r = NgramTriggerDetector(engine="numba").run(pairs, None)
    out = {"wall_s": time.perf_counter() - t, "findings": len(r.findings)}
elif what == "detector":
    from poisondetect.pipeline import scan
    t = time.perf_counter()
    r = scan(pairs, detectors=[det], embedding={"mode": "none"}, random_state=0)
    out = {"wall_s": time.perf_counter() - t, "flagged": int(r.results[det].flags.sum()),
           "n_findings": len(r.results[det].findings), "detector_s": r.timings.get(f"detector:{det}")}
else:
    from poisondetect.pipeline import scan
    t = time.perf_counter()
    r = scan(pairs, embedding={"mode": emb}, random_state=0)
    out = {"wall_s": time.perf_counter() - t, "flagged": int(r.flagged.sum())}
import poisondetect
out["module"] = poisondetect.__file__
print(json.dumps(out))
"""


def run_one(tree: Path, data: str, n: int, what: str, emb: str, detector: str = "") -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()))
    p = subprocess.run([sys.executable, "-c", _CHILD, data, str(n), what, emb, detector or "-"], env=env, cwd=str(tree),
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trees", nargs=2, required=True, metavar=("A", "B"))
    ap.add_argument("--what", choices=("ngram", "scan", "detector"), default="ngram")
    ap.add_argument("--detector", default=None, help="detector id for --what detector")
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--embedding", default="static")
    ap.add_argument("--data-dir", default=os.environ.get("POISONDETECT_DATA", "../shared/data"))
    ap.add_argument("--warmup", action="store_true", help="one untimed run per tree first (disk and model caches)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not Path(args.data_dir).is_dir():
        print(f"shared data not found at {args.data_dir}: pass --data-dir or set POISONDETECT_DATA", file=sys.stderr)
        return 2
    if args.what == "detector" and not args.detector:
        print("--what detector needs --detector ID", file=sys.stderr)
        return 2
    trees = [Path(t) for t in args.trees]
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    if args.warmup:
        for tree in trees:
            print("warm-up", json.dumps(run_one(tree, args.data_dir, args.n, args.what, args.embedding, args.detector)), flush=True)
    for k in range(args.repeat):
        for name, tree in (("A", trees[0]), ("B", trees[1])) if k % 2 == 0 else (("B", trees[1]), ("A", trees[0])):
            r = run_one(tree, args.data_dir, args.n, args.what, args.embedding, args.detector or "")
            runs[name].append(r)
            print(name, json.dumps(r), flush=True)
    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
           "command": "python " + " ".join(sys.argv), "trees": {"A": args.trees[0], "B": args.trees[1]},
           "what": args.what, "detector": args.detector, "n": args.n, "embedding": args.embedding, "runs": runs,
           "median_s": med, "ratio_B_over_A": med["B"] / med["A"]}
    print(json.dumps({"median_s": med, "ratio_B_over_A": round(res["ratio_B_over_A"], 3)}))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(res, indent=1))
        title = f"detector {args.detector}" if args.what == "detector" else args.what
        lines = [f"# Paired speed: {title}, {args.n} pairs", "",
                 f"- date: {res['date']}", f"- machine: {res['machine']}", f"- command: `{res['command']}`",
                 f"- A = `{args.trees[0]}`, B = `{args.trees[1]}`; runs alternate A/B in fresh processes", "",
                 "| run | A wall s | B wall s |", "|---|---|---|"]
        if args.what == "detector":  # the detector's own time (scan timings) next to the wall time
            lines[-2:] = ["| run | A wall s | B wall s | A detector s | B detector s |", "|---|---|---|---|---|"]
        for i, (a, b) in enumerate(zip(runs["A"], runs["B"])):
            row = f"| {i + 1} | {a['wall_s']:.2f} | {b['wall_s']:.2f} |"
            if args.what == "detector":
                row += f" {a.get('detector_s') or float('nan'):.2f} | {b.get('detector_s') or float('nan'):.2f} |"
            lines.append(row)
        lines += ["", f"Median A {med['A']:.2f} s, B {med['B']:.2f} s: **B/A = {res['ratio_B_over_A']:.3f}**", ""]
        out.with_suffix(".md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
