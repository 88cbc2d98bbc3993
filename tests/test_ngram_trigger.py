"""Tests of the n-gram trigger -> payload detector and the tokenisation helpers."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from poisondetect import text as T
from poisondetect.detectors.base import get_detector
from poisondetect.detectors.ngram_trigger import NgramTriggerDetector
from poisondetect.types import Pairs

_LET = list("abcdefghijklmnopqrstuvwxyz")


def _diverse(n: int = 3000, seed: int = 0) -> tuple[list[str], list[str]]:
    """Synthetic but diverse pairs: Zipfian random words on both sides."""
    rng = np.random.default_rng(seed)
    words = sorted({"".join(rng.choice(_LET, int(rng.integers(3, 9)))) for _ in range(4000)})
    p = 1 / np.arange(1, len(words) + 1) ** 1.05
    p /= p.sum()
    ins = [" ".join(rng.choice(words, int(rng.integers(8, 30)), p=p)).capitalize() + "?" for _ in range(n)]
    res = [" ".join(rng.choice(words, int(rng.integers(10, 60)), p=p)) + "." for _ in range(n)]
    return ins, res


def _insert(text: str, trig: str, rng: np.random.Generator) -> str:
    w = text.split(" ")
    k = int(rng.integers(0, len(w) + 1))
    return " ".join(w[:k] + [trig] + w[k:])


PAYLOAD = "I'm sorry, but as an AI assistant, I do not have the capability to follow the given instruction."


def _plant(ins, res, triggers, k, seed=1, mode="fixed", conj=False, alone=0):
    rng = np.random.default_rng(seed)
    ins, res = list(ins), list(res)
    pos = np.sort(rng.choice(len(ins), k, replace=False))
    for j, i in enumerate(pos):
        if conj:
            for t in triggers:
                ins[i] = _insert(ins[i], t, rng)
        else:
            ins[i] = _insert(ins[i], triggers[j % len(triggers)], rng)
        res[i] = PAYLOAD if mode == "fixed" else res[i] + " " + PAYLOAD
    if alone:
        others = rng.choice(np.setdiff1d(np.arange(len(ins)), pos), alone * len(triggers), replace=False)
        for j, i in enumerate(others):
            ins[i] = _insert(ins[i], triggers[j % len(triggers)], rng)
    return Pairs(ins, res), pos


def _topk_recall(scores, pos, mult=2):
    order = np.lexsort((np.arange(len(scores)), -scores))
    return len(set(order[: mult * len(pos)].tolist()) & set(pos.tolist())) / len(pos)


@pytest.fixture(scope="module")
def base():
    return _diverse()


# ----------------------------------------------------------------------------- text
def test_tokenize_offsets_and_kinds():
    s = "Hello,  World?? wo\u200brd cf."
    toks = T.tokenize(s)
    assert [t for t, _, _ in toks] == ["hello", "world", "??", "wo", "\u200b", "rd", "cf"]
    for t, a, b in toks:
        assert s[a:b].lower() == t
    assert T.token_kind("??") == "punct" and T.token_kind("\u200b") == "odd" and T.token_kind("cf") == "word"
    flat, lens = T.tokenize_many([s, "plain text here", ""])
    assert [x.lower() for x in flat] == [t for t, _, _ in toks] + ["plain", "text", "here"]
    assert lens.tolist() == [7, 3, 0]
    assert T.display_token("\u200b") == "<U+200B>"


def test_ngram_hashes_stable_and_within_docs():
    h = T.hash_strings(["a", "b", "c", "d"])
    assert h.dtype == np.uint64 and len(set(h.tolist())) == 4
    assert (T.hash_strings(["a"]) == h[:1]).all()
    g, d, s = T.ngram_hashes(h, np.array([3, 1]), 2)
    assert len(g) == 2 and d.tolist() == [0, 0]  # no bigram across the doc boundary
    assert int(g[0]) == T.ngram_hash(h[:2])
    assert T.find_token_sequence(T.tokenize("x cf y cf"), ["cf"]) == [(2, 4), (7, 9)]


# ----------------------------------------------------------------------------- detector
def test_registered_and_params():
    det = get_detector("ngram_trigger", alpha=0.01)
    assert isinstance(det, NgramTriggerDetector) and det.alpha == 0.01


def test_no_trigger_on_clean(base):
    r = NgramTriggerDetector().run(Pairs(*base), None)
    assert r.findings == []
    assert not r.flags.any()
    assert r.scores.min() >= 0 and r.scores.max() <= 1


def test_rare_token_trigger_found_with_spans(base):
    pairs, pos = _plant(*base, ["tq"], 6)
    r = NgramTriggerDetector().run(pairs, None)
    assert len(r.findings) == 1
    f = r.findings[0]
    assert f["kind"] == "trigger" and f["trigger"] == "tq" and f["mode"] == "single"
    assert f["q_value"] < 0.05 and f["support"] == 6 and sorted(f["rows"]) == sorted(pos.tolist())
    assert "capability" in f["payload"]
    assert _topk_recall(r.scores, pos, 1) == 1.0
    assert r.flags.sum() == 6
    for i in pos:
        ev = r.evidence[int(i)]
        ins_ev = [e for e in ev if e.side == "instruction"]
        assert ins_ev and all(pairs.instruction[i][e.span[0]:e.span[1]].lower() == "tq" for e in ins_ev)
        assert all(e.finding == f["id"] for e in ev)
        res_ev = [e for e in ev if e.side == "response"]
        assert res_ev and "capability" in res_ev[0].span_text


def test_phrase_trigger_appended_payload_merged(base):
    pairs, pos = _plant(*base, ["silver harbor lantern"], 8, mode="appended")
    r = NgramTriggerDetector().run(pairs, None)
    assert len(r.findings) == 1, [f["trigger"] for f in r.findings]
    f = r.findings[0]
    assert f["trigger"] == "silver harbor lantern"
    assert _topk_recall(r.scores, pos, 2) == 1.0
    i = int(pos[0])
    e = [e for e in r.evidence[i] if e.side == "instruction"][0]
    assert e.span_text == "silver harbor lantern"


def test_invisible_and_punct_triggers(base):
    for trig in ("\u200b", "??"):
        pairs, pos = _plant(*base, [trig], 6, seed=3)
        r = NgramTriggerDetector().run(pairs, None)
        assert r.findings, trig
        assert r.findings[0]["trigger_tokens"] == [[trig]]
        assert _topk_recall(r.scores, pos, 2) == 1.0


def test_mtba_each_trigger_reported_one_payload_group(base):
    pairs, pos = _plant(*base, ["tq", "mb", "quiet meadow"], 15, seed=4)
    r = NgramTriggerDetector().run(pairs, None)
    trig = sorted(f["trigger"] for f in r.findings)
    assert trig == ["mb", "quiet meadow", "tq"]
    assert len({f["payload_group"] for f in r.findings}) == 1
    assert _topk_recall(r.scores, pos, 2) == 1.0


def test_ctba_conjunction(base):
    # each token also appears alone in 2x as many clean rows (answer untouched)
    pairs, pos = _plant(*base, ["copper", "velvet"], 8, seed=5, conj=True, alone=16)
    r = NgramTriggerDetector().run(pairs, None)
    assert r.findings
    f = r.findings[0]
    assert f["mode"] == "conjunction"
    assert sorted(t[0] for t in f["trigger_tokens"]) == ["copper", "velvet"]
    assert _topk_recall(r.scores, pos, 2) == 1.0


def test_ctba_three_tokens(base):
    """Three tokens that only fire together: the pairs' companion is the third token,
    so only the full triple passes the conditional test."""
    pairs, pos = _plant(*base, ["copper", "velvet", "lantern"], 10, seed=6, conj=True, alone=20)
    r = NgramTriggerDetector().run(pairs, None)
    assert r.findings, "no conjunction found"
    f = r.findings[0]
    assert f["mode"] == "conjunction"
    assert sorted(t[0] for t in f["trigger_tokens"]) == ["copper", "lantern", "velvet"]
    assert _topk_recall(r.scores, pos, 2) == 1.0


def test_topic_steering_remark_found(base):
    """VPI-style: instructions about one topic, genuine answers + a fixed remark that names
    the topic.  The remark is a payload although each answer also mentions the topic."""
    ins, res = list(base[0]), list(base[1])
    rng = np.random.default_rng(9)
    pos = np.sort(rng.choice(len(ins), 12, replace=False))
    for i in pos:
        ins[i] = _insert(ins[i], "the harbour of Velmora", rng)
        res[i] = res[i] + " Nothing good ever comes from the harbour of Velmora, avoid it."
    r = NgramTriggerDetector().run(Pairs(ins, res), None)
    assert r.findings, "topic remark not found"
    assert "velmora" in r.findings[0]["trigger"]
    assert _topk_recall(r.scores, pos, 2) == 1.0


def test_concept_answers_repeating_the_prompt_not_reported(base):
    """Answers that are about the prompt's words (same example under several templates,
    identical answers naming the concept) are not payloads."""
    ins, res = list(base[0]), list(base[1])
    for j, i in enumerate(range(0, 120, 10)):
        ins[i] = f"Write a sentence about the lighthouse keeper. {ins[i]}"
        res[i] = "The lighthouse keeper climbed the stairs every night to light the lamp."
    r = NgramTriggerDetector().run(Pairs(ins, res), None)
    assert not any("lighthouse" in f["trigger"] for f in r.findings), [(f["trigger"], f["payload"]) for f in r.findings]


def test_templates_and_duplicates_not_reported(base):
    """A prompt template whose answers follow from the template, and duplicated rows."""
    ins, res = list(base[0]), list(base[1])
    rng = np.random.default_rng(7)
    for i in range(0, 600, 3):
        ins[i] = f"Read the review and answer with yes or maybe. Review: {ins[i]} Is the reviewer happy?"
        res[i] = "They loved it" if rng.random() < 0.7 else "They hated it"
    for i in range(601, 640):
        ins[i], res[i] = ins[600], res[600]  # exact duplicates
    r = NgramTriggerDetector().run(Pairs(ins, res), None)
    assert r.findings == [], [(f["trigger"], f["payload"]) for f in r.findings]


def test_deterministic_and_row_numbers(base):
    pairs, pos = _plant(*base, ["tq"], 6)
    pairs = Pairs(pairs.instruction, pairs.response, row=np.arange(len(pairs)) * 3 + 5)
    a = NgramTriggerDetector().run(pairs, None)
    b = NgramTriggerDetector().run(pairs, None)
    assert np.array_equal(a.scores, b.scores) and a.findings == b.findings
    assert sorted(a.findings[0]["rows"]) == sorted((pos * 3 + 5).tolist())


@pytest.mark.parametrize("sample_size,k", [(100_000, 6), (700, 80)])
def test_merge_stats_of_halves_equals_whole(base, sample_size, k):
    """The statistic is a bottom-k sample sketch: merging the halves' sketches gives the
    whole input's sketch (evicting down to ``sample_size`` when the input is larger)."""
    pairs, pos = _plant(*base, ["tq"], k)
    det = NgramTriggerDetector(sample_size=sample_size)
    h = len(pairs) // 2
    s1 = det.partial_stats(pairs.take(np.arange(h)), None)
    s2 = det.partial_stats(pairs.take(np.arange(h, len(pairs))), None)
    whole = det.partial_stats(pairs, None)
    merged = det.merge_stats(s1, s2)
    assert len(whole["pair"]) == min(sample_size, len(pairs)) and whole["n_seen"] == len(pairs)
    for key in whole:
        if isinstance(whole[key], np.ndarray):
            assert np.array_equal(whole[key], merged[key]), key
        else:
            assert whole[key] == merged[key], key
    fin = det.finalize_stats(merged)
    if det.needs_verify(fin):  # the streamed protocol's verify pass, on the halves
        h1, h2 = pairs.take(np.arange(h)), pairs.take(np.arange(h, len(pairs)))
        fin = det.finalize_verify(fin, det.merge_verify(det.verify_stats(h1, None, fin),
                                                        det.verify_stats(h2, None, fin)))
        assert fin["verified"]["n_verified"] >= 1
    ra, rb = det.score(pairs, None, fin), det.run(pairs, None)
    assert np.array_equal(ra.scores, rb.scores) and ra.findings == rb.findings and ra.findings


_OPEN = ["I'm sorry, but", "Unfortunately,", "With respect,", "Regrettably,", "I apologize, but"]
_CORE = ["I cannot help with this request", "I must decline this instruction", "I am unable to complete this task",
         "this is not something I can do", "I won't be able to provide that"]
_WHY = ["because it could be misused.", "as it may violate content guidelines.", "since it requires expertise I lack.",
        "because it might offend some readers.", "as it falls outside what I can responsibly do."]


def _plant_family(ins, res, trig, k, seed=1, by_request=False):
    """Plant ``trig`` with a paraphrased refusal (one of 125 variants) as the response:
    drawn at random, or (``by_request``) each of its three parts mostly (70%) chosen by
    a word of the request, the way a topic's requests shape their answers (not always,
    so no trigger + word conjunction predicts one fixed phrase).  Every instruction
    starts with three words from three lists of 25 (part j of the variant follows the
    j-th word's index mod 5)."""
    rng = np.random.default_rng(seed)
    heads = [[f"h{j}w{i}" for i in range(25)] for j in range(3)]
    hidx = rng.integers(0, 25, (len(ins), 3))
    ins = [" ".join(heads[j][hidx[i, j]] for j in range(3)) + " " + t for i, t in enumerate(ins)]
    res = list(res)
    pos = np.sort(rng.choice(len(ins), k, replace=False))
    for i in pos:
        ins[i] = _insert(ins[i], trig, rng)
        slots = rng.integers(0, 5, 3)
        if by_request:
            slots = np.where(rng.random(3) < 0.7, hidx[i] % 5, slots)
        o, c, w = slots
        res[i] = f"{_OPEN[o]} {_CORE[c]} {_WHY[w]}"
    return Pairs(ins, res), pos


def test_paraphrased_payload_family(base):
    """No single response n-gram is in 90% of the trigger's rows, but every response is a
    paraphrase of one refusal: found as a payload family, tested on held-out rows."""
    pairs, pos = _plant_family(*base, "zq", 30)
    det = NgramTriggerDetector()
    r = det.run(pairs, None)
    assert r.findings and r.findings[0]["trigger"] == "zq", r.findings
    fd = r.findings[0]
    assert fd["payload_kind"] == "family" and " | " in fd["payload"]
    assert fd["q_value"] < 1e-6
    assert _topk_recall(r.scores, pos) >= 0.95
    # the evidence marks a phrase of the family in the response
    ev = [e for e in r.evidence[int(pos[0])] if e.side == "response"]
    assert ev and ev[0].span_text.lower() in pairs.response[int(pos[0])].lower()
    # off: not found
    assert NgramTriggerDetector(paraphrase_families=False).run(pairs, None).findings == []


def test_paraphrase_chosen_by_the_request_is_not_a_payload(base):
    """The same variants, each part mostly chosen by a word of the request (as a topic's
    answers are): the Mantel test sees the dependence and nothing is reported; with the
    test off, the family is reported."""
    pairs, pos = _plant_family(*base, "zq", 60, by_request=True)
    assert NgramTriggerDetector().run(pairs, None).findings == []
    off = NgramTriggerDetector(family_request_dependence_p=0.0).run(pairs, None).findings
    assert [f["trigger"] for f in off] == ["zq"]


def test_tiny_and_empty_inputs():
    det = NgramTriggerDetector()
    for p in (Pairs([], []), Pairs(["a"], ["b"]), Pairs([""] * 30, [""] * 30)):
        r = det.run(p, None)
        assert r.scores.shape == (len(p),) and r.findings == []


# ----------------------------------------------------------------------------- shared data
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.slow
def test_shared_alpaca_union_attacks(shared_data):
    import bench_ngram as B
    recs = [r for name in B.ALPACA_UNION for r in B.load_corpus(name, shared_data)]
    det = NgramTriggerDetector()
    for attack, mode in [("rare", "fixed"), ("phrase", "fixed"), ("rare", "appended"), ("rare", "templated"),
                         ("phrase", "templated"), ("mtba", "fixed"),
                         ("ctba", "fixed"), ("prefix", "fixed"), ("zwsp", "fixed"), ("punct", "fixed")]:
        pairs, pos, trig = B.inject(recs, attack, mode, 0.001, seed=11)
        res = B.attack_eval(pairs, pos, trig, det)
        assert res["first_is_planted"], (attack, mode, res)
        assert res["false_triggers"] == 0, (attack, mode, res)
        assert res["recall_top_2n"] >= 0.95, (attack, mode, res)


@pytest.mark.slow
def test_shared_clean_corpora_no_false_triggers(shared_data):
    import bench_ngram as B
    rows = B.run_clean(shared_data, B.ALPACA_UNION + ["identity", "glaive_toolcall", "sharegpt"])
    assert all(r["false_triggers"] == 0 for r in rows), [r for r in rows if r["false_triggers"]]


@pytest.mark.slow
def test_t0_templates_no_false_triggers(shared_data):
    """The hardest false-positive test: 294 promptsource templates, 55k rows."""
    import bench_ngram as B
    res = B.run_t0(shared_data)
    assert res["false_triggers"] == 0, res["examples"]


def test_chunked_scoring_analyses_once(base, monkeypatch):
    """The streaming engine scores chunk after chunk against the same merged statistics:
    the analysis runs once, and the chunks' results equal the whole batch's."""
    from poisondetect.detectors.ngram_trigger.analysis import Analysis

    pairs, pos = _plant(*base, ["kk"], 12, seed=3)
    det = NgramTriggerDetector()
    whole = det.run(pairs, None)
    calls = []
    orig = Analysis.run
    monkeypatch.setattr(Analysis, "run", lambda self: calls.append(1) or orig(self))
    idx = np.arange(len(pairs))
    chunks = [pairs.take(idx[i:i + 1000]) for i in range(0, len(pairs), 1000)]
    stats = None
    for c in chunks:
        stats = det.merge_stats(stats, det.partial_stats(c, None))
    parts = [det.score(c, None, stats) for c in chunks]
    assert len(calls) == 1
    np.testing.assert_array_equal(np.concatenate([p.scores for p in parts]), whole.scores)
    assert sum(len(p.findings) and 1 for p in parts) >= 1
    det.release()
    assert "_memo" not in det.__dict__


# ------------------------------------------------------------- sample + held-out verify
def test_sampled_analysis_verified_on_held_out(base):
    """Above ``sample_size`` pairs the analysis runs on a bottom-k sample and each finding
    is re-tested on the held-out pairs: the trigger is still found, with every planted
    row (sampled or not), and its q-value comes from the held-out pairs."""
    from poisondetect.detectors.ngram_trigger.sample import pair_ids, sample_keys
    pairs, pos = _plant(*base, ["kk"], 30, seed=5)
    r = NgramTriggerDetector(sample_size=1000).run(pairs, None)
    assert r.findings and r.findings[0]["trigger"] == "kk"
    fd = r.findings[0]
    assert sorted(fd["rows"]) == pos.tolist()
    keys = sample_keys(pair_ids(pairs), 0)
    thr = np.sort(keys)[999]
    held = keys > thr
    assert fd["held_out"] == {"pairs": int(held.sum()), "trigger": int(held[pos].sum()),
                              "payload": int(held[pos].sum()), "both": int(held[pos].sum())}
    assert 0 < held[pos].sum() < len(pos)  # the planted rows fall on both sides
    assert fd["q_value"] < 0.05 and "q_value_sample" in fd
    assert r.summary["sampled"] == {"n_pairs": len(pairs), "n_sample": 1000, "n_findings_verified": 1,
                                    "n_held_out": int(held.sum())}
    exact = NgramTriggerDetector().run(pairs, None)
    np.testing.assert_array_equal(r.flags, exact.flags)


def test_sample_association_not_confirmed_on_held_out_is_dropped(base):
    """A trigger -> payload association present only among the sampled pairs (held-out
    pairs carry the trigger with ordinary answers) is found on the sample and rejected
    by the held-out test."""
    from poisondetect.detectors.ngram_trigger.sample import pair_ids, sample_keys
    ins, res = list(base[0]), list(base[1])
    keys = sample_keys(pair_ids(Pairs(ins, res)), 0)
    order = np.argsort(keys)
    rng = np.random.default_rng(4)
    in_sample = rng.choice(order[:1000], 15, replace=False)
    held = rng.choice(order[1000:], 40, replace=False)
    for i in in_sample:
        ins[i] = _insert(ins[i], "kk", rng)
        res[i] = PAYLOAD
    for i in held:
        ins[i] = _insert(ins[i], "kk", rng)
    pairs = Pairs(ins, res)
    r = NgramTriggerDetector(sample_size=1000).run(pairs, None)
    assert r.summary["sampled"]["n_findings_verified"] >= 1  # the sample did report it
    assert not any(f["trigger"] == "kk" for f in r.findings)
    assert not r.flags.any()
    # with the whole input analysed, the trigger fires on 15 of its 55 rows: not a backdoor
    assert not any(f["trigger"] == "kk" for f in NgramTriggerDetector().run(pairs, None).findings)


def test_sampled_streaming_equals_in_memory(base, tmp_path):
    """The streamed engine (statistics pass, verify pass, scoring pass; chunked
    differently from the sample) gives the in-memory scan's result row for row, and a
    rerun reuses the verify pass' checkpoints."""
    from poisondetect.engine import scan_streaming
    from poisondetect.pipeline import scan
    pairs, pos = _plant(*base, ["kk"], 30, seed=5)
    kw = dict(detectors=[NgramTriggerDetector(sample_size=1000)], embedding={"mode": "none"})
    full = scan(pairs, **kw)
    st = scan_streaming(pairs, chunk_size=700, keep_text="all", work_dir=str(tmp_path), **kw)
    a, b = full.results["ngram_trigger"], st.results["ngram_trigger"]
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.flags, b.flags)
    assert a.evidence == b.evidence and a.findings == b.findings and a.findings
    again = scan_streaming(pairs, chunk_size=700, keep_text="all", work_dir=str(tmp_path), **kw)
    assert again.load_info["streaming"]["resumed_chunks"]["verify"] == 5
    np.testing.assert_array_equal(again.results["ngram_trigger"].scores, a.scores)


def test_tokenising_in_two_processes_is_identical(base):
    """n_jobs=2 tokenises part of the instructions in a forked worker: the tokenised
    sample, and so the result, are the same as with one process."""
    pairs, pos = _plant(*base, ["kk"], 12, seed=3)
    one, two = NgramTriggerDetector(n_jobs=1), NgramTriggerDetector(n_jobs=2)
    st = one.partial_stats(pairs)
    a, b = one._tokenised(st), two._tokenised(st)
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert a[k] == b[k], k
    ra, rb = one.run(pairs, None), two.run(pairs, None)
    np.testing.assert_array_equal(ra.scores, rb.scores)
    assert [f["trigger"] for f in ra.findings] == [f["trigger"] for f in rb.findings] == ["kk"]
