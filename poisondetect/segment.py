"""Word segmentation for scripts written without spaces between words.

A ``\\w+`` run of Chinese, Japanese or Thai is a whole clause, so a trigger word inside a
sentence would never be a token of its own.  :func:`split_word` splits such a run into
words; every tokeniser of :mod:`poisondetect.text` (and the compiled one of
:mod:`poisondetect.detectors.ngram_trigger.kernels`) applies it to each word token, so all paths give the same
tokens, and offsets stay character offsets into the original text.

Segmentation is *per token string*: a run is split the same way wherever it occurs (no
context beyond the run), which is what lets the compiled tokeniser split its distinct
tokens once and the reference tokeniser split every occurrence, with equal results.

Inside one run the text is first cut where the script changes (Latin letters or digits /
Han and kana / Thai / Lao / Khmer / Myanmar), then each piece is segmented by its script:

- **Han without kana** (Chinese): jieba's dictionary segmentation (``HMM=False``: the
  HMM guesses new words from their neighbours, which would make a planted word split
  differently in every sentence; without it an unknown word becomes single characters,
  the same ones everywhere).
- **Han with kana** (Japanese): cut where the script changes between kanji, hiragana and
  katakana (kana particles and endings, katakana loanwords), and each kanji a token of
  its own (character n-grams rebuild the compounds).  A kanji run is not cut into words:
  a word planted before a compound (``簡`` + trigger + ``単``) would be glued into a new
  run, different in every sentence, and never become a token; as characters it is the
  same n-gram in every row.  Coarser than a morphological analyser (a hiragana run keeps
  particle and ending together), with no 50 MB dictionary to install.
- **Thai**: pythainlp's ``newmm`` (maximal matching on its Thai dictionary).
- **Lao, Khmer, Myanmar**: ICU's word BreakIterator when PyICU is installed (the
  ``[icu]`` extra); without it the run stays whole (a trigger that is a whole run is
  still a token).

Measured on this machine (2 cores), the 17,577 Han runs of the shared Chinese Alpaca demo
(157k characters): jieba 0.49 s after a 0.65 s dictionary load, ICU 0.06 s.  jieba and
pythainlp are pure Python and install anywhere; PyICU needs the ICU headers to build, so
it is optional and never changes the tokens of Chinese, Japanese or Thai.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


def _mark_ranges() -> str:
    """A regex class body of the combining marks (Mn, Mc, Me) up to U+1FFFF.  Python's
    ``\\w`` leaves them out, which would cut Thai, Hindi or Khmer words at every vowel
    sign; the tokenisers count them as word characters."""
    out, start = [], None
    for cp in range(0x300, 0x20001):
        m = cp < 0x20000 and unicodedata.category(chr(cp)) in ("Mn", "Mc", "Me")
        if m and start is None:
            start = cp
        elif not m and start is not None:
            out.append(f"{chr(start)}-{chr(cp - 1)}" if cp - 1 > start else chr(start))
            start = None
    return "".join(out)


#: combining marks (a regex class body); ``[\\w{MARKS}]`` is a word character
MARKS = _mark_ranges()

#: characters of the scripts that do not separate words by spaces
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HIRA = "\u3040-\u309f"
_KATA = "\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_THAI = "\u0e00-\u0e7f"
_LAO = "\u0e80-\u0eff"
_KHMER = "\u1780-\u17ff\u19e0-\u19ff"
_MYANMAR = "\u1000-\u109f\uaa60-\uaa7f\ua9e0-\ua9ff"
NOSPACE_CLASS = f"[{_HAN}{_HIRA}{_KATA}{_THAI}{_LAO}{_KHMER}{_MYANMAR}]"
NOSPACE_RE = re.compile(NOSPACE_CLASS)

_PIECE_RE = re.compile(
    rf"(?P<cjk>[{_HAN}{_HIRA}{_KATA}\u3005\u303b]+)|(?P<thai>[{_THAI}]+)|(?P<icu>[{_LAO}{_KHMER}{_MYANMAR}]+)"
    rf"|(?P<other>[^{_HAN}{_HIRA}{_KATA}\u3005\u303b{_THAI}{_LAO}{_KHMER}{_MYANMAR}]+)")
_WORD_RE = re.compile(f"[\\w{MARKS}]+")
_KANA_RE = re.compile(f"[{_HIRA}{_KATA}]")
# Japanese: a run of kanji, of hiragana, or of katakana (the prolonged-sound mark and the
# iteration marks stay with the run before them)
_JA_RE = re.compile(rf"[{_HAN}\u3005\u303b]+|[{_HIRA}\u309d\u309e]+|[{_KATA}\u30fc]+")


_HAN_RUN_RE = re.compile(f"[{_HAN}]")
_KANJI_UNIT_RE = re.compile(f"[{_HAN}][\u3005\u303b]*|[\u3005\u303b]+")


def _split_kanji(s: str) -> list[str]:
    """A kanji run's characters, an iteration mark kept with the kanji before it."""
    return _KANJI_UNIT_RE.findall(s) or [s]


def needs_split(token: str) -> bool:
    """Does ``token`` hold a character of a script written without spaces?"""
    return not token.isascii() and NOSPACE_RE.search(token) is not None


@lru_cache(maxsize=1)
def _jieba():
    import jieba  # a dependency; imported on first use (0.6 s dictionary load)
    jieba.setLogLevel(60)
    tok = jieba.Tokenizer()
    tok.initialize()
    return tok


@lru_cache(maxsize=1)
def _thai():
    from pythainlp.tokenize import word_tokenize
    return word_tokenize


@lru_cache(maxsize=1)
def _icu():
    try:
        import icu  # optional: the [icu] extra
    except ImportError:
        return None
    return icu.BreakIterator.createWordInstance(icu.Locale.getRoot())


def _icu_cut(s: str) -> list[str]:
    bi = _icu()
    if bi is None:
        return [s]
    bi.setText(s)
    out, p = [], bi.first()
    for q in bi:
        out.append(s[p:q])
        p = q
    return [w for w in out if w] or [s]


def _han(s: str) -> list[str]:
    return [w for w in _jieba().lcut(s, cut_all=False, HMM=False) if w]


def _japanese(s: str) -> list[str]:
    out, at = [], 0
    for m in _JA_RE.finditer(s):
        if m.start() > at:
            out.append(s[at:m.start()])
        w = m.group()
        # a kanji run is cut into its characters (the n-grams rebuild the compounds)
        out.extend(_split_kanji(w) if _HAN_RUN_RE.match(w) else (w,))
        at = m.end()
    if at < len(s):
        out.append(s[at:])
    return out


def _thai_cut(s: str) -> list[str]:
    return [w for w in _thai()(s, engine="newmm", keep_whitespace=False) if w] or [s]


@lru_cache(maxsize=200_000)
def split_word(token: str) -> tuple[str, ...]:
    """The words of one word token (a ``\\w+`` run), in order; they concatenate back to
    ``token``.  A token without characters of a no-space script is returned whole."""
    if not needs_split(token):
        return (token,)
    out: list[str] = []
    for m in _PIECE_RE.finditer(token):
        s = m.group()
        kind = m.lastgroup
        if kind == "other":
            out.append(s)
        elif kind == "cjk":
            out.extend(_japanese(s) if _KANA_RE.search(s) else _han(s))
        elif kind == "thai":
            out.extend(_thai_cut(s))
        else:
            out.extend(_icu_cut(s))
    if "".join(out) != token:  # a segmenter must never change the text
        return (token,)
    return tuple(out)


def split_spans(token: str, start: int) -> list[tuple[str, int, int]]:
    """:func:`split_word` with character offsets (``start`` = offset of ``token``)."""
    out, at = [], start
    for w in split_word(token):
        out.append((w, at, at + len(w)))
        at += len(w)
    return out


def spaced(text: str) -> str:
    """``text`` with a space between the words of every no-space-script run (for
    vectorisers that split on ``\\w+``); the text itself when it has no such run."""
    if text.isascii() or NOSPACE_RE.search(text) is None:
        return text
    return _WORD_RE.sub(lambda m: " ".join(split_word(m.group())), text)



def segmenter_info() -> dict[str, str]:
    """Which segmenters this process uses (for the scan summary)."""
    info = {"zh": "jieba (HMM off)", "ja": "script runs (kanji / hiragana / katakana)", "th": "pythainlp newmm"}
    info["lo/km/my"] = "ICU BreakIterator" if _icu() is not None else "whole runs (PyICU not installed)"
    return info
