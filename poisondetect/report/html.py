"""Self-contained HTML report (one file, works offline).

Dataset text is hostile.  Safety rests on three layers:

1. jinja2 with ``autoescape=True``: every value from the data is HTML-escaped;
2. highlighting never inserts markup into text: texts are split into segments
   (plain / trigger / payload / invisible character) in Python and the template wraps
   each *escaped* segment in a fixed tag;
3. a strict Content-Security-Policy meta tag (no scripts, no external anything, images
   only from ``data:`` URIs) as defence in depth.

Plots are matplotlib PNGs embedded as base64 ``data:`` URIs.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import json
import os
import unicodedata
from pathlib import Path
from typing import Any

from . import plots as P
from .text import UNSAFE_CATEGORIES, finding_label, fmt_q
from .triage import result_items

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")

_SIDE_CLASS = {"instruction": "trigger", "response": "payload"}


def _env() -> Any:
    # deferred: jinja2 is needed only to render, not to build the context
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt_q"] = fmt_q
    env.filters["fmt_f"] = lambda v, d=3: "-" if v is None else f"{float(v):.{d}f}"
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False, default=repr)
    env.globals["visible"] = visible_segments
    return env


# ---- text segmentation -------------------------------------------------------------
def _split_invisible(text: str, cls: str) -> list[dict[str, Any]]:
    """Split one run of text so invisible/control characters become their own
    segments (shown as a visible U+XXXX badge instead of hidden or interpreted)."""
    out: list[dict[str, Any]] = []
    buf: list[str] = []
    for ch in text:
        if ch not in "\n\t" and unicodedata.category(ch) in UNSAFE_CATEGORIES:
            if buf:
                out.append({"text": "".join(buf), "cls": cls, "inv": False, "gap": 0})
                buf = []
            out.append({"text": f"U+{ord(ch):04X}", "cls": cls, "inv": True, "gap": 0})
        else:
            buf.append(ch)
    if buf:
        out.append({"text": "".join(buf), "cls": cls, "inv": False, "gap": 0})
    return out


def visible_segments(text: Any, limit: int = 300) -> list[dict[str, Any]]:
    """Segments of a short text (table cells): invisible characters made visible."""
    text = "" if text is None else str(text)
    segs = _split_invisible(text[:limit], "")
    if len(text) > limit:
        segs.append({"text": "", "cls": "", "inv": False, "gap": len(text) - limit})
    return segs


def highlight_segments(text: str, spans: list[tuple[int, int, str]], limit: int = 2500,
                       context: int = 160) -> list[dict[str, Any]]:
    """Split ``text`` into segments, marking character ranges ``[start, end)`` with a CSS
    class (``trigger``/``payload``).  Invalid spans are ignored.  Texts longer than
    ``limit`` are shown as their head plus a window around every span; skipped stretches
    become ``gap`` segments.  No markup is ever produced here: the template escapes
    each segment's text."""
    n = len(text)
    good = []
    for s in spans:
        try:
            a, b, c = int(s[0]), int(s[1]), str(s[2])
        except (TypeError, ValueError, IndexError):
            continue
        a, b = max(a, 0), min(b, n)
        if a < b:
            good.append((a, b, c))
    if n <= limit:
        windows = [(0, n)]
    else:
        ws = [(0, limit)] + [(max(a - context, 0), min(b + context, n)) for a, b, _ in good]
        ws.sort()
        windows = []
        for a, b in ws:
            if windows and a <= windows[-1][1]:
                windows[-1] = (windows[-1][0], max(windows[-1][1], b))
            else:
                windows.append((a, b))
    cuts = {0, n}
    for a, b, _ in good:
        cuts.update((a, b))
    for a, b in windows:
        cuts.update((a, b))
    cuts_sorted = sorted(cuts)
    segs: list[dict[str, Any]] = []
    prev_end = 0
    for a, b in itertools.pairwise(cuts_sorted):
        if not any(wa <= a and b <= wb for wa, wb in windows):
            continue
        if a > prev_end:
            segs.append({"text": "", "cls": "", "inv": False, "gap": a - prev_end})
        classes = sorted({c for sa, sb, c in good if sa <= a and b <= sb})
        segs.extend(_split_invisible(text[a:b], " ".join(classes)))
        prev_end = b
    if prev_end < n:
        segs.append({"text": "", "cls": "", "inv": False, "gap": n - prev_end})
    return segs


# ---- view model ----------------------------------------------------------------------
def _pair_view(result: Any, i: int) -> dict[str, Any]:
    ev = result.evidence(i)
    spans: dict[str, list[tuple[int, int, str]]] = {"instruction": [], "response": []}
    for e in ev:
        if e.side in spans and e.span is not None:
            spans[e.side].append((e.span[0], e.span[1], _SIDE_CLASS[e.side]))
    by_det: dict[str, list[Any]] = {}
    for e in ev:
        by_det.setdefault(e.detector, []).append(e)
    return {
        "position": i,
        "rank": int(result.rank[i]),
        "row": int(result.pairs.row[i]),
        "turn": int(result.pairs.turn[i]),
        "source": None if result.pairs.source is None else result.pairs.source[i],
        "score": float(result.scores[i]),
        "detectors": {d: float(r.scores[i]) for d, r in result.results.items() if r.scores[i] > 0 or r.flags[i]},
        "flagged_by": [d for d, r in result.results.items() if r.flags[i]],
        "kinds": {d: result.kind_of(d) for d in result.results},
        "instruction": highlight_segments(result.pairs.instruction[i], spans["instruction"]),
        "response": highlight_segments(result.pairs.response[i], spans["response"]),
        "rejected": (None if result.pairs.rejected is None
                     else highlight_segments(result.pairs.rejected[i], [])),
        "evidence": by_det,
    }


def _verdict_class(result: Any) -> str:
    if result.triggers:
        return "bad"
    if result.flagged.any():
        return "warn"
    if result.flags_of("privacy").any():
        return "note"
    return "ok"


def build_context(result: Any, settings: dict[str, Any] | None = None, baseline: dict[str, Any] | None = None,
                  top: int = 50, title: str | None = None, plots: bool = True) -> dict[str, Any]:
    """Everything the template needs (plain data; testable without rendering)."""
    items = result_items(result)
    summary = result.summary()
    new_fps = None
    if baseline is not None:
        new_fps = set(baseline.get("new_trigger_fps", ())) | set(baseline.get("new_finding_fps", ()))
    triggers = []
    for t, it in zip(result.triggers, items["triggers"]):
        if new_fps is not None and it["fingerprint"] not in new_fps:
            continue
        triggers.append({**{k: t.get(k) for k in ("trigger", "payload", "support", "q_value", "p_value")},
                         "detector": it["detector"], "rows": list(t.get("rows") or [])[:8],
                         "n_rows": len(t.get("rows") or []), "fingerprint": it["fingerprint"][:12]})
    findings = []
    for it in items["findings"]:
        if new_fps is not None and it["fingerprint"] not in new_fps:
            continue
        f = it["finding"]
        findings.append({"kind": f.get("kind", ""), "finding_kind": f.get("finding_kind", "poisoning"),
                         "severity": result.severity_of(it["detector"]) if it["detector"] in result.results else "",
                         "detector": it["detector"], "label": finding_label(f),
                         "n_rows": len(f.get("rows") or []), "rows": list(f.get("rows") or [])[:8],
                         "q_value": f.get("q_value"), "fingerprint": it["fingerprint"][:12]})
    positions = [it["position"] for it in items["pairs"]]
    if baseline is not None:
        new_pos = {int(i) for i in baseline.get("new_pair_positions", ())}
        positions = [i for i in positions if i in new_pos]
    shown = [_pair_view(result, i) for i in positions[:top]]
    plot_data = P.all_plots(result) if plots else {"scores": None, "embedding": None, "embedding_note": "",
                                                   "sources": None, "detectors": None}
    _, thr_label = P.score_threshold(result)
    input_info = {k: v for k, v in result.load_info.items() if k != "bad_records"}
    bad = result.load_info.get("bad_records") or {"count": 0, "examples": []}
    scan_settings = {
        "params": result.params,
        "detector_params": {d: r.info.get("params", {}) for d, r in result.results.items()},
        "input": input_info,
    }
    if settings:
        scan_settings["options"] = settings
    return {
        "title": title or "poisondetect report",
        "csp": CSP,
        "version": summary.get("version", ""),
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "input_name": str(input_info.get("path") or input_info.get("source") or input_info.get("name") or ""),
        "verdict": summary["verdict"],
        "verdict_class": _verdict_class(result),
        "n_records": summary["n_records"], "n_pairs": summary["n_pairs"], "n_flagged": summary["n_flagged"],
        "counts": summary["counts"],
        "n_triggers": len(result.triggers),
        "bad": bad,
        "skipped": result.load_info.get("skipped_detectors") or {},
        "baseline": baseline,
        "triggers": triggers,
        "findings": findings,
        "pairs": shown,
        "n_pairs_listed": len(positions),
        "top": top,
        "plots": plot_data,
        "threshold_label": thr_label,
        "sources": P.source_rates(result)[:20],
        "detectors": [{**c, "summary": result.results[c["detector"]].summary}
                      for c in P.detector_contributions(result)],
        "settings": scan_settings,
        "timings": {k: round(float(v), 3) for k, v in result.timings.items()},
        "findings_hash": result.findings_hash(),
    }


def render_html_string(result: Any, settings: dict[str, Any] | None = None, baseline: dict[str, Any] | None = None,
                       top: int = 50, title: str | None = None, plots: bool = True) -> str:
    ctx = build_context(result, settings=settings, baseline=baseline, top=top, title=title, plots=plots)
    return _env().get_template("report.html.j2").render(**ctx)


def render_html(result: Any, path: str | os.PathLike, settings: dict[str, Any] | None = None,
                baseline: dict[str, Any] | None = None, top: int = 50, title: str | None = None,
                plots: bool = True) -> str:
    """Write the HTML report of ``result`` to ``path``; returns the path.

    ``settings``: extra scan options to show (e.g. the CLI's); ``baseline``: the info from
    :func:`poisondetect.report.triage.apply_baseline` (then only new findings are listed);
    ``top``: flagged pairs shown in full.
    """
    html = render_html_string(result, settings=settings, baseline=baseline, top=top, title=title, plots=plots)
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(html, encoding="utf-8")
    return str(p)


__all__ = ["CSP", "build_context", "highlight_segments", "render_html", "render_html_string", "visible_segments"]
