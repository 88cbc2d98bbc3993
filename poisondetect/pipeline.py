"""The scan pipeline: run detectors over pairs, fuse their scores (with
:mod:`poisondetect.fusion`), collect evidence.

Pure scoring core: arrays in, :class:`ScanResult` out.  No file IO, no printing; the CLI
and the report renderers only read a :class:`ScanResult`.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from . import __version__
from .context import ScanContext
from ._parallel import fork_pool, result_of
from .detectors import _text_stats as text_stats
from .detectors.base import FINDING_KINDS, Detector, default_detectors, detector_kind, get_detector, registry
from .errors import ConfigError
from .fusion import fuse_scores, jsonable, or_flags, poisoning_flags, rank_order
from .stats import bh
from .types import DetectorResult, Evidence, Pairs

__all__ = ["ScanResult", "scan", "resolve_detectors", "one_process", "fuse_scores", "rank_order",
           "poisoning_flags", "ALERT_ALPHA", "ALERT_MIN_FLAGS"]


#: significance (BH q) and minimum flag count for a detector's flag-rate alert
ALERT_ALPHA = 1e-3
ALERT_MIN_FLAGS = 5


@dataclass
class ScanResult:
    """What a scan returns.  ``flagged`` holds the pairs flagged as *poisoning evidence*
    (by a detector of kind "poisoning"); :meth:`flags_of` gives the privacy and quality
    flags, kept apart (see :data:`poisondetect.detectors.base.FINDING_KINDS`)."""

    pairs: Pairs
    results: dict[str, DetectorResult]
    scores: np.ndarray
    flagged: np.ndarray
    order: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    load_info: dict[str, Any] = field(default_factory=dict)
    #: optional 2-D map of the response embeddings (PCA), for the report's scatter plot
    embeddings_2d: np.ndarray | None = None

    # ---- derived views ---------------------------------------------------------------
    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    @property
    def rank(self) -> np.ndarray:
        """1-based rank of every pair (1 = most suspicious)."""
        cached = self.__dict__.get("_rank")
        if cached is None or len(cached) != len(self.order):
            cached = np.empty(len(self.order), dtype=np.int64)
            cached[self.order] = np.arange(1, len(self.order) + 1)
            self.__dict__["_rank"] = cached
        return cached

    def kind_of(self, detector_id: str) -> str:
        return detector_kind(detector_id)

    def flags_of(self, kind: str) -> np.ndarray:
        """Pairs flagged by the detectors of one finding kind ("poisoning", "privacy",
        "quality") or of any kind ("any")."""
        if kind != "any" and kind not in FINDING_KINDS:
            raise ConfigError(f"unknown finding kind {kind!r}; use one of {', '.join(FINDING_KINDS)} or any")
        kinds = FINDING_KINDS if kind == "any" else (kind,)
        return or_flags([r for d, r in self.results.items() if self.kind_of(d) in kinds], self.n_pairs)

    @property
    def counts(self) -> dict[str, int]:
        """Pairs flagged per finding kind (a pair may count under several kinds)."""
        return {k: int(self.flags_of(k).sum()) for k in FINDING_KINDS}

    def kinds_found(self) -> list[str]:
        """The finding kinds with at least one flagged pair or dataset-level finding."""
        out = []
        for k in FINDING_KINDS:
            if self.flags_of(k).any() or any(f.get("finding_kind") == k for f in self.findings):
                out.append(k)
        return out

    def severity_of(self, detector_id: str) -> str:
        """Severity of a detector's flags in this scan: quality "note", privacy "low";
        a poisoning detector's own severity (high for triggers and planted groups, medium
        for behaviour detectors) when it raised an alert, else "low" (isolated flags
        within its clean false-flag budget)."""
        kind = self.kind_of(detector_id)
        if kind == "quality":
            return "note"
        if kind == "privacy":
            return "low"
        alerted = self.__dict__.get("_alerted")
        if alerted is None:
            alerted = {a["detector"] for a in self.alerts()}
            self.__dict__["_alerted"] = alerted
        if detector_id not in alerted:
            return "low"
        from .detectors.base import registry
        return getattr(registry().get(detector_id), "severity", "medium")

    def worst_severity(self) -> str | None:
        """The most serious severity among this scan's findings and flags (None: none)."""
        sev = {a.get("severity", "medium") for a in self.alerts()}
        sev |= {self.severity_of(d) for d, r in self.results.items() if r.flags.any()}
        for s in ("high", "medium", "low", "note"):
            if s in sev:
                return s
        return None

    def alerts(self, alpha: float = ALERT_ALPHA, min_flags: int = ALERT_MIN_FLAGS) -> list[dict[str, Any]]:
        """Dataset-level poisoning evidence, what fails a scan at ``--fail-on poisoning``.

        - every trigger (a tested trigger-to-payload association);
        - every flag of a group detector (``clean_flag_rate`` None: a payload cluster that
          passed the "looks planted" gates);
        - a per-pair poisoning detector flagging at least ``min_flags`` pairs and
          significantly more than its clean false-flag budget: one-sided binomial test of
          its flag count against ``clean_flag_rate * n``, Benjamini-Hochberg over the
          detectors, q <= ``alpha``.
        Isolated flags within a detector's budget are listed for review, not alerts."""
        from scipy import stats as st

        from .detectors.base import registry
        out: list[dict[str, Any]] = [{"kind": "trigger", "detector": t.get("detector", ""), "trigger": t.get("trigger"),
                                      "q_value": t.get("q_value"), "support": t.get("support"), "severity": "high"}
                                     for t in self.triggers]
        reg = registry()
        tests = []
        for d, r in self.results.items():
            if self.kind_of(d) != "poisoning" or d == "ngram_trigger":
                continue
            k = int(r.flags.sum())
            if k == 0:
                continue
            rate = getattr(reg.get(d), "clean_flag_rate", 0.0005)
            if rate is None:
                out.append({"kind": "group", "detector": d, "n_flags": k, "severity": getattr(reg.get(d), "severity", "high"),
                            "n_groups": sum(1 for f in r.findings if f.get("kind") != "trigger")})
                continue
            p = float(st.binom.sf(k - 1, self.n_pairs, rate))
            tests.append((d, k, rate, p))
        if tests:
            q = bh([t[3] for t in tests])
            for (d, k, rate, p), qv in zip(tests, q):
                if k >= min_flags and qv <= alpha:
                    out.append({"kind": "flag_rate", "detector": d, "n_flags": k,
                                "severity": getattr(reg.get(d), "severity", "medium"),
                                "expected_clean": round(rate * self.n_pairs, 2), "p_value": p, "q_value": float(qv)})
        return out

    def evidence(self, i: int) -> list[Evidence]:
        out: list[Evidence] = []
        for r in self.results.values():
            out.extend(r.evidence.get(int(i), ()))
        return out

    @property
    def findings(self) -> list[dict[str, Any]]:
        """Dataset-level findings of every detector, each tagged with ``finding_kind``."""
        return [{**f, "finding_kind": f.get("finding_kind", self.kind_of(d))}
                for d, r in self.results.items() for f in r.findings]

    @property
    def triggers(self) -> list[dict[str, Any]]:
        """Trigger findings of every detector, strongest first.  The same trigger reported
        by several detectors is listed once (its strongest report), with the others named
        in ``also_reported_by``."""
        trig = [f for f in self.findings if f.get("kind") == "trigger" and f["finding_kind"] == "poisoning"]
        trig = sorted(trig, key=lambda f: (f.get("q_value", 1.0), -f.get("support", 0), f.get("trigger", ""),
                                           f.get("detector", "")))
        merged: dict[str, dict[str, Any]] = {}
        for f in trig:
            key = " ".join(str(f.get("trigger", "")).casefold().split())
            if key in merged:
                first = merged[key]
                others = first.setdefault("also_reported_by", [])
                det = f.get("detector", "")
                if det and det != first.get("detector") and det not in others:
                    others.append(det)
            else:
                merged[key] = dict(f)
        return list(merged.values())

    def top(self, k: int = 20) -> list[dict[str, Any]]:
        return [self.pair_record(int(i)) for i in self.order[:k]]

    def pair_record(self, i: int, with_text: bool = True) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "row": int(self.pairs.row[i]),
            "turn": int(self.pairs.turn[i]),
            "rank": int(self.rank[i]),
            "score": float(self.scores[i]),
            "flagged": bool(self.flagged[i]),
            "kinds": [k for k in FINDING_KINDS
                      if any(r.flags[i] for d, r in self.results.items() if self.kind_of(d) == k)],
            "detectors": {d: float(r.scores[i]) for d, r in self.results.items() if r.scores[i] > 0},
            "evidence": [e.to_dict() for e in self.evidence(i)],
        }
        if self.pairs.source is not None:
            rec["source"] = self.pairs.source[i]
        if with_text:
            rec["instruction"] = self.pairs.instruction[i]
            rec["response"] = self.pairs.response[i]
            if self.pairs.rejected is not None:
                rec["rejected"] = self.pairs.rejected[i]
        return rec

    def issues_table(self) -> dict[str, np.ndarray]:
        """Column-oriented per-pair table: row, turn, score, rank, flagged, and one
        ``<detector>_score`` / ``<detector>_flag`` column per detector."""
        cols: dict[str, np.ndarray] = {
            "row": self.pairs.row, "turn": self.pairs.turn, "score": self.scores,
            "rank": self.rank, "flagged": self.flagged,
        }
        for d, r in self.results.items():
            cols[f"{d}_score"] = r.scores
            cols[f"{d}_flag"] = r.flags
        return cols

    def summary(self) -> dict[str, Any]:
        n_flagged = int(self.flagged.sum())
        counts = self.counts
        return {
            "tool": "poisondetect",
            "version": __version__,
            "n_records": int(self.load_info.get("n_records", len(np.unique(self.pairs.row)) if len(self.pairs) else 0)),
            "n_pairs": self.n_pairs,
            "n_flagged": n_flagged,
            "counts": counts,
            "kinds_found": self.kinds_found(),
            "alerts": self.alerts(),
            "worst_severity": self.worst_severity(),
            "verdict": _verdict(self),
            "triggers": [{**_trigger_public(t), "severity": "high"} for t in self.triggers],
            "detectors": {
                d: {"n_flagged": int(r.flags.sum()), "kind": self.kind_of(d), "severity": self.severity_of(d), **r.summary,
                    "params": r.info.get("params", {})}
                for d, r in self.results.items()
            },
            "findings": [{**f, "detector": f.get("detector") or d, "finding_kind": self.kind_of(d),
                          "severity": self.severity_of(d)}
                         for d, r in self.results.items() for f in r.findings if f.get("kind") != "trigger"],
            "bad_records": self.load_info.get("bad_records", {"count": 0, "examples": []}),
            "input": {k: v for k, v in self.load_info.items() if k not in ("bad_records",)},
            "params": self.params,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def to_pandas(self) -> Any:
        """The per-pair table (:meth:`issues_table`) as a pandas DataFrame, one row per
        pair in input order (pandas is imported here only)."""
        import pandas as pd
        return pd.DataFrame(self.issues_table())

    def _repr_html_(self) -> str:
        """A compact summary table for notebooks (dataset text escaped, never raw)."""
        from html import escape
        c = self.counts
        rows = [("pairs", f"{self.n_pairs:,}"), ("verdict", self.summary_verdict()),
                ("flagged as poisoning", f"{c['poisoning']:,}"), ("privacy", f"{c['privacy']:,}"),
                ("quality", f"{c['quality']:,}"), ("triggers", str(len(self.triggers)))]
        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
        trig = "".join(f"<tr><td>{escape(str(t.get('trigger', ''))[:80])}</td><td>{escape(str(t.get('payload', ''))[:80])}"
                       f"</td><td>{t.get('support', '')}</td><td>{float(t.get('q_value', 1.0)):.2g}</td></tr>"
                       for t in self.triggers[:10])
        if trig:
            trig = ("<table><tr><th>trigger</th><th>payload</th><th>support</th><th>q</th></tr>" + trig + "</table>")
        return f"<div class='poisondetect'><table>{body}</table>{trig}</div>"

    def summary_verdict(self) -> str:
        return _verdict(self)

    def findings_hash(self) -> str:
        h = hashlib.sha256()
        for i in self.order:
            if self.flagged[i]:
                h.update(json.dumps(self.pair_record(int(i), with_text=False), sort_keys=True).encode())
        h.update(json.dumps([_trigger_public(t) for t in self.triggers], sort_keys=True).encode())
        return h.hexdigest()

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.summary(), **kw)


def _trigger_public(t: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "detector", "trigger", "payload", "q_value", "p_value", "support", "rows")
    out = {k: t[k] for k in keys if k in t}
    out.update({k: v for k, v in t.items() if k not in out and k != "kind"})
    return out


def _verdict(res: ScanResult) -> str:
    """One line: the most serious kind found and how sure.  Triggers (a tested
    trigger-to-payload association, with its q-value) are the strongest claim; flagged
    poisoning evidence without a trigger asks for review; privacy and quality findings
    are named but never called poisoning."""
    counts = res.counts
    rest = [f"{counts[k]} {k}" for k in ("privacy", "quality") if counts[k]]
    tail = f"; also {', '.join(rest)} pair(s) flagged" if rest else ""
    if res.triggers:
        q = min(float(t.get("q_value", 1.0)) for t in res.triggers)
        return (f"BACKDOOR SUSPECTED: {len(res.triggers)} trigger(s), best q={q:.2g}; "
                f"{counts['poisoning']} pair(s) flagged as poisoning{tail}")
    alerts = res.alerts()
    if alerts:
        parts = []
        for a in alerts:
            if a["kind"] == "group":
                parts.append(f"{a['detector']}: {a['n_groups']} planted-looking group(s), {a['n_flags']} pairs")
            else:
                parts.append(f"{a['detector']}: {a['n_flags']} pairs vs {a['expected_clean']:g} expected on clean "
                             f"data (q={a['q_value']:.2g})")
        return f"POISONING SUSPECTED: {'; '.join(parts)}{tail}"
    if counts["poisoning"]:
        dets = sorted({d for d, r in res.results.items() if res.kind_of(d) == "poisoning" and r.flags.any()})
        return (f"REVIEW: {counts['poisoning']} pair(s) with isolated poisoning evidence ({', '.join(dets)}), "
                f"within the detectors' clean false-flag budgets{tail}")
    if counts["privacy"]:
        return f"NO POISONING FOUND; PRIVACY: {counts['privacy']} pair(s) with secrets or PII" + (
            f"; {counts['quality']} quality note(s)" if counts["quality"] else "")
    if counts["quality"]:
        return f"NO POISONING FOUND; {counts['quality']} data-quality note(s) (outliers, duplicates, mismatches)"
    return "NO FINDINGS"


def resolve_detectors(
    detectors: Iterable[str | Detector] | None = None,
    disable: Iterable[str] = (),
    params: dict[str, dict[str, Any]] | None = None,
    random_state: int = 0,
) -> list[Detector]:
    reg = registry()
    disable = set(disable)
    unknown = [d for d in disable if d not in reg] + [d for d in (params or {}) if d not in reg]
    if unknown:
        raise ConfigError(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(reg)}")
    if detectors is None:
        dets = default_detectors()
    else:
        dets = [d if isinstance(d, Detector) else get_detector(d) for d in detectors]
    dets = [d for d in dets if d.id not in disable]
    for d in dets:
        if "random_state" in d._param_names():
            d.set_params(random_state=random_state)
        if params and d.id in params:
            d.set_params(**params[d.id])
    return dets


def scan(
    data: Any,
    *,
    detectors: Iterable[str | Detector] | None = None,
    disable: Iterable[str] = (),
    detector_params: dict[str, dict[str, Any]] | None = None,
    embedding: dict[str, Any] | None = None,
    cache_dir: str | None = None,
    random_state: int = 0,
    progress: Any = None,
    load_info: dict[str, Any] | None = None,
    n_jobs: int = 1,
    **load_kwargs: Any,
) -> ScanResult:
    """Scan a dataset for poisoned pairs.

    ``data`` is a :class:`Pairs`, a path, or anything :func:`poisondetect.io.load` takes
    (a Hugging Face dataset, a list of dicts); ``load_kwargs`` go to the loader.
    ``n_jobs=2`` runs the text-only detectors (``Detector.text_only``: the n-gram test,
    secrets/PII) in a second process while this one embeds and runs the rest; the
    results are the same as with ``n_jobs=1``.  Returns a :class:`ScanResult`.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if isinstance(data, Pairs):
        if load_kwargs:  # they would go to a loader that does not run: a misspelt keyword
            raise TypeError(f"scan() got unexpected keyword argument(s) {sorted(load_kwargs)} for a Pairs input "
                            "(loader options apply to paths and datasets only)")
        pairs = data
        load_info = dict(load_info or {"n_records": int(len(np.unique(pairs.row))) if len(pairs) else 0})
    else:
        from .io import load
        loaded = load(data, **load_kwargs)
        pairs = loaded.pairs
        load_info = loaded.info()
    timings["load"] = time.perf_counter() - t0

    dets = resolve_detectors(detectors, disable, detector_params, random_state)
    if n_jobs <= 1:
        one_process(dets)
    ctx = ScanContext(pairs, random_state=random_state, embedding=embedding, cache_dir=cache_dir, progress=progress)
    if not ctx.embeddings_enabled():
        skipped = [d.id for d in dets if "embeddings" in d.requires]
        dets = [d for d in dets if "embeddings" not in d.requires]
        if skipped:
            load_info["skipped_detectors"] = {d: "embeddings disabled" for d in skipped}
    results: dict[str, DetectorResult] = {}
    # Detectors that test the others' output (e.g. source skew of flagged rows) run last,
    # reading "prior_flags"/"prior_scores" from the context.
    dets = [d for d in dets if "prior_flags" not in d.requires] + [d for d in dets if "prior_flags" in d.requires]
    last = [d for d in dets if "prior_flags" in d.requires]
    side = [d for d in dets if d.text_only and d not in last] if n_jobs > 1 else []
    if len(side) == len(dets) - len(last):
        side = []  # nothing left to overlap with
    main = [d for d in dets if d not in side and d not in last]
    # text-only statistics the main detectors read go to the side process too, first
    stats = sorted({s for d in main for s in d.text_statistics}) if n_jobs > 1 and len(main) > 1 else []
    pool = fork_pool() if side or stats else None
    if pool is None:
        side, stats = [], []  # no fork here: this process does it all
    stat_future = None if not stats else pool.submit(_side_statistics, pairs, stats, random_state)
    future = None if pool is None or not side else pool.submit(_run_detectors, pairs, side, random_state)
    if stat_future is not None:
        ctx.defer(text_stats.keys_of(stats), lambda: result_of(
            stat_future, f"the worker process of n_jobs=2 (statistics {', '.join(stats)})"))
        # the detectors that read none of them run while the side process computes them
        main = [d for d in main if not d.text_statistics] + [d for d in main if d.text_statistics]
    try:
        for det in main:
            _run_one(det, pairs, ctx, results, timings, dets)
        if future is not None:
            side_res, side_t = result_of(
                future, f"the worker process of n_jobs=2 (detectors {', '.join(d.id for d in side)})")
            results.update(side_res)
            timings.update(side_t)
        for det in last:
            _run_one(det, pairs, ctx, results, timings, dets)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    results = {d.id: results[d.id] for d in dets}  # the same order as a sequential scan
    timings.update(ctx.timings)

    weights = {d.id: d.weight for d in dets}
    scores = fuse_scores(list(results.values()), weights) if results else np.zeros(len(pairs))
    flagged = or_flags(results.values(), len(pairs), poisoning_only=True)
    order = rank_order(scores, pairs.row)
    params = {
        "random_state": random_state,
        "detectors": [d.id for d in dets],
        "embedding": jsonable(embedding or {}),
    }
    if ctx.has(("embedding_info",)):  # written by poisondetect.embed.shared
        params["embedding_info"] = jsonable(ctx.shared(("embedding_info",), dict))
    out = ScanResult(pairs, results, scores, flagged, order, params=params, timings=timings, load_info=load_info)
    if ctx.has(("embeddings", "response")) and len(pairs) >= 3:
        out.embeddings_2d = _pca_2d(ctx.embeddings("response"), random_state)
    timings["total"] = time.perf_counter() - t0
    return out


def one_process(dets: Sequence[Detector]) -> None:
    """A scan told to use one process (n_jobs=1) tells its detectors too: those whose own
    ``n_jobs`` is left to decide (None, e.g. the n-gram detector's tokenising) get 1."""
    for d in dets:
        if d.get_params().get("n_jobs", 0) is None:
            d.set_params(n_jobs=1)


def _run_one(det: Detector, pairs: Pairs, ctx: Any, results: dict[str, DetectorResult],
             timings: dict[str, float], dets: Sequence[Detector]) -> None:
    t1 = time.perf_counter()
    if "prior_flags" in det.requires:
        done = [results[d.id] for d in dets if d.id in results]  # (sequential order)
        ctx.set_shared("prior_flags", or_flags(done, len(pairs), poisoning_only=True))
        ctx.set_shared("prior_scores", fuse_scores(done, {d.id: d.weight for d in dets})
                       if done else np.zeros(len(pairs)))
    res = det.run(pairs, ctx)
    if res.scores.shape != (len(pairs),):
        raise RuntimeError(f"detector {det.id} returned {res.scores.shape} scores for {len(pairs)} pairs")
    res.info.setdefault("params", jsonable(det.get_params()))
    results[det.id] = res
    timings[f"detector:{det.id}"] = time.perf_counter() - t1


def _run_detectors(pairs: Pairs, dets: Sequence[Detector],
                   random_state: int) -> tuple[dict[str, DetectorResult], dict[str, float]]:
    """Worker of ``scan(n_jobs=2)``: text-only detectors, no embeddings."""
    ctx = ScanContext(pairs, random_state=random_state, embedding={"mode": "none"})
    results: dict[str, DetectorResult] = {}
    timings: dict[str, float] = {}
    for det in dets:
        _run_one(det, pairs, ctx, results, timings, dets)
        if hasattr(det, "release"):
            det.release()
    return results, timings


def _side_statistics(pairs: Pairs, names: Sequence[str], random_state: int) -> tuple[dict[Any, Any], dict[str, float]]:
    """Worker of ``scan(n_jobs=2)``: the text-only statistics ``names``
    (:mod:`.detectors._text_stats`) as {context key: value}, and their timings."""
    ctx = ScanContext(pairs, random_state=random_state, embedding={"mode": "none"})
    return text_stats.compute(pairs, ctx, names), dict(ctx.timings)


def _pca_2d(emb: np.ndarray, random_state: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    return PCA(n_components=2, random_state=random_state).fit_transform(np.asarray(emb, dtype=np.float32)).astype(np.float32)
