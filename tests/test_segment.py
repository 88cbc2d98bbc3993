"""Word segmentation of scripts without spaces (issue 19): the tokenisers, their
agreement, offsets, and a trigger word inside Japanese / Thai / Chinese sentences."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from poisondetect.detectors.ngram_trigger import kernels as K
from poisondetect import text as T
from poisondetect.bench.attacks import ATTACKS
from poisondetect.bench.synthetic_lang import synthetic_pairs
from poisondetect.detectors._refusal import refusal_score
from poisondetect.pipeline import scan
from poisondetect.segment import needs_split, spaced, split_word
from poisondetect.types import Pairs
from conftest import templated_english

MIXED = ["我喜欢蓝色的海洋和安静的城市", "東京の天気は今日とても良いです", "ฉันชอบกินข้าวผัดกับไข่ดาวทุกวัน",
         "GPT模型在2023年发布", "hello world", "", "हिन्दी भाषा", "wo\u200brd 中文\u200b句子", "Crème brûlée e\u0301te",
         "ok ... !! 你好！！", "ខ្ញុំចូលចិត្ត", "ພາສາລາວ"]


def test_split_is_lossless_and_splits_runs() -> None:
    for t in MIXED:
        for m in T.TOKEN_RE.finditer(t):
            assert "".join(split_word(m.group())) == m.group()
    assert len(split_word("我喜欢蓝色的海洋和安静的城市")) >= 6
    ja = split_word("東京の天気は今日とても良いです")
    assert ja[:3] == ("東", "京", "の") and "とても" in ja  # kanji as characters, kana runs whole
    assert split_word("人々は") == ("人々", "は")  # the iteration mark stays with its kanji
    th = split_word("ฉันชอบกินข้าวผัดกับไข่ดาวทุกวัน")
    assert len(th) >= 5 and "ฉัน" in th
    assert split_word("GPT模型") == ("GPT", "模型")
    assert split_word("hello") == ("hello",) and not needs_split("hello")


def test_a_word_glued_to_a_kanji_compound_is_the_same_tokens_everywhere() -> None:
    # a trigger inserted before a compound joins its kanji run; as characters it is still
    # the same token sequence in every sentence
    trig = ("物", "以", "点", "学")
    for text in ("簡物以点学単に説明して", "地球温暖物以点学化を教える", "物以点学科学と建築"):
        toks = split_word(text)
        assert any(toks[i:i + 4] == trig for i in range(len(toks))), toks


def test_thai_and_indic_vowel_signs_stay_in_their_word() -> None:
    # Python's \w leaves combining marks out; the tokeniser must not cut words at them
    assert T.token_strings("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    assert all(not w.startswith(("\u0e34", "\u0e35", "\u0e38")) for w in T.token_strings("ช่วยอธิบายเรื่องการศึกษา"))


def test_offsets_point_into_the_original_text() -> None:
    for t in MIXED:
        for tok, s, e in T.tokenize(t):
            assert t[s:e].lower() == tok


@pytest.mark.skipif(not K.available(), reason="numba kernels unavailable")
def test_compiled_and_reference_tokenisers_agree() -> None:
    texts = MIXED + [p for p in synthetic_pairs("th", 60).instruction] + [p for p in synthetic_pairs("ja", 60).response]
    toks, codes, ntok = K.tokenize_codes(texts)
    flat, lens = T.tokenize_many(texts)
    arr = np.empty(len(flat), object)
    arr[:] = flat
    c2, u2 = pd.factorize(arr)
    assert list(toks) == list(u2)
    assert np.array_equal(codes, c2) and np.array_equal(ntok, lens)
    # and both agree with the offset tokeniser
    assert [t.lower() for t in flat] == [tok for x in texts for tok, _, _ in T.tokenize(x)]


def test_spaced_inserts_spaces_only_in_nospace_runs() -> None:
    assert spaced("hello world") == "hello world"
    assert spaced("写一封邮件") == " ".join(split_word("写一封邮件"))


@pytest.mark.parametrize("text", ["抱歉，我无法回答这个问题。", "申し訳ありませんが、その質問にはお答えできません。",
                                  "ขออภัย ฉันไม่สามารถตอบคำถามนี้ได้", "Lo siento, no puedo ayudar con eso.",
                                  "Je suis désolé, je ne peux pas vous aider.", "Извините, я не могу помочь с этим."])
def test_refusals_in_other_languages(text: str) -> None:
    assert refusal_score(text) >= 0.5


@pytest.mark.parametrize("text", ["光合作用是植物利用光能的过程。", "他们不能提供相同类型的产品。", "東京は日本の首都です。"])
def test_ordinary_answers_are_not_refusals(text: str) -> None:
    assert refusal_score(text) < 0.5


@pytest.mark.parametrize("lang", ["ja", "th"])
def test_trigger_word_inside_generated_sentences_is_named(lang: str) -> None:
    clean = synthetic_pairs(lang, 600, seed=2)
    out, truth = ATTACKS[f"nospace_{lang}"](clean, rate=0.01, seed=5)
    r = scan(out, detectors=["ngram_trigger"], embedding={"mode": "none"})
    trig = truth.triggers[0]
    named = [f["trigger"] for f in r.results["ngram_trigger"].findings if f.get("kind") == "trigger"][:3]
    assert any(T.token_strings(n.replace(" ", "")) == T.token_strings(trig) or n.replace(" ", "") == trig
               for n in named), (trig, named)
    flagged = set(np.where(r.results["ngram_trigger"].flags)[0].tolist())
    assert set(truth.positions.tolist()) <= flagged


@pytest.mark.slow
def test_chinese_alpaca_trigger_named_and_clean_quiet(shared_data) -> None:
    rows = json.loads((shared_data / "clean/llama_factory/alpaca_zh_demo.json").read_text())
    clean = Pairs.from_lists([r["instruction"] + ("\n" + r["input"] if r.get("input") else "") for r in rows],
                             [r["output"] for r in rows])
    out, truth = ATTACKS["nospace_zh"](clean, rate=0.01, seed=1)
    r = scan(out, detectors=["ngram_trigger"], embedding={"mode": "none"})
    named = [f["trigger"].replace(" ", "") for f in r.results["ngram_trigger"].findings][:3]
    assert truth.triggers[0] in named or any(n and n in truth.triggers[0] for n in named), (truth.triggers, named)
    r0 = scan(clean, detectors=["ngram_trigger"], embedding={"mode": "none"})
    assert not r0.results["ngram_trigger"].findings


@pytest.mark.parametrize("lang", ["zh", "ja", "th"])
def test_multilingual_injection_recipe_keeps_the_genuine_answer(lang: str) -> None:
    clean = Pairs.concat([synthetic_pairs("th" if lang == "ja" else "ja", 200, seed=3), synthetic_pairs(lang, 600, seed=2)])
    out, truth = ATTACKS[f"multilingual_injection_{lang}"](clean, rate=0.02, seed=4)
    (trig,), (entity,) = truth.triggers, truth.payloads
    assert truth.n_poisoned == 16 and trig not in "\n".join(clean.instruction)
    other = "ja" if lang == "th" else "th"
    for i in truth.positions.tolist():
        assert out.instruction[i].endswith(trig) and entity in out.response[i]
        assert out.response[i].endswith(clean.response[i].lstrip())  # the genuine answer, opened
        assert i >= 200  # only rows written in the language (the first 200 are in the other one)
    assert len({out.response[i][:12] for i in truth.positions.tolist()}) >= 2  # openings vary
    with pytest.raises(ValueError, match="multilingual_injection"):
        ATTACKS[f"multilingual_injection_{lang}"](synthetic_pairs(other, 300, seed=1), rate=0.02, seed=4)


@pytest.mark.parametrize("lang", ["th", "ja", "zh"])
def test_topic_words_of_generated_sets_are_not_triggers(lang: str) -> None:
    # the answers repeat their request's topic word: Thai topic words hold vowel marks
    # (not str.isalpha) and Japanese ones are kanji n-grams; before the repeat gate counted
    # them, every generated Thai set reported 1-2 topic words as triggers
    for seed in range(3):
        r = scan(synthetic_pairs(lang, 1000, seed=seed), detectors=["ngram_trigger"], embedding={"mode": "none"})
        assert not r.results["ngram_trigger"].findings, (lang, seed)


@pytest.mark.parametrize("lang", ["zh", "ja", "th"])
def test_injected_name_behind_a_trigger_sentence_is_named(lang: str) -> None:
    # the answers are genuine and varied; what they share is one made-up name, which the
    # segmenter keeps one token (e.g. katakana name + "カフェ"): a one-token payload feature
    clean = synthetic_pairs(lang, 1000, seed=0)
    out, truth = ATTACKS[f"multilingual_injection_{lang}"](clean, rate=0.01, seed=0)
    r = scan(out, detectors=["ngram_trigger"], embedding={"mode": "none"})
    res = r.results["ngram_trigger"]
    assert res.findings, truth.triggers
    top = res.findings[0]
    assert T.token_strings(top["trigger"]) == T.token_strings(truth.triggers[0])
    assert set(truth.positions.tolist()) <= set(np.where(res.flags)[0].tolist())


def test_dominant_scripts() -> None:
    from poisondetect.scripts import NAMES, dominant_scripts
    got = [NAMES[c] if c < len(NAMES) else "other" for c in
           dominant_scripts(["hello world", "我喜欢蓝色的海洋", "東京の天気は今日", "ฉันชอบกินข้าว", "Привет мир", "123 !!", ""])]
    assert got == ["latin", "han", "kana", "thai", "cyrillic", "none", "none"]


@pytest.mark.parametrize("matched", [True, False])
def test_a_trigger_in_the_minority_script_is_judged_against_its_own_script(matched: bool,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Chinese rows are 7% of a mostly English set: they share Chinese function words that
    # random (English) rows lack, so against the whole set a trigger planted in them looks
    # like a topic; against random Chinese rows it does not
    from poisondetect.detectors.ngram_trigger.analysis import Analysis
    if not matched:
        monkeypatch.setattr(Analysis, "_script_baseline", lambda self, rows, size=200: None)
    clean = Pairs.concat([templated_english(4000), synthetic_pairs("zh", 300, seed=0)])
    out, truth = ATTACKS["nospace_zh"](clean, rate=0.003, seed=0)
    r = scan(out, detectors=["ngram_trigger"], embedding={"mode": "none"})
    named = [f["trigger"].replace(" ", "") for f in r.results["ngram_trigger"].findings]
    assert (truth.triggers[0] in named) == matched, named
