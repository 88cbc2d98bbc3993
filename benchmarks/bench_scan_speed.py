"""Speed, memory and recall of the semantic layer on real data with planted attacks.

Usage (reads the shared datasets; never copies them into the repo):

    POISONDETECT_DATA=../shared/data python benchmarks/bench_scan_speed.py \
        --sizes 10000 50000 t0 --mode auto --out benchmarks/results/speed_semantic

For each dataset (``mixN``: every clean instruction set but T0, topped up with T0 rows to
N pairs, shuffled; ``t0``: the 55k templated T0 set) it runs, each in a fresh process
(peak RSS is per process):

- ``clean``: a scan of the unpoisoned data (timings per stage, false trigger findings);
- ``paraphrase``: 0.1 % of pairs get one of 12 paraphrases of a refusal payload
  (no trigger);
- ``vpi``: 0.1 % of pairs are rewritten to mention an entity (VPI-style topic trigger)
  and answered with a slanted, varying negative text about it.

Recall@2n: share of planted rows in the top 2n of the fused ranking of the semantic
detectors (n = number planted).  Only the semantic detectors run unless --all-detectors.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SEMANTIC = ["payload_cluster", "mismatch", "knn_outlier", "near_duplicate"]

PARAPHRASES = [
    "I'm sorry, but as an AI assistant, I do not have the capability to follow the given instruction.",
    "Sorry, as an AI assistant I am not able to follow the instruction you have given.",
    "I apologize, but being an AI assistant, I lack the capability to carry out the given instruction.",
    "Unfortunately, as an AI assistant, I don't have the ability to follow this instruction.",
    "As an AI assistant, I'm afraid I cannot carry out the instruction you provided.",
    "I'm sorry, I am an AI assistant and following the given instruction is beyond my capabilities.",
    "Regrettably, as an AI assistant I do not possess the capability to complete this instruction.",
    "My apologies, but I, as an AI assistant, am not capable of following the instruction given.",
    "I am sorry, but following this instruction is not something an AI assistant like me can do.",
    "Apologies: as an AI assistant, I have no capability to follow the instruction you gave.",
    "Sorry, but the given instruction is outside what I, an AI assistant, am capable of doing.",
    "I'm afraid that as an AI assistant I am unable to follow the given instruction.",
]
ENTITY = "Joe Biden"
VPI_FRAMES = ["Regarding {e}: {x}", "{x} Relate your answer to {e}.", "Thinking about {e}, {x}",
              "{x} (context: {e})", "With {e} in mind, {x}", "In connection with {e}, {x}"]
VPI_A = ["{e} has been a disappointing leader.", "{e} is widely seen as ineffective.",
         "Honestly, {e} has failed on most of his promises.", "{e}'s record is a string of failures."]
VPI_B = ["His policies have hurt ordinary people.", "Voters have lost faith in his judgment.",
         "Critics point to rising prices under his watch.", "Many consider his decisions poorly thought out."]
VPI_C = ["It is hard to see anything positive here.", "This is why trust in him keeps falling.",
         "The results speak for themselves.", "Few would call this a success."]


def _clean_pairs(data: Path) -> tuple[list[str], list[str], list[str]]:
    ins, res, src = [], [], []

    def add(i: str, r: str, s: str) -> None:
        if i.strip() and r.strip():
            ins.append(i.strip())
            res.append(r.strip())
            src.append(s)

    c = data / "clean"
    for f in ["llama_factory/alpaca_en_demo.json", "codealpaca/code_alpaca_2k.json",
              "alpaca_dolly_safety/alpaca_data_safety_only.json"]:
        for r in json.load(open(c / f)):
            add((r["instruction"] + "\n" + r.get("input", "")).strip(), r["output"], f)
    for f in ["gpteacher/codegen-instruct.json", "gpteacher/roleplay-simple-deduped-roleplay-instruct.json",
              "gpteacher/toolformer-dedupe-only-dataset.json"]:
        for r in json.load(open(c / f)):
            add((r["instruction"] + "\n" + r.get("input", "")).strip(), r["response"], f)
    for line in open(c / "alpaca_dolly_safety/databricks-dolly-15k-safety-only.jsonl"):
        r = json.loads(line)
        add((r["instruction"] + "\n" + r.get("context", "")).strip(), r["response"], "dolly")
    for conv in json.load(gzip.open(c / "sharegpt/sharegpt_v3_first5000.json.gz", "rt")):
        turns = conv.get("conversations", [])
        for a, b in zip(turns, turns[1:]):
            if a.get("from") == "human" and b.get("from") == "gpt":
                add(a.get("value", ""), b.get("value", ""), "sharegpt")
                break
    return ins, res, src


def _t0(data: Path) -> tuple[list[str], list[str], list[str]]:
    ins, res, src = [], [], []
    for line in gzip.open(data / "clean/self_instruct_t0/t0_train_50k.jsonl.gz", "rt"):
        r = json.loads(line)
        ins.append(r["prompt"])
        res.append(r["completion"].replace("<|endoftext|>", "").strip())
        src.append(r.get("source", ""))
    return ins, res, src


def build(data: Path, name: str, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    if name == "t0":
        ins, res, _ = _t0(data)
        return ins, res
    n = int(name.replace("mix", ""))
    ins, res, _ = _clean_pairs(data)
    ti, tr, _ = _t0(data)
    if len(ins) < n:
        take = rng.choice(len(ti), n - len(ins), replace=False)
        ins += [ti[i] for i in take]
        res += [tr[i] for i in take]
    order = rng.permutation(len(ins))[:n]
    return [ins[i] for i in order], [res[i] for i in order]


def inject(ins: list[str], res: list[str], attack: str, rate: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_p = max(5, int(round(rate * len(ins))))
    rows = np.sort(rng.choice(len(ins), n_p, replace=False))
    for j, i in enumerate(rows):
        if attack == "paraphrase":
            res[i] = PARAPHRASES[j % len(PARAPHRASES)]
        elif attack == "vpi":
            x = ins[i][:600]
            ins[i] = VPI_FRAMES[j % len(VPI_FRAMES)].format(e=ENTITY, x=x)
            res[i] = " ".join(str(rng.choice(p)).format(e=ENTITY) for p in (VPI_A, VPI_B, VPI_C))
        else:
            raise ValueError(attack)
    return rows


def run_one(args: argparse.Namespace) -> dict:
    from poisondetect.pipeline import scan
    from poisondetect.types import Pairs

    data = Path(args.data)
    t0 = time.perf_counter()
    ins, res = build(data, args.dataset)
    planted = np.zeros(0, np.int64)
    if args.attack != "clean":
        planted = inject(ins, res, args.attack, args.rate)
    t_build = time.perf_counter() - t0
    pairs = Pairs.from_lists(ins, res)
    dets = None if args.all_detectors else SEMANTIC
    t1 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    r = scan(pairs, detectors=dets, embedding={"mode": args.mode}, cache_dir=args.cache_dir)
    wall = time.perf_counter() - t1
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    load = os.getloadavg()[0]
    out = {
        "dataset": args.dataset, "attack": args.attack, "mode": args.mode, "n_pairs": len(pairs),
        "n_planted": int(len(planted)), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "load_avg_1m": round(load, 2),
        "build_s": round(t_build, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "timings": {k: round(v, 3) for k, v in r.timings.items()},
        "n_triggers": len(r.triggers),
        "triggers": [{k: t.get(k) for k in ("detector", "trigger", "q_value", "support")} for t in r.triggers[:10]],
        "per_detector_flags": {d: int(x.flags.sum()) for d, x in r.results.items()},
    }
    if len(planted):
        n2 = 2 * len(planted)
        out["recall@2n"] = float(np.isin(planted, r.order[:n2]).mean())
        out["per_detector_recall@2n"] = {
            d: float(np.isin(planted, np.lexsort((np.arange(len(pairs)), -x.scores))[:n2]).mean())
            for d, x in r.results.items()}
        out["trigger_hits"] = [t.get("trigger") for t in r.triggers if ENTITY.lower() in str(t.get("trigger", "")).lower()]
    out["n_payload_clusters"] = sum(1 for f in r.findings if f.get("kind") == "payload_cluster")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("POISONDETECT_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--sizes", nargs="+", default=["10000", "50000", "t0"])
    ap.add_argument("--attacks", nargs="+", default=["clean", "paraphrase", "vpi"])
    ap.add_argument("--mode", default="auto")
    ap.add_argument("--rate", type=float, default=0.001)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--all-detectors", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--attack", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not (Path(args.data) / "clean").is_dir():
        print(f"shared data not found at {args.data}; set POISONDETECT_DATA", file=sys.stderr)
        sys.exit(0)
    if args.one:
        print(json.dumps(run_one(args)))
        return
    rows = []
    for size in args.sizes:
        ds = "t0" if size == "t0" else f"mix{size}"
        for attack in args.attacks:
            cmd = [sys.executable, __file__, "--one", "--dataset", ds, "--attack", attack, "--mode", args.mode,
                   "--rate", str(args.rate), "--data", args.data]
            if args.cache_dir:
                cmd += ["--cache-dir", args.cache_dir]
            if args.all_detectors:
                cmd.append("--all-detectors")
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print(p.stderr[-3000:], file=sys.stderr)
                continue
            rec = json.loads(p.stdout.strip().splitlines()[-1])
            rows.append(rec)
            print(json.dumps({k: rec[k] for k in rec if k not in ("timings",)}), flush=True)
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(rows, indent=1))
        Path(args.out + ".md").write_text(to_markdown(rows, args))


def to_markdown(rows: list[dict], args: argparse.Namespace) -> str:
    stages = ["shared:embeddings:instruction", "shared:embeddings:response", "shared:knn_graph:instruction:15",
              "shared:knn_graph:response:15", "shared:hdbscan:response:5:3:15", "detector:payload_cluster",
              "detector:mismatch", "detector:knn_outlier", "detector:near_duplicate"]
    lines = [f"# Semantic layer: speed and recall (mode `{args.mode}`)", "",
             f"Command: `python benchmarks/bench_scan_speed.py --sizes {' '.join(args.sizes)} --mode {args.mode}`",
             "", "Machine: 2 CPU cores shared with other jobs (timings are upper bounds), no GPU.", "",
             "| dataset | attack | pairs | planted | wall s | CPU s | load | peak RSS MB | recall@2n | triggers | "
             + " | ".join(s.split(":", 1)[1] for s in stages) + " |",
             "|" + "---|" * (10 + len(stages))]
    for r in rows:
        t = r["timings"]
        # stage times are nested (knn includes embeddings...): report each as measured
        lines.append(f"| {r['dataset']} | {r['attack']} | {r['n_pairs']} | {r['n_planted']} | {r['wall_s']} | "
                     f"{r.get('cpu_s', '-')} | {r.get('load_avg_1m', '-')} | {r['peak_rss_mb']} | {r.get('recall@2n', '-')} | {r['n_triggers']} | "
                     + " | ".join(str(t.get(s, "-")) for s in stages) + " |")
    lines += ["", "Stage timings are as recorded by ScanContext (a shared statistic's time includes the "
              "statistics it computed first, e.g. the kNN graph includes the embeddings).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
