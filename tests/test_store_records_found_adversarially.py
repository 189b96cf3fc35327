"""Stores: what an adversarial pass found trusted or refused with a bare exception (each case
failed before its fix): unit records whose header was edited, leases and temporaries naming
impossible processes, names too long for the file system, folders where the store keeps files."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep.store_writers import _host_tag
from store_editing import edited_attributes
from sweep_models import cpu_probe_calls, rowwise_decoder

ANCHORS = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
STEPS, BATCH = 5, 8  # 60 points in 2 units of 30 (6 traversals)


def sweep(path, decoder=rowwise_decoder, **kwargs):
    return ls.traverse(decoder, ANCHORS, steps=STEPS, batch_size=BATCH, out=path, progress=False, **kwargs)


@pytest.fixture(scope="module")
def full():
    return ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=BATCH, progress=False)


def assert_same(result, expected) -> None:
    for name in ("effect", "dim_effect", "sensitivity"):
        assert torch.equal(getattr(result, name), getattr(expected, name)), name
    assert np.array_equal(np.asarray(result.outputs), np.asarray(expected.outputs))


def edit_header(record: Path, edit) -> None:
    """Rewrites a record's JSON header (the payload and the rest kept as they are)."""
    data = record.read_bytes()
    size = int.from_bytes(data[8:16], "little")
    header = json.loads(data[16 : 16 + size])
    text = json.dumps(edit(header)).encode()
    record.write_bytes(data[:8] + len(text).to_bytes(8, "little") + text + data[16 + size :])


def flip_name_bit(record: Path) -> None:
    data = bytearray(record.read_bytes())
    data[data.index(b'"dim_effect_sum"') + 14] ^= 1
    record.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        # the arrays listed in the other order: each was read from the other's bytes, and the
        # wrong statistics returned without a word (the payload's checksum did not cover the header)
        lambda record: edit_header(record, lambda h: {**h, "arrays": dict(reversed(list(h["arrays"].items())))}),
        # one bit of an array's name: the store read as complete, then refused by every call
        flip_name_bit,
        # a shortened list of checksums: IndexError
        lambda record: edit_header(record, lambda h: {**h, "crc": h["crc"][:1]}),
    ],
    ids=["arrays-reordered", "name-bit-flipped", "crc-shortened"],
)
def test_an_edited_record_header_is_a_damaged_unit_computed_again(tmp_path, full, damage):
    path = tmp_path / "s.zarr"
    sweep(path)
    damage(path / "units" / "u000000001.rec")
    status = ls.sweep_status(path)
    assert status.done == {0} and set(status.damaged) == {1}, status.summary()
    with pytest.raises(ValueError, match=r"open_sweep: .* is incomplete.* damaged: unit 1: its record u000000001.rec"):
        ls.open_sweep(path)
    with pytest.warns(RuntimeWarning, match=r"1 work unit\(s\) .* are damaged .*computing them again"):
        resumed = sweep(path, resume=True)
    assert resumed.points_computed == 30
    assert_same(resumed, full)
    assert_same(ls.open_sweep(path), full)


def test_leases_and_temporaries_naming_impossible_processes_are_stale(tmp_path, full):
    """A pid beyond any the system gives (a damaged lease or temporary name) raised OverflowError
    from os.kill."""
    path = tmp_path / "s.zarr"
    sweep(path)
    (path / "leases" / f"{socket.gethostname()}-1-deadbeef.json").write_text(
        json.dumps({"host": socket.gethostname(), "pid": 2**40}))
    assert_same(sweep(path, overwrite=True), full)
    other = tmp_path / "t.zarr"
    stale = tmp_path / f".{other.name}.tmp-{_host_tag()}-99999999999999999999-0-{'0' * 32}"
    stale.mkdir()
    assert_same(sweep(other), full)
    assert not stale.exists()


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
def test_a_name_too_long_for_the_store_is_refused_naming_out(tmp_path, suffix):
    """The temporaries beside a store add up to 76 characters to its name: a 200-character name
    failed with a bare "File name too long" (the .npy store's at its metadata folder's name)."""
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    out = tmp_path / ("a" * (limit - 60 - len(suffix)) + suffix)
    with pytest.raises(ValueError, match=rf"^latentsweep\.traverse: out='.*': the name '.*' is {len(out.name)} "
                                         rf"characters long; the file system takes names of at most {limit}"):
        sweep(out)
    assert list(tmp_path.iterdir()) == []
    fits = limit - 76 - len(".latentsweep" if suffix == ".npy" else "")
    sweep(tmp_path / ("b" * (fits - len(suffix)) + suffix))  # the longest name that fits


def test_a_store_folder_that_cannot_be_made_is_named(tmp_path, monkeypatch):
    """mkdir's PermissionError (a folder without write permission, read-only media) came through
    bare when the store's parent folder was missing."""
    real = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self == tmp_path / "locked" / "sub":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    (tmp_path / "locked").mkdir()
    with pytest.raises(ValueError, match=r"^latentsweep\.traverse: out='.*new.zarr': cannot create the store's folder "
                                         r"'.*sub' \(Permission denied\)"):
        sweep(tmp_path / "locked" / "sub" / "new.zarr")


@pytest.mark.parametrize("place", ["units/u000000001.rec", "effect/c/1", "outputs/c/1/0/0"])
def test_a_folder_where_the_store_keeps_a_file_is_refused_before_decoding(tmp_path, place):
    """A resume decoded the unit, then failed writing it (IsADirectoryError), leaving a
    temporary record behind."""
    path = tmp_path / "s.zarr"
    sweep(path)
    target = path / place
    assert target.is_file()
    target.unlink()
    target.mkdir()
    calls = []

    def counting(codes):
        calls.append(codes.shape[0])
        return rowwise_decoder(codes)

    counting.__module__, counting.__qualname__ = rowwise_decoder.__module__, rowwise_decoder.__qualname__
    with pytest.raises(ValueError, match=rf"damaged: {target} is a folder where the store keeps a file .* remove "
                                         r"it, or pass overwrite=True"):
        sweep(path, decoder=counting, resume=True)
    assert len(calls) <= cpu_probe_calls(len(ANCHORS))  # the anchors' probe only
    assert sorted(p.name for p in (path / "units").iterdir() if p.name.startswith(".")) == []


def test_a_store_decoded_on_cuda_and_resumed_on_the_cpu_names_the_devices(tmp_path):
    """The statistics revision of CUDA sweeps (3) differs from the CPU's: the refusal blamed
    "another latentsweep version" for a store of this version decoded on a GPU."""
    from latentsweep.store_session import CUDA_STATISTICS_REVISION
    from latentsweep.stores import sweep_id

    path = tmp_path / "s.zarr"
    sweep(path, shard=(0, 2))
    with edited_attributes(path) as attrs:
        attrs["params"]["statistics_revision"] = CUDA_STATISTICS_REVISION  # as made on a GPU
        attrs["sweep_id"] = sweep_id(attrs["params"])
    with pytest.raises(ValueError, match=r"holds this sweep, decoded on CUDA, and this call decodes on the CPU: .* "
                                         r"resume it on CUDA \(device=\), read it with latentsweep.open_sweep"):
        sweep(path, resume=True)
