"""batch_size="auto" on the CPU: candidate sizes timed on the sweep's first rows (within a share
of the sweep's time and rows), the fastest chosen, recorded in the result and the store, reused
on resume, and overridden by an explicit batch_size; the results never depend on the size. A
sweep kept in memory keeps the trials' rows as its first work units; a store's trials are
scratch.

Nothing here times anything for real: a fake clock, advanced by a decoder whose cost per
code depends on the batch, stands in for the machine (no timing assertions in tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sweep_models import rowwise_decoder

import latentsweep as ls
from latentsweep import _batching
from latentsweep._batching import choose_cpu_batch_size, cpu_batch_candidates
from latentsweep.plan import make_plan
from latentsweep.stores import SweepStore

FASTEST = 256


def seconds_per_code(size: int) -> float:
    """A decoder cost model whose throughput peaks at FASTEST codes per call."""
    return 1e-4 * (1 + abs(math.log(size / FASTEST, 4)))


class FakeMachine:
    """A clock, and a run(size, first, end) that advances it as decoding those rows would."""

    def __init__(self, warmup_seconds: float = 0.0, fail_at: int | None = None, error=None):
        self.now, self.calls, self.warmup_seconds = 0.0, [], warmup_seconds
        self.fail_at, self.error = fail_at, error

    def clock(self) -> float:
        return self.now

    def run(self, size: int, first: int, end: int) -> None:
        if size == self.fail_at:
            raise self.error
        first_call = all(s != size for s, _, _ in self.calls)
        self.calls.append((size, first, end))
        self.now += (end - first) * seconds_per_code(size) + (self.warmup_seconds if first_call else 0)


def test_the_fastest_size_is_chosen_on_contiguous_rows():
    machine = FakeMachine(warmup_seconds=0.05)  # a slow first call per size: untimed
    choice = choose_cpu_batch_size(machine.run, start=100, end=1_000_000, cap=8192, clock=machine.clock)
    assert choice.batch_size == FASTEST
    # every row from start to next_row was decoded exactly once, in whole chunks of each size
    assert machine.calls[0][1] == 100 and choice.next_row == machine.calls[-1][2]
    for (_, _, end), (_, first, _) in zip(machine.calls, machine.calls[1:]):
        assert first == end
    assert all((end - first) % size == 0 for size, first, end in machine.calls)
    # from the start size down (slower), then up (slower): the start size wins
    assert [t.batch_size for t in choice.trials] == [_batching.CPU_START_BATCH, 64, 1024]
    # each size: one untimed chunk, then TIMED_ROW_SHARE of the rows (at least TIMED_UNITS chunks)
    for trial in choice.trials:
        size = trial.batch_size
        assert trial.rows == size * max(_batching.TIMED_UNITS, math.ceil(_batching.TIMED_ROW_SHARE * 999_900 / size))
    assert choice.next_row - 100 <= _batching.PROBE_SHARE * (1_000_000 - 100)


def unit_rows(size: int) -> int:
    """Units of whole traversals of 21 steps, about 4 batches (as plan.make_plan makes them)."""
    return 21 * max(1, 4 * size // 21)


def test_trials_decode_whole_units_and_leave_the_same_units_whenever_they_try_the_same_sizes():
    """A memory sweep keeps the trials' units, so how many rows each size decodes is a count of
    units, never of seconds: two searches on machines with other timings (a slow first call,
    noise) that try the same sizes leave the same units behind."""
    calls = []
    for warmup in (0.0, 0.3):
        machine = FakeMachine(warmup_seconds=warmup)
        choice = choose_cpu_batch_size(machine.run, start=0, end=2_100_000, cap=8192, unit_rows=unit_rows,
                                       clock=machine.clock)
        assert choice.batch_size == FASTEST and choice.next_row == machine.calls[-1][2]
        for size, first, end in machine.calls:
            assert first % 21 == 0 and (end - first) % unit_rows(size) == 0
        calls.append(machine.calls)
    assert calls[0] == calls[1]


@pytest.mark.parametrize("fastest", [64, 256, 1024, 4096, 8192])
def test_the_search_climbs_to_the_peak_from_either_side(monkeypatch, fastest):
    monkeypatch.setattr(__import__(__name__), "FASTEST", fastest)
    machine = FakeMachine()
    choice = choose_cpu_batch_size(machine.run, start=0, end=10_000_000, cap=8192, clock=machine.clock)
    assert choice.batch_size == fastest
    tried = [t.batch_size for t in choice.trials]
    if fastest != _batching.CPU_START_BATCH:  # the start size was timed once more at the end
        assert tried.pop() == _batching.CPU_START_BATCH
    assert tried[0] == _batching.CPU_START_BATCH and len(tried) == len(set(tried))
    # a climb stops at the first slower size: it never goes more than one size past the
    # start or the peak
    sizes = cpu_batch_candidates(8192)
    low, high = sorted([sizes.index(_batching.CPU_START_BATCH), sizes.index(fastest)])
    assert set(tried) <= set(sizes[max(0, low - 1) : high + 2])


def test_a_size_faster_only_within_the_margin_does_not_replace_the_start_size(monkeypatch):
    """Near ties stay with the start size; a size faster by more than MOVE_MARGIN wins."""
    for gain, chosen in ((1.02, _batching.CPU_START_BATCH), (1.05, 64)):
        def cost(size: int, gain=gain) -> float:  # 64 faster than the start size by `gain`, the rest slower
            return 1e-4 / gain if size == 64 else 1e-4 * (1 + abs(math.log(size / _batching.CPU_START_BATCH, 4)))
        monkeypatch.setattr(__import__(__name__), "seconds_per_code", cost)
        machine = FakeMachine()
        choice = choose_cpu_batch_size(machine.run, start=0, end=10_000_000, cap=8192, clock=machine.clock)
        assert choice.batch_size == chosen, gain
        assert [t.batch_size for t in choice.trials][:2] == [_batching.CPU_START_BATCH, 64]


def test_the_start_size_is_timed_again_before_a_neighbour_replaces_it():
    """The start size is timed first, when a process's one-off costs may outlast its untimed
    unit: a neighbour that beat that first timing must beat a second one too."""

    class SlowStart(FakeMachine):
        def run(self, size, first, end):  # the first timed run costs three times as much
            before = self.now
            super().run(size, first, end)
            if len(self.calls) == 2:
                self.now += 2 * (self.now - before)

    machine = SlowStart()
    choice = choose_cpu_batch_size(machine.run, start=0, end=1_000_000, cap=8192, clock=machine.clock)
    start = _batching.CPU_START_BATCH
    assert [t.batch_size for t in choice.trials] == [start, 64, start]  # 64 beat the slow first timing
    assert choice.batch_size == start == FASTEST
    assert machine.calls[-1][0] == start and machine.calls[-2][0] != start  # no untimed unit again
    assert choice.next_row == machine.calls[-1][2]


@pytest.mark.parametrize("end", [20_000, 200_000, 2_000_000])
def test_the_trials_cost_at_most_their_share_of_the_sweep(end):
    machine = FakeMachine()
    choice = choose_cpu_batch_size(machine.run, start=0, end=end, cap=8192, clock=machine.clock)
    best_rate = min(seconds_per_code(t.batch_size) for t in choice.trials) if choice.trials else None
    sweep_seconds = end * (best_rate or seconds_per_code(choice.batch_size))
    # the budget is checked before each run: it may be exceeded by at most one chunk
    largest_chunk = max(size * seconds_per_code(size) for size, _, _ in machine.calls)
    assert machine.now <= _batching.TRIAL_TIME_SHARE * sweep_seconds + largest_chunk


@pytest.mark.parametrize("processes", [1, 2, 3, 8, 64])
def test_the_trials_budget_shrinks_with_the_ranks_waiting_for_them(processes):
    """Under torchrun the other ranks wait while rank 0 times sizes: scratch trials of t seconds
    cost the sweep's wall time t, kept ones t (1 - 1/W); either way about TRIAL_TIME_SHARE of
    the wall time T / W, and kept trials of one process at most KEPT_TRIAL_TIME_SHARE of T."""
    wall = 1 / processes  # T = 1
    scratch = _batching.trial_time_share(kept=False, processes=processes)
    kept = _batching.trial_time_share(kept=True, processes=processes)
    assert scratch / wall == pytest.approx(_batching.TRIAL_TIME_SHARE)
    assert kept * (1 - 1 / processes) / wall <= _batching.TRIAL_TIME_SHARE + 1e-12
    assert kept <= _batching.KEPT_TRIAL_TIME_SHARE and kept >= scratch
    if processes == 1:
        assert kept == _batching.KEPT_TRIAL_TIME_SHARE


def test_the_rows_used_for_choosing_stay_within_the_share():
    machine = FakeMachine()
    choice = choose_cpu_batch_size(machine.run, start=0, end=3000, cap=8192, clock=machine.clock)
    assert choice.next_row <= 0.25 * 3000
    assert choice.batch_size in cpu_batch_candidates(8192)


def test_a_sweep_too_short_to_pay_for_trials_runs_none():
    """With an estimate of the decoder's cost (the sweep's first calls, at the anchors), a sweep
    whose budget cannot pay for one trial chunk is not probed at all: it gets the start size."""
    machine = FakeMachine()
    estimate = seconds_per_code(64)
    choice = choose_cpu_batch_size(machine.run, start=0, end=2_000, cap=8192, clock=machine.clock, estimate=estimate)
    start = cpu_batch_candidates(8192)[_batching.start_index(cpu_batch_candidates(8192), estimate)]
    assert (choice.batch_size, choice.trials, machine.calls) == (start, (), [])


@pytest.mark.parametrize(("seconds_per_code", "start"), [
    (3e-6, 1024),  # an MLP 32-256-784 on this machine
    (8e-5, 64),    # a small deconv decoder producing 64x64 images
    (1e-9, 8192),  # nothing fills a chunk: the largest
    (None, 256),   # no estimate
])
def test_the_search_starts_where_a_chunk_takes_a_few_milliseconds(seconds_per_code, start):
    sizes = cpu_batch_candidates(8192)
    assert sizes[_batching.start_index(sizes, seconds_per_code)] == start
    assert _batching.start_index([40], seconds_per_code) == 0


def test_too_few_rows_to_time_anything_takes_the_start_size():
    machine = FakeMachine()
    choice = choose_cpu_batch_size(machine.run, start=0, end=300, cap=300, clock=machine.clock)
    assert (choice.batch_size, choice.next_row, choice.trials, machine.calls) == (_batching.CPU_START_BATCH, 0, (), [])
    small = choose_cpu_batch_size(machine.run, start=0, end=40, cap=40, clock=machine.clock)
    assert (small.batch_size, machine.calls) == (40, [])  # the cap, below the start size


def test_candidates_stop_at_the_memory_cap():
    assert cpu_batch_candidates(8192) == [64, 256, 1024, 4096, 8192]
    assert cpu_batch_candidates(1000) == [64, 256, 1000]
    assert cpu_batch_candidates(64) == [64]
    assert cpu_batch_candidates(5) == [5]


def test_out_of_memory_at_a_larger_size_keeps_the_best_so_far():
    oom = RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB")
    machine = FakeMachine(fail_at=1024, error=oom)
    choice = choose_cpu_batch_size(machine.run, start=0, end=1_000_000, cap=8192, clock=machine.clock)
    assert choice.batch_size == FASTEST and choice.next_row == machine.calls[-1][2]
    first = _batching.CPU_START_BATCH  # out of memory there: the start size, for the sweep to halve
    at_first = choose_cpu_batch_size(FakeMachine(fail_at=first, error=oom).run, start=0, end=1_000_000, cap=8192)
    assert at_first.batch_size == first and at_first.trials == () and at_first.next_row == 0
    failing = FakeMachine(fail_at=1024, error=ValueError("bad decoder"))
    with pytest.raises(ValueError, match="bad decoder"):
        choose_cpu_batch_size(failing.run, start=0, end=1_000_000, cap=8192, clock=failing.clock)


# -- through traverse ------------------------------------------------------------------------

ANCHORS = torch.randn(64, 8, generator=torch.Generator().manual_seed(5))
STEPS = 200  # 64 x 8 x 200 = 102,400 rows: the time share pays for trying 64 and 256
PROBE_CALLS = 2  # the anchors' own decode, before the sweep's: two anchors, then the other 62


class ClockedDecoder:
    """rowwise_decoder on a fake clock: each call costs what seconds_per_code says. Records the
    batch of every call; raises KeyboardInterrupt on call number `stop_at`."""

    def __init__(self, stop_at: int | None = None):
        self.now, self.sizes, self.stop_at = 0.0, [], stop_at

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        self.sizes.append(codes.shape[0])
        if len(self.sizes) == self.stop_at:
            raise KeyboardInterrupt
        self.now += codes.shape[0] * seconds_per_code(codes.shape[0])
        return rowwise_decoder(codes)


@pytest.fixture
def decoder(monkeypatch) -> ClockedDecoder:
    decoder = ClockedDecoder()
    monkeypatch.setattr(_batching, "_clock", lambda: decoder.now)
    return decoder


def sweep(decoder, **kwargs) -> ls.TraversalResult:
    return ls.traverse(decoder, ANCHORS, steps=STEPS, progress=False, **kwargs)


def assert_same_sweep(a: ls.TraversalResult, b: ls.TraversalResult) -> None:
    for name in ["effect", "dim_effect", "sensitivity", "ranking"]:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    if b.outputs is not None:
        assert np.array_equal(np.asarray(a.outputs), np.asarray(b.outputs))


def chunk_sizes(batch_size: int, trial_units=()) -> list[int]:
    """The batch sizes a CPU sweep of this grid decodes at, unit by unit (a unit's last batch
    short, as it is), its trial units first."""
    plan = make_plan(ANCHORS.shape[0] * ANCHORS.shape[1] * STEPS, STEPS, batch_size, padded=False,
                     trial_units=trial_units)
    sizes = []
    for unit in range(plan.num_units):
        (start, stop), size = plan.unit_rows_of(unit), plan.unit_batch_size(unit)
        sizes += [min(size, stop - row) for row in range(start, stop, size)]
    return sizes


def recorded_batch_size(path) -> int:
    """The batch size in a store's plan (what every rank, shard and resume decodes with)."""
    return SweepStore(path, writable=False).plan.batch_size


def test_auto_chooses_by_throughput_and_a_memory_sweep_keeps_the_trials_rows(decoder):
    result = sweep(decoder)
    assert result.batch_size == FASTEST
    run_sizes = decoder.sizes[PROBE_CALLS:]  # (the probe's second call's cost: the estimate)
    start = _batching.start_index(cpu_batch_candidates(8192), seconds_per_code(64))
    assert cpu_batch_candidates(8192)[start] == 64 and run_sizes[0] == 64  # then up to 256
    # Every row decoded once: the trials decoded whole units of each size tried (units of 200
    # rows at 64, of 1000 at 256: one untimed, TIMED_UNITS timed; then 64 timed again, as 256
    # replaced it), kept as the sweep's first units; the sweep went on at the chosen size.
    assert sum(run_sizes) == result.num_points == result.points_computed
    trial_units = ([(r, r + 200, 64) for r in range(0, 600, 200)] + [(r, r + 1000, 256) for r in range(600, 3600, 1000)]
                   + [(r, r + 200, 64) for r in range(3600, 4000, 200)])
    assert run_sizes == chunk_sizes(FASTEST, trial_units)
    trials = run_sizes[: sum(-(-(stop - start) // size) for start, stop, size in trial_units)]
    assert sum(trials) == 4000 <= _batching.PROBE_SHARE * result.num_points
    trial_seconds = sum(size * seconds_per_code(size) for size in trials)
    sweep_seconds = result.num_points * seconds_per_code(64)  # by the estimate before any trial
    assert trial_seconds <= _batching.KEPT_TRIAL_TIME_SHARE * sweep_seconds


def test_a_stores_trials_are_scratch_within_their_share_of_the_sweep(decoder, tmp_path):
    result = sweep(decoder, out=tmp_path / "sweep.zarr")
    assert result.batch_size == FASTEST
    run_sizes = decoder.sizes[PROBE_CALLS:]
    sweep_sizes = chunk_sizes(FASTEST)  # every row, at the chosen size, after the trials
    assert run_sizes[-len(sweep_sizes):] == sweep_sizes
    trials = run_sizes[: len(run_sizes) - len(sweep_sizes)]
    trial_seconds = sum(size * seconds_per_code(size) for size in trials)
    sweep_seconds = result.num_points * seconds_per_code(FASTEST)
    assert 0 < sum(trials) <= _batching.PROBE_SHARE * result.num_points
    # checked before each run: at most one chunk over
    assert trial_seconds <= _batching.TRIAL_TIME_SHARE * sweep_seconds + FASTEST * seconds_per_code(FASTEST)


def test_results_are_bitwise_identical_whatever_the_batch_size(decoder):
    auto = sweep(decoder)
    for batch_size in [13, 64, 1000, result_total := ANCHORS.shape[0] * 8 * STEPS]:
        assert_same_sweep(sweep(rowwise_decoder, batch_size=batch_size), auto)
    assert auto.num_points == result_total


def test_the_store_records_the_choice_and_a_resume_goes_on_with_it(decoder, tmp_path):
    path = tmp_path / "sweep.zarr"
    full = sweep(rowwise_decoder, batch_size=100)
    stopping = ClockedDecoder(stop_at=30)  # after the trials (5 calls), in the 256s
    decoder.__dict__.update(stopping.__dict__)
    with pytest.raises(KeyboardInterrupt):
        sweep(decoder, out=path)
    status = ls.sweep_status(path)
    assert recorded_batch_size(path) == FASTEST and 0 < status.done_rows < full.num_points
    resumer = ClockedDecoder()
    decoder.__dict__.update(resumer.__dict__)
    resumed = sweep(decoder, out=path, resume=True)
    assert resumed.batch_size == FASTEST
    assert set(decoder.sizes[PROBE_CALLS:]) == set(chunk_sizes(FASTEST))  # no new trials: the recorded size
    assert_same_sweep(resumed, full)


def test_an_explicit_batch_size_overrides_auto_and_is_kept_on_resume(decoder, tmp_path):
    path = tmp_path / "sweep.zarr"
    decoder.stop_at = 20
    with pytest.raises(KeyboardInterrupt):
        sweep(decoder, out=path, batch_size=100)
    assert set(decoder.sizes[PROBE_CALLS:]) <= set(chunk_sizes(100))
    assert recorded_batch_size(path) == 100
    decoder.__dict__.update(ClockedDecoder().__dict__)
    resumed = sweep(decoder, out=path, resume=True)  # batch_size="auto": the recorded one
    assert resumed.batch_size == 100 and set(decoder.sizes[PROBE_CALLS:]) <= set(chunk_sizes(100))
    decoder.__dict__.update(ClockedDecoder().__dict__)
    assert sweep(decoder, batch_size=300).batch_size == 300 and decoder.sizes[PROBE_CALLS:] == chunk_sizes(300)


def test_the_progress_bar_counts_the_kept_trials_as_they_run(decoder, monkeypatch):
    """A long sweep's trials take seconds to minutes: its bar shows them, then every row once."""
    from latentsweep import _progress

    class RecordingBar(_progress.NoBar):
        def __init__(self):
            self.n, self.total, self.events = 0, None, []

        def update(self, count):
            self.n += count
            self.events.append(("update", count))

        def refresh(self):
            self.events.append(("recount", self.n, self.total))

    bars = []
    monkeypatch.setattr(_progress, "bar", lambda show, **kwargs: bars.append(RecordingBar()) or bars[-1])
    result = ls.traverse(decoder, ANCHORS, steps=STEPS, progress=True)
    (bar,) = bars
    recount = next(i for i, event in enumerate(bar.events) if event[0] == "recount")
    trial_rows = sum(event[1] for event in bar.events[:recount])
    assert trial_rows == 4000  # the kept trial units (see the test above), counted while they ran
    assert bar.events[recount] == ("recount", 4000, result.num_points)
    assert bar.n == bar.total == result.num_points  # every row once


def test_the_probe_grows_its_batches_after_the_first_by_the_outputs_size_alone():
    """With CUDA's growth, the anchors' probe measures memory on its
    first 64, then decodes CUDA_PROBE_ROWS at a time (probed 64 at a time, 6400 anchors took
    10 ms of a 28 ms H100 sweep), fewer when their outputs would exceed CUDA_PROBE_OUTPUT_BYTES:
    sizes set by the outputs' shape, not the free memory, so the anchors' outputs are the same in
    every rank and resume."""
    from types import SimpleNamespace

    from latentsweep.decoder_probe import CUDA_PROBE_OUTPUT_BYTES, CUDA_PROBE_ROWS, probe_anchors, probe_growth

    grow = probe_growth(torch.device("cuda"))  # (nothing runs on CUDA: the sizes CUDA's probe uses)

    sizes: list[int] = []

    def decoder(width):
        def decode(codes):
            sizes.append(codes.shape[0])
            return codes[:, :1].expand(-1, width) * 2
        return decode

    spec = SimpleNamespace(anchors=torch.randn(2 * CUDA_PROBE_ROWS + 100, 4))
    probe = probe_anchors("latentsweep.traverse", decoder(12), spec, 64, growth=grow)
    assert sizes == [64, CUDA_PROBE_ROWS, CUDA_PROBE_ROWS, 100 - 64]
    torch.testing.assert_close(probe.outputs, spec.anchors[:, :1].expand(-1, 12) * 2, rtol=0, atol=0)
    sizes.clear()
    wide = CUDA_PROBE_OUTPUT_BYTES // (4 * 1000)  # 1000 rows of float32 fill the limit
    probe_anchors("latentsweep.traverse", decoder(wide), spec, 64, growth=grow)
    assert sizes[:2] == [64, 512]
    sizes.clear()
    probe_anchors("latentsweep.traverse", decoder(12), spec, 64)
    assert set(sizes) == {64, len(spec.anchors) % 64}  # without growth (a CPU store probed before it grew)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_probes_the_anchors_in_large_batches_whatever_the_batch_size():
    from latentsweep.decoder_probe import CUDA_PROBE_ROWS

    sizes: list[int] = []

    def decoder(codes):
        sizes.append(codes.shape[0])
        return rowwise_decoder(codes)

    anchors = torch.randn(2 * CUDA_PROBE_ROWS + 100, 4, device="cuda")
    first = ls.traverse(decoder, anchors, steps=3, dims=[0], keep_outputs=False, progress=False)
    assert sizes[:4] == [64, CUDA_PROBE_ROWS, CUDA_PROBE_ROWS, 100 - 64]
    again = ls.traverse(decoder, anchors, steps=3, dims=[0], keep_outputs=False, progress=False)
    assert torch.equal(first.dim_effect, again.dim_effect)
    sizes.clear()
    ls.traverse(decoder, anchors, steps=3, dims=[0], keep_outputs=False, progress=False, batch_size=1000)
    # an explicit batch size probes alike: a store's resume may pass 'auto' for it, or the reverse
    assert sizes[:4] == [64, CUDA_PROBE_ROWS, CUDA_PROBE_ROWS, 100 - 64]


def test_a_batch_size_limited_by_memory_is_a_power_of_two():
    """Limited by the memory budget (on CUDA half the free memory, which drifts from call to
    call), the size is rounded down to a power of two, so that calls in one process plan alike;
    the device's cap and the grid's size are taken as they are."""
    def auto(budget, total_rows=10**7, device="cuda"):
        return _batching.auto_batch_size(device=torch.device(device), budget=budget, latent_dim=8, features=100,
                                         output_bytes=4, activation_bytes=0.0, total_rows=total_rows)

    per_row = _batching.bytes_per_row(latent_dim=8, features=100, output_bytes=4, activation_bytes=0.0)
    chosen = {auto(int(per_row * rows)) for rows in (28176, 28264, 28308, 28396)}  # an H100's four calls
    assert chosen == {16384}
    assert auto(int(per_row * 32768)) == 32768
    assert auto(10**15) == _batching.CUDA_MAX_BATCH
    assert auto(10**15, device="cpu") == _batching.CPU_MAX_BATCH
    assert auto(10**15, total_rows=1000) == 1000  # the whole grid in one call
    assert auto(int(per_row * 3000), total_rows=2000) == 2000
    assert auto(1) == 1
