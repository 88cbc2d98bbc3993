"""``poisondetect bench``: run the benchmark harness (attacks x detectors x baselines)."""
from __future__ import annotations

import shlex
import sys

import click

from .attacks import ATTACKS, DEFAULT_FAMILIES


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.command("bench")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="JSON/TOML config (keys of BenchConfig); options below override it.")
@click.option("--data-dir", envvar="POISONDETECT_DATA", help="Folder holding clean/ and safety/ (default ../shared/data).")
@click.option("--dataset", type=click.Path(exists=True), help="Benchmark on your own clean dataset instead of the shared mix.")
@click.option("--n-pairs", type=int, help="Size of the clean mix (default 50000).")
@click.option("--rate", type=float, help="Poison rate (default 0.001 = 0.1%).")
@click.option("--families", help=f"Comma-separated attack families (default: {', '.join(DEFAULT_FAMILIES)}; "
              "also nospace_zh / nospace_ja / nospace_th, which need rows in that script).")
@click.option("--sweep", "sweep_families", help="Comma-separated families to sweep over rates 0.02%..1%.")
@click.option("--seed", type=int, help="Seed for the mix, the attacks and the scan (default 0).")
@click.option("--detectors", help="Comma-separated detector ids (default: the default set).")
@click.option("--disable", help="Comma-separated detector ids to leave out.")
@click.option("--embedding-mode", type=click.Choice(["auto", "static", "transformer", "hash", "none"]))
@click.option("--cache-dir", help="Embedding cache shared by all runs (default the poisondetect cache).")
@click.option("--baselines", help="Comma-separated: random,isolation_forest,cleanlab,z_statistic (or 'none').")
@click.option("--out", help="Output folder (default benchmarks/results).")
@click.option("--tag", help="Name of the output files: harness_<tag>.md/.json/.png.")
@click.option("--no-plots", is_flag=True, default=False)
def bench(config_path, data_dir, dataset, n_pairs, rate, families, sweep_families, seed, detectors, disable,
          embedding_mode, cache_dir, baselines, out, tag, no_plots):
    """Poison a clean corpus with every attack family, scan it and score the ranking.

    Writes a markdown table (family x metric, baselines, per-detector ablation), the JSON
    results and plots to --out.  Needs the shared datasets (or --dataset)."""
    from ..errors import ConfigError
    from .harness import BenchConfig, run_benchmark
    over = {"data_dir": data_dir, "dataset": dataset, "n_pairs": n_pairs, "rate": rate, "seed": seed,
            "families": _csv(families), "sweep_families": _csv(sweep_families), "detectors": _csv(detectors),
            "disable": _csv(disable), "cache_dir": cache_dir, "out": out, "tag": tag}
    if baselines is not None:
        over["baselines"] = [] if baselines == "none" else _csv(baselines)
    cfg = BenchConfig.from_file(config_path, **over) if config_path else BenchConfig(
        **{k: v for k, v in over.items() if v is not None})
    if embedding_mode:
        cfg.embedding = {**cfg.embedding, "mode": embedding_mode}
    if no_plots:
        cfg.plots = False
    unknown = [f for f in (cfg.families or []) + cfg.sweep_families if f not in ATTACKS]
    if unknown:
        raise ConfigError(f"unknown attack family {', '.join(unknown)}; known: {', '.join(ATTACKS)}")
    import os
    cfg.command = os.environ.get("POISONDETECT_BENCH_COMMAND") or " ".join(
        shlex.quote(a) for a in ["poisondetect"] + sys.argv[1:])
    try:
        result = run_benchmark(cfg, log=lambda m: click.echo(m, err=True))
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"wrote {cfg.out}/harness_{cfg.tag}.md ({len(result['runs'])} runs, {result['total_wall_s']} s)")
