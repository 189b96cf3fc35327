"""Stores that cannot be silently wrong (issue 7 item 6): one sweep per store while it is being
written, damaged or missing data recomputed or refused (never read as zeros), stores never
half-made, geometry and decoder checked on resume, read-only reading, and overwrite=True that
removes only what a store wrote."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep.stores import STORE_FORMAT
from store_editing import edited_attributes, edited_json, rewrite_unit_records
from sweep_models import cpu_probe_calls, rowwise_decoder

TESTS = Path(__file__).parent
ANCHORS = torch.randn(8, 6, generator=torch.Generator().manual_seed(3))
STEPS, BATCH = 10, 16  # 480 points in 8 units of 60 (6 traversals)


def sweep(path, decoder=rowwise_decoder, **kwargs):
    return ls.traverse(decoder, ANCHORS, steps=STEPS, batch_size=BATCH, out=path, **kwargs)


def assert_same(result, expected) -> None:
    for name in ("effect", "dim_effect", "sensitivity"):
        assert torch.equal(getattr(result, name), getattr(expected, name)), name
    if expected.outputs is not None:
        assert np.array_equal(np.asarray(result.outputs), np.asarray(expected.outputs))


@pytest.fixture(scope="module")
def full():
    return ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=BATCH)


def chunk_files(path: Path, array: str) -> list[Path]:
    return sorted(p for p in (path / array).rglob("*") if p.is_file() and p.name != "zarr.json")


SLOW_SCRIPT = """
import sys, torch, latentsweep as ls
sys.path.insert(0, {tests!r})
from sweep_models import SlowRowwiseDecoder
anchors = torch.randn(8, 6, generator=torch.Generator().manual_seed(3))
ls.traverse(SlowRowwiseDecoder(0.05), anchors, steps=10, batch_size=16, out={path!r})
"""


def test_a_store_being_written_is_not_overwritten_by_another_sweep(tmp_path, full):
    path = tmp_path / "busy.zarr"
    writer = subprocess.Popen([sys.executable, "-c", SLOW_SCRIPT.format(tests=str(TESTS), path=str(path))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list((path / "leases").glob("*.json")):
            assert writer.poll() is None, writer.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        other = lambda z: rowwise_decoder(z) * 2  # noqa: E731 - another decoder: another sweep
        with pytest.raises(ValueError, match="in use by another sweep.*pid"):
            sweep(path, other, overwrite=True)
        with pytest.raises(ValueError, match="different parameters"):
            sweep(path, other)
        with pytest.raises(ValueError, match="in use"):
            sweep(path, overwrite=True)  # the same sweep restarted from scratch: refused too
        assert writer.wait(timeout=120) == 0, writer.communicate()
    finally:
        if writer.poll() is None:
            writer.kill()
    assert_same(ls.open_sweep(path), full)
    assert not list((path / "leases").glob("*.json"))  # the writer released its lease


def test_a_crashed_writer_does_not_leave_the_store_locked(tmp_path, full):
    path = tmp_path / "crashed.zarr"
    writer = subprocess.Popen([sys.executable, "-c", SLOW_SCRIPT.format(tests=str(TESTS), path=str(path))])
    deadline = time.monotonic() + 60
    while not list((path / "units").glob("*.rec")) if path.exists() else True:
        assert time.monotonic() < deadline and writer.poll() is None
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    assert list((path / "leases").glob("*.json"))  # left behind, but its process is gone
    assert_same(sweep(path, overwrite=True), full)


def test_deleted_chunk_files_are_recomputed_never_read_as_zeros(tmp_path, full):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    victims = chunk_files(path, "outputs")[2:4] + chunk_files(path, "effect")[7:8]
    for victim in victims:
        victim.unlink()
    with pytest.raises(ValueError, match="incomplete.*damaged: unit 2: its output rows do not match"):
        ls.open_sweep(path)
    with pytest.warns(RuntimeWarning, match="damaged"):
        resumed = sweep(path, resume=True)
    assert 0 < resumed.points_computed < full.num_points
    assert_same(resumed, full)
    assert_same(ls.open_sweep(path), full)


def test_a_damaged_unit_record_is_recomputed_and_named(tmp_path, full):
    path = tmp_path / "sweep.zarr"
    sweep(path, keep_outputs=False)
    record = sorted((path / "units").glob("*.rec"))[3]
    record.write_bytes(record.read_bytes()[:-8])  # truncated
    with pytest.raises(ValueError, match="unit 3: its record u000000003.rec is unreadable \\(truncated"):
        ls.open_sweep(path)
    with pytest.warns(RuntimeWarning, match="unit 3"):
        resumed = sweep(path, keep_outputs=False, resume=True)
    assert resumed.points_computed == 60
    assert torch.equal(resumed.sensitivity, full.sensitivity)


def test_damaged_static_arrays_are_rewritten_on_resume_and_named_when_read(tmp_path, full):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    for victim in chunk_files(path, "anchors"):
        victim.unlink()
    with pytest.raises(ValueError, match="damaged.*anchors does not match its checksum"):
        ls.open_sweep(path)
    again = sweep(path, resume=True)
    assert again.points_computed == 0
    assert torch.equal(ls.open_sweep(path).anchors, ANCHORS)


def test_no_half_made_store_is_left_behind(tmp_path):
    path = tmp_path / "sweep.zarr"

    def broken(codes):
        raise RuntimeError("the decoder fails at once")

    with pytest.raises(RuntimeError, match="fails at once"):
        sweep(path, broken)
    assert not path.exists()  # the probe failed before the store was created
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert leftovers == []


def test_a_truncated_npy_store_is_recomputed_or_overwritten(tmp_path, full):
    path = tmp_path / "sweep.npy"
    sweep(path)
    with open(path, "r+b") as file:
        file.truncate(100)  # shorter than its header says: disk full, file-size limit
    with pytest.raises(ValueError, match="outputs file .* is missing, truncated"):
        ls.open_sweep(path)
    with pytest.warns(RuntimeWarning, match="8 work unit.*damaged"):
        resumed = sweep(path, resume=True)
    assert resumed.points_computed == full.num_points
    assert_same(resumed, full)
    with open(path, "r+b") as file:
        file.truncate(10)
    assert_same(sweep(path, overwrite=True), full)


def test_forged_geometry_is_refused(tmp_path):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    meta_file = path / "zarr.json"
    with edited_attributes(path) as attrs:
        attrs["geometry"]["out_shape"] = [4, 3]  # same size, other shape
    with pytest.raises(ValueError, match="damaged"):
        sweep(path, resume=True)
    with pytest.raises(ValueError, match="damaged"):
        ls.open_sweep(path)
    meta_file.write_text("{not json")  # the folder is still the store's: damaged, not foreign
    with pytest.raises(ValueError, match="damaged: its metadata .* is unreadable"):
        ls.open_sweep(path)


def test_unreadable_metadata_says_damaged_and_what_to_do(tmp_path):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    with edited_attributes(path) as attrs:
        attrs["plan"] = {"batch_size": "x"}
    with pytest.raises(ValueError, match="damaged: its metadata .*overwrite=True"):
        sweep(path, resume=True)
    sweep(path, overwrite=True)
    assert ls.sweep_status(path).complete


def test_a_store_whose_plan_has_trial_units_is_refused_as_damaged(tmp_path):
    """Only in-memory sweeps keep their batch trials as units (a store's chunks are one size)."""
    path = tmp_path / "sweep.zarr"
    sweep(path)
    with edited_attributes(path) as attrs:
        plan = attrs["plan"]
        plan["trial_units"] = [[0, plan["num_steps"], 1]]
    with pytest.raises(ValueError, match="damaged: its metadata"):
        ls.open_sweep(path)


@pytest.mark.parametrize("field, value", [("batch_size", 8), ("padded", True)])
def test_units_decoded_by_another_plan_than_the_metadata_says_are_not_taken(tmp_path, full, field, value):
    """The plan's batch size and padding were in no checksum: edited in zarr.json, a resume
    decoded the rest by the new plan and merged units of both (bits can depend on the batch)."""
    path = tmp_path / "sweep.zarr"
    sweep(path)
    with edited_attributes(path) as attrs:
        assert attrs["plan"][field] != value
        attrs["plan"][field] = value
    status = ls.sweep_status(path)
    assert not status.done and set(status.damaged) == set(range(status.num_units))
    assert all("belongs to another sweep or plan" in why for why in status.damaged.values())
    with pytest.warns(RuntimeWarning, match="belongs to another sweep or plan"):
        resumed = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, out=path, resume=True)
    assert resumed.points_computed == full.values.numel()
    assert_same(resumed, full)  # (rowwise: the same bits at any batch size)


def test_a_finished_store_is_read_and_resumed_without_writing(tmp_path, full):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    before = {p: p.stat().st_mtime_ns for p in path.rglob("*")}
    assert_same(ls.open_sweep(path), full)
    again = sweep(path, resume=True)
    assert again.points_computed == 0
    assert {p: p.stat().st_mtime_ns for p in path.rglob("*")} == before  # nothing written


def test_resuming_with_an_edited_decoder_is_refused(tmp_path):
    path = tmp_path / "sweep.zarr"

    def make(scale):
        def decode(codes):
            return rowwise_decoder(codes) * scale
        return decode

    sweep(path, make(1.0), keep_outputs=False)
    with pytest.raises(ValueError, match="decoder changed"):
        sweep(path, make(1.5), keep_outputs=False, resume=True)  # same name, other behaviour

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(6, 12)
            self.edited = False

        def forward(self, codes):
            return self.linear(codes) * (2.0 if self.edited else 1.0)

    model_path = tmp_path / "model.zarr"
    torch.manual_seed(0)
    model = Decoder()
    sweep(model_path, model, keep_outputs=False)
    model.edited = True  # same weights, changed forward
    with pytest.raises(ValueError, match="decoder changed"):
        sweep(model_path, model, keep_outputs=False, resume=True)


def test_overwrite_never_deletes_a_users_file_inside_the_store(tmp_path, full):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    (path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="did not write \\(notes.txt\\)"):
        sweep(path, overwrite=True)
    assert (path / "notes.txt").read_text() == "mine"
    assert_same(ls.open_sweep(path), full)  # and the store is intact


@pytest.mark.parametrize("place", [".git/HEAD", ".hidden", "units/notes.txt", "effect/c/notes.txt", "leases/x.txt",
                                   "checkpoint/model.pt", ".notes.tmp-1", "units/.notes.tmp-1", "leases/my.json"])
def test_overwrite_never_deletes_a_users_file_anywhere_in_the_store(tmp_path, place):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    (path / place).parent.mkdir(parents=True, exist_ok=True)
    (path / place).write_text("mine")
    named = place.split("/")[0] if place.startswith(".") else place  # a foreign folder is named, not its files
    with pytest.raises(ValueError, match=rf"did not write \({re.escape(named)}\)"):
        sweep(path, overwrite=True)
    assert (path / place).read_text() == "mine"
    assert ls.sweep_status(path).complete


def test_overwrite_of_a_store_that_cannot_be_removed_removes_nothing(tmp_path, monkeypatch, full):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == path else real_access(p, mode))
    with pytest.raises(ValueError, match=r"traverse: overwrite=True cannot remove the store at .*sweep.zarr: "
                                         r".*is not writable \(read-only media or no permission\); nothing was removed"):
        sweep(path, overwrite=True)
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before
    assert_same(ls.open_sweep(path), full)


def test_out_through_a_symbolic_link_is_refused_before_anything_is_touched(tmp_path):
    target = tmp_path / "real.zarr"
    sweep(target)
    (tmp_path / "link.zarr").symlink_to(target)
    (tmp_path / "dangling.zarr").symlink_to(tmp_path / "nowhere.zarr")
    for link in ("link.zarr", "dangling.zarr"):
        with pytest.raises(ValueError, match=rf"traverse: out=.*{link}' is a symbolic link; pass the path it points to"):
            sweep(tmp_path / link, overwrite=True)
    assert ls.sweep_status(target).complete and ls.open_sweep(tmp_path / "link.zarr").store == tmp_path / "link.zarr"


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
def test_a_results_stored_outputs_are_checked_when_read(tmp_path, full, suffix):
    """A result reads its outputs from the store lazily: rows of a store replaced by another
    sweep, or whose chunks were deleted afterwards, are refused, never returned (nor zeros)."""
    path = tmp_path / f"sweep{suffix}"
    result = sweep(path)
    assert_same(result, full)
    assert np.array_equal(result.outputs[2], full.outputs[2].numpy())
    sweep(path, decoder=lambda z: rowwise_decoder(z) * 3, overwrite=True)
    with pytest.raises(ls.stores.StoreDamaged, match=r"changed or is damaged since this result was made: unit 0: "
                                                     r"its record .* belongs to another sweep"):
        np.asarray(result.outputs)
    with pytest.raises(ls.stores.StoreDamaged, match="belongs to another sweep"):
        result.outputs[1]
    if suffix == ".zarr":
        reopened = sweep(path, overwrite=True)
        victim = chunk_files(path, "outputs")[1]
        victim.unlink()
        assert np.array_equal(reopened.outputs[0], full.outputs[0].numpy())  # unit 0 is intact
        with pytest.raises(ls.stores.StoreDamaged, match="unit 1: its output rows do not match their checksum"):
            np.asarray(reopened.outputs)
    else:
        reopened = sweep(path, overwrite=True)
        with open(path, "r+b") as file:
            file.truncate(200)
        with pytest.raises(ls.stores.StoreDamaged, match="outputs file .* missing, truncated or of the wrong shape"):
            reopened.outputs[0]


def test_a_results_outputs_from_a_store_moved_away_say_it_is_gone(tmp_path, full):
    # (a moved zarr store read "unit 0: it has no record", as if damaged)
    result = sweep(tmp_path / "sweep.zarr")
    (tmp_path / "sweep.zarr").rename(tmp_path / "moved.zarr")
    with pytest.raises(ls.stores.StoreDamaged, match=r"sweep\.zarr is gone \(moved or deleted\)"):
        result.outputs[0]
    assert np.array_equal(ls.open_sweep(tmp_path / "moved.zarr").outputs[0], full.outputs[0].numpy())


def test_sweep_status_reports_damaged_static_arrays(tmp_path, full):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    victim = chunk_files(path, "values")[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 64
    victim.write_bytes(bytes(data))
    status = ls.sweep_status(path)
    assert len(status.done) == status.num_units and not status.complete
    assert "damaged arrays: values does not match its checksum" in status.summary()
    sweep(path, resume=True)
    assert ls.sweep_status(path).complete
    with pytest.raises(TypeError, match="sweep_status: path must be a str or os.PathLike, got NoneType"):
        ls.sweep_status(None)


def test_bfloat16_sweeps_read_back_in_their_own_dtypes(tmp_path):
    weight = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)).bfloat16()
    decoder = lambda z: z.bfloat16() @ weight  # noqa: E731
    anchors = ANCHORS[:3].bfloat16()
    memory = ls.traverse(decoder, anchors, steps=4, batch_size=BATCH)
    ls.traverse(decoder, anchors, steps=4, batch_size=BATCH, out=tmp_path / "bf.zarr")
    stored = ls.open_sweep(tmp_path / "bf.zarr")
    for name in ("anchors", "values", "anchor_outputs"):
        assert getattr(stored, name).dtype == torch.bfloat16, name
        assert torch.equal(getattr(stored, name), getattr(memory, name)), name
    float32 = ls.traverse(decoder, ANCHORS[:3], steps=4, batch_size=BATCH, out=tmp_path / "f32.zarr")
    assert ls.open_sweep(float32.store).anchors.dtype == torch.float32


def test_resume_with_another_explicit_batch_size_is_refused(tmp_path):
    path = tmp_path / "sweep.zarr"
    sweep(path, keep_outputs=False)
    with pytest.raises(ValueError, match="planned with batch_size=16"):
        ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=32, out=path, keep_outputs=False,
                    resume=True)
    auto = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, out=path, keep_outputs=False, resume=True)
    assert auto.batch_size == 16  # "auto" takes the store's


def test_open_sweep_errors(tmp_path):
    with pytest.raises(ValueError, match="no sweep at"):
        ls.open_sweep(tmp_path / "nothing.zarr")
    with pytest.raises(TypeError, match="path must be"):
        ls.open_sweep(3)


# 2: records without a checksum over their header; 3: interpolation stores without their paths' ends;
# 4: records of every latent's sums (read as today's they would be damaged units)
@pytest.mark.parametrize("old_format", [1, 2, 3, 4])
def test_a_store_of_an_older_format_is_refused_then_replaced(tmp_path, full, old_format):
    path = tmp_path / "old.zarr"
    sweep(path)
    with edited_attributes(path) as attrs:
        attrs["format"] = old_format
    with pytest.raises(ValueError, match=rf"incompatible latentsweep version \(store format {old_format}, this version "
                                         rf"reads {STORE_FORMAT}\).*overwrite=True"):
        sweep(path, resume=True)
    with pytest.raises(ValueError, match=rf"store format {old_format}, this version reads {STORE_FORMAT}"):
        ls.open_sweep(path)
    assert_same(sweep(path, overwrite=True), full)


def test_a_float64_store_of_an_older_statistics_revision_is_read_but_not_resumed(tmp_path):
    """float64 statistics changed bits once (revision 2): a store started before must not get
    units of both revisions, but stays readable; float32 stores never recorded a revision."""
    from latentsweep.stores import sweep_id

    anchors = ANCHORS.double()
    expected = ls.traverse(rowwise_decoder, anchors, steps=STEPS, batch_size=BATCH)
    path = tmp_path / "old64.zarr"
    ls.traverse(rowwise_decoder, anchors, steps=STEPS, batch_size=BATCH, out=path, shard=(0, 2))
    with edited_attributes(path) as attrs:
        assert attrs["params"].pop("statistics_revision") == 2
        attrs["sweep_id"] = sweep_id(attrs["params"])  # as a store made before revisions were recorded
    rewrite_unit_records(path, lambda header: {**header, "sweep_id": attrs["sweep_id"]})  # they name that sweep
    assert len(ls.sweep_status(path).done) == 4
    with pytest.raises(ValueError, match=r"statistics revision 1, this version computes revision 2.*open_sweep"):
        ls.traverse(rowwise_decoder, anchors, steps=STEPS, batch_size=BATCH, out=path, resume=True)
    with pytest.raises(ValueError, match=r"statistics revision 1"):
        ls.traverse(rowwise_decoder, anchors, steps=STEPS, batch_size=BATCH, out=path, shard=(1, 2))
    assert len(ls.sweep_status(path).done) == 4  # of 8: nothing added
    result = ls.traverse(rowwise_decoder, anchors, steps=STEPS, batch_size=BATCH, out=path, overwrite=True)
    assert_same(result, expected)
    assert_same(ls.open_sweep(path), expected)
    path32 = tmp_path / "new32.zarr"
    sweep(path32)
    assert "statistics_revision" not in json.loads((path32 / "zarr.json").read_text())["attributes"]["latentsweep"]["params"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sweeps_decoded_on_cuda_record_the_cuda_statistics_revision(dtype):
    """CUDA's statistics changed bits when its fused kernel replaced torch ops (revision 3, any
    dtype), so a CUDA store from before is not resumed with units of both; CPU sweeps keep theirs."""
    from types import SimpleNamespace

    from latentsweep.grid_spec import grid_spec
    from latentsweep.store_session import sweep_params

    spec = grid_spec("test", ANCHORS.to(dtype), mode="prior", span=2.0, steps=STEPS, dims=None, logvar=None,
                     values=None, reference=None, prior_std=1.0)
    for device, revision in (("cuda", 3), ("cpu", 2 if dtype == torch.float64 else None)):
        outputs = SimpleNamespace(dtype=dtype, device=torch.device(device))  # a probe's outputs, as on that device
        params = sweep_params(rowwise_decoder, spec, SimpleNamespace(outputs=outputs, out_shape=(4,)), True)
        assert params.get("statistics_revision") == revision, device


def test_a_store_planned_before_short_batches_were_unpadded_resumes_padded(tmp_path, full):
    """Its units were decoded with every batch padded to the batch size; the rest are too, so
    the store's results stay those of one uninterrupted run of its version."""
    path = tmp_path / "old.zarr"
    sweep(path, shard=(0, 2))
    with edited_attributes(path) as attrs:
        assert attrs["plan"].pop("padded") is False
    # nor did its records say how they were decoded
    rewrite_unit_records(path, lambda header: {k: header[k] for k in ("sweep_id", "rows", "crc")})
    sizes = []

    def recording(codes):
        sizes.append(codes.shape[0])
        return rowwise_decoder(codes)

    recording.__module__, recording.__qualname__ = rowwise_decoder.__module__, rowwise_decoder.__qualname__  # same decoder
    assert_same(sweep(path, decoder=recording, resume=True), full)
    assert set(sizes[cpu_probe_calls(len(ANCHORS)):]) == {BATCH}  # (first: the anchors' probe)


def test_a_measured_batch_choice_is_recorded_and_reused(tmp_path, monkeypatch):
    """batch_size='auto' on the CPU asks _batching.choose_cpu_batch_size (timed trials on real
    rows); the plan and the store record its choice, and a resume goes on with it."""
    from latentsweep import _batching

    calls = []

    def choose(run, *, start, end, cap, estimate, unit_rows, time_share):
        assert estimate > 0  # the probe's seconds per row
        assert unit_rows is None and time_share == _batching.TRIAL_TIME_SHARE  # a store's trials are scratch
        run(8, start, start + 8)  # a trial decodes real rows through the executor
        calls.append((start, end, cap))
        return type("Choice", (), {"batch_size": 24})()

    monkeypatch.setattr(_batching, "choose_cpu_batch_size", choose, raising=False)
    path = tmp_path / "auto.zarr"
    first = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, out=path, keep_outputs=False)
    assert first.batch_size == 24 and calls == [(0, 480, 480)]
    monkeypatch.setattr(_batching, "choose_cpu_batch_size", lambda *a, **k: pytest.fail("chose again"), raising=False)
    again = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, out=path, keep_outputs=False, resume=True)
    assert again.batch_size == 24
    explicit = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=24, keep_outputs=False)
    assert torch.equal(explicit.sensitivity, first.sensitivity)


def test_shards_share_an_npy_store(tmp_path, full):
    path = tmp_path / "shared.npy"
    statuses = [sweep(path, shard=(i, 3)) for i in (1, 2)]
    assert [len(s.done) for s in statuses] == [3, 5]  # units 1,4,7 then also 2,5
    assert_same(sweep(path, shard=(0, 3)), full)
    assert_same(ls.open_sweep(path), full)
    assert np.array_equal(np.load(path, mmap_mode="r"), full.outputs.numpy())


def test_a_store_replaced_before_its_first_write_is_not_written_into(tmp_path, full):
    """A writer takes its lease at its first row, so until then overwrite=True by another sweep
    may replace the store; the first writer must then stop, not write its rows and records
    into the other sweep's store (both used to 'succeed', the other's store left damaged)."""
    path = tmp_path / "sweep.zarr"
    other = lambda z: rowwise_decoder(z) * 2  # noqa: E731 - another decoder: another sweep
    calls = []

    def replaced_meanwhile(codes):
        calls.append(len(codes))
        if len(calls) == cpu_probe_calls(len(ANCHORS)) + 1:  # the first batch: the store exists, nothing written yet
            sweep(path, other, keep_outputs=False, overwrite=True)
        return rowwise_decoder(codes)

    # named after the function called, so the command line does not blame the user's decoder
    with pytest.raises(RuntimeError, match="^latentsweep.traverse: the sweep store .* removed or replaced by another"):
        sweep(path, replaced_meanwhile, keep_outputs=False)
    expected = ls.traverse(other, ANCHORS, steps=STEPS, batch_size=BATCH, keep_outputs=False)
    assert torch.equal(ls.open_sweep(path).sensitivity, expected.sensitivity)  # the other sweep's, intact


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
def test_an_overwrite_interrupted_while_removing_can_be_repeated(tmp_path, monkeypatch, suffix, full):
    """Ctrl-C (or kill) while overwrite=True removes a large store must leave something a
    second overwrite=True recognises as the store, not 'not a latentsweep sweep store'."""
    from latentsweep import stores

    real_rmtree, stop_at = shutil.rmtree, [0]

    def interrupted(folder, *args, **kwargs):  # the store's folders only (zarr uses rmtree too)
        if Path(folder).parent == stores.paths_of(path)[0]:
            stop_at[0] -= 1
            if stop_at[0] < 0:
                raise KeyboardInterrupt
        return real_rmtree(folder, *args, **kwargs)

    path = tmp_path / f"sweep{suffix}"
    sweep(path)
    folders = sum(entry.is_dir() for entry in stores.paths_of(path)[0].iterdir())
    for stop in range(folders):  # interrupted at each of the store's folders in turn
        stop_at[0] = stop
        monkeypatch.setattr(shutil, "rmtree", interrupted)
        with pytest.raises(KeyboardInterrupt):
            sweep(path, overwrite=True)
        monkeypatch.setattr(shutil, "rmtree", real_rmtree)
        assert_same(sweep(path, overwrite=True), full)


@pytest.mark.parametrize("array, key, value", [("effect", "data_type", "float64"), ("outputs", "data_type", "float64"),
                                               ("effect", "chunk_shape", [30]), ("anchors", "data_type", "float64")])
def test_altered_array_metadata_is_refused_as_damaged(tmp_path, array, key, value):
    """An array whose own zarr.json no longer has the dtype or chunks the store made it with is
    named as damaged (overwrite=True), not read as every unit 'unreadable (cannot reshape...)'
    and recomputed into it on every resume, nor 'repaired' into an array that cannot hold it."""
    path = tmp_path / "sweep.zarr"
    sweep(path)
    with edited_json(path / array) as meta:
        (meta["chunk_grid"]["configuration"] if key == "chunk_shape" else meta)[key] = value
    with pytest.raises(ValueError, match=f"damaged.*{array}.*overwrite=True"):
        sweep(path, resume=True)
    with pytest.raises(ValueError, match=f"damaged.*{array}"):
        ls.open_sweep(path)
    assert ls.open_sweep(sweep(path, overwrite=True).store).num_points == STEPS * ANCHORS.numel()


def test_a_sweep_that_fails_opening_its_store_releases_its_lease(tmp_path, monkeypatch):
    """A repair takes the writer's lease; when opening then fails (here the repair's write, as on
    a full disk), the lease must go with the call: in a live process (a notebook keeps the error,
    and with it the store) it marked the store 'in use by another sweep' for every other process."""
    from latentsweep.stores import SweepStore

    path = tmp_path / "sweep.zarr"
    sweep(path)
    chunk = next(p for p in (path / "anchors").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(bytes(len(chunk.read_bytes())))  # zeroed: the anchors need a repair
    repair = SweepStore.repair_static

    def repair_on_a_full_disk(self, static):
        assert self.static_problems()  # (a real repair, which takes the lease before it writes)
        self._take_lease()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SweepStore, "repair_static", repair_on_a_full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        sweep(path, resume=True)
    assert not list((path / "leases").glob("*.json"))  # while the error (and what it references) lives on
    monkeypatch.setattr(SweepStore, "repair_static", repair)
    assert torch.equal(sweep(path, resume=True).effect, sweep(tmp_path / "again.zarr").effect)


@pytest.mark.parametrize("array", ["effect", "outputs"])
def test_one_unreadable_chunk_damages_only_its_unit(tmp_path, full, array):
    """Units' rows are checked many units at a time; a truncated chunk file must be blamed on
    its own unit (recomputed alone), not on every unit read with it."""
    path = tmp_path / "sweep.zarr"
    sweep(path)
    victim = path / array / "c" / ("5" if array == "effect" else "5/0/0")  # unit 5's (one chunk a unit)
    victim.write_bytes(victim.read_bytes()[:10])  # truncated: unreadable, not just altered
    status = ls.sweep_status(path)
    assert sorted(status.damaged) == [5] and len(status.done) == 7, status.summary()
    with pytest.warns(RuntimeWarning, match="1 work unit"):
        resumed = sweep(path, resume=True)
    assert resumed.points_computed == 60
    assert_same(resumed, full)


def test_metadata_that_contradicts_the_parameters_is_refused(tmp_path):
    """keep_outputs and the geometry are recorded beside the (hashed) parameters; a store whose
    record disagrees with them is damaged, not read with its outputs silently missing."""
    path = tmp_path / "sweep.zarr"
    sweep(path)
    with edited_attributes(path) as attrs:
        attrs["keep_outputs"] = False
    with pytest.raises(ValueError, match="damaged: its metadata"):
        ls.open_sweep(path)
    with pytest.raises(ValueError, match="damaged: its metadata.*overwrite=True"):
        sweep(path, resume=True)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times are read from /proc")
def test_a_crashed_writers_pid_reused_by_another_process_does_not_lock_the_store(tmp_path, full):
    """A lease records its process's start time: a lease whose pid now belongs to a process
    started later (the pid was reused) is dead, so overwrite=True is not refused forever;
    a lease of the live process itself, or one without a start time (older versions), is live."""
    import socket

    from latentsweep import store_writers

    path = tmp_path / "sweep.zarr"
    sweep(path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        started = store_writers.process_start(other.pid)
        assert started is not None
        lease = path / "leases" / f"{socket.gethostname()}-{other.pid}-0000abcd.json"
        info = {"host": socket.gethostname(), "pid": other.pid, "sweep_id": "x"}
        for fields, live in (({"start_time": started}, True), ({}, True), ({"start_time": started - 1}, False)):
            lease.parent.mkdir(exist_ok=True)
            lease.write_text(json.dumps({**info, **fields}))
            if live:
                with pytest.raises(ValueError, match=f"in use by another sweep \\(pid {other.pid} "):
                    sweep(path, overwrite=True)
            else:
                assert_same(sweep(path, overwrite=True), full)
        assert not lease.exists()
    finally:
        other.kill()
        other.wait()


def test_reading_an_npy_store_whose_outputs_file_is_missing_says_so_at_once(tmp_path, full):
    """The grace period for a .npy another process is still creating is for writers joining
    a new store; read-only reads do not wait for it, and name the missing file."""
    from latentsweep import stores

    path = tmp_path / "sweep.npy"
    sweep(path)
    path.unlink()
    started = time.monotonic()
    with pytest.raises(ValueError, match=f"outputs file {path} is missing"):
        ls.open_sweep(path)
    status = ls.sweep_status(path)
    assert time.monotonic() - started < stores.NPY_CREATION_GRACE_SECONDS / 2
    assert not status.done and "missing" in status.damaged[0]


def test_resuming_an_npy_store_whose_outputs_file_was_deleted_recomputes_it_at_once(tmp_path, full):
    """The grace period for a .npy being created holds only while a live process is creating it
    (a live temporary of it exists): a deleted one is recreated at once, not after 10 s."""
    from latentsweep import stores

    path = tmp_path / "sweep.npy"
    sweep(path)
    path.unlink()
    started = time.monotonic()
    with pytest.warns(RuntimeWarning, match="damaged"):
        resumed = sweep(path, resume=True)
    assert time.monotonic() - started < stores.NPY_CREATION_GRACE_SECONDS / 2
    assert resumed.points_computed == full.num_points
    assert_same(ls.open_sweep(path), full)


def test_a_file_is_being_created_while_a_live_process_holds_its_temporary(tmp_path):
    from latentsweep.store_writers import being_created, temporary_path

    target = tmp_path / "sweep.npy"
    assert not being_created(target)
    mine = temporary_path(target)
    mine.write_bytes(b"")
    assert being_created(target)  # this process, alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    mine.rename(mine.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{int(dead.stdout)}-")))
    assert not being_created(target)  # its creator is gone
    (tmp_path / ".other.npy.tmp-0123abcd-1-1-" f"{'0' * 32}").write_bytes(b"")  # another file's
    assert not being_created(target)


KILLED_WHILE_CREATING = """
import os, sys, torch, latentsweep as ls
sys.path.insert(0, {tests!r})
from sweep_models import rowwise_decoder
os.rename = lambda *args: os._exit(9)  # killed as it renames the store into place
anchors = torch.randn(8, 6, generator=torch.Generator().manual_seed(3))
ls.traverse(rowwise_decoder, anchors, steps=10, batch_size=16, out={path!r})
"""


def test_temporaries_of_a_store_whose_creator_was_killed_are_removed(tmp_path, full):
    """A kill while a store is created leaves its hidden temporaries beside it; creating the
    store again removes those of dead processes (and, of unknown creators, old ones), never
    one a live process may still use, nor a user's file."""
    from latentsweep import store_writers

    path = tmp_path / "sweep.npy"
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_CREATING.format(tests=str(TESTS), path=str(path))])
    assert killed.returncode == 9
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(".tmp-" in name for name in left), left
    live = store_writers.temporary_path(tmp_path / "sweep.npy.latentsweep")  # this process's: alive
    live.mkdir()
    old, recent = (tmp_path / f".sweep.npy.tmp-{digit * 32}" for digit in "01")  # unnamed creators
    old.write_bytes(b"x"), recent.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * store_writers.STALE_TEMPORARY_SECONDS,) * 2)
    user = tmp_path / ".sweep.npy.tmp-mine"
    user.write_text("mine")
    assert not path.exists()
    assert_same(sweep(path), full)
    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert remaining == sorted([live.name, recent.name, user.name, "sweep.npy", "sweep.npy.latentsweep"])


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
@pytest.mark.parametrize("metadata", ["{not json", None])
def test_a_store_whose_metadata_file_is_broken_or_missing_is_damaged_not_foreign(tmp_path, full, suffix, metadata):
    """A folder that holds a store's own entries only (its units, leases and arrays) whose
    zarr.json is unreadable or gone is a damaged store: overwrite=True replaces it. A folder
    without them stays "not a latentsweep sweep store", never overwritten."""
    from latentsweep import stores

    path = tmp_path / f"sweep{suffix}"
    sweep(path)
    meta_file = stores.paths_of(path)[0] / "zarr.json"
    meta_file.unlink() if metadata is None else meta_file.write_text(metadata)
    with pytest.raises(ValueError, match=f"damaged: its metadata {meta_file} is {'missing' if metadata is None else 'unreadable'}.*overwrite=True"):
        ls.open_sweep(path)
    with pytest.raises(ValueError, match="damaged.*overwrite=True"):
        sweep(path, resume=True)
    assert_same(sweep(path, overwrite=True), full)
    foreign = tmp_path / "foreign.zarr"
    (foreign / "effect").mkdir(parents=True)
    (foreign / "units").mkdir()  # no leases: not made by a store
    (foreign / "zarr.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a latentsweep sweep store"):
        sweep(foreign, overwrite=True)
    assert (foreign / "zarr.json").read_text() == "{not json"


def test_a_writers_lease_stays_fresh_through_a_batch_longer_than_the_lease(tmp_path, monkeypatch):
    """Seen from another host a lease is live while it is younger than LEASE_SECONDS; a writer
    refreshes it while it holds it, not only as rows arrive, so one long batch does not make a
    live writer look crashed (and its store replaceable). The refreshing stops with the sweep."""
    import threading

    from latentsweep import store_writers

    monkeypatch.setattr(store_writers, "LEASE_SECONDS", 0.5)
    monkeypatch.setattr(store_writers, "LEASE_REFRESH_SECONDS", 0.05)
    path = tmp_path / "sweep.zarr"
    seen = []

    def slow(codes):
        leases = sorted((path / "leases").glob("*.json")) if path.exists() else []
        if leases and not seen:  # the writer holds its lease: look at it as another host does
            info = json.loads(leases[0].read_text())
            leases[0].write_text(json.dumps({**info, "host": "another-host"}))
            time.sleep(1.0)  # a batch twice as long as LEASE_SECONDS
            seen.append(store_writers.live_writers(path))
        return rowwise_decoder(codes)

    sweep(path, slow, keep_outputs=False)
    assert seen == [[f"pid {os.getpid()} on another-host"]]
    assert not [t for t in threading.enumerate() if t.name.startswith("latentsweep lease")]


def test_checking_a_shard_reads_only_its_own_units_rows(tmp_path, monkeypatch, full):
    """A shard's units are every n-th: a block of them read at once spanned the other shards'
    rows (shard 0 of 20 of a large sweep read ~1 GB for a 64 MB block)."""
    from latentsweep import stores

    path = tmp_path / "sharded.zarr"
    assert sweep(path, shard=(0, 3)).done == {0, 3, 6}
    reads = []
    original = stores.SweepStore._read_rows
    monkeypatch.setattr(stores.SweepStore, "_read_rows",
                        lambda self, name, lo, hi: reads.append((lo, hi)) or original(self, name, lo, hi))
    status = ls.sweep_status(path)
    assert status.done == {0, 3, 6}
    unit_rows = 60
    assert reads and all(hi - lo == unit_rows and lo // unit_rows in (0, 3, 6) for lo, hi in reads), reads
    assert stores.consecutive_runs([0, 1, 2, 4, 5, 9], 2) == [[0, 1], [2], [4, 5], [9]]


def test_overwrite_never_removes_or_replaces_an_npy_the_store_did_not_write(tmp_path, full):
    """A keep_outputs=False .npy store writes no .npy: one there later is the user's, as is a
    .npy of another shape. overwrite=True refuses before removing anything, and a resume never
    replaces it as 'damaged outputs'."""
    path = tmp_path / "x.npy"
    sweep(path, keep_outputs=False)
    np.save(path, np.arange(5))
    with pytest.raises(ValueError, match=r"traverse: overwrite=True does not remove .*x\.npy, which the store did not "
                                         r"write \(its sweep was made with keep_outputs=False.*nothing was removed"):
        sweep(path, keep_outputs=False, overwrite=True)
    assert np.array_equal(np.load(path), np.arange(5)) and ls.sweep_status(path).complete
    kept = tmp_path / "kept.npy"
    sweep(kept)
    np.save(kept, np.arange(7.0))  # the user's, in the place of the store's outputs
    with pytest.raises(ValueError, match=r"does not remove .*kept\.npy.*it holds an array of shape \(7,\)"):
        sweep(kept, overwrite=True)
    with pytest.raises(ValueError, match=r"kept\.npy is not the outputs file it wrote .* is never replaced: move it"):
        sweep(kept, resume=True)
    assert np.array_equal(np.load(kept), np.arange(7.0))


def test_an_empty_metadata_folder_does_not_let_a_sweep_replace_a_users_npy(tmp_path):
    path = tmp_path / "user.npy"
    np.save(path, np.arange(7))
    (tmp_path / "user.npy.latentsweep").mkdir()
    for kwargs in ({}, {"overwrite": True}):
        with pytest.raises(ValueError, match=r"user\.npy exists and is not a latentsweep sweep store"):
            sweep(path, **kwargs)
    assert np.array_equal(np.load(path), np.arange(7))


def _read_only(monkeypatch, root: Path) -> None:
    """Everything under root reads as on read-only media (os.access and the writes a store makes)."""
    import errno

    real_access, real_write = os.access, Path.write_text

    def access(place, mode, *args, **kwargs):
        if mode & os.W_OK and str(place).startswith(str(root)):
            return False
        return real_access(place, mode, *args, **kwargs)

    def write_text(self, *args, **kwargs):
        if str(self).startswith(str(root)):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(Path, "write_text", write_text)


def test_resuming_a_store_on_read_only_media_says_so_and_a_finished_one_still_resumes(tmp_path, monkeypatch, full):
    done, unfinished, damaged = (tmp_path / f"{name}.zarr" for name in ("done", "unfinished", "damaged"))
    for path in (done, unfinished, damaged):
        sweep(path)
    (unfinished / "units" / "u000000002.rec").unlink()
    for victim in chunk_files(damaged, "anchors"):
        victim.unlink()  # a resume rewrites the anchors: it takes the writer's lease
    _read_only(monkeypatch, tmp_path)
    assert sweep(done, resume=True).points_computed == 0  # nothing to write: works read-only
    for path in (unfinished, damaged):
        with pytest.raises(ValueError, match=r"^latentsweep.traverse: the sweep store .* is read-only \(.*read-only "
                                             r"media or no permission\), so no units can be added to it\. "
                                             r"latentsweep.open_sweep\(path\) reads it") as caught:
            sweep(path, resume=True)
        assert not getattr(caught.value, "__notes__", None)  # no advice to resume again
    assert ls.sweep_status(unfinished).missing == [2]


def test_a_npy_stores_metadata_folder_is_not_taken_for_a_store(tmp_path, full):
    path = tmp_path / "m.npy"
    sweep(path)
    meta = tmp_path / "m.npy.latentsweep"
    expected = rf"{re.escape(str(meta))} is the metadata folder of the .npy store {re.escape(str(path))}; pass"
    with pytest.raises(ValueError, match=f"open_sweep: {expected}"):
        ls.open_sweep(meta)
    for kwargs in ({"resume": True}, {"overwrite": True}):
        with pytest.raises(ValueError, match=f"traverse: {expected}"):
            sweep(meta, **kwargs)
    assert_same(ls.open_sweep(path), full)
    (tmp_path / "q.npy.latentsweep").write_text("notes")  # a file, and no q.npy
    with pytest.raises(ValueError, match=r"q\.npy\.latentsweep \(where the .npy store .*q\.npy would keep its "
                                         r"metadata\) exists and is not a latentsweep sweep store's folder"):
        sweep(tmp_path / "q.npy")


def test_a_store_whose_units_folder_is_a_file_is_damaged(tmp_path, full):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    shutil.rmtree(path / "units")
    (path / "units").write_text("mine")
    for call in (lambda: ls.open_sweep(path), lambda: sweep(path, resume=True)):
        with pytest.raises(ValueError, match=r"damaged: .*units is a file, not the store's folder .*move it away"):
            call()
    with pytest.raises(ValueError, match=r"did not write \(units\)"):
        sweep(path, overwrite=True)
    assert (path / "units").read_text() == "mine"
    (path / "units").rename(tmp_path / "units.txt")
    assert_same(sweep(path, resume=True), full)


def test_an_npy_in_fortran_order_is_repaired_and_a_folder_in_its_place_is_named(tmp_path, full):
    path = tmp_path / "sweep.npy"
    sweep(path)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"'fortran_order': False", b"'fortran_order': True ", 1))
    with pytest.raises(ValueError, match="missing, truncated or of the wrong shape, dtype or order"):
        ls.open_sweep(path)
    with pytest.warns(RuntimeWarning, match="8 work unit.*damaged"):
        resumed = sweep(path, resume=True)
    assert resumed.points_computed == full.num_points
    assert_same(ls.open_sweep(path), full)
    path.unlink()
    path.mkdir()
    with pytest.raises(ValueError, match=r"sweep\.npy is not the outputs file it wrote \(it is a folder, not a file\)"):
        sweep(path, resume=True)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    path.rmdir()
    with pytest.warns(RuntimeWarning, match="damaged"):
        assert_same(sweep(path, resume=True), full)


def test_overwrite_removes_a_legacy_checkpoint_array_and_names_an_unreadable_lease(tmp_path, full):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    (path / "checkpoint" / "c").mkdir(parents=True)  # what stores of format 1 wrote
    (path / "checkpoint" / "zarr.json").write_text("{}")
    (path / "checkpoint" / "c" / "0").write_bytes(b"\0" * 8)
    (path / "leases" / "host-12-0123abcd.json").write_text("{half")
    with pytest.raises(ValueError, match=r"in use by another sweep \(an unreadable lease host-12-0123abcd.json, 0 s "
                                         r"old: a writer starting, or damaged"):
        sweep(path, overwrite=True)
    (path / "leases" / "host-12-0123abcd.json").unlink()
    assert_same(sweep(path, overwrite=True), full)
    assert not (path / "checkpoint").exists()


def test_a_shards_warning_says_which_damaged_units_it_computes_and_points_at_the_call(tmp_path, full):
    path = tmp_path / "sharded.zarr"
    sweep(path, shard=(0, 3))
    sweep(path, shard=(1, 3))
    (path / "effect" / "c" / "0").unlink()  # unit 0: shard 0's
    with pytest.warns(RuntimeWarning, match=r"1 work unit\(s\) .* damaged \(unit 0: .*\); they are other shards' "
                                            r"units, left to those shards") as caught:
        sweep(path, shard=(2, 3))
    assert [Path(w.filename) for w in caught] == [Path(__file__)]
    with pytest.warns(RuntimeWarning, match=r"damaged \(unit 0: .*\); computing them again") as caught:
        assert_same(sweep(path, shard=(0, 3)), full)
    assert [Path(w.filename) for w in caught] == [Path(__file__)]


def test_a_static_checksum_altered_in_the_metadata_says_what_to_do(tmp_path, full):
    path = tmp_path / "sweep.zarr"
    sweep(path)
    with edited_attributes(path) as attrs:
        attrs["static_crc"]["dims"] = 5
    with pytest.raises(ValueError, match=r"damaged: its dims array does not match the checksum in its metadata .* "
                                         r"cannot be repaired; pass overwrite=True to start over"):
        sweep(path, resume=True)
    assert_same(sweep(path, overwrite=True), full)


def test_store_paths_starting_with_a_tilde_are_in_the_home_folder(tmp_path, monkeypatch, full):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    result = sweep("~/sweep.zarr")
    assert result.store == home / "sweep.zarr" and not (work / "~").exists()
    assert ls.sweep_status("~/sweep.zarr").complete
    assert_same(ls.open_sweep("~/sweep.zarr"), full)
    assert_same(sweep("~/sweep.zarr", resume=True), full)
