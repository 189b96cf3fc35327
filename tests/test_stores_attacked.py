"""Stores attacked as a user's tools, a bad copy or a crash would: each case ends in the
uninterrupted sweep's result bit for bit, or in an error naming the store and what to do, and
never changes files the store did not write."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import latentsweep as ls
from sweep_models import rowwise_decoder

ANCHORS = torch.randn(8, 6, generator=torch.Generator().manual_seed(3))
STEPS, BATCH = 10, 16  # 480 points in 8 units of 60


def sweep(path, anchors=ANCHORS, **kwargs):
    return ls.traverse(rowwise_decoder, anchors, steps=STEPS, batch_size=BATCH, out=path, **kwargs)


def tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.filterwarnings(r"ignore:.*work unit\(s\) of .* are damaged:RuntimeWarning")  # (the resume after)
@pytest.mark.parametrize("place", ["effect", "units", "anchors", "anchors/c/0", "outputs/c", "outputs/c/3",
                                   "outputs/c/3/0"])
def test_a_folder_of_the_store_linked_elsewhere_is_refused_and_its_target_left_alone(tmp_path, place):
    """A store whose folder was a link to another store's (a copy made with links, a user's
    "deduplication") was resumed through the link: the other sweep's chunks, records or
    anchors were overwritten by this one's (a complete store of another sweep found damaged)."""
    other = tmp_path / "other.zarr"
    sweep(other, anchors=ANCHORS * 2)
    before = tree_digest(other)
    path = tmp_path / "s.zarr"
    sweep(path)
    shutil.rmtree(path / place)
    (path / place).symlink_to(other / place)
    with pytest.raises(ValueError, match=rf"traverse: the sweep store {path} is damaged: {path / place} is a symbolic "
                                         rf"link where the store keeps its own folder, .*{other / place}\): replace "
                                         "the link with a copy of that folder, then resume"):
        sweep(path, resume=True)
    assert tree_digest(other) == before
    assert ls.sweep_status(other).complete
    # As advised: the link replaced by a copy of its folder, the resume recomputes what differs.
    (path / place).unlink()
    shutil.copytree(other / place, path / place)
    resumed = sweep(path, resume=True)
    expected = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=BATCH)
    assert torch.equal(resumed.effect, expected.effect) and torch.equal(resumed.sensitivity, expected.sensitivity)
    assert np.array_equal(np.asarray(resumed.outputs), expected.outputs.numpy())


@pytest.mark.parametrize("altered", [["anchors"], ["values"], ["anchors", "values"]])
def test_a_grid_arrays_altered_dtype_is_refused_with_one_advice_and_the_store_left_as_it_was(tmp_path, altered):
    """An altered anchors/zarr.json (float32 -> float64) was called "unreadable; resume=True
    rewrites it" by open_sweep, while the resume wrote the array, read it back, and refused it
    ("pass overwrite=True"), leaving the store changed ("does not match its checksum")."""
    from store_editing import edited_json

    path = tmp_path / "s.zarr"
    sweep(path)
    for name in altered:
        with edited_json(path / name) as meta:
            meta["data_type"] = "float64"
    before = tree_digest(path)
    named = rf"array '{altered[0]}' has dtype float64, its metadata says float32 \({path / altered[0] / 'zarr.json'}\); " \
            "pass overwrite=True to start over"
    for _ in range(2):
        with pytest.raises(ls.StoreDamaged, match=named):
            ls.open_sweep(path)
        with pytest.raises(ls.StoreDamaged, match=named):
            sweep(path, resume=True)
        assert tree_digest(path) == before
    assert torch.equal(sweep(path, overwrite=True).effect, ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS,
                                                                       batch_size=BATCH).effect)


@pytest.mark.parametrize("altered", [["anchors"], ["anchors", "values"]])
def test_an_older_stores_altered_grid_dtype_is_refused_before_anything_is_written(tmp_path, altered):
    """A store made before the arrays' dtypes were recorded: the grid's arrays must share the
    anchors' dtype, and a repair whose array has another dtype than this sweep's is refused
    before it writes (it wrote, read back, then refused)."""
    from store_editing import edited_attributes, edited_json

    path = tmp_path / "s.zarr"
    sweep(path)
    with edited_attributes(path) as attributes:
        del attributes["static_dtypes"]
    for name in altered:
        with edited_json(path / name) as meta:
            meta["data_type"] = "float64"
    before = tree_digest(path)
    match = "must share the anchors' dtype" if len(altered) == 1 else \
        r"its anchors array cannot be rewritten \(its metadata .* was altered: float64 \(8, 6\), this sweep's are float32"
    with pytest.raises(ls.StoreDamaged, match=match + ".*pass overwrite=True to start over"):
        sweep(path, resume=True)
    assert tree_digest(path) == before


def test_a_resume_with_the_anchors_in_another_memory_layout_continues_the_sweep(tmp_path):
    """Anchors of the same values as a transposed view were copied with their strides, so a
    Linear decoder rounded its outputs at them differently: the resume was refused as "the
    decoder changed", and in memory the effect differed by ~3e-8."""
    decoder = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 5))
    transposed = ANCHORS.T.contiguous().T  # the same values, column-major
    assert not transposed.is_contiguous() and torch.equal(transposed, ANCHORS)
    path = tmp_path / "s.zarr"
    kwargs = dict(steps=STEPS, batch_size=BATCH, progress=False)
    first = ls.traverse(decoder, ANCHORS, out=path, **kwargs)
    resumed = ls.traverse(decoder, transposed, out=path, resume=True, **kwargs)
    assert torch.equal(resumed.effect, first.effect)
    in_memory = ls.traverse(decoder, transposed, **kwargs)
    assert torch.equal(in_memory.effect, first.effect) and torch.equal(in_memory.anchor_outputs, first.anchor_outputs)
