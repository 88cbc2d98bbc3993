#!/usr/bin/env python
"""Run the benchmark harness from a config file.

    python benchmarks/run_harness.py --config benchmarks/configs/full.json --data-dir ../shared/data --out benchmarks/results

Same options as ``poisondetect bench`` (this script just calls it); see
poisondetect/bench/harness.py for what is measured.
"""
from __future__ import annotations

import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from poisondetect.bench.cli import bench

if __name__ == "__main__":
    os.environ.setdefault("POISONDETECT_BENCH_COMMAND", " ".join(shlex.quote(a) for a in ["python"] + sys.argv))
    bench.main(args=sys.argv[1:], prog_name="run_harness.py", standalone_mode=True)
