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


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A Markdown table, ready to paste into BENCHMARKS.md."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join(" --- " for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
