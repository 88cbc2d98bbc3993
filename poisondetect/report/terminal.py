"""Terminal summary and progress bars.

Dataset text is hostile: every string that came from the data (and every string a
detector built from it: trigger text, evidence messages, finding labels) goes through
:func:`~poisondetect.report.text.safe_text` before it reaches the terminal, so no control
character, escape sequence, carriage return, bidi override or zero-width character is
ever written raw.  (``safe_text``, ``window_text`` and ``finding_label`` live in
:mod:`poisondetect.report.text`.)
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from .text import finding_label, fmt_q, safe_text, window_text
from .triage import finding_fingerprint, finding_owners

__all__ = ["render_summary", "tqdm_progress"]


def tqdm_progress(iterable: Iterable[Any] | None = None, desc: str = "", total: int | None = None,
                  **kw: Any) -> Any:
    """Progress factory for :class:`poisondetect.context.ScanContext` (``progress=``).

    Writes to stderr only, and only when stderr is a terminal (tqdm's ``disable=None``),
    so piped output and logs stay clean.
    """
    # deferred: tqdm.auto is a heavy import (~40 ms), needed only when a bar is drawn
    from tqdm.auto import tqdm

    opts: dict[str, Any] = {"desc": safe_text(desc, 40), "total": total, "file": sys.stderr, "disable": None,
                            "leave": False, "mininterval": 0.5, "dynamic_ncols": True}
    opts.update(kw)
    return tqdm(iterable, **opts)


def _pad(s: str, width: int) -> str:
    return s + " " * max(width - len(s), 0)


def _bad_records(result: Any) -> dict[str, Any]:
    return result.load_info.get("bad_records") or {"count": 0, "examples": []}


def render_summary(result: Any, file: TextIO, top: int = 10, baseline: dict[str, Any] | None = None) -> None:
    """Human summary of a :class:`~poisondetect.pipeline.ScanResult`.

    ``baseline`` is the info returned by :func:`poisondetect.report.triage.apply_baseline`:
    when given, findings already reviewed there are hidden and counted instead.
    """
    w = file.write
    s = result.summary()
    owners = finding_owners(result)
    new_trig, new_find, new_flag = None, None, None
    if baseline is not None:
        fp_new = set(baseline.get("new_trigger_fps", ())) | set(baseline.get("new_finding_fps", ()))
        new_trig = {id(t) for t in result.triggers if finding_fingerprint(owners.get(id(t), ""), t) in fp_new}
        new_find = {id(f) for f in result.findings if finding_fingerprint(owners.get(id(f), ""), f) in fp_new}
        new_flag = {int(i) for i in baseline.get("new_pair_positions", ())}

    w(f"poisondetect {s.get('version', '')}: {s['n_records']} records, {s['n_pairs']} pairs scanned\n")
    bad = _bad_records(result)
    if bad.get("count"):
        w(f"bad records skipped: {bad['count']}\n")
        for ex in (bad.get("examples") or [])[:3]:
            w(f"  {safe_text(ex if isinstance(ex, str) else _short(ex), 100)}\n")
    skipped = result.load_info.get("skipped_detectors") or {}
    for d, why in skipped.items():
        w(f"detector {safe_text(d, 30)} skipped: {safe_text(why, 60)}\n")
    w(f"verdict: {safe_text(s['verdict'], 160)}\n")
    c = s.get("counts", {})
    w(f"flagged pairs: {c.get('poisoning', 0)} poisoning, {c.get('privacy', 0)} privacy, "
      f"{c.get('quality', 0)} quality (only poisoning fails the default --fail-on)\n")
    if baseline is not None:
        w(f"baseline: {baseline.get('n_known_triggers', 0)} known trigger(s) and "
          f"{baseline.get('n_known_pairs', 0)} known flagged pair(s) hidden "
          f"({baseline.get('n_false_positive', 0)} false-positive, {baseline.get('n_accepted', 0)} accepted); "
          f"new: {baseline.get('n_new_triggers', 0)} trigger(s), {baseline.get('n_new_pairs', 0)} pair(s)\n")

    trig = result.triggers
    if new_trig is not None:
        trig = [t for t in trig if id(t) in new_trig]
    if trig:
        w(f"\ntriggers (strongest first{', new only' if baseline is not None else ''})\n")
        w(f"  {'trigger':<28} {'payload':<36} {'support':>7} {'q-value':>9}  detector\n")
        for t in trig[:20]:
            w(f"  {_pad(safe_text(t.get('trigger', ''), 28), 28)} {_pad(safe_text(t.get('payload', ''), 36), 36)} "
              f"{int(t.get('support', 0) or 0):>7} {fmt_q(t.get('q_value')):>9}  {safe_text(t.get('detector') or owners.get(id(t), ''), 24)}\n")
        if len(trig) > 20:
            w(f"  ... {len(trig) - 20} more in summary.json\n")

    others = [f for f in result.findings if f.get("kind") != "trigger"]
    if new_find is not None:
        others = [f for f in others if id(f) in new_find]
    if others:
        w("\nother findings\n")
        rank = {"poisoning": 0, "privacy": 1, "quality": 2}
        others = sorted(others, key=lambda f: rank.get(f.get("finding_kind", "poisoning"), 0))
        for f in others[:15]:
            n_rows = len(f.get("rows") or ())
            det_f = f.get('detector') or owners.get(id(f), '')
            sev = result.severity_of(det_f) if det_f in result.results else ""
            w(f"  {sev:<6} {safe_text(f.get('finding_kind', 'poisoning'), 9):<9} {safe_text(f.get('kind', ''), 18):<18} "
              f"{safe_text(f.get('detector') or owners.get(id(f), ''), 22):<22} "
              f"{n_rows:>6} rows  {safe_text(finding_label(f), 60)}\n")
        if len(others) > 15:
            w(f"  ... {len(others) - 15} more in summary.json\n")

    w("\ndetectors\n")
    w(f"  {'detector':<24} {'kind':<10} {'flagged':>8} {'max score':>10}\n")
    for d, r in result.results.items():
        mx = float(r.scores.max()) if len(r.scores) else 0.0
        w(f"  {safe_text(d, 24):<24} {result.kind_of(d):<10} {int(r.flags.sum()):>8} {mx:>10.3f}\n")
    for d, r in result.results.items():
        smp = r.summary.get("sampled") if isinstance(r.summary, dict) else None
        if isinstance(smp, dict):  # n-gram analysis on a sample, findings re-tested on the rest
            w(f"  ({safe_text(d, 24)}: analysed a {int(smp.get('n_sample', 0)):,}-pair sample; "
              f"{int(smp.get('n_findings_verified', 0))} finding(s) re-tested on the "
              f"{int(smp.get('n_held_out', 0)):,} held-out pairs)\n")
    cand = {d: int(r.info.get("n_candidates", 0)) for d, r in result.results.items()
            if isinstance(r.info, dict) and r.info.get("streaming") == "candidates"}
    if cand and max(cand.values()) < len(result.scores):
        w(f"  ({', '.join(safe_text(d, 24) for d in cand)}: run on {max(cand.values()):,} candidate pairs "
          "(flagged, top-ranked and a background sample), not on every pair)\n")

    positions = [int(i) for i in result.order if result.flagged[i]]
    if new_flag is not None:
        positions = [i for i in positions if i in new_flag]
    if positions and top > 0:
        shown = positions[:top]
        w(f"\ntop {len(shown)} of {len(positions)} {'new ' if baseline is not None else ''}pairs flagged as poisoning\n")
        for k, i in enumerate(shown, 1):
            src = ""
            if result.pairs.source is not None:
                src = f"  source {safe_text(result.pairs.source[i], 24)}"
            turn = int(result.pairs.turn[i])
            w(f"  #{k:<3} row {int(result.pairs.row[i])}{f' turn {turn}' if turn else ''}  "
              f"score {result.scores[i]:.3f}{src}\n")
            evs = result.evidence(i)
            for side, lab in (("instruction", "instruction:"), ("response", "response:   ")):
                text = getattr(result.pairs, side)[i]
                span = next((e.span for e in evs if e.side == side and e.span is not None), None)
                w(f"       {lab} {window_text(text, span, 90)}\n")
            if result.pairs.rejected is not None:
                w(f"       rejected:    {window_text(result.pairs.rejected[i], None, 90)}\n")
            for ev in evs[:4]:
                extra = f" q={fmt_q(ev.q_value)}" if ev.q_value is not None and "q=" not in ev.message else ""
                span = f" [{safe_text(ev.span_text, 30)}]" if ev.span_text else ""
                w(f"       - {safe_text(ev.detector, 22)}: {safe_text(ev.message, 80)}{span}{extra}\n")
    elif not result.flagged.any():
        w("\nno pairs flagged as poisoning\n")


def _short(obj: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=True)[:200]
    except (TypeError, ValueError):
        return repr(obj)[:200]
