"""Report plots: matplotlib (Agg backend, no display), returned as base64 PNG strings
so the HTML report stays one self-contained file.  Only reads a ScanResult."""
from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from .text import finding_label, safe_text

_FLAG = "#c0392b"
_OK = "#7f8c8d"
_CLUSTER_COLOURS = ["#2471a3", "#d68910", "#7d3c98", "#17a589", "#b03a2e", "#2e4053", "#a04000", "#1e8449"]


def _plt() -> Any:
    # deferred: matplotlib is a heavy import (and picks a backend), needed only to draw
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plain(text: str, limit: int = 40) -> str:
    """Label text for matplotlib: printable, short, and with '$' escaped (mathtext)."""
    return safe_text(text, limit).replace("$", r"\$")


def score_threshold(result: Any) -> tuple[float | None, str]:
    """The fused-score line drawn on the distribution: an explicit threshold from the scan
    parameters when there is one, else the lowest fused score among flagged pairs."""
    for key in ("threshold", "score_threshold", "fail_threshold"):
        v = result.params.get(key)
        if isinstance(v, (int, float)):
            return float(v), f"threshold {float(v):.3g}"
    if result.flagged.any():
        v = float(result.scores[result.flagged].min())
        return v, f"lowest flagged score {v:.3g}"
    return None, ""


def plot_score_distribution(result: Any) -> str | None:
    if result.n_pairs == 0:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    bins = np.linspace(0.0, 1.0, 41)
    s = np.clip(result.scores, 0, 1)
    ax.hist(s[~result.flagged], bins=bins, color=_OK, label=f"not flagged ({int((~result.flagged).sum())})")
    if result.flagged.any():
        ax.hist(s[result.flagged], bins=bins, color=_FLAG, alpha=0.85, label=f"flagged ({int(result.flagged.sum())})")
    thr, label = score_threshold(result)
    if thr is not None:
        ax.axvline(thr, color="black", linestyle="--", linewidth=1, label=label)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("fused suspicion score")
    ax.set_ylabel("pairs")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, frameon=False, loc="upper center")
    ax.set_title("Score distribution", fontsize=10)
    return _png(fig)


def embedding_2d(result: Any) -> tuple[np.ndarray | None, str]:
    """2-D coordinates of the pairs: ``result.embeddings_2d`` when the scan carried one,
    else PCA of the response (then instruction) embeddings when the result carries them.
    Returns (coords or None, a note on where they came from / why absent)."""
    xy = getattr(result, "embeddings_2d", None)
    if xy is not None:
        xy = np.asarray(xy, dtype=float)
        if xy.ndim == 2 and xy.shape == (result.n_pairs, 2):
            return xy, "2-D projection provided by the scan"
    emb = getattr(result, "embeddings", None)
    cand = None
    side = ""
    if isinstance(emb, dict):
        for side in ("response", "instruction", "pair"):
            if emb.get(side) is not None:
                cand = emb[side]
                break
    elif emb is not None:
        cand, side = emb, "pair"
    if cand is None:
        return None, "no embeddings in this scan (embedding mode 'none' or not kept), so no map"
    x = np.asarray(cand, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != result.n_pairs or x.shape[0] < 3:
        return None, "embeddings unusable for a map (shape mismatch or too few pairs)"
    x = x - x.mean(axis=0)
    # PCA by SVD; fix the sign of each component so the picture is deterministic.
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    xy = x @ comps.T
    if xy.shape[1] < 2:
        xy = np.column_stack([xy, np.zeros(len(xy))])
    return xy, f"PCA of the {side} embeddings"


def cluster_findings(result: Any) -> list[dict[str, Any]]:
    """Dataset-level findings that name a group of rows sharing a payload."""
    return [f for f in result.findings
            if f.get("kind") != "trigger" and ("cluster" in str(f.get("kind", "")) or "payload" in str(f.get("kind", "")))
            and f.get("rows")]


def plot_embedding_map(result: Any, max_points: int = 20000) -> tuple[str | None, str]:
    xy, note = embedding_2d(result)
    if xy is None:
        return None, note
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    n = len(xy)
    idx = np.arange(n)
    if n > max_points:  # deterministic subsample of the unflagged background
        rng = np.random.default_rng(0)
        keep = np.zeros(n, dtype=bool)
        keep[rng.choice(n, max_points, replace=False)] = True
        keep |= result.flagged
        idx = idx[keep]
        note += f"; {max_points} of {n} unflagged pairs drawn"
    bg = idx[~result.flagged[idx]]
    ax.scatter(xy[bg, 0], xy[bg, 1], s=4, c="#bdc3c7", linewidths=0, label="pairs")
    row_pos: dict[int, list[int]] = {}
    for i, r in enumerate(result.pairs.row):
        row_pos.setdefault(int(r), []).append(i)
    for k, f in enumerate(cluster_findings(result)[: len(_CLUSTER_COLOURS)]):
        pos = [p for r in f["rows"] for p in row_pos.get(int(r), ())]
        if pos:
            ax.scatter(xy[pos, 0], xy[pos, 1], s=26, facecolors="none", edgecolors=_CLUSTER_COLOURS[k],
                       linewidths=1.2, label=f"cluster: {_plain(finding_label(f), 30)} ({len(pos)})")
    fl = idx[result.flagged[idx]]
    if len(fl):
        ax.scatter(xy[fl, 0], xy[fl, 1], s=12, c=_FLAG, marker="x", linewidths=1, label=f"flagged ({len(fl)})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"Embedding map ({_plain(note, 60)})", fontsize=9)
    ax.legend(fontsize=7, frameon=True, framealpha=0.85, loc="best")
    return _png(fig), note


def source_rates(result: Any) -> list[dict[str, Any]]:
    """Per-source pair counts and flag rates, highest rate first (empty without sources)."""
    if result.pairs.source is None:
        return []
    names, inv = np.unique(np.asarray(result.pairs.source, dtype=str), return_inverse=True)
    n_by = np.bincount(inv, minlength=len(names))
    f_by = np.bincount(inv, weights=result.flagged.astype(float), minlength=len(names))
    out = [{"source": str(s), "n": int(n), "flagged": int(k), "rate": float(k) / n if n else 0.0}
           for s, n, k in zip(names, n_by, f_by)]
    out.sort(key=lambda d: (-d["rate"], -d["flagged"], d["source"]))
    return out


def plot_source_rates(result: Any, top: int = 20) -> str | None:
    rates = source_rates(result)
    if not rates:
        return None
    rates = rates[:top]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(rates) + 1.0))
    labels = [f"{_plain(r['source'], 30)} (n={r['n']})" for r in rates][::-1]
    vals = [r["rate"] for r in rates][::-1]
    ax.barh(range(len(rates)), vals, color=[_FLAG if v > 0 else _OK for v in vals])
    ax.set_yticks(range(len(rates)))
    ax.set_yticklabels(labels, fontsize=7)
    overall = float(result.flagged.mean()) if result.n_pairs else 0.0
    ax.axvline(overall, color="black", linestyle="--", linewidth=1, label=f"overall {overall:.2%}")
    ax.set_xlabel("share of pairs flagged")
    ax.set_xlim(0, max(max(vals) * 1.1, 0.01))
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"Flag rate per source (top {len(rates)})", fontsize=10)
    return _png(fig)


def detector_contributions(result: Any) -> list[dict[str, Any]]:
    """Per detector: pairs it flags, pairs only it flags, and its mean score on flagged pairs."""
    out = []
    if not result.results:
        return out
    flags = np.stack([r.flags for r in result.results.values()]) if result.n_pairs else None
    n_by = flags.sum(axis=0) if flags is not None else None
    for k, (d, r) in enumerate(result.results.items()):
        nf = int(r.flags.sum())
        only = int((r.flags & (n_by == 1)).sum()) if n_by is not None else 0
        mean_fl = float(r.scores[result.flagged].mean()) if result.flagged.any() else 0.0
        out.append({"detector": d, "flagged": nf, "only": only, "mean_score_flagged": mean_fl,
                    "max_score": float(r.scores.max()) if result.n_pairs else 0.0})
    return out


def plot_detector_contributions(result: Any) -> str | None:
    rows = detector_contributions(result)
    if not rows or result.n_pairs == 0:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(rows) + 1.0))
    y = np.arange(len(rows))
    ax.barh(y, [r["flagged"] for r in rows], color="#e6b0aa", label="flags (shared with others)")
    ax.barh(y, [r["only"] for r in rows], color=_FLAG, label="flags no other detector raised")
    ax.set_yticks(y)
    ax.set_yticklabels([_plain(r["detector"], 30) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("flagged pairs")
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.25 - 0.6 / max(len(rows), 1)),
              ncol=2)
    ax.set_title("Per-detector contributions", fontsize=10)
    return _png(fig)


def all_plots(result: Any) -> dict[str, Any]:
    """Every plot the HTML report embeds, as base64 PNG (None when not applicable)."""
    emb, note = plot_embedding_map(result)
    return {
        "scores": plot_score_distribution(result),
        "embedding": emb,
        "embedding_note": note,
        "sources": plot_source_rates(result),
        "detectors": plot_detector_contributions(result),
    }
