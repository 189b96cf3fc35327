"""Plain-PyTorch reference for traverse(): build the whole grid, decode it in one call, and
compute the statistics from the full outputs in float64."""

from __future__ import annotations

import torch


def reference_grid(anchors: torch.Tensor, dims: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """[A*K*S, D] codes by expand + clone + index assignment."""
    num_anchors, latent = anchors.shape
    num_dims, steps = dims.numel(), values.shape[2]
    grid = anchors[:, None, None, :].expand(num_anchors, num_dims, steps, latent).clone()
    for k in range(num_dims):
        grid[:, k, :, int(dims[k])] = values[:, k, :]
    return grid.reshape(-1, latent)


def reference_direction_grid(anchors: torch.Tensor, directions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """[A*K*S, D] codes ``anchors[a] + (values[a, k, s] - <anchors[a], u_k>) * u_k``, by broadcasting
    (``directions``: unit rows [K, D])."""
    along = anchors @ directions.T  # [A, K]
    grid = anchors[:, None, None, :] + (values - along[:, :, None])[..., None] * directions[None, :, None, :]
    return grid.reshape(-1, anchors.shape[1])


def reference_sweep(decoder, anchors: torch.Tensor, dims: torch.Tensor, values: torch.Tensor, *,
                    grid: torch.Tensor | None = None) -> dict:
    """The sweep of ``grid`` (default: the coordinate grid of ``dims``), outputs and statistics."""
    num_anchors = anchors.shape[0]
    num_dims, steps = dims.numel(), values.shape[2]
    with torch.no_grad():
        x0 = decoder(anchors).double().reshape(num_anchors, -1)
        outputs = decoder(reference_grid(anchors, dims, values) if grid is None else grid)
    x = outputs.double().reshape(num_anchors, num_dims, steps, -1)
    effect = (x - x0[:, None, None, :]).abs().mean(-1)
    span = (values[:, :, -1] - values[:, :, 0]).abs().double()
    slope = (x[:, :, 1:] - x[:, :, :-1]).abs().sum(2)
    inverse = torch.where(span > 0, 1 / span, torch.zeros_like(span))
    sensitivity = (slope * inverse[..., None]).mean(0)
    return {
        "outputs": outputs.reshape(num_anchors, num_dims, steps, *outputs.shape[1:]),
        "anchor_outputs": decoder(anchors),
        "effect": effect,
        "dim_effect": effect.mean((0, 2)),
        "sensitivity": sensitivity,
    }
