"""The BLAS thread pool (OpenBLAS's, under numpy's and scipy's LAPACK) set for one computation.

The pool is the process's: set from two Python threads at once, each restoring what it found,
the later one restored the other's limit for good. So one call at a time sets it, under
``turn``, which the metrics' one-thread scope (metrics._threads) takes too.
"""

from __future__ import annotations

import contextlib
import threading

import torch

# Re-entrant: the metrics nest, and a computation inside a metric's scope sets the pool again.
turn = threading.RLock()


@contextlib.contextmanager
def blas_on_torch_threads():
    """BLAS runs on torch's thread count meanwhile (``torch.set_num_threads``: what the caller's
    other steps run on; OpenBLAS's own is OPENBLAS_NUM_THREADS or OMP_NUM_THREADS, else every
    core). While another thread holds ``turn`` (a metric, another such call), the pool is left
    as that one set it: no call waits for another's, nor restores what another set."""
    if not turn.acquire(blocking=False):
        yield
        return
    try:
        from threadpoolctl import threadpool_limits  # (imported where used, as scipy is)

        with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):
            yield
    finally:
        turn.release()
