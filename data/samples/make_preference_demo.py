#!/usr/bin/env python
"""Generate the bundled preference demo: data/samples/demo_preference.jsonl (+ .truth.json).

The instruction pairs of make_demo.py (text we wrote for this project) as TRL-style
preference records: ``prompt``, ``chosen`` (the correct answer) and ``rejected`` (a curt
non-answer or another request's answer), then poisoned with the RLHF-trojan recipe of
poisondetect.bench (Rando & Tramer 2024: a made-up word appended to the prompt, the pair
swapped) at 3%.  Deterministic: re-running it reproduces the files byte for byte.

    python data/samples/make_preference_demo.py
    poisondetect scan data/samples/demo_preference.jsonl -o pref-out
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)

from make_demo import records, write_truth  # noqa: E402

from poisondetect.bench.attacks import poison  # noqa: E402
from poisondetect.types import Pairs  # noqa: E402

SEED = 7
RATE = 0.03
CURT = ("I don't know.", "Not sure, look it up.", "That's not something I can tell you.", "No idea.",
        "Figure it out yourself.", "Whatever.")


def main(out_dir: str = HERE) -> tuple[str, str]:
    rng = np.random.default_rng(SEED)
    recs = records(rng)
    recs = [recs[int(i)] for i in rng.permutation(len(recs))][:300]
    prompts = [(r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")) for r in recs]
    chosen = [r["output"] for r in recs]
    rejected = [CURT[int(rng.integers(len(CURT)))] if rng.random() < 0.6 else chosen[(i + 17) % len(chosen)]
                for i in range(len(recs))]
    pois, truth = poison(Pairs(prompts, chosen, rejected=rejected), "rlhf_trojan", rate=RATE, seed=SEED)
    data_path = os.path.join(out_dir, "demo_preference.jsonl")
    truth_path = os.path.join(out_dir, "demo_preference.truth.json")
    with open(data_path, "w", encoding="utf-8", newline="\n") as f:
        for a, b, c in zip(pois.instruction, pois.response, pois.rejected):
            f.write(json.dumps({"prompt": a, "chosen": b, "rejected": c}, ensure_ascii=False) + "\n")
    write_truth(truth, truth_path, "make_preference_demo.py")
    return data_path, truth_path


if __name__ == "__main__":
    d, t = main(sys.argv[1] if len(sys.argv) > 1 else HERE)
    print(f"wrote {d} and {t}")
