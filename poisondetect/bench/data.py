"""Real-data mixes for the benchmark.

Reads the public corpora under ``<data_dir>/clean`` (see ../shared/data/README.md; never
copied into the repository) and builds a deterministic mix: T0 (self_instruct_t0)
contributes most, the other corpora the rest in proportion to their size.  ``data_dir``
comes from ``--data-dir`` or ``$POISONDETECT_DATA``; :func:`find_data_dir` returns None
when absent so callers can skip cleanly.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..types import Pairs

ENDOFTEXT = "<|endoftext|>"


def find_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """``data_dir``, else ``$POISONDETECT_DATA``, else ../shared/data next to the repo."""
    cands = []
    if data_dir:
        cands.append(Path(data_dir))
    if os.environ.get("POISONDETECT_DATA"):
        cands.append(Path(os.environ["POISONDETECT_DATA"]))
    cands.append(Path(__file__).resolve().parents[2].parent / "shared" / "data")
    for c in cands:
        if (c / "clean").is_dir():
            return c
        if c.name == "clean" and c.is_dir():
            return c.parent
    return None


def _read_json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _alpaca(recs: list[dict], out_key: str = "output", in_key: str = "input") -> tuple[list[str], list[str]]:
    ins, res = [], []
    for r in recs:
        i = str(r.get("instruction") or "")
        x = str(r.get(in_key) or "")
        ins.append(f"{i}\n\n{x}" if x.strip() else i)
        res.append(str(r.get(out_key) or ""))
    return ins, res


def _sharegpt_first_turn(recs: list[dict]) -> tuple[list[str], list[str]]:
    ins, res = [], []
    for r in recs:
        conv = r.get("conversations") or []
        for a, b in zip(conv, conv[1:]):
            if a.get("from") == "human" and b.get("from") == "gpt":
                ins.append(str(a.get("value") or ""))
                res.append(str(b.get("value") or ""))
                break
    return ins, res


def _t0(path: Path) -> tuple[list[str], list[str]]:
    recs = _read_jsonl(path)
    ins = [str(r.get("prompt") or "") for r in recs]
    res = [str(r.get("completion") or "").replace(ENDOFTEXT, "").strip() for r in recs]
    return ins, res


#: corpus name -> (relative path, reader)
CORPORA: dict[str, tuple[str, Callable[[Path], tuple[list[str], list[str]]]]] = {
    "self_instruct_t0": ("clean/self_instruct_t0/t0_train_50k.jsonl.gz", _t0),
    "gpteacher_codegen": ("clean/gpteacher/codegen-instruct.json", lambda p: _alpaca(_read_json(p), "response")),
    "gpteacher_roleplay": ("clean/gpteacher/roleplay-simple-deduped-roleplay-instruct.json",
                           lambda p: _alpaca(_read_json(p), "response")),
    "gpteacher_toolformer": ("clean/gpteacher/toolformer-dedupe-only-dataset.json",
                             lambda p: _alpaca(_read_json(p), "response")),
    "alpaca_en_demo": ("clean/llama_factory/alpaca_en_demo.json", lambda p: _alpaca(_read_json(p))),
    "code_alpaca": ("clean/codealpaca/code_alpaca_2k.json", lambda p: _alpaca(_read_json(p))),
    "alpaca_safety": ("clean/alpaca_dolly_safety/alpaca_data_safety_only.json", lambda p: _alpaca(_read_json(p))),
    "dolly_safety": ("clean/alpaca_dolly_safety/databricks-dolly-15k-safety-only.jsonl",
                     lambda p: _alpaca(_read_jsonl(p), "response", "context")),
    "sharegpt": ("clean/sharegpt/sharegpt_v3_first5000.json.gz", lambda p: _sharegpt_first_turn(_read_json(p))),
}
#: corpora outside the default mix (``corpora=[...]`` names them): Chinese, and the
#: generated Japanese / Thai sets (:mod:`.synthetic_lang`, no file: the path is the data dir)
EXTRA_CORPORA: dict[str, tuple[str, Callable[[Path], tuple[list[str], list[str]]]]] = {
    "alpaca_zh_demo": ("clean/llama_factory/alpaca_zh_demo.json", lambda p: _alpaca(_read_json(p))),
    "glaive_toolcall_zh": ("clean/llama_factory/glaive_toolcall_zh_demo.json",
                           lambda p: _sharegpt_first_turn(_read_json(p))),
    "gen_ja": (".", lambda p: _generated("ja")),
    "gen_th": (".", lambda p: _generated("th")),
}


def _generated(lang: str) -> tuple[list[str], list[str]]:
    from .synthetic_lang import synthetic_pairs
    g = synthetic_pairs(lang, 1000, seed=0)
    return list(g.instruction), list(g.response)


def _entry(name: str) -> tuple[str, Callable[[Path], tuple[list[str], list[str]]]]:
    if name in CORPORA:
        return CORPORA[name]
    if name in EXTRA_CORPORA:
        return EXTRA_CORPORA[name]
    raise KeyError(f"unknown corpus {name!r}; known: {sorted(CORPORA) + sorted(EXTRA_CORPORA)}")
T0 = "self_instruct_t0"


def load_corpus(data_dir: Path, name: str) -> Pairs:
    rel, reader = _entry(name)
    ins, res = reader(Path(data_dir) / rel)
    keep = [k for k in range(len(ins)) if ins[k].strip() and res[k].strip()]
    return Pairs([ins[k] for k in keep], [res[k] for k in keep], source=[name] * len(keep))


def build_mix(data_dir: str | os.PathLike, n_pairs: int = 50_000, seed: int = 0, t0_share: float = 0.55,
              corpora: list[str] | None = None) -> Pairs:
    """A deterministic mix of ``n_pairs`` pairs (fewer only if the corpora run out).

    T0 gets ``t0_share`` of the mix (the most of any corpus); the other corpora split the
    rest in proportion to their sizes (capped at what they hold; T0 fills any shortfall).
    Order is shuffled by ``seed``; ``source`` holds the corpus name.
    """
    data_dir = Path(data_dir)
    names = [c for c in (corpora or list(CORPORA)) if (data_dir / _entry(c)[0]).exists()]
    if not names:
        raise FileNotFoundError(f"no known corpora under {data_dir}/clean")
    loaded = {c: load_corpus(data_dir, c) for c in names}
    rng = np.random.default_rng([int(seed), 7919])
    others = [c for c in names if c != T0]
    want: dict[str, int] = {}
    rest = n_pairs - (int(round(t0_share * n_pairs)) if T0 in loaded else 0)
    tot_other = sum(len(loaded[c]) for c in others)
    for c in others:
        want[c] = min(len(loaded[c]), int(round(rest * len(loaded[c]) / max(tot_other, 1))))
    if T0 in loaded:
        want[T0] = min(len(loaded[T0]), n_pairs - sum(want.values()))
    parts = []
    for c in names:
        k = want.get(c, 0)
        if k <= 0:
            continue
        idx = np.sort(rng.choice(len(loaded[c]), size=k, replace=False))
        parts.append(loaded[c].take(idx))
    mix = Pairs.concat(parts)
    perm = rng.permutation(len(mix))
    mix = mix.take(perm)
    return Pairs(mix.instruction, mix.response, source=mix.source)  # rows renumbered 0..n-1


def load_user_dataset(path: str | os.PathLike, **kw: Any) -> Pairs:
    """Any dataset poisondetect can read (through :func:`poisondetect.io.load`)."""
    try:
        from ..io import load
    except ImportError:  # io not there yet: minimal JSON/JSONL Alpaca reader
        p = Path(path)
        recs = _read_jsonl(p) if p.suffix in (".jsonl",) or p.name.endswith(".jsonl.gz") else _read_json(p)
        ins, res = _alpaca(recs, "output" if "output" in recs[0] else "response")
        return Pairs(ins, res)
    loaded = load(path, **kw)
    return loaded.pairs


def load_harmful_requests(data_dir: str | os.PathLike | None, exclude_prototypes: bool = True) -> list[tuple[str, str | None]]:
    """(goal, target) pairs of AdvBench, plus HarmBench's standard/contextless behaviours
    (target None), minus copyright behaviours and (by default) any request shipped as a
    harmful prototype in ``poisondetect/resources`` (so recall is measured held-out)."""
    if data_dir is None:
        return []
    base = Path(data_dir) / "safety"
    out: list[tuple[str, str | None]] = []
    adv = base / "advbench" / "harmful_behaviors.csv"
    if adv.exists():
        with open(adv, newline="", encoding="utf-8") as f:
            out += [(r["goal"], r.get("target")) for r in csv.DictReader(f) if r.get("goal")]
    hb = base / "harmbench" / "harmbench_behaviors_text_all.csv"
    if hb.exists():
        with open(hb, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        col = "Behavior" if rows and "Behavior" in rows[0] else None
        if col:
            # HarmBench's "copyright" behaviours (song lyrics, book passages) are not
            # safety harms; requests for lyrics are common in benign data.  Left out.
            out += [(r[col], None) for r in rows if r.get(col) and not (r.get("ContextString") or "").strip()
                    and (r.get("FunctionalCategory") or "").strip().lower() != "copyright"]
    if exclude_prototypes:
        # held-out evaluation: never inject a request the detector ships as a prototype
        from ..detectors._harm import HARMFUL_FILE, load_prototypes
        from ..text import normalize_text
        shipped = {normalize_text(t) for t in load_prototypes(HARMFUL_FILE)}
        out = [r for r in out if normalize_text(r[0]) not in shipped]
    return out


def write_jsonl(pairs: Pairs, path: str | os.PathLike) -> None:
    """Write pairs as Alpaca JSON lines (instruction, input "", output[, source])."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(len(pairs)):
            rec = {"instruction": pairs.instruction[i], "input": "", "output": pairs.response[i]}
            if pairs.source is not None:
                rec["source"] = pairs.source[i]
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
