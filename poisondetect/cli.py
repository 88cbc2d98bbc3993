"""Command-line interface (thin: parse options, call the library, write outputs).

Exit codes: 0 ran clean, 1 findings of the kinds chosen by ``--fail-on`` (default:
poisoning evidence; privacy and data-quality findings are reported but pass), 2 usage or
input error (one line on stderr, never a traceback).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import PoisonDetectError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _fail(msg: str) -> None:
    # Messages can quote hostile input (file names, field names): never write it raw.
    from .report.text import safe_text
    click.echo(f"poisondetect: error: {safe_text(msg, 0)}", err=True)
    sys.exit(EXIT_ERROR)


def _csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


_FAIL_KINDS = ("poisoning", "privacy", "quality")


def _parse_fail_on(value: str) -> tuple[str, float]:
    """``never``, ``trigger``, ``any``, a comma list of finding kinds (``poisoning``,
    ``privacy``, ``quality``; ``flagged`` is the old name of ``poisoning``), or a fused
    score threshold in [0, 1].  Kinds come back as ``"kinds:poisoning,privacy"``."""
    v = value.strip().lower()
    if v in ("never", "trigger"):
        return v, 0.0
    if v in ("high", "medium", "low"):
        return "severity:" + v, 0.0
    if v == "any":
        return "kinds:" + ",".join(_FAIL_KINDS), 0.0
    parts = [p.strip() for p in v.split(",") if p.strip()]
    parts = ["poisoning" if p == "flagged" else p for p in parts]
    if parts and all(p in _FAIL_KINDS for p in parts):
        return "kinds:" + ",".join(dict.fromkeys(parts)), 0.0
    try:
        f = float(v)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use poisoning, privacy, quality (comma-separated), any, high, medium, low, trigger, never, "
            "or a score threshold in [0, 1]", param_hint="'--fail-on'") from None
    if not 0.0 <= f <= 1.0:
        raise click.BadParameter("score threshold must be in [0, 1]", param_hint="'--fail-on'")
    return "score", f


def _parse_detector_params(items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--param ngram_trigger.alpha=0.01`` -> {"ngram_trigger": {"alpha": 0.01}}"""
    import json
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise click.BadParameter(f"{item!r}: expected DETECTOR.PARAM=VALUE", param_hint="'--param'")
        key, raw = item.split("=", 1)
        det, name = key.split(".", 1)
        try:
            val = json.loads(raw)
        except ValueError:
            val = raw
        out.setdefault(det, {})[name] = val
    return out


def _check_detector_params(params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Reject ``--param`` values for unknown detectors/parameters or of the wrong type
    (checked against the parameter's default), so a typo never runs silently with the
    default nor crashes inside a detector.  Raises :class:`ConfigError` (exit 2)."""
    import inspect
    import json

    from .detectors import registry
    from .errors import ConfigError

    reg = registry()
    out: dict[str, dict[str, Any]] = {}
    for det, kv in params.items():
        if det not in reg:
            raise ConfigError(f"--param: unknown detector {det!r}; known: {', '.join(reg)}")
        sig = inspect.signature(reg[det].__init__).parameters
        for name, val in kv.items():
            if name not in sig or name == "self":
                known = ", ".join(sorted(n for n in sig if n != "self"))
                raise ConfigError(f"--param: detector {det!r} has no parameter {name!r} (has: {known})")
            default = sig[name].default
            ok = True
            if default is inspect.Parameter.empty or default is None:
                pass
            elif isinstance(default, bool):
                ok = isinstance(val, bool)
            elif isinstance(default, int):
                ok = (isinstance(val, int) and not isinstance(val, bool)) or (
                    isinstance(val, float) and val.is_integer())
                val = int(val) if ok else val
            elif isinstance(default, float):
                ok = isinstance(val, (int, float)) and not isinstance(val, bool)
                val = float(val) if ok else val
            elif isinstance(default, str):
                val = val if isinstance(val, str) else json.dumps(val)
            elif isinstance(default, (tuple, list)):
                val = [val] if isinstance(val, str) else val
                ok = isinstance(val, list)
                val = type(default)(val) if ok else val
            if not ok:
                raise ConfigError(f"--param {det}.{name}: expected {type(default).__name__} "
                                  f"(default {default!r}), got {val!r}")
            out.setdefault(det, {})[name] = val
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="poisondetect")
def main() -> None:
    """Find poisoned and backdoored examples in instruction-tuning datasets."""


@main.command("scan")
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), default=None,
              help="Write scores.csv, summary.json, findings.jsonl (and manifest.json) here.")
@click.option("--format", "fmt", default=None, help="Input format (json, jsonl, csv, parquet, hf); default: detect.")
@click.option("--layout", default=None, help="Record layout (alpaca, dolly, sharegpt, messages, ...); default: detect.")
@click.option("--instruction-field", default=None)
@click.option("--input-field", default=None)
@click.option("--response-field", default=None)
@click.option("--system-field", default=None)
@click.option("--source-field", default=None, help="Column naming where each row came from (enables source-skew tests).")
@click.option("--hf-split", "hf_split", default=None, help="Split of a Hugging Face DatasetDict.")
@click.option("--skip-bad", is_flag=True, help="Count, list and skip malformed records instead of stopping at the first.")
@click.option("--detectors", default=None, help="Comma-separated detector ids to run (default: all default-on).")
@click.option("--disable", default=None, help="Comma-separated detector ids to skip.")
@click.option("--param", "params", multiple=True, help="Detector parameter, DETECTOR.PARAM=VALUE (repeatable).")
@click.option("--model", default=None, help="Embedding model: local path or hub name (default: packaged all-MiniLM-L6-v2).")
@click.option("--embedding-mode", type=click.Choice(["auto", "static", "transformer", "none"]), default="auto",
              show_default=True, help="none = lexical detectors only.")
@click.option("--device", default=None, help="Embedding device (cpu, cuda); default: GPU when present.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Embedding cache (default: $POISONDETECT_CACHE or ~/.cache/poisondetect).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None, help="Write an HTML report.")
@click.option("--sarif", "sarif_path", type=click.Path(dir_okay=False), default=None,
              help="Write a SARIF 2.1.0 log (code-scanning dashboards): one rule per detector, levels from severity.")
@click.option("--split", "split_dir", type=click.Path(file_okay=False), default=None,
              help="Write clean.* and quarantine.* in the input's format.")
@click.option("--redact", is_flag=True, help="Redact PII/secrets in the clean split.")
@click.option("--baseline", type=click.Path(dir_okay=False), default=None,
              help="Triage baseline: findings reviewed there are not reported again.")
@click.option("--fail-on", default="poisoning", show_default=True,
              help="Exit 1 when the scan finds: 'poisoning' (dataset-level poisoning evidence: a trigger, a "
                   "planted-looking payload group, or a detector flagging significantly more pairs than its clean "
                   "false-flag budget), 'privacy' (secrets/PII), 'quality' (outliers, duplicates, mismatches), a "
                   "comma list of these, 'any', a severity ('high', 'medium', 'low': the worst finding at least that), "
                   "'trigger' (a trigger only), 'never', or a fused score threshold.")
@click.option("--top", type=int, default=10, show_default=True, help="Flagged pairs shown in the terminal.")
@click.option("--engine", type=click.Choice(["memory", "local", "ray"]), default="memory", show_default=True,
              help="memory: whole dataset in memory; local: stream in chunks (bounded memory, resumable with "
                   "--work-dir); ray: Ray Data across workers (pip install 'poisondetect[ray]').")
@click.option("--chunk-size", type=click.IntRange(min=1), default=20_000, show_default=True,
              help="Pairs per chunk for --engine local/ray.")
@click.option("--work-dir", type=click.Path(file_okay=False), default=None,
              help="Checkpoint folder for --engine local: a killed scan restarted with it resumes.")
@click.option("--global-detectors", "global_detectors", type=click.Choice(["candidates", "skip", "whole"]),
              default="candidates", show_default=True,
              help="--engine local/ray: detectors that need the whole dataset (embedding clusters, kNN) run on "
                   "candidates (flagged + top 2,000 + a 20,000-pair background sample), are skipped, or run on "
                   "the whole input (held in memory).")
@click.option("--ray-address", default=None,
              help="--engine ray: address of a running Ray cluster (default: start a local instance).")
@click.option("--ray-gpus", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="--engine ray: GPUs per worker actor, so embeddings run on GPU workers (e.g. 1, or 0.5 to share).")
@click.option("--jobs", type=click.Choice(["auto", "1", "2"]), default="auto", show_default=True,
              help="Processes. --engine memory: 2 runs the text-only detectors (n-gram test, secrets) beside the "
                   "embedding-based ones; --engine local: 2 runs each pass' chunks in two worker processes. Same "
                   "results either way; auto = 2 from 5,000 pairs (local: always) on a machine with >= 2 CPUs.")
@click.option("-q", "--quiet", is_flag=True, help="No terminal summary.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def scan_cmd(input_path: str, output_dir: str | None, fmt: str | None, layout: str | None,
             instruction_field: str | None, input_field: str | None, response_field: str | None,
             system_field: str | None, source_field: str | None, hf_split: str | None, skip_bad: bool,
             detectors: str | None, disable: str | None, params: tuple[str, ...], model: str | None,
             embedding_mode: str, device: str | None, cache_dir: str | None, seed: int,
             report_path: str | None, sarif_path: str | None, split_dir: str | None, redact: bool, baseline: str | None,
             fail_on: str, top: int, engine: str, chunk_size: int, work_dir: str | None,
             global_detectors: str, ray_address: str | None, ray_gpus: float, jobs: str, quiet: bool,
             no_progress: bool) -> None:
    """Scan INPUT (a file, a save_to_disk folder or a hub name) for poisoned pairs."""
    fail_mode, fail_threshold = _parse_fail_on(fail_on)
    detector_params = _parse_detector_params(params)
    if redact and not split_dir:
        raise click.UsageError("--redact applies to the clean split: add --split DIR")
    if engine != "memory" and split_dir:
        raise click.UsageError("--split needs the whole dataset: use --engine memory")
    if engine != "ray" and (ray_address or ray_gpus):
        raise click.UsageError("--ray-address / --ray-gpus apply to --engine ray")
    try:
        detector_params = _check_detector_params(detector_params)
        progress = None
        if not no_progress and not quiet:
            progress = _progress_factory()
        embedding = {"mode": embedding_mode, "model": model, "device": device}
        load_kwargs = dict(fmt=fmt, layout=layout, instruction_field=instruction_field,
                           input_field=input_field, response_field=response_field, system_field=system_field,
                           source_field=source_field, skip_bad=skip_bad, split=hf_split)
        if engine != "memory":
            from .engine import scan_streaming
            result = scan_streaming(input_path, chunk_size=chunk_size, engine=engine,
                                    detectors=_csv_list(detectors), disable=_csv_list(disable) or (),
                                    detector_params=detector_params, embedding=embedding, cache_dir=cache_dir,
                                    random_state=seed, work_dir=work_dir, progress=progress,
                                    unsupported=global_detectors,
                                    **({"n_jobs": _n_jobs(jobs, None)} if engine == "local" else
                                       {"ray_options": {"address": ray_address, "num_gpus": ray_gpus}}),
                                    **load_kwargs)
            loaded = None
        else:
            result, loaded = _scan_in_memory(input_path, load_kwargs, detectors, disable, detector_params,
                                             embedding, cache_dir, seed, progress, jobs)
        baseline_info = None
        if baseline:
            from .report.triage import apply_baseline, load_baseline
            baseline_info = apply_baseline(result, load_baseline(baseline))
        if output_dir:
            from .report.outputs import write_standard_outputs
            write_standard_outputs(result, output_dir, baseline=baseline_info)
            _maybe_manifest(result, output_dir, input_path, baseline_info)
        if report_path:
            from .report.html import render_html
            settings = {"input": input_path, "seed": seed, "embedding_mode": embedding_mode, "model": model,
                        "detectors": detectors or "default", "disable": disable, "params": detector_params,
                        "skip_bad": skip_bad, "source_field": source_field, "fail_on": fail_on,
                        "baseline": baseline}
            render_html(result, report_path, settings=settings, baseline=baseline_info)
        if sarif_path:
            from .report.sarif import write_sarif
            write_sarif(result, sarif_path, input_uri=Path(input_path).as_posix(), loaded=loaded)
        if split_dir:
            from .report.splits import write_splits
            write_splits(result, loaded, split_dir, redact=redact, baseline=baseline_info)
    except PoisonDetectError as e:
        _fail(str(e))
    except OSError as e:  # unwritable output paths and the like
        _fail(f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}".lstrip(": "))

    if not quiet:
        from .report.terminal import render_summary
        render_summary(result, sys.stdout, top=top, baseline=baseline_info)
        if output_dir:
            click.echo(f"\noutputs written to {output_dir}")
    sys.exit(_exit_code(result, fail_mode, fail_threshold))


def _scan_in_memory(input_path: str, load_kwargs: dict[str, Any], detectors: str | None, disable: str | None,
                    detector_params: dict[str, dict[str, Any]], embedding: dict[str, Any],
                    cache_dir: str | None, seed: int, progress: Any, jobs: str = "1") -> tuple[Any, Any]:
    from .io import load
    from .pipeline import scan

    t0 = time.perf_counter()
    loaded = load(input_path, **load_kwargs)
    load_s = time.perf_counter() - t0
    n_jobs = _n_jobs(jobs, len(loaded.pairs))
    result = scan(loaded.pairs, detectors=_csv_list(detectors), disable=_csv_list(disable) or (),
                  detector_params=detector_params, embedding=embedding, cache_dir=cache_dir,
                  random_state=seed, progress=progress, load_info=loaded.info(), n_jobs=n_jobs)
    result.timings["load"] = load_s
    return result, loaded


def _n_jobs(jobs: str, n_pairs: int | None) -> int:
    """--jobs: auto = 2 on a machine with >= 2 CPUs when the input has >= 5,000 pairs
    (a streamed input, n_pairs None, counts as large)."""
    if jobs != "auto":
        return int(jobs)
    big = n_pairs is None or n_pairs >= 5000
    return 2 if big and (os.cpu_count() or 1) >= 2 else 1


def _exit_code(result: Any, mode: str, threshold: float) -> int:
    if mode == "never":
        return EXIT_CLEAN
    if mode == "trigger":
        return EXIT_FINDINGS if result.triggers else EXIT_CLEAN
    if mode.startswith("severity:"):  # the worst finding's severity at least this
        order = ("high", "medium", "low", "note")
        worst = result.worst_severity()
        return EXIT_FINDINGS if worst is not None and order.index(worst) <= order.index(mode.split(":")[1]) \
            else EXIT_CLEAN
    if mode.startswith("kinds:"):
        kinds = mode.split(":", 1)[1].split(",")
        if "poisoning" in kinds and result.alerts():  # triggers, planted groups, flag rates over budget
            return EXIT_FINDINGS
        found = [k for k in result.kinds_found() if k != "poisoning"]
        return EXIT_FINDINGS if any(k in found for k in kinds) else EXIT_CLEAN
    return EXIT_FINDINGS if (result.scores >= threshold).any() else EXIT_CLEAN


def _maybe_manifest(result: Any, output_dir: str, input_path: str, baseline_info: Any) -> None:
    from .report.manifest import write_manifest
    write_manifest(result, Path(output_dir) / "manifest.json", inputs=[input_path],
                       command=sys.argv, extra={"baseline": baseline_info} if baseline_info else None)


def _progress_factory() -> Any:
    from .report import terminal
    return getattr(terminal, "tqdm_progress", None)


@main.command("detectors")
def detectors_cmd() -> None:
    """List the registered detectors (id, fusion weight, description)."""
    from .detectors import registry
    for det_id, cls in registry().items():
        flags = []
        if not cls.default_enabled:
            flags.append("off by default")
        if cls.signature_based:
            flags.append("signature list")
        if "embeddings" in cls.requires:
            flags.append("embeddings")
        extra = f" [{', '.join(flags)}]" if flags else ""
        click.echo(f"{det_id:<22} {cls.kind:<9} w={cls.weight:<4g} {cls.description}{extra}")


# Subcommands that live with their feature (bench harness, triage/diff).
for _spec in ("poisondetect.bench.cli:bench", "poisondetect.report.cli:triage", "poisondetect.report.cli:diff"):
    _mod, _name = _spec.split(":")
    if importlib.util.find_spec(_mod) is not None:  # present once that feature has landed
        main.add_command(getattr(importlib.import_module(_mod), _name))


if __name__ == "__main__":  # pragma: no cover
    main()
