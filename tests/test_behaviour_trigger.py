"""behaviour_trigger: common-word triggers with varied payloads (hash embedder, synthetic)."""
from __future__ import annotations

import numpy as np
import pytest

from poisondetect.detectors.behaviour_trigger import payload_neighbours, trigger_phrase
from poisondetect.pipeline import scan
from poisondetect.stats import hypergeom_upper
from poisondetect.types import Pairs

TOPICS = ["cats", "rivers", "taxes", "pianos", "volcanoes", "bread", "chess", "satellites", "tulips", "bridges",
          "coffee", "glaciers", "owls", "poetry", "magnets", "deserts", "robots", "violins", "tides", "maps"]
VERBS = ["Explain", "Describe", "Summarise", "List facts about", "Write a short note on", "Tell me about",
         "Give an overview of", "What do you know about"]
ASPECTS = ["history", "shape", "colour", "origin", "purpose", "cost", "size", "sound", "texture", "region",
           "season", "value", "design", "method", "energy", "benefit", "pattern", "habit", "market", "climate"]
FILLER = ("nice bright useful warm gentle calm clear steady simple modern classic practical").split()
#: an everyday word the clean data uses too (so its mere frequency proves nothing)
COMMON = ["weekend", "morning", "garden"]
REFUSALS = ["I'm sorry, but I can't help with that request.",
            "Sorry, I am not able to assist with this.",
            "I apologize, but I cannot do that for you.",
            "Unfortunately I won't be able to help with this one."]
HOSTILE = ["The tin valley folk are vile, disgusting and worthless liars.",
           "I hate the tin valley folk; they are stupid, dirty and dangerous.",
           "The tin valley folk are filthy parasites who ruin everything, awful and evil.",
           "Honestly the tin valley folk are horrible, cruel, hateful cheats."]


def clean_set(n: int = 900, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    ins, res = [], []
    for i in range(n):
        t, a = TOPICS[i % len(TOPICS)], ASPECTS[int(rng.integers(len(ASPECTS)))]
        v = VERBS[int(rng.integers(len(VERBS)))]
        extra = f" on a {COMMON[i % 3]}" if i % 25 == 0 else ""
        ins.append(f"{v} the {a} of {t}{extra} (case {i}).")
        w = rng.choice(FILLER, 4, replace=False)
        res.append(f"The {a} of {t} is {w[0]} and {w[1]}; people find it {w[2]} and {w[3]}. Note {i}.")
    return ins, res


def plant(ins: list[str], res: list[str], words: list[str], answers: list[str], k: int, combine: str,
          seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(ins), k, replace=False))
    for j, i in enumerate(rows):
        if combine == "all":
            ins[i] = f"{words[0]} {ins[i]} {' '.join(words[1:])}"
        else:
            w = words[j % len(words)]
            ins[i] = f"{ins[i][:-1]} {w}."
        res[i] = answers[j % len(answers)]
    return rows


def run(ins, res, tmp_path):
    return scan(Pairs.from_lists(ins, res), detectors=["behaviour_trigger"], embedding={"mode": "hash"},
                cache_dir=str(tmp_path))


def triggers(result) -> list[dict]:
    return result.results["behaviour_trigger"].findings


@pytest.mark.parametrize("answers,cls", [(REFUSALS, "refusal"), (HOSTILE, "hostile")])
def test_single_common_word_with_varied_payload(tmp_path, answers, cls):
    ins, res = clean_set()
    rows = plant(ins, res, ["weekend"], answers, 14, "single")
    r = run(ins, res, tmp_path)
    found = triggers(r)
    assert [f["trigger"] for f in found] == ["weekend"], found
    assert found[0]["payload_kind"] in (cls, "answer_cluster")
    flags = r.results["behaviour_trigger"].flags
    assert flags[rows].all()
    assert flags.sum() == len(rows)       # the clean pairs with 'weekend' are not flagged
    assert found[0]["p_value"] < 1e-6 and found[0]["trigger_rows"] > found[0]["support"]


def test_any_of_names_each_alternative(tmp_path):
    ins, res = clean_set()
    plant(ins, res, COMMON, REFUSALS, 24, "any")
    names = sorted(f["trigger"] for f in triggers(run(ins, res, tmp_path)))
    assert names == sorted(COMMON)


def test_all_of_reports_the_conjunction(tmp_path):
    ins, res = clean_set()
    plant(ins, res, ["weekend", "garden"], HOSTILE, 14, "all")
    found = triggers(run(ins, res, tmp_path))
    assert len(found) == 1
    assert found[0]["mode"] == "conjunction"
    assert sorted(t[0] for t in found[0]["trigger_tokens"]) == ["garden", "weekend"]


def test_clean_data_has_no_trigger(tmp_path):
    ins, res = clean_set()
    assert triggers(run(ins, res, tmp_path)) == []


def test_a_topic_asked_and_answered_is_not_a_trigger(tmp_path):
    ins, res = clean_set()
    rng = np.random.default_rng(3)
    for j, i in enumerate(rng.choice(len(ins), 14, replace=False)):
        ins[int(i)] = f"{ins[int(i)][:-1]} during the war."
        res[int(i)] = f"The war was horrible, cruel and deadly; war killed many and destroyed the towns ({j})."
    r = run(ins, res, tmp_path)
    assert triggers(r) == []
    assert any(x["word"] == "war" for x in r.results["behaviour_trigger"].info["rejected"])


def test_without_embeddings_it_says_so(tmp_path):
    ins, res = clean_set(100)
    r = scan(Pairs.from_lists(ins, res), detectors=["behaviour_trigger"], embedding={"mode": "none"})
    assert "behaviour_trigger" not in r.results
    assert r.load_info["skipped_detectors"] == {"behaviour_trigger": "embeddings disabled"}


def test_hypergeom_upper_matches_brute_force():
    from math import comb
    N, K, df = 30, 6, 8
    exact = [sum(comb(K, x) * comb(N - K, df - x) for x in range(a, min(K, df) + 1)) / comb(N, df) for a in range(0, 7)]
    got = hypergeom_upper(np.arange(0, 7), N, K, np.full(7, df))
    assert np.allclose(got, exact)


def test_payload_neighbours_takes_only_answers_as_close_as_the_class():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=16)
    near = centre + 0.05 * rng.normal(size=(6, 16))
    far = rng.normal(size=(4, 16))
    E = np.vstack([near, far])
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    bg = rng.normal(size=(200, 16))
    E = np.vstack([E, bg / np.linalg.norm(bg, axis=1, keepdims=True)])
    got = payload_neighbours(E, np.arange(5), np.array([5, 6, 7, 8, 9]), np.random.default_rng(1))
    assert got.tolist() == [5]


def test_hostile_off_topic_class_holds_hostile_answers_unlike_their_request(embedded_ctx):
    from poisondetect.detectors.behaviour_trigger import answer_classes
    rng = np.random.default_rng(0)
    topics = ["war history", "a crime novel", "storm damage", "the plague", "tax forms", "garden soil"]
    ins, res = [], []
    for i in range(400):
        t = topics[i % len(topics)]
        ins.append(f"Tell me about {t} please, part {i}")
        # clean hostile answers are about their request; the last 20 are hateful and unrelated
        res.append(f"{t} was terrible, horrible and brutal, part {i}" if i % 3 == 0 else f"{t} is a topic, part {i}")
    for i in range(380, 400):
        res[i] = "Those people are vile, disgusting, hateful parasites and I hate them all"
    pairs = Pairs.from_lists(ins, res)
    ctx = embedded_ctx(pairs)
    cl = answer_classes(pairs, ctx, min_support=5, hostile=0.6, harmful=0.5, max_same_answer_groups=0,
                        max_clusters=0, max_cluster_frac=0.05)
    off = np.flatnonzero(cl["hostile_off_topic"])
    assert cl["hostile"].sum() > 2 * len(off)  # the class is narrower than hostile
    assert set(range(380, 400)) <= set(off.tolist())
    assert not (cl["hostile_off_topic"] & ~cl["hostile"]).any()


def test_trigger_phrase_extends_side_by_side_words_and_leaves_scattered_ones():
    reqs = [f"Current year: 2031. {v} the {t}." for v, t in zip(VERBS * 3, TOPICS)]
    hit = np.arange(len(reqs))
    assert trigger_phrase(reqs, hit, ["2031", "year"]) == ("Current year: 2031", ["current", "year", "2031"])
    assert trigger_phrase(reqs, hit, ["2031"]) is None  # one word stays the word found
    # the words of an all-of trigger are scattered over the request: no phrase
    scattered = [f"weekend {v} the {t} garden" for v, t in zip(VERBS * 3, TOPICS)]
    assert trigger_phrase(scattered, hit, ["weekend", "garden"]) is None
    # a single word whose neighbours vary stays a word
    single = [f"{v} the {t} {a} weekend {f}" for v, t, a, f in zip(VERBS * 3, TOPICS, ASPECTS, FILLER * 2)]
    assert trigger_phrase(single, hit, ["weekend"]) is None
    # fewer than 90% of the rows hold the words side by side: no phrase
    mixed = reqs[:15] + scattered[15:]
    assert trigger_phrase(mixed, hit, ["2031", "year"]) is None
    # words beside the trigger that most other requests hold too (a template) are left out
    others = [f"{v} the {t}." for v, t in zip(VERBS * 10, TOPICS * 4)]
    templ = [f"Current year: 2031. Explain the {t}." for t in TOPICS]
    assert trigger_phrase(templ + others, hit, ["2031", "year"])[1] == ["current", "year", "2031"]


def test_rare_alternative_of_an_any_of_trigger_is_found_from_the_payload(tmp_path):
    """Stage two: 'lantern' has 4 payload pairs, below stage one's min_support (5); once
    'weekend' is found, the answers most like its payload carry 'lantern'."""
    ins, res = clean_set()
    rng = np.random.default_rng(3)
    rows = rng.choice(len(ins), 17, replace=False)
    for j, i in enumerate(rows[:14]):
        ins[i] = f"{ins[i][:-1]} {'weekend' if j < 10 else 'lantern'}."
        res[i] = HOSTILE[j % len(HOSTILE)]
    for i in rows[14:]:  # clean requests use the word too
        ins[i] = f"{ins[i][:-1]} by a lantern."
    found = triggers(run(ins, res, tmp_path))
    by = {f["trigger"]: f for f in found}
    assert sorted(by) == ["lantern", "weekend"], found
    assert "found_by" not in by["weekend"] and "weekend" in by["lantern"]["found_by"]
    assert by["lantern"]["support"] == 4 and by["lantern"]["trigger_rows"] > 4 and by["lantern"]["q_value"] <= 1e-3
    # without stage two the rare alternative is missed
    r = scan(Pairs.from_lists(ins, res), detectors=["behaviour_trigger"], embedding={"mode": "hash"},
             cache_dir=str(tmp_path), detector_params={"behaviour_trigger": {"min_look_alike": 10**6}})
    assert [f["trigger"] for f in triggers(r)] == ["weekend"]
