"""How many workers the n-gram analysis uses, and the collector pause around it."""
from __future__ import annotations

import contextlib
import gc
from typing import Iterator



@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the analysis (restored after it, also on
    error).  The analysis makes few reference cycles but many containers (candidate
    dicts, token lists), and each full collection would walk them and everything else
    alive (the loaded dataset): ~10% of the T0 stage's wall.  Reference counting still
    frees everything as usual."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def n_workers(n_jobs: int | None, n_texts: int) -> int:
    """Workers of the analysis: ``n_jobs``, or by default (None) 2 for >= 20,000 texts on
    a machine with >= 2 CPUs when this is a main process (a scan's worker process, e.g.
    ``scan(n_jobs=2)``'s, already shares the CPUs with the rest of the scan).  With the
    compiled kernels they are threads (the kernels release the GIL): the instructions are
    tokenised beside the responses, the n-gram orders are indexed in parallel, the
    payload-family counts run beside the single-candidate counts, scipy's exact tails are
    split; without them, a forked process tokenises part of the instructions.  The result
    does not depend on it (tests/test_kernels.py)."""
    if n_jobs is not None:
        return max(1, int(n_jobs))
    import multiprocessing as mp
    import os
    if n_texts < 20_000 or (os.cpu_count() or 1) < 2 or mp.parent_process() is not None:
        return 1
    return 2
