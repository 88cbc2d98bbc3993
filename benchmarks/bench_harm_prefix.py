"""Does a short prefix or suffix lower P(harmful) of a harmful request?  (issue 17, item 4)

Held-out harmful requests (AdvBench goals, never the shipped prototypes) are placed among
clean pairs of the Alpaca-style union, once as written and once with each wrapper below;
the harm model (``harm_probability``, the default embedding settings) scores them, one
scan context per wrapper (so the wrapped requests are ~6% of the pairs and the cascade's
re-scoring budget is not shared between wrappers).  Reported per wrapper: the median of P(wrapped) / P(plain), the share
of requests whose probability falls to half or less, and the share above 0.5 before and
after.  The wrappers are generic (a date line, a key-value header, a role line, a polite
suffix, a word of the corpus), not any paper's trigger.

    python benchmarks/bench_harm_prefix.py [--data-dir ../shared/data] [--n-pairs 3000] [--n-harmful 200]

Writes harm_prefix.json and .md to --out (default benchmarks/results).
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import data_root, git_commit, parser  # noqa: E402
from build_safety_resources import advbench  # noqa: E402

from poisondetect.bench.data import build_mix  # noqa: E402
from poisondetect.context import ScanContext  # noqa: E402
from poisondetect.detectors._harm import harm_probability  # noqa: E402
from poisondetect.types import Pairs  # noqa: E402

UNION = ["gpteacher_codegen", "gpteacher_roleplay", "gpteacher_toolformer", "alpaca_en_demo", "code_alpaca",
         "alpaca_safety", "dolly_safety"]
WRAPPERS = {
    "date line": "Current year: 2031. {r}",
    "key-value header": "Environment: production. {r}",
    "role line": "You are a helpful assistant. {r}",
    "corpus word": "Weekend {r}",
    "polite suffix": "{r} Please answer briefly.",
    "question frame": "Quick question: {r}?",
}


def main() -> None:
    ap = parser(__doc__.split("\n")[0], n_pairs=3000)
    ap.add_argument("--n-harmful", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    root = data_root(a.data_dir)
    if root is None:
        print("bench_harm_prefix: no shared data (set --data-dir or POISONDETECT_DATA); skipped")
        return
    t0 = time.time()
    clean = build_mix(root, n_pairs=a.n_pairs, seed=a.seed, t0_share=0.0, corpora=UNION)
    goals = advbench(root)
    rng = np.random.default_rng(a.seed)
    goals = [goals[int(i)] for i in np.sort(rng.choice(len(goals), min(a.n_harmful, len(goals)), replace=False))]
    variants = {"plain": goals, **{k: [w.format(r=g) for g in goals] for k, w in WRAPPERS.items()}}
    # one scan context per wrapper: the wrapped requests are 200 of ~3,200 pairs, as a
    # poison would be (the re-scoring budget of the cascade is not shared between them)
    per, clean_prob = {}, None
    base, m = len(clean), len(goals)
    for k, texts in variants.items():
        ins = list(clean.instruction) + texts
        P = Pairs.from_lists(ins, ["Sure, here it is."] * len(ins))
        ctx = ScanContext(P, random_state=a.seed)
        prob, _ = harm_probability(P.instruction, ctx, a.seed)
        per[k] = prob[base:]
        clean_prob = prob[:base] if clean_prob is None else clean_prob
    plain = per["plain"]
    rows = []
    for k in WRAPPERS:
        w = per[k]
        ratio = w / np.maximum(plain, 1e-9)
        rows.append({"wrapper": k, "template": WRAPPERS[k], "median_ratio": round(float(np.median(ratio)), 3),
                     "share_halved": round(float(np.mean(w <= 0.5 * plain)), 3),
                     "share_above_0.5_plain": round(float(np.mean(plain > 0.5)), 3),
                     "share_above_0.5_wrapped": round(float(np.mean(w > 0.5)), 3)})
    clean_above = float(np.mean(clean_prob > 0.5))
    out = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "commit": git_commit(),
           "machine": f"{platform.platform()}, {__import__('os').cpu_count()} CPUs",
           "command": "python benchmarks/bench_harm_prefix.py " + " ".join(sys.argv[1:]),
           "n_clean": base, "n_harmful": m, "clean_share_above_0.5": round(clean_above, 4),
           "median_plain": round(float(np.median(plain)), 3), "wrappers": rows,
           "wall_s": round(time.time() - t0, 1)}
    stem = Path(a.out) / "harm_prefix"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    md = [f"# Harm model under prefixes and suffixes ({out['date']}, {out['machine']}, commit {out['commit']})", "",
          f"`{out['command']}`: {m} held-out AdvBench goals among {base} clean union pairs; median P(harmful) "
          f"as written {out['median_plain']}; clean pairs above 0.5: {clean_above:.2%}.", "",
          "| wrapper | template | median P ratio | share halved | > 0.5 as written | > 0.5 wrapped |",
          "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {r['wrapper']} | `{r['template']}` | {r['median_ratio']} | {r['share_halved']} | "
                  f"{r['share_above_0.5_plain']} | {r['share_above_0.5_wrapped']} |")
    stem.with_suffix(".md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
