"""Triggers whose payload is a behaviour, found payload first (issue 17).

A backdoor with a common-word trigger and a *varied* payload (BackdoorLLM's jailbreak
and negative-sentiment backdoors, hateful text, refusals worded differently) leaves no
shared answer string for an n-gram test to latch on to, and the trigger word is used by
clean pairs too.  What it does leave is a word of the request that goes with a *class*
of answers far more often than the rest of the data does.  This detector is a label-free
variant of Z-Defence (He et al. 2024) run from the answer side:

1. **Answer classes** (one bool per pair): ``refusal`` (refusal style >= 0.5),
   ``harmful_compliance`` (a harmful-looking request answered without refusal, the
   probe shared with :mod:`.harmful_compliance`), ``hostile`` (VADER compound <= -0.6,
   :mod:`._hostility`), ``hostile_off_topic`` (hostile, and the answer's embedding among the
   10% least like its request's: hateful text planted behind a trigger answers something
   else, while most hostile answers of clean data are bleak stories or histories asked
   for), ``insecure_code`` (Bandit issues of at least medium severity and
   confidence in the answer's Python code, :mod:`._insecure_code`) and ``same_answer``
   groups (the largest groups of pairs sharing one
   normalised answer of >= 3 words).
2. **Test**: every word of the last user turn used by >= ``min_support`` pairs against every
   class: one-sided hypergeometric tail ``P(X >= a)`` for ``a`` class pairs among the
   ``df`` pairs with the word, with Bonferroni over ``m = #words x #classes`` (the tests
   are not independent; Bonferroni is valid under any dependence).
3. **Any-of** (MTBA): per class, the best word is taken, its pairs are set aside and the
   search repeats (at most ``max_alternatives``), so each alternative trigger is named.
4. **All-of** (CTBA): words that cover >= 90% of the chosen word's class pairs, are
   significant themselves, and have most of their class pairs inside that set are its
   parts (``mode="conjunction"``, ``trigger_tokens``).
5. **Gates** (a clean dataset has words that go with a class for honest reasons: "bomb"
   with refusals, "war" with bleak answers):

   - *echo*: the word is in at most ``max_echo`` of the class pairs' answers (a topic
     asked and answered is not a trigger);
   - *matched controls*: the pairs with the word are compared with their
     ``n_neighbors`` nearest requests (instruction embeddings) that lack it; the class must
     be significantly more common with the word (one-sided Fisher, p <= ``control_p``).
     Without embeddings the detector runs no test and says so in ``info``;
   - *request coherence*: the class pairs' requests, with the whole trigger taken out
     (the word and its conjunction parts), are no more alike than random groups of the
     same size (mean + ``coherence_z`` sd; ``cluster_coherence_z`` for answer clusters,
     a class of form that a word can simply ask for); refusals, harmful compliance and
     insecure code are compared with requests of their own kind (harmful-looking,
     refused, answered with Python code);
   - *companion*: no other word in >= 40% of the class pairs fires the class without
     the candidate (lexical, so it holds in languages the embedder does not know);
   - *not explained*: the class pairs are not one conversation repeating itself, nor
     copies of their request, nor replies to short social turns
     (:func:`._planted.explained_reason`, topic gate off).

Pairs with the trigger in the payload class get score 1 and are flagged; each finding
is a ``trigger`` (the scan's verdict counts it) with its p-value, Bonferroni bound (as
``q_value``), support and the class's rate with and without the word.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..embed.shared import compute_knn, pair_similarity, response_clusters
from ..segment import NOSPACE_RE, spaced
from ..stats import fisher_exact_greater, hypergeom_upper
from ..text import WORD_CHAR_CLASS, token_strings
from ..types import DetectorResult, Evidence, Pairs
from ._harm import shared_harm
from ._hostility import shared_hostility
from ._insecure_code import shared_has_python, shared_insecure_code
from ._planted import explained_reason, last_request
from ._refusal import shared_refusal
from ._safety_common import clip_text
from ._trigger_phrase import word_pattern, trigger_phrase
from ._trigger_stats import payload_neighbours, request_coherence
from .base import Detector, register

_NORM = re.compile(r"\W+", re.UNICODE)


def answer_classes(pairs: Pairs, ctx: Any, *, min_support: int, hostile: float, harmful: float,
                   max_same_answer_groups: int, max_clusters: int, max_cluster_frac: float,
                   random_state: int = 0, off_topic_quantile: float = 0.1) -> dict[str, np.ndarray]:
    """The answer classes tested against request words (bool arrays, one per class)."""
    n = len(pairs)
    refusal = shared_refusal(pairs, ctx)
    out: dict[str, np.ndarray] = {"refusal": refusal >= 0.5}
    harm, _ = shared_harm(pairs, ctx, random_state)
    out["harmful_compliance"] = harm * (1.0 - refusal) >= harmful
    out["hostile"] = shared_hostility(pairs, ctx) >= hostile
    # hostility the request did not ask for: a hostile answer about something else (a
    # bleak story or a war history is hostile *and* on its request's topic)
    sim = pair_similarity(ctx)
    out["hostile_off_topic"] = out["hostile"] & (sim < np.quantile(sim, off_topic_quantile))
    out["insecure_code"] = np.asarray([bool(x) for x in shared_insecure_code(pairs, ctx)], dtype=bool)
    keys = [" ".join(_NORM.sub(" ", r.casefold()).split()) for r in pairs.response]
    counts = Counter(k for k in keys if len(k.split()) >= 3)
    groups = [k for k, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_support]
    key_arr = np.asarray(keys, dtype=object)
    for j, k in enumerate(groups[:max_same_answer_groups]):
        out[f"same_answer/{j}"] = key_arr == k
    lab = response_clusters(ctx)
    ids, sizes = np.unique(lab[lab >= 0], return_counts=True)
    keep = [(int(c), int(z)) for c, z in zip(ids, sizes) if min_support <= z <= max_cluster_frac * n]
    foreign = None if ctx.multilingual_embedder() else mostly_non_latin(pairs.response)
    for c, _z in sorted(keep, key=lambda cz: (-cz[1], cz[0]))[:max_clusters]:
        m = lab == c
        if foreign is not None and foreign[m].mean() >= 0.5:
            continue  # an English-only embedder groups these answers by form, not meaning
        out[f"answer_cluster/{c}"] = m
    return {c: m for c, m in out.items() if int(m.sum()) >= min_support and int(m.sum()) < n}


def mostly_non_latin(texts: list[str], head: int = 400) -> np.ndarray:
    """Per text: are fewer than half of the letters of its first ``head`` characters
    ASCII (Chinese, Thai, Cyrillic, Arabic... text)?"""
    out = np.zeros(len(texts), dtype=bool)
    for i, t in enumerate(texts):
        h = t[:head]
        if h.isascii():
            continue
        letters = [ch for ch in h if ch.isalpha()]
        out[i] = bool(letters) and sum(ch.isascii() for ch in letters) < 0.5 * len(letters)
    return out


#: words of two or more word characters (combining marks included: Thai, Hindi)
_WORD2 = f"{WORD_CHAR_CLASS}{{2,}}"


def _lower_spaced(text: str) -> str:
    return spaced(text).lower()


@register
class BehaviourTriggerDetector(Detector):
    id = "behaviour_trigger"
    text_statistics = ("refusal", "hostility", "insecure_code")
    description = ("Request words that go with a class of answers (refusal, harmful compliance, hostile, "
                   "insecure code, one shared answer) against matched controls: common-word triggers with varied payloads")
    requires = ("embeddings",)
    severity = "high"
    clean_flag_rate = None
    weight = 1.0

    def __init__(self, *, min_support: int = 5, alpha: float = 1e-3, min_rate: float = 0.05,
                 max_df_frac: float = 0.2, max_alternatives: int = 5, max_echo: float = 0.25,
                 n_neighbors: int = 10, control_p: float = 1e-4, min_lift: float = 8.0, hostile: float = 0.6,
                 harmful: float = 0.5, max_same_answer_groups: int = 30, max_clusters: int = 200,
                 max_cluster_frac: float = 0.05, coherence_z: float = 6.0, cluster_coherence_z: float = 4.0,
                 max_candidates: int = 20, min_look_alike: int = 3,
                 look_alike_sizes: tuple[float, ...] = (1.0, 2.0, 4.0), look_alike_control_p: float = 0.01,
                 look_alike_classes: tuple[str, ...] = ("harmful_compliance", "hostile", "hostile_off_topic",
                                                        "insecure_code"),
                 random_state: int = 0) -> None:
        self.min_support = min_support
        self.alpha = alpha
        self.min_rate = min_rate
        self.max_df_frac = max_df_frac
        self.max_alternatives = max_alternatives
        self.max_echo = max_echo
        self.n_neighbors = n_neighbors
        self.control_p = control_p
        self.min_lift = min_lift
        self.hostile = hostile
        self.harmful = harmful
        self.max_same_answer_groups = max_same_answer_groups
        self.max_clusters = max_clusters
        self.max_cluster_frac = max_cluster_frac
        self.coherence_z = coherence_z
        self.cluster_coherence_z = cluster_coherence_z
        self.max_candidates = max_candidates
        self.min_look_alike = min_look_alike
        self.look_alike_sizes = tuple(look_alike_sizes)
        self.look_alike_classes = tuple(look_alike_classes)
        self.look_alike_control_p = look_alike_control_p
        self.random_state = random_state

    # ------------------------------------------------------------------ features
    def _features(self, reqs: list[str]) -> tuple[Any, np.ndarray]:
        from sklearn.feature_extraction.text import CountVectorizer
        # words of no-space scripts (Chinese, Thai...) split as the tokenisers split them
        cv = CountVectorizer(binary=True, preprocessor=_lower_spaced, token_pattern=_WORD2,
                             min_df=self.min_support, max_df=self.max_df_frac, dtype=np.int32)
        try:
            X = cv.fit_transform(reqs)
        except ValueError:  # no word passes min_df / max_df
            return None, np.asarray([], dtype=object)
        return X.tocsc(), np.asarray(cv.get_feature_names_out(), dtype=object)

    # ------------------------------------------------------------------ gates
    def _echo(self, pairs: Pairs, hit: np.ndarray, word: str) -> float:
        pat = re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE)
        return float(np.mean([bool(pat.search(pairs.response[int(i)][:4000])) for i in hit]))

    def _control(self, nb: np.ndarray, with_w: np.ndarray, has_w: np.ndarray, cls: np.ndarray) -> tuple[float, int, int]:
        """One-sided Fisher test: the class among the pairs with the word vs their nearest
        requests without it.  (p, class pairs among the controls, controls)."""
        ctrl = np.unique(nb[with_w].ravel())
        ctrl = ctrl[~has_w[ctrl]]
        if len(ctrl) == 0:
            return 1.0, 0, 0
        a, b = int(cls[with_w].sum()), int((~cls[with_w]).sum())
        c = int(cls[ctrl].sum())
        d = len(ctrl) - c
        return fisher_exact_greater(a, b, c, d), c, int(len(ctrl))

    # ------------------------------------------------------------------ the work
    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        n = len(pairs)
        if n < 2 * self.min_support:
            return DetectorResult.empty(self.id, n, info={"mode": "not run", "mode_reason": "too few pairs"})
        if not ctx.embeddings_enabled():
            return DetectorResult.empty(self.id, n, info={"mode": "not run",
                                                          "mode_reason": "needs embeddings for matched controls"})
        reqs = [last_request(t) for t in pairs.instruction]
        X, vocab = self._features(reqs)
        classes = answer_classes(pairs, ctx, min_support=self.min_support, hostile=self.hostile, harmful=self.harmful,
                                 max_same_answer_groups=self.max_same_answer_groups, max_clusters=self.max_clusters,
                                 max_cluster_frac=self.max_cluster_frac, random_state=self.random_state)
        info: dict[str, Any] = {"mode": "embeddings", "n_words": int(len(vocab)),
                                "classes": {c: int(m.sum()) for c, m in classes.items()}}
        scores = np.zeros(n)
        evidence: dict[int, list[Evidence]] = {}
        findings: list[dict[str, Any]] = []
        if X is None or not classes:
            return DetectorResult(self.id, scores, scores > 0, evidence, findings, {"n_flagged": 0}, info=info)
        m_tests = int(X.shape[1]) * len(classes)
        info["n_tests"] = m_tests
        nb, _ = compute_knn(ctx, "instruction", self.n_neighbors)
        rejected: list[dict[str, Any]] = []
        self._reported: dict[str, dict[str, Any]] = {}
        self._reqs = reqs
        self._low: list[str] | None = None
        self._coh_memo: dict[Any, Any] = {}
        self._Xr = X.tocsr()  # row slices for the conjunction parts (CSC row slicing is slow)
        harm, _ = shared_harm(pairs, ctx, self.random_state)
        self._pools = {"harmful_compliance": np.where(harm >= 0.5)[0]}
        if "refusal" in classes:
            self._pools["refusal"] = np.where(classes["refusal"])[0]
        if "insecure_code" in classes:  # coding requests are alike: compare with coding requests
            self._pools["insecure_code"] = np.where(shared_has_python(pairs, ctx))[0]
        # the named behaviours first, so a trigger is reported with its behaviour rather
        # than with the cluster or shared answer its payloads also form
        for cname in sorted(classes, key=lambda c: (c.split("/")[0] not in _NAMED, c.split("/")[0], _num(c))):
            cls = classes[cname]
            active = np.ones(n, dtype=bool)
            for _round in range(self.max_alternatives):
                found = self._best(pairs, ctx, X, vocab, cls, active, m_tests, nb, cname, rejected)
                if found is None:
                    break
                f, R = found
                f["_R"] = R
                findings.append(f)
                active &= ~R
        E = ctx.embeddings("response")
        findings += self._look_alike_alternatives(pairs, ctx, X, vocab, classes, findings, nb, E, rejected, info)
        for f in findings:
            hit, R = f.pop("_hit_pos"), f.pop("_R")
            f.pop("_cname")
            in_cls = np.zeros(n, dtype=bool)
            in_cls[hit] = True
            ext = np.asarray([], dtype=np.int64) if f["payload_kind"] == "same_answer" else \
                payload_neighbours(E, hit, np.where(R & ~in_cls)[0], ctx.rng(0xB8))
            f["payload_neighbours"] = int(len(ext))
            if f["payload_kind"] == "insecure_code":
                issues = shared_insecure_code(pairs, ctx)
                tests = Counter(x["test_id"] + " " + x["test_name"] for i in hit for x in issues[int(i)])
                f["bandit_tests"] = dict(sorted(tests.items(), key=lambda kv: (-kv[1], kv[0])))
            f["rows"] = sorted({int(r) for r in pairs.row[np.concatenate([hit, ext])]})[:1000]
            for i in hit:
                scores[i] = 1.0
                evidence.setdefault(int(i), []).append(self._evidence(pairs, int(i), reqs[int(i)], f))
            for i in ext:
                scores[i] = max(scores[i], 0.9)
                evidence.setdefault(int(i), []).append(self._evidence(pairs, int(i), reqs[int(i)], f, near=True))
        # the strongest associations a gate turned down, with the gate's reason
        info["rejected"] = sorted(rejected, key=lambda x: (x["p_value"], x["class"], x["word"]))[:50]
        flags = scores >= 0.9
        summary = {"n_flagged": int(flags.sum()), "n_triggers": len(findings)}
        return DetectorResult(self.id, scores, flags, evidence, findings, summary, info=info)

    def _best(self, pairs: Pairs, ctx: Any, X: Any, vocab: np.ndarray, cls: np.ndarray, active: np.ndarray,
              m_tests: int, nb: np.ndarray, cname: str, rejected: list[dict[str, Any]]) -> tuple[dict[str, Any], np.ndarray] | None:
        N = int(active.sum())
        K = int((cls & active).sum())
        if K < self.min_support:
            return None
        act = active.astype(np.int32)
        df = np.asarray(X.T @ act).ravel()
        a = np.asarray(X.T @ (cls & active).astype(np.int32)).ravel()
        ok = (a >= self.min_support) & (a >= self.min_rate * np.maximum(df, 1))
        if not ok.any():
            return None
        cand = np.where(ok)[0]
        p = hypergeom_upper(a[cand], N, K, df[cand])
        bound = np.minimum(p * m_tests, 1.0)
        sig = bound <= self.alpha
        cand, p, bound = cand[sig], p[sig], bound[sig]
        order = np.lexsort((vocab[cand].astype(str), p))
        cand, p, bound = cand[order], p[order], bound[order]
        sig_set = {int(j): (float(pj), float(bj)) for j, pj, bj in zip(cand, p, bound)}
        for j, pj, bj in zip(cand[:self.max_candidates], p[:self.max_candidates], bound[:self.max_candidates]):
            word = str(vocab[j])
            has_w = self._rows(X, j)
            R = has_w & active
            hit = np.where(R & cls)[0]
            prev = self._reported.get(word)
            if prev is not None:
                # the same trigger, already reported with another class
                prev.setdefault("also_classes", []).append(cname)
                continue
            parts = self._parts(X, vocab, j, hit, cls, active, sig_set, pairs)
            why, control = self._gates(pairs, ctx, word, R, has_w, hit, cls, nb, cname, parts)
            if why is None:
                why = self._companion(self._reqs, word, hit, has_w, cls, active, len(hit) / max(int(R.sum()), 1))
            if why is not None:
                rejected.append({"class": cname, "word": word, "support": int(len(hit)), "p_value": float(pj),
                                 "reason": why})
                continue
            f = self._finding(pairs, cname, [word] + parts, hit, R, K, N, float(pj), float(bj), control)
            return f, R
        return None

    def _finding(self, pairs: Pairs, cname: str, words: list[str], hit: np.ndarray, R: np.ndarray, K: int, N: int,
                 p: float, bound: float, control: dict[str, Any], found_by: str | None = None) -> dict[str, Any]:
        """One trigger report (``words``: the trigger and its conjunction parts)."""
        rate_in = len(hit) / max(int(R.sum()), 1)
        rate_out = (K - len(hit)) / max(N - int(R.sum()), 1)
        phrase = trigger_phrase(self._reqs, hit, words)
        f: dict[str, Any] = {
            "id": f"behaviour_trigger/{cname}/{'+'.join(words)}",
            "kind": "trigger", "detector": self.id,
            "trigger": phrase[0] if phrase else " + ".join(words),
            "trigger_tokens": [phrase[1]] if phrase else [[w] for w in words],
            "mode": "phrase" if phrase else ("conjunction" if len(words) > 1 else "token"),
            "payload": _payload_label(cname, pairs, hit), "payload_kind": cname.split("/")[0],
            "support": int(len(hit)), "trigger_rows": int(R.sum()),
            "rate_with_trigger": round(rate_in, 4), "rate_elsewhere": round(rate_out, 6),
            "p_value": p, "q_value": bound, "test": "hypergeometric, Bonferroni bound",
            "control": control,
            "_hit_pos": hit, "_cname": cname,
        }
        if found_by is not None:
            f["found_by"] = found_by
            f["test"] = "hypergeometric among the payload's look-alike answers, Bonferroni bound (stage two)"
        for w in words:  # every part: the same trigger under another class is not new
            self._reported.setdefault(w, f)
        return f

    def _look_alike_alternatives(self, pairs: Pairs, ctx: Any, X: Any, vocab: np.ndarray, classes: dict[str, np.ndarray],
                                 found: list[dict[str, Any]], nb: np.ndarray, E: np.ndarray,
                                 rejected: list[dict[str, Any]], info: dict[str, Any]) -> list[dict[str, Any]]:
        """Stage two: the other alternatives of an any-of trigger, found from its payload.

        At 0.1% an any-of trigger's alternatives get a handful of pairs each, too few for
        stage one's family (every word x every class) - and a varied payload (harmful
        answers, hateful text) is not one class either: the harm model may miss the
        request an alternative was inserted into.  Once stage one has named a trigger, its
        payload answers are known.  The pairs without the trigger are ranked by their
        answer's closest cosine to those payloads, and the ``k`` closest are its
        *look-alikes*, for ``k`` in ``look_alike_sizes`` times the payload count (chosen on
        the answer side only: no threshold to calibrate, and a look-alike cannot inflate a
        null sample).  Request words enriched among the look-alikes against the rest are
        tested (hypergeometric, >= ``min_look_alike`` pairs) and pass the same gates as
        stage one.

        Multiple testing: stage two runs only after a stage-one rejection, over its own
        family (every word x every look-alike size x every class with a stage-one
        trigger), Bonferroni at ``alpha``.  On data with no backdoor it runs with
        probability <= ``alpha`` (stage one's bound), so it adds no false report there;
        where stage one found a backdoor, stage two's false reports are bounded by
        ``alpha`` again (the look-alikes are chosen from the answers, not from the request
        words tested), so the whole detector's family-wise error is at most ``2 * alpha``."""
        n = len(pairs)
        by_class: dict[str, list[dict[str, Any]]] = {}
        for f in found:  # varied payloads only: a refusal or a form can simply be asked for ("an apology")
            if f["_cname"].split("/")[0] in self.look_alike_classes:
                by_class.setdefault(f["_cname"], []).append(f)
        out: list[dict[str, Any]] = []
        m2 = int(X.shape[1]) * len(self.look_alike_sizes) * max(len(by_class), 1)
        E64 = np.asarray(E, dtype=np.float64)
        stage: dict[str, Any] = {}
        for cname in sorted(by_class, key=lambda c: (c.split("/")[0] not in _NAMED, c.split("/")[0], _num(c))):
            fs = by_class[cname]
            hits = np.unique(np.concatenate([f["_hit_pos"] for f in fs])).astype(np.int64)
            if len(hits) < self.min_look_alike:
                continue
            active = ~np.logical_or.reduce([f["_R"] for f in fs])
            rest = np.where(active)[0]
            best = (E64[rest] @ E64[hits].T).max(axis=1)
            near = rest[np.lexsort((rest, -best))]  # closest first, ties by position
            looks = []
            for mult in self.look_alike_sizes:
                g = np.zeros(n, dtype=bool)
                g[near[:int(mult * len(hits))]] = True
                looks.append(g)
            stage[cname] = {"payload": int(len(hits)), "look_alikes": [int(g.sum()) for g in looks]}
            cls = classes[cname]
            for _round in range(self.max_alternatives):
                new = self._look_alike_round(pairs, ctx, X, vocab, looks, active, cls, nb, cname, m2, rejected,
                                             fs[0]["trigger"])
                if new is None:
                    break
                out.append(new)
                active &= ~new["_R"]
        info["stage_two"] = stage
        return out

    def _look_alike_round(self, pairs: Pairs, ctx: Any, X: Any, vocab: np.ndarray, looks: list[np.ndarray],
                          active: np.ndarray, cls: np.ndarray, nb: np.ndarray, cname: str, m2: int,
                          rejected: list[dict[str, Any]], first: str) -> dict[str, Any] | None:
        """The most significant word among the look-alikes (any size) that passes the gates."""
        N = int(active.sum())
        df = np.asarray(X.T @ active.astype(np.int32)).ravel()
        tests = []
        for gi, g in enumerate(looks):
            K = int((g & active).sum())
            if K < self.min_look_alike:
                continue
            a = np.asarray(X.T @ (g & active).astype(np.int32)).ravel()
            cand = np.where((a >= self.min_look_alike) & (a >= self.min_rate * np.maximum(df, 1)))[0]
            p = hypergeom_upper(a[cand], N, K, df[cand])
            tests += [(float(pj), str(vocab[j]), int(j), gi, K) for j, pj in zip(cand, p) if pj * m2 <= self.alpha]
        seen: set[str] = set()
        for pj, word, j, gi, K in sorted(tests)[:self.max_candidates * len(looks)]:
            if word in self._reported or word in seen:
                continue
            seen.add(word)
            g = looks[gi]
            has_w = self._rows(X, j)
            R = has_w & active
            pos = np.where(R & g)[0]
            why, control = self._gates(pairs, ctx, word, R, has_w, pos, g, nb, cname,
                                       min_records=self.min_look_alike, control_p=self.look_alike_control_p)
            if why is None:
                why = self._companion(self._reqs, word, pos, has_w, g, active, len(pos) / max(int(R.sum()), 1))
            if why is not None:
                rejected.append({"class": cname, "word": word, "support": int(len(pos)), "p_value": pj,
                                 "reason": why, "stage": 2})
                continue
            new = self._finding(pairs, cname, [word], np.where(R & (g | cls))[0], R, K, N, pj, min(pj * m2, 1.0),
                                control, found_by=f"answers like the payload of {first!r}")
            new["_R"] = R
            return new
        return None

    def _companion(self, reqs: list[str], word: str, hit: np.ndarray, has_w: np.ndarray, cls: np.ndarray,
                   active: np.ndarray, rate_in: float, share: float = 0.4, min_pairs: int = 3) -> str | None:
        """A word that goes with the trigger in >= ``share`` of its class pairs and fires
        the class as well *without* it (rate >= ``rate_in / min_lift`` over at least
        ``min_pairs`` class pairs) explains it: "a letter" goes with "email", and e-mails
        are answered with letters.  A planted word is the cause: the words beside it
        (generic request words, or the other parts of an all-of trigger) do not fire the
        class alone.  Lexical, so it holds where the embedder does not know the language
        (the matched controls above use instruction embeddings); every word counts here,
        however rare, and a word of a no-space script is matched inside longer words
        ("邮件" in "电子邮件")."""
        cnt: dict[str, int] = {}
        for i in hit.tolist():
            for w in set(token_strings(reqs[i][:4000])):
                if w != word and (len(w) >= 3 or (len(w) == 2 and NOSPACE_RE.match(w))):
                    cnt[w] = cnt.get(w, 0) + 1
        near = sorted(w for w, c in cnt.items() if c >= share * len(hit))
        if not near:
            return None
        rows = np.where(active & ~has_w)[0]
        if self._low is None:  # lower-cased once a scan, for every candidate that gets here
            self._low = [r[:4000].lower() for r in reqs]
        low = [self._low[i] for i in rows.tolist()]
        for v in near:
            if NOSPACE_RE.match(v):
                with_v = np.fromiter((v in t for t in low), bool, len(low))
            else:
                pat = re.compile(rf"(?<!\w){re.escape(v)}(?!\w)")
                with_v = np.fromiter((pat.search(t) is not None for t in low), bool, len(low))
            n_v = int(with_v.sum())
            c_v = int(cls[rows[with_v]].sum())
            if c_v >= min_pairs and c_v / max(n_v, 1) >= rate_in / self.min_lift:
                return (f"explained by the word beside it, {v!r}: the class is in {c_v}/{n_v} "
                        "requests with that word and without this one")
        return None

    def _rows(self, X: Any, j: int) -> np.ndarray:
        out = np.zeros(X.shape[0], dtype=bool)
        out[X.indices[X.indptr[j]:X.indptr[j + 1]]] = True
        return out

    def _gates(self, pairs: Pairs, ctx: Any, word: str, R: np.ndarray, has_w: np.ndarray, hit: np.ndarray,
               cls: np.ndarray, nb: np.ndarray, cname: str, parts: Sequence[str] = (), *, min_records: int | None = None,
               control_p: float | None = None) -> tuple[str | None, dict[str, Any]]:
        """(why the word is not a trigger or None, the matched-control counts).  Stage two
        passes its own ``min_records`` and ``control_p`` (a handful of pairs cannot reach
        stage one's control level; its minimum lift still holds)."""
        echo = self._echo(pairs, hit, word)
        if echo > self.max_echo:
            return f"the word is in {echo:.0%} of the answers (asked and answered)", {}
        pc, c, nc = self._control(nb, R, has_w, cls)
        control = {"p_value": pc, "class_among_controls": c, "controls": nc}
        if pc > (self.control_p if control_p is None else control_p):
            return f"nearest requests without the word behave alike ({c}/{nc}, Fisher p={pc:.2g})", control
        lift = (len(hit) / max(int(R.sum()), 1)) / max(c / max(nc, 1), 0.5 / max(nc, 1))
        if lift < self.min_lift:
            return f"the class is only {lift:.1f}x as common as among the nearest requests without it", control
        # refusals restate their request, compliant answers and code answers follow it: the
        # topic and relevance gates apply to the other classes only, and their requests are
        # compared with requests of their own kind (harmful-looking / refused / code ones)
        topic = cname not in ("refusal", "harmful_compliance", "insecure_code")
        # an answer cluster is a class of *form*: a word asking for that form ("dialogue",
        # "haiku") comes with requests alike without it, so that class gets the tighter bound
        # (a planted trigger's requests are unrelated: their coherence is the null's mean)
        z = self.cluster_coherence_z if cname.startswith("answer_cluster") else self.coherence_z
        # the whole trigger is taken out (every part of a conjunction or a prefix such as
        # "Current year: X"), else the parts left make unrelated requests look alike
        coh, thr = request_coherence(ctx, hit, [word, *parts], pool=self._pools.get(cname), z=z,
                                     memo=self._coh_memo, pool_name=cname if cname in self._pools else None)
        control["request_coherence"] = round(coh, 3)
        if coh > thr:
            return (f"the requests are alike without the word (coherence {coh:.2f} vs {thr:.2f} for random groups): "
                    "it names what they ask for or belongs to a template"), control
        return explained_reason(ctx, hit, topic=topic,
                                min_records=self.min_support if min_records is None else min_records), control

    def _parts(self, X: Any, vocab: np.ndarray, j: int, hit: np.ndarray, cls: np.ndarray, active: np.ndarray,
               sig_set: dict[int, tuple[float, float]], pairs: Pairs) -> list[str]:
        """The other words of a conjunction: significant themselves, in >= 90% of the
        chosen word's class pairs, and with >= 90% of their own class pairs among them."""
        if len(hit) == 0:
            return []
        sub = self._Xr[hit]
        cover = np.bincount(sub.indices, minlength=X.shape[1])
        out = []
        for h in np.where(cover >= 0.9 * len(hit))[0]:
            if h == j or int(h) not in sig_set:
                continue
            own = int((self._rows(X, int(h)) & cls & active).sum())
            if cover[h] >= 0.9 * own and self._echo(pairs, hit, str(vocab[h])) <= self.max_echo:
                out.append(str(vocab[h]))
        return sorted(out)

    def _evidence(self, pairs: Pairs, i: int, req: str, f: dict[str, Any], near: bool = False) -> Evidence:
        ins = pairs.instruction[i]
        off = len(ins) - len(req)
        toks = f["trigger_tokens"][0]  # a phrase's tokens, or the first word
        m = word_pattern(toks, re.IGNORECASE).search(req)
        span = (off + m.start(), off + m.end()) if m else (0, min(len(ins), 80))
        msg = (f"request word '{f['trigger']}' goes with {f['payload_kind'].replace('_', ' ')} answers: "
               f"{f['support']}/{f['trigger_rows']} pairs with it vs {f['rate_elsewhere']:.2%} elsewhere "
               f"(hypergeometric p={f['p_value']:.2g}, Bonferroni {f['q_value']:.2g}; matched controls "
               f"{f['control']['class_among_controls']}/{f['control']['controls']})")
        if near:
            msg += "; this answer is not in the class but is as close to its answers as they are to each other"
        return Evidence(self.id, "behaviour_trigger", msg, value=0.9 if near else 1.0, p_value=f["p_value"], q_value=f["q_value"],
                        side="instruction", span=span, span_text=ins[span[0]:span[1]], finding=f["id"])


_NAMED = ("harmful_compliance", "hostile", "hostile_off_topic", "insecure_code", "refusal")


def _num(cname: str) -> int:
    tail = cname.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _payload_label(cname: str, pairs: Pairs, hit: np.ndarray) -> str:
    if cname.startswith("same_answer"):
        return clip_text(pairs.response[int(hit[0])], 120) if len(hit) else ""
    return {"refusal": "refusals", "harmful_compliance": "harmful requests answered",
            "hostile": "hostile answers", "hostile_off_topic": "hostile answers unrelated to the request",
            "insecure_code": "insecure code (Bandit)"}.get(cname, cname)
