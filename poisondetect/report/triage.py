"""Triage baselines and scan diffs.

A *baseline* records findings a person has reviewed, as ``false_positive`` or
``accepted``, keyed by a stable **fingerprint** that does not depend on row numbers, so
it survives dataset edits (rows added, removed, reordered):

- trigger findings: sha256 of (detector id, normalised trigger text);
- other dataset-level findings: sha256 of (detector id, kind, normalised key/label);
- flagged pairs: one fingerprint per flagging detector, sha256 of (detector id,
  normalised instruction, normalised response).  A pair is "known" only when every
  detector that flags it has been reviewed: a new detector flagging it makes it new.

Normalisation is Unicode NFC plus whitespace collapsing; case and invisible characters
are kept (a zero-width trigger must not collapse into the empty string).

Everything here is pure (dicts in, dicts out) except the explicit load/save helpers.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError
from .text import finding_label

BASELINE_FORMAT = "poisondetect-baseline"
BASELINE_VERSION = 1
STATUSES = ("false_positive", "accepted")


# ---- fingerprints -------------------------------------------------------------------
def normalise(text: Any) -> str:
    return " ".join(unicodedata.normalize("NFC", str(text or "")).split())


def _sha(parts: Iterable[str]) -> str:
    return hashlib.sha256(json.dumps(list(parts), ensure_ascii=False).encode("utf-8")).hexdigest()


def pair_key(instruction: str, response: str) -> str:
    """Detector-independent identity of a pair's text (matches pairs across scans)."""
    return _sha(["pair", normalise(instruction), normalise(response)])


def pair_fingerprint(detector: str, instruction: str, response: str) -> str:
    return _sha(["pair-flag", str(detector), normalise(instruction), normalise(response)])


def finding_fingerprint(detector: str, finding: dict[str, Any]) -> str:
    det = str(finding.get("detector") or detector or "")
    kind = str(finding.get("kind", ""))
    if kind == "trigger":
        return _sha(["trigger", det, normalise(finding.get("trigger", ""))])
    key = finding.get("key")
    if key is None:
        for k in ("label", "payload", "source", "trigger", "description", "message", "name", "id"):
            if finding.get(k):
                key = finding[k]
                break
    return _sha(["finding", det, kind, normalise(json.dumps(key, sort_keys=True, ensure_ascii=False)
                                                if not isinstance(key, str) else key)])


def finding_owners(result: Any) -> dict[int, str]:
    """Map ``id(finding_dict)`` -> id of the detector that produced it."""
    return {id(f): d for d, r in result.results.items() for f in r.findings}


def result_items(result: Any) -> dict[str, list[dict[str, Any]]]:
    """Every reviewable item of a scan, with fingerprints.

    ``triggers`` / ``findings``: ``{"fingerprint", "detector", "finding"}``;
    ``pairs`` (flagged only, by rank): ``{"position", "pair_key", "fingerprints": {det: fp}}``.
    """
    owners = finding_owners(result)
    trig = [{"fingerprint": finding_fingerprint(owners.get(id(t), ""), t),
             "detector": t.get("detector") or owners.get(id(t), ""), "finding": t} for t in result.triggers]
    other = [{"fingerprint": finding_fingerprint(owners.get(id(f), ""), f),
              "detector": f.get("detector") or owners.get(id(f), ""), "finding": f}
             for f in result.findings if f.get("kind") != "trigger"]
    pairs = []
    for i in result.order:
        i = int(i)
        if not result.flagged[i]:
            continue
        ins, resp = result.pairs.instruction[i], result.pairs.response[i]
        fps = {d: pair_fingerprint(d, ins, resp) for d, r in result.results.items() if r.flags[i]}
        pairs.append({"position": i, "pair_key": pair_key(ins, resp), "fingerprints": fps})
    return {"triggers": trig, "findings": other, "pairs": pairs}


# ---- baseline files -----------------------------------------------------------------
def empty_baseline() -> dict[str, Any]:
    return {"format": BASELINE_FORMAT, "version": BASELINE_VERSION, "entries": {}}


def load_baseline(path: str | os.PathLike) -> dict[str, Any]:
    """Read a baseline file (a missing file is an empty baseline)."""
    p = Path(path)
    if not p.exists():
        return empty_baseline()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"not a poisondetect baseline (invalid JSON: {e})", path=str(p)) from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT or not isinstance(data.get("entries"), dict):
        raise InputError("not a poisondetect baseline file (missing format/entries)", path=str(p))
    if int(data.get("version", 0)) > BASELINE_VERSION:
        raise InputError(f"baseline version {data.get('version')} is newer than this tool understands", path=str(p))
    return data


def save_baseline(baseline: dict[str, Any], path: str | os.PathLike) -> None:
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(baseline, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, p)


def mark(baseline: dict[str, Any], fingerprint: str, status: str, *, kind: str, detector: str = "",
         label: str = "", note: str = "", when: str | None = None) -> dict[str, Any]:
    """Return a copy of ``baseline`` with one entry recorded (or updated)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    out = {**baseline, "entries": dict(baseline.get("entries", {}))}
    out["entries"][fingerprint] = {
        "status": status, "kind": kind, "detector": detector, "label": str(label)[:200],
        "note": note, "reviewed_at": when or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return out


# ---- applying a baseline to a scan -----------------------------------------------------
def apply_baseline(result: Any, baseline: dict[str, Any]) -> dict[str, Any]:
    """Split a scan's findings into new and already-reviewed ones.  Pure: reads only.

    Returns a JSON-serialisable dict: ``new_trigger_fps``/``new_finding_fps`` (sets as
    lists), ``new_pair_positions`` / ``known_pair_positions`` (pair positions, by rank),
    ``fp_pair_positions`` (known pairs every flag of which was marked false-positive),
    counts ``n_new_*`` / ``n_known_*``, ``n_false_positive`` / ``n_accepted`` among the
    matched entries, and ``n_stale_entries`` (baseline entries this scan no longer hits).
    """
    entries = baseline.get("entries", {}) if baseline else {}
    items = result_items(result)
    matched: set[str] = set()

    def split(lst: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
        new, known = [], []
        for it in lst:
            (known if it["fingerprint"] in entries else new).append(it["fingerprint"])
        return new, known

    new_t, known_t = split(items["triggers"])
    new_f, known_f = split(items["findings"])
    matched.update(known_t)
    matched.update(known_f)
    new_p, known_p, fp_p = [], [], []
    for it in items["pairs"]:
        fps = list(it["fingerprints"].values())
        hit = [fp for fp in fps if fp in entries]
        matched.update(hit)
        known = bool(fps) and len(hit) == len(fps)
        (known_p if known else new_p).append(it["position"])
        if known and all(entries[fp].get("status") == "false_positive" for fp in hit):
            fp_p.append(it["position"])
    statuses = [entries[fp].get("status") for fp in matched]
    return {
        "baseline_entries": len(entries),
        "new_trigger_fps": new_t, "known_trigger_fps": known_t,
        "new_finding_fps": new_f, "known_finding_fps": known_f,
        "new_pair_positions": new_p, "known_pair_positions": known_p, "fp_pair_positions": fp_p,
        "n_new_triggers": len(new_t), "n_known_triggers": len(known_t),
        "n_new_findings": len(new_f), "n_known_findings": len(known_f),
        "n_new_pairs": len(new_p), "n_known_pairs": len(known_p),
        "n_false_positive": sum(s == "false_positive" for s in statuses),
        "n_accepted": sum(s == "accepted" for s in statuses),
        "n_stale_entries": len(set(entries) - matched),
    }


# ---- scan output directories ---------------------------------------------------------
def load_scan_dir(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``summary.json`` and ``findings.jsonl`` of a scan output directory."""
    d = Path(path)
    sp = d / "summary.json"
    if not sp.is_file():
        raise InputError("not a poisondetect output directory (no summary.json)", path=str(d))
    try:
        summary = json.loads(sp.read_text(encoding="utf-8"))
    except ValueError as e:
        raise InputError(f"invalid JSON: {e}", path=str(sp)) from None
    pairs: list[dict[str, Any]] = []
    fp = d / "findings.jsonl"
    if fp.is_file():
        with open(fp, encoding="utf-8") as f:
            for ln, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    pairs.append(json.loads(line))
                except ValueError as e:
                    raise InputError(f"invalid JSON: {e}", path=str(fp), line=ln) from None
    for rec in pairs:
        _fill_pair_keys(rec)
    for t in summary.get("triggers", []):
        t.setdefault("fingerprint", finding_fingerprint(t.get("detector", ""), {**t, "kind": "trigger"}))
    for f in summary.get("findings", []):
        f.setdefault("fingerprint", finding_fingerprint(f.get("detector", ""), f))
    return {"path": str(d), "summary": summary, "pairs": pairs}


def _fill_pair_keys(rec: dict[str, Any]) -> None:
    ins, resp = rec.get("instruction", ""), rec.get("response", "")
    rec.setdefault("pair_key", pair_key(ins, resp))
    if "fingerprints" not in rec:
        dets = rec.get("flagged_by") or sorted(rec.get("detectors", {}))
        rec["fingerprints"] = {d: pair_fingerprint(d, ins, resp) for d in dets}


def dir_items(scan: dict[str, Any]) -> list[dict[str, Any]]:
    """Reviewable items of a loaded scan directory, as triage lists them."""
    items = []
    for t in scan["summary"].get("triggers", []):
        items.append({"id": t["fingerprint"], "kind": "trigger", "detector": t.get("detector", ""),
                      "fingerprints": {t.get("detector", ""): t["fingerprint"]},
                      "label": f"{t.get('trigger', '')} -> {t.get('payload', '')}", "record": t})
    for f in scan["summary"].get("findings", []):
        items.append({"id": f["fingerprint"], "kind": str(f.get("kind", "finding")), "detector": f.get("detector", ""),
                      "fingerprints": {f.get("detector", ""): f["fingerprint"]}, "label": finding_label(f), "record": f})
    for p in scan["pairs"]:
        items.append({"id": p["pair_key"], "kind": "pair", "detector": ",".join(sorted(p["fingerprints"])),
                      "fingerprints": p["fingerprints"],
                      "label": f"row {p.get('row')}: {p.get('instruction', '')}", "record": p})
    return items


def item_status(item: dict[str, Any], baseline: dict[str, Any]) -> str:
    entries = baseline.get("entries", {})
    st = [entries[fp]["status"] for fp in item["fingerprints"].values() if fp in entries]
    if not st or len(st) < len(item["fingerprints"]):
        return "new"
    return st[0] if len(set(st)) == 1 else "mixed"


def mark_item(baseline: dict[str, Any], item: dict[str, Any], status: str, note: str = "",
              when: str | None = None) -> dict[str, Any]:
    for det, fp in item["fingerprints"].items():
        baseline = mark(baseline, fp, status, kind=item["kind"], detector=det, label=item["label"], note=note,
                        when=when)
    return baseline


# ---- diff of two scans -------------------------------------------------------------------
def diff_summaries(old: dict[str, Any], new: dict[str, Any], min_score_change: float = 0.01) -> dict[str, Any]:
    """What changed between two scans.  Pure.

    ``old``/``new`` are :func:`load_scan_dir` dicts (``{"summary", "pairs"}``) or bare
    ``summary.json`` dicts (then pair-level changes are empty).  Pairs are matched by
    their text (:func:`pair_key`), not by row, so dataset edits do not confuse the diff.
    """
    so, sn = old.get("summary", old), new.get("summary", new)
    po = {p.get("pair_key") or pair_key(p.get("instruction", ""), p.get("response", "")): p
          for p in old.get("pairs", [])}
    pn = {p.get("pair_key") or pair_key(p.get("instruction", ""), p.get("response", "")): p
          for p in new.get("pairs", [])}

    def tfp(t: dict[str, Any]) -> str:
        return t.get("fingerprint") or finding_fingerprint(t.get("detector", ""), {**t, "kind": "trigger"})

    to = {tfp(t): t for t in so.get("triggers", [])}
    tn = {tfp(t): t for t in sn.get("triggers", [])}

    def ffp(f: dict[str, Any]) -> str:
        return f.get("fingerprint") or finding_fingerprint(f.get("detector", ""), f)

    fo = {ffp(f): f for f in so.get("findings", [])}
    fn = {ffp(f): f for f in sn.get("findings", [])}

    def brief(p: dict[str, Any]) -> dict[str, Any]:
        return {"pair_key": p.get("pair_key"), "row": p.get("row"), "score": p.get("score"),
                "detectors": sorted(p.get("detectors", {})), "instruction": p.get("instruction", ""),
                "response": p.get("response", "")}

    changes = []
    for k in sorted(set(po) & set(pn)):
        a, b = float(po[k].get("score", 0.0)), float(pn[k].get("score", 0.0))
        if abs(b - a) >= min_score_change:
            changes.append({"pair_key": k, "row_old": po[k].get("row"), "row_new": pn[k].get("row"),
                            "old": a, "new": b, "delta": b - a, "instruction": pn[k].get("instruction", "")})
    changes.sort(key=lambda c: (-abs(c["delta"]), str(c["pair_key"])))
    dets = sorted(set(so.get("detectors", {})) | set(sn.get("detectors", {})))
    out = {
        "verdict": {"old": so.get("verdict"), "new": sn.get("verdict")},
        "n_pairs": {"old": so.get("n_pairs"), "new": sn.get("n_pairs")},
        "n_flagged": {"old": so.get("n_flagged"), "new": sn.get("n_flagged")},
        "new_triggers": [tn[k] for k in tn if k not in to],
        "resolved_triggers": [to[k] for k in to if k not in tn],
        "new_findings": [fn[k] for k in fn if k not in fo],
        "resolved_findings": [fo[k] for k in fo if k not in fn],
        "new_flagged": [brief(pn[k]) for k in pn if k not in po],
        "removed_flagged": [brief(po[k]) for k in po if k not in pn],
        "score_changes": changes,
        "detectors": {d: {"old": (so.get("detectors", {}).get(d) or {}).get("n_flagged"),
                          "new": (sn.get("detectors", {}).get(d) or {}).get("n_flagged")} for d in dets},
    }
    out["changed"] = bool(out["new_triggers"] or out["resolved_triggers"] or out["new_findings"]
                          or out["resolved_findings"] or out["new_flagged"] or out["removed_flagged"]
                          or out["score_changes"] or out["verdict"]["old"] != out["verdict"]["new"])
    return out
