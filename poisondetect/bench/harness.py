"""The benchmark harness: poison a clean corpus with every attack family, scan it, score
the ranking against the ground truth, compare with baselines, write tables and plots.

Cost structure: the clean corpus is scanned once first (which also yields the false
trigger reports on unpoisoned data and fills the on-disk embedding cache); every poisoned
variant is then scanned with the same ``cache_dir`` so only the injected texts are
embedded.  Per-detector ablation comes from each detector's own scores in the same scan
(plus the fused ranking with that detector left out), so no detector is run twice.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..types import Pairs
from . import baselines as bl
from . import metrics as M
from .attacks import ATTACKS, DEFAULT_FAMILIES, REQUEST_FAMILIES, TRIGGER_FAMILIES, GroundTruth, poison
from .data import build_mix, find_data_dir, load_harmful_requests, load_user_dataset

BASELINES = ("random", "isolation_forest", "cleanlab", "z_statistic")
DEFAULT_SWEEP = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)


@dataclass
class BenchConfig:
    data_dir: str | None = None
    dataset: str | None = None          # a user dataset instead of the shared mix
    n_pairs: int = 50_000
    corpora: list[str] | None = None    # None = every shared clean corpus
    t0_share: float = 0.55              # share of the templated T0 corpus in the mix
    seed: int = 0
    rate: float = 0.001
    families: list[str] | None = None   # None = all
    payload_variants: list[str] = field(default_factory=lambda: ["badnets"])  # + templated/appended runs
    sweep_families: list[str] = field(default_factory=list)
    sweep_rates: list[float] = field(default_factory=lambda: list(DEFAULT_SWEEP))
    detectors: list[str] | None = None
    disable: list[str] = field(default_factory=list)
    embedding: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    out: str = "benchmarks/results"
    tag: str = "run"
    plots: bool = True
    command: str = ""

    @classmethod
    def from_file(cls, path: str | os.PathLike, **override: Any) -> BenchConfig:
        p = Path(path)
        if p.suffix == ".toml":
            import tomllib
            d = tomllib.loads(p.read_text())
        else:
            d = json.loads(p.read_text())
        d.update({k: v for k, v in override.items() if v is not None})
        known = set(cls.__dataclass_fields__)
        bad = set(d) - known
        if bad:
            from ..errors import ConfigError
            raise ConfigError(f"{path}: unknown config key(s) {', '.join(sorted(bad))}")
        return cls(**d)


def machine_info() -> dict[str, Any]:
    info = {"platform": platform.platform(), "python": sys.version.split()[0],
            "cpus": os.cpu_count(), "processor": platform.machine()}
    try:
        with open("/proc/meminfo") as f:
            info["mem_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import torch
        info["torch"] = torch.__version__
        info["cuda"] = bool(torch.cuda.is_available())
    except ImportError:
        pass
    return info


def load_clean(cfg: BenchConfig) -> tuple[Pairs, dict[str, Any]]:
    if cfg.dataset:
        pairs = load_user_dataset(cfg.dataset)
        return pairs, {"dataset": str(cfg.dataset), "n_pairs": len(pairs)}
    d = find_data_dir(cfg.data_dir)
    if d is None:
        raise FileNotFoundError("shared data not found: pass --data-dir or set POISONDETECT_DATA")
    pairs = build_mix(d, cfg.n_pairs, cfg.seed, t0_share=cfg.t0_share, corpora=cfg.corpora)
    from collections import Counter
    return pairs, {"data_dir": str(d), "n_pairs": len(pairs), "mix": dict(Counter(pairs.source or []))}


def _scan(pairs: Pairs, cfg: BenchConfig):
    from ..pipeline import scan
    return scan(pairs, detectors=cfg.detectors, disable=cfg.disable, embedding=cfg.embedding or None,
                cache_dir=cfg.cache_dir, random_state=cfg.seed)


def baseline_features(pairs: Pairs, cfg: BenchConfig) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(pair features, response embeddings, description): the scan's own embeddings
    (served from the embedding cache, so this costs a lookup), or TF-IDF+SVD when
    embeddings are unavailable."""
    try:
        from ..context import ScanContext
        ctx = ScanContext(pairs, random_state=cfg.seed, embedding=cfg.embedding, cache_dir=cfg.cache_dir)
        if not ctx.embeddings_enabled():
            raise RuntimeError("embeddings disabled")
        ei, er = ctx.embeddings("instruction"), ctx.embeddings("response")
        return np.hstack([ei, er]).astype(np.float32), er, "scan embeddings (instruction ++ response)"
    except Exception as e:  # noqa: BLE001  (embed missing/disabled: documented fallback)
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        texts = [a + "\n" + b for a, b in zip(pairs.instruction, pairs.response)]
        tf = TfidfVectorizer(max_features=50000, min_df=2).fit_transform(texts)
        X = TruncatedSVD(n_components=128, random_state=cfg.seed).fit_transform(tf).astype(np.float32)
        return X, None, f"tfidf-svd fallback ({type(e).__name__})"


def run_baselines(pairs: Pairs, labels: np.ndarray, cfg: BenchConfig, origin: np.ndarray | None = None,
                  state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the baselines on one (poisoned) dataset.  ``state`` carries what is shared
    across variants of one clean corpus (the clean kNN graph for cleanlab)."""
    out: dict[str, Any] = {}
    X, er, desc = (None, None, "") if cfg.baselines == ["random"] else baseline_features(pairs, cfg)
    for b in cfg.baselines:
        t0 = time.perf_counter()
        if b == "random":
            s = bl.random_scores(len(pairs), cfg.seed)
        elif b == "isolation_forest":
            s = bl.isolation_forest(X, cfg.seed)
        elif b == "cleanlab":
            knn = None
            if state is not None and state.get("knn") is not None and origin is not None:
                idx, dist = state["knn"].query(X, origin)
                knn = bl.knn_graph_from(idx, dist)
            try:
                s = bl.cleanlab_outlier(X, knn)
            except Exception as e:  # noqa: BLE001  (optional third-party baseline)
                out[b] = {"skipped": f"cleanlab failed: {type(e).__name__}: {e}"[:200]}
                continue
            if s is None:
                out[b] = {"skipped": "cleanlab not installed (pip install cleanlab)"}
                continue
        elif b == "z_statistic":
            s = bl.z_statistic(pairs, er, seed=cfg.seed)
        else:
            raise ValueError(f"unknown baseline {b!r}")
        out[b] = {**M.ranking_metrics(s, labels), "wall_s": round(time.perf_counter() - t0, 3)}
        out[b]["_scores"] = s
    out["features"] = desc
    return out


def baseline_state(clean: Pairs, cfg: BenchConfig, k: int = 10) -> dict[str, Any]:
    """The clean corpus's exact kNN graph on the baseline features, computed once."""
    if "cleanlab" not in cfg.baselines:
        return {}
    try:
        import cleanlab  # noqa: F401
    except ImportError:
        return {}
    X, _, _ = baseline_features(clean, cfg)
    return {"knn": bl.IncrementalKNN(X, k)}


def evaluate(res: Any, truth: GroundTruth) -> dict[str, Any]:
    """Metrics of one scan against one ground truth: fused ranking, trigger recovery,
    per-detector scores alone and the fused ranking without each detector."""
    from ..pipeline import fuse_scores
    y = truth.labels()
    out: dict[str, Any] = {"fused": M.ranking_metrics(res.scores, y)}
    rec = M.trigger_recovery(res.triggers, truth.triggers, top=3)
    out["trigger_recovery"] = rec["recovered"]
    out["trigger_top_reported"] = rec.get("top_reported", [])
    out["n_triggers_reported"] = len(res.triggers)
    out["n_flagged"] = int(res.flagged.sum())
    out["recall_flagged"] = float(res.flagged[y].mean()) if y.any() else None
    alerts = res.alerts()
    out["alerted"] = bool(alerts)  # what a default CLI scan's exit code says (--fail-on poisoning)
    out["alerts"] = [{k: v for k, v in a.items() if k in ("kind", "detector", "n_flags", "q_value")} for a in alerts]
    per: dict[str, Any] = {}
    for d, r in res.results.items():
        loo = [x for k, x in res.results.items() if k != d]
        weights = {k: 1.0 for k in res.results}
        try:
            from ..detectors.base import registry
            reg = registry()
            weights = {k: float(getattr(reg.get(k), "weight", 1.0)) for k in res.results}
        except Exception:  # noqa: BLE001
            pass
        fused_wo = fuse_scores(loo, weights) if loo else np.zeros(len(y))
        per[d] = {"alone": M.ranking_metrics(r.scores, y),
                  "n_flags": int(r.flags.sum()),
                  "flag_recall": float(r.flags[y].mean()) if y.any() else None,
                  "without": {k: v for k, v in M.ranking_metrics(fused_wo, y).items()
                              if k in ("recall@n", "recall@2n", "auprc")}}
    out["per_detector"] = per
    return out


def _strip_private(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _strip_private(v) for k, v in d.items() if not str(k).startswith("_")}
    if isinstance(d, (list, tuple)):
        return [_strip_private(v) for v in d]
    if isinstance(d, float) and d != d:
        return None
    if isinstance(d, np.floating):
        return float(d)
    if isinstance(d, np.integer):
        return int(d)
    if hasattr(d, "run") and hasattr(d, "id"):  # a Detector instance in the config
        return d.id
    if d is not None and not isinstance(d, (str, int, float, bool)):
        return repr(d)
    return d


def run_one(clean: Pairs, family: str, rate: float, cfg: BenchConfig, requests: list | None,
            payload_mode: str | None = None, with_baselines: bool = True,
            log: Callable[[str], None] = print, state: dict[str, Any] | None = None) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if payload_mode:
        kw["payload_mode"] = payload_mode
    if family in REQUEST_FAMILIES and requests:
        kw["requests"] = requests
    poisoned, truth = poison(clean, family, rate=rate, seed=cfg.seed, **kw)
    with M.measure() as cost:
        res = _scan(poisoned, cfg)
    ev = evaluate(res, truth)
    name = family if not payload_mode else f"{family}[{payload_mode}]"
    rec: dict[str, Any] = {"name": name, "family": family, "rate": rate, "truth": truth.to_dict(with_positions=False),
                           "cost": cost.to_dict(), "timings": {k: round(v, 3) for k, v in res.timings.items()}, **ev}
    if with_baselines and cfg.baselines:
        rec["baselines"] = run_baselines(poisoned, truth.labels(), cfg, truth.origin, state)
    rec["_fused_scores"] = res.scores
    rec["_labels"] = truth.labels()
    f = ev["fused"]
    log(f"  {name:28s} rate={rate:<7g} n={truth.n_poisoned:<4d} R@n={f['recall@n']:.3f} R@2n={f['recall@2n']:.3f} "
        f"AUPRC={f['auprc']:.3f} trig={ev['trigger_recovery']} {cost.wall_s:.1f}s")
    return rec


def run_benchmark(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole benchmark and return the results dict (and write outputs to cfg.out)."""
    from ..detectors.base import registry
    t_start = time.perf_counter()
    clean, data_info = load_clean(cfg)
    log(f"clean corpus: {len(clean)} pairs")
    det_present = list(registry())
    requests = load_harmful_requests(find_data_dir(cfg.data_dir)) if not cfg.dataset or cfg.data_dir else []
    log("scanning the clean corpus (fills the embedding cache; false trigger reports)...")
    with M.measure() as cost:
        res_clean = _scan(clean, cfg)
    false_trig = M.false_trigger_reports(res_clean.triggers, 0.05)
    clean_rec = {
        "n_pairs": len(clean), "cost": cost.to_dict(), "false_trigger_reports": false_trig,
        "triggers_reported": [{k: t.get(k) for k in ("detector", "trigger", "q_value", "support")}
                              for t in res_clean.triggers[:20]],
        "n_flagged": int(res_clean.flagged.sum()),
        "detectors_run": res_clean.params.get("detectors", []),
        "timings": {k: round(v, 3) for k, v in res_clean.timings.items()},
    }
    log(f"  clean scan {cost.wall_s:.1f}s, false trigger reports (q<0.05): {false_trig}")
    t0 = time.perf_counter()
    state = baseline_state(clean, cfg)
    if state:
        log(f"  clean kNN graph for the cleanlab baseline: {time.perf_counter() - t0:.1f}s")
    fams = list(DEFAULT_FAMILIES) if cfg.families is None else list(cfg.families)
    runs: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []

    def _result(partial: bool) -> dict[str, Any]:
        return {
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": cfg.command, "config": _strip_private(asdict(cfg)), "machine": machine_info(),
            "data": data_info, "detectors_registered": det_present,
            "detectors_run": res_clean.params.get("detectors", []),
            "clean": clean_rec, "runs": runs, "sweep": sweep,
            "total_wall_s": round(time.perf_counter() - t_start, 1),
            **({"partial": f"{len(runs)} of the configured runs done (run still in progress or cut off)"}
               if partial else {}),
        }

    for fam in fams:
        runs.append(run_one(clean, fam, cfg.rate, cfg, requests, log=log, state=state))
        if cfg.out:  # results so far, so that a long run cut off still leaves its numbers
            write_outputs(_result(partial=True), cfg)
    for fam in cfg.payload_variants:
        if fam not in TRIGGER_FAMILIES:
            continue
        default = ATTACKS[fam].__kwdefaults__.get("payload_mode") if getattr(ATTACKS[fam], "__kwdefaults__", None) else "fixed"
        for mode in ("fixed", "templated", "appended"):
            if mode != default:
                runs.append(run_one(clean, fam, cfg.rate, cfg, requests, payload_mode=mode, log=log, state=state))
    for fam in cfg.sweep_families:
        for r in cfg.sweep_rates:
            rec = run_one(clean, fam, r, cfg, requests, with_baselines=False, log=log)
            sweep.append({"family": fam, "rate": r, "n_poisoned": rec["truth"]["n_poisoned"],
                          "fused": rec["fused"], "trigger_recovery": rec["trigger_recovery"],
                          "per_detector": {d: v["alone"] for d, v in rec["per_detector"].items()}})
    result = _result(partial=False)
    write_outputs(result, cfg)
    return result


# --------------------------------------------------------------------------- outputs
def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


METRIC_COLS = ("recall@n", "recall@2n", "recall@1%", "precision@n", "precision@2n", "auprc", "auroc")


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    L = [f"# poisondetect benchmark harness: {cfg['tag']}", "",
         f"Reproduce with: `{result['command']}`", "",
         f"- date: {result['date']}",
         f"- machine: {result['machine'].get('platform')}, {result['machine'].get('cpus')} CPUs, "
         f"{result['machine'].get('mem_gb', '?')} GiB, python {result['machine'].get('python')}, "
         f"torch {result['machine'].get('torch', '-')}",
         f"- data: {result['data'].get('n_pairs')} clean pairs ({json.dumps(result['data'].get('mix', result['data'].get('dataset')))})",
         f"- seed {cfg['seed']}, poison rate {cfg['rate']} (replace mode: k = round(rate*n) rows rewritten; "
         "add mode for harmful_compliance/identity_shift: rows inserted to make up the rate)",
         f"- detectors registered: {', '.join(result['detectors_registered']) or '(none)'}",
         f"- detectors run: {', '.join(result['detectors_run']) or '(none)'}",
         f"- embedding settings: {json.dumps(cfg.get('embedding') or {})}; cache: {cfg.get('cache_dir')}",
         f"- total wall time: {result['total_wall_s']} s", ""]
    c = result["clean"]
    L += ["## Unpoisoned corpus", "",
          f"False trigger reports (q < 0.05) on the clean corpus: **{c['false_trigger_reports']}**; "
          f"rows flagged: {c['n_flagged']} of {c['n_pairs']}; scan wall {c['cost']['wall_s']} s, "
          f"peak RSS {_f(c['cost'].get('peak_rss_mb'), 0)} MB.", ""]
    if c["triggers_reported"]:
        L += ["Top triggers reported on clean data: " + ", ".join(
            f"`{json.dumps(t.get('trigger'))[1:-1][:40]}` ({t.get('detector')}, q={_f(t.get('q_value'), 3)})"
            for t in c["triggers_reported"][:8]), ""]
    L += ["## Fused ranking, per attack family", "",
          "n = number of poisoned rows; recall@1% = recall within the top 1% of the data; "
          "trigger = fraction of the true triggers among the top max(3, #triggers) reported (– = no trigger); "
          "wall/peak = the scan alone (peak RSS of the process, sampled); flagged = pairs flagged as poisoning; "
          "alert = the default CLI would exit 1 (a trigger, a planted-looking group or a flag rate over budget).", "",
          "| family | n | " + " | ".join(METRIC_COLS) + " | trigger | flagged | alert | wall s | peak MB |",
          "|---|---:|" + "---:|" * (len(METRIC_COLS) + 5)]
    for r in result["runs"]:
        f = r["fused"]
        L.append(f"| {r['name']} | {r['truth']['n_poisoned']} | " + " | ".join(_f(f[m]) for m in METRIC_COLS)
                 + f" | {_f(r['trigger_recovery'], 2)} | {r['n_flagged']} | "
                 f"{'yes' if r.get('alerted') else ('no' if 'alerted' in r else '-')} | {_f(r['cost']['wall_s'], 1)} | "
                 f"{_f(r['cost'].get('peak_rss_mb'), 0)} |")
    bnames = [b for b in result["config"]["baselines"]]
    if bnames and result["runs"] and "baselines" in result["runs"][0]:
        feats = result["runs"][0]["baselines"].get("features", "")
        L += ["", "## Baselines on the same data (recall@2n / AUPRC / AUROC)", "",
              f"Features for Isolation Forest and cleanlab: {feats}.", "",
              "| family | poisondetect | " + " | ".join(bnames) + " |", "|---|" + "---|" * (len(bnames) + 1)]
        for r in result["runs"]:
            cells = [f"{_f(r['fused']['recall@2n'], 2)} / {_f(r['fused']['auprc'], 2)} / {_f(r['fused']['auroc'], 2)}"]
            for b in bnames:
                m = r["baselines"].get(b, {})
                cells.append(m["skipped"] if "skipped" in m else
                             f"{_f(m.get('recall@2n'), 2)} / {_f(m.get('auprc'), 2)} / {_f(m.get('auroc'), 2)}")
            L.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    dets = sorted({d for r in result["runs"] for d in r["per_detector"]})
    if dets:
        L += ["", "## Per-detector ablation (AUPRC of the detector alone; recall@2n of the fused ranking without it)", "",
              "| family | " + " | ".join(dets) + " |", "|---|" + "---|" * len(dets)]
        for r in result["runs"]:
            cells = []
            for d in dets:
                v = r["per_detector"].get(d)
                cells.append("n/a" if v is None else f"{_f(v['alone']['auprc'], 2)} / {_f(v['without']['recall@2n'], 2)}")
            L.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    if result["sweep"]:
        L += ["", "## Rate sweep (fused ranking)", "", "| family | rate | n | recall@n | recall@2n | auprc | trigger |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        for s in result["sweep"]:
            L.append(f"| {s['family']} | {s['rate']:g} | {s['n_poisoned']} | {_f(s['fused']['recall@n'])} | "
                     f"{_f(s['fused']['recall@2n'])} | {_f(s['fused']['auprc'])} | {_f(s['trigger_recovery'], 2)} |")
    L += ["", "## Attack parameters (drawn at random per seed)", "", "| family | paper | mode | payload | triggers |",
          "|---|---|---|---|---|"]
    for r in result["runs"]:
        t = r["truth"]
        trig = ", ".join(json.dumps(x, ensure_ascii=True)[1:-1] for x in t["triggers"]) or "–"
        L.append(f"| {r['name']} | {t['paper']} | {t['mode']} | {t['payload_mode']} | `{trig.replace('|', '/')}` |")
    return "\n".join(L) + "\n"


def write_outputs(result: dict[str, Any], cfg: BenchConfig) -> dict[str, str]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"harness_{cfg.tag}"
    paths = {"json": str(out / f"{stem}.json"), "md": str(out / f"{stem}.md")}
    Path(paths["json"]).write_text(json.dumps(_strip_private(result), indent=1, ensure_ascii=False))
    Path(paths["md"]).write_text(markdown(result))
    if cfg.plots:
        paths.update(plot(result, out, stem))
    return paths


def plot(result: dict[str, Any], out: Path, stem: str) -> dict[str, str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = {}
    runs = [r for r in result["runs"] if "_fused_scores" in r]
    if runs:
        cols = 4
        rows = (len(runs) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
        for ax, r in zip(axes.ravel(), runs):
            pr = M.pr_curve(r["_fused_scores"], r["_labels"])
            ax.plot(pr["recall"], pr["precision"], label="poisondetect", lw=2)
            for b, m in (r.get("baselines") or {}).items():
                if isinstance(m, dict) and "_scores" in m:
                    prb = M.pr_curve(m["_scores"], r["_labels"])
                    ax.plot(prb["recall"], prb["precision"], label=b, lw=1, alpha=0.8)
            ax.set_title(r["name"], fontsize=9)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("recall", fontsize=8)
            ax.set_ylabel("precision", fontsize=8)
        for ax in axes.ravel()[len(runs):]:
            ax.axis("off")
        axes.ravel()[0].legend(fontsize=7)
        fig.suptitle(f"Precision-recall at rate {result['config']['rate']} ({result['data'].get('n_pairs')} pairs)")
        fig.tight_layout()
        p = out / f"{stem}_pr.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths["pr_png"] = str(p)
    if result["sweep"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for fam in sorted({s["family"] for s in result["sweep"]}):
            pts = sorted((s["rate"], s["fused"]["recall@2n"]) for s in result["sweep"] if s["family"] == fam)
            ax.plot([p[0] * 100 for p in pts], [p[1] for p in pts], marker="o", label=fam)
        ax.set_xscale("log")
        ax.set_xlabel("poison rate (%)")
        ax.set_ylabel("recall@2n (fused)")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
        ax.set_title("Recall vs poison rate")
        fig.tight_layout()
        p = out / f"{stem}_recall_vs_rate.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths["recall_vs_rate_png"] = str(p)
    return paths
