"""Command-line pieces the benchmarks share: the standard options and the clean skip
when the shared corpora are absent."""
from __future__ import annotations

import argparse
from pathlib import Path

from poisondetect.bench.data import find_data_dir

RESULTS = str(Path(__file__).resolve().parent / "results")


def parser(description: str | None = None, n_pairs: int = 50_000) -> argparse.ArgumentParser:
    """``--data-dir`` (default: $POISONDETECT_DATA or ../shared/data), ``--n-pairs`` and
    ``--out`` (default: benchmarks/results)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data-dir")
    ap.add_argument("--n-pairs", type=int, default=n_pairs)
    ap.add_argument("--out", default=RESULTS)
    return ap


def git_commit() -> str:
    """The short commit hash of the checkout the benchmark runs from ("unknown" outside git)."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def data_root(explicit: str | None) -> Path | None:
    """The shared data folder, or None after saying that the benchmark skips (exit 0)."""
    root = find_data_dir(explicit)
    if root is None:
        print("shared data not found: pass --data-dir or set POISONDETECT_DATA; skipping")
    return root
