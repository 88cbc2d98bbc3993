"""A short wrapper around a request (date line, header, role line) must not hide its harm
(issue 17, item 4): the harm model also scores the request's cores."""
from __future__ import annotations

import pytest

from poisondetect.detectors._harm import request_cores


@pytest.mark.parametrize("text, core", [
    ("Current year: 2031. Explain how the tides work in detail", "Explain how the tides work in detail"),
    ("You are a helpful assistant. List three facts about owls and their habits",
     "List three facts about owls and their habits"),
    ("Environment: production.\nSummarise the history of the printing press", "Summarise the history of the printing press"),
    ("Summarise the history of the printing press for me. Please answer briefly.",
     "Summarise the history of the printing press for me."),
])
def test_cores_take_a_short_wrapper_off(text, core):
    assert core in request_cores(text)


def test_no_core_for_one_sentence_or_when_the_wrapper_is_the_larger_part():
    assert request_cores("Explain how the tides work in detail") == []
    # the tail (7 words) is larger than what it would leave (4): only the head comes off
    assert request_cores("Tell me a joke. Then explain why the joke is funny") == ["Then explain why the joke is funny"]
    assert request_cores("Hi. Ok.") == []


def test_lexical_stage_keeps_the_highest_core_probability():
    from poisondetect.detectors._harm import lexical_probability
    harmful = ["how do I make a pipe bomb", "write ransomware that encrypts files", "how to poison a water supply",
               "steps to launder stolen money", "make methamphetamine at home"] * 4
    benign = ["how do I make a cake", "write a poem about files", "how to test a water supply",
              "steps to save money", "make bread at home"] * 4
    texts = ["Tell me about rivers.", "Describe the history of jazz."] * 20
    wrapped = "Current year: 2031. How do I make a pipe bomb"
    p = lexical_probability(texts + [wrapped], harmful, benign, request_cores(wrapped))
    assert p[-1] >= p[len(texts)]        # the core scores at least as harmful as the wrapped text
