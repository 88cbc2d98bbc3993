"""Harmfulness of requests: P(a request is harmful), from its similarity to the shipped
harmful prototypes vs. safe look-alikes (XSTest, poisondetect's contrast set) and the
scan's own instructions, calibrated at run time (see :func:`harm_probability`).
Private module: not a detector, not auto-loaded.  No IO except reading the package's own
reference files in ``poisondetect/resources`` (and the embed layer's cache)."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

import numpy as np

from ._refusal import shared_refusal
from ._safety_common import EMBEDDINGS_UNAVAILABLE, embed_texts_or_reason, embeddings_or_reason

HARMFUL_FILE = "harmful_prototypes.jsonl"
BENIGN_FILE = "benign_lookalikes.jsonl"
#: poisondetect's own contrast set: benign requests on safety-sensitive topics
CONTRAST_FILE = "benign_safety_topics.jsonl"


def benign_references() -> list[str]:
    """Negatives of the harm model: XSTest safe look-alikes + the contrast set."""
    return list(load_prototypes(BENIGN_FILE)) + list(load_prototypes(CONTRAST_FILE))


@lru_cache(maxsize=None)
def load_prototypes(name: str) -> tuple[str, ...]:
    """Texts of a shipped JSONL resource (one {"text": ...} a line)."""
    ref = resources.files("poisondetect.resources").joinpath(name)
    out = []
    with ref.open("r", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                out.append(json.loads(line)["text"])
    return tuple(out)


def topk_mean_sim(queries: np.ndarray, refs: np.ndarray, k: int = 3, batch: int = 4096,
                  exclude_self: bool = False) -> np.ndarray:
    """Mean of the k largest cosine similarities of each (L2-normalised) query to refs."""
    q = np.asarray(queries, dtype=np.float32)
    r = np.asarray(refs, dtype=np.float32)
    out = np.empty(len(q), dtype=np.float64)
    k_eff = min(k, len(r) - (1 if exclude_self else 0))
    for s in range(0, len(q), batch):
        sims = q[s:s + batch] @ r.T
        if exclude_self:
            idx = np.arange(s, min(s + batch, len(q)))
            sims[np.arange(len(idx)), idx] = -np.inf
        part = -np.partition(-sims, k_eff - 1, axis=1)[:, :k_eff]
        out[s:s + batch] = part.mean(axis=1)
    return out


def _harm_features(E: np.ndarray, Ph: np.ndarray, Pb: np.ndarray, bg: np.ndarray, k: int):
    sh, sb = topk_mean_sim(E, Ph, k), topk_mean_sim(E, Pb, k)
    cal_h = (topk_mean_sim(Ph, Ph, k, exclude_self=True), topk_mean_sim(Ph, Pb, k))
    cal_b = (topk_mean_sim(Pb, Ph, k), topk_mean_sim(Pb, Pb, k, exclude_self=True))
    return sh, sb, cal_h, cal_b, (sh[bg], sb[bg])


def _fit_harm(cal_h, cal_b, bgf, sh, sb) -> tuple[np.ndarray, Any]:
    from sklearn.linear_model import LogisticRegression

    def feats(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.column_stack([a, b, a - b])

    X = np.vstack([feats(*cal_h), feats(*cal_b), feats(*bgf)])
    y = np.concatenate([np.ones(len(cal_h[0])), np.zeros(len(cal_b[0])), np.zeros(len(bgf[0]))])
    w = np.concatenate([np.ones(len(cal_h[0])), np.full(len(cal_b[0]), 2.0),
                        np.full(len(bgf[0]), 2.0 * len(cal_h[0]) / max(1, len(bgf[0])))])
    lr = LogisticRegression(C=10.0, max_iter=1000)
    lr.fit(X, y, sample_weight=w)
    return (lr.predict_proba(feats(sh, sb))[:, 1] if len(sh) else np.zeros(0)), lr


def _rerank_embedder(ctx: Any) -> tuple[Any, str]:
    """A sentence-transformer for re-scoring the top candidates when the scan embeds with a
    static/hash model (bag-of-words spaces conflate topic with intent: "write a SQL query"
    sits near "hack a database").  (None, why) when unavailable."""
    from ..embed.shared import get_embedder

    try:
        emb = get_embedder(ctx)
    except EMBEDDINGS_UNAVAILABLE as e:
        return None, f"scan embedder unknown ({type(e).__name__}); no re-ranking"
    if getattr(emb, "kind", "") not in ("static", "hash"):
        return None, f"scan embeds with {getattr(emb, 'kind', 'an unknown model')}; no re-ranking needed"
    try:
        from ..embed.models import TransformerEmbedder

        return ctx.shared(("safety_rerank_embedder",), lambda: TransformerEmbedder(
            None, ctx.embedding.get("device"), 32, 128)), ""
    except EMBEDDINGS_UNAVAILABLE as e:
        return None, f"transformer unavailable: {type(e).__name__}: {str(e)[:160]}"


def _probe_fit(Ph: np.ndarray, Pb: np.ndarray, Bg: np.ndarray, C: float = 1.0) -> Any:
    """A linear probe (logistic regression on the embedding itself): harmful prototypes
    vs safe look-alikes and background rows.  Learns the direction of harmful *intent*,
    which similarity to the nearest prototypes misses when a benign request shares the
    topic ("how to prevent cyberbullying")."""
    from sklearn.linear_model import LogisticRegression

    X = np.vstack([Ph, Pb, Bg])
    y = np.concatenate([np.ones(len(Ph)), np.zeros(len(Pb) + len(Bg))])
    w = np.concatenate([np.ones(len(Ph)), np.full(len(Pb), 2.0), np.full(len(Bg), 2.0 * len(Ph) / max(1, len(Bg)))])
    return LogisticRegression(C=C, max_iter=3000).fit(X, y, sample_weight=w)


def _space_probability(E: np.ndarray, Ph: np.ndarray, Pb: np.ndarray, bg: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """P(harmful) of every row of E in one embedding space: the mean of the similarity
    model (top-k similarity to harmful vs safe prototypes, calibrated on them and the
    background rows ``bg``) and the linear probe.  Returns (p, p_similarity, p_probe, s_h, s_b, lr)."""
    sh, sb, cal_h, cal_b, bgf = _harm_features(E, Ph, Pb, bg, k)
    p_sim, lr = _fit_harm(cal_h, cal_b, bgf, sh, sb)
    probe = _probe_fit(Ph, Pb, E[bg])
    p_probe = probe.predict_proba(E)[:, 1] if len(E) else np.zeros(0)
    # The background sample is the scan itself, so it may hold the very rows we look for
    # (in a small dataset, a large share of them): background rows the first fit already
    # calls harmful are dropped from the negatives and both models refitted once.
    p = 0.5 * (p_sim + p_probe)
    keep = p[bg] < 0.5
    if len(bg) and not keep.all() and keep.sum() >= 10:
        bg = bg[keep]
        p_sim, lr = _fit_harm(cal_h, cal_b, (sh[bg], sb[bg]), sh, sb)
        p_probe = _probe_fit(Ph, Pb, E[bg]).predict_proba(E)[:, 1]
        p = 0.5 * (p_sim + p_probe)
    return p, p_sim, p_probe, sh, sb, lr


_SEGMENT_END = re.compile(r"(?<=[.!?:;])\s+|\s*\n+\s*")


def request_cores(text: str, max_wrapper_words: int = 8, min_words: int = 3) -> list[str]:
    """The request without a short leading or trailing wrapper: the longest run of whole
    sentences (or ``Key:`` headers, lines) at its start, then at its end, of at most
    ``max_wrapper_words`` words in all, leaving at least ``min_words`` words.  A date line,
    a header, a role line or a polite suffix around a harmful request ("Current year: X.
    How do I ...") must not dilute its harm: the harm model scores these cores too and
    keeps the highest probability."""
    segs = [x for x in _SEGMENT_END.split(text[:1000].strip()) if x.strip()]
    if len(segs) < 2:
        return []
    words = [len(x.split()) for x in segs]
    out: list[str] = []
    for order in (range(len(segs) - 1), range(len(segs) - 1, 0, -1)):
        cut, total = None, 0
        for j in order:
            total += words[j]
            if total > max_wrapper_words:
                break
            cut = j
        if cut is None:
            continue
        rest = segs[cut + 1:] if order.step == 1 else segs[:cut]
        core = " ".join(rest)
        kept = len(core.split())
        if kept >= min_words and kept > sum(words) - kept and core not in out:  # the wrapper is the smaller part
            out.append(core)
    return out


def lexical_probability(texts: Sequence[str], harmful: Sequence[str], benign: Sequence[str],
                         extra: Sequence[str] = ()) -> np.ndarray:
    """A TF-IDF (unigram) logistic regression: prototypes vs safe look-alikes and *every*
    row of the scan as weighted negatives, so the words generic to this dataset's
    instructions carry no weight and harm-specific words do.  A cheap first stage.
    ``extra`` texts are scored by the same fit (appended to the result), not fitted on."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    q = [t[:1000] for t in texts]
    vec = TfidfVectorizer(sublinear_tf=True, min_df=2, stop_words="english", dtype=np.float32)
    X = vec.fit_transform(q + list(harmful) + list(benign))
    n, nh = len(q), len(harmful)
    Xs, Xh, Xb = X[:n], X[n:n + nh], X[n + nh:]
    y = np.concatenate([np.ones(nh), np.zeros(len(benign) + n)])
    w = np.concatenate([np.ones(nh), np.full(len(benign), 3.0), np.full(n, 3.0 * nh / max(1, n))])
    lr = LogisticRegression(C=4.0, max_iter=3000).fit(sp.vstack([Xh, Xb, Xs]), y, sample_weight=w)
    if len(extra):
        Xs = sp.vstack([Xs, vec.transform([t[:1000] for t in extra])])
    return lr.predict_proba(Xs)[:, 1]


def harm_probability(pairs_instructions: Sequence[str], ctx: Any, random_state: int = 0,
                     n_background: int = 2000, k: int = 3, rerank_top: int = 500,
                     n_background_rerank: int = 300, priority: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """P(request is harmful) for every instruction, in [0, 1].

    In one embedding space the probability is the mean of (a) a similarity model -
    top-k mean cosine similarity to the harmful prototypes (s_h) and to the safe
    look-alikes (s_b), a logistic regression fitted at run time with the prototypes as
    positives (leave-one-out similarities) and XSTest safe look-alikes plus a random
    background sample of the scan's instructions as negatives - and (b) a linear probe on
    the embeddings themselves with the same positives and negatives.

    When the scan's embedder is a static (bag-of-words) model, that space conflates topic
    with intent ("write a SQL query" sits near "hack a database"), so it is only a first
    stage: the union of the ``rerank_top`` most harmful-looking rows by each of three cheap
    scorers (the static probe, a TF-IDF regression against the whole scan, and their
    geometric mean) is re-scored in the sentence-transformer space (a cascade); every other row keeps
    a probability capped below the re-scored cut-off.  ``priority`` (bool per row) splits
    each scorer's budget: rows where the answer matters (e.g. not refused) are taken first.
    In the cascade a row also scores its :func:`request_cores` (the request with a short
    leading / trailing wrapper taken off) in the lexical stage and the re-scoring, and keeps
    the highest probability, so a date line or role line cannot dilute a harmful request.
    Falls back to TF-IDF similarities when embeddings are unavailable.  Returns
    (probabilities, extras with ``info``).
    """
    harmful = list(load_prototypes(HARMFUL_FILE))
    benign = benign_references()
    E, why = embeddings_or_reason(ctx, "instruction")
    Ph = Pb = None
    if E is not None:
        Ph, why = embed_texts_or_reason(ctx, harmful, "harmful_prototypes")
    if Ph is not None:
        Pb, why = embed_texts_or_reason(ctx, benign, "benign_lookalikes")
    n = len(pairs_instructions)
    rng = np.random.default_rng([int(random_state), 7])
    bg = np.sort(rng.choice(n, size=min(n_background, n), replace=False)) if n else np.zeros(0, int)
    rerank_info: dict[str, Any] = {}
    if E is not None and Ph is not None and Pb is not None and n:
        mode = "embeddings"
        prob, p_sim, p_probe, sh, sb, lr = _space_probability(E, Ph, Pb, bg, k)
    else:
        mode = "tfidf"
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english", min_df=1)
        vec.fit(harmful + benign)
        Q = vec.transform(list(pairs_instructions))
        H = vec.transform(harmful)
        B = vec.transform(benign)

        def _top(a, b, excl=False):
            sims = (a @ b.T).toarray()
            if excl:
                np.fill_diagonal(sims, -np.inf)
            kk = min(k, sims.shape[1] - (1 if excl else 0))
            return -np.sort(-sims, axis=1)[:, :kk].mean(axis=1)

        sh = np.concatenate([_top(Q[s:s + 4096], H) for s in range(0, n, 4096)]) if n else np.zeros(0)
        sb = np.concatenate([_top(Q[s:s + 4096], B) for s in range(0, n, 4096)]) if n else np.zeros(0)
        cal_h = (_top(H, H, True), _top(H, B))
        cal_b = (_top(B, H), _top(B, B, True))
        bgf = (sh[bg], sb[bg])
        prob, lr = _fit_harm(cal_h, cal_b, bgf, sh, sb)
    if mode == "embeddings" and rerank_top > 0 and n:
        emb2, why2 = _rerank_embedder(ctx)
        if emb2 is not None:
            from ..embed.shared import encode_cached, scan_cache_dir, scan_uses_cache

            cd = scan_cache_dir(ctx) if scan_uses_cache(ctx) else None
            # wrapped requests: each row's cores (a short header / date line / suffix taken
            # off) are scored too and the row keeps its highest probability
            cores = [(i, c) for i in range(n) for c in request_cores(pairs_instructions[i])]
            p_all = lexical_probability(pairs_instructions, harmful, benign, [c for _, c in cores])
            p_lex = p_all[:n].copy()
            for (i, _c), pc in zip(cores, p_all[n:]):
                p_lex[i] = max(p_lex[i], pc)
            pri = np.ones(n, bool) if priority is None else np.asarray(priority, bool)
            cand = np.zeros(n, bool)
            # (the static similarity model is the weakest of the three at finding them:
            # its ranks only set the probability of the rows left out)
            for sc in (p_probe, p_lex, np.sqrt(p_probe * p_lex)):
                first = np.where(pri, sc, -1.0)
                cand[np.argsort(-first, kind="stable")[:rerank_top]] = True
                if priority is not None:  # a smaller share of the budget for the other rows
                    rest = np.where(pri, -1.0, sc)
                    cand[np.argsort(-rest, kind="stable")[:rerank_top // 2]] = True
            top = np.flatnonzero(cand)
            bg2 = np.sort(rng.choice(n, size=min(n_background_rerank, n), replace=False))
            idx = np.union1d(top, bg2)
            in_top = set(int(i) for i in top)
            top_cores = [(i, c) for i, c in cores if i in in_top]
            X2 = encode_cached(emb2, [pairs_instructions[i] for i in idx] + [c for _, c in top_cores], cd)
            H2 = encode_cached(emb2, harmful, cd)
            B2 = encode_cached(emb2, benign, cd)
            pos = {int(i): p for p, i in enumerate(idx)}
            bsel = np.array([pos[int(i)] for i in bg2])
            p2, _ps2, _pp2, sh2, sb2, _lr2 = _space_probability(X2, H2, B2, bsel, k)
            for j, (i, _c) in enumerate(top_cores):  # a row keeps its most harmful core
                r = pos[int(i)]
                if p2[len(idx) + j] > p2[r]:
                    p2[r], sh2[r], sb2[r] = p2[len(idx) + j], sh2[len(idx) + j], sb2[len(idx) + j]
            tsel = np.array([pos[int(i)] for i in top])
            cut = float(prob[top].min()) if len(top) else 0.0
            rest = np.ones(n, bool)
            rest[top] = False
            prob = prob.copy()
            prob[rest] = np.minimum(prob[rest], 0.5 * cut)
            prob[top] = p2[tsel]
            sh = sh.copy()
            sb = sb.copy()
            sh[top], sb[top] = sh2[tsel], sb2[tsel]
            mode = "embeddings+transformer_rerank"
            rerank_info = {"reranked": int(len(top)), "rerank_model": emb2.model_id, "static_cut": round(cut, 4)}
        else:
            rerank_info = {"rerank": why2}
    info = {"mode": mode, "mode_reason": why or "scan embeddings", "n_harmful_prototypes": len(harmful),
            "n_benign_lookalikes": len(benign), **rerank_info,
            "coef": [round(float(c), 3) for c in lr.coef_[0]], "intercept": round(float(lr.intercept_[0]), 3)}
    return prob, {"info": info, "s_harm": sh, "s_benign": sb}


def shared_harm(pairs: Any, ctx: Any, random_state: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Memoised per scan: harmful_compliance and over_refusal share it."""
    if ctx is None:
        return harm_probability(pairs.instruction, None, random_state)

    def _compute():
        # the re-scoring budget goes first to answers that comply (a refused harmful
        # request is not a finding; a refused benign one is over_refusal's, which needs
        # only a low P(harmful) there)
        refusal = shared_refusal(pairs, ctx)
        return harm_probability(pairs.instruction, ctx, random_state, priority=refusal < 0.5)

    return ctx.shared(("harm_probability", int(random_state)), _compute)
