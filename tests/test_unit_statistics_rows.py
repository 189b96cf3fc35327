"""A unit's statistics hold the latents its traversals touch only: its record's size does not grow
with K, and the merge gives the bits of adding every unit's full [K, F] sums, also for units whose
latents wrap past K - 1 (the end of one anchor's latents, the start of the next's) and units of
more than K traversals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep._extension import _C
from latentsweep.merge import RunningMerge, UnitStatistics, unit_latents
from latentsweep.plan import make_plan
from latentsweep.stores import encode_record, read_record
from store_editing import record_shapes
from sweep_models import rowwise_decoder
from statistics_state import sums_by_latent
from sweep_reference import reference_sweep

ANCHORS = torch.randn(3, 5, generator=torch.Generator().manual_seed(3))  # A = 3, K = D = 5
STEPS = 4  # 60 rows; units of batch 2: 2 traversals, 3: 3 traversals, 7: 7 (more than K)


def sweep(batch_size, **kwargs):
    return ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=batch_size, progress=False, **kwargs)


def full_sums_merged(batch_size):
    """The statistics as before units kept their touched latents only: each unit's [K] and
    [K, F] sums (the engine's, over its rows alone) added whole, in unit order, and the effect."""
    anchors = ANCHORS
    values = ls.traversal_values(anchors, steps=STEPS)
    num_anchors, num_dims, _ = values.shape
    outputs = rowwise_decoder(ls.traversal_codes(anchors, range(num_dims), values)).reshape(num_anchors * num_dims * STEPS, -1)
    stats = _C.SweepStatistics(rowwise_decoder(anchors).reshape(num_anchors, -1), values)
    plan = make_plan(outputs.shape[0], STEPS, batch_size, padded=False)
    dim_sum = torch.zeros(num_dims, dtype=torch.float64)
    sensitivity_sum = torch.zeros(num_dims, outputs.shape[1], dtype=torch.float64)
    effect = []
    for unit in range(plan.num_units):
        start, stop = plan.unit_rows_of(unit)
        stats.reset(start)
        effect.append(stats.update(outputs[start:stop], start))
        state = sums_by_latent(stats.state(), num_dims, STEPS)
        dim_sum += state["dim_effect_sum"]
        sensitivity_sum += state["sensitivity_sum"]
    dim_effect = (dim_sum / float(num_anchors * STEPS)).float()
    return torch.cat(effect).view(values.shape), dim_effect, (sensitivity_sum / float(num_anchors)).float()


def assert_bitwise(result, expected) -> None:
    effect, dim_effect, sensitivity = expected
    assert torch.equal(result.effect, effect)
    assert torch.equal(result.dim_effect, dim_effect)
    assert torch.equal(result.sensitivity, sensitivity)
    assert result.ranking.tolist() == result.dims[torch.argsort(dim_effect, descending=True, stable=True)].tolist()


def latents_of_units(batch_size):
    plan = make_plan(ANCHORS.shape[0] * ANCHORS.shape[1] * STEPS, STEPS, batch_size, padded=False)
    return plan, [unit_latents(*plan.unit_rows_of(u), STEPS, ANCHORS.shape[1]) for u in range(plan.num_units)]


def test_the_grids_units_wrap_and_some_hold_more_than_k_traversals():
    """(What the tests below rely on.)"""
    num_dims = ANCHORS.shape[1]
    wrapping = {batch for batch in (2, 3) if any(first + count > num_dims for first, count in latents_of_units(batch)[1])}
    assert wrapping == {2, 3}
    plan, latents = latents_of_units(7)
    assert plan.unit_rows // STEPS > num_dims
    assert latents == [(0, 5), (0, 5), (4, 1)]  # 7 traversals (every latent: in latent order), then the last one


def test_unit_latents_follow_the_traversals():
    # traversal t is latent t % K: rows of traversals 3..6 of K = 5 touch latents 3, 4, 0, 1
    assert unit_latents(3 * 4, 7 * 4, 4, 5) == (3, 4)
    assert unit_latents(0, 12 * 4, 4, 5) == (0, 5)  # more than K traversals: every latent once
    assert unit_latents(2 * 4, 9 * 4, 4, 5) == (0, 5)  # every latent, from latent 2: held in latent order
    assert unit_latents(8 * 4, 9 * 4, 4, 5) == (3, 1)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 64])
def test_results_are_those_of_full_sums_in_memory_and_in_a_store(tmp_path, batch_size):
    expected = full_sums_merged(batch_size)
    in_memory = sweep(batch_size, keep_outputs=False)
    assert_bitwise(in_memory, expected)
    assert_bitwise(sweep(batch_size, out=tmp_path / "s.zarr"), expected)
    assert_bitwise(ls.open_sweep(tmp_path / "s.zarr"), expected)
    for index in range(2):  # shards: each writes its units, the last merges all the records
        sweep(batch_size, out=tmp_path / "shards.zarr", shard=(index, 2))
    assert_bitwise(ls.open_sweep(tmp_path / "shards.zarr"), expected)
    ref = reference_sweep(rowwise_decoder, ANCHORS, in_memory.dims, in_memory.values)  # (other sums: close)
    torch.testing.assert_close(in_memory.sensitivity.double(), ref["sensitivity"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(in_memory.dim_effect.double(), ref["dim_effect"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("batch_size", [2, 7])
def test_a_resume_of_a_store_with_wrapping_units_gives_the_same_bits(tmp_path, batch_size):
    """Units decoded after a gap wait for it in memory (their own size counted), the rest are
    read from their records."""
    path = tmp_path / "s.zarr"
    sweep(batch_size, out=path)
    plan, latents = latents_of_units(batch_size)
    gone = [u for u, (first, count) in enumerate(latents) if first + count > ANCHORS.shape[1]][:2] + [0]
    for unit in gone:
        (path / "units" / f"u{unit:09d}.rec").unlink()
    resumed = sweep(batch_size, out=path, resume=True)
    assert resumed.points_computed == sum(np.diff(plan.unit_rows_of(u))[0] for u in gone)
    expected = full_sums_merged(batch_size)
    assert_bitwise(resumed, expected)
    assert_bitwise(ls.open_sweep(path), expected)


def test_a_units_record_does_not_grow_with_k(tmp_path):
    """Same unit size (6 traversals of 5 steps), K = 64 and K = 512: the records are the same
    size (they were 8x apart: every latent's sums in every unit)."""
    sizes, shapes = {}, {}
    for num_dims in (64, 512):
        torch.manual_seed(0)
        decoder = torch.nn.Linear(num_dims, 16)
        path = tmp_path / f"k{num_dims}.zarr"
        ls.traverse(decoder, torch.randn(1, num_dims), steps=5, batch_size=8, keep_outputs=False, out=path,
                    progress=False)
        assert ls.sweep_status(path).complete
        record = path / "units" / "u000000001.rec"
        sizes[num_dims], shapes[num_dims] = record.stat().st_size, record_shapes(path, record)
    assert abs(sizes[512] - sizes[64]) < 32  # (the header's checksums' digits may differ)
    assert sizes[64] < 8 * 6 * 17 + 400
    assert shapes[64] == shapes[512] == {"dim_effect_sum": (6,), "sensitivity_sum": (6, 16)}


def test_waiting_units_take_their_own_bytes_of_the_budget():
    """Units offered ahead of a missing one wait within the budget by their real size
    (8·n·(F+1) bytes each), not by K's: here K = 512, units of 6 latents."""
    features, count = 16, 6
    merge = RunningMerge(512, features, budget_bytes=2 * 8 * count * (features + 1))
    for unit in (1, 2, 3):  # unit 0 missing: 1 and 2 fit, 3 does not
        merge.offer(unit, UnitStatistics(torch.ones(count, dtype=torch.float64),
                                         torch.ones(count, features, dtype=torch.float64), first=6 * unit))
    assert sorted(merge.waiting) == [1, 2]


def record_with(path, unit, arrays_of):
    """Rewrites a unit's record (header kept, checksum made anew) with the arrays ``arrays_of(arrays)``."""
    record = path / "units" / f"u{unit:09d}.rec"
    header, arrays = read_record(record, record_shapes(path, record))
    header.pop("arrays")
    record.write_bytes(encode_record(header, arrays_of(arrays)))


@pytest.mark.parametrize("arrays_of", [
    # a format-4 record: every latent's sums (this unit's K = 5 latents' rows, zeros elsewhere)
    lambda a: {"dim_effect_sum": np.zeros(5), "sensitivity_sum": np.zeros((5, a["sensitivity_sum"].shape[1]))},
    lambda a: {"dim_effect_sum": np.append(a["dim_effect_sum"], 0.0),
               "sensitivity_sum": np.vstack([a["sensitivity_sum"], a["sensitivity_sum"][:1]])},
    lambda a: {"dim_effect_sum": a["dim_effect_sum"], "sensitivity_sum": a["sensitivity_sum"][:, :-1]},
    lambda a: {"dim_effect_sum": a["dim_effect_sum"][:1], "sensitivity_sum": a["sensitivity_sum"][:1]},
], ids=["all-K-latents", "one-latent-more", "one-feature-fewer", "one-latent-fewer"])
def test_a_record_of_other_shapes_is_a_damaged_unit_computed_again(tmp_path, arrays_of):
    path = tmp_path / "s.zarr"
    sweep(2, out=path)  # units of 2 traversals: unit 2 is latents 4 and 0
    record_with(path, 2, arrays_of)
    status = ls.sweep_status(path)
    assert set(status.damaged) == {2} and "a record of other arrays" in status.damaged[2], status.summary()
    with pytest.raises(ValueError, match=r"is incomplete.* damaged: unit 2: its record u000000002.rec"):
        ls.open_sweep(path)
    with pytest.warns(RuntimeWarning, match=r"1 work unit\(s\) .* are damaged .*computing them again"):
        resumed = sweep(2, out=path, resume=True)
    assert resumed.points_computed == 2 * STEPS
    assert_bitwise(resumed, full_sums_merged(2))


def _nonzero_rows(stats) -> list[int]:
    state = sums_by_latent(stats.state(), 5, STEPS)
    return sorted(set(state["dim_effect_sum"].nonzero().flatten().tolist())
                  | set(state["sensitivity_sum"].any(dim=1).nonzero().flatten().tolist()))


def test_reset_zeroes_the_touched_rows_and_all_rows_after_a_failure_or_a_loaded_state():
    """reset() zeroes only the rows of the latents the last unit touched (zeroing [K, F] at every
    unit's start cost as much as the decoder at K = 4096), and every row when a failed chunk may
    have added to others, or after load_state (sums from elsewhere)."""
    values = ls.traversal_values(ANCHORS, steps=STEPS)
    outputs = rowwise_decoder(ls.traversal_codes(ANCHORS, range(5), values)).reshape(60, -1)
    stats = _C.SweepStatistics(rowwise_decoder(ANCHORS).reshape(3, -1), values)
    stats.reset(4 * STEPS)  # traversals 4, 5, 6: latents 4, 0, 1
    stats.update(outputs[16:28], 16)
    assert stats.touched_latents() == (4, 3) == unit_latents(16, 28, STEPS, 5)
    assert _nonzero_rows(stats) == [0, 1, 4]
    assert [t.shape[0] for t in stats.unit_sums_to_host().values()] == [3, 3]
    stats.reset(28)
    assert _nonzero_rows(stats) == [] and stats.touched_latents() == (2, 0)

    features = outputs.shape[1]
    full = {**stats.state(), "sensitivity_sum": torch.ones(5, features, dtype=torch.float64),
            "dim_effect_sum": torch.ones(5, dtype=torch.float64)}
    stats.load_state(full)
    assert stats.touched_latents() == (0, 5)  # (any row may hold sums)
    stats.reset(28)
    assert _nonzero_rows(stats) == []
    # A state of fewer rows: they are the latents from its unit's first (traversal 7: latent 2).
    stats.load_state({**full, "sensitivity_sum": torch.ones(3, features, dtype=torch.float64)})
    assert stats.touched_latents() == (2, 3) and stats.sensitivity_rows == 3
    assert sums_by_latent(stats.state(), 5, STEPS)["sensitivity_sum"].any(dim=1).tolist() == [0, 0, 1, 1, 1]
    stats.reset(28)
    assert _nonzero_rows(stats) == []

    stats.update(outputs[28:32], 28)  # traversal 7: latent 2
    stats.invalidate()  # (a chunk failed: it may have added to rows past the ones it got to)
    with pytest.raises(RuntimeError, match="after a failed chunk"):
        stats.unit_sums_to_host()
    stats.reset(0)
    assert _nonzero_rows(stats) == [] and stats.touched_latents() == (0, 0)


@pytest.mark.parametrize("generic", [False, True], ids=["fused", "generic"])
@pytest.mark.parametrize("start, stop", [(8, 16), (16, 28), (8, 36), (0, 60)],
                         ids=["2-latents", "wrapping", "more-than-K", "whole-grid"])
def test_the_sums_hold_the_latents_a_unit_touches_whether_or_not_its_end_is_known(device, generic, start, stop):
    """The sensitivity's sums are [n, F], n = min(K, the unit's traversals), not [K, F] (at 1,024
    latents of 3 x 128 x 128 outputs, [K, F] took 402 MB): sized
    at reset(start, stop), or grown as chunks arrive when the end is not given (the same bits).
    The touched rows go to the unit's sums in latent order, also when they wrap past K - 1. On
    CUDA the fused kernel gives the CPU's bits."""
    values = ls.traversal_values(ANCHORS, steps=STEPS)
    outputs = rowwise_decoder(ls.traversal_codes(ANCHORS, range(5), values)).reshape(60, -1)
    unit_traversals = (stop - start) // STEPS
    sums = []
    for stop_given in (stop, -1):
        stats = _C.SweepStatistics(rowwise_decoder(ANCHORS).reshape(3, -1).to(device), values.to(device))
        stats._set_generic_path(generic)
        assert stats.sensitivity_rows == 0  # (nothing held before a unit)
        stats.reset(start, stop_given)
        assert stats.sensitivity_rows == (min(5, unit_traversals) if stop_given > 0 else 0)
        for row in range(start, stop, 3):  # chunks of 3 rows: traversals straddle them
            stats.update(outputs[row:min(row + 3, stop)].to(device), row)
        needed = min(5, unit_traversals)  # (grown: doubled, so few copies, up to K)
        assert stats.sensitivity_rows == needed if stop_given > 0 else needed <= stats.sensitivity_rows <= min(5, 2 * needed)
        sums.append(stats.unit_sums_to_host())
        if device == "cuda":
            torch.cuda.synchronize()  # (the copies to the host are queued on the stream)
    first, count = unit_latents(start, stop, STEPS, 5)
    assert stats.touched_latents() == (first, count)
    # sensitivity() [K, F]: the held rows by latent, the others 0
    assert torch.equal(stats.sensitivity(), sums_by_latent(stats.state(), 5, STEPS)["sensitivity_sum"] / 3)
    assert all(torch.equal(sums[0][name], sums[1][name]) for name in sums[0])
    # against the fused kernel's sums of the whole unit in one chunk (its bits do not depend on
    # the chunking; the generic path's do, by the last bit)
    whole = _C.SweepStatistics(rowwise_decoder(ANCHORS).reshape(3, -1), values)
    whole.reset(start)
    whole.update(outputs[start:stop], start)
    expected = sums_by_latent(whole.state(), 5, STEPS)["sensitivity_sum"][(first + torch.arange(count)) % 5]
    if generic:
        torch.testing.assert_close(sums[0]["sensitivity_sum"], expected, rtol=1e-6, atol=0)  # (float32 slopes)
    else:
        assert torch.equal(sums[0]["sensitivity_sum"], expected)
    assert expected.any(dim=1).all()
