"""Insecure code in an answer: Bandit (PyCQA, Apache-2.0) on the Python code it holds.

Bandit walks a Python AST with ~70 checks (``shell=True`` with a built command, ``eval``
/ ``exec``, ``pickle`` / ``yaml.load`` of untrusted data, SQL built by string
formatting, TLS verification off, weak hashes, ``debug=True``, ...).  It never runs the
code: dataset text is parsed, not executed.

An answer's Python snippets are its fenced blocks tagged ``python`` / ``py`` / untagged,
or, when it has no fence, the whole answer.  A snippet counts only if it parses and
holds a call, import, definition or assignment (so prose never reaches Bandit).  The
answer's score is the number of Bandit issues of at least ``MEDIUM`` severity *and*
``MEDIUM`` confidence (the low ones, ``random`` for non-crypto use, ``assert``, an
``import subprocess``, are what clean tutorials are made of).

Callers use the flag as a *response class* to test request words against
(:mod:`.behaviour_trigger`): a clean code corpus has a few insecure answers
(0.05% of CodeAlpaca, 0.4% of GPTeacher codegen, measured), a "Current year: X"
backdoor has all of its triggered answers insecure.
"""
from __future__ import annotations

import ast
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)```", re.S)
_PY_TAGS = frozenset({"", "python", "py", "python3", "py3"})
_LEVELS = ("MEDIUM", "HIGH")
#: the longest snippet handed to Bandit (characters); longer ones are cut at a line end
MAX_SNIPPET_CHARS = 20_000


def bandit_available() -> bool:
    try:
        import bandit.core.manager  # noqa: F401
    except ImportError:
        return False
    return True


def python_snippets(text: str) -> list[str]:
    """The Python code of an answer that parses (see the module docstring)."""
    blocks = _FENCE.findall(text)
    cand = [code for tag, code in blocks if tag.lower() in _PY_TAGS] if blocks else [text]
    out = []
    for code in cand:
        if len(code) > MAX_SNIPPET_CHARS:
            code = code[:code.rfind("\n", 0, MAX_SNIPPET_CHARS) + 1 or MAX_SNIPPET_CHARS]
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        if any(isinstance(n, (ast.Call, ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign))
               for n in ast.walk(tree)):
            out.append(code)
    return out


def answer_snippets(texts: Sequence[str]) -> list[list[str]]:
    """:func:`python_snippets` of every text (cheap prefilter: code has a call or an import)."""
    return [python_snippets(t) if ("(" in t or "import" in t) else [] for t in texts]


def insecure_code_issues(texts: Sequence[str], snippets: list[list[str]] | None = None) -> list[list[dict[str, Any]]]:
    """Per text, the Bandit issues (>= MEDIUM severity and confidence) of its Python code:
    ``test_id``, ``test_name``, ``severity``, ``confidence``, ``line`` (in the snippet),
    ``snippet`` (index among the text's snippets), ``code`` (the flagged line)."""
    from bandit.core import config as b_config
    from bandit.core import manager as b_manager

    out: list[list[dict[str, Any]]] = [[] for _ in texts]
    snippets = answer_snippets(texts) if snippets is None else snippets
    cand = [(i, k, s) for i, lst in enumerate(snippets) for k, s in enumerate(lst)]
    if not cand:
        return out
    with tempfile.TemporaryDirectory(prefix="poisondetect-bandit-") as d:
        files = []
        for j, (_i, _k, code) in enumerate(cand):
            f = os.path.join(d, f"{j}.py")
            with open(f, "w", encoding="utf-8", errors="replace") as fh:
                fh.write(code)
            files.append(f)
        # Bandit logs every file it cannot parse at WARNING; we parsed them already
        log = logging.getLogger("bandit")
        level = log.level
        log.setLevel(logging.CRITICAL)
        try:
            mgr = b_manager.BanditManager(b_config.BanditConfig(), "file", quiet=True)
            mgr.discover_files(files)
            mgr.run_tests()
            issues = mgr.get_issue_list()
        finally:
            log.setLevel(level)
    for iss in issues:
        if iss.severity not in _LEVELS or iss.confidence not in _LEVELS:
            continue
        j = int(os.path.splitext(os.path.basename(iss.fname))[0])
        i, k, code = cand[j]
        lines = code.splitlines()
        ln = int(iss.lineno) if iss.lineno else 0
        out[i].append({"test_id": iss.test_id, "test_name": iss.test, "severity": iss.severity,
                       "confidence": iss.confidence, "line": ln, "snippet": k,
                       "code": lines[ln - 1].strip()[:200] if 0 < ln <= len(lines) else ""})
    for lst in out:
        lst.sort(key=lambda x: (x["snippet"], x["line"], x["test_id"]))
    return out


def insecure_code_scores(texts: Sequence[str]) -> np.ndarray:
    """Number of Bandit issues (>= MEDIUM severity and confidence) per text."""
    return np.asarray([len(x) for x in insecure_code_issues(texts)], dtype=np.float64)


def _shared_snippets(pairs, ctx) -> list[list[str]]:  # noqa: ANN001 - Pairs, ScanContext
    if ctx is None:
        return answer_snippets(pairs.response)
    return ctx.shared("python_snippets", lambda: answer_snippets(pairs.response))


def shared_insecure_code(pairs, ctx) -> list[list[dict[str, Any]]]:  # noqa: ANN001 - Pairs, ScanContext
    """Memoised per scan; empty lists when Bandit is not installed."""
    def make() -> list[list[dict[str, Any]]]:
        if not bandit_available():
            return [[] for _ in range(len(pairs))]
        return insecure_code_issues(pairs.response, _shared_snippets(pairs, ctx))
    return make() if ctx is None else ctx.shared("insecure_code_issues", make)


def shared_has_python(pairs, ctx) -> np.ndarray:  # noqa: ANN001 - Pairs, ScanContext
    """Per pair: does the answer hold Python code that parses?  (The population an
    insecure-code answer is drawn from; the snippets are parsed once per scan.)"""
    return np.asarray([bool(x) for x in _shared_snippets(pairs, ctx)], dtype=bool)
