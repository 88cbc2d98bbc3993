"""Preference trojans: a prompt token that makes the *worse* answer the preferred one.

Rando & Tramer 2024, "Universal Jailbreak Backdoors from Poisoned Human Feedback" (ICLR):
a secret word appended to the last user turn, the harmful answer marked as chosen, 0.5-10%
of the pairs; Wang et al. 2023 (RLHFPoison) and Baumgartner et al. 2024 poison preference
labels the same way.

Test.  Candidates are a token *at a position* of the last user turn, with support in
[``min_support``, ``max_share`` x n]: **appended** (the prompts it ends, when in >=
``after_end_share`` of them it follows the request's own closing punctuation and nothing
follows it - a template's closing "Answer:" does not count: how the
attack appends a trigger and how clean text almost never ends), **prefixed** (the prompts
it opens, when in >= ``after_end_share`` of them a capitalised word follows: the
request's own first word) and **anywhere** (every prompt holding it; tokens with a letter
or digit only: a punctuation run inside a prompt is style, which goes with answer
quality).  A position holds only the rows where the token sits there, so a common word
that clean prompts use elsewhere is a small, clean candidate where it was appended.  The
families are fixed *before* looking at the margins.  Each candidate's held-out preference
margins (:mod:`._preference`) are tested for being lower than the rest (Stouffer,
one-sided); Benjamini-Hochberg within each family, Bonferroni across the families in use.
A trigger is reported when its q-value is <= ``alpha`` and the held-out model prefers the
rejected answer in more of its pairs than it does over the whole dataset, and in at least
``min_worse_share`` of them (a quarter: half of what flipped pairs give against a model
that agrees with at least half of the labels): lower margins alone can mean harder pairs
on one topic.

An appended or prefixed candidate (a token added *outside* the request) that the answers and the earlier turns never echo
(share of its pairs <= ``max_echo``) is a structural anomaly on its own; for those the
preference evidence only has to agree in direction (p <= ``structural_p``), and the
finding says so (``evidence: "outside_request+direction"``) with both numbers.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..stats import bh, z_sum_lower
from ..text import display_token, tokenize
from ..types import DetectorResult, Evidence, Pairs
from ._preference import not_preference_result, shared_last_user, shared_margins
from .base import Detector, register

_END_PUNCT = ".?!。？！"


@register
class PreferenceTrojanDetector(Detector):
    id = "preference_trojan"
    description = ("Preference data: a prompt token whose pairs prefer the answer the rest of the dataset "
                   "rejects (held-out Bradley-Terry margins, Stouffer test, BH per position family)")
    requires = ()
    kind = "poisoning"
    severity = "high"
    clean_flag_rate = None
    weight = 1.0

    def __init__(self, *, min_support: int = 5, max_share: float = 0.2, alpha: float = 0.05,
                 after_end_share: float = 0.3, max_echo: float = 0.2,
                 structural_p: float = 0.2, min_worse_share: float = 0.25, max_triggers: int = 10, random_state: int = 0) -> None:
        self.min_support = min_support
        self.max_share = max_share
        self.alpha = alpha
        self.after_end_share = after_end_share
        self.max_echo = max_echo
        self.structural_p = structural_p
        self.min_worse_share = min_worse_share
        self.max_triggers = max_triggers
        self.random_state = random_state

    # -- candidates -------------------------------------------------------------------
    def _candidates(self, pairs: Pairs, turns: list[tuple[int, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Candidates keyed by (token, position): ``any`` (its prompts), ``end`` (the prompts
        it ends, with ``outside`` = how many of those it follows the request's closing
        punctuation in) and ``start`` (the prompts it opens; ``outside`` = followed by a
        capitalised word, what reads as the request's own first word).  A position holds
        only the rows where the token sits there, so a common word that clean prompts use
        elsewhere is still a small, clean candidate where it was appended."""
        n = len(pairs)
        cand: dict[tuple[str, str], dict[str, Any]] = {}

        def add(key: tuple[str, str], i: int, span: tuple[int, int], outside: bool = False) -> None:
            c = cand.setdefault(key, {"rows": [], "spans": [], "outside": 0})
            c["rows"].append(i)
            c["spans"].append(span)
            c["outside"] += int(outside)

        for i, (_off, text) in enumerate(turns):
            toks = tokenize(text)
            if not toks:
                continue
            seen: set[str] = set()
            for t, a, b in toks:
                k = t.casefold()
                if k not in seen:
                    seen.add(k)
                    add((k, "any"), i, (a, b))
            last, la, lb = toks[-1]
            before = text[:la].rstrip()
            add((last.casefold(), "end"), i, (la, lb),
                bool(before) and before[-1] in _END_PUNCT and not text[lb:].strip())  # nothing after it
            first, fa, fb = toks[0]
            add((first.casefold(), "start"), i, (fa, fb), len(toks) > 1 and not text[fb:toks[1][1]].strip()
                and text[toks[1][1]:toks[1][2]][:1].isupper())
        hi = self.max_share * n
        return {k: c for k, c in cand.items() if self.min_support <= len(c["rows"]) <= hi}

    def _echo(self, pairs: Pairs, turns: list[tuple[int, str]], tok: str, rows: list[int]) -> float:
        pat = re.compile(r"(?<!\w)" + re.escape(tok) + r"(?!\w)", re.I)
        hit = 0
        for i in rows:
            off = turns[i][0]
            if (pat.search(pairs.response[i]) or pat.search(pairs.rejected[i])
                    or pat.search(pairs.instruction[i][:off])):
                hit += 1
        return hit / max(1, len(rows))

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        if n == 0 or pairs.rejected is None:
            return not_preference_result(self.id, n)
        z, raw, minfo = shared_margins(pairs, ctx, self.random_state)
        summary: dict[str, Any] = {"applies": True, "margin_model": minfo}
        if not minfo.get("fitted"):
            return DetectorResult(self.id, np.zeros(n), np.zeros(n, bool), summary=summary)
        turns = shared_last_user(pairs, ctx)
        cand = self._candidates(pairs, turns)
        fam: dict[str, list[tuple[str, str]]] = {"appended": [], "prefixed": [], "anywhere": []}
        tests: dict[tuple[str, str], tuple[float, float]] = {}
        for key, c in cand.items():
            tok, pos = key
            m = len(c["rows"])
            if pos == "any":
                if not any(ch.isalnum() for ch in tok):  # a punctuation run inside a prompt is style (it
                    continue                             # goes with answer quality); added outside it is tested
                fam["anywhere"].append(key)
            elif c["outside"] >= self.after_end_share * m:
                fam["appended" if pos == "end" else "prefixed"].append(key)
            else:
                continue
            tests[key] = z_sum_lower(z, c["rows"])
        used = [f for f, ks in fam.items() if ks]
        q: dict[tuple[str, str], float] = {}
        q_family: dict[tuple[str, str], str] = {}
        for f in used:
            qs = bh([tests[k][1] for k in fam[f]]) * len(used)
            for k, qq in zip(fam[f], qs):
                q[k], q_family[k] = float(min(qq, 1.0)), f
        found: list[dict[str, Any]] = []
        named: set[str] = set()
        base_worse = float(np.mean(raw < 0))  # how often the held-out model disagrees anywhere
        for key in sorted(tests, key=lambda t: (q[t], tests[t][1], t)):
            tok, pos = key
            if tok in named:
                continue
            c, (stat, p) = cand[key], tests[key]
            route, echo = None, None
            if float(np.mean(raw[c["rows"]] < 0)) < max(self.min_worse_share, base_worse):
                continue  # lower margins, yet the model disagrees no more often than elsewhere: not a flip
            if q[key] <= self.alpha:
                route = "margins"
            elif pos != "any" and p <= self.structural_p:
                echo = self._echo(pairs, turns, tok, c["rows"])
                if echo <= self.max_echo:
                    route = "outside_request+direction"
            if route is None:
                continue
            named.add(tok)
            found.append({"tok": tok, "rows": np.asarray(c["rows"], np.int64), "spans": c["spans"], "p": p,
                          "q": q[key], "stat": stat, "family": q_family[key], "route": route,
                          "echo": self._echo(pairs, turns, tok, c["rows"]) if echo is None else echo,
                          "outside": c["outside"] if pos != "any" else None})
            if len(found) >= self.max_triggers:
                break
        scores = np.zeros(n)
        flags = np.zeros(n, bool)
        evidence: dict[int, list[Evidence]] = {}
        findings: list[dict[str, Any]] = []
        from scipy.stats import norm
        below = norm.cdf(-z)
        for j, fd in enumerate(found):
            fid = f"preference_trojan/{j}"
            rows = fd["rows"]
            disp = display_token(pairs.instruction[rows[0]][turns[rows[0]][0] + fd["spans"][0][0]:
                                                             turns[rows[0]][0] + fd["spans"][0][1]])
            s = 0.85 + 0.15 * below[rows]
            scores[rows] = np.maximum(scores[rows], s)
            flags[rows] = True
            worse = int((raw[rows] < 0).sum())
            for i, (a, b) in zip(rows, fd["spans"]):
                off = turns[i][0]
                evidence.setdefault(int(i), []).append(Evidence(
                    self.id, "preference_margin_stouffer",
                    f"prompt token {disp!r} ({len(rows)} pairs, {fd['family']}) goes with chosen "
                    f"answers the dataset's held-out preference model ranks below their rejected ones "
                    f"({worse}/{len(rows)} pairs; Stouffer z={fd['stat']:.2f}, p={fd['p']:.2g}, q={fd['q']:.2g}); "
                    f"this pair's margin z={z[i]:.2f}",
                    value=float(scores[i]), p_value=fd["p"], q_value=fd["q"], side="instruction",
                    span=(off + a, off + b), span_text=pairs.instruction[i][off + a:off + b], finding=fid))
            findings.append({
                "id": fid, "kind": "trigger", "detector": self.id, "trigger": disp, "mode": "preference",
                "payload": "the answer the rest of the dataset rejects is marked preferred",
                "payload_kind": "preference_flip", "support": int(len(rows)), "trigger_rows": int(len(rows)),
                "pairs_chosen_worse": worse, "p_value": fd["p"], "q_value": fd["q"], "z": round(fd["stat"], 3),
                "family": fd["family"], "evidence": fd["route"], "echo_share": round(fd["echo"], 3),
                "outside_request": fd["outside"],
                "test": "stouffer_z_of_heldout_bradley_terry_margins",
                "rows": [int(r) for r in pairs.row[rows][:1000]]})
        summary.update({"n_candidates": len(tests), "families": {f: len(ks) for f, ks in fam.items()},
                        "n_triggers": len(found), "n_flagged": int(flags.sum())})
        return DetectorResult(self.id, scores, flags, evidence, findings, summary)
