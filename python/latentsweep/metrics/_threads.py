"""Metric computations run on one CPU thread.

Each op of a metric touches 10^5-10^6 numbers: too little for threads to pay off, and on a busy
machine OpenMP and BLAS threads that wait for each other cost far more than they save (measured
on a loaded 2-core machine: MIG 0.84 s -> 0.09 s, IRS 1.2 s -> 0.38 s, continuous SAP 244 ms ->
1 ms, explicitness' logistic regressions 30 s -> 4.7 s). The user's encoder is not affected:
the sampling metrics call it outside this scope.

torch's count is the calling thread's own (OpenMP's per-thread setting), but a thread that never
set or read it reads the count last set in any thread; numpy's/scikit-learn's pools (through
threadpoolctl) are process-wide. So calls from several Python threads take turns: each one sets
1 and restores what it found with no other call inside (when they interleaved, a call restored
another's 1 and left the BLAS pool, and new threads' torch, at one thread for good). They take
no longer in turn: each computes on one thread anyway. Another Python thread's BLAS runs on one
thread meanwhile.
"""

from __future__ import annotations

import contextlib

import torch

from .._blas_threads import turn


@contextlib.contextmanager
def one_cpu_thread():
    from threadpoolctl import threadpool_limits

    # (turn is re-entrant: the metrics nest, evaluate's FactorVAE/BetaVAE, a score that calls another;
    # only library code runs inside: the sampling metrics call the user's encoder outside this scope)
    with turn:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with threadpool_limits(limits=1):
                yield
        finally:
            torch.set_num_threads(previous)
