"""A zarr store's unit that is one chunk (a few batches hold no whole number of traversals, see
plan.py) is written as its batches arrive, into a temporary beside its chunk file renamed onto it
when the unit is done (streamed_chunks.py): it was held whole in memory, then written through
zarr (S = 4001 steps of 3x128x128 float32 images: a 786 MB unit, a 1.7 GiB peak). The chunk
files are the bytes zarr writes (an edge chunk padded, a chunk of zeros not stored), so stores
written either way read, resume and are read by plain zarr alike."""

from __future__ import annotations

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
import zarr

import latentsweep as ls
from latentsweep import stores, streamed_chunks
from latentsweep.store_writers import chunk_temporary_path, remove_dead_chunk_temporaries
from latentsweep.stores import SweepStore
from peak_memory import linux_only, peak_bytes
from sweep_models import rowwise_decoder

TESTS = Path(__file__).parent
# 7 traversals of 7 steps at batch 4: units of 2 traversals (14 rows, batches of 4, 4, 4, 2), each
# one chunk; the last unit is 1 traversal, an edge chunk of 7 rows
ANCHORS = torch.randn(7, 6, generator=torch.Generator().manual_seed(5))
ANCHORS[0:2, 5] = -0.0  # unit 0's outputs are all -0.0: bits not zero, stored
ANCHORS[2:4, 5] = 0.0  # unit 1's are all zeros: zarr does not store that chunk
DIMS, STEPS, BATCH = [0], 7, 4


def decoder(codes: torch.Tensor) -> torch.Tensor:
    """rowwise_decoder, but a code whose latent 5 is +-0 gives that zero everywhere."""
    out = rowwise_decoder(codes)
    zero = codes[:, 5:6, None]
    return torch.where(zero == 0, zero.expand_as(out), out)


class StoppingDecoder:
    """``decoder`` that raises ``error`` (None: kills its process) at its 5th call of a full
    batch, mid unit 1; with ``stop=False``, never (the same decoder, to resume with)."""

    def __init__(self, error: BaseException | None = None, stop: bool = True):
        self.error, self.calls = error, 0 if stop else -(1 << 62)

    def __call__(self, codes):
        if codes.shape[0] == BATCH:
            self.calls += 1
            if self.calls == 5:
                if self.error is None:
                    os.kill(os.getpid(), signal.SIGKILL)
                raise self.error
        return decoder(codes)


def sweep(out, decode=decoder, **kwargs):
    return ls.traverse(decode, ANCHORS, dims=DIMS, steps=STEPS, batch_size=BATCH, out=out, progress=False, **kwargs)


@pytest.fixture(scope="module")
def in_memory():
    return sweep(None)


def assert_same(result, expected) -> None:
    for name in ("effect", "dim_effect", "sensitivity"):
        assert torch.equal(getattr(result, name), getattr(expected, name)), name
    assert np.array_equal(np.asarray(result.outputs), np.asarray(expected.outputs))


def chunk_files(store: Path, array: str = "outputs") -> dict[str, bytes]:
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted((store / array / "c").rglob("*"))
            if p.is_file()}


def temporaries(store: Path) -> list[Path]:
    return sorted(store.rglob("*.partial"))


def buffered(monkeypatch) -> None:
    """The store writes its units as before: held whole, written through zarr (as for an array
    whose metadata is not raw)."""
    monkeypatch.setattr(stores, "raw_chunks", lambda array: None)


def test_the_plan_makes_each_unit_one_chunk_and_the_last_an_edge_chunk(tmp_path):
    sweep(tmp_path / "s.zarr")
    plan = SweepStore(tmp_path / "s.zarr", writable=False).plan
    assert plan.chunk_rows == plan.unit_rows == 14 != plan.batch_size and plan.num_rows == 49


def test_streamed_units_are_the_bytes_zarr_writes_and_read_back_identically(tmp_path, monkeypatch, in_memory):
    finished = []
    finish = streamed_chunks.ChunkStream.finish
    monkeypatch.setattr(streamed_chunks.ChunkStream, "finish", lambda self: finished.append(self) or finish(self))
    streamed = sweep(tmp_path / "streamed.zarr")
    assert sorted(s.path.relative_to(tmp_path / "streamed.zarr").parts[0] for s in finished) == ["effect"] * 4 + [
        "outputs"] * 4  # every unit's outputs streamed, its effect written as a file
    assert_same(streamed, in_memory)
    assert_same(ls.open_sweep(tmp_path / "streamed.zarr"), in_memory)
    rows = zarr.open_array(tmp_path / "streamed.zarr" / "outputs", mode="r")[...]
    assert np.array_equal(rows.reshape(in_memory.outputs.shape), in_memory.outputs.numpy())
    buffered(monkeypatch)
    sweep(tmp_path / "buffered.zarr")
    assert len(finished) == 8
    files = chunk_files(tmp_path / "streamed.zarr")
    assert files == chunk_files(tmp_path / "buffered.zarr")
    effects = chunk_files(tmp_path / "streamed.zarr", "effect")
    assert effects == chunk_files(tmp_path / "buffered.zarr", "effect")
    assert sorted(effects) == ["effect/c/2", "effect/c/3"]  # (units 0 and 1 change nothing: effect +0.0, not stored)
    assert len(effects["effect/c/3"]) == len(effects["effect/c/2"]) == 14 * 4  # (float32 effect, edge padded)
    # unit 0 (-0.0) stored, unit 1 (zeros) not, the edge chunk full size
    assert sorted(files) == ["outputs/c/0/0/0", "outputs/c/2/0/0", "outputs/c/3/0/0"]
    assert len(files["outputs/c/3/0/0"]) == len(files["outputs/c/0/0/0"]) == 14 * 12 * 4
    assert not temporaries(tmp_path / "streamed.zarr")


def test_a_unit_of_zeros_replaces_the_chunk_file_of_an_earlier_write(tmp_path, in_memory):
    """A unit recomputed as zeros removes its chunk file, as zarr does (else the old rows read)."""
    sweep(tmp_path / "s.zarr")
    (tmp_path / "s.zarr" / "units" / "u000000001.rec").unlink()
    chunk = tmp_path / "s.zarr" / "outputs" / "c" / "1" / "0" / "0"
    chunk.write_bytes(np.ones(14 * 12, np.float32).tobytes())
    assert_same(sweep(tmp_path / "s.zarr", resume=True), in_memory)
    assert not chunk.exists()


@pytest.mark.parametrize("write", ["buffered", "streamed"])
def test_a_store_stopped_mid_unit_resumes_either_way_to_the_uninterrupted_result(tmp_path, monkeypatch, in_memory,
                                                                                  write):
    """A store written by the buffered path (as older versions did) resumes streamed, and one
    written streamed resumes buffered (as an older version would resume it)."""
    with monkeypatch.context() as patch:
        if write == "buffered":
            buffered(patch)
        with pytest.raises(RuntimeError, match="decoder stops"):
            sweep(tmp_path / "s.zarr", decode=StoppingDecoder(RuntimeError("the decoder stops")))
    status = ls.sweep_status(tmp_path / "s.zarr")
    assert status.done == {0} and not status.damaged
    assert not temporaries(tmp_path / "s.zarr")  # the unit stopped half way left nothing
    if write == "streamed":
        buffered(monkeypatch)
    assert_same(sweep(tmp_path / "s.zarr", StoppingDecoder(stop=False), resume=True), in_memory)
    assert_same(ls.open_sweep(tmp_path / "s.zarr"), in_memory)


def test_a_unit_retried_at_half_the_batch_size_leaves_no_temporary(tmp_path, in_memory):
    with pytest.warns(RuntimeWarning, match="out of memory"):
        result = sweep(tmp_path / "s.zarr", decode=StoppingDecoder(MemoryError()))
    assert np.array_equal(np.asarray(result.outputs), in_memory.outputs.numpy())
    assert ls.sweep_status(tmp_path / "s.zarr").complete
    assert not temporaries(tmp_path / "s.zarr")


KILLED_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_store_unit_streaming import StoppingDecoder, sweep
sweep({path!r}, StoppingDecoder())  # killed mid unit 1, its temporary half written
"""


def test_a_process_killed_mid_unit_leaves_a_temporary_that_resume_and_overwrite_handle(tmp_path, in_memory):
    path = tmp_path / "s.zarr"
    killed = subprocess.run([sys.executable, "-c", KILLED_SCRIPT.format(tests=str(TESTS), path=str(path))],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    left = temporaries(path)
    assert [p.parent.relative_to(path).as_posix() for p in left] == ["outputs/c/1/0"]
    assert stores.foreign_entries(path) == []  # the store's own
    shutil.copytree(path, tmp_path / "copy.zarr")
    assert_same(sweep(path, StoppingDecoder(stop=False), resume=True), in_memory)
    assert not temporaries(path)  # the dead writer's, removed by the process that wrote its unit
    assert_same(sweep(tmp_path / "copy.zarr", overwrite=True), in_memory)


def test_only_the_temporaries_of_writers_that_are_gone_are_removed(tmp_path):
    chunk = tmp_path / "0"
    mine = chunk_temporary_path(chunk)
    name = mine.name  # "0." host tag (8), pid (8), start time (12), random (4) ".partial"
    dead = chunk.with_name(name[:10] + "7fffffff" + name[18:])  # (no such pid)
    other_host = chunk.with_name("0." + ("ffffffff" if name[2:10] != "ffffffff" else "eeeeeeee") + name[10:])
    stale_other_host = chunk.with_name(other_host.name[:-12] + "0000.partial")
    folder = chunk.with_name(dead.name[:-12] + "0001.partial")  # (a dead writer's name, not a file)
    for path in (mine, dead, other_host, stale_other_host):
        path.write_bytes(b"rows")
    folder.mkdir()
    old = time.time() - 2 * 3600
    os.utime(stale_other_host, (old, old))
    remove_dead_chunk_temporaries(chunk)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (mine, other_host, folder))


def test_short_writes_are_completed(tmp_path, monkeypatch, in_memory):
    """os.pwrite writes at most about 2 GiB a call on Linux (the rest of a larger batch of an
    .npy store's outputs was not written: its unit read as damaged, computed again every
    resume); each store write goes on until all is written."""
    pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: pwrite(fd, memoryview(data)[:100], offset))
    assert_same(sweep(tmp_path / "s.zarr"), in_memory)
    assert_same(sweep(tmp_path / "s.npy"), in_memory)


def test_only_an_array_of_raw_chunks_is_streamed(tmp_path):
    sweep(tmp_path / "s.zarr")
    chunks = streamed_chunks.raw_chunks(zarr.open_array(tmp_path / "s.zarr" / "outputs", mode="r"))
    assert chunks.path(3) == tmp_path / "s.zarr" / "outputs" / "c" / "3" / "0" / "0"
    assert chunks.chunk_bytes == 14 * 12 * 4 and chunks.skip_empty
    raw = {"shape": (10, 3), "chunks": (4, 3), "dtype": "float32", "compressors": None, "fill_value": 0}
    assert streamed_chunks.raw_chunks(zarr.create_array(tmp_path / "raw.zarr", **raw)) is not None
    for name, other in [("compressed", {"compressors": "auto"}), ("one", {"fill_value": 1}),
                        ("big", {"serializer": zarr.codecs.BytesCodec(endian="big")}),
                        ("dots", {"chunk_key_encoding": {"name": "default", "separator": "."}}),
                        ("columns", {"chunks": (4, 1)}), ("v2", {"zarr_format": 2})]:
        array = zarr.create_array(tmp_path / f"{name}.zarr", **{**raw, **other})
        assert streamed_chunks.raw_chunks(array) is None, name


def test_a_unit_larger_than_a_read_block_is_checked_from_its_file_block_by_block(tmp_path, monkeypatch, in_memory):
    """Its outputs' checksum read a block at a time, as zarr reads the chunk: no file is zeros
    (unit 1), an edge chunk's padding is not read, a file of another size is unreadable."""
    monkeypatch.setattr(stores, "READ_BLOCK_BYTES", 100)  # a unit's outputs: 672 bytes
    checked = []
    checksum = streamed_chunks.RawChunks.checksum
    monkeypatch.setattr(streamed_chunks.RawChunks, "checksum",
                        lambda self, *args: checked.append(args) or checksum(self, *args))
    path = tmp_path / "s.zarr"
    sweep(path)
    assert_same(ls.open_sweep(path), in_memory)
    assert sorted(checked) == [(0, 672, 100), (1, 672, 100), (2, 672, 100), (3, 336, 100)]
    chunks = path / "outputs" / "c"
    with open(chunks / "2" / "0" / "0", "r+b") as file:  # one bit of one row
        file.seek(300)
        file.write(bytes([file.read(1)[0] ^ 1]))
    (chunks / "0" / "0" / "0").write_bytes((chunks / "0" / "0" / "0").read_bytes()[:-4])
    (chunks / "3" / "0" / "0").unlink()
    status = ls.sweep_status(path)
    assert status.done == {1}
    assert "do not match" in status.damaged[2] and "do not match" in status.damaged[3]
    assert "unreadable" in status.damaged[0] and "holds 668 bytes, not 672" in status.damaged[0]
    with pytest.warns(RuntimeWarning, match="damaged"):
        assert_same(sweep(path, resume=True), in_memory)


MEMORY_SETUP = """
import sys, latentsweep as ls, torch
from latentsweep import stores
sys.path.insert(0, {tests!r})
from sweep_models import wide_rowwise_decoder
decode = wide_rowwise_decoder({features})
anchors = torch.randn(1, 4, generator=torch.Generator().manual_seed(0))
def sweep(steps, out, **kwargs):
    return ls.traverse(decode, anchors, dims=[0], steps=steps, batch_size={batch}, out=out, progress=False, **kwargs)
sweep(5, {warm!r})
"""
# The check of a done unit (a resume's, here of a finished store) reads a block of 4 MB at a time.
RESUME_SETUP = """
sweep({steps}, {out!r})
stores.READ_BLOCK_BYTES = 4 << 20
"""


@linux_only
@pytest.mark.parametrize("case", ["sweep", "resume", "read"])
def test_a_unit_of_one_long_traversal_is_not_held_in_memory(tmp_path, case):
    """One traversal of 1500 steps of 12,288 float32 features: a 74 MB unit, batches of 0.8 MB.
    Held whole, the sweep's peak was twice the unit (its batches' copies, then their
    concatenation), and so was the check of a done unit (zarr reads a chunk whole, then copies
    it), and the reading of a few of its steps three times (the whole anchor read, copied, and
    the steps a view that kept it)."""
    features, steps, batch = 12_288, 1500, 16
    unit_bytes = steps * features * 4
    out = str(tmp_path / "s.zarr")
    setup = MEMORY_SETUP.format(tests=str(TESTS), features=features, batch=batch, warm=str(tmp_path / "warm.zarr"))
    if case != "sweep":
        setup += RESUME_SETUP.format(steps=steps, out=out)
    call = {"sweep": f"sweep({steps}, {out!r})", "resume": f"sweep({steps}, {out!r}, resume=True)",
            "read": f"kept = ls.open_sweep({out!r}).outputs[0, 0, 100:108]"}[case]
    peak = peak_bytes(setup, call)
    assert SweepStore(tmp_path / "s.zarr", writable=False).plan.chunk_rows == steps  # one unit, one chunk
    assert peak < unit_bytes / 4, f"peak {peak / 2**20:.0f} MiB for a unit of {unit_bytes / 2**20:.0f} MiB"


def test_rows_read_from_a_unit_larger_than_a_read_block_are_checked_and_only_they_kept(tmp_path, monkeypatch,
                                                                                      in_memory):
    """A few steps of a unit that is one raw chunk larger than a read block: its checksum read
    block by block, the rows asked for copied out in the same pass, and a damaged unit refused
    (not its rows returned)."""
    path = tmp_path / "s.zarr"
    sweep(path)
    monkeypatch.setattr(stores, "READ_BLOCK_BYTES", 100)  # a unit's outputs: 672 bytes
    outputs = ls.open_sweep(path).outputs
    expected = in_memory.outputs.numpy()
    for key in [(2, 0), (2, 0, slice(1, 4)), (0, 0, 3), (-1, slice(None)), (6, 0, slice(None), 2), (4, slice(0, 1))]:
        got = outputs[key]
        assert np.array_equal(got, expected[key]) and got.shape == expected[key].shape, key
        assert got.base is None or got.base.nbytes <= got.nbytes + 672, key  # (no unit kept alive by a view)
    chunk = path / "outputs" / "c" / "2" / "0" / "0"  # anchors 4 and 5
    with open(chunk, "r+b") as file:
        file.seek(600)  # a byte of anchor 5's rows: anchor 4's, asked for, are intact
        file.write(bytes([file.read(1)[0] ^ 1]))
    with pytest.raises(stores.StoreDamaged, match="unit 2: its output rows do not match their checksum"):
        outputs[4, 0]
    chunk.write_bytes(chunk.read_bytes()[:-4])
    with pytest.raises(stores.StoreDamaged, match=r"rows \[28, 42\) are unreadable .*holds 668 bytes, not 672"):
        outputs[4, 0]


# A plan whose chunks are batches (7 steps, batches of 14 = 2 traversals): each batch is written
# as its chunk's file; the last batch (7 rows) is an edge chunk.
CHUNK_BATCH = 14


def batch_sweep(out, decode=decoder, **kwargs):
    return ls.traverse(decode, ANCHORS, dims=DIMS, steps=STEPS, batch_size=CHUNK_BATCH, out=out, progress=False,
                       **kwargs)


class OnceOutOfMemory:
    """``decoder`` that runs out of memory once, at its third full batch."""

    def __init__(self):
        self.calls = 0

    def __call__(self, codes):
        if codes.shape[0] == CHUNK_BATCH:
            self.calls += 1
            if self.calls == 3:
                raise MemoryError
        return decoder(codes)


@pytest.mark.parametrize("decode", ["plain", "retried"])
def test_a_batch_that_is_a_chunk_is_written_as_the_bytes_zarr_writes(tmp_path, monkeypatch, in_memory, decode):
    """Each batch through zarr cost 0.6 ms of its event-loop thread: written as the chunk's file
    now, the same bytes (-0.0 stored, zeros not, the edge chunk padded). The half batches of an
    out-of-memory retry are not whole chunks: each chunk's are streamed into its file."""
    whole = []
    monkeypatch.setattr(stores, "write_chunk", lambda chunks, chunk, rows: whole.append(
        (chunks.folder.name, chunk, len(rows))) or streamed_chunks.write_chunk(chunks, chunk, rows))
    if decode == "plain":
        files = batch_sweep(tmp_path / "files.zarr")
    else:
        with pytest.warns(RuntimeWarning, match="out of memory"):
            files = batch_sweep(tmp_path / "files.zarr", OnceOutOfMemory())
    plan = SweepStore(tmp_path / "files.zarr", writable=False).plan
    assert plan.chunk_rows == plan.batch_size == CHUNK_BATCH != plan.unit_rows and plan.num_rows == 49
    written = [(chunk, rows) for name, chunk, rows in whole if name == "outputs"]
    # (retried: the unit again from its start in batches of 7, streamed into each chunk; the edge chunk is whole)
    assert written == ([(0, 14), (1, 14), (2, 14), (3, 7)] if decode == "plain" else [(0, 14), (1, 14), (3, 7)])
    assert_same(files, in_memory)
    assert_same(ls.open_sweep(tmp_path / "files.zarr"), in_memory)
    buffered(monkeypatch)
    batch_sweep(tmp_path / "zarr.zarr")
    assert chunk_files(tmp_path / "files.zarr") == chunk_files(tmp_path / "zarr.zarr")
    assert sorted(chunk_files(tmp_path / "files.zarr")) == ["outputs/c/0/0/0", "outputs/c/2/0/0", "outputs/c/3/0/0"]
    assert chunk_files(tmp_path / "files.zarr", "effect") == chunk_files(tmp_path / "zarr.zarr", "effect")
    assert not temporaries(tmp_path / "files.zarr")


@pytest.mark.parametrize("damage", ["truncated", "extended"])
def test_a_damaged_chunk_is_recomputed_through_an_out_of_memory_retry(tmp_path, in_memory, damage):
    """A chunk file damaged after the sweep: resume recomputes its unit, here at half the batch
    size. Through zarr, the half batches were merged with the damaged file, which zarr could not
    decode: the resume stopped with zarr's ValueError ("cannot reshape array"), every time."""
    path = tmp_path / "s.zarr"
    with pytest.warns(RuntimeWarning, match="out of memory"):
        batch_sweep(path, OnceOutOfMemory())
    chunk = path / "outputs" / "c" / "2" / "0" / "0"  # the chunk of the batch retried
    data = chunk.read_bytes()
    chunk.write_bytes(data[:-4] if damage == "truncated" else data + bytes(4))
    with pytest.warns(RuntimeWarning) as warned:
        assert_same(batch_sweep(path, OnceOutOfMemory(), resume=True), in_memory)
    said = " ".join(str(w.message) for w in warned)
    assert "1 work unit(s) of" in said and "are damaged" in said and "out of memory" in said, said
    assert chunk.read_bytes() == data
    assert_same(ls.open_sweep(path), in_memory)
    assert not temporaries(path)


def scalar_decoder(codes: torch.Tensor) -> torch.Tensor:
    """One number per code: outputs [A, K, S], a 1-D array of rows."""
    return decoder(codes)[:, 1, 2]


def test_the_folder_a_one_dimensional_array_keeps_its_chunks_in_is_not_scanned_at_each_unit(tmp_path, monkeypatch):
    """Scalar outputs are streamed into a 1-D array whose chunks share one folder, outputs/c: its
    scan for a dead writer's temporaries at each unit read n²/2 entries in a sweep of n units
    (4000 units: 5 of its 8 s). A chunk in its own folder (c/i/0/...) is still cleaned."""
    scanned = []
    clean = streamed_chunks.remove_dead_chunk_temporaries
    monkeypatch.setattr(streamed_chunks, "remove_dead_chunk_temporaries",
                        lambda path: scanned.append(path.parent) or clean(path))
    path = tmp_path / "s.zarr"
    assert_same(sweep(path, decode=scalar_decoder), sweep(None, decode=scalar_decoder))
    assert SweepStore(path, writable=False)._unit_chunks.ndim == 1  # (streamed)
    assert sorted(chunk_files(path)) == ["outputs/c/0", "outputs/c/2", "outputs/c/3"]
    assert scanned == []
    sweep(tmp_path / "images.zarr")
    assert scanned == [tmp_path / "images.zarr" / "outputs" / "c" / str(i) / "0" for i in range(4)]


def test_stored_outputs_index_as_numpy_reading_only_the_rows_asked_for(tmp_path, monkeypatch):
    """outputs[a, k] and outputs[a, k, s0:s1] read only those traversals' (steps') rows, whole
    units of them checked; every index gives numpy's result on the whole array (with an int for
    the anchors and an array index after a slice, numpy puts their axes first: read whole)."""
    torch.manual_seed(0)
    decoder = torch.nn.Linear(4, 6)
    result = ls.traverse(decoder, torch.randn(3, 4), steps=5, batch_size=7, out=tmp_path / "i.zarr", progress=False)
    whole = np.asarray(result.outputs)
    read = []
    checked = SweepStore.checked_output_rows
    monkeypatch.setattr(SweepStore, "checked_output_rows", lambda self, lo, hi: read.append((lo, hi)) or
                        checked(self, lo, hi))
    assert np.array_equal(result.outputs[1, 2, 1:4], whole[1, 2, 1:4]) and read == [(31, 34)]
    assert np.array_equal(result.outputs[2, 1:3], whole[2, 1:3]) and read[1] == (45, 55)
    assert np.array_equal(result.outputs[0, 3, -1], whole[0, 3, -1]) and read[2] == (19, 20)
    anchors = [0, 2, -1, np.int64(1), slice(0, 2), slice(None)]
    latents = [0, -1, 2, slice(None), slice(1, 3), slice(3, 1), slice(0, 4, 2), -4, 4, np.int64(1), True]
    extras = [(), (slice(1, 3),), (2,), (-1,), (7,), (slice(3, 1),), (slice(0, 5, 2),), (Ellipsis,), (slice(None), 3),
              (2, 3), (slice(1, 4), slice(2, 3)), (None,), (True,), ([0, 2],), (slice(None), [1, 0]),
              (np.array([1]), 2)]
    for a in anchors:
        for k in latents:
            for extra in extras:
                key = (a, k, *extra)
                try:
                    expected = whole[key]
                except IndexError:
                    with pytest.raises(IndexError):
                        result.outputs[key]
                    continue
                got = result.outputs[key]
                assert got.shape == expected.shape and np.array_equal(got, expected), key


class FolderMidSweep:
    """``decoder`` that makes a folder at ``place`` at its first full batch of ``batch`` rows:
    after the store's start-up check (check_writable) found none; with ``make=False``, never."""

    def __init__(self, place: Path, batch: int, make: bool = True):
        self.place, self.batch, self.make = place, batch, make

    def __call__(self, codes):
        if self.make and codes.shape[0] == self.batch:
            self.place.mkdir(parents=True)
            self.make = False
        return decoder(codes)


@pytest.mark.parametrize("kind, place, done", [
    ("unit", "outputs/c/2/0/0", {0, 1}),  # a streamed unit's chunk, renamed into place
    ("unit", "outputs/c/1/0/0", {0}),  # a unit of zeros: its chunk file removed
    ("unit", "effect/c/2", {0, 1}),
    ("unit", "units/u000000002.rec", {0, 1}),
    ("batch", "outputs/c/2/0/0", set()),  # a batch that is a chunk, written as it arrives
])
def test_a_folder_made_at_a_chunk_mid_sweep_is_named_and_the_units_done_stay(tmp_path, in_memory, kind, place,
                                                                             done):
    """A folder made where the store keeps a file after the store checked its places (another
    process, a user's mkdir): the unit's write raised a bare IsADirectoryError naming a
    temporary, and a record's temporary was left behind. Now the store's own refusal, naming the
    place; the units done before stay, and a resume once it is removed completes the sweep."""
    path = tmp_path / "s.zarr"
    run, batch = (sweep, BATCH) if kind == "unit" else (batch_sweep, CHUNK_BATCH)
    with pytest.raises(stores.StoreDamaged, match=rf"^latentsweep\.traverse: the sweep store {re.escape(str(path))} "
                                                  rf"is damaged: {re.escape(str(path / place))} is a folder where "
                                                  r"the store keeps a file .*: remove it, or pass overwrite=True"):
        run(path, FolderMidSweep(path / place, batch))
    status = ls.sweep_status(path)
    assert status.done == done and set(status.damaged) <= {2}  # (a folder at its record: unit 2's, damaged)
    assert not temporaries(path) and not list((path / "units").glob(".*"))
    (path / place).rmdir()
    assert_same(run(path, FolderMidSweep(path / place, batch, make=False), resume=True), in_memory)
    assert_same(ls.open_sweep(path), in_memory)
