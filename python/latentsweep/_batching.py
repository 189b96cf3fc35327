"""Choosing how many codes go to the decoder at once.

On CUDA the batch is as large as the memory budget allows. On the CPU the fastest batch
depends on the decoder and the machine (measured on a quiet machine: an MLP 32-256-784 is
fastest at about 1024 codes, a small deconv decoder at 64, 1.6x faster than at 1024), so
`choose_cpu_batch_size` times candidate sizes on the grid's first rows and takes the fastest.
The sweep engine plans its work units with the chosen size, so it decodes the trials into a
scratch buffer: they are pure cost, bounded by TRIAL_TIME_SHARE of the sweep's estimated time
(and PROBE_SHARE of its rows). A sweep too short to pay for trials gets the start size.
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
# Where the search starts, and the size of a sweep too short to time: the smallest candidate
# whose chunk takes START_CHUNK_SECONDS by the decoder's first calls (an MLP 32-256-784 at
# ~3 us per code: 1024; a small deconv decoder at ~80 us per code: 64). Shorter chunks pay the fixed cost per decoder call
# and per chunk (tens of microseconds) too often; longer ones only spill out of the caches.
# Without an estimate: CPU_START_BATCH.
START_CHUNK_SECONDS = 0.002
CPU_START_BATCH = 256
TRIAL_TIME_SHARE = 0.02  # the trials (thrown away) cost at most this share of the sweep's time
PROBE_SECONDS = 0.1  # timed per candidate at most (after one untimed chunk)
PROBE_SEGMENTS = 3  # timed runs per candidate when chunks are short (one slow run is noise)
PROBE_SHARE = 0.25  # and at most this share of the rows
# A size replaces the best so far only when it is this much faster: short timings on a shared
# machine differ by a few percent from run to run, and a near tie is better settled by the start
# size (a chunk of a few milliseconds) than by noise. Measured: a deconv decoder whose 64 is 3%
# faster than 256 chose 256 in some sweeps without it.
MOVE_MARGIN = 1.03
# What choose_cpu_batch_size times with (tests replace it): wall time, as users get it. A
# size's throughput is over all its timed rows: the fastest of several runs would favour small
# sizes on a loaded machine, whose short runs slip between other processes more often.
_clock = time.perf_counter


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
    and activations, its float32 copy for the statistics, and two host buffers (CUDA) or the
    previous chunk's outputs (CPU: kept alive while the next chunk decodes)."""
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
    """The batch size chosen on the CPU, the row the trials reached, and what was timed."""

    batch_size: int
    next_row: int
    trials: tuple[BatchTrial, ...]


def cpu_batch_candidates(cap: int) -> list[int]:
    """The sizes `choose_cpu_batch_size` times: CPU_BATCH_CANDIDATES below cap, then cap."""
    return [size for size in CPU_BATCH_CANDIDATES if size < cap] + [cap]


def start_index(sizes: list[int], estimate: float | None) -> int:
    """Index in ``sizes`` of the size the search starts from (see START_CHUNK_SECONDS)."""
    if estimate is None or not estimate > 0:
        return max([i for i, size in enumerate(sizes) if size <= CPU_START_BATCH], default=0)
    return next((i for i, size in enumerate(sizes) if size * estimate >= START_CHUNK_SECONDS), len(sizes) - 1)


def choose_cpu_batch_size(
    run: Callable[[int, int, int], None],
    *,
    start: int,
    end: int,
    cap: int,
    probe_seconds: float = PROBE_SECONDS,
    time_share: float = TRIAL_TIME_SHARE,
    probe_share: float = PROBE_SHARE,
    estimate: float | None = None,
    clock: Callable[[], float] | None = None,
) -> BatchChoice:
    """Picks the CPU batch size with the highest measured throughput, spending at most
    ``time_share`` of the sweep's estimated time on the trials.

    ``run(batch_size, first_row, end_row)`` decodes grid rows ``[first_row, end_row)`` in
    chunks of ``batch_size`` (the caller decides whether the results are kept; the sweep engine
    needs the size before it plans, so its trial rows are scratch). The search starts at
    :func:`start_index` (by ``estimate``, seconds per row) and climbs: to smaller sizes while they
    are faster, else to larger ones while they are faster (throughput rises with the batch until
    the decoder's working set leaves the caches, then falls), moving only to a size whose throughput is
    more than MOVE_MARGIN times the best's. Each size gets one untimed chunk
    (first calls pay one-off costs), then whole chunks, in up to PROBE_SEGMENTS runs, until
    ``probe_seconds`` (or its share of the budget) are timed; a size's throughput is over all its
    timed rows. The sweep's time is estimated from the fastest rate seen (before any, from
    ``estimate``, seconds per row, e.g. the decoder's first call at the anchors, or from the
    untimed chunk), and no trial starts that the budget cannot pay for, nor past
    ``probe_share`` of the rows. A candidate that runs out of memory ends the trials (the error
    propagates when it was the first). Returns the fastest size timed (the start size when none
    could be) and the row the trials reached.
    """
    clock = clock or _clock
    sizes = cpu_batch_candidates(max(1, cap))
    first = start_index(sizes, estimate)
    row_limit = min(end, start + max(1, int((end - start) * probe_share)))
    row, spent = start, 0.0
    rate: float | None = estimate  # seconds per row, the fastest seen (the sweep's estimate)
    trials: list[BatchTrial] = []

    def budget_left() -> float:
        return math.inf if rate is None else time_share * (end - start) * rate - spent

    def timed(size: int) -> BatchTrial | None:
        nonlocal row, spent, rate
        if row + 2 * size > row_limit or (rate is not None and 2 * size * rate > budget_left()):
            return None  # no room for the untimed chunk and one timed chunk
        began = clock()
        run(size, row, row + size)  # untimed: allocation, kernel selection
        warm = clock() - began
        spent, row = spent + warm, row + size
        rate = warm / size if rate is None else rate  # pessimistic (one-off costs) until something is timed
        target = min(probe_seconds, time_share * (end - start) * rate / 4)  # ~4 sizes get tried
        rows_timed, seconds = 0, 0.0
        for segment in range(PROBE_SEGMENTS):
            if seconds >= target:
                break
            per_chunk = (seconds / rows_timed if rows_timed else rate) * size
            share = (target - seconds) / (PROBE_SEGMENTS - segment)  # the last run times the rest
            chunks = max(1, math.ceil(share / per_chunk)) if per_chunk > 0 else 1
            chunks = min(chunks, (row_limit - row) // size, int(budget_left() // per_chunk) if per_chunk > 0 else chunks)
            if chunks < 1:
                break
            began = clock()
            run(size, row, row + chunks * size)
            took = clock() - began
            rows_timed, seconds, spent, row = rows_timed + chunks * size, seconds + took, spent + took, row + chunks * size
            rate = min(rate, seconds / rows_timed)
        return BatchTrial(size, rows_timed, seconds) if rows_timed else None

    def attempt(size: int) -> BatchTrial | None:
        try:
            trial = timed(size)
        except Exception as error:
            if not is_out_of_memory(error) or not trials:
                raise
            return None
        if trial is not None:
            trials.append(trial)
        return trial

    best = attempt(sizes[first])
    if best is not None:
        for step in (-1, 1):  # down while faster; up only when the first step down was not
            index, moved = first + step, False
            while 0 <= index < len(sizes):
                trial = attempt(sizes[index])
                if trial is None or trial.points_per_second <= best.points_per_second * MOVE_MARGIN:
                    break
                best, moved, index = trial, True, index + step
            if moved:
                break
    chosen = best.batch_size if best is not None else sizes[first]
    return BatchChoice(chosen, row, tuple(trials))
