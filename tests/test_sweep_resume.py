"""Stopping and resuming sweeps: after an exception, Ctrl-C and kill -9, a resumed sweep gives
exactly the results of an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import latentsweep as ls
from sweep_models import SlowRowwiseDecoder, rowwise_decoder

TESTS = Path(__file__).parent
ANCHORS = torch.randn(8, 6, generator=torch.Generator().manual_seed(3))
STEPS = 10
TOTAL = 8 * 6 * STEPS


class FailingDecoder:
    """rowwise_decoder that raises on its n-th call (counting the anchors' probe)."""

    def __init__(self, fail_on_call: int, error: BaseException):
        self.calls, self.fail_on_call, self.error = 0, fail_on_call, error

    def __call__(self, codes):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise self.error
        return rowwise_decoder(codes)


def uninterrupted(**kwargs) -> ls.TraversalResult:
    return ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=16, **kwargs)


def assert_same_sweep(resumed: ls.TraversalResult, full: ls.TraversalResult) -> None:
    assert torch.equal(resumed.effect, full.effect)
    assert torch.equal(resumed.dim_effect, full.dim_effect)
    assert torch.equal(resumed.sensitivity, full.sensitivity)
    assert torch.equal(resumed.ranking, full.ranking)
    if full.outputs is not None:
        assert np.array_equal(np.asarray(resumed.outputs), np.asarray(full.outputs))


def completed_rows(path: Path) -> int:
    """Points in the store's completed work units (0 before the store exists)."""
    try:
        return ls.sweep_status(path).done_rows
    except ValueError:  # not created yet
        return 0


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
def test_resume_after_decoder_exception(tmp_path, suffix):
    path = tmp_path / f"sweep{suffix}"
    failing = FailingDecoder(fail_on_call=7, error=RuntimeError("GPU fell off the bus"))
    with pytest.raises(RuntimeError, match="fell off the bus") as caught:
        ls.traverse(failing, ANCHORS, steps=STEPS, batch_size=16, out=path)
    note = " ".join(getattr(caught.value, "__notes__", []))
    assert "resume=True" in note and str(path) in note
    done = completed_rows(path)
    assert 0 < done < TOTAL  # the failing unit and later ones are not counted
    failing.fail_on_call = -1
    resumed = ls.traverse(failing, ANCHORS, steps=STEPS, batch_size=16, out=path, resume=True)
    assert resumed.points_computed == TOTAL - done
    assert_same_sweep(resumed, uninterrupted())


def test_resume_of_a_statistics_only_store(tmp_path):
    path = tmp_path / "stats.zarr"
    failing = FailingDecoder(fail_on_call=12, error=ValueError("bad batch"))
    with pytest.raises(ValueError, match="bad batch"):
        ls.traverse(failing, ANCHORS, steps=STEPS, batch_size=16, out=path, keep_outputs=False)
    failing.fail_on_call = -1
    resumed = ls.traverse(failing, ANCHORS, steps=STEPS, batch_size=16, out=path, keep_outputs=False, resume=True)
    assert resumed.outputs is None
    assert_same_sweep(resumed, uninterrupted(keep_outputs=False))


@pytest.mark.parametrize("keep_outputs", [True, False])
def test_opening_and_the_last_shard_read_each_record_and_the_effect_once(tmp_path, monkeypatch, keep_outputs):
    """open_sweep, and a shard that completes the store, checked every record, then read them all
    again for the merge, and read the effect rows twice (10,000 units: 9.3 s, 2.6 s now)."""
    from latentsweep import stores

    reads = {"records": 0, "effect": 0}
    read_record, read_rows = stores.read_record, stores.SweepStore._read_rows

    def counting_record(*args, **kwargs):
        reads["records"] += 1
        return read_record(*args, **kwargs)

    def counting_rows(self, name, start, stop):
        reads["effect"] += (stop - start) * (name == "effect")
        return read_rows(self, name, start, stop)

    path = tmp_path / "sweep.zarr"
    full = uninterrupted(keep_outputs=keep_outputs)
    ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=16, out=path, keep_outputs=keep_outputs,
                shard=(0, 2))
    before = ls.sweep_status(path)
    units = before.num_units
    monkeypatch.setattr(stores, "read_record", counting_record)
    monkeypatch.setattr(stores.SweepStore, "_read_rows", counting_rows)
    last = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=16, out=path, keep_outputs=keep_outputs,
                       shard=(1, 2))
    # Opening the store reads the first shard's records once (to know which are left), and the merge reuses
    # them: this shard's own units it keeps as it writes them (it read every record again before). The
    # effect rows likewise: those of the done units at opening (checked), kept with this shard's own as
    # written (it read all of them again at the end before; their outputs it still checks then).
    # (Reading a stored result's outputs checks their units' records again, by design: not counted.)
    assert 0 < len(before.done) < units
    assert reads == {"records": len(before.done), "effect": before.done_rows}
    assert_same_sweep(last, full)
    reads.update(records=0, effect=0)
    opened = ls.open_sweep(path)
    assert reads == {"records": units, "effect": TOTAL}
    assert_same_sweep(opened, full)


@pytest.mark.parametrize("keep_bytes", [None, 0])
def test_a_resume_reads_the_records_of_the_units_done_at_opening_once(tmp_path, monkeypatch, keep_bytes):
    """resume=True checked every unit's record at opening (which units are done and intact), then
    read every record again for the merge at the end (10,000 units: see benchmarks/bench_merge.py).
    A done unit does not change (a store has one owner sweep), so the merge reuses what the check
    read, and keeps the units computed here as they finish. Statistics kept waiting for the units
    before them are bounded (keep_bytes=0: none wait; those are read again at the end)."""
    from latentsweep import stores

    path = tmp_path / "sweep.zarr"
    full = uninterrupted(out=path)
    for record in sorted((path / "units").glob("*.rec"))[1::3]:  # gaps: the units after each wait for it
        record.unlink()
    before = ls.sweep_status(path)
    reads = []
    read_record = stores.read_record

    def counting_record(record, shapes):
        reads.append(record.name)
        return read_record(record, shapes)

    monkeypatch.setattr(stores, "read_record", counting_record)
    if keep_bytes is not None:
        monkeypatch.setattr(stores, "KEEP_STATISTICS_BYTES", keep_bytes)
    resumed = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=16, out=path, resume=True)
    first_gap = min(set(range(before.num_units)) - before.done)
    # (nothing waiting: the units after the first gap, done at opening or here, are read at the end)
    read_again = [] if keep_bytes is None else list(range(first_gap + 1, before.num_units))
    assert 0 < first_gap < before.num_units - 1
    assert sorted(reads) == sorted(f"u{unit:09d}.rec" for unit in [*before.done, *read_again])
    assert resumed.points_computed == TOTAL - before.done_rows
    assert_same_sweep(resumed, full)


def counting_array_reads(monkeypatch) -> dict[str, list[int]]:
    """A store's array name -> the number of rows of each read of it, however it is read."""
    import zarr

    reads = {}
    getitem = zarr.Array.__getitem__

    def counting(self, selection):
        value = getitem(self, selection)
        reads.setdefault(self.path, []).append(len(value))
        return value

    monkeypatch.setattr(zarr.Array, "__getitem__", counting)
    return reads


def alter_effect_rows(path: Path, unit: int) -> np.ndarray:
    """Alters the stored effect rows of a unit (its record kept); returns them as they were."""
    import zarr
    from latentsweep import stores

    start, stop = stores.SweepStore(path, writable=False).plan.unit_rows_of(unit)
    effect = zarr.open_group(path, mode="r+")["effect"]
    rows = np.asarray(effect[start:stop])
    effect[start:stop] = rows + 1
    return rows


def unit_rows(path: Path, units) -> int:
    from latentsweep import stores

    plan = stores.SweepStore(path, writable=False).plan
    return sum(plan.unit_rows_of(u)[1] - plan.unit_rows_of(u)[0] for u in units)


@pytest.mark.parametrize("keep_outputs", [True, False])
def test_a_resume_reads_the_effect_rows_of_the_units_done_at_opening_once(tmp_path, monkeypatch, keep_outputs):
    """resume=True read the effect rows of the done units at opening (to check them), then the
    whole effect array again for the result (10,000 units: 4.4 s, see benchmarks/bench_merge.py).
    The rows checked at opening are kept, and those of the units computed here as written: a
    unit damaged at opening and computed again gives its new rows, not those the check read."""
    path = tmp_path / "sweep.zarr"
    full = uninterrupted(out=path, keep_outputs=keep_outputs)
    for record in sorted((path / "units").glob("*.rec"))[1::3]:  # gaps
        record.unlink()
    alter_effect_rows(path, 2)
    before = ls.sweep_status(path)
    assert list(before.damaged) == [2]
    reads = counting_array_reads(monkeypatch)
    with pytest.warns(RuntimeWarning, match="damaged"):
        resumed = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=16, out=path,
                              keep_outputs=keep_outputs, resume=True)
    # At opening: the rows of every unit with a record (the damaged one's too, to find it damaged); none after.
    assert sum(reads["effect"]) == before.done_rows + unit_rows(path, [2])
    assert resumed.points_computed == TOTAL - before.done_rows
    assert_same_sweep(resumed, full)


def test_the_owner_reads_at_the_end_the_effect_rows_of_the_units_done_elsewhere_since_it_opened(tmp_path,
                                                                                               monkeypatch):
    """Units written by other ranks or shards after the owner's store was opened are read at the
    end, those only; a unit damaged at opening and computed again elsewhere gives its new rows."""
    from latentsweep import stores

    path = tmp_path / "sweep.zarr"
    full = uninterrupted(out=path, keep_outputs=False)
    units = ls.sweep_status(path).num_units
    elsewhere = list(range(1, units, 3))
    records = {unit: (path / "units" / f"u{unit:09d}.rec") for unit in elsewhere}
    saved = {unit: record.read_bytes() for unit, record in records.items()}
    for record in records.values():
        record.unlink()
    rows = alter_effect_rows(path, 2)
    store = stores.SweepStore(path, writable=True)
    try:
        assert store.status(keep_for_merge=True).missing == sorted([2, *elsewhere])
        for unit, record in records.items():  # another process computes them (unit 2: the rows it had)
            record.write_bytes(saved[unit])
        start, stop = store.plan.unit_rows_of(2)
        store._arrays["effect"][start:stop] = rows
        reads = counting_array_reads(monkeypatch)
        merged, effect = store.merged(), store.effect()
    finally:
        store.close()
    assert sum(reads["effect"]) == unit_rows(path, [2, *elsewhere])
    assert torch.equal(effect.view(full.effect.shape), full.effect)
    dim_effect, sensitivity = merged.result("test", num_anchors=8, num_steps=STEPS, dtype=full.effect.dtype)
    assert torch.equal(dim_effect, full.dim_effect) and torch.equal(sensitivity, full.sensitivity)


@pytest.mark.parametrize("shard", [None, (1, 2)])
def test_a_resume_checks_each_static_array_once(tmp_path, monkeypatch, shard):
    """A resume read and checked the anchors, dims, values and anchor outputs when it opened the
    store (to repair damaged ones), again in its status check, and a shard a third time in its
    final check; open_sweep checked them twice before reading them for the result. They are
    written only when the store is created or repaired: checked once now (test_sweep_store_safety
    has the damaged ones, rewritten on resume and named when read)."""
    path = tmp_path / "sweep.zarr"
    if shard is None:
        full = uninterrupted(out=path)
        for record in sorted((path / "units").glob("*.rec"))[1::3]:
            record.unlink()
    else:
        full = uninterrupted()
        ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=16, out=path, shard=(0, 2))
    static = ["anchor_outputs", "anchors", "dims", "values"]
    reads = counting_array_reads(monkeypatch)
    resumed = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=16, out=path, resume=True,
                          shard=shard)
    assert {name: len(reads.get(name, [])) for name in static} == dict.fromkeys(static, 1)
    assert_same_sweep(resumed, full)
    reads.clear()
    opened = ls.open_sweep(path)  # (checked, then read for the result)
    assert {name: len(reads.get(name, [])) for name in static} == dict.fromkeys(static, 2)
    assert_same_sweep(opened, full)


def test_resuming_a_finished_sweep_computes_nothing(tmp_path):
    path = tmp_path / "done.zarr"
    full = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=16, out=path)
    again = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=16, out=path, resume=True)
    assert again.points_computed == 0
    assert_same_sweep(again, full)


class BatchDependentDecoder:
    """rowwise_decoder whose last bits depend on the batch's size, as a BLAS GEMM's can; raises
    once it has decoded more than ``fail_after_rows`` rows (None: never)."""

    def __init__(self, fail_after_rows: int | None = None):
        self.rows, self.fail_after_rows = 0, fail_after_rows

    def __call__(self, codes):
        self.rows += codes.shape[0]
        if self.fail_after_rows is not None and self.rows > self.fail_after_rows:
            raise RuntimeError("preempted")
        return rowwise_decoder(codes) * (1 + codes.shape[0] * 2.0**-20)


@pytest.mark.parametrize("start, resume", [(16, "auto"), ("auto", "planned")])
def test_a_resume_may_pass_auto_or_the_planned_size_whatever_the_start_passed(tmp_path, monkeypatch, start, resume):
    """The anchors were probed at the batch_size argument (64 for 'auto'): a store started with
    batch_size=16 and resumed with 'auto', which its own message offers, was refused as 'the
    decoder changed'. They are probed at one size now, whatever the argument."""
    from latentsweep import _batching

    # 'auto' chooses 16 (timed trials could choose a size that makes the grid one unit)
    monkeypatch.setattr(_batching, "choose_cpu_batch_size",
                        lambda *args, **kwargs: type("Choice", (), {"batch_size": 16})(), raising=False)
    path = tmp_path / "s.zarr"
    anchors = torch.randn(100, 6, generator=torch.Generator().manual_seed(4))  # more than one probe batch
    grid = dict(dims=[0, 1], steps=STEPS, out=path, progress=False)
    total = 100 * 2 * STEPS
    decoder = BatchDependentDecoder(fail_after_rows=total * 3 // 4)
    with pytest.raises(RuntimeError, match="preempted"):
        ls.traverse(decoder, anchors, batch_size=start, **grid)
    planned = ls.sweep_status(path)
    assert 0 < planned.done_rows < total and _planned_batch_size(path) == 16
    decoder.fail_after_rows = None
    batch = _planned_batch_size(path) if resume == "planned" else resume
    resumed = ls.traverse(decoder, anchors, batch_size=batch, resume=True, **grid)
    assert resumed.points_computed == total - planned.done_rows
    uninterrupted_run = ls.traverse(decoder, anchors, batch_size=_planned_batch_size(path),
                                    **{**grid, "out": None})
    assert_same_sweep(resumed, uninterrupted_run)


def _planned_batch_size(path) -> int:
    from latentsweep.stores import SweepStore

    store = SweepStore(path, writable=False)
    try:
        return store.plan.batch_size
    finally:
        store.close()


def test_in_memory_failure_suggests_a_store():
    with pytest.raises(RuntimeError) as caught:
        ls.traverse(FailingDecoder(3, RuntimeError("boom")), ANCHORS, steps=STEPS, batch_size=16)
    assert "out='sweep.zarr'" in " ".join(caught.value.__notes__)


def test_keyboard_interrupt_in_process_keeps_progress(tmp_path, capsys):
    path = tmp_path / "sweep.zarr"
    with pytest.raises(KeyboardInterrupt):
        ls.traverse(FailingDecoder(9, KeyboardInterrupt()), ANCHORS, steps=STEPS, batch_size=16, out=path)
    assert "resume=True" in capsys.readouterr().err
    resumed = ls.traverse(FailingDecoder(-1, None), ANCHORS, steps=STEPS, batch_size=16, out=path, resume=True)
    assert 0 < TOTAL - resumed.points_computed < TOTAL
    assert_same_sweep(resumed, uninterrupted())


SWEEP_SCRIPT = """
import signal, sys, torch, latentsweep as ls, latentsweep.sweep
# A child of a shell that ignores SIGINT (pytest started with nohup or `&`) inherits the
# ignored disposition; restore Python's Ctrl-C handler so the test sends a real Ctrl-C.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from sweep_models import SlowRowwiseDecoder
anchors = torch.randn(8, 6, generator=torch.Generator().manual_seed(3))
print("started", flush=True)
ls.traverse(SlowRowwiseDecoder(0.05), anchors, steps={steps}, batch_size=16, out={path!r})
print("finished", flush=True)
"""


def start_sweep(path: Path) -> subprocess.Popen:
    script = SWEEP_SCRIPT.format(tests=str(TESTS), steps=STEPS, path=str(path))
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_progress(process: subprocess.Popen, path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while completed_rows(path) < 3 * 16:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.05)


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
def test_resume_after_kill_9(tmp_path, suffix):
    path = tmp_path / f"sweep{suffix}"
    process = start_sweep(path)
    wait_for_progress(process, path)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    done = completed_rows(path)
    assert 0 < done < TOTAL
    resumed = ls.traverse(SlowRowwiseDecoder(0.0), ANCHORS, steps=STEPS, batch_size=16, out=path, resume=True)
    assert resumed.points_computed == TOTAL - done
    assert_same_sweep(resumed, uninterrupted())


def test_ctrl_c_stops_cleanly_with_instructions(tmp_path):
    path = tmp_path / "sweep.zarr"
    process = start_sweep(path)
    wait_for_progress(process, path)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "KeyboardInterrupt" in stderr and "resume=True" in stderr, stderr
    resumed = ls.traverse(SlowRowwiseDecoder(0.0), ANCHORS, steps=STEPS, batch_size=16, out=path, resume=True)
    assert 0 < resumed.points_computed < TOTAL
    assert_same_sweep(resumed, uninterrupted())
