"""Choosing how many codes go to the decoder at once.

On CUDA the batch is as large as the memory budget allows. On the CPU the fastest batch
depends on the decoder and the machine (measured: an MLP is fastest at thousands of codes, a
small deconv decoder at a few hundred, 1.85x faster than at 8192), so `choose_cpu_batch_size`
times a few candidate sizes on the grid's first rows and takes the fastest. `run` decides what
happens to the trial rows: the sweep engine plans its work units with the chosen size, so it
decodes the trials into a scratch buffer (bounded by PROBE_SHARE and PROBE_SECONDS).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

CPU_MAX_BATCH = 8192  # beyond this CPU decoders gain nothing and latency per chunk grows
CUDA_MAX_BATCH = 65536
CPU_BATCH_CANDIDATES = (64, 256, 1024, 4096)  # and the memory cap; x4 apart: clearly different
PROBE_SECONDS = 0.03  # timed per candidate (after one untimed chunk), in PROBE_SEGMENTS+ runs
PROBE_SEGMENTS = 3
PROBE_SHARE = 0.25  # at most this share of the rows left is decoded while choosing
# What choose_cpu_batch_size times with (tests replace it): wall time, as users get it. A
# size's throughput is over all its timed rows: the fastest of several runs would favour small
# sizes on a loaded machine, whose short runs slip between other processes more often.
_clock = time.perf_counter
PROBE_STOP = 0.75  # stop trying larger sizes below this fraction of the best throughput (noise)


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_budget(device: torch.device) -> int:
    """Bytes a sweep's buffers may use: half the free GPU memory, or 1 GiB (at most an eighth
    of the RAM) on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    ram = physical_memory()
    return min(1 << 30, ram // 8) if ram else 1 << 30


def bytes_per_row(*, latent_dim: int, features: int, output_bytes: int, activation_bytes: float) -> float:
    """Memory one grid point needs while in flight: two code buffers, the decoder's output
    and activations, its float32 copy for the statistics and two host buffers."""
    return 2 * latent_dim * 4 + features * (3 * output_bytes + 4) + activation_bytes


def auto_batch_size(
    *,
    device: torch.device,
    budget: int,
    latent_dim: int,
    features: int,
    output_bytes: int,
    activation_bytes: float,
    total_rows: int,
) -> int:
    per_row = bytes_per_row(
        latent_dim=latent_dim, features=features, output_bytes=output_bytes, activation_bytes=activation_bytes
    )
    cap = CUDA_MAX_BATCH if device.type == "cuda" else CPU_MAX_BATCH
    return int(max(1, min(budget // max(per_row, 1), cap, total_rows)))


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError."""
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text
    )


@dataclass(frozen=True)
class BatchTrial:
    """One candidate batch size timed on real chunks of the sweep."""

    batch_size: int
    rows: int  # timed rows (the untimed warm-up chunk not included)
    seconds: float  # their wall time

    @property
    def points_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else math.inf


@dataclass(frozen=True)
class BatchChoice:
    """The batch size chosen on the CPU, the row the sweep goes on from, and what was timed."""

    batch_size: int
    next_row: int
    trials: tuple[BatchTrial, ...]


def cpu_batch_candidates(cap: int) -> list[int]:
    """The sizes `choose_cpu_batch_size` times: CPU_BATCH_CANDIDATES below cap, then cap."""
    return [size for size in CPU_BATCH_CANDIDATES if size < cap] + [cap]


def choose_cpu_batch_size(
    run: Callable[[int, int, int], None],
    *,
    start: int,
    end: int,
    cap: int,
    probe_seconds: float = PROBE_SECONDS,
    probe_share: float = PROBE_SHARE,
    clock: Callable[[], float] | None = None,
) -> BatchChoice:
    """Picks the CPU batch size with the highest measured throughput.

    ``run(batch_size, first_row, end_row)`` decodes grid rows ``[first_row, end_row)`` in
    chunks of ``batch_size`` (the caller decides whether the results are kept; the sweep engine
    needs the size before it plans, so its trial rows are scratch). Candidates (:func:`cpu_batch_candidates`) are tried from the smallest up, on
    consecutive rows from ``start``: one untimed chunk (first calls pay one-off costs), then
    whole chunks in at least PROBE_SEGMENTS timed runs until ``probe_seconds`` are timed (a
    size's throughput is over all its timed rows). Trying stops when a candidate is clearly
    slower than the best so far (throughput rises with the batch until the decoder's working
    set leaves the caches, then falls), at ``end``, or once ``probe_share`` of the rows are
    used. A candidate that runs out of memory ends the trials (the error propagates when it
    was the first). Returns the fastest size (``cap`` when the rows are too few to time any:
    then one or a few calls do it all) and the row to go on from.
    """
    clock = clock or _clock
    row = start
    budget_end = start + max(1, int((end - start) * probe_share))
    trials: list[BatchTrial] = []
    best: BatchTrial | None = None
    for size in cpu_batch_candidates(max(1, cap)):
        if row + 2 * size > min(end, budget_end):  # room for the warm-up and one timed chunk
            break
        segments: list[tuple[int, float]] = []  # (rows, seconds) of each timed run
        try:
            run(size, row, row + size)  # untimed: allocation, kernel selection
            row += size
            timed = 0.0
            while timed < probe_seconds or len(segments) < PROBE_SEGMENTS:
                per_chunk = timed / (sum(rows for rows, _ in segments) // size) if segments else 0.0
                target = probe_seconds / PROBE_SEGMENTS
                chunks = max(1, math.ceil(target / per_chunk)) if per_chunk > 0 else 1
                chunks = min(chunks, (min(end, budget_end) - row) // size)
                if chunks < 1:
                    break
                began = clock()
                run(size, row, row + chunks * size)
                seconds = clock() - began
                segments.append((chunks * size, seconds))
                timed += seconds
                row += chunks * size
        except Exception as error:
            if not is_out_of_memory(error) or not trials:
                raise
            break
        if not segments:
            break
        trial = BatchTrial(size, sum(rows for rows, _ in segments), sum(seconds for _, seconds in segments))
        trials.append(trial)
        if best is not None and trial.points_per_second < PROBE_STOP * best.points_per_second:
            break
        if best is None or trial.points_per_second > best.points_per_second:
            best = trial
    chosen = best.batch_size if best is not None else max(1, cap)
    return BatchChoice(chosen, row, tuple(trials))
