"""Embedder throughput and agreement with the transformer.

    POISONDETECT_DATA=../shared/data python benchmarks/bench_embed.py [--n 1000]

Embeds the first ``n`` Alpaca demo pairs (both sides) with the static model and with
MiniLM (cached, so a rerun is fast), and reports texts/s and the mean overlap of the
10 nearest neighbours (static vs MiniLM), per side; plus static throughput on T0 prompts.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    from poisondetect.embed import TransformerEmbedder, knn_blocked, load_static

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("POISONDETECT_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--t0", type=int, default=20000)
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "clean").is_dir():
        print("shared data absent; set POISONDETECT_DATA", file=sys.stderr)
        return
    d = json.load(open(data / "clean/llama_factory/alpaca_en_demo.json"))[: args.n]
    ins = [(r["instruction"] + "\n" + r["input"]).strip() for r in d]
    res = [r["output"] for r in d]
    t = time.perf_counter()
    st = load_static()
    out = {"static_load_s": round(time.perf_counter() - t, 2), "static_id": st.model_id}
    t = time.perf_counter()
    S = st.encode(ins + res)
    out["static_texts_per_s_alpaca"] = round(len(ins) * 2 / (time.perf_counter() - t), 1)
    tr = TransformerEmbedder(device="cpu")
    t = time.perf_counter()
    E = tr.encode(ins + res)
    out["minilm_texts_per_s_alpaca"] = round(len(ins) * 2 / (time.perf_counter() - t), 1)
    n = len(ins)
    for name, sl in (("instruction", slice(0, n)), ("response", slice(n, 2 * n))):
        a, _ = knn_blocked(E[sl], 10)
        b, _ = knn_blocked(S[sl], 10)
        out[f"knn10_overlap_{name}"] = round(float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b)])), 3)
    t0 = [json.loads(line)["prompt"] for _, line in
          zip(range(args.t0), gzip.open(data / "clean/self_instruct_t0/t0_train_50k.jsonl.gz", "rt"))]
    st2 = load_static()
    st2._word_memo.clear()
    t = time.perf_counter()
    st2.encode(t0)
    out["static_texts_per_s_t0_prompts"] = round(len(t0) / (time.perf_counter() - t), 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
