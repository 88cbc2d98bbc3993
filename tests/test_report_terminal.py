"""Terminal summary: content, and no raw control/escape/bidi/zero-width characters from
dataset text ever reach the terminal."""
from __future__ import annotations

import io
import re
import sys
import unicodedata

import pytest
from report_helpers import TERM_HOSTILE, hostile_result

from poisondetect.report.terminal import render_summary, tqdm_progress
from poisondetect.report.text import safe_text, window_text

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u206f\ufeff]")


@pytest.fixture(scope="module")
def result():
    return hostile_result()


@pytest.mark.parametrize("s", TERM_HOSTILE + ["\x1b[2J\x1b[H", "a\x00b", "\ud800x", "\U000e0041tag", "\u061c"])
def test_safe_text_never_passes_control_chars(s):
    out = safe_text(s, 0)
    assert not UNSAFE.search(out), repr(out)
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in out)
    assert "\n" not in out and "\r" not in out


def test_safe_text_shows_invisible_chars_and_truncates():
    assert safe_text("a\u200bb") == "a<U+200B>b"
    assert safe_text("x\ny\tz") == "x y z"
    assert safe_text("abcdef", 4) == "abc…"


def test_window_text_centres_on_span():
    text = "x" * 300 + "TRIGGER" + "y" * 300
    out = window_text(text, (300, 307), 60)
    assert "»TRIGGER«" in out and len(out) <= 70
    assert window_text("abc", (5, 9), 10) == "abc"  # invalid span falls back


def test_render_summary_contents(result):
    buf = io.StringIO()
    render_summary(result, buf, top=5)
    out = buf.getvalue()
    assert "verdict: BACKDOOR SUSPECTED" in out
    assert "triggers (strongest first)" in out and "2.00e-08" in out
    assert "toy_trigger" in out and "toy_cluster" in out
    assert "payload_cluster" in out  # non-trigger finding listed
    assert "top 5 of 10 pairs flagged as poisoning" in out
    assert "»cf<U+200B><b>zz</b>«" in out  # trigger span shown and bracketed
    assert "shared payload" in out  # evidence line


def test_render_summary_has_no_raw_hostile_chars(result):
    buf = io.StringIO()
    render_summary(result, buf, top=50)
    out = buf.getvalue()
    for line in out.split("\n"):
        assert not UNSAFE.search(line), repr(line)
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out and "\u200b" not in out
    assert "<U+001B>" in out  # escapes are shown, defused


def test_render_summary_clean_scan():
    from report_helpers import ToyTrigger

    from poisondetect.pipeline import scan
    from poisondetect.types import Pairs

    r = scan(Pairs.from_lists(["a", "b"], ["c", "d"]), detectors=[ToyTrigger()], embedding={"mode": "none"})
    buf = io.StringIO()
    render_summary(r, buf)
    assert "verdict: NO FINDINGS" in buf.getvalue() and "no pairs flagged as poisoning" in buf.getvalue()


def test_tqdm_progress_writes_to_stderr_only(capsys):
    items = list(tqdm_progress(range(5), desc="embed \x1b[31m", total=5, disable=False, mininterval=0))
    assert items == list(range(5))
    cap = capsys.readouterr()
    assert cap.out == ""
    assert "embed" in cap.err and "\x1b[31m" not in cap.err


def test_tqdm_progress_silent_when_not_a_tty(capsys):
    assert list(tqdm_progress(range(3), desc="x", total=3)) == [0, 1, 2]
    if not sys.stderr.isatty():
        assert capsys.readouterr().err == ""


def test_render_summary_says_what_ran_on_a_sample():
    """A streamed scan says which detectors saw a sample or candidates, not every pair."""
    from report_helpers import ToyTrigger

    from poisondetect.pipeline import scan
    from poisondetect.types import Pairs

    r = scan(Pairs.from_lists(list("abcd"), list("efgh")), detectors=[ToyTrigger()], embedding={"mode": "none"})
    (res,) = r.results.values()
    res.summary["sampled"] = {"n_pairs": 4, "n_sample": 3, "n_findings_verified": 1, "n_held_out": 1}
    res.info.update(streaming="candidates", n_candidates=2)
    buf = io.StringIO()
    render_summary(r, buf)
    out = buf.getvalue()
    assert "analysed a 3-pair sample; 1 finding(s) re-tested on the 1 held-out pairs" in out
    assert "run on 2 candidate pairs" in out and "not on every pair" in out
    res.info["n_candidates"] = 4  # every pair was a candidate: nothing to say
    buf = io.StringIO()
    render_summary(r, buf)
    assert "candidate pairs" not in buf.getvalue()
