"""``--sarif FILE``: SARIF 2.1.0 for code-scanning dashboards.

One rule per detector (``ruleId`` = the stable detector id; help text; default level from
its severity), one result per trigger and dataset-level alert, and one per flagged pair and
detector (capped at ``max_pair_results``), with the input file as the location, the record
as a logical location and, for line-based inputs (JSONL, CSV), the record's line as the
region.  Severity -> SARIF level: high -> error, medium -> warning, low -> note,
note -> none.  Dataset text only ever appears inside JSON strings.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..detectors.base import registry

LEVEL = {"high": "error", "medium": "warning", "low": "note", "note": "none"}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _short(text: Any, n: int = 160) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _rules(result: Any) -> list[dict[str, Any]]:
    reg = registry()
    out = []
    for d in result.results:
        cls = reg.get(d)
        sev = getattr(cls, "severity", "medium") if result.kind_of(d) == "poisoning" else result.severity_of(d)
        out.append({
            "id": d, "name": "".join(w.capitalize() for w in d.split("_")),
            "shortDescription": {"text": _short(getattr(cls, "description", d) or d, 200)},
            "fullDescription": {"text": getattr(cls, "description", d) or d},
            "help": {"text": f"{d} ({result.kind_of(d)} finding). See `poisondetect detectors` and the README's "
                             "'Three kinds of finding' for how its flags are decided."},
            "defaultConfiguration": {"level": LEVEL[sev]},
            "properties": {"kind": result.kind_of(d), "severity": sev, "tags": [result.kind_of(d)]},
        })
    return out


def _location(uri: str, row: int | None = None, line: int | None = None) -> dict[str, Any]:
    phys: dict[str, Any] = {"artifactLocation": {"uri": uri}}
    if line is not None:
        phys["region"] = {"startLine": int(line)}
    loc: dict[str, Any] = {"physicalLocation": phys}
    if row is not None:
        loc["logicalLocations"] = [{"name": f"record {row}", "kind": "element"}]
    return loc


def build_sarif(result: Any, input_uri: str, lines: dict[int, int] | None = None,
                max_pair_results: int = 5000) -> dict[str, Any]:
    """The SARIF log of a scan as a dict.  ``lines`` maps record index -> 1-based line."""
    rules = _rules(result)
    index = {r["id"]: i for i, r in enumerate(rules)}
    results: list[dict[str, Any]] = []

    def add(rule: str, sev: str, text: str, row: int | None = None, props: dict[str, Any] | None = None,
            fingerprint: str | None = None) -> None:
        line = None if row is None or lines is None else lines.get(int(row))
        r: dict[str, Any] = {"ruleId": rule, "ruleIndex": index.get(rule, 0), "level": LEVEL[sev],
                             "message": {"text": text}, "locations": [_location(input_uri, row, line)],
                             "properties": {"severity": sev, **(props or {})}}
        if fingerprint:
            r["partialFingerprints"] = {"poisondetect/v1": fingerprint}
        results.append(r)

    for t in result.triggers:
        rows = list(t.get("rows") or [])
        det = t.get("detector") or next(iter(result.results), "")
        add(det, "high", f"trigger {_short(t.get('trigger'), 80)!r} -> payload {_short(t.get('payload'), 120)!r} "
                         f"(support {t.get('support')}, q={float(t.get('q_value', 1.0)):.2g})",
            rows[0] if rows else None, {"rows": rows[:200], "q_value": t.get("q_value")},
            fingerprint=f"trigger:{det}:{_short(t.get('trigger'), 200)}")
    for a in result.alerts():
        if a["kind"] == "trigger":
            continue
        what = (f"{a['n_groups']} planted-looking group(s), {a['n_flags']} pairs" if a["kind"] == "group" else
                f"{a['n_flags']} pairs flagged vs {a['expected_clean']:g} expected on clean data "
                f"(q={a['q_value']:.2g})")
        add(a["detector"], a.get("severity", "medium"), f"{a['detector']}: {what}", None,
            {k: v for k, v in a.items() if k in ("n_flags", "expected_clean", "q_value", "p_value")},
            fingerprint=f"alert:{a['detector']}")
    n_pair = 0
    for i in result.order:
        for d, r in result.results.items():
            if not r.flags[i]:
                continue
            if n_pair >= max_pair_results:
                break
            n_pair += 1
            ev = next((e for e in r.evidence.get(int(i), ()) if e.message), None)
            row, turn = int(result.pairs.row[i]), int(result.pairs.turn[i])
            msg = f"record {row}{f' turn {turn}' if turn else ''}: " + (_short(ev.message, 200) if ev else f"flagged by {d}")
            add(d, result.severity_of(d), msg, row,
                {"record": row, "turn": turn, "score": round(float(r.scores[i]), 4), "kind": result.kind_of(d)},
                fingerprint=f"pair:{d}:{row}:{turn}")
    run = {
        "tool": {"driver": {"name": "poisondetect", "version": __version__, "semanticVersion": __version__,
                            "informationUri": "https://github.com/poisondetect/poisondetect", "rules": rules}},
        "artifacts": [{"location": {"uri": input_uri}}],
        "results": results,
        "properties": {"verdict": result.summary_verdict(), "counts": result.counts,
                       "n_pair_results_omitted": max(0, int(sum(r.flags.sum() for r in result.results.values()))
                                                     - n_pair)},
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def record_lines(loaded: Any) -> dict[int, int] | None:
    """Record index -> 1-based line for line-based inputs (JSONL, CSV/TSV), else None."""
    if loaded is None or getattr(loaded, "format", None) not in ("jsonl", "csv", "tsv"):
        return None
    path = getattr(loaded, "path", None)
    spans = getattr(loaded, "_spans", None)
    if not path or spans is None or getattr(loaded, "compression", None):
        return None
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    starts = np.asarray(spans, dtype=np.int64).reshape(-1, 2)[:, 0]
    return {k: int(v) + 1 for k, v in enumerate(np.searchsorted(nl, starts, side="left"))}


def write_sarif(result: Any, path: str | Path, input_uri: str, loaded: Any = None) -> None:
    doc = build_sarif(result, input_uri, record_lines(loaded))
    Path(path).write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
