"""Records -> instruction/response pairs.

A *layout* says which fields of a record hold what.  Three kinds:

- ``fields``: one pair per record from named fields (Alpaca instruction/input/output,
  Dolly instruction/context/response, GPTeacher instruction/input/response,
  prompt/completion, question/answer...).  The instruction side is
  ``system + history + instruction + input`` joined by blank lines.
- ``conversation``: a list of turns (ShareGPT ``conversations`` with from/value, OpenAI
  ``messages`` with role/content).  Every assistant turn (including a ShareGPT
  ``function_call`` turn and an OpenAI assistant ``tool_calls`` turn: both are model
  output) becomes one pair whose instruction side is the system prompt, the tool
  definitions and every earlier turn rendered with role labels, ending with the current
  user turn.  A lone user turn with no system prompt is kept unlabelled, so single-turn
  chat data reads like Alpaca data.
- ``text``: one ``text`` field holding a chat template (ChatML, Llama-2 ``[INST]``,
  Llama-3 headers, Gemma turns, Alpaca-style ``### Instruction:`` text), parsed into
  turns and then handled like a conversation.

Per-record problems raise :class:`BadRecord`; a well-formed record that holds no
assistant turn raises :class:`NoPairs` (reported, not fatal: ShareGPT dumps hold such
records and a trainer would skip them).

This module holds :class:`Layout` (each kind's record -> pairs converter) and
:func:`detect_layout` (the layout of a sample of records); the turn handling they share
is :mod:`poisondetect.io.turns`, the chat-template parsers :mod:`poisondetect.io.templates`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import InputError
from .formats import safe, type_name
from .templates import PARSERS, TEMPLATES, detect_template
from .turns import (
    ASSISTANT_ROLES,
    TRANSCRIPT_RE,
    BadRecord,
    NoPairs,
    check_text,
    dumps_field,
    field_names,
    norm_turn,
    not_string,
    parse_transcript,
    render_history,
    render_prefix,
    turns_to_pairs,
)

# --- field layouts: (name, instruction, response, input, needs-input-field-present) -------
FIELD_LAYOUTS: list[tuple[str, str, str, str | None, bool]] = [
    ("alpaca", "instruction", "output", "input", False),
    ("dolly", "instruction", "response", "context", True),
    ("gpteacher", "instruction", "response", "input", False),
    ("prompt_completion", "prompt", "completion", None, False),
    ("prompt_response", "prompt", "response", None, False),
    ("question_answer", "question", "answer", "context", False),
    ("query_response", "query", "response", None, False),
    ("input_output", "input", "output", None, False),
]
CONVERSATION_FIELDS = ("messages", "conversations", "conversation")
LAYOUT_NAMES = tuple(n for n, *_ in FIELD_LAYOUTS) + ("fields", "sharegpt", "openai", "conversation",
                                                      "text", "preference", "kto", "ultrafeedback") + TEMPLATES


@dataclass
class Layout:
    name: str
    kind: str  # "fields" | "conversation" | "text" | "preference"
    instruction: str | None = None
    input: str | None = None
    response: str | None = None
    system: str | None = None
    history: str | None = None
    conversation: str | None = None
    tools: str | None = None
    text: str | None = None
    templates: tuple[str, ...] = TEMPLATES
    template_counts: dict[str, int] = field(default_factory=dict)
    chosen: str | None = None
    rejected: str | None = None
    #: KTO: a boolean field saying whether the record's last answer is desirable
    label: str | None = None

    def fields_used(self) -> dict[str, str]:
        keys = ("instruction", "input", "response", "system", "history", "conversation", "tools", "text",
                "chosen", "rejected", "label")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def reported_name(self) -> str:
        if self.kind == "text" and self.name == "text" and len(self.template_counts) == 1:
            return next(iter(self.template_counts))
        return self.name

    def converter(self) -> Callable[[Any], list[tuple[str, str, int]]]:
        if self.kind == "fields":
            return self._fields_converter()
        if self.kind == "conversation":
            return self._conversation_converter()
        if self.kind == "preference":
            return self._preference_converter()
        if self.kind == "ratings":
            return self._ratings_converter()
        return self._text_converter()

    # ---- fields ---------------------------------------------------------------------
    def _fields_converter(self) -> Callable[[Any], list[tuple[str, str, int]]]:
        I, R, X, S, H = self.instruction, self.response, self.input, self.system, self.history
        missing = object()

        def conv(rec: Any) -> list[tuple[str, str, int]]:
            if type(rec) is not dict:
                if not isinstance(rec, dict):
                    raise BadRecord(f"the record is a {type_name(rec)}, expected an object")
            ins = rec.get(I, missing)
            if ins is missing:
                raise BadRecord(f"the record has no '{safe(I)}' field (fields: {field_names(rec)})")
            resp = rec.get(R, missing)
            if resp is missing:
                raise BadRecord(f"the record has no '{safe(R)}' field (fields: {field_names(rec)})")
            if type(ins) is not str:
                raise BadRecord(not_string(I, ins))
            if type(resp) is not str:
                raise BadRecord(not_string(R, resp))
            parts = []
            s = _optional_text(rec, S)
            if s is not None and s.strip():
                parts.append(s)
            if H is not None:
                h = rec.get(H)
                if h:
                    parts.append(render_history(h, H))
            parts.append(ins)
            x = _optional_text(rec, X)
            if x is not None and x.strip():
                parts.append(x)
            instruction = parts[0] if len(parts) == 1 else "\n\n".join(p for p in parts if p)
            check_text(instruction, "instruction")
            check_text(resp, R)
            return [(instruction, resp, 0)]
        return conv

    # ---- conversations --------------------------------------------------------------
    def _conversation_converter(self) -> Callable[[Any], list[tuple[str, str, int]]]:
        C, S, T, L = self.conversation, self.system, self.tools, self.label

        def conv(rec: Any) -> list[tuple[str, str, int]]:
            if not isinstance(rec, dict):
                raise BadRecord(f"the record is a {type_name(rec)}, expected an object")
            turns = rec.get(C)
            if turns is None:
                raise BadRecord(f"the record has no '{safe(C)}' field (fields: {field_names(rec)})")
            if not isinstance(turns, list):
                raise BadRecord(f"field '{safe(C)}' is a {type_name(turns)}, expected a list of turns")
            pre = []
            s = _optional_text(rec, S)
            if s is not None:
                check_text(s, S)
                if s.strip():
                    pre.append(("system", s))
            if T is not None:
                t = rec.get(T)
                if t:
                    t = t if isinstance(t, str) else dumps_field(t, T)
                    check_text(t, T)
                    pre.append(("tools", t))
            norm = [norm_turn(t, j) for j, t in enumerate(turns)]
            out = turns_to_pairs(pre + norm, empty_msg="the conversation is empty" if not turns else None)
            if L is None:
                return out
            v = rec.get(L)
            if not isinstance(v, bool):
                raise BadRecord(f"field '{safe(L)}' is {type_name(v) if v is not None else 'missing'}, "
                                f"expected true or false (KTO: is the answer desirable?)")
            if not v:  # an undesirable answer is trained *away from*: not a target, counted
                raise NoPairs(f"KTO label '{safe(L)}' is false: the answer is marked undesirable (not a training "
                              f"target; counted, not scanned)")
            return out[-1:]  # KTO trains the final answer only
        return conv

    # ---- preference pairs -------------------------------------------------------------
    def _preference_converter(self) -> Callable[[Any], list[tuple[str, str, int]]]:
        """One pair per record: the prompt (and earlier turns) -> the *chosen* answer, the
        one preference tuning trains towards.  Layouts: HH-RLHF (chosen/rejected
        transcripts), TRL (prompt + chosen/rejected as strings or message lists),
        LLaMA-Factory (conversations + chosen/rejected turns).  The rejected answer must be
        present (a record without it is malformed); it travels as the 4th item
        (``Pairs.rejected``) for the preference detectors."""
        P, C, Rj, S = self.instruction, self.chosen, self.rejected, self.system

        def turns_of(v: Any, what: str) -> list[tuple[str, str]]:
            if isinstance(v, str):
                return parse_transcript(v)
            if isinstance(v, dict):
                return [norm_turn(v, 0)]
            if isinstance(v, list):
                return [norm_turn(t, j) for j, t in enumerate(v)]
            raise BadRecord(f"field '{safe(what)}' is a {type_name(v)}, expected text, a turn or a list of turns")

        def conv(rec: Any) -> list[tuple[str, str, int]]:
            if not isinstance(rec, dict):
                raise BadRecord(f"the record is a {type_name(rec)}, expected an object")
            for k in (C, Rj):
                if rec.get(k) is None:
                    raise BadRecord(f"the record has no '{safe(k)}' field (fields: {field_names(rec)})")
            pre: list[tuple[str, str]] = []
            if S is not None and isinstance(rec.get(S), str) and rec[S].strip():
                pre.append(("system", rec[S]))
            if P is not None and rec.get(P) is not None:
                pv = rec[P]
                pre += [("user", pv)] if isinstance(pv, str) else turns_of(pv, P)
            ch = rec[C]
            if isinstance(ch, str) and not pre and TRANSCRIPT_RE.search(ch) is None:
                raise BadRecord(f"field '{safe(C)}' is plain text but the record has no prompt")
            if isinstance(ch, str) and pre:
                turns = pre + [("assistant", ch)]
            else:
                turns = pre + turns_of(ch, C)
            last = max((j for j, (r, _t) in enumerate(turns) if r in ASSISTANT_ROLES), default=None)
            if last is None:
                raise NoPairs(f"the chosen answer ('{safe(C)}') holds no assistant turn")
            for _r, t in turns:
                check_text(t, C)
            k = sum(1 for r, _t in turns[:last] if r in ASSISTANT_ROLES)
            rj = rec[Rj]
            if isinstance(rj, str) and pre:
                rej = rj
            else:
                rturns = turns_of(rj, Rj)
                ra = [t for r, t in rturns if r in ASSISTANT_ROLES]
                if not ra:
                    raise BadRecord(f"the rejected answer ('{safe(Rj)}') holds no assistant turn")
                rej = ra[-1]
            check_text(rej, Rj)
            return [(render_prefix(turns[:last]), turns[last][1], k, rej)]
        return conv

    # ---- rated completions (UltraFeedback) ----------------------------------------------
    def _ratings_converter(self) -> Callable[[Any], list[tuple[str, str, int, str]]]:
        """UltraFeedback: an instruction and a list of rated completions.  The best-rated
        completion is the chosen answer, the worst-rated the rejected one (how the
        binarised UltraFeedback sets are built); ties keep the first listed."""
        P, C = self.instruction, self.chosen

        def score(c: dict, j: int) -> float:
            for k in ("overall_score", "score", "rating", "fine-grained_score"):
                v = c.get(k)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
                    return float(v)
            raise BadRecord(f"completion {j} of '{safe(C)}' has no numeric rating (overall_score, score, rating)")

        def conv(rec: Any) -> list[tuple[str, str, int, str]]:
            if not isinstance(rec, dict):
                raise BadRecord(f"the record is a {type_name(rec)}, expected an object")
            q = rec.get(P)
            if not isinstance(q, str):
                raise BadRecord(not_string(P, q) if q is not None else f"the record has no '{safe(P)}' field")
            comps = rec.get(C)
            if not isinstance(comps, list) or not all(isinstance(c, dict) for c in comps):
                raise BadRecord(f"field '{safe(C)}' is a {type_name(comps)}, expected a list of rated completions")
            rated = []
            for j, c in enumerate(comps):
                r = c.get("response", c.get("text"))
                if not isinstance(r, str):
                    raise BadRecord(f"completion {j} of '{safe(C)}' has no 'response' text")
                check_text(r, C)
                rated.append((score(c, j), j, r))
            if len(rated) < 2:
                raise NoPairs(f"fewer than two rated completions in '{safe(C)}' (no preference to read)")
            check_text(q, P)
            best = max(rated, key=lambda t: (t[0], -t[1]))
            worst = min(rated, key=lambda t: (t[0], t[1]))
            if best[0] == worst[0]:
                raise NoPairs("every completion has the same rating (no preference to read)")
            return [(q, best[2], 0, worst[2])]
        return conv

    # ---- chat-template text ---------------------------------------------------------
    def _text_converter(self) -> Callable[[Any], list[tuple[str, str, int]]]:
        F = self.text
        allowed = self.templates
        counts = self.template_counts

        def conv(rec: Any) -> list[tuple[str, str, int]]:
            if not isinstance(rec, dict):
                raise BadRecord(f"the record is a {type_name(rec)}, expected an object")
            txt = rec.get(F)
            if txt is None:
                raise BadRecord(f"the record has no '{safe(F)}' field (fields: {field_names(rec)})")
            if type(txt) is not str:
                raise BadRecord(not_string(F, txt))
            tpl = detect_template(txt, allowed)
            if tpl is None:
                raise BadRecord("the text matches no known chat template ("
                                + ", ".join(allowed) + ")")
            turns = PARSERS[tpl](txt)
            out = turns_to_pairs(turns, empty_msg=None)
            counts[tpl] = counts.get(tpl, 0) + 1
            return out
        return conv



# ---------------------------------------------------------------------------------------
# layout detection
# ---------------------------------------------------------------------------------------

def _optional_text(rec: dict, key: str | None) -> str | None:
    """The string in an optional text field of a record (a system prompt, an input): None
    when the layout has no such field or the record leaves it out or null; a value that
    is not a string is a bad record."""
    if key is None:
        return None
    v = rec.get(key)
    if v is not None and type(v) is not str:
        raise BadRecord(not_string(key, v))
    return v


def _lookup(keys: dict[str, str], name: str | None) -> str | None:
    """Case-insensitive field lookup: the actual key for ``name`` or None."""
    if name is None:
        return None
    if name in keys.values():
        return name
    return keys.get(name.lower())


def detect_layout(sample: list[dict], *, layout: str | None = None, instruction_field: str | None = None,
                  input_field: str | None = None, response_field: str | None = None,
                  system_field: str | None = None, path: str | None = None) -> Layout:
    """Pick the layout from the fields of a sample of records (plus any overrides)."""
    order: dict[str, None] = {}
    for r in sample:
        for k in r:
            if isinstance(k, str):
                order.setdefault(k, None)
    keys = {}
    for k in order:
        keys.setdefault(k.lower(), k)
    seen = ", ".join(safe(k, 30) for k in list(order)[:20]) + (f", ... ({len(order)} in all)" if len(order) > 20 else "")

    def need(name: str | None, what: str) -> str | None:
        if name is None:
            return None
        k = _lookup(keys, name)
        if k is None:
            raise InputError(f"no field '{safe(name)}' for the {what} (fields seen: {seen or 'none'})", path=path)
        return k

    if layout is not None and layout not in LAYOUT_NAMES:
        raise InputError(f"unknown layout '{safe(layout)}'; known layouts: {', '.join(LAYOUT_NAMES)}", path=path)
    sys_f = need(system_field, "system prompt") if system_field else _lookup(keys, "system")
    overrides = instruction_field or response_field or input_field

    # preference data: chosen and rejected answers
    ch_f, rj_f = _lookup(keys, "chosen"), _lookup(keys, "rejected")
    conv_f = next((_lookup(keys, c) for c in CONVERSATION_FIELDS if _lookup(keys, c)), None)
    comp_f = _lookup(keys, "completions")
    if layout == "ultrafeedback" or (layout is None and not overrides and comp_f and not (ch_f and rj_f)
                                     and any(isinstance(r.get(comp_f), list) for r in sample)):
        if comp_f is None:
            raise InputError(f"layout 'ultrafeedback' needs a 'completions' field (fields seen: {seen or 'none'})",
                             path=path)
        prompt_f = need(instruction_field, "prompt") if instruction_field else (
            _lookup(keys, "instruction") or _lookup(keys, "prompt"))
        if prompt_f is None:
            raise InputError(f"layout 'ultrafeedback' needs an 'instruction' or 'prompt' field "
                             f"(fields seen: {seen or 'none'})", path=path)
        return Layout("ultrafeedback", "ratings", instruction=prompt_f, chosen=comp_f)
    if layout == "preference" or (layout is None and not overrides and ch_f and rj_f):
        if ch_f is None or rj_f is None:
            raise InputError(f"layout 'preference' needs 'chosen' and 'rejected' fields (fields seen: {seen or 'none'})",
                             path=path)
        prompt_f = need(instruction_field, "prompt") if instruction_field else (
            _lookup(keys, "prompt") or conv_f or _lookup(keys, "instruction") or _lookup(keys, "question"))
        return Layout("preference", "preference", instruction=prompt_f, system=sys_f, chosen=ch_f, rejected=rj_f)

    # conversations
    want_conv = layout in ("sharegpt", "openai", "conversation", "kto")
    if want_conv or (layout is None and not overrides and conv_f is not None):
        if instruction_field and want_conv:
            conv_f = need(instruction_field, "conversation")
        if conv_f is None:
            raise InputError(f"layout '{layout}' needs a 'conversations' or 'messages' field "
                             f"(fields seen: {seen or 'none'})", path=path)
        name = layout if layout in ("sharegpt", "openai") else _conv_style(sample, conv_f)
        kto = next((k for k in ("label", "kto_tag") if k in keys
                    and all(isinstance(r.get(keys[k]), bool) for r in sample if keys[k] in r)), None)
        if layout == "kto" and kto is None:  # forced: the field need only exist (bad values are bad records)
            kto = next((k for k in ("label", "kto_tag") if k in keys), None)
        if layout == "kto" and kto is None:
            raise InputError("layout 'kto' needs a boolean 'label' or 'kto_tag' field "
                             f"(fields seen: {seen or 'none'})", path=path)
        return Layout("kto" if kto else name, "conversation", conversation=conv_f, system=sys_f,
                      tools=_lookup(keys, "tools"), label=keys[kto] if kto else None)

    # chat-template text
    if layout in ("text",) + TEMPLATES:
        text_f = need(instruction_field, "text") if instruction_field else _lookup(keys, "text")
        if text_f is None:
            raise InputError(f"layout '{layout}' needs a 'text' field (fields seen: {seen or 'none'})", path=path)
        return Layout(layout, "text", text=text_f, templates=TEMPLATES if layout == "text" else (layout,))

    # named field layouts
    hist_f = _lookup(keys, "history")
    if layout is not None and layout != "fields":
        name, i_d, r_d, x_d, _ = next(t for t in FIELD_LAYOUTS if t[0] == layout)
        I = need(instruction_field or i_d, "instruction")
        R = need(response_field or r_d, "response")
        X = need(input_field, "input") if input_field else (_lookup(keys, x_d) if x_d else None)
        return Layout(name, "fields", I, X, R, sys_f, hist_f if name == "alpaca" else None)
    if overrides or layout == "fields":
        I = need(instruction_field, "instruction") if instruction_field else None
        R = need(response_field, "response") if response_field else None
        X = need(input_field, "input") if input_field else None
        base = None
        for name, i_d, r_d, x_d, need_x in FIELD_LAYOUTS:
            i_k = I or _lookup(keys, i_d)
            r_k = R or _lookup(keys, r_d)
            if i_k and r_k and i_k != r_k and (not need_x or _lookup(keys, x_d)):
                base = (name, i_k, r_k, X or (_lookup(keys, x_d) if x_d and _lookup(keys, x_d) not in (i_k, r_k) else None))
                break
        if base is None:
            raise InputError("cannot tell which fields hold the instruction and the response; pass both "
                             f"instruction_field and response_field (fields seen: {seen or 'none'})", path=path)
        name, I, R, X = base
        return Layout("fields", "fields", I, X, R, sys_f, None)

    for name, i_d, r_d, x_d, need_x in FIELD_LAYOUTS:
        I, R = _lookup(keys, i_d), _lookup(keys, r_d)
        if I and R and (not need_x or _lookup(keys, x_d)):
            X = _lookup(keys, x_d) if x_d else None
            return Layout(name, "fields", I, X, R, sys_f, hist_f if name == "alpaca" else None)
    text_f = _lookup(keys, "text")
    if text_f is not None:
        return Layout("text", "text", text=text_f)
    raise InputError(f"unknown layout (fields seen: {seen or 'none'}): expected instruction/output (Alpaca), "
                     "instruction/context/response (Dolly), instruction/input/response, prompt/completion, "
                     "question/answer, conversations (ShareGPT), messages (OpenAI) or a chat-template text "
                     "field; or name the fields with instruction_field/response_field", path=path)


def _conv_style(sample: list[dict], conv_f: str) -> str:
    for r in sample:
        turns = r.get(conv_f)
        if isinstance(turns, list):
            for t in turns:
                if isinstance(t, dict):
                    if "from" in t:
                        return "sharegpt"
                    if "role" in t:
                        return "openai"
    return "conversation"
