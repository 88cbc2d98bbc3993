"""Chat templates in a ``text`` field -> (role, text) turns.

ChatML (``<|im_start|>``), Llama-2 (``[INST]`` with an optional ``<<SYS>>`` block),
Llama-3 (``<|start_header_id|>``), Gemma (``<start_of_turn>``) and Alpaca-style
``### Instruction:`` / ``### Response:`` text.  :func:`detect_template` names the
template of a text, :data:`PARSERS` maps each name to its parser.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable

from .formats import safe
from .turns import ROLE_MAP, BadRecord

#: template names, in the order :func:`detect_template` tries them
TEMPLATES = ("chatml", "llama2", "llama3", "gemma", "alpaca_text")

_CHATML = re.compile(r"<\|im_start\|>[ \t]*([^\n<]*?)[ \t]*(?:\n|(?=<\|im_end\|>))(.*?)(?=<\|im_end\|>|<\|im_start\|>|\Z)", re.S)
_LLAMA3 = re.compile(r"<\|start_header_id\|>(.*?)<\|end_header_id\|>(.*?)(?=<\|eot_id\|>|<\|start_header_id\|>|\Z)", re.S)
_GEMMA = re.compile(r"<start_of_turn>[ \t]*(\w+)[ \t]*\n?(.*?)(?=<end_of_turn>|<start_of_turn>|\Z)", re.S)
_ALPACA_HDR = re.compile(r"###[ \t]*(Instruction|Input|Context|Response|Human|Assistant|System)[ \t]*:", re.I)
_LLAMA2_SYS = re.compile(r"\s*<<SYS>>(.*?)<</SYS>>(.*)", re.S)


def detect_template(txt: str, allowed: Iterable[str] = TEMPLATES) -> str | None:
    """The first template of ``allowed`` whose markers occur in ``txt``, or None."""
    for name in allowed:
        if name == "chatml" and "<|im_start|>" in txt:
            return name
        if name == "llama3" and "<|start_header_id|>" in txt:
            return name
        if name == "llama2" and "[INST]" in txt and "[/INST]" in txt:
            return name
        if name == "gemma" and "<start_of_turn>" in txt:
            return name
        if name == "alpaca_text" and _ALPACA_HDR.search(txt):
            return name
    return None


def _role(r: str, tpl: str) -> str:
    role = ROLE_MAP.get(r.strip().lower())
    if role is None:
        raise BadRecord(f"{tpl} text has unknown role '{safe(r)}'")
    return role


def _parse_chatml(txt: str) -> list[tuple[str, str]]:
    return [(_role(r, "ChatML"), c.strip()) for r, c in _CHATML.findall(txt)]


def _parse_llama3(txt: str) -> list[tuple[str, str]]:
    return [(_role(r, "Llama-3"), c.strip()) for r, c in _LLAMA3.findall(txt)]


def _parse_gemma(txt: str) -> list[tuple[str, str]]:
    return [(_role(r, "Gemma"), c.strip()) for r, c in _GEMMA.findall(txt)]


def _parse_llama2(txt: str) -> list[tuple[str, str]]:
    t = txt.replace("<s>", "")
    segs = t.split("[INST]")[1:]
    turns: list[tuple[str, str]] = []
    for n, seg in enumerate(segs):
        user, sep, asst = seg.partition("[/INST]")
        if n == 0:
            m = _LLAMA2_SYS.match(user)
            if m:
                if m.group(1).strip():
                    turns.append(("system", m.group(1).strip()))
                user = m.group(2)
        turns.append(("user", user.strip()))
        if sep:
            a = asst.replace("</s>", "").strip()
            if a:
                turns.append(("assistant", a))
    return turns


def _parse_alpaca_text(txt: str) -> list[tuple[str, str]]:
    marks = list(_ALPACA_HDR.finditer(txt))
    turns: list[tuple[str, str]] = []
    pre = txt[: marks[0].start()].strip()
    if pre:
        turns.append(("system", pre))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(txt)
        body = txt[m.end(): end].strip()
        h = m.group(1).lower()
        if h in ("instruction", "human"):
            turns.append(("user", body))
        elif h in ("input", "context"):
            if turns and turns[-1][0] == "user":
                turns[-1] = ("user", turns[-1][1] + "\n\n" + body if body else turns[-1][1])
            else:
                turns.append(("user", body))
        elif h == "system":
            turns.append(("system", body))
        else:
            body = re.sub(r"\s*###\s*End\s*$", "", body, flags=re.I)
            turns.append(("assistant", body))
    return turns


PARSERS: dict[str, Callable[[str], list[tuple[str, str]]]] = {
    "chatml": _parse_chatml, "llama2": _parse_llama2, "llama3": _parse_llama3,
    "gemma": _parse_gemma, "alpaca_text": _parse_alpaca_text,
}
