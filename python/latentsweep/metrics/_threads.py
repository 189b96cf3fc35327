"""Metric computations run on one CPU thread.

Each op of a metric touches 10^5-10^6 numbers: too little for threads to pay off, and on a busy
machine OpenMP and BLAS threads that wait for each other cost far more than they save (measured
on a loaded 2-core machine: MIG 0.84 s -> 0.09 s, IRS 1.2 s -> 0.38 s, continuous SAP 244 ms ->
1 ms, explicitness' logistic regressions 30 s -> 4.7 s). The user's encoder is not affected:
the sampling metrics call it outside this scope.

The thread counts are process-wide (torch's, and numpy's/scikit-learn's pools through
threadpoolctl) and restored on exit; another Python thread using torch meanwhile runs on one
thread too.
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def one_cpu_thread():
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(previous)
