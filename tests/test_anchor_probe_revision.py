"""The anchors' probe on the CPU: its first call decodes two anchors and the calls after it grow
(revision 3; revision 2 decoded 64 first, revision 1 all 64 at a time), and a store keeps the
revision it was probed with, so that a store started before resumes and joins with anchors'
outputs bit for bit as stored."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import latentsweep as ls
import latentsweep.store_session as store_session
from latentsweep.decoder_probe import (ANCHOR_PROBE_ROWS, CPU_FIRST_PROBE_ROWS, CPU_PROBE_OUTPUT_BYTES, CPU_PROBE_ROWS,
                                      PROBE_REVISION)
from latentsweep.store_session import PROBE_REVISION_KEY
from latentsweep.stores import sweep_id
from store_editing import edited_attributes, rewrite_unit_records
from sweep_models import rowwise_decoder

ANCHORS = torch.randn(200, 6, generator=torch.Generator().manual_seed(5))
STEPS, BATCH = 5, 60  # 6,000 points


def batch_dependent(codes: torch.Tensor) -> torch.Tensor:
    """Rows whose last bits depend on their batch's size, as a oneDNN convolution's can."""
    outputs = rowwise_decoder(codes)
    return outputs * (1 + 2**-20) if codes.shape[0] > ANCHOR_PROBE_ROWS else outputs


def recording(width: int, sizes: list[int]):
    def decode(codes):
        sizes.append(codes.shape[0])
        return codes[:, :1].expand(-1, width) * 2
    return decode


def params_of(path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]["latentsweep"]["params"]


def assert_same(result, expected) -> None:
    for name in ("effect", "dim_effect", "sensitivity", "anchor_outputs"):
        assert torch.equal(getattr(result, name), getattr(expected, name)), name
    assert np.array_equal(np.asarray(result.outputs), np.asarray(expected.outputs))


@pytest.mark.parametrize(("width", "later"), [(12, CPU_PROBE_ROWS), (4096, CPU_PROBE_OUTPUT_BYTES // (4 * 4096))])
def test_the_cpu_probe_grows_its_calls_after_the_first_by_the_outputs_size(width, later):
    """6,400 interpolation starts probed 64 at a time were 100 decoder calls: now one (its
    memory bounds the later calls, tests/test_cpu_decoder_memory.py), then up to CPU_PROBE_ROWS
    at a time, fewer for wide outputs (a 64x64 image: 256)."""
    sizes: list[int] = []
    anchors = torch.randn(2 * CPU_PROBE_ROWS + 100, 4)
    result = ls.traverse(recording(width, sizes), anchors, steps=3, dims=[0], keep_outputs=False, progress=False,
                         batch_size=4096)
    probe_calls = sizes[: 1 + -(-(len(anchors) - 1) // later)]
    assert probe_calls[:2] == [CPU_FIRST_PROBE_ROWS, later] and sum(probe_calls) == len(anchors)
    torch.testing.assert_close(result.anchor_outputs, anchors[:, :1].expand(-1, width) * 2, rtol=0, atol=0)


def test_a_new_cpu_store_records_its_probe_revision(tmp_path):
    path = tmp_path / "new.zarr"
    ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=BATCH, out=path, progress=False)
    assert params_of(path)[PROBE_REVISION_KEY] == PROBE_REVISION == 3


def legacy_store(path, monkeypatch, revision, **kwargs):
    """A store as an earlier version made it: revision 1 (anchors 64 a call, nothing recorded) or
    2 (64 first, then larger calls)."""
    with monkeypatch.context() as patch:
        patch.setattr(store_session, "PROBE_REVISION", revision)
        result = ls.traverse(batch_dependent, ANCHORS, steps=STEPS, batch_size=BATCH, out=path, progress=False,
                             **kwargs)
    assert params_of(path).get(PROBE_REVISION_KEY) == (None if revision == 1 else revision)
    return result


@pytest.mark.parametrize("revision", [1, 2])
def test_a_store_started_by_an_earlier_probe_resumes_and_joins_as_it_began(tmp_path, monkeypatch, revision):
    """Its anchors' outputs were decoded 64 at a time (revision 1), or 64 first (2); probed
    otherwise, a decoder whose bits depend on the batch would read as changed and the sweep be
    refused. The probe reads the store's revision first and batches as it did."""
    expected = legacy_store(tmp_path / "whole.zarr", monkeypatch, revision)
    for second in ({"resume": True}, {"shard": (1, 2)}):
        path = tmp_path / f"half{len(second)}{'shard' in second}.zarr"
        legacy_store(path, monkeypatch, revision, shard=(0, 2))
        ls.traverse(batch_dependent, ANCHORS, steps=STEPS, batch_size=BATCH, out=path, progress=False, **second)
        assert params_of(path).get(PROBE_REVISION_KEY) == (None if revision == 1 else revision)  # still as it was
        assert_same(ls.open_sweep(path), expected)
    # and a new sweep of the same decoder probes in other batches: its anchors' bits differ
    fresh = ls.traverse(batch_dependent, ANCHORS, steps=STEPS, batch_size=BATCH, progress=False)
    assert not torch.equal(fresh.anchor_outputs, expected.anchor_outputs)
    replaced = ls.traverse(batch_dependent, ANCHORS, steps=STEPS, batch_size=BATCH, out=tmp_path / "whole.zarr",
                           overwrite=True, progress=False)  # overwrite: this version's probe, not the old store's
    assert torch.equal(replaced.anchor_outputs, fresh.anchor_outputs)
    assert params_of(tmp_path / "whole.zarr")[PROBE_REVISION_KEY] == PROBE_REVISION


def test_a_store_of_a_later_probe_revision_is_refused_as_another_versions(tmp_path):
    path = tmp_path / "later.zarr"
    ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=BATCH, out=path, shard=(0, 2), progress=False)
    with edited_attributes(path) as attrs:
        attrs["params"][PROBE_REVISION_KEY] = PROBE_REVISION + 1
        attrs["sweep_id"] = sweep_id(attrs["params"])  # as that version would have made it
    rewrite_unit_records(path, lambda header: {**header, "sweep_id": attrs["sweep_id"]})  # they name that sweep
    with pytest.raises(ValueError, match=rf"another latentsweep version .*anchor probe revision {PROBE_REVISION + 1}, "
                                         rf"this version's is {PROBE_REVISION}.*open_sweep"):
        ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=BATCH, out=path, resume=True, progress=False)
