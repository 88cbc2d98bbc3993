"""Shared statistics of preference data (a chosen and a rejected answer per prompt).

One statistic serves both preference detectors: a **held-out preference margin** per
pair.  A Bradley-Terry model (a linear logistic model on the *difference* of the two
answers' features, no intercept, fitted on each pair and its mirror image) learns from
the dataset itself which answer its labellers prefer; the margin of a pair is predicted
by a model fitted on the other folds (k-fold, out of fold), so a pair never grades
itself.  A low margin says "the chosen answer looks like the ones this dataset rejects".
Features of an answer: its embedding (the scan's embedder), its refusal style, its log
length, and its fit to the last user turn (cosine similarity).  Without embeddings the
scalar features alone are used.

Poisoned labels are a small minority, so the model learns the clean direction and the
flipped pairs fall below it.  The margin is weak evidence for one pair (on HH-RLHF
harmless-base the held-out model agrees with the labels on ~64% of pairs, near what
reward models reach there) and strong evidence summed over a group of pairs (a trigger's
rows, a source's rows): :func:`poisondetect.stats.z_sum_lower`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..stats import standardise
from ..text import last_user_turn
from ..types import DetectorResult
from ._refusal import shared_refusal
from ._safety_common import embed_texts_or_reason, embeddings_or_reason

def shared_last_user(pairs: Any, ctx: Any) -> list[tuple[int, str]]:
    def _compute():
        return [last_user_turn(s) for s in pairs.instruction]
    return _compute() if ctx is None else ctx.shared("last_user_turns", _compute)


def not_preference_result(detector_id: str, n: int) -> DetectorResult:
    """What a preference detector returns on data without rejected answers."""
    return DetectorResult(detector_id, np.zeros(n), np.zeros(n, bool),
                          summary={"applies": False, "reason": "no rejected answers (not preference data)"})


def _features(pairs: Any, ctx: Any) -> tuple[np.ndarray, str]:
    rc = shared_refusal(pairs, ctx)
    rr = shared_refusal(pairs, ctx, "rejected")
    lc = np.log1p(np.fromiter((len(x) for x in pairs.response), np.float64, len(pairs)))
    lr = np.log1p(np.fromiter((len(x) for x in pairs.rejected), np.float64, len(pairs)))
    scal = np.column_stack([rc - rr, lc - lr])
    Ec, why = embeddings_or_reason(ctx, "response")
    if Ec is None:
        return scal, f"scalar features only ({why})"
    Er, why = embed_texts_or_reason(ctx, pairs.rejected, "rejected_answers")
    if Er is None:
        return scal, f"scalar features only ({why})"
    Eu, why = embed_texts_or_reason(ctx, [t for _o, t in shared_last_user(pairs, ctx)], "last_user_turns")
    fit = ((Ec * Eu).sum(1) - (Er * Eu).sum(1))[:, None] if Eu is not None else np.zeros((len(pairs), 0))
    return np.hstack([Ec - Er, scal, fit]).astype(np.float64), "embeddings + refusal + length + fit to the request"


def preference_margins(pairs: Any, ctx: Any, random_state: int = 0, n_folds: int = 5,
                       C: float = 0.1, min_pairs: int = 50) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(standardised held-out margins, raw held-out margins, info).  Lower = the chosen
    answer looks worse than the rejected one to a model fitted on the rest of the
    dataset; a raw margin below 0 means that model prefers the rejected answer.  Zeros
    (and ``info["fitted"] = False``) when there are fewer than ``min_pairs`` pairs."""
    n = len(pairs)
    if n < max(min_pairs, 2 * n_folds):
        return np.zeros(n), np.zeros(n), {"fitted": False, "reason": f"{n} preference pairs (< {max(min_pairs, 2 * n_folds)})"}
    from sklearn.linear_model import LogisticRegression

    D, mode = _features(pairs, ctx)
    D = D / np.maximum(np.abs(D).max(axis=0), 1e-9)  # columns on one scale; sign kept
    rng = np.random.default_rng([int(random_state), 0x9E7F])
    fold = rng.permutation(np.arange(n) % n_folds)
    m = np.zeros(n)
    for f in range(n_folds):
        tr = fold != f
        X = np.vstack([D[tr], -D[tr]])
        y = np.r_[np.ones(tr.sum()), np.zeros(tr.sum())]
        lr = LogisticRegression(C=C, fit_intercept=False, max_iter=3000).fit(X, y)
        m[~tr] = D[~tr] @ lr.coef_[0]
    info = {"fitted": True, "features": mode, "n_folds": n_folds,
            "held_out_agreement": round(float((m > 0).mean()), 4)}
    return standardise(m), m, info


def shared_margins(pairs: Any, ctx: Any, random_state: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Memoised per scan: both preference detectors read it."""
    if ctx is None:
        return preference_margins(pairs, None, random_state)
    return ctx.shared(("preference_margins", int(random_state)), lambda: preference_margins(pairs, ctx, random_state))


def label_consistency(pairs: Any, ctx: Any, random_state: int = 0) -> np.ndarray | None:
    """For preference data, a factor per pair for the single-answer behaviour detectors
    (over_refusal, harmful_compliance): 0.5 where the dataset's own held-out preference
    model agrees that the chosen answer beats the rejected one (raw margin >= 0), 1.0
    elsewhere.  A behaviour the labellers consistently prefer over the alternative on the
    other side of the pair is the dataset's policy, not a planted flip; flipped_preference,
    which reads both answers, owns those pairs.  None for data without rejected answers."""
    if getattr(pairs, "rejected", None) is None:
        return None
    _z, raw, info = shared_margins(pairs, ctx, random_state)
    if not info.get("fitted"):
        return None
    return np.where(raw >= 0, 0.5, 1.0)
