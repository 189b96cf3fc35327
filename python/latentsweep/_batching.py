"""Choosing how many codes go to the decoder at once.

On CUDA the batch is as large as the memory budget allows. On the CPU the fastest batch
depends on the decoder and the machine (measured on a quiet machine: an MLP 32-256-784 is
fastest at about 1024 codes, a small deconv decoder at 64, 1.6x faster than at 1024), so
`choose_cpu_batch_size` times candidate sizes on the grid's first rows and takes the fastest.
Each size decodes whole work units of its own plan, so a sweep kept in memory keeps the trials'
rows as its first units (only the slower sizes' extra time is lost: the trials may use up to
KEPT_TRIAL_TIME_SHARE of the sweep's estimated time); a store's chunks are one size, so there
the trials are scratch, bounded by TRIAL_TIME_SHARE. Under torchrun the other ranks wait for rank
0's choice, so the budget shrinks with their number (trial_time_share). The trials stop at
PROBE_SHARE of the rows. A sweep too short to pay for trials gets the start size.
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
TRIAL_TIME_SHARE = 0.02  # the trials cost at most this share of the sweep's wall time (trial_time_share)
KEPT_TRIAL_TIME_SHARE = 0.08  # and kept trials take at most this share of its one-process time
PROBE_SHARE = 0.25  # the trials decode at most this share of the rows
# Timed per size, after one untimed unit: TIMED_UNITS units, or TIMED_ROW_SHARE of the rows if
# more. A count of rows, not of seconds, so that the units a search leaves behind are the same
# whenever it tries the same sizes (a memory sweep keeps them: its statistics' bits depend on
# them).
TIMED_UNITS = 2
TIMED_ROW_SHARE = 0.001
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
    cap = min(CUDA_MAX_BATCH if device.type == "cuda" else CPU_MAX_BATCH, total_rows)
    fits = int(budget // max(per_row, 1))
    if fits >= cap:
        return max(1, cap)
    # Limited by memory: a power of two, so that the size (and with it the plan, the statistics'
    # bits, and the shapes a decoder's libraries tune for) stays put from call to call as the
    # free GPU memory drifts; on an H100 the deconv benchmark's sweeps chose 28176, 28264,
    # 28308 and 28396 codes in four calls of one process.
    return 1 << (max(1, fits).bit_length() - 1)


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


def trial_time_share(*, kept: bool, processes: int) -> float:
    """The share of the sweep's one-process time T the trials may take, so that they cost about
    TRIAL_TIME_SHARE of its wall time T / W when W ``processes`` wait for rank 0's choice: t
    seconds of scratch trials cost t; kept ones cost t (1 - 1/W) (their rows are done, but the
    other ranks idled), capped at KEPT_TRIAL_TIME_SHARE (one process: only a slower size's extra
    time is lost)."""
    processes = max(1, processes)
    if not kept:
        return TRIAL_TIME_SHARE / processes
    return KEPT_TRIAL_TIME_SHARE if processes == 1 else min(KEPT_TRIAL_TIME_SHARE, TRIAL_TIME_SHARE / (processes - 1))


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
    unit_rows: Callable[[int], int] | None = None,
    time_share: float = TRIAL_TIME_SHARE,
    probe_share: float = PROBE_SHARE,
    estimate: float | None = None,
    clock: Callable[[], float] | None = None,
) -> BatchChoice:
    """Picks the CPU batch size with the highest measured throughput, spending at most
    ``time_share`` of the sweep's estimated time on the trials.

    ``run(batch_size, first_row, end_row)`` decodes grid rows ``[first_row, end_row)``, whole
    units of ``unit_rows(batch_size)`` rows (default: one batch) at that batch size; the caller
    decides whether the results are kept. The search starts at :func:`start_index` (by
    ``estimate``, seconds per row) and climbs: to smaller sizes while they are faster, else to
    larger ones while they are faster (throughput rises with the batch until the decoder's
    working set leaves the caches, then falls), moving only to a size whose throughput is more
    than MOVE_MARGIN times the best's, and a size that replaced the start size must also beat a
    second timing of it. Each size gets one untimed unit (first calls pay one-off costs), then one
    timed run of TIMED_UNITS units (or of TIMED_ROW_SHARE of the rows, if more).
    The sweep's time is estimated from the fastest rate seen (before any, from ``estimate``, e.g.
    the decoder's first calls at the anchors, or from the untimed unit), and no trial starts that
    the budget cannot pay for, nor past ``probe_share`` of the rows. A candidate that runs out of
    memory ends the climb in its direction (at the start size: the start size is returned, and
    the sweep halves it as it would an explicit size); any other error propagates with a note
    naming the size tried; a run that fails leaves ``row`` where it was. Returns the fastest size
    timed (the start size when none could be) and the row the trials reached.
    """
    clock = clock or _clock
    unit_rows = unit_rows or (lambda size: size)
    sizes = cpu_batch_candidates(max(1, cap))
    first = start_index(sizes, estimate)
    row_limit = min(end, start + max(1, int((end - start) * probe_share)))
    row, spent = start, 0.0
    rate: float | None = estimate  # seconds per row, the fastest seen (the sweep's estimate)
    trials: list[BatchTrial] = []

    def budget_left() -> float:
        return math.inf if rate is None else time_share * (end - start) * rate - spent

    def affordable(units: int, unit: int) -> int:
        """How many of ``units`` units fit in the rows and the time left."""
        by_time = math.inf if rate is None or rate <= 0 else budget_left() // (unit * rate)
        return int(min(units, (row_limit - row) // unit, by_time))

    def timed(size: int, warm_up: bool) -> BatchTrial | None:
        nonlocal row, spent, rate
        unit = max(1, unit_rows(size))
        if affordable(warm_up + TIMED_UNITS, unit) < warm_up + TIMED_UNITS:
            return None  # no room for the untimed unit and the timed ones
        if warm_up:
            began = clock()
            run(size, row, row + unit)  # untimed: allocation, kernel selection
            warm = clock() - began
            spent, row = spent + warm, row + unit
            rate = warm / unit if rate is None else rate  # pessimistic (one-off costs) until something is timed
        wanted = max(TIMED_UNITS, math.ceil(TIMED_ROW_SHARE * (end - start) / unit))
        units = max(1, affordable(wanted, unit))
        began = clock()
        run(size, row, row + units * unit)
        seconds = clock() - began
        spent, row = spent + seconds, row + units * unit
        rate = min(rate, seconds / (units * unit))
        return BatchTrial(size, units * unit, seconds)

    def attempt(size: int, warm_up: bool = True) -> BatchTrial | None:
        try:
            trial = timed(size, warm_up)
        except Exception as error:
            if is_out_of_memory(error):
                # Ends the climb in its direction; at the start size the sweep then runs that size
                # as it would an explicit one: halved, with a warning (the allocator's error
                # propagated from here, where an explicit size of the same value went on).
                return None
            # A size the caller did not ask for: say so, or a decoder that fails only on large
            # batches (a fixed maximum batch) seems to fail for no reason.
            note = (f"latentsweep: raised while batch_size='auto' timed batch size {size} on the CPU's "
                    "first grid rows; pass an explicit batch_size= to skip these trials")
            if note not in getattr(error, "__notes__", ()):  # (a decoder may raise one object again)
                error.add_note(note)
            raise
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
        if best.batch_size != sizes[first]:
            # The start size was timed first, the most exposed to a process's one-off costs
            # (seen: 35% slow in a process's first sweep, choosing a size 5% slower); the
            # neighbour replaces it only if it also beats a second timing.
            again = attempt(sizes[first], warm_up=False)
            if again is not None and best.points_per_second <= again.points_per_second * MOVE_MARGIN:
                best = again
    chosen = best.batch_size if best is not None else sizes[first]
    return BatchChoice(chosen, row, tuple(trials))
