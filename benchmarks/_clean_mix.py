"""Load a mix of the shared clean corpora as Pairs for the safety benchmarks.

Reads ../shared/data (or $POISONDETECT_DATA).  A deliberately simple, self-contained
reader (the package loaders live in poisondetect.io); used only by benchmarks/tests.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np

from poisondetect.types import Pairs


def data_dir(explicit: str | None = None) -> Path | None:
    cands = [explicit, os.environ.get("POISONDETECT_DATA"),
             str(Path(__file__).resolve().parents[1].parent / "shared" / "data")]
    for c in cands:
        if c and (Path(c) / "clean").is_dir():
            return Path(c)
    return None


def _alpaca(path: Path, ins="instruction", inp="input", out="output") -> list[tuple[str, str]]:
    recs = json.loads(path.read_text(encoding="utf-8"))
    res = []
    for r in recs:
        i = r.get(ins, "") or ""
        x = r.get(inp, "") or ""
        res.append((i + ("\n\n" + x if x else ""), r.get(out, "") or ""))
    return res


def _sharegpt(convs, max_ctx_chars: int = 6000) -> list[tuple[str, str]]:
    res = []
    for c in convs:
        turns = c.get("conversations") or []
        ctx: list[str] = []
        for t in turns:
            who, val = t.get("from"), t.get("value") or ""
            if who in ("gpt", "assistant") and ctx:
                res.append(("\n\n".join(ctx)[-max_ctx_chars:], val))
            ctx.append(val)
    return res


def load_corpus(name: str, root: Path) -> tuple[list[tuple[str, str]], list[str] | None]:
    c = root / "clean"
    src = None
    if name == "gpteacher_codegen":
        p = _alpaca(c / "gpteacher/codegen-instruct.json", out="response")
    elif name == "gpteacher_roleplay":
        p = _alpaca(c / "gpteacher/roleplay-simple-deduped-roleplay-instruct.json", out="response")
    elif name == "gpteacher_toolformer":
        p = _alpaca(c / "gpteacher/toolformer-dedupe-only-dataset.json", out="response")
    elif name == "alpaca_en_demo":
        p = _alpaca(c / "llama_factory/alpaca_en_demo.json")
    elif name == "identity":
        p = _alpaca(c / "llama_factory/identity.json")
    elif name == "glaive_toolcall":
        recs = json.loads((c / "llama_factory/glaive_toolcall_en_demo.json").read_text())
        p = _sharegpt([{"conversations": [{"from": "gpt" if t["from"] in ("gpt", "function_call") else t["from"],
                                            "value": t["value"]} for t in r["conversations"]]} for r in recs])
    elif name == "codealpaca":
        p = _alpaca(c / "codealpaca/code_alpaca_2k.json")
    elif name == "alpaca_safety":
        p = _alpaca(c / "alpaca_dolly_safety/alpaca_data_safety_only.json")
    elif name == "dolly_safety":
        p = []
        for line in (c / "alpaca_dolly_safety/databricks-dolly-15k-safety-only.jsonl").read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                ctxs = r.get("context") or ""
                p.append((r["instruction"] + ("\n\n" + ctxs if ctxs else ""), r["response"]))
    elif name == "t0":
        p, src = [], []
        with gzip.open(c / "self_instruct_t0/t0_train_50k.jsonl.gz", "rt", encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                p.append((r["prompt"], r["completion"].replace("<|endoftext|>", "").strip()))
                src.append(r.get("source", ""))
    elif name == "sharegpt":
        with gzip.open(c / "sharegpt/sharegpt_v3_first5000.json.gz", "rt", encoding="utf-8") as fh:
            p = _sharegpt(json.load(fh))
    else:
        raise KeyError(name)
    return p, src


CORPORA = ["gpteacher_codegen", "gpteacher_roleplay", "gpteacher_toolformer", "alpaca_en_demo", "identity",
           "glaive_toolcall", "codealpaca", "alpaca_safety", "dolly_safety", "sharegpt", "t0"]


def load_mix(root: Path, t0_max: int = 25000, sharegpt_max: int | None = None, seed: int = 0) -> Pairs:
    """All clean corpora (t0 and ShareGPT subsampled); ``source`` = corpus name."""
    rng = np.random.default_rng(seed)
    ins, res, src = [], [], []
    for name in CORPORA:
        p, _ = load_corpus(name, root)
        cap = t0_max if name == "t0" else sharegpt_max if name == "sharegpt" else None
        if cap is not None and len(p) > cap:
            idx = np.sort(rng.choice(len(p), cap, replace=False))
            p = [p[i] for i in idx]
        ins += [a for a, _ in p]
        res += [b for _, b in p]
        src += [name] * len(p)
    return Pairs.from_lists(ins, res, src)
