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
