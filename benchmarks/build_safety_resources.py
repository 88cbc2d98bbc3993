"""Rebuild poisondetect/resources/{harmful_prototypes,benign_lookalikes}.jsonl from the
shared safety sets (MIT / CC BY 4.0; see poisondetect/resources/SAFETY_SOURCES.md).

Held-out split (never shipped, used only for evaluation in bench_safety_fp.py):
AdvBench (all 520), XSTest unsafe prompts (200), XSTest safe prompts with odd index
within their type (125).

    python benchmarks/build_safety_resources.py [--data-dir ../shared/data]
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from _clean_mix import data_dir

OUT = Path(__file__).resolve().parents[1] / "poisondetect" / "resources"


def xstest_split(root: Path) -> tuple[list[str], list[str], list[str]]:
    """(safe shipped for calibration, safe held out, unsafe held out)."""
    rows = list(csv.DictReader(open(root / "safety/xstest/xstest_prompts.csv", encoding="utf-8")))
    seen: dict[str, int] = {}
    ship, held, unsafe = [], [], []
    for r in rows:
        if r["label"] != "safe":
            unsafe.append(r["prompt"])
            continue
        k = seen.get(r["type"], 0)
        seen[r["type"]] = k + 1
        (ship if k % 2 == 0 else held).append(r["prompt"])
    return ship, held, unsafe


def harmful_shipped(root: Path) -> list[tuple[str, str]]:
    out = []
    for r in csv.DictReader(open(root / "safety/harmbench/harmbench_behaviors_text_all.csv", encoding="utf-8")):
        if r["FunctionalCategory"] in ("standard", "contextual"):
            out.append(("harmbench", r["Behavior"]))
    for line in open(root / "safety/harmbench/malicious_instruct.txt", encoding="utf-8"):
        if line.strip():
            out.append(("maliciousinstruct", line.strip()))
    for r in csv.DictReader(open(root / "safety/harmbench/strongreject_dataset.csv", encoding="utf-8")):
        out.append(("strongreject", r["forbidden_prompt"]))
    return out


def advbench(root: Path) -> list[str]:
    return [r["goal"] for r in csv.DictReader(open(root / "safety/advbench/harmful_behaviors.csv", encoding="utf-8"))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir")
    a = ap.parse_args()
    root = data_dir(a.data_dir)
    with open(OUT / "harmful_prototypes.jsonl", "w", encoding="utf-8") as fh:
        for src, t in harmful_shipped(root):
            fh.write(json.dumps({"text": " ".join(t.split()), "source": src}, ensure_ascii=False) + "\n")
    ship, _, _ = xstest_split(root)
    with open(OUT / "benign_lookalikes.jsonl", "w", encoding="utf-8") as fh:
        for t in ship:
            fh.write(json.dumps({"text": t, "source": "xstest"}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
