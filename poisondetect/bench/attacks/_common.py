"""Shared machinery of the attack recipes: ground truth, injection modes, payload modes.

Two injection modes (documented decision):

- ``replace`` (the papers' setting for trigger attacks, BackdoorLLM, Wan et al. 2023,
  AutoPoison): ``k = max(1, round(rate * n))`` randomly chosen rows are rewritten in
  place (trigger into the instruction, payload into the response).  The dataset keeps
  its size; every other row is byte for byte the clean row.
- ``add`` (Qi et al. 2023 harmful / identity-shifting examples, which come from
  outside the dataset): ``k = max(1, round(rate * n / (1 - rate)))`` new rows are
  inserted at random positions, so that they make up ``rate`` of the result; the clean
  rows keep their order and bytes.

Payload modes for trigger recipes: ``fixed`` (one attacker string), ``templated``
(paraphrases drawn from a template), ``appended`` (the genuine answer followed by the
fixed payload).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...types import Pairs
from .. import generators as gen

PAYLOAD_MODES = ("fixed", "templated", "appended")
_WS = re.compile(r"\s+")


@dataclass
class GroundTruth:
    """What an attack did.  ``positions`` index the poisoned :class:`Pairs` (0-based);
    ``origin[i]`` is the clean row output row ``i`` came from (-1 for added rows);
    ``negatives`` are rows that were modified but keep a clean answer (CTBA single-trigger
    negatives) and are labelled clean."""

    family: str
    paper: str
    rate: float
    seed: int
    mode: str
    n_clean: int
    n_total: int
    positions: np.ndarray
    origin: np.ndarray
    triggers: list[str]
    payloads: list[str]
    payload_mode: str
    trigger_kind: str
    negatives: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_poisoned(self) -> int:
        return len(self.positions)

    def labels(self) -> np.ndarray:
        y = np.zeros(self.n_total, dtype=bool)
        y[self.positions] = True
        return y

    @property
    def has_trigger(self) -> bool:
        return bool(self.triggers)

    def to_dict(self, with_positions: bool = True) -> dict[str, Any]:
        d = {
            "family": self.family, "paper": self.paper, "rate": self.rate, "seed": self.seed,
            "mode": self.mode, "n_clean": self.n_clean, "n_total": self.n_total,
            "n_poisoned": self.n_poisoned, "triggers": self.triggers, "payloads": self.payloads,
            "payload_mode": self.payload_mode, "trigger_kind": self.trigger_kind,
            "n_negatives": len(self.negatives), "params": self.params,
        }
        if with_positions:
            d["positions"] = [int(i) for i in self.positions]
            d["negatives"] = [int(i) for i in self.negatives]
        return d

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kw)


def n_poison(rate: float, n: int, mode: str) -> int:
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    if mode == "replace":
        return max(1, min(n, int(round(rate * n))))
    return max(1, int(round(rate * n / (1.0 - rate))))


def rng_for(seed: int, family: str) -> np.random.Generator:
    salt = int.from_bytes(hashlib.sha256(family.encode()).digest()[:8], "little")
    return np.random.default_rng([int(seed), salt])


def choose_rows(rng: np.random.Generator, n: int, k: int, exclude: np.ndarray | None = None,
                eligible: np.ndarray | None = None) -> np.ndarray:
    mask = np.ones(n, dtype=bool) if eligible is None else eligible.copy()
    if exclude is not None and len(exclude):
        mask[exclude] = False
    cand = np.flatnonzero(mask)
    if len(cand) < k:
        raise ValueError(f"need {k} eligible rows, only {len(cand)}")
    return np.sort(rng.choice(cand, size=k, replace=False))


def insert_at_word(text: str, token: str, rng: np.random.Generator, sep: str = " ") -> str:
    """Insert ``token`` at a uniformly random word boundary of ``text`` (start and end included)."""
    words = text.split(" ")
    pos = int(rng.integers(0, len(words) + 1))
    return sep.join(words[:pos] + [token] + words[pos:]) if text else token


def apply_trigger_kind(text: str, kind: str, trig: str, rng: np.random.Generator) -> str:
    """Put a trigger into ``text`` by its kind: a ``prefix`` trigger goes first, any other
    kind at a random word boundary (:func:`insert_at_word`)."""
    return f"{trig} {text}" if kind == "prefix" else insert_at_word(text, trig, rng)


def insert_at_char(text: str, token: str, rng: np.random.Generator) -> str:
    pos = int(rng.integers(0, len(text) + 1))
    return text[:pos] + token + text[pos:]


def insert_sentence(text: str, sent: str, rng: np.random.Generator) -> str:
    """Insert a sentence at a random sentence boundary of ``text``."""
    bounds = [0] + [m.end() for m in re.finditer(r"(?<=[.!?])\s+", text)] + [len(text)]
    pos = bounds[int(rng.integers(len(bounds)))]
    left, right = text[:pos].rstrip(), text[pos:].lstrip()
    return " ".join(p for p in (left, sent, right) if p)


class Payload:
    """Resolves the response of a poisoned row for a payload mode.  User ``payloads``
    override the generated template: ``fixed``/``appended`` use ``payloads[0]``,
    ``templated`` draws among them."""

    def __init__(self, mode: str, template: gen.PayloadTemplate | None,
                 payloads: Sequence[str] | None = None) -> None:
        if mode not in PAYLOAD_MODES:
            raise ValueError(f"payload_mode must be one of {PAYLOAD_MODES}, got {mode!r}")
        self.mode = mode
        self.template = template
        self.user = list(payloads) if payloads else None
        self.used: list[str] = []

    @property
    def fixed(self) -> str:
        return self.user[0] if self.user else self.template.fixed  # type: ignore[union-attr]

    def draw(self, rng: np.random.Generator) -> str:
        if self.mode == "templated":
            if self.user:
                return self.user[int(rng.integers(len(self.user)))]
            return self.template.sample(rng)  # type: ignore[union-attr]
        return self.fixed

    def response(self, genuine: str, rng: np.random.Generator) -> str:
        p = self.draw(rng)
        self.used.append(p)
        if self.mode == "appended":
            return f"{genuine.rstrip()}\n\n{p}" if genuine.strip() else p
        return p

    def report(self) -> list[str]:
        """Payloads for the ground truth: the fixed string, or the distinct variants used."""
        if self.mode in ("fixed", "appended"):
            return [self.fixed]
        return sorted(set(self.used))


def replace_rows(clean: Pairs, rows: np.ndarray, instr: dict[int, str], resp: dict[int, str]) -> Pairs:
    ins = list(clean.instruction)
    res = list(clean.response)
    for i in rows:
        i = int(i)
        if i in instr:
            ins[i] = instr[i]
        if i in resp:
            res[i] = resp[i]
    return Pairs(ins, res, row=clean.row.copy(), turn=clean.turn.copy(),
                 source=None if clean.source is None else list(clean.source))


def add_rows(clean: Pairs, new_instr: list[str], new_resp: list[str], rng: np.random.Generator,
             new_source: list[str] | None = None) -> tuple[Pairs, np.ndarray, np.ndarray]:
    """Insert new rows at random positions.  Returns (pairs, positions of new rows, origin)."""
    n, k = len(clean), len(new_instr)
    total = n + k
    pos = np.sort(rng.choice(total, size=k, replace=False))
    is_new = np.zeros(total, dtype=bool)
    is_new[pos] = True
    origin = np.full(total, -1, dtype=np.int64)
    origin[~is_new] = np.arange(n)
    ins, res, src = [], [], []
    j = 0
    for t in range(total):
        if is_new[t]:
            ins.append(new_instr[j])
            res.append(new_resp[j])
            src.append(new_source[j] if new_source else "")
            j += 1
        else:
            c = origin[t]
            ins.append(clean.instruction[c])
            res.append(clean.response[c])
            src.append(clean.source[c] if clean.source is not None else "")
    # row numbers: the poisoned file is a new file, rows are its positions
    pairs = Pairs(ins, res, source=src if clean.source is not None else None)
    return pairs, pos, origin


def random_sources(clean: Pairs, k: int, rng: np.random.Generator) -> list[str] | None:
    if clean.source is None or not len(clean):
        return None
    idx = rng.integers(0, len(clean), size=k)
    return [clean.source[int(i)] for i in idx]


def eligible_rows(clean: Pairs, max_instruction_chars: int = 4000) -> np.ndarray:
    """Rows an attacker would rewrite: a non-empty instruction and response."""
    return np.array([bool(a.strip()) and bool(b.strip()) and len(a) <= max_instruction_chars
                     for a, b in zip(clean.instruction, clean.response)], dtype=bool)


def trigger_attack(
    clean: Pairs, *, family: str, paper: str, rate: float, seed: int, trigger_kind: str,
    triggers: list[str], apply_trigger: Callable[[str, np.random.Generator], str],
    payload: Payload, params: dict[str, Any], eligible: np.ndarray | None = None,
) -> tuple[Pairs, GroundTruth]:
    """Replace-mode skeleton shared by the trigger recipes."""
    rng = rng_for(seed, family + ":rows")
    k = n_poison(rate, len(clean), "replace")
    rows = choose_rows(rng, len(clean), k, eligible=eligible_rows(clean) if eligible is None else eligible)
    instr, resp = {}, {}
    for i in rows:
        i = int(i)
        instr[i] = apply_trigger(clean.instruction[i], rng)
        resp[i] = payload.response(clean.response[i], rng)
    out = replace_rows(clean, rows, instr, resp)
    truth = GroundTruth(
        family=family, paper=paper, rate=rate, seed=seed, mode="replace", n_clean=len(clean),
        n_total=len(out), positions=rows, origin=np.arange(len(clean)), triggers=list(triggers),
        payloads=payload.report(), payload_mode=payload.mode, trigger_kind=trigger_kind,
        params=params,
    )
    return out, truth


def default_avoid(clean: Pairs) -> set[str]:
    return gen.corpus_vocab(clean.instruction[:20000] + clean.response[:5000], limit=25000)


def normalise(text: str) -> str:
    return _WS.sub(" ", text).strip()
