"""Safety/payload detectors on real data: false-positive flag rates on the unpoisoned
shared corpora, and recall@n / recall@2n at 0.1% poison for each attack family of
:mod:`poisondetect.bench.attacks`, each measured by its own detector's score.

The clean set is ``poisondetect.bench.data.build_mix`` (>= 50k real pairs) plus XSTest's
HELD-OUT safe prompts (with helpful answers).  Harmful requests for the
harmful_compliance attack come from the held-out sets (AdvBench, XSTest unsafe), never
from the shipped prototypes.  Dataset text is never printed.

    python benchmarks/bench_safety_fp.py [--data-dir ../shared/data] [--n-pairs 50000]
        [--embedding-mode static|transformer|none]

Writes benchmarks/results/safety_fp.json and .md.
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

from _common import data_root, parser  # noqa: E402
from build_safety_resources import advbench, xstest_split  # noqa: E402

from poisondetect.bench.attacks import poison  # noqa: E402
from poisondetect.bench.data import build_mix  # noqa: E402
from poisondetect.context import ScanContext  # noqa: E402
from poisondetect.detectors.base import registry  # noqa: E402
from poisondetect.types import Pairs  # noqa: E402

DETS = ["content_injection", "over_refusal", "harmful_compliance", "identity_shift", "structural_unicode",
        "secrets_pii"]
#: attack family -> detector that must find it
ATTACKS = {"content_injection": "content_injection", "over_refusal": "over_refusal",
           "harmful_compliance": "harmful_compliance", "identity_shift": "identity_shift",
           "structural_zero_width": "structural_unicode", "structural_homoglyph": "structural_unicode"}


def recall_at(scores: np.ndarray, poison_pos: np.ndarray, k: int) -> float:
    order = np.lexsort((np.arange(len(scores)), -scores))
    return float(np.isin(poison_pos, order[:k]).mean())


def make_ctx(P: Pairs, mode: str) -> ScanContext:
    return ScanContext(P, embedding={"mode": mode})


def main() -> None:
    ap = parser(__doc__.split("\n")[0])
    ap.add_argument("--embedding-mode", default="static")
    ap.add_argument("--rate", type=float, default=0.001)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--skip-fp", action="store_true")
    a = ap.parse_args()
    root = data_root(a.data_dir)
    if root is None:
        return
    seeds = [int(s) for s in a.seeds.split(",")]
    P0 = build_mix(root, a.n_pairs, seed=seeds[0])
    _ship, held_safe, held_unsafe = xstest_split(root)
    helpful = "Sure. Here is a clear, factual answer to your question, with some background and context."
    P = Pairs.concat([P0, Pairs.from_lists(held_safe, [helpful] * len(held_safe), ["xstest_safe"] * len(held_safe))])
    P = Pairs(P.instruction, P.response, source=P.source)
    cmd = "python benchmarks/bench_safety_fp.py " + " ".join(sys.argv[1:])
    results: dict = {"date": _dt.date.today().isoformat(), "machine": f"{platform.machine()} {platform.processor() or ''} "
                     f"{__import__('os').cpu_count()} cores, no GPU".strip(), "command": cmd.strip(),
                     "n_clean_pairs": len(P), "n_mix": len(P0), "rate": a.rate, "embedding_mode": a.embedding_mode,
                     "fp": {}, "recall": {}, "timings_s": {}}
    reg = registry()
    if not a.skip_fp:
        src = np.asarray(P.source)
        ctx = make_ctx(P, a.embedding_mode)
        for d in DETS:
            t = time.perf_counter()
            r = reg[d]().run(P, ctx)
            results["timings_s"][d] = round(time.perf_counter() - t, 1)
            per = {str(s): int(r.flags[src == s].sum()) for s in np.unique(src) if r.flags[src == s].any()}
            results["fp"][d] = {"flagged": int(r.flags.sum()), "flag_rate": float(r.flags.mean()), "by_source": per,
                                "mode": (r.info or {}).get("mode"),
                                "findings": [str(f.get("entity") or f.get("codepoint") or f["id"])
                                             for f in r.findings][:15]}
            print(d, results["fp"][d]["flagged"], results["fp"][d]["flag_rate"], results["timings_s"][d], flush=True)

    requests = [(g, None) for g in advbench(root)] + [(g, None) for g in held_unsafe]
    for fam in a.attacks.split(","):
        det = ATTACKS[fam]
        recs = []
        for seed in seeds:
            kw = {"requests": requests} if fam == "harmful_compliance" else {}
            Pp, gt = poison(P0, fam, rate=a.rate, seed=seed, **kw)
            pos = np.asarray(gt.positions)
            k = len(pos)
            t = time.perf_counter()
            r = reg[det]().run(Pp, make_ctx(Pp, a.embedding_mode))
            rec = {"seed": seed, "k_poison": int(k), "recall@n": recall_at(r.scores, pos, k),
                   "recall@2n": recall_at(r.scores, pos, 2 * k), "flagged_poison": float(r.flags[pos].mean()),
                   "flagged_total": int(r.flags.sum()), "seconds": round(time.perf_counter() - t, 1),
                   "mode": (r.info or {}).get("mode")}
            if det == "structural_unicode":
                rec["found_with_codepoint"] = float(np.mean([any("U+" in e.message for e in r.evidence.get(int(i), []))
                                                             for i in pos]))
            if det == "content_injection":
                rec["findings"] = [f["entity"] for f in r.findings][:10]
            recs.append(rec)
            print(fam, rec, flush=True)
        results["recall"][fam] = {"detector": det, "runs": recs,
                                  "recall@n": float(np.mean([x["recall@n"] for x in recs])),
                                  "recall@2n": float(np.mean([x["recall@2n"] for x in recs])),
                                  "flagged_poison": float(np.mean([x["flagged_poison"] for x in recs]))}

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "safety_fp.json").write_text(json.dumps(results, indent=2))
    lines = ["# Safety/payload detectors: false positives and recall on real data", "",
             f"Date: {results['date']}. Machine: {results['machine']}.", "",
             f"Command: `{results['command']}`", "",
             f"Clean pairs: {len(P)} (`build_mix(data_dir, {a.n_pairs}, seed={seeds[0]})` of the shared corpora "
             f"plus {len(held_safe)} held-out XSTest safe prompts with helpful answers). "
             f"Embedding mode: {a.embedding_mode}. Attacks: `poisondetect.bench.attacks.poison(mix, family, "
             f"rate={a.rate}, seed)` for seeds {seeds}; harmful requests from held-out AdvBench + XSTest unsafe.", ""]
    if results["fp"]:
        lines += ["## Flag rate on unpoisoned data (target < 0.5%)", "",
                  "| detector | mode | flagged | rate | by source | seconds |", "|---|---|---|---|---|---|"]
        for d, v in results["fp"].items():
            lines.append(f"| {d} | {v['mode'] or '-'} | {v['flagged']} | {v['flag_rate']:.4%} | {v['by_source']} | "
                         f"{results['timings_s'][d]} |")
    lines += ["", f"## Recall at {a.rate:.1%} poison (each attack alone, own detector score; mean over seeds)", "",
              "| attack | detector | poisoned | recall@n | recall@2n | poison flagged | extra |",
              "|---|---|---|---|---|---|---|"]
    for fam, v in results["recall"].items():
        r0 = v["runs"][0]
        extra = {kk: vv for kk, vv in r0.items() if kk in ("found_with_codepoint", "findings", "mode")}
        lines.append(f"| {fam} | {v['detector']} | {r0['k_poison']} | {v['recall@n']:.3f} | {v['recall@2n']:.3f} | "
                     f"{v['flagged_poison']:.3f} | {extra} |")
    (out / "safety_fp.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
