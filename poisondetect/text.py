"""Tokenisation helpers shared by the text detectors.

One tokeniser for both sides of a pair, so that an instruction n-gram and a response
n-gram with the same text get the same hash:

- word tokens: maximal runs of ``\\w`` (letters, digits, underscore) and combining marks
  (the vowel signs of Thai or Hindi), lower-cased;
- punctuation runs: two or more consecutive non-word, non-space characters (``??``,
  ``!!!``, ``:-)``, ``...``); single punctuation marks are not tokens;
- odd characters: every invisible / format / bidi / private-use character is a token of
  its own (zero-width space, joiners, BOM, soft hyphen, bidi overrides...), even when it
  sits inside a word (``wo\\u200brd`` -> ``wo``, ``\\u200b``, ``rd``);
- scripts written without spaces (Chinese, Japanese, Thai, ...): a word run is split into
  words by :func:`poisondetect.segment.split_word` (the same split in every path).

Token hashes are stable 64-bit values (BLAKE2b of the UTF-8 text), so statistics computed
on different batches or processes can be merged.  n-gram hashes are built from token
hashes with vectorised numpy mixing (splitmix64, :mod:`poisondetect.hashing`).  Nothing
here does IO.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterable, Sequence

import numpy as np

from .hashing import combine64
from .segment import MARKS, NOSPACE_RE, split_spans, split_word

#: invisible / formatting characters commonly used as structural triggers
_ODD_RANGES = (
    "\u00ad"                 # soft hyphen
    "\u034f"                 # combining grapheme joiner
    "\u061c"                 # arabic letter mark
    "\u115f\u1160"           # hangul fillers
    "\u17b4\u17b5"
    "\u180b-\u180f"          # mongolian variation selectors / vowel separator
    "\u200b-\u200f"          # zero-width space/non-joiner/joiner, LRM, RLM
    "\u202a-\u202e"          # bidi embeddings / overrides
    "\u2060-\u206f"          # word joiner, invisible operators, bidi isolates
    "\u3164"                 # hangul filler
    "\ufe00-\ufe0f"          # variation selectors
    "\ufeff"                 # BOM / zero-width no-break space
    "\uffa0"
    "\ue000-\uf8ff"          # private use
)
ODD_CHAR_CLASS = f"[{_ODD_RANGES}]"
_ODD_RE = re.compile(ODD_CHAR_CLASS)
#: the token pattern (apply to the original text; lower-case tokens afterwards)
#: a word character: ``\w`` and the combining marks (Thai / Indic vowel signs)
WORD_CHAR_CLASS = f"[\\w{MARKS}]"
_NONWORD_CLASS = f"[^\\w{MARKS}\\s]"
TOKEN_RE = re.compile(rf"{ODD_CHAR_CLASS}|(?:(?!{ODD_CHAR_CLASS}){WORD_CHAR_CLASS})+"
                      rf"|(?:(?!{ODD_CHAR_CLASS}){_NONWORD_CLASS}){{2,}}")
_FAST_TOKEN_RE = re.compile(rf"{WORD_CHAR_CLASS}+|{_NONWORD_CLASS}{{2,}}")


def is_odd_token(tok: str) -> bool:
    return len(tok) == 1 and _ODD_RE.match(tok) is not None


def token_kind(tok: str) -> str:
    """``"odd"`` (invisible/format char), ``"punct"`` (punctuation run) or ``"word"``."""
    if is_odd_token(tok):
        return "odd"
    if tok and not (tok[0].isalnum() or tok[0] == "_"):
        return "punct"
    return "word"


def _has_nospace(text: str) -> bool:
    return not text.isascii() and NOSPACE_RE.search(text) is not None


def _split_all(tokens: list[str]) -> list[str]:
    return [w for t in tokens for w in split_word(t)]


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """``[(token_lower, start, end), ...]`` with character offsets into ``text``."""
    if not _has_nospace(text):
        return [(m.group().lower(), m.start(), m.end()) for m in TOKEN_RE.finditer(text)]
    return [(w.lower(), s, e) for m in TOKEN_RE.finditer(text) for w, s, e in split_spans(m.group(), m.start())]


def token_strings(text: str) -> list[str]:
    """Tokens only (lower-cased), same segmentation as :func:`tokenize`."""
    toks = TOKEN_RE.findall(text)
    if _has_nospace(text):
        toks = _split_all(toks)
    return [t.lower() for t in toks]


def tokenize_many(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Tokenise many texts: (flat list of raw tokens, int64 doc lengths).

    Uses a cheaper pattern for texts without odd characters (identical segmentation
    there); tokens are *not* lower-cased (do that on the unique values).
    """
    fast, slow = _FAST_TOKEN_RE.findall, TOKEN_RE.findall
    search = _ODD_RE.search
    per_doc = [slow(t) if search(t) else fast(t) for t in texts]
    for k, t in enumerate(texts):
        if _has_nospace(t):
            per_doc[k] = _split_all(per_doc[k])
    lengths = np.fromiter((len(d) for d in per_doc), dtype=np.int64, count=len(per_doc))
    flat = [tok for d in per_doc for tok in d]
    return flat, lengths


def hash_strings(strings: Iterable[str]) -> np.ndarray:
    """Stable 64-bit hashes (uint64) of strings (BLAKE2b-64 of UTF-8)."""
    out = [int.from_bytes(hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
           for s in strings]
    return np.array(out, dtype=np.uint64)


def ngram_hash(token_hashes: Sequence[int] | np.ndarray) -> int:
    """Hash of one n-gram given its token hashes (same as :func:`ngram_hashes`)."""
    h = np.asarray(token_hashes, dtype=np.uint64)
    acc = h[:1]
    for k in range(1, len(h)):
        acc = combine64(acc, h[k:k + 1])
    return int(acc[0])


def ngram_hashes(tok_hash: np.ndarray, doc_len: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All n-grams of order ``n`` that do not cross document boundaries.

    ``tok_hash`` is the flat uint64 token-hash array, ``doc_len`` the number of tokens of
    each document.  Returns (hashes uint64, doc index int64, start position in the flat
    token array int64).
    """
    tok_hash = np.asarray(tok_hash, dtype=np.uint64)
    total = len(tok_hash)
    doc_of = np.repeat(np.arange(len(doc_len), dtype=np.int64), doc_len)
    if n == 1:
        return tok_hash, doc_of, np.arange(total, dtype=np.int64)
    if total < n:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    m = total - n + 1
    starts = np.arange(m, dtype=np.int64)
    ok = doc_of[:m] == doc_of[n - 1:]
    acc = tok_hash[:m]
    for k in range(1, n):
        acc = combine64(acc, tok_hash[k:k + m])
    return acc[ok], doc_of[:m][ok], starts[ok]


_EOS_RE = re.compile(r"(?:\s*(?:<\|endoftext\|>|<\|im_end\|>|<\|eot_id\|>|<\|end\|>|</s>|<eos>|\[/?INST\]))+\s*$")


_EOS_MARKERS = ("<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end|>", "</s>", "<eos>", "[INST]", "[/INST]")


def strip_eos(text: str) -> str:
    """Drop trailing end-of-sequence markers (``<|endoftext|>``, ``</s>``, ``<|im_end|>``...)
    and the whitespace around them: what ``_EOS_RE.sub("", text)`` does, from the end of
    the text (``str.isspace`` is exactly ``\\s``), without scanning all of it."""
    s = text.rstrip()
    if not s or s[-1] not in ">]":
        return text
    cut = False
    while True:
        if not s.endswith(_EOS_MARKERS):  # (one call for the usual text)
            return s if cut else text
        for m in _EOS_MARKERS:
            if s.endswith(m):
                s = s[: len(s) - len(m)].rstrip()
                cut = True
                break
        else:
            return s if cut else text


def normalize_text(text: str) -> str:
    """Case- and whitespace-insensitive form (NFKC, lower-case, single spaces, stripped)."""
    # str.split() splits on exactly the characters ``\s`` matches (str.isspace), faster
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def display_token(tok: str) -> str:
    """A printable form: invisible/odd and control characters as ``<U+XXXX>``."""
    out = []
    for ch in tok:
        if _ODD_RE.match(ch) or unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp"):
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    return "".join(out)


def display_tokens(tokens: Sequence[str]) -> str:
    return " ".join(display_token(t) for t in tokens)


def find_token_sequence(tokens: Sequence[tuple[str, int, int]], seq: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans where the token sequence ``seq`` occurs in ``tokens``
    (as returned by :func:`tokenize`)."""
    k = len(seq)
    if k == 0:
        return []
    seq = list(seq)
    out = []
    for i in range(len(tokens) - k + 1):
        if tokens[i][0] == seq[0] and all(tokens[i + j][0] == seq[j] for j in range(1, k)):
            out.append((tokens[i][1], tokens[i + k - 1][2]))
    return out


#: the label render_prefix writes before each user turn of a multi-turn prompt
_USER_LABEL = re.compile(r"(?:^|\n\n)User: ")


def last_user_turn(instruction: str) -> tuple[int, str]:
    """(offset, text) of the last user turn in a rendered prompt (the whole prompt when it
    is a single turn without labels)."""
    start = 0
    for m in _USER_LABEL.finditer(instruction):
        start = m.end()
    text = instruction[start:]
    cut = text.find("\n\nAssistant: ")
    return start, (text if cut < 0 else text[:cut])
