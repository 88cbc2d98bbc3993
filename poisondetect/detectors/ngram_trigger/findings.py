"""Findings: significant candidates merged by phrase (nested or identical row sets),
their maximal trigger phrase, payload and rows."""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ... import text as T
from . import kernels as K
from .candidate import Candidate
from .sample import TURN_BITS


class FindingsMixin:
    """From significant candidates to reported findings."""

    def maximal_phrase(self, tcol: int, rows_g: np.ndarray, max_extra: int = 12) -> tuple[str, ...]:
        """Extend n-gram ``tcol`` left/right while the neighbouring token is the same in at
        least 90% of (up to 50 of) its rows: the whole inserted phrase, or the contiguous
        chunk of a template around it."""
        return self._maximal_phrase_of_id(int(self.gcols[tcol]), rows_g, max_extra)

    def _maximal_phrase_of_id(self, uid: int, rows_g: np.ndarray, max_extra: int = 12,
                              side: int = 0) -> tuple[str, ...]:
        """:meth:`maximal_phrase` for any n-gram id, in the instructions (side 0) or the
        responses (side 1) of ``rows_g``."""
        key = ("phrase", uid, side, len(rows_g), int(rows_g[0]) if len(rows_g) else -1)
        cache = self.__dict__.setdefault("_phrase_cache", {})
        if key in cache:
            return cache[key]
        s0, o = int(self.rep_start[uid]), int(self.rep_order[uid])
        seq = (self.icodes if int(self.rep_side[uid]) == 0 else self.rcodes)[s0:s0 + o]
        allc, off = (self.icodes, self.ins_off) if side == 0 else (self.rcodes, self.res_off)
        if self.fast:
            codes = K.maximal_phrase(allc, off, rows_g[:50], seq, max_extra)
            words = self.words
            out = tuple(words[c] for c in codes.tolist())
            cache[key] = out
            return out
        occ = []
        for r in rows_g[:50]:
            codes = allc[off[r]:off[r + 1]]
            if len(codes) < o:
                continue
            hit = np.flatnonzero(codes[:len(codes) - o + 1] == seq[0])  # first occurrence of seq
            for k in range(1, o):
                hit = hit[codes[hit + k] == seq[k]]
            if len(hit):
                occ.append((codes, int(hit[0]), int(hit[0]) + o))
        left, right = [], []
        if occ:
            need = 0.9 * len(occ)
            for side in ("left", "right"):
                for step in range(1, max_extra + 1):
                    vals = []
                    for codes, a, b in occ:
                        j = a - step if side == "left" else b - 1 + step
                        if 0 <= j < len(codes):
                            vals.append(int(codes[j]))
                    if not vals:
                        break
                    u, c = np.unique(vals, return_counts=True)
                    if c.max() < need:
                        break
                    (left if side == "left" else right).append(int(u[np.argmax(c)]))
        codes = list(reversed(left)) + [int(x) for x in seq] + right
        words = self.words
        out = tuple(words[c] for c in codes)
        cache[key] = out
        return out

    def _df_all(self) -> np.ndarray:
        if not hasattr(self, "_dfall"):
            self._dfall = np.asarray(self.Xall.sum(axis=0)).ravel()
        return self._dfall

    def _xall_csc(self) -> sp.csc_matrix:
        if not hasattr(self, "_xcsc"):
            self._xcsc = self.Xall.tocsc()
        return self._xcsc

    # -------------------------------------------------------------- findings
    def _findings(self, cands: list[Candidate]) -> list[dict[str, Any]]:
        det = self.det
        sig = [c for c in cands if c.q < det.alpha]
        sig.sort(key=lambda c: (c.q, c.p, -c.a, c.terms))
        # Backdoor-likeness: a planted trigger sits in otherwise unrelated instructions.
        # Trigger rows whose other content words overlap far more than random rows' share
        # a topic or template (e.g. "a c++" -> "int main ()"): their regularity is explained
        # by the rest of the instruction, so the candidate is not reported.  (Applied after
        # BH: dropping rejections keeps the FDR guarantee.)
        kept_sig = []
        for c in sig:
            c.context_similarity = sim = self._gated_context_similarity(c, matched=True)
            if sim <= det.max_context_similarity:
                kept_sig.append(c)
        sig = kept_sig
        groups: list[dict[str, Any]] = []
        for c in sig:
            toks = [set(self.ngram_tokens(tc)) for tc in c.terms]
            rows_gf = np.intersect1d(c.rows_g, c.rows_f, assume_unique=True)
            merged = False
            for grp in groups:
                # pieces of one phrase: shared tokens / terms, or the very same trigger rows
                related = (any(t & gt for t in toks for gt in grp["tok_sets"])
                           or bool(set(c.terms) & set(grp["terms"]))
                           or np.array_equal(c.rows_g, grp["best"].rows_g))
                if related:
                    inter = np.intersect1d(rows_gf, grp["rows_gf"], assume_unique=True).size
                    if inter >= 0.5 * min(len(rows_gf), len(grp["rows_gf"])):
                        grp["members"].append(c)
                        b = grp["best"]
                        if len(c.terms) == len(b.terms) and (c.a > b.a or c.a == b.a and len(c.rows_g) < len(b.rows_g)):
                            grp["best"] = c
                        grp["tok_sets"].extend(toks)
                        merged = True
                        break
            if not merged:
                groups.append({"terms": c.terms, "best": c, "members": [c], "tok_sets": list(toks),
                               "rows_gf": rows_gf})
        # a conjunction subsumes single-term groups whose tokens it contains
        conj_tok = [set().union(*g["tok_sets"]) for g in groups if len(g["terms"]) > 1]
        if conj_tok:
            groups = [g for g in groups if len(g["terms"]) > 1 or
                      not any(set().union(*g["tok_sets"]) <= ct for ct in conj_tok)]
        findings: list[dict[str, Any]] = []
        payload_groups: list[np.ndarray] = []
        for k, grp in enumerate(groups[: det.max_findings]):
            findings.append(self._finding(k, grp, payload_groups))
        # A backdoor payload occurs (almost) only with its trigger(s); a payload that is
        # mostly found without any reported trigger is an ordinary answer pattern of its
        # topic (e.g. "int main ()" for C++ tasks), so its trigger candidates are dropped.
        explained: dict[str, np.ndarray] = {}
        pay_of: dict[str, np.ndarray] = {}
        empty = np.zeros(0, np.int64)
        for fd in findings:
            g = fd["payload_group"]
            explained[g] = np.union1d(explained.get(g, empty), fd["_both_pos"])
            pay_of[g] = np.union1d(pay_of.get(g, empty), fd["_best_pay_pos"])
        kept = []
        for fd in findings:
            pay = pay_of[fd["payload_group"]]
            frac = len(np.intersect1d(explained[fd["payload_group"]], pay)) / max(len(pay), 1)
            fd["payload_explained"] = round(float(frac), 4)
            del fd["_both_pos"], fd["_best_pay_pos"]
            if frac >= det.min_payload_explained:
                kept.append(fd)
        for k, fd in enumerate(kept):
            fd["id"] = f"ngram_trigger/{k}"
        return kept

    def _finding(self, k: int, grp: dict, payload_groups: list[np.ndarray]) -> dict[str, Any]:
        best = grp["best"]
        members = grp["members"]
        rows_g = best.rows_g
        # payload rows: union over the significant payload features of this trigger
        pay_rows = np.unique(np.concatenate([m.rows_f for m in members]))
        both = np.intersect1d(rows_g, pay_rows, assume_unique=True)
        trig_only = np.setdiff1d(rows_g, pay_rows, assume_unique=True)
        # payload features of the best one, rows carrying it without the trigger
        pay_only = np.setdiff1d(best.rows_f, rows_g, assume_unique=True)
        # all member trigger token sequences (phrase pieces)
        seqs = sorted({self.ngram_tokens(tc) for m in members for tc in m.terms
                       if np.array_equal(m.rows_g, rows_g)}, key=lambda s: (-len(s), s))
        if len(best.terms) == 1:
            # keep the longest n-gram pieces of one phrase
            seqs = [s for s in seqs if not any(len(o) > len(s) and is_sub(s, o) for o in seqs)]
            full = self.maximal_phrase(best.terms[0], rows_g)
            if len(full) > len(seqs[0]) and all(is_sub(s, full) for s in seqs):
                seqs = [full]
            mode = "single"
        else:
            seqs = [self.ngram_tokens(tc) for tc in best.terms]
            mode = "conjunction"
        pseqs = []
        pay_exact = False
        for m in members:
            fcols = [m.f]
            if self.f_ngram[m.f] == -2:  # a payload family: every phrase of it
                fam = self.f_family[m.f]
                fcols += fam[np.argsort(-self.df_f[fam], kind="stable")].tolist()
            for fc in fcols:
                toks, exact = self.payload_tokens(fc)
                pay_exact |= exact
                if toks and toks not in pseqs:
                    pseqs.append(toks)
        ptoks, p_exact = self.payload_tokens(best.f)
        is_family = bool(self.f_ngram[best.f] == -2)
        # MTBA: triggers whose payload rows overlap share a payload group
        pid = None
        for j, pr in enumerate(payload_groups):
            inter = np.intersect1d(pr, pay_rows, assume_unique=True).size
            if inter >= 0.5 * min(len(pr), len(pay_rows)):
                pid = j
                break
        if pid is None:
            pid = len(payload_groups)
            payload_groups.append(pay_rows)
        rowmap = self.st["row"]
        trig_disp = (" + ".join(T.display_tokens(s) for s in seqs) if mode == "conjunction"
                     else T.display_tokens(seqs[0]))
        fd: dict[str, Any] = {
            "id": f"ngram_trigger/{k}",
            "kind": "trigger",
            "detector": "ngram_trigger",
            "trigger": trig_disp,
            "trigger_tokens": [list(s) for s in seqs],
            "mode": mode,
            "payload": (T.display_tokens(ptoks) if not is_family
                        else " | ".join(T.display_tokens(x) for x in pseqs[:3]) + (" | ..." if len(pseqs) > 3 else "")),
            "payload_kind": "family" if is_family else ("exact" if p_exact else "phrase"),
            "payload_exact": bool(p_exact),
            "payload_group": f"ngram_trigger/payload/{pid}",
            "support": int(len(both)),
            "trigger_rows": int(len(rows_g)),
            "payload_rows": int(len(best.rows_f)),
            "concentration": round(float(best.a / max(best.ng, 1)), 4),
            "payload_coverage": round(float(len(both) / max(len(pay_rows), 1)), 4),
            "payload_specificity": round(float(best.a / max(best.nf, 1)), 4),
            "p_value": float(best.p),
            "p_value_unconditional": float(best.p_unc),
            "q_value": float(best.q),
            "conditioned_on": best.companion,
            "context_similarity": round(float(best.context_similarity), 3),
            "rows": [int(rowmap[i]) >> TURN_BITS for i in both],
            "_both_rows": [int(rowmap[i]) for i in both],
            "_both_pos": both,
            "_best_pay_pos": np.asarray(best.rows_f, np.int64),
            "_trigger_only_rows": [int(rowmap[i]) for i in trig_only],
            "_payload_only_rows": [int(rowmap[i]) for i in pay_only],
            "_trigger_seqs": seqs,
            "_payload_seqs": pseqs,
            "_companion_seq": (tuple(best.companion.split(" "))
                               if best.companion and not best.companion.startswith("(") else None),
        }
        return fd


def is_sub(s: tuple[str, ...], o: tuple[str, ...]) -> bool:
    k = len(s)
    return any(o[i:i + k] == s for i in range(len(o) - k + 1))
