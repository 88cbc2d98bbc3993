"""Payload clusters: groups of pairs whose *responses* are tight while their
*instructions* are unrelated.

A backdoor or a trigger-free injection makes many unrelated prompts produce the same (or
a paraphrased) answer.  Legitimate data groups answers by what was asked, so a tight
response group normally comes with similar instructions (one prompt template, one
topic).  Plain outlier scores miss this: the poisoned rows sit close together.

How it works:

1. HDBSCAN (``leaf`` selection) over the response side's shared kNN graph (cosine
   distances; :func:`poisondetect.embed.shared.response_clusters`).
2. For every cluster: ``resp_tight`` (mean pairwise response similarity rescaled between
   the dataset baseline and 1), ``instr_div`` (1 - mean pairwise instruction similarity,
   relative to random pairs), and ``specificity`` of the medoid response
   (1 - exp(-words / 6): one-word answers such as "Yes" are shared legitimately), all on
   mean-centred embeddings.  ``tight = (resp_tight - tight_floor) / (1 - tight_floor)``
   (topical clusters of long answers reach ~0.7 mean similarity; paraphrases of one
   payload ~0.85+) and ``strength = tight * instr_div**div_power * specificity`` (cubed by default: a
   template whose instructions are 30-40 % alike, e.g. one passage asked about many
   times, must score far below unrelated instructions).
3. Clusters with strength >= ``min_strength`` are *payload clusters* (dataset-level
   finding ``payload_cluster`` with the medoid response and the instruction n-grams over-
   represented in it).  Pair scores are the cluster strength times the pair's closeness
   to the cluster centre.
4. Trigger recovery: for each payload cluster every word 1..3-gram present in at least
   ``min_coverage`` of its instructions is tested for enrichment in the cluster against
   the rest of the data (one-sided hypergeometric test).  BH
   (:func:`poisondetect.stats.bh`) runs over every n-gram that occurs in the cluster's
   instructions (untested ones count with p = 1).  A ``trigger`` finding needs
   q <= ``trigger_q``, coverage and precision (share of the n-gram's rows inside the
   cluster) >= ``min_coverage`` / ``min_precision``, support >= ``min_trigger_support``,
   and the rows holding it (over all payload clusters where it is frequent) must have
   unrelated instructions apart from it (diversity >= ``min_trigger_div``: a prompt
   template is not a trigger) and, when it spans several clusters, still one payload
   (union tightness >= ``tight_floor``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..embed.shared import group_profile, response_clusters, specificity
from ..segment import needs_split
from ..stats import bh, hypergeom_upper
from ..text import token_strings
from ..types import DetectorResult, Evidence, Pairs
from ._planted import explained_reason
from ._preference import shared_margins
from .base import Detector, register


#: words of the turn labels a serialised conversation repeats in every instruction
_ROLE_WORDS = frozenset({"user", "assistant", "system", "tools", "tool", "result", "function", "call"})


def _ngrams(tokens: list[str], max_n: int) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n + 1):
            out.add(tuple(tokens[i:i + n]))
    return out


def _contains(doc: list[str], g: tuple[str, ...]) -> bool:
    n = len(g)
    if n == 1:
        return g[0] in doc
    first = g[0]
    for i in range(len(doc) - n + 1):
        if doc[i] == first and tuple(doc[i:i + n]) == g:
            return True
    return False


@register
class PayloadCluster(Detector):
    id = "payload_cluster"
    severity = "high"  # a trigger or a planted payload group
    description = "tight response clusters with unrelated instructions (paraphrased payloads, topic triggers)"
    requires = ("embeddings",)
    weight = 0.9
    clean_flag_rate = None  # a payload cluster that passed the gates is a group finding

    def __init__(self, *, min_cluster_size: int = 5, min_samples: int = 3, k: int = 15,
                 min_strength: float = 0.3, tight_floor: float = 0.5, max_cluster_frac: float = 0.05,
                 min_coverage: float = 0.6, min_precision: float = 0.5, trigger_q: float = 1e-3,
                 min_trigger_support: int = 5, min_trigger_div: float = 0.8, max_candidates: int = 200,
                 div_power: float = 3.0, gates: bool = True, template_precision: float = 0.6,
                 max_ngram: int = 3, max_words: int = 64, random_state: int = 0) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.k = k
        self.min_strength = min_strength
        self.tight_floor = tight_floor
        self.min_trigger_support = min_trigger_support
        self.max_candidates = max_candidates
        self.min_trigger_div = min_trigger_div
        self.div_power = div_power
        self.gates = gates
        self.template_precision = template_precision
        self.max_cluster_frac = max_cluster_frac
        self.min_coverage = min_coverage
        self.min_precision = min_precision
        self.trigger_q = trigger_q
        self.max_ngram = max_ngram
        self.max_words = max_words
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        evidence: dict[int, list[Evidence]] = {}
        findings: list[dict[str, Any]] = []
        if n < 2 * self.min_cluster_size:
            return DetectorResult(self.id, scores, flags, summary={"n_clusters": 0, "n_payload_clusters": 0})
        labels = response_clusters(ctx, self.min_cluster_size, self.min_samples, self.k)
        R = ctx.embeddings("response")
        n_clusters = int(labels.max() + 1) if len(labels) else 0
        members = [np.flatnonzero(labels == c) for c in range(n_clusters)]
        payload: list[tuple[int, dict[str, Any], float]] = []
        max_size = max(self.min_cluster_size, int(self.max_cluster_frac * n))
        for c, rows in enumerate(members):
            if len(rows) < self.min_cluster_size or len(rows) > max_size:
                continue
            prof = group_profile(ctx, rows)
            spec = specificity(pairs.response[prof["medoid"]])
            tight = float(np.clip((prof["resp_tight"] - self.tight_floor) / max(1e-6, 1 - self.tight_floor), 0, 1))
            strength = tight * prof["instr_div"] ** self.div_power * spec
            prof["specificity"] = spec
            prof["strength"] = float(strength)
            if strength >= self.min_strength:
                payload.append((c, prof, float(strength)))

        # trigger recovery on payload clusters
        tok_cache: dict[int, list[str]] = {}

        def toks(i: int) -> list[str]:
            if i not in tok_cache:
                tok_cache[i] = token_strings(pairs.instruction[i][:4000])
            return tok_cache[i]

        # n-grams frequent in each payload cluster; one test per n-gram over the union of the
        # payload clusters where it is frequent (a paraphrased payload often splits into
        # sibling clusters: the trigger is then frequent in each of them)
        cnts: dict[int, dict[tuple[str, ...], int]] = {}
        seen: set[tuple[str, ...]] = set()
        where: dict[tuple[str, ...], list[int]] = {}
        for c, prof, strength in payload:
            rows = members[c]
            cnt: dict[tuple[str, ...], int] = {}
            for i in rows:
                for g in _ngrams(toks(int(i))[: self.max_words * 4], self.max_ngram):
                    cnt[g] = cnt.get(g, 0) + 1
            cnts[c] = cnt
            seen.update(cnt)
            for g, a_ in cnt.items():
                if a_ >= max(self.min_coverage * len(rows), 3):
                    where.setdefault(g, []).append(c)
        # bound the corpus pass: at most max_candidates n-grams (highest in-cluster support
        # first); untested ones count in BH with p = 1, so the cap is conservative
        cands = sorted(where, key=lambda g: (-sum(cnts[c][g] for c in where[g]), len(g), g))[: self.max_candidates]
        cands.sort()
        df = {g: 0 for g in cands}
        if cands:
            import re
            # (a word of a script without spaces sits inside a \w run: it has no \b around
            # it, so it is looked up as a substring, like punctuation)
            def bounded(t: str) -> bool:
                return (t[:1].isalnum() or t[:1] == "_") and not needs_split(t)

            words = sorted({t for g in cands for t in g if bounded(t)})
            first = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)") if words else None
            # candidates indexed by their first word token, so a row only checks those
            # whose first word it contains (punctuation-only candidates: always checked)
            by_word: dict[str, list[tuple[str, ...]]] = {}
            no_word: list[tuple[str, ...]] = []
            for g in cands:
                w0 = next((t for t in g if bounded(t)), None)
                (by_word.setdefault(w0, []) if w0 is not None else no_word).append(g)
            for i in range(n):
                low = pairs.instruction[i][:4000].lower()
                present = set(first.findall(low)) if first is not None else set()
                pool = [g for w in present for g in by_word.get(w, ())] + no_word
                hit = [g for g in pool  # necessary test: every token occurs in the text
                       if all((t in present) if bounded(t) else (t in low) for t in g)]
                if not hit:
                    continue
                doc = toks(i)
                for g in hit:
                    if _contains(doc, g):
                        df[g] += 1
        tests: list[tuple[tuple[str, ...], int, int, int, float]] = []  # (gram, a, K, m, p)
        for g in cands:
            a_ = sum(cnts[c][g] for c in where[g])
            m = sum(len(members[c]) for c in where[g])
            K = max(df[g], a_)
            tests.append((g, a_, K, m, float(hypergeom_upper(a_, n, K, m))))
        n_untested = len(seen) - len(tests)
        strength_of = {c: st for c, _, st in payload}
        trig_list: list[dict[str, Any]] = []
        if tests:
            pv = np.array([t[4] for t in tests] + [1.0] * n_untested)
            qv = bh(pv)[: len(tests)]
            for (g, a_, K, m, p), q in zip(tests, qv):
                cov, prec = a_ / m, a_ / max(K, 1)
                if (q <= self.trigger_q and cov >= self.min_coverage and prec >= self.min_precision
                        and a_ >= self.min_trigger_support):
                    trig_list.append({"ngram": " ".join(g), "tokens": g, "support": a_, "df": K,
                                      "coverage": cov, "precision": prec, "p_value": p, "q_value": float(q),
                                      "clusters": sorted(where[g])})
        # the trigger's rows across its clusters must still share one payload: sibling
        # clusters of one paraphrased payload do, one template answered with many
        # different long texts (a passage repeated per question) does not
        # and the instructions holding the trigger must be unrelated apart from it: a prompt
        # template ("Build a movie plot around this: ...") is not a trigger
        for t in trig_list:
            rows_t = np.array([int(r) for c in t["clusters"] for r in members[c] if _contains(toks(int(r)), t["tokens"])])
            up = group_profile(ctx, rows_t) if len(rows_t) > 1 else {"resp_tight": 0.0, "instr_div": 0.0}
            t["union_tight"], t["union_div"] = up["resp_tight"], up["instr_div"]
        trig_list = [t for t in trig_list if t["union_div"] >= self.min_trigger_div
                     and (len(t["clusters"]) == 1 or t["union_tight"] >= self.tight_floor)]
        explained: list[dict[str, Any]] = []
        if self.gates:  # "looks planted" gates (a formula, one conversation, an echo)
            kept_t = []
            for t in trig_list:
                rows_t = np.array([int(r) for c in t["clusters"] for r in members[c]
                                   if _contains(toks(int(r)), t["tokens"])])
                why = explained_reason(ctx, rows_t, min_records=self.min_trigger_support, topic=False)
                if why is None:
                    kept_t.append(t)
                else:
                    explained.append({"trigger": t["ngram"], "size": int(len(rows_t)), "reason": why})
            trig_list = kept_t
        trig_list = _merge_nested(trig_list)
        triggers_by_cluster: dict[int, list[dict[str, Any]]] = {}
        for t in trig_list:
            for c in t["clusters"]:
                triggers_by_cluster.setdefault(c, []).append(t)
            rows_t = [int(r) for c in t["clusters"] for r in members[c] if _contains(toks(int(r)), t["tokens"])]
            st = max(strength_of[c] for c in t["clusters"])
            # a BH-significant enriched trigger is far stronger evidence than tightness alone
            scores[rows_t] = np.maximum(scores[rows_t], 1.0 - 0.05 * (1.0 - st))
            best = max(t["clusters"], key=lambda c: (strength_of[c], -c))
            prof_b = next(pr for c, pr, _ in payload if c == best)
            findings.append({
                "id": f"trigger:{self.id}:{t['ngram']}", "kind": "trigger", "detector": self.id,
                "trigger": t["ngram"], "payload": pairs.response[prof_b["medoid"]][:200],
                "q_value": t["q_value"], "p_value": t["p_value"], "support": int(t["support"]),
                "coverage": round(t["coverage"], 4), "precision": round(t["precision"], 4),
                "clusters": [int(c) for c in t["clusters"]], "union_tightness": round(float(t["union_tight"]), 4),
                "union_instruction_diversity": round(float(t["union_div"]), 4),
                "aliases": t.get("aliases", []),
                "rows": sorted(int(pairs.row[r]) for r in rows_t),
            })

        if self.gates:  # clusters without a tested trigger must still look planted
            tested = {c for t in trig_list for c in t["clusters"]}
            kept_p, gated = [], []
            for c, prof, strength in payload:
                why = None if c in tested else (self._template_reason(members[c], cnts[c], df, tests)
                                                or explained_reason(ctx, members[c],
                                                                    min_records=self.min_cluster_size)
                                                or self._preference_reason(pairs, ctx, members[c]))
                if why is None:
                    kept_p.append((c, prof, strength))
                else:
                    gated.append((c, strength))
                    explained.append({"cluster": int(c), "size": int(len(members[c])), "reason": why,
                                      "payload": pairs.response[prof["medoid"]][:120]})
            payload = kept_p
            for c, strength in gated:  # still ranked (a weak signal), never flagged
                scores[members[c]] = np.maximum(scores[members[c]], 0.5 * min(strength, 1.0))

        for c, prof, strength in payload:
            rows = members[c]
            cent = R[rows].mean(0)
            cent /= max(np.linalg.norm(cent), 1e-12)
            close = np.clip(R[rows] @ cent, 0, 1)
            s = np.clip(strength, 0, 1) * (0.5 + 0.5 * close)
            scores[rows] = np.maximum(scores[rows], s)
            flags[rows] = True
            fid = f"payload_cluster:{c}"
            medoid_text = pairs.response[prof["medoid"]]
            trig = triggers_by_cluster.get(c, [])
            findings.append({
                "id": fid, "kind": "payload_cluster", "detector": self.id, "cluster": int(c),
                "size": int(len(rows)), "rows": [int(r) for r in pairs.row[rows]],
                "payload": medoid_text[:500], "medoid_row": int(pairs.row[prof["medoid"]]),
                "strength": round(float(strength), 4), "resp_tight": round(prof["resp_tight"], 4),
                "instr_div": round(prof["instr_div"], 4), "specificity": round(prof["specificity"], 4),
                "enriched_ngrams": [{k: v for k, v in t.items() if k not in ("tokens", "clusters", "union_tight", "union_div")}
                                    for t in trig],
            })
            for j, i in enumerate(rows):
                ev = [Evidence(self.id, "payload_cluster",
                               f"response in a tight cluster of {len(rows)} with unrelated instructions "
                               f"(tightness {prof['resp_tight']:.2f}, instruction diversity {prof['instr_div']:.2f})",
                               value=float(s[j]), side="response", finding=fid)]
                for t in trig:
                    if _contains(toks(int(i)), t["tokens"]):
                        ev.append(Evidence(self.id, "cluster_enrichment",
                                           f"instruction n-gram {t['ngram']!r} is enriched in this payload cluster",
                                           p_value=t["p_value"], q_value=t["q_value"], side="instruction",
                                           span_text=t["ngram"], finding=f"trigger:{self.id}:{t['ngram']}"))
                evidence[int(i)] = ev
        return DetectorResult(
            self.id, scores, flags, evidence, findings,
            summary={"n_clusters": n_clusters, "n_payload_clusters": len(payload),
                     "n_triggers": len(trig_list), "n_explained": len(explained)},
            info={"n_tests": len(tests), "n_untested_ngrams": n_untested, "explained": explained[:50]})

    def _preference_reason(self, pairs: Pairs, ctx: Any, rows: np.ndarray) -> str | None:
        """Preference data: a group of similar chosen answers that the dataset's held-out
        preference model ranks above their rejected alternatives (in most of its pairs) is
        the labellers' consistent policy (e.g. the same clarifying question to many
        red-team prompts), not a payload planted against it."""
        if getattr(pairs, "rejected", None) is None:
            return None
        _z, raw, info = shared_margins(pairs, ctx, self.random_state)
        if not info.get("fitted"):
            return None
        agree = float(np.mean(raw[rows] >= 0))
        return (f"preference data: the held-out preference model prefers most of these chosen answers over the "
                f"rejected ones ({agree:.0%})") if agree >= 0.5 else None

    def _template_reason(self, rows: np.ndarray, cnt: dict[tuple[str, ...], int], df: dict[tuple[str, ...], int],
                         tests: list[tuple[tuple[str, ...], int, int, int, float]]) -> str | None:
        """A phrase of 3+ words in >= 80% of the cluster's instructions that is common
        outside it too (precision < ``template_precision``): a prompt template whose
        answer is the cluster's shared answer (a label), not a planted trigger."""
        m = len(rows)
        for g, a_ in sorted(cnt.items(), key=lambda kv: (-kv[1], kv[0])):
            if a_ < 0.8 * m:
                break
            if len(g) < 3 or g not in df or not all(t[:1].isalnum() and t not in _ROLE_WORDS for t in g):
                continue  # a template is worded: 3+ words, not the role labels of a chat
            K = max(df[g], a_)
            if a_ / K < self.template_precision:
                return f"a prompt template ({' '.join(g)!r} in {a_} of {m} here, {K} rows in all)"
        return None


def _merge_nested(trigs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep one n-gram per phrase: drop an n-gram contained in a longer kept one with at
    least the same support (``openai`` inside ``discussing openai``)."""
    trigs = sorted(trigs, key=lambda t: (-len(t["tokens"]), t["q_value"], t["ngram"]))
    kept: list[dict[str, Any]] = []
    for t in trigs:
        g = t["tokens"]
        if any(len(k["tokens"]) > len(g) and k["support"] >= t["support"]
               and any(k["tokens"][i:i + len(g)] == g for i in range(len(k["tokens"]) - len(g) + 1))
               for k in kept):
            continue
        kept.append(t)
    # overlapping n-grams of one longer phrase ("build a movie", "a movie plot") with the
    # same support and clusters are one finding: keep the best, list the rest as aliases
    kept.sort(key=lambda t: (t["q_value"], -len(t["tokens"]), t["ngram"]))
    out: list[dict[str, Any]] = []
    for t in kept:
        twin = next((o for o in out if o["support"] == t["support"] and o.get("clusters") == t.get("clusters")
                     and set(o["tokens"]) & set(t["tokens"])), None)
        if twin is not None:
            twin.setdefault("aliases", []).append(t["ngram"])
            continue
        out.append(t)
    return out
