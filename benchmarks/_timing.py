"""Shared timing helpers for the benchmark scripts: medians of repeated runs, tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], *, repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeats` runs, after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of fn() over `repeats` runs (CPU work, no synchronisation)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A Markdown table, ready to paste into BENCHMARKS.md."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join(" --- " for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def add_smoke_option(parser) -> None:
    """``--smoke``: every row and table of the script on tiny sizes, one round, so that the test
    suite can run it (tests/test_benchmarks_run.py). Its numbers measure nothing."""
    parser.add_argument("--smoke", action="store_true",
                        help="every row and table on tiny sizes, one round: checks that the script runs; "
                             "measures nothing")
