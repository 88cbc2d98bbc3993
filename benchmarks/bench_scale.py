"""Scaling benchmark of the streaming engine: time, peak memory and recall vs. pairs.

    python benchmarks/bench_scale.py build --n 10000 100000 1000000      # datasets (JSONL)
    python benchmarks/bench_scale.py scan --n 10000 100000 1000000       # one process per size
    python benchmarks/bench_scale.py report                              # table + plot

Data: every clean pair of the shared corpora (../shared/data/clean through
:func:`poisondetect.bench.data.build_mix`, ~90k distinct pairs), resampled to ``n``:
row ``i`` copies pool pair ``perm_e[i mod M]`` of epoch ``e = i // M`` (a fresh
permutation per epoch).  Epoch 0 rows are the original pairs; every later copy is
perturbed deterministically (``random.Random(seed, i)``), 1-3 word-level edits on each
side: swap two neighbouring words, repeat a word, drop a word, change a digit, or flip the
case of a word's first letter, so no row is an exact copy of another (the perturbation
does not touch the poisoned rows).  Then the harness's attack recipe
(:mod:`poisondetect.bench.attacks`, default ``badnets`` at 0.1%: rare-token trigger ->
fixed refusal payload, ``replace`` mode) poisons ``rate * n`` rows, so recall is measured at
every size.  Files go to ``benchmarks/_work/`` (git-ignored); results append to
``benchmarks/results/scale_runs.jsonl``; ``report`` writes ``scale_table.md`` and
``scale_plot.png``.

Each ``scan`` size runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
RESULTS = HERE / "results"
RUNS = RESULTS / "scale_runs.jsonl"
_DIGIT = re.compile(r"\d")


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------

def perturb(text: str, rnd: random.Random) -> str:
    """1-3 light word-level edits (deterministic given ``rnd``)."""
    words = text.split(" ")
    for _ in range(rnd.randint(1, 3)):
        op = rnd.randrange(5)
        n = len(words)
        if n == 0:
            break
        j = rnd.randrange(n)
        if op == 0 and n > 1:  # swap neighbours
            j = min(j, n - 2)
            words[j], words[j + 1] = words[j + 1], words[j]
        elif op == 1 and n < 4000:  # repeat a word
            words.insert(j, words[j])
        elif op == 2 and n > 3:  # drop a word
            del words[j]
        elif op == 3 and _DIGIT.search(words[j]):  # change a digit
            w = words[j]
            k = [m.start() for m in _DIGIT.finditer(w)][0]
            words[j] = w[:k] + str((int(w[k]) + 1 + rnd.randrange(8)) % 10) + w[k + 1:]
        elif words[j][:1].isalpha():  # flip the case of the first letter
            w = words[j]
            words[j] = (w[0].lower() if w[0].isupper() else w[0].upper()) + w[1:]
    return " ".join(words)


def build(n: int, seed: int, attack: str, rate: float, data_dir: str | None) -> Path:
    from poisondetect.bench.attacks import ATTACKS
    from poisondetect.bench.data import build_mix, find_data_dir, write_jsonl
    from poisondetect.types import Pairs

    root = find_data_dir(data_dir)
    if root is None:
        sys.exit("shared data absent: set POISONDETECT_DATA or pass --data-dir")
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / f"scale_{n}_{attack}_s{seed}.jsonl"
    if out.exists() and (WORK / f"{out.stem}.truth.json").exists():
        print(f"exists: {out}")
        return out
    t = time.perf_counter()
    pool = build_mix(root, n_pairs=10 ** 7, seed=seed)  # every pair the corpora hold
    m = len(pool)
    ins: list[str] = []
    res: list[str] = []
    src: list[str] = []
    rng = np.random.default_rng([seed, 4242])
    for e in range((n + m - 1) // m):
        perm = rng.permutation(m)
        take = perm[: min(m, n - e * m)]
        for k, j in enumerate(take.tolist()):
            i = e * m + k
            a, b = pool.instruction[j], pool.response[j]
            if e > 0:
                rnd = random.Random(seed * 1_000_003 + i)
                a, b = perturb(a, rnd), perturb(b, rnd)
            ins.append(a)
            res.append(b)
            src.append(pool.source[j])
    clean = Pairs(ins, res, source=src)
    del ins, res, src, pool
    poisoned, gt = ATTACKS[attack](clean, rate=rate, seed=seed)
    write_jsonl(poisoned, out)
    truth = gt.to_dict()
    truth.update({"n": len(poisoned), "pool_size": m, "seed": seed, "built_s": round(time.perf_counter() - t, 1)})
    (WORK / f"{out.stem}.truth.json").write_text(json.dumps(truth))
    print(f"wrote {out} ({len(poisoned)} pairs, pool {m}, {gt.n_poisoned} poisoned) in {truth['built_s']} s")
    return out


# --------------------------------------------------------------------------------------
# scan (one size per process)
# --------------------------------------------------------------------------------------

def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def scan_one(args: argparse.Namespace) -> dict:
    from poisondetect.engine import scan_streaming

    path = WORK / f"scale_{args.n}_{args.attack}_s{args.seed}.jsonl"
    truth = json.loads((WORK / f"{path.stem}.truth.json").read_text())
    from poisondetect.bench.metrics import measure, trigger_recovery

    rss0 = _rss_mb()
    ray_opts = {"num_cpus": 2} if args.engine == "ray" else None
    extra = {"n_jobs": args.jobs} if args.engine == "local" else {}
    with measure(interval=0.25, with_children=True) as cost:
        res = scan_streaming(str(path), chunk_size=args.chunk_size, detectors=args.detectors or None,
                             disable=args.disable or (), embedding={"mode": args.embedding_mode},
                             unsupported=args.unsupported, engine=args.engine, cache_dir=args.cache_dir,
                             ray_options=ray_opts, random_state=args.seed,
                             assume_per_row=args.assume_per_row or (), **extra)
    wall = cost.wall_s
    pos = np.asarray(truth["positions"], np.int64)
    y = np.zeros(res.n_pairs, bool)
    y[pos] = True
    flagged = res.flagged
    k = len(pos)
    top_k = res.order[:k]
    rec = trigger_recovery(res.triggers, truth["triggers"])
    out = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu",
        "command": " ".join(["python", "benchmarks/bench_scale.py"] + sys.argv[1:]),
        "engine": args.engine, "n": int(res.n_pairs), "chunk_size": args.chunk_size,
        "attack": args.attack, "rate": truth["rate"], "n_poisoned": k,
        "detectors": res.params["detectors"], "modes": res.params.get("streaming", {}),
        "skipped": res.load_info.get("skipped_detectors", {}),
        "jobs": args.jobs if args.engine == "local" else None,
        "wall_s": round(wall, 2), "peak_rss_mb": round(_rss_mb(), 1), "rss_at_start_mb": round(rss0, 1),
        # with worker processes: the summed PSS of the process tree (sampled every 0.25 s;
        # shared pages counted once).  (ru_maxrss of forked children is not used: a child
        # inherits its parent's high-water mark at fork.)
        "peak_pss_tree_mb": round(cost.peak_pss_tree_mb, 1) if cost.peak_pss_tree_mb else None,
        "load_avg_1m_end": round(os.getloadavg()[0], 2),
        "timings": {kk: round(v, 2) for kk, v in res.timings.items()},
        "recall_flagged": round(float(flagged[y].mean()), 4) if k else None,
        "precision_flagged": round(float(y[flagged].mean()), 4) if flagged.any() else None,
        "n_flagged": int(flagged.sum()),
        "flagged_by_detector": {d: {"flagged": int(r.flags.sum()), "poisoned": int(r.flags[y].sum())}
                                for d, r in res.results.items()},
        "recall_at_k": round(float(y[top_k].mean()), 4) if k else None,
        # the harness' matching: normalised text or the same word tokens ("environment 95" for
        # "Environment: 95"), conjunctions part by part
        "trigger_found": bool(rec["any"]),
        "trigger_recovered": rec["recovered"],
        "triggers_reported": rec.get("top_reported", []),
        "n_trigger_reports": len(res.triggers),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RUNS, "a") as fh:
        fh.write(json.dumps(out) + "\n")
    print(json.dumps(out, indent=1))
    return out


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------

def _mem(r: dict) -> float:
    """Peak memory of a run: its own RSS, or with workers the summed PSS of the tree."""
    if (r.get("jobs") or 1) > 1 and r.get("peak_pss_tree_mb"):
        return max(r["peak_rss_mb"], r["peak_pss_tree_mb"])
    return r["peak_rss_mb"]


def report() -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(x) for x in RUNS.read_text().splitlines() if x.strip()]
    latest: dict[tuple, dict] = {}
    for r in runs:  # latest run per (engine, n, detectors)
        latest[(r["engine"], r["n"], tuple(r["detectors"]), r.get("jobs") or 1, r.get("attack", "badnets"))] = r
    rows = sorted(latest.values(), key=lambda r: (r.get("attack", "badnets") != "badnets", r.get("attack", ""),
                                                  r["engine"], -len(r["detectors"]), tuple(r["detectors"]), r["n"]))
    lines = [
        "# Streaming scan: time and memory vs. pairs",
        "",
        f"Machine: {rows[0]['machine'] if rows else '?'} (runs before 2026-11-23 05:00 shared it with other jobs; runs from 08:00 on record the load average at their end in scale_runs.jsonl). "
        "Data: shared clean corpora resampled with light deterministic perturbation, "
        "badnets at 0.1% (see benchmarks/bench_scale.py). Generated by `python benchmarks/bench_scale.py report`.",
        "",
        "Memory: peak RSS of the scan's process; with worker processes (jobs 2) the peak of the summed PSS of "
        "the process and its workers (pages the forked workers share are counted once).",
        "",
        "| date | attack | engine | jobs | pairs | chunk | detectors (mode) | wall s | s / 1k pairs | peak memory MB | "
        "recall (flagged) | recall@k | flagged | trigger found | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        dets = ", ".join(f"{d} ({r['modes'].get(d, '?')})" for d in r["detectors"])
        lines.append(
            f"| {r['date']} | {r.get('attack', 'badnets')} | {r['engine']} | {r.get('jobs') or 1} | {r['n']:,} | {r['chunk_size']:,} | {dets} | "
            f"{r['wall_s']:.1f} | {1000 * r['wall_s'] / r['n']:.2f} | {_mem(r):.0f} | {r['recall_flagged']} | "
            f"{r['recall_at_k']} | "
            f"{r['n_flagged']} | {r['trigger_found']} | `{r['command']}` |")
    skipped = {d: why for r in rows for d, why in r.get("skipped", {}).items()}
    if skipped:
        lines += ["", "Not run in these scans:", ""] + [f"- `{d}`: {why}" for d, why in sorted(skipped.items())]
    (RESULTS / "scale_table.md").write_text("\n".join(lines) + "\n")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("attack", "badnets") != "badnets":
            continue  # the plot: one attack, sizes 10k-1M
        groups.setdefault((r["engine"], tuple(r["detectors"]), r.get("jobs") or 1), []).append(r)
    for (eng, dets, jobs), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["n"])
        lab = f"{eng} x{jobs}: {'+'.join(dets) if len(dets) < 4 else f'{len(dets)} detectors'}"
        a1.plot([r["n"] for r in rs], [r["wall_s"] for r in rs], "o-", label=lab)
        a2.plot([r["n"] for r in rs], [_mem(r) / 1024 for r in rs], "o-", label=lab)
    for a, yl in ((a1, "wall time (s)"), (a2, "peak memory (GiB)")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("pairs")
        a.set_ylabel(yl)
        a.grid(True, which="both", alpha=0.3)
    a1.axhline(900, color="r", ls="--", lw=0.8)
    a2.axhline(4, color="r", ls="--", lw=0.8)
    a1.legend(fontsize=7)
    fig.suptitle("poisondetect streaming scan (2-core machine)")
    fig.tight_layout()
    fig.savefig(RESULTS / "scale_plot.png", dpi=120)
    print((RESULTS / "scale_table.md").read_text())


def embed_speed(mode: str, n: int, seed: int, data_dir: str | None) -> None:
    """Embedding throughput (texts/s) of one embedder mode on ``n`` real instructions."""
    from poisondetect.bench.data import build_mix, find_data_dir
    from poisondetect.embed.models import make_embedder
    pairs = build_mix(find_data_dir(data_dir), n_pairs=max(n, 100), seed=seed + 1)
    texts = pairs.instruction[:n]
    emb = make_embedder({"mode": mode}, n_texts=10 ** 9 if mode == "static" else 1)
    emb.encode(texts[:32])  # warm-up / model load
    t = time.perf_counter()
    emb.encode(texts)
    dt_s = time.perf_counter() - t
    print(json.dumps({"mode": mode, "n": len(texts), "s": round(dt_s, 2), "texts_per_s": round(len(texts) / dt_s, 1),
                      "mean_chars": round(sum(map(len, texts)) / len(texts), 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["build", "scan", "scan-one", "report", "embed-speed"])
    ap.add_argument("--mode", default="static", help="embed-speed: static or transformer")
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--attack", default="badnets")
    ap.add_argument("--rate", type=float, default=0.001)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--engine", default="local", choices=["local", "ray"])
    ap.add_argument("--chunk-size", type=int, default=20_000)
    ap.add_argument("--jobs", type=int, default=1, help="local engine: worker processes (n_jobs)")
    ap.add_argument("--detectors", nargs="*", default=None)
    ap.add_argument("--disable", nargs="*", default=None)
    ap.add_argument("--embedding-mode", default="none")
    ap.add_argument("--unsupported", default="skip")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--assume-per-row", nargs="*", default=None,
                    help="detector ids known to be per-row that do not declare per_row = True yet")
    args = ap.parse_args()
    if args.what == "build":
        for n in args.n:
            build(n, args.seed, args.attack, args.rate, args.data_dir)
    elif args.what == "scan-one":
        args.n = args.n[0]
        scan_one(args)
    elif args.what == "scan":
        for n in args.n:
            cmd = [sys.executable, __file__, "scan-one", "--n", str(n)] + [a for a in sys.argv[2:] if a]
            # replace the --n list by this one size
            rest, skip = [], False
            for a in sys.argv[2:]:
                if a == "--n":
                    skip = True
                    continue
                if skip and re.fullmatch(r"\d+", a):
                    continue
                skip = False
                rest.append(a)
            cmd = [sys.executable, __file__, "scan-one", "--n", str(n)] + rest
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
    elif args.what == "embed-speed":
        embed_speed(args.mode, args.n[0], args.seed, args.data_dir)
    else:
        report()


if __name__ == "__main__":
    main()
