"""Diagnostics behind the figures quoted for the n-gram detector's payload-family test
and for the fused ranking (README, issue notes):

    python benchmarks/diagnose_family.py gates     # per corpus: candidates each family condition removed
    python benchmarks/diagnose_family.py seeds     # harness templated attack, 50k, seeds 0-5: Mantel r / p
    python benchmarks/diagnose_family.py memory    # 50k mix: RSS with the data, peak after the n-gram detector
    python benchmarks/diagnose_family.py ranking   # identity_shift at 10k (static): what outranks its rows

Each part prints JSON and writes ``diagnose_family_<part>.json`` to ``--out``.  Run
``memory`` on its own (its peak is the process's).  Skips (exit 0) without the shared data.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_ngram as B  # noqa: E402
from _common import data_root, parser  # noqa: E402
from poisondetect.bench.attacks import poison  # noqa: E402
from poisondetect.bench.data import build_mix  # noqa: E402
from poisondetect.detectors.ngram_trigger import NgramTriggerDetector  # noqa: E402


def _mantel_summary(info: dict[str, Any]) -> dict[str, Any]:
    ps = [m["p"] for m in info.get("family_request_dependence", [])]
    return {"tested": len(ps), "p<=0.05": sum(p <= 0.05 for p in ps), "p=min(0.005)": sum(p <= 0.005 for p in ps)}


def gates(root: Path, n_pairs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    corpora = {name: B.to_pairs(B.load_corpus(name, root)) for name in B.CLEAN_ALL}
    corpora["harness_mix"] = build_mix(root, n_pairs, 0)
    for name, pairs in corpora.items():
        r = NgramTriggerDetector().run(pairs, None)
        out[name] = {"n": len(pairs), "triggers": len(r.findings), **r.info.get("family_gates", {}),
                     "request_dependence": _mantel_summary(r.info)}
        print(name, json.dumps(out[name]), flush=True)
    return out


def seeds(root: Path, n_pairs: int) -> dict[str, Any]:
    clean = build_mix(root, n_pairs, 0)
    out = {}
    for seed in range(6):
        pairs, truth = poison(clean, "badnets", rate=0.001, seed=seed, payload_mode="templated")
        r = NgramTriggerDetector().run(pairs, None)
        trig = [t.lower() for t in truth.triggers]
        m = [x for x in r.info.get("family_request_dependence", []) if x["trigger"].lower() in trig]
        out[seed] = {"planted": truth.triggers, "reported": [f["trigger"] for f in r.findings],
                     "mantel": m, "request_dependence": _mantel_summary(r.info)}
        print(seed, json.dumps(out[seed]), flush=True)
    return out


def memory(root: Path, n_pairs: int) -> dict[str, Any]:
    pairs = build_mix(root, n_pairs, 0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    NgramTriggerDetector().run(pairs, None)
    return {"n": len(pairs), "peak_rss_mb_data_loaded": round(base),
            "peak_rss_mb_after_ngram": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "ngram_wall_s": round(time.perf_counter() - t, 1)}


def ranking(root: Path, n_pairs: int, family: str = "identity_shift", mode: str = "static") -> dict[str, Any]:
    from poisondetect.pipeline import scan
    pairs, truth = poison(build_mix(root, n_pairs, 0), family, rate=0.001, seed=0)
    lab = truth.labels()
    r = scan(pairs, random_state=0, embedding={"mode": mode})
    worst = int(max(r.rank[lab]))
    above = [i for i in r.order[:worst] if not lab[i]]
    return {"family": family, "n": len(pairs), "embedding": mode,
            "poisoned_ranks": sorted(int(x) for x in r.rank[lab]),
            "poisoned_scores": {d: sorted(round(float(x), 3) for x in res.scores[lab] if x > 0)
                                for d, res in r.results.items() if res.scores[lab].any()},
            "clean_rows_above_poisoned": [
                {"rank": int(r.rank[i]), "score": round(float(r.scores[i]), 3),
                 "flagged_by": [d for d, res in r.results.items() if res.flags[i]]} for i in above]}


def main() -> None:
    ap = parser(__doc__.split("\n")[0])
    ap.add_argument("part", choices=("gates", "seeds", "memory", "ranking"))
    a = ap.parse_args()
    root = data_root(a.data_dir)
    if root is None:
        return
    n = a.n_pairs if a.part != "ranking" or "--n-pairs" in sys.argv else 10_000
    res = {"gates": gates, "seeds": seeds, "memory": memory, "ranking": ranking}[a.part](root, n)
    res = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "result": res}
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / f"diagnose_family_{a.part}.json").write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps(res["result"], indent=1, default=str)[:4000])


if __name__ == "__main__":
    main()
