"""Structural / Unicode triggers: invisible characters, homoglyphs, mixed scripts
within a word, unusual casing and punctuation runs.

Pure per-pair analysis with :mod:`unicodedata`; every hit names the exact code points
(``U+200B ZERO WIDTH SPACE``) and their character span, so a reviewer can see what is
hidden in a row.  Ordinary multilingual text is not flagged for being non-Latin: only
*mixing* confusable scripts inside one word is, and zero-width joiners are allowed where
scripts (Arabic, Indic, emoji sequences) need them.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

import numpy as np

from ..types import DetectorResult, Evidence, Pairs
from ._planted import last_request
from .base import MergeableDetector, register

# Characters that render as nothing (or reorder text) but are not ordinary whitespace.
_EXTRA_INVISIBLE = {0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x180E, 0x034F}
_VARIATION_SELECTORS = set(range(0xFE00, 0xFE10)) | set(range(0xE0100, 0xE01F0))
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A)) | {0x200E, 0x200F, 0x061C}
_JOINERS = {0x200C, 0x200D}
# Scripts whose orthography uses ZWJ/ZWNJ (Persian, Arabic, Indic, Sinhala...)
_JOINER_SCRIPTS = ("ARABIC", "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "ORIYA", "TAMIL", "TELUGU",
                   "KANNADA", "MALAYALAM", "SINHALA", "SYRIAC", "MONGOLIAN", "KHMER", "MYANMAR", "HEBREW",
                   "TIBETAN", "THAI", "LAO")

# Latin look-alikes in other scripts (subset of Unicode confusables.txt for the scripts
# that are visually confusable with Latin letters).
_CONFUSABLE_LATIN = set(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u04bb\u0501\u051b\u051d\u0410\u0412\u0415\u041a\u041c"
    "\u041d\u041e\u0420\u0421\u0422\u0423\u0425\u0406\u0408\u0405\u04c0\u050c"  # Cyrillic
    "\u03bf\u03c1\u03b9\u03c7\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1"
    "\u03a4\u03a5\u03a7\u03f2\u03f3"  # Greek
    "\u0561\u0578\u057d\u0585\u0566"  # Armenian
)
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*", re.UNICODE)
_CASE_RE = re.compile(r"[a-z][A-Z]")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_PUNCT_HINTS = ("??", "!!", "?!", "!?", ";;", ",,", "::", "||", "~~", "^^", "....")
_MIXED_WORD_RE = re.compile(r"(?<!\w)\w*(?:[A-Za-z][^\x00-\x7f\W\d_]|[^\x00-\x7f\W\d_][A-Za-z])\w*")
_PUNCT_RUN = re.compile(r"[?!;:,~^|]{2,}|\.{4,}")


def _script(ch: str) -> str:
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return "UNKNOWN"
    if "FULLWIDTH LATIN" in name or name.startswith("MATHEMATICAL"):
        return "LATIN-COMPAT"
    return name.split(" ", 1)[0]


def _cp(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'UNNAMED')}"


def _is_emoji(ch: str) -> bool:
    o = ord(ch)
    return unicodedata.category(ch) == "So" or 0x1F000 <= o <= 0x1FAFF or 0x2600 <= o <= 0x27BF


def _build_candidate_re() -> "re.Pattern[str]":
    ranges = []
    start = prev = None
    for o in list(range(0x80, 0xE000)) + list(range(0xF900, 0x20000)) + list(range(0xE0000, 0xE1000)):
        ch = chr(o)
        cand = unicodedata.category(ch) in ("Cf", "Co", "Cc") or o in _EXTRA_INVISIBLE or o in _VARIATION_SELECTORS or o == 0xAD
        if cand:
            if start is None:
                start = prev = o
            elif o == prev + 1:
                prev = o
            else:
                ranges.append((start, prev))
                start = prev = o
    if start is not None:
        ranges.append((start, prev))
    ranges += [(0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD)]  # private use
    cls = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f" + cls + "]")


_CAND_RE: "re.Pattern[str] | None" = None


def invisible_hits(text: str) -> list[tuple[int, int, list[str], str]]:
    """Runs of invisible / format / private-use characters: (start, end, code points, kind)."""
    global _CAND_RE
    if _CAND_RE is None:
        _CAND_RE = _build_candidate_re()
    hits: list[tuple[int, int, list[str], str]] = []
    n = len(text)
    for m0 in _CAND_RE.finditer(text):
        i = m0.start()
        if hits and i < hits[-1][1]:
            continue
        ch = text[i]
        o = ord(ch)
        cat = unicodedata.category(ch)
        kind = None
        if o in _BIDI:
            kind = "bidi control"
        elif 0xE0000 <= o <= 0xE007F:
            kind = "tag character"
        elif o in _JOINERS:
            prev = text[i - 1] if i > 0 else ""
            nxt = text[i + 1] if i + 1 < n else ""
            ctx_ok = any(_script(c).startswith(_JOINER_SCRIPTS) for c in (prev, nxt) if c) or \
                any(_is_emoji(c) or ord(c) in _VARIATION_SELECTORS or 0x1F3FB <= ord(c) <= 0x1F3FF for c in (prev, nxt) if c)
            kind = None if ctx_ok else "zero-width joiner"
        elif o in _VARIATION_SELECTORS:
            prev = text[i - 1] if i > 0 else ""
            kind = None if (prev and (_is_emoji(prev) or prev in "#*0123456789" or unicodedata.category(prev) in ("So", "Sm", "Lo"))) else "variation selector"
        elif o == 0xFEFF:
            kind = None if i == 0 else "zero-width no-break space (BOM)"
        elif o == 0x00AD:
            kind = "soft hyphen"
        elif 0x2061 <= o <= 0x2064:
            kind = "invisible math operator"
        elif cat == "Cf":
            kind = "invisible format character"
        elif cat == "Co":
            kind = "private-use character"
        elif cat == "Cc" and ch not in "\t\n\r":
            kind = "control character"
        elif o in _EXTRA_INVISIBLE:
            kind = "blank look-alike"
        if kind is None:
            continue
        j = i + 1
        while j < n and j - i < 64 and (ord(text[j]) in _BIDI or 0xE0000 <= ord(text[j]) <= 0xE007F or
                                        unicodedata.category(text[j]) in ("Cf", "Co") or ord(text[j]) in _EXTRA_INVISIBLE):
            j += 1
        cps = []
        for c in text[i:j]:
            if _cp(c) not in cps:
                cps.append(_cp(c))
        distinct = {c for c in text[i:j] if ord(c) not in (0x200E, 0x200F, 0x061C)}
        if len(distinct) >= 2 and kind not in ("bidi control", "tag character"):
            kind = "invisible character sequence"
        elif kind == "zero-width no-break space (BOM)" and _inside_word(text, i, j):
            kind = "invisible format character"
        elif kind in ("invisible format character", "zero-width joiner") and not _inside_word(text, i, j):
            kind += " between words"
        elif kind == "bidi control" and all(ord(c) in (0x200E, 0x200F, 0x061C) for c in text[i:j]):
            kind = "bidi mark"
        elif kind == "control character" and all(0x80 <= ord(c) <= 0x9F for c in text[i:j]):
            kind = "C1 control character"
        hits.append((i, j, cps, kind))
    return hits


def _inside_word(text: str, i: int, j: int) -> bool:
    return i > 0 and j < len(text) and text[i - 1].isalnum() and text[j].isalnum()


def homoglyph_hits(text: str) -> list[tuple[int, int, list[str], str]]:
    """Words that mix Latin with confusable letters of another script, or ASCII letters
    with fullwidth/mathematical compatibility letters."""
    hits = []
    for m in _MIXED_WORD_RE.finditer(text):
        w = m.group(0)
        if len(w) < 2 or w.isascii():
            continue
        scripts = {_script(c) for c in w if c.isalpha()}
        if "LATIN" not in scripts or len(scripts) < 2:
            continue
        odd = [c for c in w if c.isalpha() and _script(c) != "LATIN"]
        if all(c in _CONFUSABLE_LATIN or _script(c) == "LATIN-COMPAT" for c in odd):
            cps = []
            for c in odd:
                if _cp(c) not in cps:
                    cps.append(_cp(c))
            hits.append((m.start(), m.end(), cps, "homoglyph / mixed-script word"))
    return hits


class _Span:
    __slots__ = ("_a", "_b")

    def __init__(self, a: int, b: int) -> None:
        self._a, self._b = a, b

    def start(self) -> int:
        return self._a

    def end(self) -> int:
        return self._b


def casing_hits(text: str) -> list[tuple[int, int, list[str], str]]:
    """Words in alternating case ("tHiS", "sArCaSm") - not camelCase or acronyms."""
    hits = []
    last_end = -1
    n = len(text)
    for m0 in _CASE_RE.finditer(text):
        if m0.start() < last_end:
            continue
        a = m0.start()
        while a > 0 and text[a - 1] in _ALPHA:
            a -= 1
        b = m0.end()
        while b < n and text[b] in _ALPHA:
            b += 1
        last_end = b
        w = text[a:b]
        if len(w) < 4 or (a > 0 and (text[a - 1].isalnum() or text[a - 1] == "_")) or \
                (b < n and (text[b].isalnum() or text[b] == "_")):
            continue
        m = _Span(a, b)
        changes = sum(1 for a, b in zip(w, w[1:]) if a.isupper() != b.isupper())
        if changes < 3:
            continue
        # sArCaSm / jUmpS / lAzY: many one-letter case runs, or a lower->single-capital ending;
        # CamelCase (GitHub, WiFi, McKay, NumPy) has capital+lowercase chunks.
        camel = re.fullmatch(r"(?:[A-Z]{0,3}[a-z]+|[A-Z]{2,})(?:[A-Z][a-z]{2,}|[A-Z]{2,}(?![a-z]))*", w) is not None
        chunks = re.findall(r"[A-Z]*[a-z]*", w)
        chunks = [c for c in chunks if c]
        tiny = sum(1 for c in chunks if len(c) <= 2)
        if (len(chunks) >= 4 and tiny >= len(chunks) - 1) or \
                (len(chunks) >= 3 and tiny >= 2 and re.search(r"[a-z][A-Z]$", w) and not camel):
            hits.append((m.start(), m.end(), [], "alternating case"))
    return hits


def punct_hits(text: str, min_run: int) -> list[tuple[int, int, list[str], str]]:
    hits: list[tuple[int, int, list[str], str]] = []
    if not any(h in text for h in _PUNCT_HINTS):
        return hits
    for m in _PUNCT_RUN.finditer(text):
        s = m.group(0)
        if set(s) <= {".", "~", "|", ":"}:
            continue  # ellipses, markdown tables, separators
        inside_word = m.start() > 0 and m.end() < len(text) and text[m.start() - 1].isalnum() and text[m.end()].isalnum()
        if len(s) >= min_run or inside_word:
            hits.append((m.start(), m.end(), [], "punctuation run" + (" inside a word" if inside_word else "")))
    return hits


@register
class StructuralUnicodeDetector(MergeableDetector):
    id = "structural_unicode"
    severity = "high"  # a trigger or a planted payload group
    description = "Invisible/bidi/tag characters, homoglyph or mixed-script words, alternating case and odd punctuation runs"
    requires = ()
    per_row = False  # weak hits are escalated by corpus-level pattern statistics (mergeable)
    weight = 1.0

    def __init__(self, *, sides: tuple[str, ...] = ("instruction", "response"), punct_min_run: int = 4,
                 check_casing: bool = True, check_punctuation: bool = True, random_state: int = 0) -> None:
        self.sides = sides
        self.punct_min_run = punct_min_run
        self.check_casing = check_casing
        self.check_punctuation = check_punctuation
        self.random_state = random_state

    #: score of a pair by its strongest kind of hit
    _KIND_SCORE = {"bidi control": 1.0, "tag character": 1.0, "zero-width joiner": 0.95,
                   "invisible character sequence": 0.95,
                   "invisible format character": 0.95,
                   "invisible format character between words": 0.5, "zero-width joiner between words": 0.5,
                   "bidi mark": 0.5, "invisible math operator": 0.5, "C1 control character": 0.4, "variation selector": 0.9, "private-use character": 0.4,
                   "control character": 0.5, "blank look-alike": 0.9, "zero-width no-break space (BOM)": 0.5,
                   "soft hyphen": 0.5, "homoglyph / mixed-script word": 0.95, "alternating case": 0.7, "alternating case (single word)": 0.4,
                   "punctuation run": 0.3, "punctuation run inside a word": 0.6}
    _FLAG_MIN = 0.6

    #: a weak hit whose exact invisible sequence also sits in at least this many rows where
    #: it is a strong (flagged) hit, making up at least ``_PATTERN_SHARE`` of its rows, is
    #: escalated: the same hidden sequence recurring across rows is the trigger pattern.
    _PATTERN_MIN_STRONG = 5
    _PATTERN_SHARE = 0.25
    _PATTERN_SCORE = 0.8

    #: a code point in at least this share of the pairs (and ``_TYPICAL_MIN`` pairs) is how
    #: this corpus is written (copy-pasted zero-width spaces, math operators from LaTeX): its
    #: hits still score, below the flag threshold; a planted trigger is tested by the
    #: n-gram detector's association test instead
    _TYPICAL_SHARE = 0.002
    _TYPICAL_MIN = 20
    _TYPICAL_SCORE = 0.45
    _KEEP_KINDS = ("tag character", "bidi control")  # (Trojan Source, ASCII smuggling): always flagged

    def _row_hits(self, pairs: Pairs, i: int) -> list[tuple[str, str, int, int, list[str], str]]:
        out = []
        for side in self.sides:
            text = pairs.instruction[i] if side == "instruction" else pairs.response[i]
            hits = [] if text.isascii() else invisible_hits(text) + homoglyph_hits(text)
            if self.check_casing:
                hits += casing_hits(text)
            if self.check_punctuation:
                hits += punct_hits(text, self.punct_min_run)
            if side == "instruction" and int(pairs.turn[i]) > 0:
                # earlier turns were scored with their own pair: keep the new user turn only
                start = len(text) - len(last_request(text))
                hits = [h for h in hits if h[0] >= start]
            n_case = len({text[s:e] for (s, e, _c, k) in hits if k == "alternating case"})
            for (s, e, cps, kind) in hits[:20]:
                if kind == "alternating case" and n_case < 2:
                    kind = "alternating case (single word)"
                out.append((side, text, s, e, cps, kind))
        return out

    def _hits(self, pairs: Pairs, ctx: Any) -> list[list[tuple[str, str, int, int, list[str], str]]]:
        def make() -> list:
            return [self._row_hits(pairs, i) for i in range(len(pairs))]
        if ctx is None or not hasattr(ctx, "shared"):
            return make()
        # the context's own pairs are named by the key alone (a stable stage name in the
        # timings); other pairs (a streamed chunk's) by their object too
        own = getattr(ctx, "pairs", None) is pairs
        key = ("structural_hits", tuple(self.sides), self.punct_min_run, self.check_casing, self.check_punctuation,
               *(() if own else (id(pairs),)))
        return ctx.shared(key, make)

    def partial_stats(self, pairs: Pairs, ctx: Any) -> dict[str, list[int]]:
        """Invisible sequence -> [rows where it is a strong hit, rows where it occurs]."""
        st: dict[str, list[int]] = {"\x00n": [len(pairs), 0]}
        for hits in self._hits(pairs, ctx):
            for c in {c for h in hits for c in h[4]}:  # pairs per code point
                st.setdefault("\x00cp:" + c, [0, 0])[0] += 1
            seen: dict[str, bool] = {}
            for (_side, text, s, e, cps, kind) in hits:
                if not cps or kind.startswith("homoglyph"):
                    continue
                seq = text[s:e]
                seen[seq] = seen.get(seq, False) or self._KIND_SCORE.get(kind, 0.5) >= self._FLAG_MIN
            for seq, strong in seen.items():
                c = st.setdefault(seq, [0, 0])
                c[0] += int(strong)
                c[1] += 1
        return st

    def merge_stats(self, a: dict[str, list[int]], b: dict[str, list[int]]) -> dict[str, list[int]]:
        out = {k: list(v) for k, v in a.items()}
        for k, v in b.items():
            c = out.setdefault(k, [0, 0])
            c[0] += v[0]
            c[1] += v[1]
        return out

    def score(self, pairs: Pairs, ctx: Any, stats: dict[str, list[int]]) -> DetectorResult:
        n = len(pairs)
        scores = np.zeros(n)
        evidence: dict[int, list[Evidence]] = {}
        counts: dict[str, int] = {}
        cp_rows: dict[str, list[int]] = {}
        n_escalated = 0
        stats = stats or {}
        n_all = stats.get("\x00n", [n])[0]
        typical_at = max(self._TYPICAL_MIN, self._TYPICAL_SHARE * n_all)
        typical = {k[4:] for k, v in stats.items() if k.startswith("\x00cp:") and v[0] >= typical_at}
        n_typical = 0
        for i, hits in enumerate(self._hits(pairs, ctx)):
            ev: list[Evidence] = []
            best = 0.0
            for (side, text, s, e, cps, kind) in hits:
                sc = self._KIND_SCORE.get(kind, 0.5)
                msg_extra = ""
                if cps and sc < self._FLAG_MIN:
                    strong, total = stats.get(text[s:e], (0, 0))
                    if strong >= self._PATTERN_MIN_STRONG and strong >= self._PATTERN_SHARE * total:
                        sc = self._PATTERN_SCORE
                        n_escalated += 1
                        msg_extra = f"; the same sequence is a strong hit in {strong} of its {total} rows"
                if cps and sc > self._TYPICAL_SCORE and kind not in self._KEEP_KINDS and all(c in typical for c in cps):
                    sc = self._TYPICAL_SCORE
                    n_typical += 1
                    msg_extra += f"; common in this corpus (in >= {int(typical_at)} pairs), not flagged alone"
                best = max(best, sc)
                counts[kind] = counts.get(kind, 0) + 1
                for c in cps:
                    cp_rows.setdefault(c, []).append(int(pairs.row[i]))
                msg = f"{kind} in {side}" + (f": {', '.join(cps)}" if cps else "") + f" at chars {s}-{e}" + msg_extra
                ev.append(Evidence(self.id, kind.replace(" ", "_"), msg, value=sc, side=side, span=(s, e),
                                   span_text=text[s:e]))
            if ev:
                scores[i] = best
                evidence[i] = ev
        flags = scores >= self._FLAG_MIN
        findings = []
        for cp, rows in sorted(cp_rows.items(), key=lambda kv: -len(kv[1])):
            urows = sorted(set(rows))
            findings.append({"id": f"structural:{cp.split(' ')[0]}", "kind": "structural_codepoint", "codepoint": cp,
                             "support": len(urows), "rows": urows[:1000]})
        summary = {"n_flagged": int(flags.sum()), "hits_by_kind": counts, "n_codepoints": len(cp_rows),
                   "n_escalated_by_pattern": n_escalated, "n_hits_corpus_typical": n_typical,
                   "typical_codepoints": sorted(typical)[:20]}
        return DetectorResult(self.id, scores, flags, evidence, findings, summary,
                              info={"flag_min_score": self._FLAG_MIN})
