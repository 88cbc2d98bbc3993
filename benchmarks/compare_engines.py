"""The Ray engine against the local engine on a scale set, row for row.

    python benchmarks/bench_scale.py build --n 300000 --attack ctba
    python benchmarks/compare_engines.py --n 300000 --attack ctba

Runs the same streamed scan twice on ``benchmarks/_work/scale_{n}_{attack}_s0.jsonl``: the
local engine (``--jobs`` worker processes) and Ray Data on a local Ray instance (shards of
``--chunk-size`` pairs, Ray batches of ``--batch-size``, so batches differ from the local
chunks).  Detectors: the n-gram detector above its sample size (so the sample sketch, the
verify pass and the scoring pass all run on the Ray workers), ``structural_unicode``
(mergeable) and ``secrets_pii`` (per-row).  Checks that every detector's scores, flags and
evidence, the fused scores, the ranking and the triggers are identical, and writes
``benchmarks/results/engines_{n}_{attack}.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DETECTORS = ["ngram_trigger", "structural_unicode", "secrets_pii"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--attack", default="ctba")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk-size", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=15_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    path = HERE / "_work" / f"scale_{args.n}_{args.attack}_s{args.seed}.jsonl"
    if not path.exists():
        print(f"{path} not found: build it with bench_scale.py build --n {args.n} --attack {args.attack}; skipping")
        return
    try:
        import ray
    except ImportError:
        print("ray not installed (pip install 'ray[data]'); skipping")
        return
    from poisondetect.engine import scan_streaming

    t = time.perf_counter()
    local = scan_streaming(str(path), detectors=DETECTORS, embedding={"mode": "none"}, chunk_size=args.chunk_size,
                           n_jobs=args.jobs, random_state=args.seed)
    t_local = time.perf_counter() - t
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    t = time.perf_counter()
    dist = scan_streaming(str(path), detectors=DETECTORS, embedding={"mode": "none"}, chunk_size=args.chunk_size,
                          engine="ray", random_state=args.seed,
                          ray_options={"batch_size": args.batch_size, "shutdown": False})
    t_ray = time.perf_counter() - t
    ray.shutdown()

    same = {}
    for d in DETECTORS:
        a, b = local.results[d], dist.results[d]
        same[d] = bool(np.array_equal(a.scores, b.scores) and np.array_equal(a.flags, b.flags)
                       and a.evidence == b.evidence)
    same["fused_scores"] = bool(np.array_equal(local.scores, dist.scores))
    same["order"] = bool(np.array_equal(local.order, dist.order))
    same["triggers"] = json.dumps(local.triggers, sort_keys=True) == json.dumps(dist.triggers, sort_keys=True)
    out = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "command": " ".join(["python", "benchmarks/compare_engines.py"] + sys.argv[1:]),
        "n": int(local.n_pairs), "attack": args.attack, "detectors": DETECTORS,
        "local": {"wall_s": round(t_local, 1), "jobs": args.jobs, "chunk_size": args.chunk_size},
        "ray": {"wall_s": round(t_ray, 1), "batch_size": args.batch_size,
                "n_shards": dist.load_info["streaming"]["n_shards"]},
        "n_flagged": int(local.flagged.sum()),
        "triggers": [t.get("trigger") for t in local.triggers],
        "ngram_sampled": local.results["ngram_trigger"].summary.get("sampled"),
        "identical": same,
        "all_identical": all(same.values()),
    }
    os.makedirs(args.out, exist_ok=True)
    dest = Path(args.out) / f"engines_{args.n}_{args.attack}.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
