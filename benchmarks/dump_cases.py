"""Equivalence dump for refactors: every attack family (and the clean mix) scanned, and
everything a user could see written out in a stable, comparable form.

A refactor that should not change results is checked by running this before and after
and comparing the two files (``--compare A B``); any difference names the case and the
field.  Cases: the clean mix and each of the harness's attack families applied to it
(33 in all), at ``--rate``.  Per case it dumps, for the n-gram detector alone (compiled
kernels, and with ``--reference`` the numpy path too, each forced with ``engine``) and for the full default scan
(every detector, ``--embedding`` hash so it runs without a model): every score
(``repr`` of the float64, hashed, plus the top rows), the flags, and every finding's
evidence with timings removed.

    python benchmarks/dump_cases.py --data-dir ../shared/data --out /tmp/dump_before.json
    python benchmarks/dump_cases.py --compare /tmp/dump_before.json /tmp/dump_after.json
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_VOLATILE = {"timings", "wall_s", "seconds", "elapsed_s", "time_s", "peak_rss_mb", "engine", "stage_seconds"}


def _clean(x: Any) -> Any:
    """JSON-able copy without timing fields (they differ run to run)."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items() if str(k) not in _VOLATILE and not str(k).endswith("_s")}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        return repr(float(x))
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return repr(x)


def _scores(scores: np.ndarray) -> dict[str, Any]:
    s = np.asarray(scores, dtype=np.float64)
    h = hashlib.sha256(s.tobytes()).hexdigest()[:16]
    top = np.argsort(-s, kind="stable")[:20]
    return {"sha": h, "top": [[int(i), repr(float(s[i]))] for i in top], "n_pos": int((s > 0).sum())}


def _det(res: Any) -> dict[str, Any]:
    return {"scores": _scores(res.scores), "flags": np.flatnonzero(np.asarray(res.flags)).tolist(),
            "evidence": _clean({str(k): [dataclasses.asdict(e) if dataclasses.is_dataclass(e) else e for e in v]
                                for k, v in sorted(res.evidence.items())}),
            "findings": _clean(res.findings), "summary": _clean(res.summary), "info": _clean(res.info)}


def cases(data_dir: str, n: int, rate: float, seed: int) -> list[tuple[str, Any]]:
    from poisondetect.bench.attacks import ATTACKS, REQUEST_FAMILIES, poison
    from poisondetect.bench.data import build_mix, load_harmful_requests
    clean = build_mix(data_dir, n, seed)
    requests = load_harmful_requests(data_dir)
    out = [("clean", clean)]
    for fam in ATTACKS:
        kw = {"requests": requests} if fam in REQUEST_FAMILIES else {}
        try:
            pairs, _ = poison(clean, fam, rate=rate, seed=seed, **kw)
        except Exception as e:  # a recipe that cannot apply to this mix is a case too
            out.append((fam, f"{type(e).__name__}: {e}"))
            continue
        out.append((fam, pairs))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from poisondetect.detectors.ngram_trigger import NgramTriggerDetector
    from poisondetect.pipeline import scan
    dump: dict[str, Any] = {}
    for name, pairs in cases(args.data_dir, args.n, args.rate, args.seed):
        t = time.perf_counter()
        if isinstance(pairs, str):
            dump[name] = {"error": pairs}
            continue
        row: dict[str, Any] = {"n": len(pairs)}
        row["ngram"] = _det(NgramTriggerDetector(engine="numba").run(pairs, None))
        if args.reference:
            row["ngram_reference"] = _det(NgramTriggerDetector(engine="numpy").run(pairs, None))
        if not args.ngram_only:
            res = scan(pairs, embedding={"mode": args.embedding}, random_state=args.seed)
            row["scan"] = {"scores": _scores(res.scores), "flagged": np.flatnonzero(res.flagged).tolist(),
                           "order": np.asarray(res.order)[:50].tolist(),
                           "detectors": {k: _det(d) for k, d in sorted(res.results.items())}}
        dump[name] = row
        print(f"{name}: {time.perf_counter() - t:.1f}s", flush=True)
    return dump


def compare(a: Any, b: Any, path: str = "") -> list[str]:
    if type(a) is not type(b):
        return [f"{path}: type {type(a).__name__} != {type(b).__name__}"]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'after' if k not in a else 'before'}")
            else:
                out += compare(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in compare(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {str(a)[:80]!r} != {str(b)[:80]!r}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--rate", type=float, default=0.005)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedding", default="hash")
    ap.add_argument("--reference", action="store_true", help="also run the n-gram detector's numpy path")
    ap.add_argument("--ngram-only", action="store_true")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = ap.parse_args()
    if args.compare:
        a, b = (json.loads(Path(p).read_text()) for p in args.compare)
        diffs = compare(a, b)
        for d in diffs[:200]:
            print(d)
        print(f"{len(diffs)} differences over {len(a)} cases")
        return 1 if diffs else 0
    from poisondetect.bench.data import find_data_dir
    d = find_data_dir(args.data_dir)
    if d is None:
        print("shared data not found: pass --data-dir or set POISONDETECT_DATA", file=sys.stderr)
        return 2
    args.data_dir = str(d)
    dump = run(args)
    text = json.dumps(dump, indent=0, sort_keys=True)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
