"""``poisondetect triage`` and ``poisondetect diff`` (added to the main CLI group).

    poisondetect triage OUT_DIR --baseline triage.json              # list, with status
    poisondetect triage OUT_DIR --baseline triage.json --fp 3f2a9c81 --accept 77be01d2
    poisondetect triage OUT_DIR --baseline triage.json --all-fp     # everything new is FP
    poisondetect triage OUT_DIR --baseline triage.json --interactive
    poisondetect scan data.jsonl -o OUT2 --baseline triage.json     # only new findings
    poisondetect diff OUT_DIR OUT2                                  # what changed

Exit codes: 0 ok; 1 (diff with ``--fail-on-new``) new triggers or flagged pairs;
2 usage/input error (one line on stderr).
"""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..errors import PoisonDetectError
from .text import finding_label, safe_text
from .triage import (
    diff_summaries,
    dir_items,
    item_status,
    load_baseline,
    load_scan_dir,
    mark_item,
    save_baseline,
)


def _fail(msg: str) -> None:
    click.echo(f"poisondetect: error: {safe_text(msg, 300)}", err=True)
    sys.exit(2)


def _resolve(prefixes: tuple[str, ...], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for pre in prefixes:
        pre = pre.strip().lower()
        if len(pre) < 6:
            raise click.BadParameter(f"{pre!r}: give at least 6 characters of an id")
        hits = [it for it in items if it["id"].startswith(pre)]
        if not hits:
            raise click.BadParameter(f"no finding with id {pre!r} in this scan")
        if len({h["id"] for h in hits}) > 1:
            raise click.BadParameter(f"id prefix {pre!r} is ambiguous; give more characters")
        out.append(hits[0])
    return out


def _print_items(items: list[dict[str, Any]], baseline: dict[str, Any]) -> None:
    if not items:
        click.echo("no findings in this scan")
        return
    click.echo(f"{'id':<12}  {'status':<14} {'kind':<16} {'detector':<24} finding")
    for it in items:
        click.echo(f"{it['id'][:12]:<12}  {item_status(it, baseline):<14} {safe_text(it['kind'], 16):<16} "
                   f"{safe_text(it['detector'], 24):<24} {safe_text(it['label'], 70)}")


@click.command("triage")
@click.argument("scan_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--baseline", "baseline_path", required=True, type=click.Path(dir_okay=False),
              help="Baseline JSON file to read and update (created if missing).")
@click.option("--fp", "fps", multiple=True, metavar="ID", help="Mark this finding a false positive (repeatable).")
@click.option("--accept", "accepts", multiple=True, metavar="ID",
              help="Mark this finding reviewed and accepted (repeatable).")
@click.option("--all-fp", is_flag=True, help="Mark every not-yet-reviewed finding a false positive.")
@click.option("--all-accepted", is_flag=True, help="Mark every not-yet-reviewed finding accepted.")
@click.option("-i", "--interactive", is_flag=True, help="Review the new findings one by one.")
@click.option("--note", default="", help="Note stored with the marked entries.")
def triage(scan_dir: str, baseline_path: str, fps: tuple[str, ...], accepts: tuple[str, ...], all_fp: bool,
           all_accepted: bool, interactive: bool, note: str) -> None:
    """Record reviewed findings of the scan in SCAN_DIR (a `scan -o` folder) in a baseline.

    Without marking options, lists the findings with their ids and review status.  Later
    scans run with `--baseline FILE` report only findings that are not in it.  Entries are
    keyed by text fingerprints, not row numbers, so they survive dataset edits.
    """
    if all_fp and all_accepted:
        raise click.UsageError("--all-fp and --all-accepted exclude each other")
    try:
        scan = load_scan_dir(scan_dir)
        baseline = load_baseline(baseline_path)
    except PoisonDetectError as e:
        _fail(str(e))
    items = dir_items(scan)
    marks: list[tuple[dict[str, Any], str]] = []
    marks += [(it, "false_positive") for it in _resolve(fps, items)]
    marks += [(it, "accepted") for it in _resolve(accepts, items)]
    if all_fp or all_accepted:
        status = "false_positive" if all_fp else "accepted"
        marks += [(it, status) for it in items if item_status(it, baseline) == "new"]
    if interactive:
        for it in items:
            if item_status(it, baseline) != "new" or any(m[0] is it for m in marks):
                continue
            click.echo(f"\n[{it['id'][:12]}] {safe_text(it['kind'], 16)} by {safe_text(it['detector'], 40)}")
            click.echo(f"  {safe_text(it['label'], 200)}")
            rec = it["record"]
            if it["kind"] == "pair":
                click.echo(f"  response: {safe_text(rec.get('response', ''), 200)}")
                for ev in rec.get("evidence", [])[:3]:
                    click.echo(f"  - {safe_text(ev.get('detector', ''), 24)}: {safe_text(ev.get('message', ''), 100)}")
            choice = click.prompt("  [f]alse positive / [a]ccept / [s]kip / [q]uit",
                                  type=click.Choice(["f", "a", "s", "q"]), default="s", show_choices=False)
            if choice == "q":
                break
            if choice in "fa":
                marks.append((it, "false_positive" if choice == "f" else "accepted"))
    if not marks:
        _print_items(items, baseline)
        return
    for it, status in marks:
        baseline = mark_item(baseline, it, status, note=note)
    try:
        save_baseline(baseline, baseline_path)
    except OSError as e:
        _fail(f"{baseline_path}: {e.strerror or e}")
    n_fp = sum(s == "false_positive" for _, s in marks)
    click.echo(f"recorded {len(marks)} finding(s) in {safe_text(baseline_path, 200)} "
               f"({n_fp} false-positive, {len(marks) - n_fp} accepted); "
               f"{len(baseline['entries'])} entries in the baseline")


def _fmt_change(d: dict[str, Any]) -> list[str]:
    lines = []
    v = d["verdict"]
    if v["old"] != v["new"]:
        lines.append(f"verdict: {safe_text(v['old'], 80)}  ->  {safe_text(v['new'], 80)}")
    else:
        lines.append(f"verdict unchanged: {safe_text(v['new'], 80)}")
    lines.append(f"pairs: {d['n_pairs']['old']} -> {d['n_pairs']['new']}; "
                 f"flagged: {d['n_flagged']['old']} -> {d['n_flagged']['new']}")
    for key, title in (("new_triggers", "new triggers"), ("resolved_triggers", "resolved triggers")):
        if d[key]:
            lines.append(f"{title} ({len(d[key])}):")
            for t in d[key][:20]:
                lines.append(f"  {safe_text(t.get('trigger', ''), 30)} -> {safe_text(t.get('payload', ''), 40)} "
                             f"(support {t.get('support', '-')}, {safe_text(t.get('detector', ''), 24)})")
    for key, title in (("new_findings", "new findings"), ("resolved_findings", "resolved findings")):
        if d[key]:
            lines.append(f"{title} ({len(d[key])}):")
            for f in d[key][:20]:
                lines.append(f"  {safe_text(f.get('kind', ''), 20)} {safe_text(finding_label(f), 70)}")
    for key, title in (("new_flagged", "newly flagged pairs"),
                       ("removed_flagged", "pairs no longer flagged (or no longer in the data)")):
        if d[key]:
            lines.append(f"{title} ({len(d[key])}):")
            for p in d[key][:20]:
                lines.append(f"  row {p.get('row')} score {float(p.get('score') or 0):.3f} "
                             f"[{safe_text(','.join(p.get('detectors', [])), 40)}] {safe_text(p.get('instruction', ''), 60)}")
            if len(d[key]) > 20:
                lines.append(f"  ... {len(d[key]) - 20} more")
    if d["score_changes"]:
        lines.append(f"score changes on pairs flagged in both ({len(d['score_changes'])}):")
        for c in d["score_changes"][:20]:
            lines.append(f"  row {c['row_old']}->{c['row_new']} {c['old']:.3f} -> {c['new']:.3f} "
                         f"({c['delta']:+.3f}) {safe_text(c.get('instruction', ''), 50)}")
    det_lines = [f"  {safe_text(k, 24)}: {v['old']} -> {v['new']}" for k, v in d["detectors"].items()
                 if v["old"] != v["new"]]
    if det_lines:
        lines.append("flags per detector:")
        lines.extend(det_lines)
    if not d["changed"]:
        lines.append("no changes in findings")
    return lines


@click.command("diff")
@click.argument("old_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("new_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
@click.option("--min-score-change", type=float, default=0.01, show_default=True,
              help="Smallest score change reported for pairs flagged in both scans.")
@click.option("--fail-on-new", is_flag=True, help="Exit 1 when the new scan has new triggers or flagged pairs.")
def diff(old_dir: str, new_dir: str, as_json: bool, min_score_change: float, fail_on_new: bool) -> None:
    """Say what changed between two scan output folders (OLD_DIR, NEW_DIR)."""
    try:
        d = diff_summaries(load_scan_dir(old_dir), load_scan_dir(new_dir), min_score_change=min_score_change)
    except PoisonDetectError as e:
        _fail(str(e))
    if as_json:
        # ensure_ascii: dataset text is written as \uXXXX escapes, never raw control bytes
        click.echo(json.dumps(d, indent=2, ensure_ascii=True))
    else:
        for line in _fmt_change(d):
            click.echo(line)
    if fail_on_new and (d["new_triggers"] or d["new_flagged"] or d["new_findings"]):
        sys.exit(1)
