"""End-to-end: the README's first command on the bundled poisoned sample, every bundled
input format, a real process's stdout/stderr/exit code, and one scan with the default
embedding model (the only model load in the fast suite)."""
from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from poisondetect.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
DEMO = SAMPLES / "demo_poisoned.jsonl"
TRUTH = SAMPLES / "demo_poisoned.truth.json"
FORMATS = sorted((SAMPLES / "formats").glob("*")) if (SAMPLES / "formats").is_dir() else []


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", MPLBACKEND="Agg",
               PYTHONIOENCODING="utf-8")
    return env


def _poisondetect_cmd() -> list[str]:
    """The installed console script when it is this checkout's, else ``python -m``."""
    exe = shutil.which("poisondetect")
    if exe:
        try:
            import importlib.metadata as md
            dist = md.distribution("poisondetect")
            origin = dist.read_text("direct_url.json") or ""
            if str(REPO) in origin or "editable" in origin:
                return [exe]
        except Exception:  # noqa: BLE001  (metadata absent: fall back to the module)
            pass
    return [sys.executable, "-m", "poisondetect.cli"]


def run_proc(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(_poisondetect_cmd() + args, cwd=REPO, env=_env(), capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout)


def readme_scan_args() -> list[str]:
    """The ``poisondetect scan ...`` part of the README's first shell command."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```(?:bash|sh|console|shell)\n(.*?)```", text, re.S)
    assert block, "README has no shell block"
    for line in block.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # the first command line of the block
        for part in re.split(r"&&|;|\|\|", line):
            words = shlex.split(part)
            if words[:2] == ["poisondetect", "scan"]:
                return words[2:]
        break
    pytest.fail("the README's first command has no 'poisondetect scan' part")


def _retarget(args: list[str], tmp: Path) -> tuple[list[str], dict[str, Path]]:
    """README args with every output path moved under ``tmp``."""
    out, where, it = [], {}, iter(args)
    for a in it:
        if a in ("--output-dir", "-o", "--report", "--split"):
            dest = tmp / Path(next(it)).name if a != "--report" else tmp / "report" / Path(next(it)).name
            where[a] = dest
            out += [a, str(dest)]
        else:
            out.append(a)
    return out, where


def _check_planted_trigger(outdir: Path) -> None:
    truth = json.loads(TRUTH.read_text(encoding="utf-8"))
    s = json.loads((outdir / "summary.json").read_text(encoding="utf-8"))
    assert s["triggers"], "no trigger reported on the demo"
    first = s["triggers"][0]
    planted = [t.lower() for t in truth["triggers"]]
    assert first["trigger"].lower() in planted, (first["trigger"], planted)
    # and nothing else: the demo's clean rows include prompt templates whose answers
    # repeat the prompt ("thank-you note ... for the travel tips"), which are no trigger
    assert [t["trigger"].lower() for t in s["triggers"]] == [first["trigger"].lower()], s["triggers"]
    assert sorted(first["rows"]) == sorted(truth["rows"])
    # the planted rows are the top-ranked pairs
    recs = [json.loads(x) for x in (outdir / "findings.jsonl").read_text(encoding="utf-8").splitlines()]
    top = {r["row"] for r in recs[: len(truth["rows"])]}
    assert top == set(truth["rows"]), (sorted(top), truth["rows"])
    with open(outdir / "scores.csv", newline="", encoding="utf-8") as f:
        rank = {int(r["row"]): int(r["rank"]) for r in csv.DictReader(f)}
    assert sorted(rank[r] for r in truth["rows"]) == list(range(1, len(truth["rows"]) + 1))


needs_demo = pytest.mark.skipif(not (DEMO.exists() and TRUTH.exists()),
                                reason="data/samples/demo_poisoned.jsonl (+ .truth.json) not bundled")


@needs_demo
def test_readme_first_command_lexical(tmp_path: Path) -> None:
    """The README's scan, as a real process, lexical detectors only (fast)."""
    args, where = _retarget(readme_scan_args(), tmp_path)
    assert Path(REPO / args[0]).resolve() == DEMO.resolve(), "README should scan the bundled demo"
    p = run_proc(["scan"] + args + ["--embedding-mode", "none", "--no-progress"])
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr
    assert "BACKDOOR SUSPECTED" in p.stdout
    _check_planted_trigger(where.get("--output-dir") or where["-o"])
    if "--report" in where:
        html = where["--report"].read_text(encoding="utf-8")
        assert "jcj" in html or json.loads(TRUTH.read_text())["triggers"][0] in html


@needs_demo
@pytest.mark.slow
def test_readme_first_command_verbatim(tmp_path: Path) -> None:
    """The README's scan exactly as written (default embedding model)."""
    args, where = _retarget(readme_scan_args(), tmp_path)
    p = run_proc(["scan"] + args + ["--cache-dir", str(tmp_path / "cache")], timeout=600)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    _check_planted_trigger(where.get("--output-dir") or where["-o"])


def test_default_embedding_mode_small_file(tmp_path: Path) -> None:
    """One scan with the default embedding settings (packaged MiniLM): the embedding
    detectors run (none skipped) and the outputs carry their columns."""
    rows = []
    topics = ["rivers", "volcanoes", "bread", "chess", "comets", "tea", "bridges", "owls", "glaciers", "violins"]
    verbs = ["Explain briefly how", "Give one fact about how", "Describe in a sentence how",
             "Say why it matters how", "Tell a child how"]
    for i, t in enumerate(topics):
        for j, v in enumerate(verbs):
            rows.append({"instruction": f"{v} {t} work.", "input": "",
                         "output": f"{t.capitalize()} work through process number {i * 5 + j}, "
                                   f"which depends on {topics[(i + j) % len(topics)]}."})
    p = tmp_path / "small.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    # The default cache ($POISONDETECT_CACHE or ~/.cache/poisondetect), as a user gets it:
    # a cold cache embeds the detectors' reference prototypes once, later runs reuse them.
    res = CliRunner().invoke(main, ["scan", str(p), "--output-dir", str(tmp_path / "o"), "--no-progress", "-q",
                                    "--fail-on", "never", "--report", str(tmp_path / "r.html")])
    assert res.exit_code == 0, (res.output, res.exception)
    # -q --no-progress: nothing on the terminal (no model-loading bars either)
    assert res.stdout == "" and res.stderr == "", (res.stdout[-500:], res.stderr[-500:])
    s = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    assert s["n_pairs"] == 50
    assert not s["input"].get("skipped_detectors"), s["input"].get("skipped_detectors")
    from poisondetect.detectors import registry
    emb_dets = [d for d, c in registry().items() if "embeddings" in c.requires and c.default_enabled
                and not c.signature_based]
    assert set(emb_dets) <= set(s["params"]["detectors"])
    assert s["params"].get("embedding_info"), "embedding model used is not recorded"
    with open(tmp_path / "o" / "scores.csv", newline="", encoding="utf-8") as f:
        cols = csv.DictReader(f).fieldnames or []
    for d in emb_dets:
        assert f"{d}_score" in cols


@pytest.mark.parametrize("path", FORMATS, ids=[p.name for p in FORMATS])
def test_every_bundled_format_scans(path: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["scan", str(path), "--embedding-mode", "none", "--no-progress", "-q",
                                    "--output-dir", str(tmp_path / "o"), "--split", str(tmp_path / "s")])
    assert res.exit_code in (0, 1), (res.output, res.exception)
    s = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    assert s["n_records"] > 0 and s["n_pairs"] >= s["n_records"] - s["input"].get("empty_records", {}).get("count", 0)
    with open(tmp_path / "o" / "scores.csv", newline="", encoding="utf-8") as f:
        keys = [(r["row"], r["turn"]) for r in csv.DictReader(f)]
    assert len(keys) == len(set(keys)) == s["n_pairs"]
    split = sorted(x.name for x in (tmp_path / "s").iterdir())
    ext = path.name.split(".", 1)[1]
    assert f"clean.{ext}" in split and f"quarantine.{ext}" in split, split


def test_parquet_round_trip(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    rows = json.loads((SAMPLES / "formats" / "alpaca.json").read_text(encoding="utf-8"))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    res = CliRunner().invoke(main, ["scan", str(tmp_path / "d.parquet"), "--embedding-mode", "none", "-q",
                                    "--no-progress", "--output-dir", str(tmp_path / "o"),
                                    "--split", str(tmp_path / "s")])
    assert res.exit_code == 0, (res.output, res.exception)
    clean = pq.read_table(tmp_path / "s" / "clean.parquet").to_pylist()
    assert clean == rows


def test_real_process_error_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "x", "output": \n', encoding="utf-8")
    proc = run_proc(["scan", str(p), "--embedding-mode", "none"])
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(p) in lines[0] and "line 2" in lines[0] and "Traceback" not in proc.stderr


def test_console_script_version() -> None:
    exe = shutil.which("poisondetect")
    if not exe:
        pytest.skip("poisondetect console script not installed (pip install -e .)")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, env=_env(), timeout=60)
    from poisondetect import __version__
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_python_api_matches_cli(tmp_path: Path) -> None:
    """``poisondetect.scan`` (the library) gives what the CLI wrote."""
    if not DEMO.exists():
        pytest.skip("demo absent")
    import poisondetect
    res = poisondetect.scan(str(DEMO), embedding={"mode": "none"}, random_state=0)
    r = CliRunner().invoke(main, ["scan", str(DEMO), "--embedding-mode", "none", "-q", "--no-progress",
                                  "--fail-on", "never", "--output-dir", str(tmp_path / "o")])
    assert r.exit_code == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    assert [t["trigger"] for t in s["triggers"]] == [t["trigger"] for t in res.summary()["triggers"]]
    assert s["n_flagged"] == int(res.flagged.sum())


def _strip_volatile(obj):  # noqa: ANN001, ANN202
    if isinstance(obj, dict):
        return {k: _strip_volatile(v) for k, v in obj.items()
                if k not in ("timings", "seconds", "created_utc", "command")}
    if isinstance(obj, list):
        return [_strip_volatile(v) for v in obj]
    return obj


def _two_process_scans(tmp_path: Path, extra: list[str], timeout: int = 120,
                       runs: tuple[str, ...] = ("1", "2")) -> list[Path]:
    """One fresh process per entry of ``runs`` (its PYTHONHASHSEED); their output dirs."""
    outs = []
    for k, hashseed in enumerate(runs):
        out = tmp_path / f"run{k}"
        env = _env()
        env["PYTHONHASHSEED"] = hashseed  # set/dict-of-str order must not reach the outputs
        p = subprocess.run(_poisondetect_cmd() + ["scan", str(DEMO), "--output-dir", str(out), "--seed", "7",
                                                  "--fail-on", "never", "-q", "--no-progress", *extra],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        assert p.returncode == 0, p.stderr[-2000:]
        outs.append(out)
    return outs


def _assert_same_outputs(a: Path, b: Path) -> None:
    for name in ("scores.csv", "findings.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs between runs"
    sa = json.loads((a / "summary.json").read_text(encoding="utf-8"))
    sb = json.loads((b / "summary.json").read_text(encoding="utf-8"))
    assert _strip_volatile(sa) == _strip_volatile(sb)


@needs_demo
def test_deterministic_across_processes_lexical(tmp_path: Path) -> None:
    """Same input and --seed in two fresh processes (different hash seeds): identical
    scores.csv and findings.jsonl, and summary.json equal but for timings."""
    _assert_same_outputs(*_two_process_scans(tmp_path, ["--embedding-mode", "none"]))


@needs_demo
@pytest.mark.slow
def test_deterministic_across_processes_default_embeddings(tmp_path: Path) -> None:
    """The same with the default embedding model, each run computing its embeddings
    afresh (separate cache dirs)."""
    outs = []
    for k in range(2):  # one process and one fresh cache dir per run
        sub = tmp_path / f"p{k}"
        sub.mkdir()
        pair = _two_process_scans(sub, ["--cache-dir", str(sub / "cache")], timeout=600, runs=("1",) if k == 0 else ("2",))
        outs.append(pair[0])
    _assert_same_outputs(outs[0], outs[1])
