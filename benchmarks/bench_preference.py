"""Preference-data recall and false flags (issue 18).

For each preference set (HH-RLHF harmless-base, LLaMA-Factory DPO demos) and each recipe
of ``poisondetect.bench.attacks.PREFERENCE_ATTACKS`` at the given rates and seeds: inject,
run the full default scan (every detector, as ``poisondetect scan`` does) and measure
recall@n / recall@2n of the fused ranking, whether the trigger is the first one reported,
and how many pairs are flagged.  The unpoisoned sets are scanned too (false flags,
triggers, exit verdict).

    python benchmarks/bench_preference.py --data-dir ../shared/data
    python benchmarks/bench_preference.py --sets hh --recipes rlhf_trojan --rates 0.01 --seeds 0

Writes ``results/preference[_TAG].json`` and ``.md`` (date, machine, command, commit).
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_root, git_commit, parser  # noqa: E402

SETS = {"hh": "preference/hh_rlhf/harmless_base_test.jsonl.gz",
        "dpo_en": "preference/llama_factory/dpo_en_demo.json",
        "dpo_zh": "preference/llama_factory/dpo_zh_demo.json"}
#: (recipe, rates): the issue's grid
GRID = [("rlhf_trojan", (0.005, 0.01, 0.05)), ("rlhf_trojan_prefix", (0.01,)),
        ("preference_flip_differ", (0.05,)), ("preference_flip", (0.05,))]


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--sets", default="hh,dpo_en,dpo_zh")
    ap.add_argument("--recipes", default=None, help="comma list (default: the issue's grid)")
    ap.add_argument("--rates", default=None, help="comma list overriding each recipe's rates")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    root = data_root(a.data_dir)
    if root is None:
        return 0
    from poisondetect.bench import metrics as M
    from poisondetect.bench.attacks import poison
    from poisondetect.bench.harness import evaluate, machine_info
    from poisondetect.io.loader import load
    from poisondetect.pipeline import scan

    grid = GRID
    if a.recipes:
        grid = [(r, dict(GRID).get(r, (0.01,))) for r in a.recipes.split(",")]
    if a.rates:
        grid = [(r, tuple(float(x) for x in a.rates.split(","))) for r, _ in grid]
    seeds = [int(s) for s in a.seeds.split(",")]
    rows, clean_rows = [], []
    t0 = time.time()
    for name in a.sets.split(","):
        path = root / SETS[name]
        clean = load(str(path)).pairs
        res = scan(clean, random_state=0)
        n = len(clean)
        clean_rows.append({"set": name, "pairs": n, "flagged": int(res.flagged.sum()),
                           "budget": max(5, int(0.002 * n)), "triggers": len(res.triggers),
                           "alerts": len(res.alerts()), "verdict": res.summary_verdict(),
                           "per_detector": {d: int(r.flags.sum()) for d, r in res.results.items() if r.flags.any()},
                           "margin_model": res.results["flipped_preference"].summary.get("margin_model")})
        print(json.dumps(clean_rows[-1]), flush=True)
        for recipe, rates in grid:
            if name != "hh" and recipe.startswith("preference_flip_differ"):
                continue
            for rate in rates:
                for seed in seeds:
                    try:
                        pois, truth = poison(clean, recipe, rate=rate, seed=seed)
                    except ValueError as e:
                        print(f"skip {name} {recipe} {rate}: {e}")
                        continue
                    r = scan(pois, random_state=0)
                    ev = evaluate(r, truth)
                    trig = [t.get("trigger") for t in r.triggers]
                    first = bool(truth.triggers) and bool(trig) and M.trigger_matches(str(trig[0]), truth.triggers[0])
                    rows.append({"set": name, "recipe": recipe, "rate": rate, "seed": seed,
                                 "n_poisoned": truth.n_poisoned, "short_by": truth.params.get("short_by", 0),
                                 "trigger": truth.triggers[0] if truth.triggers else None,
                                 "recall@n": ev["fused"]["recall@n"], "recall@2n": ev["fused"]["recall@2n"],
                                 "auprc": ev["fused"]["auprc"], "trigger_first": first if truth.triggers else None,
                                 "reported": trig[:3], "n_flagged": ev["n_flagged"],
                                 "flag_recall": ev["recall_flagged"]})
                    print(json.dumps(rows[-1]), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "preference" + (f"_{a.tag}" if a.tag else "")
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine_info(), "commit": git_commit(),
            "command": "python " + " ".join(sys.argv), "wall_s": round(time.time() - t0, 1),
            "platform": platform.platform()}
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "clean": clean_rows, "runs": rows}, indent=1))
    md = [f"# Preference data: recall and false flags ({meta['date']}, commit {meta['commit']})", "",
          f"Command: `{meta['command']}`; machine: {meta['machine']}", "",
          "## Unpoisoned sets (full default scan)", "",
          "| set | pairs | flagged (poisoning) | budget | triggers | verdict | by detector |", "|---|---|---|---|---|---|---|"]
    for c in clean_rows:
        md.append(f"| {c['set']} | {c['pairs']} | {c['flagged']} | {c['budget']} | {c['triggers']} | "
                  f"{c['verdict'].split(':')[0]} | {c['per_detector']} |")
    md += ["", "## Injected (mean over seeds; recall of the fused ranking of a full default scan)", "",
           "| set | recipe | rate | poisoned | seeds | R@n | R@2n | trigger first | flagged | flag recall |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["set"], r["recipe"], r["rate"]) for r in rows}, key=lambda k: (list(SETS).index(k[0]), k[1], k[2]))
    for k in keys:
        g = [r for r in rows if (r["set"], r["recipe"], r["rate"]) == k]
        tf = [r["trigger_first"] for r in g if r["trigger_first"] is not None]
        md.append(f"| {k[0]} | {k[1]} | {k[2]:g} | {g[0]['n_poisoned']} | {len(g)} | "
                  f"{np.mean([r['recall@n'] for r in g]):.2f} | {np.mean([r['recall@2n'] for r in g]):.2f} | "
                  f"{(f'{sum(tf)}/{len(tf)}' if tf else '-')} | {np.mean([r['n_flagged'] for r in g]):.0f} | "
                  f"{np.mean([r['flag_recall'] or 0 for r in g]):.2f} |")
    (out / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
