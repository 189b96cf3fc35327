"""The C++ statistics' ``state()`` sums by latent, as the tests compare them."""

from __future__ import annotations

import torch


def sums_by_latent(state: dict, num_dims: int, num_steps: int) -> dict:
    """``dim_effect_sum`` [K] as it is and ``sensitivity_sum`` [K, F] from the rows the statistics
    hold (row r: the latent of the unit's traversal r, SweepStatistics::sensitivity_sum_), the
    latents without a row +0.0."""
    held = state["sensitivity_sum"]
    first_traversal = int(state["unit_start"]) // num_steps
    latents = (first_traversal + torch.arange(held.shape[0])) % num_dims
    assert latents.unique().numel() == latents.numel(), "a latent held in two rows"
    sensitivity = torch.zeros(num_dims, held.shape[1], dtype=held.dtype)
    sensitivity[latents] = held
    return {"dim_effect_sum": state["dim_effect_sum"], "sensitivity_sum": sensitivity}
