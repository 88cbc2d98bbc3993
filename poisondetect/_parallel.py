"""Forked worker processes: the pool a scan runs its side work in, and the error raised
when one of its workers dies."""
from __future__ import annotations

from typing import Any

from .errors import PoisonDetectError


def fork_pool(max_workers: int = 1) -> Any:
    """A ``ProcessPoolExecutor`` of ``max_workers`` processes started by fork, or None
    where there is no fork (the caller then does the work itself).  Fork, as torch's
    DataLoader workers do: a spawned worker re-imports the caller's ``__main__``, which
    breaks scripts without a main guard; the workers never touch torch."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    if "fork" not in mp.get_all_start_methods():  # pragma: no cover - platforms without fork
        return None
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=mp.get_context("fork"))


def worker_died(what: str, advice: str = "") -> PoisonDetectError:
    """The error for a dead worker process: ``what`` names it ("the worker process of
    ..."), ``advice`` is appended to "scan again with one process (--jobs 1)"."""
    return PoisonDetectError(f"{what} died, e.g. killed for lack of memory; "
                             f"scan again with one process (--jobs 1){advice}")


def result_of(future: Any, what: str, advice: str = "") -> Any:
    """``future.result()``; a broken pool (its worker died) raises :func:`worker_died`."""
    from concurrent.futures.process import BrokenProcessPool
    try:
        return future.result()
    except BrokenProcessPool as e:
        raise worker_died(what, advice) from e
