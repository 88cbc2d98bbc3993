"""The command line's user-facing contract, through click's CliRunner (in-process, fast).

Every scan here uses ``--embedding-mode none`` (lexical detectors only, no model load);
the one default-embedding run lives in tests/test_e2e.py.  What is checked: the output
files and their schema, exit codes (0 clean / 1 findings at --fail-on / 2 usage or input
error, one line on stderr, never a traceback), --skip-bad accounting, determinism, and
that hostile dataset text never reaches the terminal raw.
"""
from __future__ import annotations

import csv
import json
import os
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner

from poisondetect import __version__
from poisondetect.cli import main
from poisondetect.detectors import registry

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "samples" / "demo_poisoned.jsonl"
ALPACA = REPO / "data" / "samples" / "formats" / "alpaca.json"
FAST = ["--embedding-mode", "none", "--no-progress"]


def cli(*args: str | os.PathLike) -> "Result":  # noqa: F821
    # color=True: click.echo would otherwise strip ANSI sequences itself and hide a raw
    # escape that a real terminal would receive.
    runner = CliRunner()
    return runner.invoke(main, [str(a) for a in args], color=True, catch_exceptions=True)


def unsafe_chars(text: str) -> list[str]:
    """Code points a terminal must never receive raw from dataset text."""
    bad = []
    for ch in text:
        if ch in "\n":
            continue
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            bad.append(f"U+{ord(ch):04X}")
    return sorted(set(bad))


def assert_usage_error(res, *needles: str) -> None:  # noqa: ANN001
    """Exit 2, a message on stderr, no traceback; ``needles`` appear in the message."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    # SystemExit(2) is the only exception allowed through
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    err = res.stderr
    assert err.strip(), "no message on stderr"
    assert "Traceback" not in err and "Traceback" not in res.stdout
    for n in needles:
        assert n in err, (n, err)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def read_scores(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rd = csv.DictReader(f)
        return list(rd.fieldnames or []), list(rd)


# ---------------------------------------------------------------------------------------
# one lexical scan of the bundled demo, shared by the schema tests
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_scan(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not DEMO.exists():
        pytest.skip("data/samples/demo_poisoned.jsonl absent")
    out = tmp_path_factory.mktemp("demo_scan")
    res = cli("scan", DEMO, "--output-dir", out / "o", "--report", out / "r.html", "--split", out / "s",
              "--fail-on", "never", *FAST)
    assert res.exit_code == 0, (res.output, res.exception)
    n_lines = sum(1 for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip())
    return {"res": res, "dir": out / "o", "report": out / "r.html", "split": out / "s", "n": n_lines}


def test_scan_writes_the_four_output_files(demo_scan: dict) -> None:
    d = demo_scan["dir"]
    for name in ("scores.csv", "summary.json", "findings.jsonl", "manifest.json"):
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    assert "outputs written to" in demo_scan["res"].stdout


def test_scores_csv_one_row_per_pair(demo_scan: dict) -> None:
    cols, rows = read_scores(demo_scan["dir"] / "scores.csv")
    summary = json.loads((demo_scan["dir"] / "summary.json").read_text(encoding="utf-8"))
    assert cols[:2] == ["row", "turn"] and {"score", "rank", "flagged"} <= set(cols)
    ran = summary["params"]["detectors"]
    assert ran, "no detector ran"
    for det in ran:
        assert f"{det}_score" in cols, det
    # single-turn demo: one pair per input record, every row exactly once, input order
    assert len(rows) == demo_scan["n"] == summary["n_pairs"]
    assert [int(r["row"]) for r in rows] == list(range(demo_scan["n"]))
    # rank is a permutation of 1..n, consistent with score (higher score never ranks lower)
    ranks = sorted(int(r["rank"]) for r in rows)
    assert ranks == list(range(1, len(rows) + 1))
    by_rank = sorted(rows, key=lambda r: int(r["rank"]))
    scores = [float(r["score"]) for r in by_rank]
    assert scores == sorted(scores, reverse=True)
    for r in rows:
        for c in ["score"] + [f"{d}_score" for d in ran]:
            v = float(r[c])
            assert 0.0 <= v <= 1.0, (c, r[c])
            assert not r[c].startswith("-"), f"negative zero written as {r[c]!r} in column {c}"
    assert sum(int(r["flagged"]) for r in rows) == summary["n_flagged"]


def test_summary_json_schema(demo_scan: dict) -> None:
    s = json.loads((demo_scan["dir"] / "summary.json").read_text(encoding="utf-8"))
    assert s["n_records"] == demo_scan["n"]
    assert isinstance(s["triggers"], list) and s["triggers"], "demo has a planted trigger"
    for t in s["triggers"]:
        for k in ("trigger", "q_value", "support", "payload", "rows"):
            assert k in t, (k, t)
        assert 0.0 <= t["q_value"] <= 1.0
        assert t["support"] >= 1 and len(t["rows"]) >= 1
        assert all(isinstance(r, int) and 0 <= r < s["n_records"] for r in t["rows"])
    q = [t["q_value"] for t in s["triggers"]]
    assert q == sorted(q), "triggers must be listed strongest (smallest q) first"
    assert set(s["detectors"]) == set(s["params"]["detectors"])
    for det, ds in s["detectors"].items():
        assert "n_flagged" in ds and "params" in ds, det
    assert s["bad_records"]["count"] == 0
    assert "timings" in s


def test_findings_jsonl_ranked_flagged_pairs_with_evidence(demo_scan: dict) -> None:
    s = json.loads((demo_scan["dir"] / "summary.json").read_text(encoding="utf-8"))
    lines = (demo_scan["dir"] / "findings.jsonl").read_text(encoding="utf-8").splitlines()
    recs = [json.loads(x) for x in lines]
    assert len(recs) == s["n_flagged"] > 0
    ranks = [r["rank"] for r in recs]
    assert ranks == sorted(ranks), "findings.jsonl must be most suspicious first"
    demo_rows = [json.loads(x) for x in DEMO.read_text(encoding="utf-8").splitlines() if x.strip()]
    for r in recs:
        assert r["flagged"] is True
        assert r["evidence"], r["row"]
        for ev in r["evidence"]:
            assert ev["detector"] and ev["message"]
        # the text is the record's own text
        src = demo_rows[r["row"]]
        assert src["instruction"] in r["instruction"]
        assert r["response"] == src["output"]


def test_report_and_split(demo_scan: dict) -> None:
    html = demo_scan["report"].read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html.lower()
    split = demo_scan["split"]
    clean = sorted(split.glob("clean.*"))
    quarantine = sorted(split.glob("quarantine.*"))
    assert [p.name for p in clean] == ["clean.jsonl"] and [p.name for p in quarantine] == ["quarantine.jsonl"]
    n_clean = len(clean[0].read_text(encoding="utf-8").splitlines())
    q_lines = quarantine[0].read_text(encoding="utf-8").splitlines()
    assert n_clean + len(q_lines) == demo_scan["n"]
    s = json.loads((demo_scan["dir"] / "summary.json").read_text(encoding="utf-8"))
    assert len(q_lines) == len({r for r in _flagged_rows(demo_scan["dir"])})
    # split files keep the input's bytes: every quarantined line is an input line
    demo_lines = set(DEMO.read_text(encoding="utf-8").splitlines())
    assert set(q_lines) <= demo_lines
    assert s["n_flagged"] >= len(q_lines)


def _flagged_rows(d: Path) -> list[int]:
    return [json.loads(x)["row"] for x in (d / "findings.jsonl").read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------------------
# exit codes
# ---------------------------------------------------------------------------------------
def test_fail_on_modes(demo_scan: dict, tmp_path: Path) -> None:
    _, rows = read_scores(demo_scan["dir"] / "scores.csv")
    top = max(float(r["score"]) for r in rows)
    assert cli("scan", DEMO, *FAST, "-q", "--fail-on", "never").exit_code == 0
    assert cli("scan", DEMO, *FAST, "-q").exit_code == 1  # default: flagged
    assert cli("scan", DEMO, *FAST, "-q", "--fail-on", "flagged").exit_code == 1
    assert cli("scan", DEMO, *FAST, "-q", "--fail-on", "trigger").exit_code == 1
    # numeric threshold on the fused score (scores.csv is rounded to 6 decimals)
    assert cli("scan", DEMO, *FAST, "-q", "--fail-on", f"{max(top - 1e-3, 0):.6f}").exit_code == 1
    if top < 0.999:
        assert cli("scan", DEMO, *FAST, "-q", "--fail-on", "0.9999").exit_code == 0


def test_clean_file_exits_zero(tmp_path: Path) -> None:
    res = cli("scan", ALPACA, *FAST, "--output-dir", tmp_path / "o")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    assert s["n_flagged"] == 0 and s["triggers"] == [] and s["n_records"] == 5
    assert (tmp_path / "o" / "findings.jsonl").read_text(encoding="utf-8") == ""
    assert cli("scan", ALPACA, *FAST, "-q", "--fail-on", "trigger").exit_code == 0


def test_missing_file_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    res = cli("scan", missing, *FAST)
    assert_usage_error(res, str(missing))
    assert len(res.stderr.strip().splitlines()) == 1


def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"instruction": "a", "output": "b"}\n'
                 '{"instruction": "c", "output": "d"}\n'
                 '{"instruction": "x", "output": \n'
                 '{"instruction": "e", "output": "f"}\n', encoding="utf-8")
    res = cli("scan", p, *FAST, "--output-dir", tmp_path / "o")
    assert_usage_error(res, str(p), "line 3")
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "json" in res.stderr.lower()
    assert not (tmp_path / "o" / "summary.json").exists()


def test_skip_bad_counts_and_reports(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    good = [{"instruction": f"Name a colour number {i}.", "output": f"Colour {i} is blue."} for i in range(6)]
    lines = [json.dumps(g) for g in good]
    lines.insert(2, '{"instruction": "x", "output": ')
    lines.insert(5, "[1, 2")
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = cli("scan", p, *FAST, "--skip-bad", "--output-dir", tmp_path / "o", "--fail-on", "never")
    assert res.exit_code == 0, (res.output, res.exception)
    s = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    assert s["bad_records"]["count"] == 2
    assert s["n_pairs"] == 6
    assert s["bad_records"]["examples"], "bad records must be listed"
    assert "bad records skipped: 2" in res.stdout
    assert "line 3" in res.stdout or '"line": 3' in res.stdout
    _, rows = read_scores(tmp_path / "o" / "scores.csv")
    assert len(rows) == 6


@pytest.mark.parametrize("args, needle", [
    (["--detectors", "no_such_detector"], "no_such_detector"),
    (["--disable", "no_such_detector"], "no_such_detector"),
    (["--param", "alpha"], "alpha"),
    (["--param", "ngram_trigger.alpha"], "ngram_trigger.alpha"),
    (["--param", "ngram_trigger.no_such_param=1"], "no_such_param"),
    (["--param", "no_such_detector.alpha=0.1"], "no_such_detector"),
    (["--param", "ngram_trigger.alpha=abc"], "alpha"),
    (["--param", "ngram_trigger.min_support=2.5"], "min_support"),
    (["--redact"], "--split"),
    (["--fail-on", "sometimes"], "fail-on"),
    (["--fail-on", "1.5"], "fail-on"),
    (["--embedding-mode", "bogus"], "embedding-mode"),
    (["--ray-gpus", "1"], "--engine ray"),
    (["--engine", "local", "--ray-address", "auto"], "--engine ray"),
    (["--engine", "local", "--split", "x"], "--engine memory"),
])
def test_bad_options_exit_2(args: list[str], needle: str) -> None:
    res = cli("scan", ALPACA, "--embedding-mode", "none", "--no-progress", *args) \
        if "--embedding-mode" not in args else cli("scan", ALPACA, "--no-progress", *args)
    assert_usage_error(res, needle)


def test_unwritable_output_dir_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x", encoding="utf-8")
    for opt, target in (("--output-dir", blocker / "sub"), ("--report", blocker / "sub" / "r.html"),
                        ("--split", blocker / "sub")):
        res = cli("scan", ALPACA, *FAST, opt, target)
        assert_usage_error(res, str(blocker))
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_good_param_is_applied(tmp_path: Path) -> None:
    res = cli("scan", ALPACA, *FAST, "-q", "--output-dir", tmp_path / "o",
              "--param", "ngram_trigger.min_support=7", "--param", "ngram_trigger.alpha=0.01")
    assert res.exit_code == 0, (res.output, res.exception)
    s = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    assert s["detectors"]["ngram_trigger"]["params"]["min_support"] == 7
    assert s["detectors"]["ngram_trigger"]["params"]["alpha"] == 0.01


def test_detectors_and_disable_select_what_runs(tmp_path: Path) -> None:
    res = cli("scan", ALPACA, *FAST, "-q", "--output-dir", tmp_path / "a", "--detectors", "structural_unicode")
    assert res.exit_code == 0
    cols, _ = read_scores(tmp_path / "a" / "scores.csv")
    assert [c for c in cols if c.endswith("_score")] == ["structural_unicode_score"]
    res = cli("scan", ALPACA, *FAST, "-q", "--output-dir", tmp_path / "b", "--disable", "ngram_trigger")
    assert res.exit_code == 0
    cols, _ = read_scores(tmp_path / "b" / "scores.csv")
    assert "ngram_trigger_score" not in cols and "structural_unicode_score" in cols


def test_streamed_engine_two_workers_equals_memory(demo_scan: dict, tmp_path: Path) -> None:
    """--engine local --jobs 2 (chunks of 100, two worker processes, global detectors on
    candidates) writes the same outputs schema and finds the same trigger as the
    in-memory scan; with the lexical detectors alone the scores are equal."""
    out = tmp_path / "lo"
    res = cli("scan", DEMO, *FAST, "-q", "--engine", "local", "--jobs", "2", "--chunk-size", "100",
              "--fail-on", "never", "--output-dir", out)
    assert res.exit_code == 0, (res.output, res.exception)
    mem = tmp_path / "mem"
    res = cli("scan", DEMO, *FAST, "-q", "--fail-on", "never", "--output-dir", mem)
    assert res.exit_code == 0, (res.output, res.exception)
    a = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    b = json.loads((mem / "summary.json").read_text(encoding="utf-8"))
    assert [t["trigger"] for t in a["triggers"]] == [t["trigger"] for t in b["triggers"]] != []
    assert a["n_records"] == b["n_records"]
    _, ra = read_scores(out / "scores.csv")
    _, rb = read_scores(mem / "scores.csv")
    assert [(r["row"], r["score"]) for r in ra] == [(r["row"], r["score"]) for r in rb]


def test_quiet_prints_nothing(tmp_path: Path) -> None:
    res = cli("scan", DEMO if DEMO.exists() else ALPACA, *FAST, "-q", "--fail-on", "never")
    assert res.exit_code == 0
    assert res.stdout == ""


# ---------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------
def _strip_timing(obj):  # noqa: ANN001, ANN202
    if isinstance(obj, dict):
        return {k: _strip_timing(v) for k, v in obj.items() if k not in ("timings", "created_utc", "command")}
    if isinstance(obj, list):
        return [_strip_timing(v) for v in obj]
    return obj


def test_same_seed_same_outputs(demo_scan: dict, tmp_path: Path) -> None:
    a = demo_scan["dir"]
    res = cli("scan", DEMO, "--output-dir", tmp_path / "b", "--fail-on", "never", "--seed", "0", *FAST)
    assert res.exit_code == 0
    b = tmp_path / "b"
    for name in ("scores.csv", "findings.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    sa = json.loads((a / "summary.json").read_text(encoding="utf-8"))
    sb = json.loads((b / "summary.json").read_text(encoding="utf-8"))
    assert _strip_timing(sa) == _strip_timing(sb)
    # and the terminal summary (minus the output-dir line) too
    strip = lambda s: [x for x in s.splitlines() if x.strip() and not x.startswith("outputs written")]  # noqa: E731
    c = cli("scan", DEMO, "--fail-on", "never", "--seed", "0", *FAST)
    assert strip(c.stdout) == strip(demo_scan["res"].stdout)


# ---------------------------------------------------------------------------------------
# hostile text
# ---------------------------------------------------------------------------------------
HOSTILE = [
    "\x1b[2J\x1b[H", "\x1b]0;owned\x07", "\x1b[31mRED\x1b[0m", "line\roverwrite", "\u202eevil\u202c",
    "\u2066iso\u2069", "zero\u200bwidth", "\x9b31m", "tag\U000E0041", "nul\x00byte", "back\bspace",
    "para\u2029sep",
]


def test_hostile_text_never_reaches_terminal_raw(tmp_path: Path) -> None:
    rows = []
    for i in range(40):
        h = HOSTILE[i % len(HOSTILE)]
        # every row also carries a bidi override, so every row is flagged and printed
        rows.append({"instruction": f"{h} Tell me fact {i} about \u202e{h} rivers.",
                     "output": f"Fact {i}: {h} rivers flow <script>alert({i})</script> downhill."})
    p = write_jsonl(tmp_path / "hostile.jsonl", rows)
    res = cli("scan", p, *FAST, "--top", "40", "--report", tmp_path / "r.html", "--output-dir", tmp_path / "o")
    assert res.exit_code in (0, 1), (res.output, res.exception)
    shown = [int(m) for m in __import__("re").findall(r"#\d+\s+row (\d+)", res.stdout)]
    assert set(range(len(HOSTILE))) <= set(shown), f"hostile rows not all printed: {sorted(shown)}"
    assert unsafe_chars(res.stdout) == [], unsafe_chars(res.stdout)
    # shown, not dropped: an escape is made visible
    assert "U+001B" in res.stdout or "\\x1b" in res.stdout
    assert unsafe_chars(res.stderr) == []
    # the HTML report escapes the text
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script>alert(" not in html
    assert "\x1b" not in html
    # machine outputs keep the text exactly (escaped JSON)
    # split on "\n" only: JSON strings may hold U+2028/U+2029/U+0085 raw, which str.splitlines() cuts at
    text = (tmp_path / "o" / "findings.jsonl").read_text(encoding="utf-8")
    recs = [json.loads(x) for x in text.split("\n") if x]
    by_row = {r["row"]: r for r in recs}
    assert by_row[0]["instruction"] == rows[0]["instruction"]


def test_hostile_error_message_is_escaped(tmp_path: Path) -> None:
    p = tmp_path / "evil\x1b[31m\u202ename.jsonl"
    p.write_text('{"instruction": "a", "output": "b"}\n{"instruction": \n', encoding="utf-8")
    res = cli("scan", p, *FAST)
    assert_usage_error(res, "line 2")
    assert unsafe_chars(res.stderr) == [], res.stderr
    q = tmp_path / "fields.jsonl"
    q.write_text(json.dumps({"\x1b[31mfoo\u202e": "x", "bar\r": "y"}) + "\n", encoding="utf-8")
    res = cli("scan", q, *FAST)
    assert_usage_error(res, str(q))
    assert unsafe_chars(res.stderr) == [], res.stderr


# ---------------------------------------------------------------------------------------
# other commands
# ---------------------------------------------------------------------------------------
def test_detectors_lists_every_registered_detector() -> None:
    res = cli("detectors")
    assert res.exit_code == 0
    listed = [line.split()[0] for line in res.stdout.splitlines() if line.strip()]
    assert listed == list(registry()), (listed, list(registry()))
    for det_id, cls in registry().items():
        assert cls.description, f"{det_id} has no description"


def test_version() -> None:
    res = cli("--version")
    assert res.exit_code == 0
    assert __version__ in res.stdout and "poisondetect" in res.stdout


def test_help_lists_subcommands() -> None:
    res = cli("--help")
    assert res.exit_code == 0
    assert "scan" in res.stdout and "detectors" in res.stdout
