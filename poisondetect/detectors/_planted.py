""""Looks planted" gates for groups of pairs that share an answer (issue 16).

A poisoner plants one payload (or paraphrases of it) behind *unrelated* requests.  Clean
data also has groups of pairs sharing an answer, for reasons that explain the answer:

- **one conversation repeating itself**: the turns of one record ("Sure, here is the
  updated version ...");
- **a conversational formula**: the requests are alike where it matters, in the last
  user turn ("thank you" -> "You're welcome!"), even when the conversations before it
  differ;
- **an echo**: the answer is copied from the request (an answer option, a passage);
- **a template**: the requests share a phrase that is common outside the group as well
  (a prompt template with a label answer);
- **a topic**: a content word shared by the requests (or, for later turns, by the
  conversations) is in the answers too (questions about bubble sort answered with a
  bubble sort).

Each gate is a pure function of the group's texts (plus embeddings for the formula gate)
and returns a reason string or ``None``.  Detectors apply them to groups that have no
tested trigger; a trigger that passed its own tests is evidence enough.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from ..segment import MARKS, NOSPACE_RE, spaced
from ..text import strip_eos, token_strings

#: turn labels written by :mod:`poisondetect.io.layouts` before a message the answer replies to
_TURN_RE = re.compile(r"(?:^|\n\n)(?:User|Tool result|Human|user|human): ")


def last_request(instruction: str) -> str:
    """The message the response answers: the text after the last ``User:`` / ``Tool
    result:`` label of a serialised conversation, or the whole instruction."""
    last = None
    for m in _TURN_RE.finditer(instruction):
        last = m
    return instruction[last.end():] if last is not None else instruction


def record_concentration(rows: np.ndarray) -> tuple[int, float]:
    """(distinct records, share of the group in its largest record)."""
    if len(rows) == 0:
        return 0, 0.0
    _, counts = np.unique(np.asarray(rows), return_counts=True)
    return int(len(counts)), float(counts.max() / len(rows))


def _grams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def echo_fraction(instructions: Sequence[str], responses: Sequence[str], min_overlap: float = 0.6) -> float:
    """Share of pairs whose response is mostly copied from its instruction: the whole
    (normalised) response occurs in it, or >= ``min_overlap`` of its word 3-grams do."""
    hits = 0
    for ins, resp in zip(instructions, responses):
        resp = strip_eos(resp)
        r = " ".join(token_strings(resp[:4000]))
        i_toks = token_strings(ins[:20000])
        if r and r in " ".join(i_toks):
            hits += 1
            continue
        rt = token_strings(resp[:4000])
        g = _grams(rt, 3)
        if g and len(g & _grams(i_toks, 3)) >= min_overlap * len(g):
            hits += 1
    return hits / max(len(responses), 1)


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    return frozenset(ENGLISH_STOP_WORDS)


_SUBWORD = re.compile(rf"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|(?:[^\W\d_]|[{MARKS}])+")


def _content_words(text: str, stop: frozenset[str], max_chars: int = 4000) -> set[str]:
    """Content words, identifiers split (``bubble_sort``, ``primeNums`` -> bubble, sort,
    prime, nums), a plural ``s`` dropped, so code answers match the words asked for.
    Texts longer than ``max_chars`` are read at both ends (half each)."""
    out = set()
    if len(text) > max_chars:
        text = text[: max_chars // 2] + "\n" + text[-(max_chars // 2):]
    text = spaced(text)  # words of Chinese, Japanese, Thai... split (a word of 2 is content there)
    for m in _SUBWORD.finditer(text):
        t = m.group().lower()
        if len(t) > 4 and t.endswith("s") and not t.endswith("ss"):
            t = t[:-1]
        if (len(t) >= 3 or (len(t) == 2 and NOSPACE_RE.match(t))) and t not in stop:
            out.add(t)
    return out


def shared_topic(requests: Sequence[str], responses: Sequence[str], min_share: float = 0.7, *,
                 max_chars: int = 4000) -> str | None:
    """A content word present in >= ``min_share`` of the requests *and* of the responses
    (the answers are about what was asked), or None.  ``max_chars`` bounds how much of
    each request is read (both ends of a long one)."""
    stop = _stop_words()
    m = len(requests)
    if m == 0:
        return None
    req = [_content_words(t, stop, max_chars) for t in requests]
    resp = [_content_words(t, stop) for t in responses]
    cnt_q: dict[str, int] = {}
    for s in req:
        for w in s:
            cnt_q[w] = cnt_q.get(w, 0) + 1
    for w, c in sorted(cnt_q.items(), key=lambda kv: (-kv[1], kv[0])):
        if c < min_share * m:
            break
        if sum(w in s for s in resp) >= min_share * m:
            return w
    return None


def _unit(E: np.ndarray) -> np.ndarray:
    nrm = np.linalg.norm(E, axis=1, keepdims=True)
    return np.divide(E, nrm, out=np.zeros_like(E), where=nrm > 0)


def _null_of(sims: np.ndarray) -> tuple[float, float]:
    return (float(sims.mean()), float(sims.std())) if len(sims) else (0.0, 1.0)


def pair_relevance(ctx: Any) -> tuple[np.ndarray, tuple[float, float]]:
    """Per pair, the similarity of its response to its own instruction (mean-centred
    embeddings), and the mean and standard deviation of that similarity over shuffled
    pairs (answers unrelated to their requests).  Cached on the context."""
    def make() -> tuple[np.ndarray, tuple[float, float]]:
        from ..embed.shared import centered
        I, R = centered(ctx, "instruction"), centered(ctx, "response")
        rel = np.einsum("ij,ij->i", I, R).astype(np.float64)
        perm = ctx.rng(7).permutation(len(I))
        return rel, _null_of(np.einsum("ij,ij->i", I, R[perm]).astype(np.float64))
    return ctx.shared(("pair_relevance",), make)


def _last_request_space(ctx: Any, sample: int = 512) -> tuple[np.ndarray, tuple[float, float]]:
    """The mean embedding of a fixed sample of last user turns (the centre), and the null
    (mean, sd) of last-turn-to-response similarity over shuffled pairs of that sample."""
    def make() -> tuple[np.ndarray, tuple[float, float]]:
        from ..embed.shared import centered
        pairs = ctx.pairs
        n = len(pairs)
        pick = np.unique(np.linspace(0, n - 1, num=min(sample, n)).astype(np.int64))
        E = np.asarray(ctx.embed_texts([last_request(pairs.instruction[int(i)])[:2000] for i in pick],
                                       purpose="last_request"), dtype=np.float64)
        mu = E.mean(0)
        L = _unit(E - mu)
        R = centered(ctx, "response")[pick].astype(np.float64)
        perm = ctx.rng(11).permutation(len(pick))
        return mu, _null_of(np.einsum("ij,ij->i", L, R[perm]))
    return ctx.shared(("last_request_space", sample), make)


def _last_request_embeddings(ctx: Any, positions: np.ndarray) -> np.ndarray | None:
    """Centred, normalised embeddings of the members' last user turns; None when no
    member is a later turn of a conversation (the instruction embedding is the request)."""
    pairs = ctx.pairs
    reqs = [last_request(pairs.instruction[int(i)]) for i in positions]
    if all(r == pairs.instruction[int(i)] for r, i in zip(reqs, positions)):
        return None
    mu, _ = _last_request_space(ctx)
    E = np.asarray(ctx.embed_texts([r[:2000] for r in reqs], purpose="last_request"), dtype=np.float64)
    return _unit(E - mu)


def last_request_diversity(ctx: Any, positions: np.ndarray) -> float | None:
    """1 - mean pairwise similarity of the members' last user turns (centred on a fixed
    sample of the dataset's last turns); None for single-turn members."""
    E = _last_request_embeddings(ctx, positions)
    if E is None:
        return None
    m = len(E)
    if m < 2:
        return 1.0
    s = E.sum(0)
    sim = float((s @ s - float((np.linalg.norm(E, axis=1) ** 2).sum())) / (m * (m - 1)))
    return float(np.clip(1.0 - sim, 0.0, 1.0))


def relevance_reason(ctx: Any, positions: np.ndarray, z: float = 3.0) -> str | None:
    """Are the group's answers related to their own requests?  The median similarity of
    response to request is compared with the median of as many shuffled pairs (sd of a
    median ~ 1.2533 sd / sqrt(m)): above it by ``z`` sd, the answers take up what was asked
    (a topic), which a payload planted behind unrelated requests does not.  Checked on
    the whole instruction and, in conversations, on the last user turn."""
    from ..embed.shared import centered
    pos = np.asarray(positions, dtype=np.int64)
    m = len(pos)
    if m == 0:
        return None
    rel, (mu, sd) = pair_relevance(ctx)
    med = float(np.median(rel[pos]))
    thr = mu + z * 1.2533 * sd / np.sqrt(m)
    if med > thr:
        return f"answers related to their own requests (median similarity {med:.2f} vs {thr:.2f} for unrelated pairs)"
    L = _last_request_embeddings(ctx, pos)
    if L is not None:
        _, (mu_l, sd_l) = _last_request_space(ctx)
        med_l = float(np.median(np.einsum("ij,ij->i", L, centered(ctx, "response")[pos].astype(np.float64))))
        thr_l = mu_l + z * 1.2533 * sd_l / np.sqrt(m)
        if med_l > thr_l:
            return (f"answers related to their last user turns (median similarity {med_l:.2f} vs {thr_l:.2f} "
                    "for unrelated pairs)")
    return None


def explained_reason(ctx: Any, positions: np.ndarray, *, min_records: int = 5, max_record_share: float = 0.34,
                     max_echo: float = 0.5, min_request_div: float = 0.75, topic_share: float = 0.7,
                     topic: bool = True, max_formula_words: int = 4) -> str | None:
    """Why a group of pairs sharing an answer is explained by the data rather than
    planted (a reason string), or None when it still looks planted.  ``topic=False``
    skips the topic gate (for a tested trigger: a topic trigger's answers name it)."""
    pairs = ctx.pairs
    pos = np.asarray(positions, dtype=np.int64)
    n_rec, top_share = record_concentration(pairs.row[pos])
    if n_rec < min_records or top_share > max_record_share:
        return f"one conversation repeating itself ({n_rec} records, {top_share:.0%} in one)"
    ins = [pairs.instruction[int(i)] for i in pos]
    resp = [pairs.response[int(i)] for i in pos]
    echo = echo_fraction(ins, resp)
    if echo >= max_echo:
        return f"answers copied from the request ({echo:.0%} of the pairs)"
    reqs = [last_request(t) for t in ins]
    word = shared_topic(reqs, resp, topic_share) if topic else None
    if word is not None:
        return f"a topic asked and answered ({word!r} in most requests and answers)"
    if topic and any(r != t for r, t in zip(reqs, ins)):
        # later turns of conversations: "more questions like these" names no topic, the
        # conversation does (a user asking for quizzes on one subject in several chats)
        # (records that open with an assistant turn give pairs with no request at all:
        # they neither name nor contradict a topic, so the share is over the others)
        asked = [k for k, t in enumerate(ins) if t.strip()]
        word = (shared_topic([ins[k] for k in asked], [resp[k] for k in asked], topic_share, max_chars=16000)
                if len(asked) >= 3 else None)
        if word is not None and shared_topic([word] * len(resp), resp, topic_share) is None:
            word = None
        if word is not None:
            return f"a topic of the conversations, asked and answered ({word!r} in most conversations and answers)"
    if topic and ctx.embeddings_enabled():
        why = relevance_reason(ctx, pos)
        if why is not None:
            return why
    n_words = float(np.median([len(token_strings(r[:2000])) for r in reqs]))
    if n_words <= max_formula_words:
        return f"a reply to short social turns (median last user turn {n_words:.0f} tokens)"
    div = last_request_diversity(ctx, pos) if ctx.embeddings_enabled() else None
    if div is not None and div < min_request_div:
        return f"a conversational formula (last user turns alike, diversity {div:.2f})"
    return None
