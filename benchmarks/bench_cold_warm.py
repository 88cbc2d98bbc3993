"""Cold and warm full default scans, stage by stage, against counting n-grams once (issue 20).

    python benchmarks/bench_cold_warm.py [--data-dir ../shared/data] [--n-pairs 50000] [--out benchmarks/results]

In one run, each step in a fresh process so that nothing is shared but the disk:

1. **reference**: scikit-learn's ``CountVectorizer(ngram_range=(1, 3))`` fitted on the same
   text the scan reads (every instruction and response of the mix);
2. **cold**: a full default scan (``scan(pairs)``, every default detector, auto
   embeddings) with *empty* caches: a new embedding / static-model cache folder
   (``POISONDETECT_CACHE``) and a new numba cache folder (``NUMBA_CACHE_DIR``), so the
   static model is distilled, every text embedded and every kernel compiled, as on a new
   user's first scan;
3. **warm**: the same scan again with the caches step 2 filled.

Writes ``cold_warm_<n>.json`` / ``.md``: wall, peak RSS, each stage's seconds cold and
warm, and the ratios to the reference.  Skips (exit 0) without the shared data.  The
machine is noisy: read ratios from one run, not across runs.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import data_root, git_commit, parser  # noqa: E402

_CHILD = r"""
import json, resource, sys, time
from poisondetect.bench.data import build_mix
from sklearn.feature_extraction.text import CountVectorizer
from poisondetect.pipeline import scan
pairs = build_mix(sys.argv[1], int(sys.argv[2]), 0)
t = time.perf_counter()  # (imports done: both sides are timed from here)
if sys.argv[3] == "reference":
    CountVectorizer(ngram_range=(1, 3)).fit_transform(list(pairs.instruction) + list(pairs.response))
    out = {"timings": {}}
else:
    res = scan(pairs, random_state=0)
    out = {"timings": dict(res.timings), "n_flagged": int(res.flags.sum()) if hasattr(res, "flags") else None}
out["wall_s"] = time.perf_counter() - t
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["n_pairs"] = len(pairs)
print("RESULT " + json.dumps(out))
"""


def _run(step: str, data: str, n: int, env: dict[str, str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, data, str(n), step], capture_output=True, text=True,
                          env=env, cwd=str(Path(__file__).resolve().parents[1]))
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise SystemExit(f"bench_cold_warm: step {step} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(line[-1][len("RESULT "):])


def main() -> None:
    ap = parser(__doc__.split("\n")[0])
    args = ap.parse_args()
    d = data_root(args.data_dir)
    if d is None:
        return
    repo = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="pd-cold-") as tmp:
        env = {**os.environ, "POISONDETECT_CACHE": os.path.join(tmp, "cache"),
               "NUMBA_CACHE_DIR": os.path.join(tmp, "numba"),
               "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
        ref = _run("reference", str(d), args.n_pairs, env)
        cold = _run("scan", str(d), args.n_pairs, env)
        warm = _run("scan", str(d), args.n_pairs, env)
    stages = sorted(set(cold["timings"]) | set(warm["timings"]),
                    key=lambda k: -max(cold["timings"].get(k, 0.0), warm["timings"].get(k, 0.0)))
    rows = [(k, round(cold["timings"].get(k, 0.0), 2), round(warm["timings"].get(k, 0.0), 2)) for k in stages
            if max(cold["timings"].get(k, 0.0), warm["timings"].get(k, 0.0)) >= 0.1]
    out = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "commit": git_commit(), "command": "python " + " ".join(sys.argv), "n_pairs": ref["n_pairs"],
        "reference_countvectorizer_1_3_s": round(ref["wall_s"], 2),
        "cold_wall_s": round(cold["wall_s"], 2), "warm_wall_s": round(warm["wall_s"], 2),
        "cold_ratio": round(cold["wall_s"] / ref["wall_s"], 2), "warm_ratio": round(warm["wall_s"] / ref["wall_s"], 2),
        "peak_rss_mb": {"reference": round(ref["peak_rss_mb"]), "cold": round(cold["peak_rss_mb"]),
                        "warm": round(warm["peak_rss_mb"])},
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "stages_s": [{"stage": k, "cold": c, "warm": w} for k, c, w in rows],
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    stem = Path(args.out) / f"cold_warm_{out['n_pairs']}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1))
    table = "\n".join(f"| {k} | {c} | {w} |" for k, c, w in rows)
    stem.with_suffix(".md").write_text(
        f"# Cold and warm full default scans, {out['n_pairs']} pairs\n\n- date: {out['date']}\n"
        f"- machine: {out['machine']}; commit {out['commit']}; load average at the end {out['load_avg_1m']}\n"
        f"- command: `{out['command']}`\n"
        f"- reference, `CountVectorizer(ngram_range=(1, 3))` on the same text: **{out['reference_countvectorizer_1_3_s']} s**\n"
        f"- cold scan (empty embedding, static-model and numba caches): **{out['cold_wall_s']} s** = "
        f"**{out['cold_ratio']}x** the reference (goal <= 2.0x)\n"
        f"- warm scan (caches filled by the cold one): **{out['warm_wall_s']} s** = **{out['warm_ratio']}x** "
        f"(goal <= 1.0x)\n"
        f"- peak RSS per process (MB): reference {out['peak_rss_mb']['reference']}, cold {out['peak_rss_mb']['cold']}, "
        f"warm {out['peak_rss_mb']['warm']}\n\n"
        f"Stages overlap (a shared statistic is timed inside the first detector that needs it), so they do not sum "
        f"to the wall time.\n\n| stage | cold s | warm s |\n|---|---:|---:|\n{table}\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
