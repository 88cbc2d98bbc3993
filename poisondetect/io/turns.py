"""Chat turns -> instruction/response pairs.

The pieces every layout shares: the per-record errors (:class:`BadRecord` for a
malformed record, :class:`NoPairs` for a well-formed one with no assistant turn), role
names (ShareGPT ``from``, OpenAI ``role``) mapped to system/user/assistant/function_call/
tool, one turn normalised to ``(role, text)`` (content parts, tool calls), HH-RLHF
``Human:/Assistant:`` transcripts, and the rendering of earlier turns into the
instruction side of a pair (role labels, except for a lone user turn).
"""
from __future__ import annotations

import json
import re
from typing import Any

from .formats import safe, type_name


class BadRecord(Exception):
    """A malformed record; the message is the problem."""


class NoPairs(Exception):
    """A well-formed record with no assistant turn."""


# --- roles --------------------------------------------------------------------------------
ROLE_MAP = {
    "system": "system", "developer": "system",
    "human": "user", "user": "user", "prompter": "user", "customer": "user", "question": "user",
    "gpt": "assistant", "assistant": "assistant", "bot": "assistant", "model": "assistant",
    "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "claude": "assistant",
    "ai": "assistant", "gpt4": "assistant", "gpt-4": "assistant", "answer": "assistant",
    "function_call": "function_call", "tool_call": "function_call",
    "observation": "tool", "tool": "tool", "function": "tool", "ipython": "tool",
    "tool_response": "tool", "tool_result": "tool",
}
LABELS = {"system": "System", "user": "User", "assistant": "Assistant",
          "function_call": "Function call", "tool": "Tool result", "tools": "Tools"}
ASSISTANT_ROLES = ("assistant", "function_call")
#: HH-RLHF style transcripts: "\n\nHuman: ...\n\nAssistant: ..."
TRANSCRIPT_RE = re.compile(r"(?:^|\n\n)(Human|Assistant|H|A|User|System):[ \t]?", re.S)


def field_names(rec: dict) -> str:
    """The record's field names for an error message (terminal-safe, at most 12)."""
    ks = list(rec.keys())
    s = ", ".join(safe(k, 30) for k in ks[:12])
    return s + (f", ... ({len(ks)} in all)" if len(ks) > 12 else "") if ks else "none"


def not_string(name: str, v: Any) -> str:
    """The problem message for a field that should hold a string."""
    return f"field '{safe(name)}' is a {type_name(v)}, not a string"


def check_text(s: str, what: str) -> None:
    """Raise :class:`BadRecord` when ``s`` holds an unpaired surrogate (not valid Unicode)."""
    if not s.isascii():
        try:
            s.encode("utf-8")  # ~5x faster than a regex search for surrogates
        except UnicodeEncodeError:
            raise BadRecord(f"{safe(what)} holds an unpaired UTF-16 surrogate (invalid Unicode)") from None


def dumps_field(v: Any, what: str) -> str:
    """``v`` as JSON text (tool definitions and calls); :class:`BadRecord` when it cannot be."""
    try:
        return json.dumps(v, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        raise BadRecord(f"field '{safe(what)}' cannot be rendered as JSON") from None


def render_history(h: Any, name: str) -> str:
    """LLaMA-Factory Alpaca ``history``: [[instruction, response], ...]."""
    if not isinstance(h, list):
        raise BadRecord(f"field '{safe(name)}' is a {type_name(h)}, expected a list of [instruction, response]")
    out = []
    for j, pair in enumerate(h):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(type(x) is str for x in pair)):
            raise BadRecord(f"field '{safe(name)}' item {j} is not an [instruction, response] pair of strings")
        out.append(f"User: {pair[0]}\n\nAssistant: {pair[1]}")
    return "\n\n".join(out)


def content_text(c: Any, j: int) -> str:
    if type(c) is str:
        return c
    if c is None:
        return ""
    if isinstance(c, list):  # OpenAI content parts
        out = []
        for p in c:
            if type(p) is str:
                out.append(p)
            elif isinstance(p, dict):
                if type(p.get("text")) is str:
                    out.append(p["text"])
                else:
                    out.append(f"[{safe(p.get('type', 'part'), 20)}]")
            else:
                raise BadRecord(f"turn {j}: a content part is a {type_name(p)}")
        return "\n".join(out)
    raise BadRecord(f"turn {j}: the content is a {type_name(c)}, not a string")


def norm_turn(t: Any, j: int) -> tuple[str, str]:
    if not isinstance(t, dict):
        raise BadRecord(f"turn {j} is a {type_name(t)}, expected an object")
    if "from" in t:
        role, content = t.get("from"), t.get("value", t.get("content"))
    elif "role" in t:
        role, content = t.get("role"), t.get("content", t.get("value"))
    else:
        raise BadRecord(f"turn {j} has no 'from'/'role' key (keys: {field_names(t)})")
    if type(role) is not str:
        raise BadRecord(f"turn {j}: the role is a {type_name(role)}, not a string")
    r = ROLE_MAP.get(role.strip().lower())
    if r is None:
        raise BadRecord(f"turn {j} has unknown role '{safe(role)}'")
    if content is None and not (t.get("tool_calls") or t.get("function_call")):
        raise BadRecord(f"turn {j} has no content ('value'/'content' is missing or null)")
    text = content_text(content, j)
    extra = []
    for key in ("tool_calls", "function_call"):
        if t.get(key):
            extra.append(dumps_field(t[key], key))
    if extra:
        if r == "assistant":
            if text:
                text = "\n".join([text] + extra)
            else:  # a pure tool call: same role as a ShareGPT function_call turn
                text, r = "\n".join(extra), "function_call"
        elif r == "user":
            raise BadRecord(f"turn {j}: a user turn carries {', '.join(k for k in ('tool_calls', 'function_call') if t.get(k))}")
    check_text(text, f"turn {j}")
    return (r, text)


def parse_transcript(txt: str) -> list[tuple[str, str]]:
    """"Human: ... Assistant: ..." transcript -> (role, text) turns; text without any
    speaker label is one assistant turn (a TRL answer string)."""
    ms = list(TRANSCRIPT_RE.finditer(txt))
    if not ms:
        return [("assistant", txt)]
    out = []
    for m, nxt in zip(ms, ms[1:] + [None]):
        who = m.group(1).lower()
        role = "assistant" if who in ("assistant", "a") else ("system" if who == "system" else "user")
        out.append((role, txt[m.end(): nxt.start() if nxt is not None else len(txt)].strip()))
    return out


def turns_to_pairs(turns: list[tuple[str, str]], empty_msg: str | None) -> list[tuple[str, str, int]]:
    """Expand normalised (role, text) turns into (instruction, response, turn) pairs."""
    out: list[tuple[str, str, int]] = []
    k = 0
    for i, (role, text) in enumerate(turns):
        if role in ASSISTANT_ROLES:
            out.append((render_prefix(turns[:i]), text, k))
            k += 1
    if not out:
        raise NoPairs(empty_msg or "the conversation has no assistant turn")
    return out


def render_prefix(prefix: list[tuple[str, str]]) -> str:
    if not prefix:
        return ""
    if len(prefix) == 1 and prefix[0][0] == "user":
        return prefix[0][1]
    return "\n\n".join(f"{LABELS[r]}: {t}" for r, t in prefix)
