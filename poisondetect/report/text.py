"""Pure text helpers shared by the report renderers (terminal, HTML, plots, triage).

Dataset text is hostile: every string that came from the data (and every string a
detector built from it: trigger text, evidence messages, finding labels) goes through
:func:`safe_text` (or :func:`window_text`) before it reaches a terminal, so no control
character, escape sequence, carriage return, bidi override or zero-width character is
ever written raw.  Nothing here does IO.
"""
from __future__ import annotations

import unicodedata
from typing import Any

#: Unicode categories never written raw: controls (C0/C1, incl. ESC and CR), format
#: characters (bidi overrides/isolates, zero-width joiners/spaces, BOM, tag characters),
#: surrogates, private use, unassigned, and the line/paragraph separators.
UNSAFE_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def safe_text(s: Any, limit: int = 80) -> str:
    """Printable, single-line, escape-free rendering of untrusted text.

    Newlines and tabs become spaces; every other unsafe code point becomes a visible
    ``<U+XXXX>`` marker (so an invisible trigger is shown, not hidden).  ``limit``
    truncates the result (0 = no limit) with an ellipsis.
    """
    out = []
    for ch in str(s):
        if ch in "\n\t":
            out.append(" ")
        elif unicodedata.category(ch) in UNSAFE_CATEGORIES:
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    text = "".join(out)
    if limit and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def window_text(text: str, span: Any = None, width: int = 90) -> str:
    """Safe one-line excerpt of ``text``; when ``span`` (start, end) is given, the excerpt
    is centred on it and the span is bracketed with ``»…«`` so the trigger or payload is
    visible even deep inside a long text."""
    if span is None:
        return safe_text(text, width)
    try:
        a, b = max(int(span[0]), 0), min(int(span[1]), len(text))
    except (TypeError, ValueError, IndexError):
        return safe_text(text, width)
    if a >= b:
        return safe_text(text, width)
    pre, mid, post = text[:a], text[a:b], text[b:]
    mid_s = safe_text(mid, max(width // 2, 10))
    room = max(width - len(mid_s) - 2, 10)
    pre_s = safe_text(pre, 0)
    if len(pre_s) > room // 3:
        pre_s = "…" + pre_s[-(room // 3 - 1):]
    post_s = safe_text(post, max(room - len(pre_s), 1))
    return f"{pre_s}»{mid_s}«{post_s}"


def finding_label(f: dict[str, Any]) -> str:
    """One-line description of a dataset-level finding (raw: escape before display)."""
    for key in ("label", "description", "message", "payload", "trigger", "name", "source", "id"):
        v = f.get(key)
        if v:
            return str(v)
    return ""


def fmt_q(v: Any) -> str:
    """A q-/p-value as ``1.23e-04``; ``-`` when it is missing or not a number."""
    try:
        return f"{float(v):.2e}"
    except (TypeError, ValueError):
        return "-"
