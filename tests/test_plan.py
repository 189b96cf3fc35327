"""The plan of a sweep (plan.py): a unit's short last batch, padded or decoded as it is."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentsweep as ls
from latentsweep.plan import make_plan, plan_from_dict
from sweep_models import cpu_probe_calls, rowwise_decoder

ANCHORS = torch.randn(8, 6, generator=torch.Generator().manual_seed(3))
STEPS, BATCH = 10, 16  # units of 60 rows (6 traversals): batches of 16, 16, 16 and 12


class Recording:
    """rowwise_decoder, remembering how many codes each call got."""

    def __init__(self):
        self.sizes: list[int] = []

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        self.sizes.append(codes.shape[0])
        return rowwise_decoder(codes)


def test_a_cpu_sweep_decodes_a_units_short_batch_as_it_is():
    """Padding a unit's last batch to the batch size cost the CPU decoder work on copies (here
    16 rows for 12; up to S - 1 rows per unit, 31% more calls' work at S = 65, batch 64)."""
    decoder = Recording()
    result = ls.traverse(decoder, ANCHORS, steps=STEPS, batch_size=BATCH, progress=False)
    assert decoder.sizes[cpu_probe_calls(len(ANCHORS)):] == [16, 16, 16, 12] * 8  # (first: the anchors' probe)
    expected = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=60, progress=False)  # no short batch
    assert torch.equal(result.effect, expected.effect)
    assert torch.equal(result.sensitivity, expected.sensitivity)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_sweep_pads_short_batches_only_for_a_cuda_graph():
    """Padded on any GPU, the deconv benchmark's last unit (5796 rows at batch 52312) decoded 22%
    more rows than its grid has; only a CUDA graph needs one shape."""
    decoder = Recording()
    result = ls.traverse(decoder, ANCHORS.cuda(), steps=STEPS, batch_size=BATCH, progress=False)
    assert decoder.sizes[1:] == [16, 16, 16, 12] * 8
    expected = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=BATCH, progress=False)
    torch.testing.assert_close(result.effect, expected.effect)
    graphed = ls.traverse(rowwise_decoder, ANCHORS.cuda(), steps=STEPS, batch_size=BATCH, progress=False,
                          cuda_graph=True)
    torch.testing.assert_close(graphed.effect, expected.effect)  # one shape for every replay


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_store_planned_without_cuda_graph_is_not_resumed_with_one(tmp_path):
    """Its units were decoded with short batches, which a graph's one shape cannot replay; the
    same store resumes without cuda_graph, and one started with it resumes with it."""
    path = tmp_path / "sweep.zarr"
    anchors = ANCHORS.cuda()
    ls.traverse(rowwise_decoder, anchors, steps=STEPS, batch_size=BATCH, progress=False, out=path)
    with pytest.raises(ValueError, match="cuda_graph=True needs batches of one size.*resume it without cuda_graph"):
        ls.traverse(rowwise_decoder, anchors, steps=STEPS, batch_size=BATCH, progress=False, out=path, resume=True,
                    cuda_graph=True)
    assert ls.traverse(rowwise_decoder, anchors, steps=STEPS, batch_size=BATCH, progress=False, out=path,
                       resume=True).points_computed == 0
    graphed = tmp_path / "graphed.zarr"
    ls.traverse(rowwise_decoder, anchors, steps=STEPS, batch_size=BATCH, progress=False, out=graphed, cuda_graph=True)
    assert ls.traverse(rowwise_decoder, anchors, steps=STEPS, batch_size=BATCH, progress=False, out=graphed,
                       resume=True, cuda_graph=True).points_computed == 0


def test_plans_say_whether_short_batches_are_padded():
    plan = make_plan(480, STEPS, BATCH, padded=False)
    assert (plan.unit_rows, plan.chunk_rows, plan.padded) == (60, 60, False)
    assert plan_from_dict(plan.as_dict()) == plan
    old = {k: v for k, v in plan.as_dict().items() if k != "padded"}
    assert plan_from_dict(old).padded  # recorded before it was a choice: every batch was padded
    with pytest.raises(ValueError, match="inconsistent plan"):
        plan_from_dict({**plan.as_dict(), "padded": "no"})


def test_trial_units_come_first_and_the_regular_units_follow_them():
    """A memory sweep keeps its batch trials' rows as units 0..T-1, each with its own batch size."""
    trials = ((0, 30, 4), (30, 90, 16), (90, 150, 16))
    plan = make_plan(480, STEPS, BATCH, padded=False, trial_units=trials)
    assert plan.trial_rows == 150 and plan.unit_rows == 60
    rows = [plan.unit_rows_of(u) for u in range(plan.num_units)]
    assert rows == [(0, 30), (30, 90), (90, 150), (150, 210), (210, 270), (270, 330), (330, 390), (390, 450),
                    (450, 480)]
    assert [plan.unit_batch_size(u) for u in range(plan.num_units)] == [4, 16, 16] + [BATCH] * 6
    assert plan_from_dict(plan.as_dict()) == plan
    everything = make_plan(480, STEPS, BATCH, padded=False, trial_units=((0, 480, 8),))
    assert [everything.unit_rows_of(u) for u in range(everything.num_units)] == [(0, 480)]
    assert plan_from_dict(everything.as_dict()) == everything


@pytest.mark.parametrize("trials", [
    [[10, 30, 4]],  # not from row 0
    [[0, 30, 4], [40, 60, 4]],  # a gap
    [[0, 25, 4]],  # not whole traversals
    [[0, 30, 0]],  # no batch size
    [[0, 490, 4]],  # past the grid
    [[0, 30]],  # malformed
    "0,30,4",
])
def test_inconsistent_trial_units_are_refused(trials):
    plan = make_plan(480, STEPS, BATCH, padded=False)
    with pytest.raises(ValueError, match="inconsistent plan"):
        plan_from_dict({**plan.as_dict(), "trial_units": trials})


@settings(max_examples=200, deadline=None)
@given(steps=st.integers(1, 30), traversals=st.integers(1, 40), batch=st.integers(1, 300),
       trials=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 64)), max_size=4))
def test_units_tile_the_grid_in_whole_traversals_after_any_trial_units(steps, traversals, batch, trials):
    """Whatever the trial units (whole traversals from row 0, each with its batch size), the
    plan's units cover every row once, in order, in whole traversals."""
    num_rows = steps * traversals
    trial_units, row = [], 0
    for count, size in trials:  # trial units of `count` whole traversals each, while they fit
        if row + count * steps > num_rows:
            break
        trial_units.append((row, row + count * steps, size))
        row += count * steps
    plan = make_plan(num_rows, steps, batch, padded=False, trial_units=tuple(trial_units))
    rows = [plan.unit_rows_of(u) for u in range(plan.num_units)]
    assert rows[0][0] == 0 and rows[-1][1] == num_rows if rows else num_rows == 0
    for (start, stop), (next_start, _) in zip(rows, rows[1:]):
        assert stop == next_start
    assert all(start < stop and start % steps == 0 and stop % steps == 0 for start, stop in rows)
    assert [plan.unit_batch_size(u) for u in range(len(trial_units))] == [size for _, _, size in trial_units]
    assert plan_from_dict(plan.as_dict()) == plan
