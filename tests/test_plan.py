"""The plan of a sweep (plan.py): a unit's short last batch, padded or decoded as it is."""

from __future__ import annotations

import pytest
import torch

import latentsweep as ls
from latentsweep.plan import make_plan, plan_from_dict
from sweep_models import rowwise_decoder

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
    assert decoder.sizes[1:] == [16, 16, 16, 12] * 8  # [0]: the anchors
    expected = ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=60, progress=False)  # no short batch
    assert torch.equal(result.effect, expected.effect)
    assert torch.equal(result.sensitivity, expected.sensitivity)


def test_plans_say_whether_short_batches_are_padded():
    plan = make_plan(480, STEPS, BATCH, padded=False)
    assert (plan.unit_rows, plan.chunk_rows, plan.padded) == (60, 60, False)
    assert plan_from_dict(plan.as_dict()) == plan
    old = {k: v for k, v in plan.as_dict().items() if k != "padded"}
    assert plan_from_dict(old).padded  # recorded before it was a choice: every batch was padded
    with pytest.raises(ValueError, match="inconsistent plan"):
        plan_from_dict({**plan.as_dict(), "padded": "no"})
