"""Content injection (AutoPoison, Shu et al. 2023): a brand, entity or URL woven into
answers whose instructions have nothing to do with it.

For every entity-like token of the responses (a capitalised word that does not open a
sentence, a domain/URL; code blocks and inline code are skipped) we count

- ``a``: pairs whose response mentions it while their instruction does not ("off-topic");
- ``b``: pairs whose instruction mentions it.

Ordinary entities are topical: answers mention "Python" or "Paris" when instructions do.
Under the null an entity's off-topic share a/(a+b) is what the dataset's entities
typically show (``p0``, a high quantile of the pooled shares, estimated on the scan
itself), and an injected brand has a far larger one.  One-sided binomial test, BH across
entities.  Significant entities must also be *dispersed*: the instructions of their rows
must be no more alike than random pairs of instructions (TF-IDF cosine), which keeps
topical vocabulary (``Hello World`` in code answers, template words) out.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from itertools import chain
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from scipy.stats import binom

from ..types import DetectorResult, Evidence, Pairs
from ..stats import bh
from ._safety_common import embeddings_or_reason
from .base import Detector, register

_CODE_BLOCK = re.compile(r"```.*?(?:```|$)|`[^`\n]{1,200}`", re.S)
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`)\]}]+", re.I)
_BARE_DOMAIN = re.compile(r"\b[a-z0-9][a-z0-9-]{1,62}\.(?:com|net|org|io|co|info|biz|shop|store|xyz|ly|me|app)\b", re.I)
_TLD_HINT = re.compile(r"\.(?:co|net|org|io|info|biz|shop|store|xyz|ly|me|app)")  # on lower-cased ASCII text
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\u2019&-]*[A-Za-z0-9]|[A-Za-z]")
_SENT_END = set(".!?:;\"'\u201c\u201d(*#>-\n\t|[/{}=")
_CODE_LINE = re.compile(r"[=;{}]|^\s*(?:def|class|import|from|for|while|if|elif|else|return|print|#|//|/\*|\*|<)\b|"
                        r"^\s*[\w.]+\(.*\)\s*$")


_PROSE = re.compile(r"[A-Za-z][\w'\u2019-]*(?:,?[ \t]+[A-Za-z][\w'\u2019&-]*){3,}[.!?]")


def _prose_only(line: str) -> str:
    """A code line with everything blanked but its sentences (4+ words ending in . ! ?),
    e.g. a sentence appended after a closing brace."""
    parts = []
    pos = 0
    if "." in line or "!" in line or "?" in line:  # a sentence ends in one of them
        for m in _PROSE.finditer(line):
            parts.append(" " * (m.start() - pos))
            parts.append(m.group(0))
            pos = m.end()
    parts.append(" " * (len(line) - pos))
    out = "".join(parts)
    if line.endswith("\n"):  # (never inside a sentence, which ends in . ! ?)
        out = out[:-1] + "\n"
    return out


def looks_like_code(text: str, min_share: float = 0.4) -> bool:
    """An answer written as unfenced code (most of its lines are code-shaped): the
    capitalised words of its code and comment lines are not entities woven into prose
    (its prose lines still are read)."""
    lines = [ln for ln in text[:4000].splitlines() if ln.strip()]
    if len(lines) < 2:
        return False
    return len(list(filter(_CODE_LINE.search, lines))) >= min_share * len(lines)
_STOP_CAPS = {"I", "I'm", "I've", "I'll", "I'd", "OK", "Ok", "AI", "A", "The", "This"}


def _strip_code(text: str) -> str:
    if "`" not in text:  # every code span/block needs a backtick
        return text
    return _CODE_BLOCK.sub(lambda m: " " * len(m.group(0)), text)


def _site_name(domain: str) -> str:
    """The name a site is known by: ``developer.mozilla.org`` -> ``mozilla``."""
    parts = domain.lower().split(".")
    return parts[-2] if len(parts) >= 2 else domain.lower()


def _domain(url: str) -> str:
    u = url if "://" in url else "http://" + url
    try:
        host = urlsplit(u).hostname or ""
    except ValueError:
        return ""
    return host[4:] if host.startswith("www.") else host


# The capitalised tokens of ``_WORD`` alone, found without visiting the lower-case ones.
# A ``_WORD`` match opens at the first letter of a maximal run of ``[A-Za-z0-9'\u2019&-]``
# characters (and spans the rest of the run up to its last letter or digit), so a
# capitalised token is: a run start (lookbehind), non-letters of the class, then an
# upper-case letter; group 1 is exactly the ``_WORD`` match there.
_CAP_WORD = re.compile(r"(?<![A-Za-z0-9'\u2019&-])[0-9'\u2019&-]*([A-Z][A-Za-z0-9'\u2019&-]*[A-Za-z0-9]|[A-Z])")


def _entities(text: str, initial: "set[str] | None") -> tuple[dict[str, tuple[int, int]], str]:
    """``response_entities`` without the lower-case counting; also returns the text the
    words were read from (code blanked)."""
    out: dict[str, tuple[int, int]] = {}
    t = _strip_code(text)
    if looks_like_code(text):  # unfenced code: blank its code-shaped lines, keep the prose
        t = "".join(_prose_only(ln) if _CODE_LINE.search(ln) else ln for ln in t.splitlines(keepends=True))
    # prefilters (ASCII texts, where lower() and re.I agree): a URL needs "://" or "www.",
    # a bare domain one of the dotted TLDs
    low = t.lower() if t.isascii() else None
    if low is None or "://" in t or "www." in low:
        for m in _URL.finditer(t):
            raw = m.group(0).rstrip(".,;:!?")
            d = _domain(raw)
            if d and "." in d:
                out.setdefault(d.lower(), (m.start(), m.start() + len(raw)))
    if low is None or _TLD_HINT.search(low):
        for m in _BARE_DOMAIN.finditer(t):
            out.setdefault(m.group(0).lower(), (m.start(), m.end()))
    for m in _CAP_WORD.finditer(t):
        w = m.group(1)
        if w in _STOP_CAPS or len(w) <= 1:  # (a one-letter capitalised token is upper case)
            continue
        key = w[:-2] if w.endswith(("'s", "\u2019s")) else w
        if len(key) < 2:
            continue
        # previous non-space character: sentence-initial capitals are ambiguous
        s0 = m.start(1)
        j = s0 - 1
        while j >= 0 and t[j] == " ":
            j -= 1
        if j < 0 or t[j] in _SENT_END or t[j].isdigit():
            if initial is not None and key not in out:
                initial.add(key)
                out[key] = (s0, m.end())
            continue
        if initial is not None:
            initial.discard(key)
        out.setdefault(key, (s0, m.end()))
    return out, t


def response_entities(text: str, lower_counts: "Counter[str] | None" = None,
                      initial: "set[str] | None" = None) -> dict[str, tuple[int, int]]:
    """Entity-like tokens of a response -> first (start, end) span.

    Capitalised words that open a sentence (or follow a colon, a bullet...) are ambiguous:
    they are returned too, and their keys added to ``initial`` when given, so the caller can
    keep only those the corpus rarely writes in lower case (proper nouns, brands).  When
    ``lower_counts`` is given, every lower-case word of the text is counted into it."""
    out, t = _entities(text, initial)
    if lower_counts is not None:
        lower_counts.update(w for w in _WORD.findall(t) if not w[0].isupper())
    return out


_IWORD = re.compile(r"[a-z0-9][a-z0-9'\u2019&.-]*[a-z0-9]|[a-z0-9]")


def instruction_vocab(text: str) -> set[str]:
    low = text.lower()
    words = set(_IWORD.findall(low))
    # possessive dropped, then trailing dots: a token of _IWORD ends in a letter or digit,
    # so only a possessive-dropped one can end in "." (and only a text with "'s" has one)
    if "'s" in low or "\u2019s" in low:
        poss = {w[:-2] for w in words if w.endswith(("'s", "\u2019s"))}
        words |= poss
        words |= {w.rstrip(".") for w in poss if w.endswith(".")}
    return words


@register
class ContentInjectionDetector(Detector):
    id = "content_injection"
    description = "Entities/brands/URLs that recur in answers to unrelated instructions (AutoPoison-style injection)"
    requires = ()
    weight = 1.0

    def __init__(self, *, min_support: int = 5, alpha: float = 0.01, null_quantile: float = 0.5,
                 max_concentration: float = 0.08, max_explained: float = 0.5, min_off_topic_share: float = 0.5, max_candidates: int = 200,
                 max_lowercase_share: float = 0.1, max_concentration_emb: float = 0.04,
                 flag_min_score: float = 0.75, max_distinct_urls: float = 0.5, random_state: int = 0) -> None:
        self.flag_min_score = flag_min_score
        self.max_distinct_urls = max_distinct_urls
        self.max_concentration_emb = max_concentration_emb
        self.max_lowercase_share = max_lowercase_share
        self.min_support = min_support
        self.alpha = alpha
        self.null_quantile = null_quantile
        self.max_concentration = max_concentration
        self.max_explained = max_explained
        self.min_off_topic_share = min_off_topic_share
        self.max_candidates = max_candidates
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        scores = np.zeros(n)
        if n == 0:
            return DetectorResult.empty(self.id, 0)
        # one pass per distinct response (templated corpora repeat answers); the counts
        # below are per row, so a text's contribution is taken as often as it occurs
        mult = Counter(pairs.response)
        word_counts: Counter[str] = Counter()  # every word; only lower-case ones are looked up
        raw: dict[str, tuple[dict[str, tuple[int, int]], set[str]]] = {}
        cap_counts: Counter[str] = Counter()
        init_counts: Counter[str] = Counter()
        for r, c in mult.items():
            ini: set[str] = set()
            e, t = _entities(r, ini)
            raw[r] = (e, ini)
            words = _WORD.findall(t)
            caps = [k for k in e if k not in ini and "." not in k]
            if c == 1:
                word_counts.update(words)
                cap_counts.update(caps)
                init_counts.update(ini)
            else:
                word_counts.update(words * c)
                cap_counts.update(caps * c)
                init_counts.update(list(ini) * c)
        # a sentence-initial capitalised word counts as an entity only where the corpus
        # rarely writes it in lower case ("Oroix", "McDonald", not "However", "Consider")
        # (a lower-cased key starts with a lower-case letter: the capitalised words counted
        # into word_counts never answer these look-ups)
        drop_of: dict[str, bool] = {}
        for k in init_counts:
            lc = word_counts.get(k.lower(), 0)
            mid = cap_counts.get(k, 0)
            drop_of[k] = lc > self.max_lowercase_share * (init_counts[k] + mid) or \
                mid < max(1.0, self.max_lowercase_share * init_counts[k])
        kept_of: dict[str, tuple[dict[str, tuple[int, int]], list[tuple[str, str, bool]]]] = {}
        for r, (e, ini) in raw.items():
            if ini:
                e = {k: v for k, v in e.items() if not (k in ini and drop_of[k])}
            kept_of[r] = (e, [(k, k.lower(), "." in k) for k in e])
        del raw
        ents = [kept_of[r][0] for r in pairs.response]  # read-only from here (shared by equal texts)
        ivocab = [instruction_vocab(t) for t in pairs.instruction]
        b_count: Counter[str] = Counter(chain.from_iterable(ivocab))
        a_rows: dict[str, list[int]] = defaultdict(list)
        explained: Counter[str] = Counter()
        for i, r in enumerate(pairs.response):
            iv = ivocab[i]
            ilow = None
            for key, k, dotted in kept_of[r][1]:
                if k in iv:
                    explained[key] += 1
                    continue
                if dotted:
                    if ilow is None:
                        ilow = pairs.instruction[i].lower()
                    if k in ilow or _site_name(k) in iv:
                        explained[key] += 1
                        continue
                a_rows[key].append(i)
        keys = [k for k, rows in a_rows.items() if len(rows) >= self.min_support]
        if not keys:
            return DetectorResult(self.id, scores, np.zeros(n, bool), summary={"n_flagged": 0, "n_candidates": 0})
        a = np.array([len(a_rows[k]) for k in keys], dtype=np.float64)
        b = np.array([b_count.get(k.lower(), 0) for k in keys], dtype=np.float64)
        share = a / (a + b)
        # null off-topic share: a high quantile over entities with enough mentions to estimate it
        # estimated over all entities seen at least min_support times (off-topic or not)
        allk = [k for k in set(a_rows) | set(explained) if len(a_rows.get(k, ())) + explained.get(k, 0) >= self.min_support]
        pool_a = np.array([len(a_rows.get(k, ())) for k in allk], dtype=np.float64)
        pool_b = np.array([b_count.get(k.lower(), 0) for k in allk], dtype=np.float64)
        pool = pool_a / np.maximum(1.0, pool_a + pool_b)
        # too few entities to estimate the null: fall back to a conservative 0.5
        p0 = float(np.clip(np.quantile(pool, self.null_quantile), 0.05, 0.995)) if len(pool) >= 20 else 0.5
        pvals = binom.sf(a - 1, a + b, p0)
        q = bh(pvals)
        order = np.lexsort((np.array(keys), -a, pvals))
        cand = [j for j in order if q[j] <= self.alpha and share[j] >= self.min_off_topic_share][: self.max_candidates]
        conc_of: dict[str, float] = {}
        mode, why = "tfidf", "no scan context"
        thr_of: dict[str, float] = {}
        if cand:
            groups = {keys[j]: a_rows[keys[j]] for j in cand}
            emb, why = embeddings_or_reason(ctx, "instruction")
            if emb is not None:
                mode = "embeddings"
                conc_of, thr_of = self._concentration_emb(ctx, groups)
            else:
                conc_of = self._concentration(pairs, groups)
        findings = []
        evidence: dict[int, list[Evidence]] = {}
        kept = []
        self._rejected: list[Any] = []
        for j in cand:
            k = keys[j]
            expl = explained.get(k, 0) / (explained.get(k, 0) + a[j])
            conc = conc_of.get(k, 1.0)
            thr = thr_of.get(k, self.max_concentration)
            rows_k = a_rows[k]
            if "." in k and len(rows_k) >= 3:  # a domain: one planted link, or many reference pages?
                urls = {u.group(0).rstrip("/.,;:!?>").lower() for i in rows_k for u in _URL.finditer(pairs.response[i])
                        if k in _domain(u.group(0))} or {k}
                if len(urls) > self.max_distinct_urls * len(rows_k):
                    self._rejected.append((k, int(a[j]), int(b[j]), float(q[j]), "reference pages", len(urls)))
                    continue
            if conc > thr or expl > self.max_explained:
                self._rejected.append((k, int(a[j]), int(b[j]), float(q[j]), round(float(conc), 3), round(float(expl), 3)))
                continue
            kept.append(k)
            strength = float(min(1.0, -np.log10(max(q[j], 1e-300)) / 8.0))
            s = float(np.clip(0.5 + 0.5 * strength * (1.0 - conc / max(thr, 1e-9)), 0.0, 1.0))
            rows = a_rows[k]
            fid = f"content_injection:{k}"
            findings.append({"id": fid, "kind": "content_injection", "entity": k, "support": len(rows),
                             "n_in_instructions": int(b[j]), "off_topic_share": round(float(share[j]), 4),
                             "null_share": round(p0, 4), "p_value": float(pvals[j]), "q_value": float(q[j]),
                             "instruction_concentration": round(float(conc), 4),
                             "rows": [int(pairs.row[i]) for i in rows[:1000]]})
            for i in rows:
                if s > scores[i]:
                    scores[i] = s
                sp = ents[i][k]
                evidence.setdefault(i, []).append(Evidence(
                    self.id, "off_topic_entity",
                    f"'{k}' appears in {len(rows)} answers to unrelated instructions and in {int(b[j])} instructions "
                    f"(off-topic share {share[j]:.2f} vs {p0:.2f} expected)", value=s, p_value=float(pvals[j]),
                    q_value=float(q[j]), side="response", span=(int(sp[0]), int(sp[1])),
                    span_text=pairs.response[i][sp[0]:sp[1]], finding=fid))
        flags = scores >= self.flag_min_score
        summary = {"n_flagged": int(flags.sum()), "n_candidates": len(keys), "n_significant": len(cand),
                   "entities": kept[:20], "null_share": round(p0, 4),
                   "rejected": [list(x) for x in self._rejected[:20]], "mode": mode}
        info = {"mode": mode, "mode_reason": why if mode != "embeddings" else "instruction embeddings of the scan"}
        return DetectorResult(self.id, scores, flags, evidence, findings, summary, info=info)

    def _concentration_emb(self, ctx: Any, groups: dict[str, list[int]]) -> tuple[dict[str, float], dict[str, float]]:
        """Concentration on mean-centred instruction embeddings: (group mean pairwise cosine -
        background) / (1 - background), and a per-group threshold ``max_concentration_emb`` +
        2 standard errors of a random group of that size (small groups are noisy)."""
        from ..embed.shared import centered, mean_pairwise_sim

        C = centered(ctx, "instruction")
        rng = np.random.default_rng([self.random_state, 11])
        n = len(C)
        bg = rng.choice(n, size=min(400, n), replace=False)
        S = C[bg] @ C[bg].T
        iu = np.triu_indices(len(bg), 1)
        base, sd = float(S[iu].mean()), float(S[iu].std())
        conc, thr = {}, {}
        for k, rows in groups.items():
            r = np.asarray(rows) if len(rows) <= 300 else rng.choice(rows, 300, replace=False)
            m = len(r)
            conc[k] = max(0.0, (mean_pairwise_sim(C[r]) - base) / max(1e-9, 1.0 - base))
            thr[k] = self.max_concentration_emb + 2.0 * sd / np.sqrt(max(1.0, m * (m - 1) / 2.0))
        return conc, thr

    def _concentration(self, pairs: Pairs, groups: dict[str, list[int]]) -> dict[str, float]:
        """How much more alike a group's instructions are than random ones: (mean pairwise
        cosine of the group - background) / (1 - background), TF-IDF word vectors."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        rng = np.random.default_rng([self.random_state, 11])
        n = len(pairs)
        bg = rng.choice(n, size=min(400, n), replace=False)
        sample = {k: (np.asarray(rows) if len(rows) <= 100 else rng.choice(rows, 100, replace=False))
                  for k, rows in groups.items()}
        idx = np.unique(np.concatenate([bg] + list(sample.values())))
        pos = {int(i): p for p, i in enumerate(idx)}
        vec = TfidfVectorizer(sublinear_tf=True, min_df=1, max_features=50000)
        X = vec.fit_transform([pairs.instruction[i][:2000] for i in idx])

        def mean_pair(rows: np.ndarray) -> float:
            M = X[[pos[int(i)] for i in rows]]
            S = (M @ M.T).toarray()
            m = len(rows)
            return float((S.sum() - np.trace(S)) / max(1, m * (m - 1)))

        base = mean_pair(bg)
        return {k: max(0.0, (mean_pair(r) - base) / max(1e-9, 1.0 - base)) for k, r in sample.items()}
