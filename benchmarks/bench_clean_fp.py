"""False flags of the full default CLI on every shared clean corpus (issue 16).

Runs ``poisondetect scan FILE -o DIR`` exactly as a user would (every default detector,
every turn, default ``--fail-on``) on each clean corpus and preference set, and tabulates
per corpus: exit code, verdict, pairs, pairs flagged as poisoning / privacy / quality,
triggers, and per detector its flags and dataset-level findings.

    python benchmarks/bench_clean_fp.py --data-dir ../shared/data
    python benchmarks/bench_clean_fp.py --only glaive_toolcall_en,codealpaca --tag quick

Writes ``results/clean_fp[_TAG].json`` and ``.md`` (date, machine, command, commit).
The acceptance budget of issue 16 is max(5, 0.2% of pairs) flagged as poisoning, exit 0,
0 triggers; the table marks each corpus against it.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_root, git_commit, parser  # noqa: E402

#: (name, path under the data folder, extra CLI arguments)
CORPORA: list[tuple[str, str, list[str]]] = [
    ("alpaca_safety", "clean/alpaca_dolly_safety/alpaca_data_safety_only.json", []),
    ("dolly_safety", "clean/alpaca_dolly_safety/databricks-dolly-15k-safety-only.jsonl", []),
    ("codealpaca", "clean/codealpaca/code_alpaca_2k.json", []),
    ("gpteacher_codegen", "clean/gpteacher/codegen-instruct.json", []),
    ("gpteacher_roleplay", "clean/gpteacher/roleplay-simple-deduped-roleplay-instruct.json", []),
    ("gpteacher_toolformer", "clean/gpteacher/toolformer-dedupe-only-dataset.json", []),
    ("alpaca_en_demo", "clean/llama_factory/alpaca_en_demo.json", []),
    ("alpaca_zh_demo", "clean/llama_factory/alpaca_zh_demo.json", []),
    ("glaive_toolcall_en", "clean/llama_factory/glaive_toolcall_en_demo.json", []),
    ("glaive_toolcall_zh", "clean/llama_factory/glaive_toolcall_zh_demo.json", []),
    ("identity", "clean/llama_factory/identity.json", []),
    ("sharegpt_5k", "clean/sharegpt/sharegpt_v3_first5000.json.gz", []),
    ("t0_55k", "clean/self_instruct_t0/t0_train_50k.jsonl.gz", []),
    ("hh_rlhf_harmless", "preference/hh_rlhf/harmless_base_test.jsonl.gz", []),
    ("dpo_en_demo", "preference/llama_factory/dpo_en_demo.json", []),
    ("dpo_zh_demo", "preference/llama_factory/dpo_zh_demo.json", []),
    ("kto_en_demo", "preference/llama_factory/kto_en_demo.json", []),
]


def run_one(name: str, path: Path, extra: list[str], work: Path) -> dict:
    out = work / name
    cmd = [sys.executable, "-m", "poisondetect.cli", "scan", str(path), "-o", str(out), "-q", "--no-progress",
           *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    row: dict = {"corpus": name, "path": str(path), "exit": proc.returncode, "wall_s": round(wall, 1)}
    summ_path = out / "summary.json"
    if proc.returncode == 2 or not summ_path.exists():
        row["error"] = (proc.stderr.strip().splitlines() or ["no summary written"])[-1][:300]
        return row
    s = json.loads(summ_path.read_text())
    n = int(s["n_pairs"])
    counts = s.get("counts", {})
    row.update({
        "n_pairs": n,
        "verdict": s.get("verdict", ""),
        "n_flagged": int(s["n_flagged"]),
        "n_privacy": int(counts.get("privacy", 0)),
        "n_quality": int(counts.get("quality", 0)),
        "n_triggers": len(s.get("triggers", [])),
        "budget": max(5, int(0.002 * n)),
        "detectors": {d: {"flags": int(v.get("n_flagged", 0)), "kind": v.get("kind", "")}
                      for d, v in s.get("detectors", {}).items()},
        "findings": {},
    })
    for f in s.get("findings", []) + s.get("triggers", []):
        det = f.get("detector", "?")
        row["findings"][det] = row["findings"].get(det, 0) + 1
    row["findings_examples"] = [
        {k: (str(f.get(k))[:120] if f.get(k) is not None else None) for k in ("detector", "kind", "trigger", "payload",
                                                                              "label", "category")}
        for f in (s.get("triggers", []) + s.get("findings", []))[:8]]
    row["ok"] = bool(row["exit"] == 0 and row["n_triggers"] == 0 and row["n_flagged"] <= row["budget"])
    return row


def to_markdown(rows: list[dict], meta: dict) -> str:
    lines = ["# Clean-corpus false flags of the full default CLI", "",
             f"- date: {meta['date']}", f"- machine: {meta['machine']}", f"- commit: {meta['commit']}",
             f"- command: `{meta['command']}`",
             "- each corpus: `poisondetect scan FILE -o DIR` (default detectors, every turn, default --fail-on)",
             "- budget (issue 16): exit 0, 0 triggers, at most max(5, 0.2%) pairs flagged as poisoning", "",
             "| corpus | pairs | exit | poisoning flags | budget | privacy | quality | triggers | ok | poisoning flags by detector | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['corpus']} | - | {r['exit']} | - | - | - | - | - | error: {r['error']} | | {r['wall_s']} |")
            continue
        by = ", ".join(f"{d} {v['flags']}" for d, v in sorted(r["detectors"].items())
                       if v["flags"] and v.get("kind", "poisoning") in ("poisoning", ""))
        lines.append(f"| {r['corpus']} | {r['n_pairs']:,} | {r['exit']} | {r['n_flagged']:,} | {r['budget']} | "
                     f"{r['n_privacy']:,} | {r['n_quality']:,} | {r['n_triggers']} | {'yes' if r['ok'] else 'NO'} | "
                     f"{by or '-'} | {r['wall_s']} |")
    lines += ["", "## Flags per detector (all kinds)", "",
              "| corpus | " + " | ".join(meta["detectors"]) + " |", "|---|" + "---|" * len(meta["detectors"])]
    for r in rows:
        if "error" in r:
            continue
        lines.append(f"| {r['corpus']} | " + " | ".join(str(r["detectors"].get(d, {}).get("flags", "-"))
                                                        for d in meta["detectors"]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--only", default=None, help="comma-separated corpus names")
    ap.add_argument("--tag", default="")
    ap.add_argument("--work-dir", default=None, help="keep the scan outputs here")
    args = ap.parse_args()
    root = data_root(args.data_dir)
    if root is None:
        return
    only = set(args.only.split(",")) if args.only else None
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="clean_fp_"))
    rows = []
    for name, rel, extra in CORPORA:
        if only and name not in only:
            continue
        path = root / rel
        if not path.exists():
            print(f"{name}: {path} absent, skipped")
            continue
        row = run_one(name, path, extra, work)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("findings_examples", "detectors")}), flush=True)
    dets = sorted({d for r in rows for d in r.get("detectors", {})})
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
            "commit": git_commit(), "command": "python " + " ".join(sys.argv), "detectors": dets}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "clean_fp" + (f"_{args.tag}" if args.tag else "")
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / f"{stem}.md").write_text(to_markdown(rows, meta))
    print(f"wrote {out / stem}.md")


if __name__ == "__main__":
    main()
