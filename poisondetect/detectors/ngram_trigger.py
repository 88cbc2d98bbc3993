"""Trigger -> payload association: instruction n-grams whose presence predicts an
unusually concentrated response.

How it works (no per-n-gram Python loop over the corpus: the tokenising, n-gram index,
co-occurrence and companion counts run in compiled kernels, :mod:`poisondetect.kernels`,
numba, each with a numpy / scipy.sparse reference path that gives identical results and is
used where numba is unavailable, with ``POISONDETECT_NO_NUMBA=1``, or if numba cannot
compile a kernel, which ``info["engine"]`` reports):

1. Both sides are tokenised with :mod:`poisondetect.text` (lower-cased words, punctuation
   runs such as ``??``, invisible characters as tokens of their own).  Instruction
   features are the word 1..``max_n``-grams; response features ("payload signatures") are
   the response word ``response_n``-grams (the whole response when shorter) and the
   normalised exact response.  A response feature that also occurs in the *same* row's
   instruction is not counted for that row (answers copied from the prompt, e.g. a label
   chosen from the options listed in the prompt, are not payloads).
2. Joint counts of every (instruction n-gram g, response feature f) with both document
   frequencies in ``[min_support, max_*_frac * n]`` come from one sparse product
   ``X.T @ Y``.  Candidates must be *concentrated*: ``P(f | g) >= min_concentration`` and
   ``P(g | f) >= min_coverage`` (a backdoor fires nearly every time; several alternative
   triggers can share one payload, so coverage may be 1/k).
3. Each candidate gets a one-sided Fisher exact (hypergeometric) p-value.  If the
   trigger has *companions* (other n-grams, sharing no token with it, present in at
   least ``companion_coverage`` of its rows: the rest of a prompt template, a repeated
   passage, a duplicated instruction), the test is conditional: it is run only among the
   rows holding the most specific companion, so a template phrase whose answers are
   explained by the rest of its template (or a duplicate) gets no evidence.
4. Conjunctions (CTBA): for a payload whose rows are covered by several n-grams none of
   which is concentrated enough alone, pairs and triples of them are tested as "all
   present".
5. Paraphrased payloads (``paraphrase_families``): a trigger whose responses each carry
   *some* phrase of one payload family, though no single phrase is in 90% of them.
   Data splitting keeps the p-value exact: the rows are split at random into halves;
   the family of n-gram g is chosen on the first half (response features seen with g in
   >= 2 rows, at least half of whose rows hold g) and tested on the second (one-sided
   Fisher: do g's rows carry a family phrase more often than the other rows?).  One
   family test per trigger n-gram joins the single-n-gram BH family.  Before reporting,
   a family must look like a planted payload and not a topic's answer style: a short
   trigger (its maximal phrase <= ``family_max_trigger_tokens``), unrelated trigger rows
   (the context gate below), responses made of the family's words (median content-word
   coverage >= ``family_min_response_coverage``), and a variant that does not depend on
   the request (Mantel permutation test between the rows' instruction overlap and the
   overlap of their family phrases: p > ``family_request_dependence_p``).
6. Benjamini-Hochberg (``scipy.stats.false_discovery_control``) over *every* tested
   candidate: all (g, f) pairs whose marginal frequencies qualify (independent
   filtering; pairs never enumerated count with p = 1, which is conservative) plus every
   conjunction and family tried.  n-grams of one phrase (identical or nested row sets)
   are merged into one finding.

Mergeable statistics, bounded memory: ``partial_stats`` is a bottom-k sample sketch of
the batch (the ``sample_size`` pairs with the smallest pseudo-random key, a 64-bit mix of
the pair's row/turn and ``random_state``) and ``merge_stats`` keeps the bottom k of the
union, so the sample never depends on how the input was chunked or sharded.
``finalize_stats`` tokenises the sample and runs steps 1-6 on it, once.

- Up to ``sample_size`` pairs (100,000 by default) the sample is the whole input and the
  analysis is exact.
- Above it, memory stays that of a ``sample_size`` analysis. Each finding of the sample
  becomes a query for one more streamed pass (``verify_stats``). That pass counts, over
  the held-out pairs (those outside the sample), the pairs with the trigger, with the
  payload and with both, within the companion's pairs when the sample's test was
  conditional. It also collects the trigger and payload pairs of the whole input.
  ``finalize_verify`` then gives each finding a one-sided Fisher test on the held-out
  counts and applies BH across the findings verified. The sample chose the findings and
  the held-out pairs never took part in that choice, so these p-values are exact
  (data splitting, as in step 5).
- Sensitivity limit: a trigger must reach ``min_support`` rows *in the sample* to be
  found. At 1M pairs and the default sample that is ~40 poisoned rows (0.004%).
"""
from __future__ import annotations

import contextlib
import gc
import statistics
import time
import unicodedata
from typing import Any, Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import special
from scipy import stats as sstats

from .. import kernels as K
from .. import text as T
from ..errors import ConfigError
from ..types import DetectorResult, Evidence, Pairs
from .base import Detector, register

_EXACT_SALT = np.uint64(0x5EED5EED12345677)


def _as_uint64_hash(strings: list[str]) -> np.ndarray:
    return T.hash_strings(strings)


def _tokenize_side(texts: list[str], chunk: int = 4096) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Reference path: token hashes (flat uint64), per-doc lengths, vocab hash ->
    lower-cased token.  Tokenised ``chunk`` texts at a time, so the Python token strings
    of only one chunk are alive at once (they cost ~60 bytes each; the hashes 8)."""
    vocab: dict[int, str] = {}
    hash_of: dict[str, int] = {}
    parts, lens_all = [], []
    for s0 in range(0, len(texts), chunk):
        flat, lens = T.tokenize_many(texts[s0:s0 + chunk])
        lens_all.append(lens)
        if not flat:
            continue
        arr = np.empty(len(flat), dtype=object)
        arr[:] = flat
        codes, uniq = pd.factorize(arr)
        del flat, arr
        new = [u for u in uniq if u not in hash_of]
        if new:
            low = [u.lower() for u in new]
            for u, lw, h in zip(new, low, _as_uint64_hash(low).tolist()):
                hash_of[u] = h
                vocab[h] = lw
        uh = np.fromiter((hash_of[u] for u in uniq), dtype=np.uint64, count=len(uniq))
        parts.append(uh[codes])
    lens = np.concatenate(lens_all) if lens_all else np.zeros(0, np.int64)
    if not parts:
        return np.zeros(0, np.uint64), lens, {}
    return np.concatenate(parts), lens, vocab


def _raw_codes(texts: list[str], chunk: int = 8192) -> tuple[list[tuple[np.ndarray, list[str]]], np.ndarray]:
    """The compiled tokeniser over ``texts``, ``chunk`` texts a call (bounded transcoding
    buffers): per chunk (codes, the chunk's distinct raw tokens by code), and the tokens
    per text."""
    parts, lens = [], []
    for s0 in range(0, len(texts), chunk):
        got = K.tokenize_codes(texts[s0:s0 + chunk])
        if got is None:  # pragma: no cover - callers check K.available() first
            raise RuntimeError("numba kernels unavailable")
        uniq, codes, ln = got
        parts.append((codes, uniq))
        lens.append(ln)
    return parts, (np.concatenate(lens) if lens else np.zeros(0, np.int64))


def _merge_codes(sides: list[list[tuple[np.ndarray, list[str]]]]) -> tuple[list[np.ndarray], list[str]]:
    """One numbering of the lower-cased tokens over the chunks of :func:`_raw_codes`, in
    order: each side's codes (int64, flat) and code -> lower-cased token.  Each chunk's
    distinct raw tokens are listed in order of first appearance, so factorising their
    lower-cased forms chunk after chunk numbers the tokens in order of first appearance
    over all the texts."""
    chunks = [p for parts in sides for p in parts]
    low = np.empty(sum(len(u) for _, u in chunks), dtype=object)
    low[:] = [u.lower() for _, uniq in chunks for u in uniq]
    ids, words = pd.factorize(low, use_na_sentinel=False)
    del low
    out, at = [], 0
    for parts in sides:
        flat = []
        for codes, uniq in parts:
            m = ids[at:at + len(uniq)].astype(np.int64)
            at += len(uniq)
            flat.append(m[codes])
        out.append(np.concatenate(flat) if flat else np.zeros(0, np.int64))
    return out, words.tolist()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the analysis (restored after it, also on
    error).  The analysis makes few reference cycles but many containers (candidate
    dicts, token lists), and each full collection would walk them and everything else
    alive (the loaded dataset): ~10% of the T0 stage's wall.  Reference counting still
    frees everything as usual."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _jobs(n_jobs: int | None, n_texts: int) -> int:
    """Workers of the analysis: ``n_jobs``, or by default (None) 2 for >= 20,000 texts on
    a machine with >= 2 CPUs when this is a main process (a scan's worker process, e.g.
    ``scan(n_jobs=2)``'s, already shares the CPUs with the rest of the scan).  With the
    compiled kernels they are threads (the kernels release the GIL): the instructions are
    tokenised beside the responses, the n-gram orders are indexed in parallel, the
    payload-family counts run beside the single-candidate counts, scipy's exact tails are
    split; without them, a forked process tokenises part of the instructions.  The result
    does not depend on it (tests/test_kernels.py)."""
    if n_jobs is not None:
        return max(1, int(n_jobs))
    import multiprocessing as mp
    import os
    if n_texts < 20_000 or (os.cpu_count() or 1) < 2 or mp.parent_process() is not None:
        return 1
    return 2


def _fork_pool() -> Any:
    """A one-worker process pool started by fork, or None where there is no fork."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    if "fork" not in mp.get_all_start_methods():  # pragma: no cover - platforms without fork
        return None
    return ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("fork"))


def _exact_hashes(texts: list[str], norm: list[str] | None = None) -> np.ndarray:
    norm = [T.normalize_text(t) for t in texts] if norm is None else norm
    h = _as_uint64_hash(norm)
    empty = np.fromiter((len(s) == 0 for s in norm), bool, len(norm))
    h[empty] = 0
    return h


def _copied_exact(ins: list[str], norm_responses: list[str], exact: np.ndarray, min_support: int,
                  res_len: np.ndarray | None = None, min_tokens: int = 0) -> np.ndarray:
    """Rows whose whole (normalised) response is contained in their (normalised)
    instruction.  Only rows whose exact response occurs at least ``min_support`` times
    and has at least ``min_tokens`` tokens (``res_len``) can make an exact-response
    feature, so only those are checked (the others are False)."""
    out = np.zeros(len(norm_responses), bool)
    _, inv, cnt = np.unique(exact, return_inverse=True, return_counts=True)
    todo = (cnt[inv] >= min_support) & (exact != 0)
    if res_len is not None:
        todo &= res_len >= min_tokens
    for i in np.flatnonzero(todo).tolist():
        e = norm_responses[i]
        if not e:
            continue
        x = ins[i]
        if x.isascii() or unicodedata.is_normalized("NFKC", x):
            # NFKC leaves x alone, so normalising x only lower-cases it and collapses its
            # whitespace runs; e (single spaces) can only be in that if each of its words
            # is in x.lower() (a cheap first check)
            xl = x.lower()
            if all(w in xl for w in e.split(" ")):
                out[i] = e in " ".join(xl.split())
            continue
        out[i] = e in T.normalize_text(x)
    return out


def _ngram_ids(codes: np.ndarray, lens: np.ndarray, max_n: int, V: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer ids of all 1..max_n-grams (unique across orders), their doc, start and order."""
    N = len(lens)
    pos_t = np.int32 if len(codes) < 2**31 - 1 else np.int64  # doc/start arrays: half the memory
    doc = np.repeat(np.arange(N, dtype=pos_t), lens)
    c = codes.astype(np.int64)
    ids, docs, starts, orders = [c], [doc], [np.arange(len(c), dtype=pos_t)], [np.ones(len(c), np.int8)]
    acc = c
    offset = 0
    width = V
    for n in range(2, max_n + 1):
        if len(c) < n:
            break
        same = doc[: len(c) - n + 1] == doc[n - 1:]
        acc = acc[:-1] * V + c[n - 1:]
        offset += width
        width *= V
        ids.append(acc[same] + offset)
        docs.append(doc[: len(c) - n + 1][same])
        starts.append(np.arange(len(c) - n + 1, dtype=pos_t)[same])
        orders.append(np.full(int(same.sum()), n, np.int8))
    return np.concatenate(ids), np.concatenate(docs), np.concatenate(starts), np.concatenate(orders)


def _binary_csr(docs: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(docs), np.float32), (docs, cols)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _jaccard_matrix(M: sp.spmatrix, exclude_cols: set[int] | None = None) -> np.ndarray:
    """Pairwise Jaccard similarities of the rows of binary matrix ``M`` (dense n x n),
    the columns ``exclude_cols`` left out; 0 where both rows are empty."""
    M = sp.csr_matrix(M)
    inter = (M @ M.T).toarray()
    if exclude_cols:
        Tm = M[:, np.fromiter(exclude_cols, np.int64)]
        inter -= (Tm @ Tm.T).toarray()
    size = np.diag(inter).copy()
    union = size[:, None] + size[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _fisher_greater(a: np.ndarray, N: np.ndarray, n_f: np.ndarray, n_g: np.ndarray) -> np.ndarray:
    """One-sided Fisher exact p: P(X >= a), X ~ Hypergeom(N, n_f, n_g)."""
    a = np.asarray(a, float)
    return np.clip(sstats.hypergeom.sf(a - 1, N, n_f, n_g), 0.0, 1.0)


def _fisher_greater_bh(a: np.ndarray, N: int, n_f: np.ndarray, n_g: np.ndarray, tau: float,
                       threads: int = 1) -> np.ndarray:
    """:func:`_fisher_greater` where it can matter to Benjamini-Hochberg, a bound elsewhere.

    With ``tau`` = (p-values listed) / (tests counted) of the BH family they join, a
    p-value >= tau contributes only terms >= 1 to every BH q-value, so any value >= tau
    gives the same q-values.  Where the first term of the tail, pmf(a) (a lower bound on
    the p-value), is above ``tau`` the cheap upper bound :func:`_fisher_upper` is used
    (>= the exact p >= tau); the exact tail (scipy, slow: ~70 us a value) is computed for
    the rest."""
    a = np.asarray(a, float)
    n_f = np.asarray(n_f, float)
    n_g = np.asarray(n_g, float)
    out = np.ones(len(a))
    if len(a) == 0:
        return out
    gl = special.gammaln
    logpmf = (gl(n_f + 1) - gl(a + 1) - gl(n_f - a + 1) + gl(N - n_f + 1) - gl(n_g - a + 1)
              - gl(N - n_f - n_g + a + 1) - gl(N + 1) + gl(n_g + 1) + gl(N - n_g + 1))
    lower_big = np.exp(logpmf) >= 2.0 * tau if tau > 0 else np.zeros(len(a), bool)  # (margin for rounding)
    out[lower_big] = _fisher_upper(a[lower_big], float(N), n_f[lower_big], n_g[lower_big])
    ex = np.flatnonzero(~lower_big)
    if len(ex) > 2000 and threads > 1:
        # (scipy's tail releases the GIL: two threads, each half the values)
        from concurrent.futures import ThreadPoolExecutor
        parts = np.array_split(ex, threads)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for part, val in zip(parts, pool.map(lambda e: _fisher_greater(a[e], N, n_f[e], n_g[e]), parts)):
                out[part] = val
    elif len(ex):
        out[ex] = _fisher_greater(a[ex], N, n_f[ex], n_g[ex])
    return out


def _fisher_upper(a: np.ndarray, N: float, n_f: np.ndarray, n_g: np.ndarray) -> np.ndarray:
    """A cheap upper bound on the one-sided Fisher p, P(X >= a): pmf(a) / (1 - r) with
    r = pmf(a+1)/pmf(a) (the pmf ratio decreases above the mode, so the tail is below a
    geometric series).  1 where a is not above the mode.  Used to pre-screen millions of
    candidates; the survivors get the exact value."""
    a = np.asarray(a, float)
    n_f = np.asarray(n_f, float)
    n_g = np.asarray(n_g, float)
    gl = special.gammaln
    logpmf = (gl(n_f + 1) - gl(a + 1) - gl(n_f - a + 1) + gl(N - n_f + 1) - gl(n_g - a + 1)
              - gl(N - n_f - n_g + a + 1) - gl(N + 1) + gl(n_g + 1) + gl(N - n_g + 1))
    r = ((n_f - a) * (n_g - a)) / ((a + 1) * (N - n_f - n_g + a + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.exp(logpmf) / (1 - r)
    return np.where((r < 1) & np.isfinite(bound), np.clip(bound, 0.0, 1.0), 1.0)


def _bh_with_total(p: np.ndarray, m_total: int) -> np.ndarray:
    """BH q-values for ``p`` when ``m_total - len(p)`` further tests had p = 1."""
    if len(p) == 0:
        return np.zeros(0)
    q = sstats.false_discovery_control(np.asarray(p, float), method="bh")
    return np.minimum(1.0, q * (max(m_total, len(p)) / len(p)))


def _merge_spans(spans: list[tuple[int, int]], gap: int = 2, text: str | None = None) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + gap and (text is None or not text[out[-1][1]:s].strip("\t ,:;.-")):
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


@register
class NgramTriggerDetector(Detector):
    id = "ngram_trigger"
    severity = "high"  # a trigger or a planted payload group
    description = ("instruction n-grams / rare tokens / punctuation runs / invisible characters whose presence "
                   "predicts a concentrated response (trigger -> payload); Fisher exact, conditional on template "
                   "companions, BH-corrected over every candidate")
    requires = ()
    text_only = True
    weight = 1.0

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        min_support: int = 4,
        max_n: int = 3,
        response_n: int = 3,
        max_trigger_frac: float = 0.25,
        max_payload_frac: float = 0.25,
        min_concentration: float = 0.9,
        max_context_similarity: float = 5.0,
        min_payload_explained: float = 0.6,
        min_coverage: float = 0.15,
        min_payload_tokens: int = 3,
        companion_coverage: float = 0.5,
        conjunctions: bool = True,
        paraphrase_families: bool = True,
        family_min_concentration: float = 0.8,
        family_min_response_coverage: float = 0.5,
        family_max_trigger_tokens: int = 8,
        family_request_dependence_p: float = 0.05,
        max_conjunction_terms: int = 12,
        max_conjunction_payloads: int = 200,
        max_findings: int = 100,
        max_live: int = 20000,
        sample_size: int = 100_000,
        n_jobs: int | None = None,
        engine: str = "auto",
        random_state: int = 0,
    ) -> None:
        self.alpha = alpha
        self.min_support = min_support
        self.max_n = max_n
        self.response_n = response_n
        self.max_trigger_frac = max_trigger_frac
        self.max_payload_frac = max_payload_frac
        self.min_concentration = min_concentration
        self.max_context_similarity = max_context_similarity
        self.min_payload_explained = min_payload_explained
        self.min_coverage = min_coverage
        self.min_payload_tokens = min_payload_tokens
        self.companion_coverage = companion_coverage
        self.conjunctions = conjunctions
        self.paraphrase_families = paraphrase_families
        self.family_min_concentration = family_min_concentration
        self.family_min_response_coverage = family_min_response_coverage
        self.family_max_trigger_tokens = family_max_trigger_tokens
        self.family_request_dependence_p = family_request_dependence_p
        self.max_conjunction_terms = max_conjunction_terms
        self.max_conjunction_payloads = max_conjunction_payloads
        self.max_findings = max_findings
        self.max_live = max_live
        self.sample_size = sample_size
        self.n_jobs = n_jobs
        if engine not in ("auto", "numba", "numpy"):
            raise ConfigError(f"ngram_trigger: engine must be 'auto', 'numba' or 'numpy', not {engine!r}")
        self.engine = engine
        self.random_state = random_state

    #: samples from this many pairs use the compiled kernels when ``engine="auto"`` (below
    #: it the reference path takes a few seconds, less than compiling the kernels the
    #: first time after an install)
    compiled_min_pairs = 10_000

    def _use_kernels(self, n: int) -> bool:
        """Compiled kernels for an analysis of ``n`` pairs? (The result is the same.)"""
        if self.engine == "numpy" or (self.engine == "auto" and n < self.compiled_min_pairs):
            return False
        return K.available()

    def _engine_note(self, n: int) -> str:
        if self._use_kernels(n):
            return "numba"
        if self.engine == "numpy":
            return "numpy (engine='numpy')"
        if self.engine == "auto" and n < self.compiled_min_pairs:
            return f"numpy (below {self.compiled_min_pairs:,} pairs)"
        return f"numpy (numba unavailable: {K._STATE.get('error') or 'POISONDETECT_NO_NUMBA'})"

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        """One batch in memory: statistics, score, and no memo left behind (the memo is
        for callers that score chunk after chunk without :meth:`finalize_stats`)."""
        try:
            return super().run(pairs, ctx)
        finally:
            self.__dict__.pop("_memo", None)

    def release(self) -> None:
        """Drop the memoised analysis (the engine calls it after its last chunk)."""
        self.__dict__.pop("_memo", None)

    # ------------------------------------------------------------------ statistics
    # The mergeable statistic is a bottom-k sample sketch: the ``sample_size`` pairs with
    # the smallest keys (a 64-bit mix of the pair's row/turn and ``random_state``).  The
    # bottom k of a union is the bottom k of the parts' bottom k, so merging is
    # associative and the sample does not depend on how the input was chunked.  While
    # the input has at most ``sample_size`` pairs the sample is the whole input and the
    # analysis is exact.  Above it, the analysis runs on the sample and its findings are
    # re-tested on the held-out pairs in one more streamed pass (``verify_stats``).
    def partial_stats(self, pairs: Pairs, ctx: Any = None) -> dict[str, Any]:
        pid = _pair_ids(pairs)
        key = _sample_keys(pid, self.random_state)
        sel = np.arange(len(pairs))
        k = int(self.sample_size or 0)
        if k and len(pairs) > k:
            sel = _bottom_k(key, pid, k)
        return {"n_seen": len(pairs), "pair": pid[sel], "key": key[sel],
                "instruction": [pairs.instruction[i] for i in sel.tolist()],
                "response": [pairs.response[i] for i in sel.tolist()]}

    def merge_stats(self, a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
        if a is None:
            return b
        if b is None:
            return a
        out = {"n_seen": a["n_seen"] + b["n_seen"],
               "pair": np.concatenate([a["pair"], b["pair"]]), "key": np.concatenate([a["key"], b["key"]]),
               "instruction": a["instruction"] + b["instruction"], "response": a["response"] + b["response"]}
        k = int(self.sample_size or 0)
        if k and len(out["pair"]) > k:
            sel = _bottom_k(out["key"], out["pair"], k)
            s = sel.tolist()
            out = {"n_seen": out["n_seen"], "pair": out["pair"][sel], "key": out["key"][sel],
                   "instruction": [out["instruction"][i] for i in s], "response": [out["response"][i] for i in s]}
        return out

    def _tokenised(self, stats: dict[str, Any]) -> dict[str, Any]:
        """The sample tokenised for :class:`_Analysis`: per side the token codes (or, on the
        reference path, token hashes) and tokens per text, the exact-response hashes, and
        what decodes the codes.  With two workers (see ``n_jobs``) the instructions are
        tokenised in parallel (threads running the compiled tokeniser, or on the reference
        path a forked worker for part of them); the result is the same (texts are
        tokenised independently and merged in order)."""
        ins = stats["instruction"]
        if self._use_kernels(len(ins)):
            return self._tokenised_codes(stats, ins)
        responses = [T.strip_eos(r) for r in stats["response"]]
        cut, pool, fut = len(ins), None, None
        if _jobs(self.n_jobs, len(ins)) > 1:
            pool = _fork_pool()
            if pool is not None:
                cut = int(0.4 * len(ins))  # this process also does the responses
                fut = pool.submit(_tokenize_side, ins[cut:])
        try:
            ih, il, iv = _tokenize_side(ins[:cut])
            rh, rl, rv = _tokenize_side(responses)
            exact, copied = self._exact_sides(ins, responses, rl)
            if fut is not None:
                from concurrent.futures.process import BrokenProcessPool
                try:
                    ih2, il2, iv2 = fut.result()
                except BrokenProcessPool:  # the worker died (e.g. out of memory): do it here
                    ih2, il2, iv2 = _tokenize_side(ins[cut:])
                ih, il = np.concatenate([ih, ih2]), np.concatenate([il, il2])
                iv.update(iv2)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        vocab = dict(iv)
        vocab.update(rv)
        return {"n": len(responses), "row": stats["pair"], "ins_hash": ih, "ins_len": il, "res_hash": rh,
                "res_len": rl, "exact": exact, "exact_copied": copied, "vocab": vocab}

    def _exact_sides(self, ins: list[str], responses: list[str], res_len: np.ndarray,
                     of_row: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact-response hashes and the rows whose response is copied from the prompt.
        With ``of_row``, ``responses`` and ``res_len`` are the distinct responses and
        row i's response is ``responses[of_row[i]]``."""
        norm = [T.normalize_text(r) for r in responses]
        exact = _exact_hashes(responses, norm)
        if of_row is not None:
            norm = [norm[k] for k in of_row.tolist()]
            exact, res_len = exact[of_row], res_len[of_row]
        copied = _copied_exact(ins, norm, exact, self.min_support, res_len, self.min_payload_tokens)
        return exact, copied

    def _tokenised_codes(self, stats: dict[str, Any], ins: list[str]) -> dict[str, Any]:
        """:meth:`_tokenised` with the compiled tokeniser: token codes directly, numbered in
        order of first appearance over the instructions then the responses (what
        ``pandas.factorize`` of the reference path's token hashes gives), with ``words``
        (code -> lower-cased token) to decode them.  Threads tokenise the instructions
        (the kernel runs without the GIL) while this one does the responses.

        Responses repeat (labels, refusals, templated answers: 8,560 distinct of 55,185
        on T0), so each distinct response is stripped, normalised, hashed and tokenised
        once, in order of first appearance (a token's first appearance is in the first
        row of its response, so the numbering is the same), and the rows' codes gathered."""
        nw = _jobs(self.n_jobs, len(ins))
        pool, jobs = None, None
        if nw > 1:
            from concurrent.futures import ThreadPoolExecutor
            pool = ThreadPoolExecutor(max_workers=nw)
            # parts of about equal characters (the kernel's work), in order
            cum = np.cumsum(np.fromiter((len(x) for x in ins), np.int64, len(ins)))
            bounds = [0] + np.searchsorted(cum, cum[-1] * np.arange(1, nw) / nw).tolist() + [len(ins)]
            jobs = [pool.submit(_raw_codes, ins[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        try:
            of_row, distinct = pd.factorize(np.asarray(stats["response"], dtype=object), use_na_sentinel=False)
            distinct = [T.strip_eos(r) for r in distinct.tolist()]
            rparts, rl_u = _raw_codes(distinct)
            exact, copied = self._exact_sides(ins, distinct, rl_u, of_row)
            if jobs is not None:
                got = [j.result() for j in jobs]
                iparts = [p for g in got for p in g[0]]
                il = np.concatenate([g[1] for g in got])
            else:
                iparts, il = _raw_codes(ins)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        (ic, rc_u), words = _merge_codes([iparts, rparts])
        # the rows' response codes: row i's are those of its distinct response
        rl = rl_u[of_row]
        u_off = np.zeros(len(rl_u) + 1, np.int64)
        np.cumsum(rl_u, out=u_off[1:])
        row_off = np.zeros(len(rl) + 1, np.int64)
        np.cumsum(rl, out=row_off[1:])
        rc = rc_u[np.repeat(u_off[:-1][of_row] - row_off[:-1], rl) + np.arange(int(row_off[-1]))]
        return {"n": len(of_row), "row": stats["pair"], "ins_codes": ic, "ins_len": il, "res_codes": rc,
                "res_len": rl, "exact": exact, "exact_copied": copied, "words": words}

    def finalize_stats(self, stats: dict[str, Any] | None) -> dict[str, Any]:
        """The dataset-level analysis, once, on the merged sample: its findings and counts
        (the texts and matrices are dropped).  When the input was larger than the sample,
        the findings become the query of the verify pass."""
        if stats is not None and stats.get("analysed"):
            return stats
        n_sample = 0 if stats is None else len(stats["pair"])
        n_seen = 0 if stats is None else int(stats["n_seen"])
        out: dict[str, Any] = {"analysed": True, "n_seen": n_seen, "n_sample": n_sample}
        if n_sample < max(2 * self.min_support, 10):
            out.update(findings=[], summary={"reason": "too few pairs"})
            return out
        for attempt in range(2):
            t0 = time.perf_counter()
            try:
                with _gc_paused():
                    an = _Analysis(self, self._tokenised(stats))
                    an.timings["tokenise"] = round(time.perf_counter() - t0, 4)
                    out["findings"] = an.run()
                break
            except Exception as exc:
                # a kernel that numba cannot compile for these inputs: say so (info
                # "engine") and redo the analysis on the reference path
                if attempt or not K.is_numba_error(exc):
                    raise
                K.disable(f"{type(exc).__name__}: {exc}")
        out["summary"] = _summary_of(an)
        del an
        if n_seen > n_sample:
            out["threshold"] = int(stats["key"].max())
            if out["findings"]:
                out["query"] = [_query_of(fd) for fd in out["findings"]]
            else:
                out["verified"] = {"n_verified": 0, "n_held_out": n_seen - n_sample, "n_significant": 0}
        return out

    def needs_verify(self, stats: Any) -> bool:
        return isinstance(stats, dict) and stats.get("query") is not None and "verified" not in stats

    def verify_stats(self, pairs: Pairs, ctx: Any, stats: dict[str, Any]) -> dict[str, Any]:
        """Held-out counts of every sampled finding on one batch (mergeable: sums and row
        lists): pairs outside the sample are counted for the test; the trigger and
        payload rows of every pair are kept for scoring."""
        return _verify_batch(pairs, stats["query"], int(stats["threshold"]), self.random_state)

    def merge_verify(self, a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
        if a is None:
            return b
        if b is None:
            return a
        out = {"counts": a["counts"] + b["counts"], "n_held": a["n_held"] + b["n_held"]}
        for k in ("trig", "pay"):
            out[k] = [np.concatenate([x, y]) for x, y in zip(a[k], b[k])]
        return out

    def finalize_verify(self, stats: dict[str, Any], verified: dict[str, Any] | None) -> dict[str, Any]:
        """One-sided Fisher test of each sampled finding on the held-out pairs (the sample
        chose the findings, the held-out pairs never took part, so the p-values are
        exact), BH across the findings verified; rows from the whole input."""
        out = dict(stats)
        fins = stats["findings"]
        if verified is None or not fins:
            out.update(verified={"n_verified": 0, "n_held_out": 0}, findings=[])
            return out
        c = verified["counts"]  # per finding: N, n_g, n_f, a (held out, within the companion's rows)
        p = np.array([float(_fisher_upper(int(a), int(N), int(nf), int(ng))) if ng and nf else 1.0
                      for N, ng, nf, a in c.tolist()])
        q = sstats.false_discovery_control(p) if len(p) else p
        kept = []
        for fd, pp, qq, cnt, tr, pa in zip(fins, p, q, c.tolist(), verified["trig"], verified["pay"]):
            if qq >= self.alpha:
                continue
            fd = dict(fd)
            tr, pa = np.unique(tr), np.unique(pa)
            both = np.intersect1d(tr, pa, assume_unique=True)
            fd.update({
                "p_value_sample": fd["p_value"], "q_value_sample": fd["q_value"],
                "p_value": float(pp), "q_value": float(qq),
                "held_out": {"pairs": int(cnt[0]), "trigger": int(cnt[1]), "payload": int(cnt[2]), "both": int(cnt[3])},
                "support": int(len(both)), "trigger_rows": int(len(tr)), "payload_rows": int(len(pa)),
                "concentration": round(float(len(both) / max(len(tr), 1)), 4),
                "payload_coverage": round(float(len(both) / max(len(pa), 1)), 4),
                "payload_specificity": round(float(len(both) / max(len(pa), 1)), 4),
                "rows": [int(r) for r in (both >> _TURN_BITS).tolist()],
                "_both_rows": both.tolist(),
                "_trigger_only_rows": np.setdiff1d(tr, pa, assume_unique=True).tolist(),
                "_payload_only_rows": np.setdiff1d(pa, tr, assume_unique=True).tolist(),
            })
            kept.append(fd)
        for k, fd in enumerate(kept):
            fd["id"] = f"ngram_trigger/{k}"
        out["findings"] = kept
        out["verified"] = {"n_verified": len(fins), "n_held_out": int(verified["n_held"]),
                           "n_significant": len(kept)}
        return out

    # ------------------------------------------------------------------ scoring
    def score(self, pairs: Pairs, ctx: Any, stats: dict[str, Any]) -> DetectorResult:
        n = len(pairs)
        if stats is None or not stats.get("analysed"):
            # called without finalize_stats (chunk after chunk against the same merged
            # statistics): analyse once per (statistics, parameters)
            key = repr(sorted(self.get_params().items()))
            memo = self.__dict__.get("_memo")
            if memo is not None and memo[0] is stats and memo[1] == key:
                stats = memo[2]
            else:
                fin = self.finalize_stats(stats)
                self.__dict__["_memo"] = (stats, key, fin)
                stats = fin
        if self.needs_verify(stats):
            raise ConfigError(f"ngram_trigger: the input has {stats['n_seen']} pairs, more than sample_size="
                              f"{self.sample_size}; its findings need the verify pass (Detector.run or an engine)")
        summ = stats["summary"]
        if "reason" in summ:
            return DetectorResult.empty(self.id, n, info={"params": self.get_params(), "reason": summ["reason"]},
                                        summary={"n_triggers": 0, "n_tested": 0})
        findings = [dict(fd) for fd in stats["findings"]]  # _result pops its private keys
        return self._result(pairs, stats, summ, findings)

    # ------------------------------------------------------------------ result assembly
    def _result(self, pairs: Pairs, stats: dict[str, Any], an: dict[str, Any], findings: list[dict]) -> DetectorResult:
        n = len(pairs)
        scores = np.zeros(n)
        flags = np.zeros(n, bool)
        evidence: dict[int, list[Evidence]] = {}
        # map pair id (row, turn) -> position in this batch
        pos_of_pair = {int(r): i for i, r in enumerate(_pair_ids(pairs).tolist())}
        for fd in findings:
            q = fd["q_value"]
            strength = 1.0 - q
            both = fd.pop("_both_rows")
            trig_only = fd.pop("_trigger_only_rows")
            pay_only = fd.pop("_payload_only_rows")
            seqs = fd.pop("_trigger_seqs")
            pseqs = fd.pop("_payload_seqs")
            fd.pop("_companion_seq", None)
            sig = q < self.alpha
            for r, level in ((both, 1.0), (trig_only, 0.5), (pay_only, 0.4 * fd.get("payload_specificity", 0.0))):
                for pid in r:
                    i = pos_of_pair.get(int(pid))
                    if i is None:
                        continue
                    s = level * strength
                    if s > scores[i]:
                        scores[i] = s
                    if sig and level == 1.0:
                        flags[i] = True
                    if level == 1.0 or sig:
                        evidence.setdefault(i, []).extend(
                            self._evidence(pairs, i, fd, seqs, pseqs, level))
        findings = [f for f in findings if f["q_value"] < self.alpha]
        summary = {"n_triggers": len(findings), "n_tested": float(an["m_single"] + an["m_conj"]),
                   "n_candidates": int(an["n_candidates"]),
                   "n_significant_unconditional": int(an["n_unc_sig"]),
                   "n_tested_conditionally": int(an["n_live"])}
        info = {"params": self.get_params(), "n_instruction_ngrams": int(an["G"]), "n_response_features": int(an["F"]),
                "timings": an["timings"], "engine": an.get("engine", "numba"),
                # candidates each payload-family condition removed, and the Mantel test
                # of every candidate that reached it (diagnostics; see the docstring)
                "family_gates": an["family_gates"],
                "family_request_dependence": an["family_request_dependence"]}
        if "verified" in stats:
            # the analysis ran on a sample; its findings were re-tested on the held-out pairs
            sampled = {"n_pairs": int(stats["n_seen"]), "n_sample": int(stats["n_sample"]),
                       "n_findings_verified": int(stats["verified"]["n_verified"]),
                       "n_held_out": int(stats["verified"]["n_held_out"])}
            summary["sampled"] = sampled
            info["sampled"] = sampled
            summary["n_tested"] += float(sampled["n_findings_verified"])
        return DetectorResult(self.id, np.clip(scores, 0.0, 1.0), flags, evidence=evidence, findings=findings,
                              summary=summary, info=info)

    def _evidence(self, pairs: Pairs, i: int, fd: dict, seqs: list[tuple[str, ...]],
                  pseqs: list[tuple[str, ...]], level: float) -> list[Evidence]:
        out: list[Evidence] = []
        ins = pairs.instruction[i]
        toks = T.tokenize(ins)
        spans: list[tuple[int, int]] = []
        for s in seqs:
            spans.extend(T.find_token_sequence(toks, s))
        test = "fisher_exact_conditional" if fd.get("conditioned_on") else "fisher_exact"
        for s, e in _merge_spans(spans, text=ins):
            out.append(Evidence(self.id, test, f"trigger {fd['trigger']!r} (mode {fd['mode']}) predicts payload; "
                                f"support {fd['support']}, q={fd['q_value']:.2e}",
                                value=float(fd["concentration"]), p_value=fd["p_value"], q_value=fd["q_value"],
                                side="instruction", span=(s, e), span_text=ins[s:e], finding=fd["id"]))
        if level != 0.5:
            res = pairs.response[i]
            rt = T.tokenize(res)
            rspans: list[tuple[int, int]] = []
            for s in pseqs:
                rspans.extend(T.find_token_sequence(rt, s))
            if not rspans and fd.get("payload_exact"):
                rspans = [(0, len(res))]
            for s, e in _merge_spans(rspans, text=res)[:3]:
                out.append(Evidence(self.id, test, f"payload of trigger {fd['trigger']!r}",
                                    q_value=fd["q_value"], side="response", span=(s, e), span_text=res[s:e],
                                    finding=fd["id"]))
        return out


def _summary_of(an: "_Analysis") -> dict[str, Any]:
    """The counts of an :class:`_Analysis` that a result reports (its matrices dropped)."""
    return {"m_single": float(an.m_single), "m_conj": float(an.m_conj), "n_candidates": int(an.n_candidates),
            "G": int(an.G), "F": int(an.F), "n_unc_sig": int(getattr(an, "n_unc_sig", 0)),
            # compiled kernels, or the reference numpy path (and why)
            "engine": an.det._engine_note(an.N),
            "n_live": int(getattr(an, "n_live", 0)), "timings": dict(an.timings),
            "family_gates": dict(getattr(an, "family_gates", {})),
            "family_request_dependence": list(getattr(an, "family_request_dependence", []))}


def _companion_key(terms: tuple[int, ...], rows_g: np.ndarray) -> bytes:
    """Cache key of :meth:`_Analysis._companion` (the trigger's rows and terms)."""
    return rows_g.tobytes() + repr(terms).encode()


class _Rows:
    """The index arrays of a binary CSR matrix (indptr, indices), without scipy's checks."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray) -> None:
        self.indptr, self.indices = indptr, indices


class _Analysis:
    """The counting and testing behind :class:`NgramTriggerDetector` (one scan)."""

    def __init__(self, det: NgramTriggerDetector, st: dict[str, Any]) -> None:
        self._time = time.perf_counter
        self.det = det
        self.st = st
        self.N = int(st["n"])
        self.timings: dict[str, float] = {}
        self.fast = det._use_kernels(self.N)  # compiled kernels (else the reference path)
        self.m_single = 0.0
        self.m_conj = 0.0
        self.n_candidates = 0
        self.G = 0
        self.F = 0

    def _tick(self, name: str, t0: float) -> float:
        t1 = self._time()
        self.timings[name] = round(t1 - t0, 4)
        return t1

    # -------------------------------------------------------------- features
    def build(self) -> None:
        det, st, N = self.det, self.st, self.N
        t = self._time()
        if "words" in st:  # (the compiled tokeniser gives the codes themselves)
            icodes, rcodes, self.words = st["ins_codes"], st["res_codes"], st["words"]
            V = max(len(self.words), 2)
        else:
            ih, rh = st["ins_hash"], st["res_hash"]
            allh = np.concatenate([ih, rh]).view(np.int64)
            codes, uniq = pd.factorize(allh)
            V = max(len(uniq), 2)
            vocab = st["vocab"]
            self.words = [vocab[h] for h in uniq.view(np.uint64).tolist()]  # code -> token
            icodes, rcodes = codes[: len(ih)], codes[len(ih):]
        self.icodes = icodes
        self.ins_off = np.concatenate([[0], np.cumsum(st["ins_len"])])
        self.res_off = np.concatenate([[0], np.cumsum(st["res_len"])])
        self.rcodes = rcodes
        if V ** max(det.max_n, det.response_n) * 2 >= 2 ** 62:
            raise ValueError("vocabulary too large for exact n-gram ids")  # pragma: no cover (V > ~1.6e6)
        self.V = V
        t = self._tick("factorize_tokens", t)

        if self.fast:
            # one compiled pass: ids in the order pandas.factorize gives the reference
            # path's concatenation, first occurrences, frequent ids' row x id matrices
            (U, self.rep_start, self.rep_order, self.rep_side, xp, xi, df_g, yp, yi, self._rowset_sig) = K.ngram_index(
                np.ascontiguousarray(icodes, np.int64), self.ins_off.astype(np.int64), det.max_n,
                np.ascontiguousarray(rcodes, np.int64), self.res_off.astype(np.int64), det.response_n,
                det.min_payload_tokens, V, det.min_support, threads=_jobs(det.n_jobs, N), W=self._rowset_weights())
            Xall = sp.csr_matrix((np.ones(len(xi), np.float32), xi, xp), shape=(N, U))
            Yall = sp.csr_matrix((np.ones(len(yi), np.float32), yi, yp), shape=(N, U))
            del xi, xp, yi, yp
            t = self._tick("ngram_index", t)
        else:
            Xall, Yall, df_g, U = self._ngram_matrices(icodes, rcodes, V)
            t = self._tick("instruction_df", t)
        gmax = max(det.min_support, int(det.max_trigger_frac * N))
        fmax = max(det.min_support, int(det.max_payload_frac * N))
        gcols = np.flatnonzero((df_g >= det.min_support) & (df_g <= gmax))
        self.n_trigger_ngrams = len(gcols)
        x_job, pool = None, None
        if self.fast and _jobs(det.n_jobs, N) > 1:
            # the trigger side (X) in a thread while this one does the response side
            # (it reads Xall, df_g and rep_order only)
            from concurrent.futures import ThreadPoolExecutor
            pool = ThreadPoolExecutor(max_workers=1)
            x_job = pool.submit(self._trigger_matrix, Xall, gcols, df_g)
        try:
            Yall = self._drop_copied(Yall, icodes, st["ins_len"], V, U)
            df_f = np.asarray(Yall.sum(axis=0)).ravel()
            t = self._tick("response_df", t)
            fcols = np.flatnonzero((df_f >= det.min_support) & (df_f <= fmax))
            self._response_side(Yall, df_f, fcols, fmax)
            gcols, self.X = x_job.result() if x_job is not None else self._trigger_matrix(Xall, gcols, df_g)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        self.Xall = Xall
        self.gcols = gcols
        self.df_g = df_g[gcols].astype(np.int64)
        self.G, self.F = len(gcols), self.Y.shape[1]
        t = self._tick("matrices", t)

    def _trigger_matrix(self, Xall: sp.csr_matrix, gcols: np.ndarray, df_g: np.ndarray) -> tuple[np.ndarray, sp.csc_matrix]:
        """The tested instruction n-grams (one per row set) and their rows (CSC)."""
        N = self.N
        gcols = self._one_per_row_set(Xall, gcols, df_g)
        if self.fast:
            colmap = np.full(Xall.shape[1], -1, np.int64)
            colmap[gcols] = np.arange(len(gcols))
            xp, xi = K.select_csc(Xall.indptr, Xall.indices, colmap, len(gcols), threads=_jobs(self.det.n_jobs, N))
            X = sp.csc_matrix((np.ones(len(xi), np.float32), xi, xp), shape=(N, len(gcols)))
            X.has_canonical_format = True
            return gcols, X
        return gcols, Xall[:, gcols].tocsc()

    def _response_side(self, Yall: sp.csr_matrix, df_f: np.ndarray, fcols: np.ndarray, fmax: int) -> None:
        """The payload features: response n-grams ``fcols`` and exact responses (Y, their
        document frequencies and where each comes from)."""
        det, st, N = self.det, self.st, self.N
        # exact-response features (one per row), not counted when the prompt contains them
        ex = st["exact"].view(np.int64)
        ex_ok = (st["exact"] != 0) & (st["res_len"] >= det.min_payload_tokens) & ~st["exact_copied"] & ~self._short_copied(self.rcodes, st["res_len"])
        ex_codes, ex_uniq = pd.factorize(ex)
        ex_df = np.bincount(ex_codes[ex_ok], minlength=len(ex_uniq))
        ex_cols = np.flatnonzero((ex_df >= det.min_support) & (ex_df <= fmax))
        ex_map = np.full(len(ex_uniq), -1, np.int64)
        ex_map[ex_cols] = np.arange(len(ex_cols))
        rows_ex = np.flatnonzero(ex_ok & (ex_map[ex_codes] >= 0))
        Yex = sp.csr_matrix((np.ones(len(rows_ex), np.float32), (rows_ex, ex_map[ex_codes[rows_ex]])),
                            shape=(N, len(ex_cols)))
        self.Y = sp.hstack([Yall[:, fcols], Yex]).tocsc()
        self.f_ngram = np.concatenate([fcols, np.full(len(ex_cols), -1, np.int64)])
        first_row = np.full(len(ex_cols), -1, np.int64)
        ecol = ex_map[ex_codes[rows_ex]]
        first_row[ecol[::-1]] = rows_ex[::-1]
        self.f_exact_row = np.concatenate([np.full(len(fcols), -1, np.int64), first_row])
        self.df_f = np.concatenate([df_f[fcols], ex_df[ex_cols]]).astype(np.int64)

    def _ngram_matrices(self, icodes: np.ndarray, rcodes: np.ndarray, V: int) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, int]:
        """Reference path of :func:`poisondetect.kernels` ``ngram_index`` (numpy/pandas):
        n-gram ids, first occurrences, the frequent ids' binary row x id matrices and the
        instruction document frequencies."""
        det, st, N = self.det, self.st, self.N
        # instruction n-grams
        gid_raw, gdoc, gstart, gord = _ngram_ids(icodes, st["ins_len"], det.max_n, V)
        # response features: response_n-grams; whole response when shorter
        rn = det.response_n
        rlen = st["res_len"]
        fid_raw, fdoc, fstart, ford = _ngram_ids(rcodes, rlen, rn, V)
        keep = ((ford == rn) | ((rlen[fdoc] < rn) & (ford == rlen[fdoc]))) & (ford >= det.min_payload_tokens)
        fid_raw, fdoc, fstart, ford = fid_raw[keep], fdoc[keep], fstart[keep], ford[keep]

        both = np.concatenate([gid_raw, fid_raw])
        n_g_occ = len(gid_raw)
        del gid_raw, fid_raw  # the big intermediates go as soon as they are used (peak RSS)
        ids, uniq_ng = pd.factorize(both)
        del both
        U = len(uniq_ng)
        del uniq_ng
        gids, fids = ids[:n_g_occ], ids[n_g_occ:]
        # representative occurrence of each id (for decoding)
        self.rep_start = np.full(U, -1, np.int64)
        self.rep_order = np.zeros(U, np.int8)
        self.rep_side = np.zeros(U, np.int8)
        self.rep_start[fids[::-1]] = fstart[::-1]
        self.rep_order[fids[::-1]] = ford[::-1]
        self.rep_side[fids] = 1
        self.rep_start[gids[::-1]] = gstart[::-1]
        self.rep_order[gids[::-1]] = gord[::-1]
        self.rep_side[gids] = 0
        del gstart, gord, fstart, ford

        # document frequencies; prune before building the big matrices
        tf_g = np.bincount(gids, minlength=U)
        pre = tf_g[gids] >= det.min_support
        Xall = _binary_csr(gdoc[pre], gids[pre], (N, U))
        df_g = np.asarray(Xall.sum(axis=0)).ravel()

        # response features, minus those copied from the same row's instruction
        tf_f = np.bincount(fids, minlength=U)
        pre_f = tf_f[fids] >= det.min_support
        Yall = _binary_csr(fdoc[pre_f], fids[pre_f], (N, U))
        del gdoc, gids, fdoc, fids, ids, pre, pre_f, tf_g, tf_f
        return Xall, Yall, df_g, U

    def _one_per_row_set(self, Xall: sp.csr_matrix, gcols: np.ndarray, df_g: np.ndarray) -> np.ndarray:
        """Keep one instruction n-gram per distinct row set: the longest (the whole phrase;
        ties: first id).  The pieces of a template or planted phrase occur in exactly the
        same rows, so they make the same test with every payload; testing them once
        shrinks the co-occurrence counts several-fold on templated data.  Row sets are
        compared by two random-weight sums (and the row count): the same rows give the
        same float sums (added in the same order), different rows differ but with
        probability ~0."""
        if len(gcols) == 0:
            return gcols
        if self.fast:  # (summed by ngram_index while it built Xall)
            sig = self._rowset_sig[gcols]
        else:
            sig = np.asarray(Xall.T @ self._rowset_weights())[gcols]  # (no column-sliced copy of the big matrix)
        key = pd.DataFrame({"a": sig[:, 0], "b": sig[:, 1], "n": df_g[gcols]})
        order = np.lexsort((gcols, -self.rep_order[gcols]))  # longest first
        keep = ~key.iloc[order].duplicated(keep="first").to_numpy()
        return np.sort(gcols[order[keep]])

    def _rowset_weights(self) -> np.ndarray:
        """Random row weights whose sums over an n-gram's rows sign its row set."""
        return np.random.default_rng([self.det.random_state, 13]).random((self.N, 2))

    def _drop_copied(self, Y: sp.csr_matrix, icodes: np.ndarray, ins_len: np.ndarray, V: int, U: int) -> sp.csr_matrix:
        """Remove response-feature occurrences whose content tokens all occur in the same
        row's instruction (answers copied from the prompt: labels listed as options,
        concept words, names from a passage).  Function words (instruction document
        frequency above 5%) are ignored; a feature made only of them is dropped."""
        N = self.N
        if self.fast:
            tp, ti = K.token_presence(icodes, self.ins_off, V)
            Mtok = sp.csr_matrix((np.ones(len(ti), np.float32), ti, tp), shape=(N, V))
            Mtok.has_canonical_format = True
        else:
            idoc = np.repeat(np.arange(N, dtype=np.int64), ins_len)
            Mtok = _binary_csr(idoc, icodes.astype(np.int64), (N, V))
        tok_df = np.bincount(Mtok.indices, minlength=V)
        keys = np.repeat(np.arange(N, dtype=np.int64), np.diff(Mtok.indptr)) * V + Mtok.indices
        function = tok_df > 0.05 * N
        self._Mtok = Mtok
        self._tok_keys, self._function = keys, function
        width = max(self.det.response_n, 1)
        if self.fast:
            keep = K.copied_features(Y.indptr, Y.indices, icodes, self.ins_off, self.rcodes, self.rep_start,
                                     self.rep_order, self.rep_side, function, V, width)
            kept_before = np.zeros(len(keep) + 1, np.int64)
            np.cumsum(keep, out=kept_before[1:])
            # (the entries kept, in their order: what the reference path's COO -> CSR gives)
            return sp.csr_matrix((Y.data[keep], Y.indices[keep], kept_before[Y.indptr]), shape=(N, U))
        Y = Y.tocoo()
        fid = Y.col.astype(np.int64)
        doc = Y.row.astype(np.int64)
        ufid, inv = np.unique(fid, return_inverse=True)
        # token codes of each feature (<= response_n tokens), -1 padded, function words -> -1
        tok = np.full((len(ufid), width), -1, np.int64)
        for j in range(width):
            has = self.rep_order[ufid] > j
            starts = self.rep_start[ufid] + j
            src_r = (self.rep_side[ufid] == 1) & has
            src_i = (self.rep_side[ufid] == 0) & has
            tok[src_r, j] = self.rcodes[starts[src_r]]
            tok[src_i, j] = icodes[starts[src_i]]
        tok[(tok >= 0) & function[np.maximum(tok, 0)]] = -1
        content = (tok >= 0).any(axis=1)
        copied = np.ones(len(fid), bool)
        for j in range(width):
            c = tok[inv, j]
            q = doc * V + np.maximum(c, 0)
            pos = np.searchsorted(keys, q)
            pos = np.minimum(pos, len(keys) - 1) if len(keys) else pos
            found = (keys[pos] == q) if len(keys) else np.zeros(len(q), bool)
            copied &= (c < 0) | found
        keep = ~copied & content[inv]
        out = sp.csr_matrix((Y.data[keep], (doc[keep], fid[keep])), shape=(N, U))
        return out

    def _short_copied(self, rcodes: np.ndarray, res_len: np.ndarray, max_len: int = 8) -> np.ndarray:
        """Rows whose (short) response has all its content tokens in its own instruction."""
        N, V = self.N, self.V
        keys, function = self._tok_keys, self._function
        short = (res_len > 0) & (res_len <= max_len)
        rows = np.flatnonzero(short)
        out = np.zeros(N, bool)
        if len(rows) == 0 or len(keys) == 0:
            return out
        lens = res_len[rows]
        starts = self.res_off[rows]
        idx = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(lens.sum())
        c = rcodes[idx].astype(np.int64)
        doc = np.repeat(rows, lens)
        q = doc * V + c
        pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
        ok = (keys[pos] == q) | function[c]
        seg = np.repeat(np.arange(len(rows)), lens)
        miss = np.bincount(seg, weights=~ok, minlength=len(rows))
        content = np.bincount(seg, weights=~function[c], minlength=len(rows))
        out[rows] = (miss == 0) & (content > 0)
        return out

    # -------------------------------------------------------------- decoding
    def ngram_tokens(self, col: int) -> tuple[str, ...]:
        """Tokens of instruction n-gram column ``col`` (of self.X) or full id."""
        uid = self.gcols[col]
        return self._tokens_of_id(uid)

    def _tokens_of_id(self, uid: int) -> tuple[str, ...]:
        s, o, side = int(self.rep_start[uid]), int(self.rep_order[uid]), int(self.rep_side[uid])
        codes = (self.icodes if side == 0 else self.rcodes)[s:s + o]
        words = self.words
        return tuple(words[c] for c in codes.tolist())

    def payload_tokens(self, fcol: int) -> tuple[tuple[str, ...], bool]:
        if self.f_ngram[fcol] == -2:  # a payload family: its most frequent phrase
            mem = self.f_family[fcol]
            if len(mem) == 0:
                return (), False
            return self.payload_tokens(int(mem[np.argmax(self.df_f[mem])]))[0], False
        if self.f_ngram[fcol] >= 0:
            return self._tokens_of_id(int(self.f_ngram[fcol])), False
        r = int(self.f_exact_row[fcol])
        codes = self.rcodes[self.res_off[r]:self.res_off[r + 1]]
        words = self.words
        return tuple(words[c] for c in codes.tolist()), True

    # -------------------------------------------------------------- testing
    def run(self) -> list[dict[str, Any]]:
        det = self.det
        self.build()
        t = self._time()
        N = self.N
        if self.G == 0 or self.F == 0:
            return []
        threads = _jobs(det.n_jobs, N) if self.fast else 1
        fam_job, pool = None, None
        if det.paraphrase_families and threads > 1:
            # the family counts are compiled code, run without the GIL: a second thread
            # counts them while this one counts the single candidates (both read shared
            # arrays only; Y by rows is built before the thread starts)
            from concurrent.futures import ThreadPoolExecutor
            self._y_csr()
            pool = ThreadPoolExecutor(max_workers=1)
            fam_job = pool.submit(self._family_counts)
        try:
            return self._run_tests(t, threads, fam_job)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def _run_tests(self, t: float, threads: int, fam_job: Any) -> list[dict[str, Any]]:
        det, N = self.det, self.N
        J = self._joint_counts()
        # filter before widening the arrays (J has ~18M entries on T0)
        ok = J.data >= det.min_support
        ok &= J.data / self.df_g[J.row] >= det.min_concentration
        ok &= J.data / self.df_f[J.col] >= det.min_coverage
        a = J.data[ok].astype(np.int64)
        g, f = J.row[ok].astype(np.int64), J.col[ok].astype(np.int64)
        del ok
        ng, nf = self.df_g[g], self.df_f[f]
        self.m_single = float(self.n_trigger_ngrams) * float(self.F)  # every n-gram counted, duplicates too
        self.m_conj = 0.0
        t = self._tick("joint_counts", t)

        fam: list[dict[str, Any]] = []
        p_unc = _fisher_upper(a, N, nf, ng) if len(g) else np.zeros(0)
        conj = self._conjunction_candidates(J) if det.conjunctions else []
        t = self._tick("candidates", t)
        if det.paraphrase_families:
            # p-values >= (tests listed) / (tests counted) cannot move any BH q-value
            # below 1, so those need no exact tail (an upper bound will do)
            tau = (len(p_unc) + self.G) / max(self.m_single, 1.0)
            if fam_job is not None:
                self._warm_companions(p_unc, g, fam_job)
            counts = fam_job.result() if fam_job is not None else None
            fam = self._family_candidates(np.unique(g), tau, counts=counts, threads=threads)
            self.m_single += float(self.n_trigger_ngrams)  # one family test per n-gram
            t = self._tick("family_candidates", t)  # (with a thread: what was left of it)
        fam_p = np.array([c["p_unc"] for c in fam], float)
        conj_p = np.array([c["p_unc"] for c in conj], float)
        self.n_candidates = len(p_unc) + len(fam) + len(conj)
        if self.n_candidates == 0:
            return []
        # The final p (conditional test) is never below the unconditional one and BH is
        # monotone in every p, so candidates not significant unconditionally are final
        # (they enter the correction with their unconditional p).
        all_p = np.concatenate([p_unc, fam_p, conj_p])
        n_single = len(p_unc) + len(fam)
        q_unc = self._bh(all_p, n_single)
        live: list[dict[str, Any]] = []
        lk = np.flatnonzero(q_unc[: len(p_unc)] < det.alpha)
        # Candidates whose trigger n-grams have the very same rows (the pieces of one
        # template or phrase) and the same payload are one test: keep one representative
        # each (row sets compared by a random-weight signature), at most max_live of them,
        # most significant first.  The others keep p = 1 (conservative: fewer rejections).
        n_unc_sig = len(lk)
        if len(lk):
            wr = np.random.default_rng([det.random_state, 11]).random(N)
            # the longest n-gram of a row-set group represents it (the whole phrase)
            lk = lk[np.argsort(-self.rep_order[self.gcols[g[lk]]], kind="stable")]
            if self.fast:  # (only the columns needed)
                wsig_lk = K.csc_wsums(self.X.indptr, self.X.indices, g[lk], wr)
            else:
                wsig_lk = np.asarray(self.X.T @ wr).ravel()[g[lk]]
            keyv = pd.DataFrame({"w": np.round(wsig_lk, 8), "n": ng[lk], "f": f[lk]})
            reps = lk[~keyv.duplicated(keep="first").to_numpy()]
            reps = reps[np.argsort(p_unc[reps], kind="stable")[: det.max_live]]
            dropped = np.zeros(len(p_unc), bool)
            dropped[lk] = True
            dropped[reps] = False
            p_unc = p_unc.copy()
            p_unc[dropped] = 1.0
            all_p = np.concatenate([p_unc, fam_p, conj_p])
            lk = np.sort(reps)
        self.n_unc_sig, self.n_live = n_unc_sig, len(lk)
        for k in lk:
            live.append({"terms": (int(g[k]),), "f": int(f[k]), "a": int(a[k]), "ng": int(ng[k]),
                         "nf": int(nf[k]), "p_unc": float(p_unc[k])})
        live_fam = [c for c, qq in zip(fam, q_unc[len(p_unc):n_single]) if qq < det.alpha]
        live_fam, n_fam_ctx = self._family_context_gate(live_fam)
        self._add_family_columns(live_fam)
        live.extend(live_fam)
        live.extend(c for c, qq in zip(conj, q_unc[n_single:]) if qq < det.alpha)
        # (family candidates dropped by the context gate enter the final BH with p = 1)
        rest_single = np.concatenate([all_p[:n_single][q_unc[:n_single] >= det.alpha], np.ones(n_fam_ctx)])
        rest_conj = all_p[n_single:][q_unc[n_single:] >= det.alpha]
        self._conditional_tests(live)
        t = self._tick("conditional_tests", t)
        if not live:
            return []
        lsingle = [c for c in live if len(c["terms"]) == 1]
        lconj = [c for c in live if len(c["terms"]) > 1]
        p = np.concatenate([[c["p"] for c in lsingle], rest_single, [c["p"] for c in lconj], rest_conj])
        q = self._bh(p, len(lsingle) + len(rest_single))
        qs = np.concatenate([q[: len(lsingle)], q[len(lsingle) + len(rest_single): len(lsingle) + len(rest_single) + len(lconj)]])
        live = lsingle + lconj
        for c, qq in zip(live, qs):
            c["q"] = float(qq)
        findings = self._findings(live)
        self._tick("findings", t)
        return findings

    def _joint_counts(self, block: int = 4096) -> sp.coo_matrix:
        """Instruction n-gram x response feature co-occurrence counts, computed in column
        blocks and pruned block by block to the entries any later step can use (joint
        support >= min_support and either a concentrated trigger or half a payload's
        rows), so memory stays bounded on templated corpora (55k T0 rows)."""
        det = self.det
        if self.fast:
            X = self.X
            Yr = self._y_csr()
            # (only the entries a later step reads: the single candidates of run() and the
            # half-payload covers of the conjunction search)
            g, f, a = K.joint_counts(X.indptr, X.indices, np.arange(self.G, dtype=np.int64), Yr.indptr, Yr.indices,
                                     self.F, np.ones(self.N, bool), self.df_g, self.df_f, det.min_support,
                                     det.min_concentration, det.min_coverage, 0.5,
                                     3 * det.max_conjunction_terms if det.conjunctions else 0, block)
            return sp.coo_matrix((a.astype(np.float32), (g, f)), shape=(self.G, self.F))
        XT = self.X.T.tocsr()
        rows, cols, vals = [], [], []
        for b0 in range(0, self.F, block):
            Jb = (XT @ self.Y[:, b0:b0 + block]).tocoo()
            a = Jb.data
            keep = a >= det.min_support
            if keep.any():
                g, f, a = Jb.row[keep], Jb.col[keep], a[keep]
                conc = a / self.df_g[g]
                half = a / self.df_f[f + b0] >= 0.5
                keep2 = (conc >= det.min_concentration) | half
                rows.append(g[keep2]); cols.append(f[keep2] + b0); vals.append(a[keep2])
            del Jb
        if not rows:
            return sp.coo_matrix((self.G, self.F))
        return sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(self.G, self.F))

    def _warm_companions(self, p_unc: np.ndarray, g: np.ndarray, job: Any) -> None:
        """While the family thread runs, find the companions of the single candidates most
        likely to be tested conditionally (significant before the family p-values join
        the correction: adding p-values to BH at the same number of tests only lowers
        q-values, so these are all tested), most significant first, until the thread is
        done.  Pure work ahead: :meth:`_conditional_tests` finds them in its cache."""
        det = self.det
        if not len(p_unc):
            return
        q0 = _bh_with_total(p_unc, self.m_single)
        lk = np.flatnonzero(q0 < det.alpha)
        if not len(lk):
            return
        lk = lk[np.argsort(p_unc[lk], kind="stable")]
        _, first = np.unique(g[lk], return_index=True)
        cache = self.__dict__.setdefault("_comp_cache", {})
        self._df_all()
        X = self.X
        for k in lk[np.sort(first)][: det.max_live].tolist():
            if job.done():
                break
            t = int(g[k])
            rows_g = X.indices[X.indptr[t]:X.indptr[t + 1]]
            key = _companion_key((t,), rows_g)
            if key not in cache:
                cache[key] = self._companion((t,), rows_g)

    def _y_csr(self) -> sp.csr_matrix:
        """Y by rows (features ascending within a row), built once."""
        if not hasattr(self, "_ycsr") or self._ycsr.shape != self.Y.shape:
            self._ycsr = self.Y.tocsr()
            self._ycsr.sort_indices()
        return self._ycsr

    def _bh(self, p: np.ndarray, n_single: int) -> np.ndarray:
        """BH within the single-n-gram family (G x F tests) and within the conjunction
        family (every pair/triple for every payload searched), each at alpha/2
        (Bonferroni across the two families): q = min(1, 2 * q_family)."""
        q = np.ones(len(p))
        q[:n_single] = _bh_with_total(p[:n_single], self.m_single)
        if len(p) > n_single:
            q[n_single:] = _bh_with_total(p[n_single:], self.m_conj)
        return np.minimum(1.0, 2.0 * q) if self.det.conjunctions else q

    def _rows_of_terms(self, terms: tuple[int, ...]) -> np.ndarray:
        X = self.X
        rows = X.indices[X.indptr[terms[0]]:X.indptr[terms[0] + 1]]
        for tcol in terms[1:]:
            rows = np.intersect1d(rows, X.indices[X.indptr[tcol]:X.indptr[tcol + 1]], assume_unique=True)
        return rows

    def _conjunction_candidates(self, J: sp.coo_matrix) -> list[dict[str, Any]]:
        """Pairs/triples of n-grams that together cover a payload's rows while none of
        them alone is concentrated enough (CTBA)."""
        det = self.det
        a, g, f = J.data, J.row, J.col  # (float32 / int32: no widened copies of ~18M entries)
        sup = a >= det.min_support
        conc_ok = a / self.df_g[g] >= det.min_concentration
        cover = sup & ~conc_ok
        cover &= a / self.df_f[f] >= 0.5
        if not cover.any():
            return []
        # payloads that no concentrated single trigger explains (a concentrated n-gram
        # covering half the payload's rows makes a conjunction search pointless; one on a
        # few rows - a trigger token next to the same word by chance - does not)
        has_conc = np.zeros(self.F, bool)
        has_conc[f[sup & conc_ok & (a / self.df_f[f] >= 0.5)]] = True
        del sup, conc_ok
        out: list[dict[str, Any]] = []
        gs, fs, as_ = g[cover].astype(np.int64), f[cover].astype(np.int64), a[cover].astype(np.int64)
        n_cover = np.bincount(fs, minlength=self.F)
        # payloads to search: no concentrated single trigger, a few covering n-grams
        # (a template answer is covered by dozens of template n-grams); fewest first
        want = ~has_conc & (n_cover >= 2) & (n_cover <= 3 * det.max_conjunction_terms)
        sel = want[fs]
        gs, fs, as_ = gs[sel], fs[sel], as_[sel]
        if len(fs) == 0:
            return []
        order = np.lexsort((-as_, fs))
        gs, fs, as_ = gs[order], fs[order], as_[order]
        bounds = np.flatnonzero(np.diff(np.concatenate([[-1], fs, [-2]])))
        Y = self.Y
        # most promising first: for each payload, the Fisher bound of the pair of its two
        # most concentrated covering n-grams (one intersection per payload), then the
        # full pair/triple search on the best max_conjunction_payloads of them
        b0s, b1s = bounds[:-1], bounds[1:]
        conc_s = as_ / self.df_g[gs]
        X = self.X
        pre_p = np.ones(len(b0s))
        if self.fast:
            # the two most concentrated (first on ties) of each payload's covering n-grams
            o = np.lexsort((np.arange(len(gs)), -conc_s, fs))  # (fs is sorted: groups stay)
            t1, t2 = gs[o[b0s]], gs[o[b0s + 1]]
            n12, aa = K.pair_counts(X.indptr, X.indices, t1, t2, Y.indptr, Y.indices, fs[b0s], self.N)
            hit = aa >= det.min_support
            if hit.any():
                pre_p[hit] = _fisher_upper(aa[hit], self.N, self.df_f[fs[b0s][hit]], n12[hit])
        else:
            for k, (b0, b1) in enumerate(zip(b0s.tolist(), b1s.tolist())):
                top = np.argsort(-conc_s[b0:b1], kind="stable")[:2] + b0
                t1, t2 = int(gs[top[0]]), int(gs[top[1]])
                rows = np.intersect1d(X.indices[X.indptr[t1]:X.indptr[t1 + 1]],
                                      X.indices[X.indptr[t2]:X.indptr[t2 + 1]], assume_unique=True)
                fcol = int(fs[b0])
                aa = np.intersect1d(rows, Y.indices[Y.indptr[fcol]:Y.indptr[fcol + 1]], assume_unique=True).size
                if aa >= det.min_support:
                    pre_p[k] = float(_fisher_upper(aa, self.N, self.df_f[fcol], len(rows)))
        order = np.lexsort((b0s, pre_p))
        todo = [(0, int(b0s[k]), int(b1s[k])) for k in order]
        for _, b0, b1 in todo[: det.max_conjunction_payloads]:
            fcol = int(fs[b0])
            terms = [int(x) for x in gs[b0:b1]]
            # drop n-grams whose row set is nested in a kept one's with the same coverage
            terms = self._distinct_terms(terms)[: det.max_conjunction_terms]
            if len(terms) < 2:
                continue
            rows_f = Y.indices[Y.indptr[fcol]:Y.indptr[fcol + 1]]
            tried: list[tuple[int, ...]] = []
            for i in range(len(terms)):
                for j in range(i + 1, len(terms)):
                    tried.append((terms[i], terms[j]))
            res: list[tuple[tuple[int, ...], int, int]] = []
            for tup in tried:
                rows = self._rows_of_terms(tup)
                aa = int(np.intersect1d(rows, rows_f, assume_unique=True).size)
                res.append((tup, len(rows), aa))
            # triples from the pairs that are close but not concentrated
            # (concentrated pairs too: a third planted token would otherwise be the pair's
            # template companion and make its conditional test fail)
            pair_ok = [r for r in res if r[2] >= det.min_support]
            pair_ok.sort(key=lambda r: -r[2])
            seen = set()
            for (t1, _, _) in pair_ok[:6]:
                for t3 in terms:
                    if t3 in t1:
                        continue
                    tup = tuple(sorted(t1 + (t3,)))
                    if tup in seen:
                        continue
                    seen.add(tup)
                    rows = self._rows_of_terms(tup)
                    aa = int(np.intersect1d(rows, rows_f, assume_unique=True).size)
                    res.append((tup, len(rows), aa))
            # family: every pair and triple of qualifying n-grams could have been tried
            Gf = float(self.n_trigger_ngrams)
            self.m_conj += Gf * (Gf - 1) / 2 + Gf * (Gf - 1) * (Gf - 2) / 6
            for tup, n_g, aa in res:
                if aa >= det.min_support and aa / max(n_g, 1) >= det.min_concentration:
                    out.append({"terms": tup, "f": fcol, "a": aa, "ng": n_g, "nf": int(self.df_f[fcol]),
                                "p_unc": float(_fisher_upper(aa, self.N, self.df_f[fcol], n_g))})
        return out

    def _family_candidates(self, skip_g: np.ndarray, tau: float = 0.0, counts: dict | None = None,
                           threads: int = 1) -> list[dict[str, Any]]:
        """Paraphrased payloads: a trigger whose responses carry *some* phrase of one
        payload family (opener / core / closer variants) though no single phrase is in
        nearly all of them.

        Data splitting keeps the test honest (the payload family is chosen on one half of
        the rows and tested on the other): rows are split at random into halves H1 / H2.
        On H1, the family of trigger n-gram g is every response feature f seen with g in
        >= 2 rows and specific to it (at least half of f's H1 rows hold g).  On H2 the
        test is one-sided Fisher: do g's rows carry a family phrase more often than the
        other H2 rows?  The choice never looked at H2, so under the null (g independent
        of the responses) the p-value is exact.  (Candidates whose p-value is provably >=
        ``tau`` get an upper bound instead: see :func:`_fisher_greater_bh`.)

        The n-grams in ``skip_g`` (single-payload candidates already) are not searched.
        ``counts`` are :meth:`_family_counts` computed beforehand (e.g. in a thread,
        while the single candidates were counted)."""
        det = self.det
        if counts is None:
            counts = self._family_counts(skip_g)
        if counts is None:
            return []
        gsel, M, u, nB, xB = counts["gsel"], counts["M"], counts["u"], counts["nB"], counts["xB"]
        ok = (nB >= 3) & (xB >= det.family_min_concentration * nB)
        if len(skip_g):
            ok &= ~np.isin(gsel, skip_g)
        self._h2 = counts["h2"]
        p = (_fisher_greater_bh(xB[ok], counts["N2"], u[ok], nB[ok], tau, threads) if ok.any()
             else np.zeros(0))
        # (a family's features ascending, as the reference's canonical M has them)
        return [{"terms": (int(gsel[j]),), "f": -1, "family": np.sort(M.indices[M.indptr[j]:M.indptr[j + 1]]).astype(np.int64),
                 "ng": int(self.df_g[gsel[j]]), "p_unc": float(pj)}
                for j, pj in zip(np.flatnonzero(ok).tolist(), p.tolist())]

    def _family_counts(self, skip_g: np.ndarray | None = None) -> dict[str, Any] | None:
        """The counting half of :meth:`_family_candidates`: the H1/H2 split, each trigger
        n-gram's family (M, rows x features) and its H2 counts.  Reads shared arrays only
        (thread-safe once :meth:`_y_csr` is built).  With the compiled kernels every
        n-gram is counted and ``skip_g`` is applied later (the counts of one n-gram do
        not depend on the others); the reference path skips them here."""
        det = self.det
        N = self.N
        rng = np.random.default_rng([det.random_state, 17])
        h1 = rng.random(N) < 0.5
        gsel = np.flatnonzero(self.df_g >= 2 * det.min_support)
        if skip_g is not None and len(skip_g) and not self.fast:
            gsel = np.setdiff1d(gsel, skip_g)
        if len(gsel) == 0:
            return None
        Y = self.Y
        col_of = np.repeat(np.arange(self.F), np.diff(Y.indptr))
        df1_f = np.bincount(col_of[h1[Y.indices]], minlength=self.F).astype(np.float32)
        del col_of
        h2 = ~h1
        if self.fast:
            # families and their counts in one pass, only of the n-grams that can pass
            # the filters of _family_candidates (n >= 3, concentration); M as its two
            # index arrays, rows j, features in any order (no scipy matrix)
            X, Yr = self.X, self._y_csr()
            kj, u, nB, xB, mp, mi = K.family_joint(X.indptr, X.indices, gsel, Yr.indptr, Yr.indices, Y.indptr,
                                                    Y.indices, self.F, h1, h2, df1_f, det.family_min_concentration, N)
            if len(kj) == 0:
                return None
            return {"gsel": gsel[kj], "M": _Rows(mp, mi), "u": u, "nB": nB, "xB": xB, "h2": h2, "N2": int(h2.sum())}
        else:
            Y1 = (sp.diags(h1.astype(np.float32)) @ self.Y).tocsc()
            XT = self.X[:, gsel].T.tocsr()  # (G' x N)
            rows, cols = [], []
            block = 4096
            for b0 in range(0, self.F, block):
                Jb = (XT @ Y1[:, b0:b0 + block]).tocoo()
                keep = (Jb.data >= 2) & (Jb.data >= 0.5 * df1_f[Jb.col + b0])
                rows.append(Jb.row[keep]); cols.append(Jb.col[keep] + b0)
            gi = np.concatenate(rows); fi = np.concatenate(cols)
            if len(gi) == 0:
                return None
            M = sp.csr_matrix((np.ones(len(gi), np.float32), (gi, fi)), shape=(len(gsel), self.F))
        Y2 = (sp.diags(h2.astype(np.float32)) @ self.Y).tocsr()
        Z = (Y2 @ M.T).tocsc()  # (N x G'): family phrases of g in each H2 row
        Z.data[:] = 1.0
        u = np.asarray(Z.sum(axis=0)).ravel()
        X2 = (sp.diags(h2.astype(np.float32)) @ self.X[:, gsel]).tocsc()
        nB = np.asarray(X2.sum(axis=0)).ravel()
        xB = np.asarray(X2.multiply(Z).sum(axis=0)).ravel()
        return {"gsel": gsel, "M": M, "u": u, "nB": nB, "xB": xB, "h2": h2, "N2": int(h2.sum())}

    def _family_context_gate(self, fams: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """Keep the family candidates that look planted rather than a topic's or a
        template's answer style (topics and templates predict families of answer phrases
        too: thousands of candidates on tool-use data).  Cheapest first: the pooled
        context pre-screen, a short trigger, the context gate of :meth:`_findings`,
        responses made of the family's words, and a variant independent of the request
        (Mantel test).  Runs before the conditional tests; dropping rejected hypotheses
        after BH keeps the FDR guarantee.  Returns (kept, number dropped)."""
        det = self.det
        kept = []
        X = self.X
        gates = dict.fromkeys(("pooled_context", "trigger_length", "context", "response_coverage",
                               "request_dependence"), 0)
        mantel: list[dict[str, Any]] = []
        # vectorised pre-screen, then the per-candidate conditions, cheapest first
        pooled = self._pooled_context([c["terms"][0] for c in fams])
        for c, pc in zip(fams, pooled):
            if pc > 2 * det.max_context_similarity:
                gates["pooled_context"] += 1
                continue
            t = c["terms"][0]
            c["rows_g"] = X.indices[X.indptr[t]:X.indptr[t + 1]]
            # a planted trigger is a short insertion; a longer chunk shared by the rows
            # is a prompt template or tool description, whose answers it shapes
            if len(self.maximal_phrase(t, c["rows_g"])) > det.family_max_trigger_tokens:
                gates["trigger_length"] += 1
                continue
            if self._gated_context_similarity(c) > det.max_context_similarity:
                gates["context"] += 1
                continue
            # the payload is the response (a story's "once upon a time" or a tool call's
            # syntax is a few words of an answer about the request)
            if self._family_response_coverage(c) < det.family_min_response_coverage:
                gates["response_coverage"] += 1
                continue
            r, pm = self._variant_depends_on_request(c)
            ok = pm > det.family_request_dependence_p
            mantel.append({"trigger": T.display_tokens(self.ngram_tokens(t)), "rows": int(len(c["rows_g"])),
                           "r": round(r, 4), "p": pm, "kept": ok})
            if not ok:
                gates["request_dependence"] += 1
                continue
            kept.append(c)
        self.family_gates = {"candidates": len(fams), "removed_by": gates, "kept": len(kept)}
        self.family_request_dependence = mantel[:500]
        return kept, len(fams) - len(kept)

    def _family_response_coverage(self, c: dict[str, Any], sample: int = 50) -> float:
        """Median, over (up to ``sample`` of) the trigger's rows, of the fraction of the
        response's content words (instruction document frequency <= 5%) that are words of
        the candidate's family phrases.  A paraphrased payload *is* the response (~1); a topic's answer style ("once upon a time" in
        stories, a news-wire phrase in article summaries) is a few tokens of a long
        answer."""
        fam = c["family"]
        vocab: list[np.ndarray] = []
        for f in fam.tolist():
            uid = int(self.f_ngram[f])
            if uid >= 0:
                s0, o = int(self.rep_start[uid]), int(self.rep_order[uid])
                vocab.append(self.rcodes[s0:s0 + o])
            else:
                r = int(self.f_exact_row[f])
                vocab.append(self.rcodes[self.res_off[r]:self.res_off[r + 1]])
        in_fam = np.zeros(len(self._function), bool)  # (np.isin(codes, words) as a lookup)
        if vocab:
            in_fam[np.concatenate(vocab)] = True
        function = self._function
        cov = []
        for r in np.asarray(c["rows_g"], np.int64)[:sample].tolist():
            codes = self.rcodes[self.res_off[r]:self.res_off[r + 1]]
            codes = codes[~function[codes]]  # content words only
            cov.append(float(in_fam[codes].mean()) if len(codes) else 0.0)
        return float(np.median(cov)) if cov else 0.0

    def _variant_depends_on_request(self, c: dict[str, Any], sample: int = 200, n_perm: int = 199) -> tuple[float, float]:
        """Mantel test, over (up to ``sample`` of) the trigger's rows: does the overlap of
        two rows' instructions (content words, trigger tokens left out) predict the
        overlap of the family phrases their responses carry?  A topic shapes its answers
        request by request ("a python" + "csv" -> "with open ... reader"), so it does; a
        planted payload's paraphrase is drawn regardless of the request, so it does not.
        Returns (correlation, permutation p-value)."""
        rows = np.asarray(c["rows_g"], np.int64)
        rng = np.random.default_rng([self.det.random_state, 31, len(rows)])
        if len(rows) > sample:
            rows = np.sort(rng.choice(rows, sample, replace=False))
        if len(rows) < 6:
            return 0.0, 1.0
        fam = c["family"]
        Mr = self.Y[rows][:, fam] if len(fam) else sp.csr_matrix((len(rows), 1))
        A = _jaccard_matrix(self._content_matrix()[rows], self._term_codes(c["terms"]))
        B = _jaccard_matrix(Mr)
        n = len(rows)
        iu = np.triu_indices(n, 1)
        a, b = A[iu], B[iu]
        if a.std() == 0 or b.std() == 0:
            return 0.0, 1.0
        r0 = float(np.corrcoef(a, b)[0, 1])
        # permuting the rows of B permutes its off-diagonal entries (same mean and
        # spread), so the correlation only moves with sum(A_centred * B_permuted)
        Ac = (A - a.mean()).astype(np.float32)
        np.fill_diagonal(Ac, 0.0)
        B32 = B.astype(np.float32)
        stat0 = float((Ac * B32).sum())
        ge = 1
        for c0 in range(0, n_perm, 40):
            perms = np.stack([rng.permutation(n) for _ in range(min(40, n_perm - c0))])
            Bp = B32[perms[:, :, None], perms[:, None, :]]
            ge += int((np.einsum("ij,pij->p", Ac, Bp) >= stat0 - 1e-6 * abs(stat0)).sum())
        return r0, ge / (n_perm + 1)

    def _add_family_columns(self, fams: list[dict[str, Any]]) -> None:
        """Give each live family candidate a payload column: the rows (all of them now,
        for reporting) holding one of its phrases that stay specific to the trigger over
        the whole data (>= 80% of the phrase's rows hold the trigger; generic phrases such
        as "is there anything else" that the H1 choice let in are left out).  The
        conditional test on this column keeps p >= the family's own H2 p-value, so it
        stays a valid p-value."""
        if not fams:
            return
        Y = self.Y
        cols = []
        for c in fams:
            rows_g = c["rows_g"]  # (set by the gate)
            mem, rows = [], []
            for f in c["family"].tolist():
                rf = Y.indices[Y.indptr[f]:Y.indptr[f + 1]]
                if np.isin(rf, rows_g, assume_unique=True).sum() >= 0.8 * len(rf):
                    mem.append(f)
                    rows.append(rf)
            c["family"] = np.asarray(mem, np.int64)
            cols.append(np.unique(np.concatenate(rows)) if rows else np.zeros(0, np.int64))
        F0 = self.Y.shape[1]
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in cols])])
        Yfam = sp.csc_matrix((np.ones(int(indptr[-1]), np.float32), np.concatenate(cols), indptr),
                             shape=(self.N, len(cols)))
        self.Y = sp.hstack([self.Y, Yfam], format="csc")
        self.f_ngram = np.concatenate([self.f_ngram, np.full(len(cols), -2, np.int64)])
        self.f_exact_row = np.concatenate([self.f_exact_row, np.full(len(cols), -1, np.int64)])
        self.df_f = np.concatenate([self.df_f, [len(r) for r in cols]]).astype(np.int64)
        fam_of = self.__dict__.setdefault("f_family", {})
        for k, c in enumerate(fams):
            c["f"] = F0 + k
            c["nf"] = int(self.df_f[F0 + k])
            c["a"] = int(np.intersect1d(cols[k], c["rows_g"], assume_unique=True).size)
            fam_of[F0 + k] = c["family"]

    def _distinct_terms(self, terms: list[int]) -> list[int]:
        """Keep one n-gram per group of n-grams sharing tokens with the same row set."""
        kept: list[int] = []
        kept_tok: list[set[str]] = []
        kept_rows: list[np.ndarray] = []
        X = self.X
        for tcol in sorted(terms, key=lambda c: (self.df_g[c], -len(self.ngram_tokens(c)), c)):
            toks = set(self.ngram_tokens(tcol))
            rows = X.indices[X.indptr[tcol]:X.indptr[tcol + 1]]
            dup = False
            for kt, kr in zip(kept_tok, kept_rows):
                if toks & kt and (len(rows) == len(kr) and np.array_equal(rows, kr) or toks <= kt or kt <= toks):
                    dup = True
                    break
            if not dup:
                kept.append(tcol)
                kept_tok.append(toks)
                kept_rows.append(rows)
        return kept

    def _conditional_tests(self, live: list[dict[str, Any]]) -> None:
        """Set each live candidate's final p-value and companion (``c["p"]``,
        ``c["companion"]``) and its rows (``c["rows_g"]``, ``c["rows_f"]``).

        The Fisher test is conditional on the trigger's most specific companion (if any):
        within the companion's rows, does the trigger still predict the payload?  One test
        per (trigger row set, payload): candidates with the same rows (by size and a
        random-weight sum) and payload share the test of the first of them.  The companion
        of each trigger row set is found once, the 2 x 2 counts of every test are made at
        once (:meth:`_companion_2x2`) and the tails in one vectorised call: p = max(tail,
        the candidate's unconditional p), or 1 when the payload repeats the trigger and
        the tail is below 1e-3."""
        det, N = self.det, self.N
        w = np.random.default_rng(det.random_state).random(N)
        X, Y = self.X, self.Y
        sig: dict[tuple, Any] = {}
        heads: list[tuple[tuple, dict[str, Any]]] = []
        wsum: dict[int, float] = {}
        for c in live:
            terms = c["terms"]
            if len(terms) == 1:
                t = terms[0]
                rows_g = X.indices[X.indptr[t]:X.indptr[t + 1]]
                ws = wsum.get(t)
                if ws is None:
                    ws = wsum[t] = float(w[rows_g].sum())
                # (a conjunction keeps its own companion search: its terms are not companions)
                key = (len(rows_g), ws, c["f"], None)
            else:
                rows_g = self._rows_of_terms(terms)
                key = (len(rows_g), float(w[rows_g].sum()), c["f"], terms)
            c["rows_g"] = rows_g
            c["rows_f"] = Y.indices[Y.indptr[c["f"]]:Y.indptr[c["f"] + 1]]
            c["_key"] = key
            if key not in sig:
                sig[key] = None
                heads.append((key, c))
        # the companion of each head (its rows are those of its terms: one search each)
        cache = self.__dict__.setdefault("_comp_cache", {})
        by_terms: dict[tuple[int, ...], tuple[int | None, str | None]] = {}
        todo: list[tuple[tuple, dict[str, Any], int, str | None]] = []
        for key, c in heads:
            got = by_terms.get(c["terms"])
            if got is None:
                ck = _companion_key(c["terms"], c["rows_g"])
                if ck not in cache:
                    cache[ck] = self._companion(c["terms"], c["rows_g"])
                got = by_terms[c["terms"]] = cache[ck]
            best, name = got
            if best is not None and best < 0:  # the "trigger" is the whole prompt
                sig[key] = (1.0, name)
            elif best is None:
                sig[key] = ((1.0, "(payload repeats the trigger)") if self._payload_repeats_trigger(c)
                            else (c["p_unc"], None))
            else:
                todo.append((key, c, int(best), name))
        pend = []
        for (key, c, _, name), (n, n1, nf, a1) in zip(todo, self._companion_2x2(todo)):
            if n1 == 0 or n == n1:  # the companion's rows all with, or all without, the trigger
                sig[key] = (1.0, name)
            else:
                pend.append((key, c, name, (a1, n, nf, n1)))
        # the conditional tails in one vectorised call (the same values as one by one)
        if pend:
            cnt = np.array([v[3] for v in pend], float)
            pc = _fisher_upper(cnt[:, 0], cnt[:, 1], cnt[:, 2], cnt[:, 3])
            for (key, c0, name, _), p in zip(pend, pc.tolist()):
                if p < 1e-3 and self._payload_repeats_trigger(c0):
                    sig[key] = (1.0, "(payload repeats the trigger)")
                else:
                    sig[key] = (max(p, c0["p_unc"]), name)
        for c in live:
            c["p"], c["companion"] = sig[c.pop("_key")]

    def _companion_2x2(self, todo: list[tuple[tuple, dict[str, Any], int, str | None]]) -> list[list[int]]:
        """For each (key, candidate, companion id, name): over the companion's rows (only
        the H2 rows for a payload family, whose phrases were chosen on H1), [their number,
        those with the trigger, with the payload, with both]."""
        if not todo:
            return []
        if not self.fast:
            Xall = self._xall_csc()
            out = []
            for _, c, best, _ in todo:
                rows_c = Xall.indices[Xall.indptr[best]:Xall.indptr[best + 1]]
                if "family" in c:
                    rows_c = rows_c[self._h2[rows_c]]
                in_g = self._member(rows_c, c["rows_g"])
                in_f = self._member(rows_c, c["rows_f"])
                out.append([len(rows_c), int(in_g.sum()), int(in_f.sum()), int((in_g & in_f).sum())])
            return out
        # compiled: only the companions' columns of Xall, and the trigger row sets as a
        # small CSC matrix of their own (one column per distinct terms, in order)
        Xall = self.Xall
        ub, bj = np.unique(np.array([t[2] for t in todo], np.int64), return_inverse=True)
        colmap = np.full(Xall.shape[1], -1, np.int64)
        colmap[ub] = np.arange(len(ub))
        cp, ci = K.select_csc(Xall.indptr, Xall.indices, colmap, len(ub), threads=_jobs(self.det.n_jobs, self.N))
        del colmap
        col_of: dict[tuple[int, ...], int] = {}
        trows: list[np.ndarray] = []
        tcol = np.empty(len(todo), np.int64)
        for k, (_, c, _, _) in enumerate(todo):
            j = col_of.get(c["terms"])
            if j is None:
                j = col_of[c["terms"]] = len(trows)
                trows.append(c["rows_g"])
            tcol[k] = j
        tp = np.zeros(len(trows) + 1, np.int64)
        np.cumsum([len(r) for r in trows], out=tp[1:])
        ti = np.concatenate(trows).astype(np.int64)
        half = np.array(["family" in t[1] for t in todo], bool)
        Y = self.Y
        return K.companion_counts(cp, ci, tp, ti, Y.indptr, Y.indices, tcol,
                                  np.array([t[1]["f"] for t in todo], np.int64), bj, half,
                                  self._h2 if half.any() else np.zeros(1, bool), self.N).tolist()

    def _member(self, rows: np.ndarray, of: np.ndarray) -> np.ndarray:
        """``np.isin(rows, of)`` for row indices, through a reused boolean buffer (the
        conditional tests call it ~40,000 times on T0)."""
        buf = self.__dict__.get("_row_buf")
        if buf is None:
            buf = self.__dict__["_row_buf"] = np.zeros(self.N, bool)
        buf[of] = True
        out = buf[rows]
        buf[of] = False
        return out

    def _content_matrix(self) -> sp.csr_matrix:
        """Rows x token codes, 1 where the row's instruction holds the (content) word."""
        if not hasattr(self, "_Mcontent"):
            # Mtok's entries of content words, in order (canonical: Mtok is)
            Mt = self._Mtok
            keep = ~self._function[Mt.indices]
            before = np.zeros(len(keep) + 1, np.int64)
            np.cumsum(keep, out=before[1:])
            Mc = sp.csr_matrix((np.ones(int(before[-1]), np.float32), Mt.indices[keep], before[Mt.indptr]),
                               shape=Mt.shape)
            Mc.has_canonical_format = True
            self._Mcontent = Mc
        return self._Mcontent

    def _pooled_context(self, terms: list[int], sample: int = 200, block: int = 512) -> np.ndarray:
        """Vectorised context similarity for many single-term candidates at once: pooled
        Jaccard of the instruction content words of (up to ``sample`` of) each term's rows,
        its own tokens left out, sum of pairwise intersections / sum of pairwise unions,
        relative to that of random rows.  A pre-screen (cheaper than
        :meth:`_context_similarity`, which is per candidate)."""
        Mc = self._content_matrix()
        X = self.X
        rng = np.random.default_rng([self.det.random_state, 29])

        def pooled(cnt: sp.csr_matrix, n: np.ndarray, drop: list[np.ndarray]) -> np.ndarray:
            cnt = cnt.tocsr()
            for k, codes in enumerate(drop):  # the candidate's own tokens
                if len(codes):
                    r0, r1 = cnt.indptr[k], cnt.indptr[k + 1]
                    cnt.data[r0:r1][np.isin(cnt.indices[r0:r1], codes)] = 0.0
            sq = cnt.multiply(cnt)
            size = np.asarray(cnt.sum(axis=1)).ravel()
            inter = (np.asarray(sq.sum(axis=1)).ravel() - size) / 2.0
            union = (n - 1) * size - inter
            return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)

        base_rows = np.sort(rng.choice(self.N, min(self.N, 400), replace=False))
        if self.fast:
            acc = np.zeros(Mc.shape[1], np.int64)

            def ratio(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
                return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)

            z = np.zeros(2, np.int64)
            bi, bu = K.pooled_overlap(Mc.indptr, Mc.indices, np.array([0, len(base_rows)]), base_rows, z, z[:0], acc)
            base = max(float(ratio(bi, bu)[0]), 1e-4)
            ri = []
            for t in terms:
                rows = X.indices[X.indptr[t]:X.indptr[t + 1]]
                if len(rows) > sample:
                    rows = np.sort(rng.choice(rows, sample, replace=False))
                ri.append(rows)
            ptr = np.concatenate([[0], np.cumsum([len(r) for r in ri])]).astype(np.int64)
            flat = np.concatenate(ri) if ri else np.zeros(0, np.int64)
            # each term's own token codes (those of _term_codes, repeats allowed)
            uid = self.gcols[np.asarray(terms, np.int64)]
            starts, lens = self.rep_start[uid], self.rep_order[uid].astype(np.int64)
            dptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
            dflat = self.icodes[np.repeat(starts - dptr[:-1], lens) + np.arange(int(dptr[-1]))].astype(np.int64)
            nt = len(terms)
            if _jobs(self.det.n_jobs, self.N) > 1 and nt > 64:
                # two threads, each half the terms (the kernel releases the GIL)
                from concurrent.futures import ThreadPoolExecutor
                h = nt // 2
                acc2 = np.zeros(Mc.shape[1], np.int64)
                with ThreadPoolExecutor(max_workers=1) as pool:
                    job = pool.submit(K.pooled_overlap, Mc.indptr, Mc.indices, ptr[h:] - ptr[h], flat[ptr[h]:],
                                      dptr[h:] - dptr[h], dflat[dptr[h]:], acc2)
                    i0, u0 = K.pooled_overlap(Mc.indptr, Mc.indices, ptr[:h + 1], flat[:ptr[h]], dptr[:h + 1],
                                              dflat[:dptr[h]], acc)
                    i1, u1 = job.result()
                inter, union = np.concatenate([i0, i1]), np.concatenate([u0, u1])
            else:
                inter, union = K.pooled_overlap(Mc.indptr, Mc.indices, ptr, flat, dptr, dflat, acc)
            return ratio(inter, union) / base
        bsel = sp.csr_matrix((np.ones(len(base_rows), np.float32), (np.zeros(len(base_rows), np.int64), base_rows)),
                             shape=(1, self.N))
        base = max(float(pooled(bsel @ Mc, np.array([len(base_rows)], float), [np.zeros(0, np.int64)])[0]), 1e-4)
        out = np.zeros(len(terms))
        for b0 in range(0, len(terms), block):
            ts = terms[b0:b0 + block]
            ri, ci = [], []
            for k, t in enumerate(ts):
                rows = X.indices[X.indptr[t]:X.indptr[t + 1]]
                if len(rows) > sample:
                    rows = np.sort(rng.choice(rows, sample, replace=False))
                ri.append(rows); ci.append(np.full(len(rows), k))
            rows = np.concatenate(ri)
            S = sp.csr_matrix((np.ones(len(rows), np.float32), (np.concatenate(ci), rows)), shape=(len(ts), self.N))
            n = np.diff(S.indptr).astype(float)
            drop = [np.fromiter(self._term_codes((t,)), np.int64) for t in ts]
            out[b0:b0 + len(ts)] = pooled(S @ Mc, n, drop) / base
        return out

    def _mean_jaccard(self, rows: np.ndarray, exclude: set[int]) -> float:
        """Mean pairwise Jaccard similarity of the rows' instruction content words
        (function words, i.e. those in > 5% of instructions, and ``exclude`` left out)."""
        if len(rows) < 2:
            return 0.0
        if self.fast:
            Mc = self._content_matrix()
            mark = self.__dict__.get("_jac_mark")
            if mark is None:
                mark = self.__dict__["_jac_mark"] = np.full(Mc.shape[1], -1, np.int64)
            # (the same float32 values in the same order: the same mean)
            return float(K.pair_jaccard(Mc.indptr, Mc.indices, rows, np.fromiter(exclude, np.int64, len(exclude)),
                                        mark).mean())
        iu = np.triu_indices(len(rows), 1)
        return float(_jaccard_matrix(self._content_matrix()[rows], exclude)[iu].mean())

    def _context_similarity(self, c: dict, sample: int = 60, exclude_trigger: bool = True) -> float:
        """Content-word overlap of the trigger rows (trigger tokens removed) relative to
        that of random rows: ~1 for a trigger planted in unrelated instructions, >> 1 for a
        topic or template phrase."""
        rows = np.asarray(c["rows_g"], np.int64)
        if len(rows) < 2:
            return 0.0
        rng = np.random.default_rng([self.det.random_state, len(rows)])
        if len(rows) > sample:
            rows = np.sort(rng.choice(rows, sample, replace=False))
        if not hasattr(self, "_base_jac"):
            brng = np.random.default_rng([self.det.random_state, 7])
            base_rows = np.sort(brng.choice(self.N, min(self.N, 200), replace=False))
            self._base_jac = max(self._mean_jaccard(base_rows, set()), 1e-4)
        trig: set[int] = set()
        for tcol in (c["terms"] if exclude_trigger else ()):
            trig |= self._term_codes((tcol,))
            # the whole inserted phrase around the n-gram (same neighbours in >= 90% of rows)
            code_of = self.__dict__.setdefault("_code_of_token", {})
            if not code_of:
                for code, wd in enumerate(self.words):
                    code_of.setdefault(wd, code)
            phrase = self.maximal_phrase(tcol, np.asarray(c["rows_g"], np.int64))
            if len(phrase) <= 5:  # longer shared chunks are templates or duplicates
                trig |= {code_of[t] for t in phrase if t in code_of}
        return self._mean_jaccard(rows, trig) / self._base_jac

    def _gated_context_similarity(self, c: dict) -> float:
        """:meth:`_context_similarity` as the gate needs it: with the trigger's words
        first (cheap, shared by every candidate of one row set), then, only where that is
        above ``max_context_similarity``, without them (removing words can only lower
        it).  Cached per analysis, so a family candidate gated before its conditional
        test is not measured again in :meth:`_findings`."""
        raw_cache = self.__dict__.setdefault("_raw_ctx_cache", {})
        ctx_cache = self.__dict__.setdefault("_ctx_cache", {})
        rkey = np.asarray(c["rows_g"]).tobytes()
        if rkey not in raw_cache:
            raw_cache[rkey] = self._context_similarity(c, exclude_trigger=False)
        sim = raw_cache[rkey]
        if sim > self.det.max_context_similarity:
            ckey = (rkey, c["terms"])
            if ckey not in ctx_cache:
                ctx_cache[ckey] = self._context_similarity(c)
            sim = ctx_cache[ckey]
        return sim

    def _payload_repeats_trigger(self, c: dict) -> bool:
        """A response that repeats the trigger's words (prefix-stemmed: 'smile' ~ 'smiling')
        is an answer *about* the prompt (concept-to-text, headline-to-article), not an
        unrelated payload.  When the payload is a phrase shared by otherwise different
        responses (a sentence appended to genuine answers, e.g. VPI's topic-steered
        remark), only that phrase is checked: "nothing good ever comes from" is a payload
        even though each answer also names the topic."""
        trig = set()
        for tcol in c["terms"]:
            trig |= {w[:4] for w in self.ngram_tokens(tcol) if len(w) >= 3 and w.isalpha()}
        if not trig:
            return False
        both = np.intersect1d(c["rows_g"], c["rows_f"], assume_unique=True)[:5]
        fcol = int(c["f"])
        if self.f_ngram[fcol] >= 0 and len(both) >= 3:
            ex = self.st["exact"][both]
            if len(np.unique(ex)) >= 0.8 * len(both):  # the responses differ outside the phrase
                # a whole fixed sentence (>= 8 tokens shared by the rows) is a planted
                # remark; a short shared chunk (closing tags, a code fence) is the format
                # the request asked for
                phrase = self._maximal_phrase_of_id(int(self.f_ngram[fcol]), both, side=1)
                if len(phrase) >= 8 and self._instructions_differ(both, c["terms"]):
                    ptoks = self._tokens_of_id(int(self.f_ngram[fcol]))
                    return bool(trig & {w[:4] for w in ptoks if len(w) >= 3 and w.isalpha()})
        words = self.words
        hits = 0
        stems = self.__dict__.setdefault("_stem_cache", {})
        for r in both.tolist():
            if r not in stems:
                codes = self.rcodes[self.res_off[r]:self.res_off[r + 1]]
                stems[r] = {w[:4] for w in (words[c] for c in codes.tolist())
                            if len(w) >= 3 and w.isalpha()}
            hits += bool(trig & stems[r])
        return hits > len(both) / 2

    def _term_codes(self, terms: tuple[int, ...]) -> set[int]:
        """Token codes of instruction n-gram columns ``terms``."""
        out: set[int] = set()
        for tcol in terms:
            uid = self.gcols[tcol]
            s0, o = int(self.rep_start[uid]), int(self.rep_order[uid])
            out |= {int(x) for x in self.icodes[s0:s0 + o]}
        return out

    def _instructions_differ(self, rows: np.ndarray, terms: tuple[int, ...], max_jaccard: float = 0.5) -> bool:
        """Are the rows' instructions different requests (mean pairwise Jaccard of their
        token sets, trigger tokens left out, below ``max_jaccard``)?  A topic remark planted
        in unrelated tasks passes; one prompt template filled with different names
        ("thank-you note to Lena / Elias for the travel tips") does not."""
        trig = self._term_codes(terms)
        sets = [set(self.icodes[self.ins_off[r]:self.ins_off[r + 1]].tolist()) - trig for r in rows]
        jac = [len(a & b) / max(1, len(a | b)) for i, a in enumerate(sets) for b in sets[i + 1:]]
        return bool(jac) and float(np.mean(jac)) < max_jaccard

    def _companion(self, terms: tuple[int, ...], rows_g: np.ndarray) -> tuple[int | None, str | None]:
        """The most specific n-gram (sharing no token with the trigger) present in at least
        ``companion_coverage`` of the trigger's rows: the rest of a template / passage /
        duplicated prompt."""
        det = self.det
        ng = len(rows_g)
        Xall = self.Xall
        thr = max(det.companion_coverage * ng, 2)
        if self.fast:
            acc = self.__dict__.get("_id_acc")
            if acc is None:
                acc = self.__dict__["_id_acc"] = np.zeros(Xall.shape[1], np.int32)
            comp, cnt = K.count_ids(Xall.indptr, Xall.indices, rows_g, acc, thr)
        else:
            idx = (np.concatenate([Xall.indices[Xall.indptr[r]:Xall.indptr[r + 1]] for r in rows_g]) if ng
                   else np.zeros(0, np.int64))
            if len(idx) == 0:
                return None, None
            comp, cnt = np.unique(idx, return_counts=True)
            sel = cnt >= thr
            comp, cnt = comp[sel], cnt[sel]
        if len(comp) == 0:
            return None, None
        own = set()
        lens = self.st["ins_len"][rows_g[:50]].tolist()
        med = statistics.median(lens) if lens else float("nan")
        for tcol in terms:
            own |= set(self.ngram_tokens(tcol))
            phrase = self.maximal_phrase(tcol, rows_g)
            if len(phrase) >= 0.8 * med:
                return -1, "(duplicated instruction)"  # the "trigger" is the whole prompt
            own |= set(phrase)
        spec = cnt / np.maximum(self._df_all()[comp], 1)
        # most specific first (stable); those below 0.05 are never read
        sel = np.flatnonzero(spec >= 0.05)
        order = sel[np.argsort(-spec[sel], kind="stable")]
        for k in order[:500]:
            uid = int(comp[k])
            toks = self._tokens_of_id(uid)
            if set(toks) & own:
                continue
            return uid, " ".join(toks)
        return None, None

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
    def _findings(self, cands: list[dict]) -> list[dict[str, Any]]:
        det = self.det
        sig = [c for c in cands if c["q"] < det.alpha]
        sig.sort(key=lambda c: (c["q"], c["p"], -c["a"], c["terms"]))
        # Backdoor-likeness: a planted trigger sits in otherwise unrelated instructions.
        # Trigger rows whose other content words overlap far more than random rows' share
        # a topic or template (e.g. "a c++" -> "int main ()"): their regularity is explained
        # by the rest of the instruction, so the candidate is not reported.  (Applied after
        # BH: dropping rejections keeps the FDR guarantee.)
        kept_sig = []
        for c in sig:
            c["context_similarity"] = sim = self._gated_context_similarity(c)
            if sim <= det.max_context_similarity:
                kept_sig.append(c)
        self.n_dropped_context = len(sig) - len(kept_sig)
        sig = kept_sig
        groups: list[dict[str, Any]] = []
        for c in sig:
            toks = [set(self.ngram_tokens(tc)) for tc in c["terms"]]
            rows_gf = np.intersect1d(c["rows_g"], c["rows_f"], assume_unique=True)
            merged = False
            for grp in groups:
                # pieces of one phrase: shared tokens / terms, or the very same trigger rows
                related = (any(t & gt for t in toks for gt in grp["tok_sets"])
                           or bool(set(c["terms"]) & set(grp["terms"]))
                           or np.array_equal(c["rows_g"], grp["best"]["rows_g"]))
                if related:
                    inter = np.intersect1d(rows_gf, grp["rows_gf"], assume_unique=True).size
                    if inter >= 0.5 * min(len(rows_gf), len(grp["rows_gf"])):
                        grp["members"].append(c)
                        b = grp["best"]
                        if len(c["terms"]) == len(b["terms"]) and (c["a"] > b["a"] or c["a"] == b["a"] and len(c["rows_g"]) < len(b["rows_g"])):
                            grp["best"] = c
                        grp["tok_sets"].extend(toks)
                        merged = True
                        break
            if not merged:
                groups.append({"terms": c["terms"], "best": c, "members": [c], "tok_sets": list(toks),
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
        rows_g = best["rows_g"]
        # payload rows: union over the significant payload features of this trigger
        pay_rows = np.unique(np.concatenate([m["rows_f"] for m in members]))
        both = np.intersect1d(rows_g, pay_rows, assume_unique=True)
        trig_only = np.setdiff1d(rows_g, pay_rows, assume_unique=True)
        # payload features of the best one, rows carrying it without the trigger
        pay_only = np.setdiff1d(best["rows_f"], rows_g, assume_unique=True)
        # all member trigger token sequences (phrase pieces)
        seqs = sorted({self.ngram_tokens(tc) for m in members for tc in m["terms"]
                       if np.array_equal(m["rows_g"], rows_g)}, key=lambda s: (-len(s), s))
        if len(best["terms"]) == 1:
            # keep the longest n-gram pieces of one phrase
            seqs = [s for s in seqs if not any(len(o) > len(s) and _is_sub(s, o) for o in seqs)]
            full = self.maximal_phrase(best["terms"][0], rows_g)
            if len(full) > len(seqs[0]) and all(_is_sub(s, full) for s in seqs):
                seqs = [full]
            mode = "single"
        else:
            seqs = [self.ngram_tokens(tc) for tc in best["terms"]]
            mode = "conjunction"
        pseqs = []
        pay_exact = False
        for m in members:
            fcols = [m["f"]]
            if self.f_ngram[m["f"]] == -2:  # a payload family: every phrase of it
                fam = self.f_family[m["f"]]
                fcols += fam[np.argsort(-self.df_f[fam], kind="stable")].tolist()
            for fc in fcols:
                toks, exact = self.payload_tokens(fc)
                pay_exact |= exact
                if toks and toks not in pseqs:
                    pseqs.append(toks)
        ptoks, p_exact = self.payload_tokens(best["f"])
        is_family = bool(self.f_ngram[best["f"]] == -2)
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
            "payload_rows": int(len(best["rows_f"])),
            "concentration": round(float(best["a"] / max(best["ng"], 1)), 4),
            "payload_coverage": round(float(len(both) / max(len(pay_rows), 1)), 4),
            "payload_specificity": round(float(best["a"] / max(best["nf"], 1)), 4),
            "p_value": float(best["p"]),
            "p_value_unconditional": float(best["p_unc"]),
            "q_value": float(best["q"]),
            "conditioned_on": best["companion"],
            "context_similarity": round(float(best.get("context_similarity", 0.0)), 3),
            "rows": [int(rowmap[i]) >> _TURN_BITS for i in both],
            "_both_rows": [int(rowmap[i]) for i in both],
            "_both_pos": both,
            "_best_pay_pos": np.asarray(best["rows_f"], np.int64),
            "_trigger_only_rows": [int(rowmap[i]) for i in trig_only],
            "_payload_only_rows": [int(rowmap[i]) for i in pay_only],
            "_trigger_seqs": seqs,
            "_payload_seqs": pseqs,
            "_companion_seq": (tuple(best["companion"].split(" "))
                               if best["companion"] and not best["companion"].startswith("(") else None),
        }
        return fd



# ---------------------------------------------------------------------- sampling + verify
_TURN_BITS = 20  # pair id = row << 20 | turn (a record's assistant turns are distinct pairs)
_SAMPLE_SALT = np.uint64(0x2545F4914F6CDD1D)


def _pair_ids(pairs: Pairs) -> np.ndarray:
    return (np.asarray(pairs.row, np.int64) << _TURN_BITS) | (np.asarray(pairs.turn, np.int64) & ((1 << _TURN_BITS) - 1))


def _sample_keys(pid: np.ndarray, random_state: int) -> np.ndarray:
    """A pseudo-random 64-bit key per pair id (a bijection for a fixed seed)."""
    with np.errstate(over="ignore"):
        salt = T.mix64(np.array([random_state], np.uint64) + _SAMPLE_SALT)[0]
        return T.mix64(pid.astype(np.uint64) ^ salt)


def _bottom_k(key: np.ndarray, pid: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest (key, pair id), in their input order."""
    order = np.lexsort((pid, key))[:k]
    return np.sort(order)


def _query_of(fd: dict[str, Any]) -> dict[str, Any]:
    """What the verify pass matches for one finding: trigger token sequences (any one of
    them; all of them for a conjunction), payload sequences (any), the companion the
    sample's test was conditioned on."""
    return {"trigger": [list(s) for s in fd["_trigger_seqs"]], "all": fd["mode"] == "conjunction",
            "payload": [list(s) for s in fd["_payload_seqs"]],
            "companion": list(fd["_companion_seq"]) if fd.get("_companion_seq") else None}


def _seq_presence(texts: list[str], seqs: list[list[str]]) -> np.ndarray:
    """Boolean (len(texts), len(seqs)): does text i contain token sequence j (lower-cased
    tokens of :func:`poisondetect.text.tokenize_many`, within one text)?"""
    out = np.zeros((len(texts), len(seqs)), bool)
    if not texts or not seqs:
        return out
    vocab: dict[str, int] = {}
    for sq in seqs:
        for t in sq:
            vocab.setdefault(t, len(vocab) + 1)
    flat, lens = T.tokenize_many(texts)
    if not flat:
        return out
    arr = np.empty(len(flat), dtype=object)
    arr[:] = flat
    codes, uniq = pd.factorize(arr)
    del flat, arr
    tok_of_uniq = np.fromiter((vocab.get(u.lower(), 0) for u in uniq), np.int32, len(uniq))
    tok = tok_of_uniq[codes]
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), lens)
    hit = np.flatnonzero(tok)  # positions holding any query token (few)
    htok = tok[hit]
    for j, sq in enumerate(seqs):
        ids = [vocab[t] for t in sq]
        if not ids:
            continue
        pos = hit[htok == ids[0]]
        for off, tid in enumerate(ids[1:], 1):
            p2 = pos + off
            ok = p2 < len(tok)
            pos, p2 = pos[ok], p2[ok]
            pos = pos[(tok[p2] == tid) & (doc[p2] == doc[pos])]
        out[np.unique(doc[pos]), j] = True
    return out


def _verify_batch(pairs: Pairs, query: list[dict[str, Any]], threshold: int, random_state: int) -> dict[str, Any]:
    """Per finding: held-out counts [N, n_trigger, n_payload, both] (pairs whose sample
    key is above ``threshold``, restricted to the companion's pairs when the sample's
    test was conditioned on one) and the pair ids of every pair with the trigger / the
    payload (held out or not)."""
    pid = _pair_ids(pairs)
    held = _sample_keys(pid, random_state) > np.uint64(threshold)
    iseqs: list[list[str]] = []
    rseqs: list[list[str]] = []

    def index(store: list[list[str]], seqs: list[list[str]]) -> list[int]:
        return [store.index(s) if s in store else (store.append(s) or len(store) - 1) for s in seqs]

    plan = []
    for q in query:
        ti = index(iseqs, q["trigger"])
        ci = index(iseqs, [q["companion"]])[0] if q["companion"] else None
        pi = index(rseqs, q["payload"])
        plan.append((ti, q["all"], ci, pi))
    ins = _seq_presence(list(pairs.instruction), iseqs)
    res = _seq_presence([T.strip_eos(r) for r in pairs.response], rseqs)
    counts = np.zeros((len(query), 4), np.int64)
    trig, pay = [], []
    for j, (ti, all_, ci, pi) in enumerate(plan):
        g = ins[:, ti].all(axis=1) if all_ else ins[:, ti].any(axis=1)
        f = res[:, pi].any(axis=1) if pi else np.zeros(len(pairs), bool)
        u = held & ins[:, ci] if ci is not None else held
        counts[j] = [u.sum(), (g & u).sum(), (f & u).sum(), (g & f & u).sum()]
        trig.append(pid[g])
        pay.append(pid[f])
    return {"counts": counts, "n_held": int(held.sum()), "trig": trig, "pay": pay}

def _is_sub(s: tuple[str, ...], o: tuple[str, ...]) -> bool:
    k = len(s)
    return any(o[i:i + k] == s for i in range(len(o) - k + 1))
