"""The result of a sweep: decoder outputs over the traversal grid and what they say."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class TraversalResult:
    """What :func:`latentsweep.traverse` found. A = anchors, K = traversed dims, S = steps,
    F = output features (the decoder's output shape flattened). Tensors are on the CPU.

    Attributes:
        dims: ``[K]`` the traversed latent indices.
        values: ``[A, K, S]`` the value each traversed latent took.
        anchors: ``[A, D]`` the codes the traversals start from.
        outputs: ``[A, K, S, *out_shape]`` decoder outputs: a tensor (in memory), an
            array-like read from the store when ``out=`` is a path (``numpy.asarray`` works),
            or ``None`` with ``keep_outputs=False``.
        anchor_outputs: ``[A, *out_shape]`` the decoder at the anchors themselves (x0).
        effect: ``[A, K, S]`` mean over features of ``|x[a,k,s] - x0[a]|``.
        dim_effect: ``[K]`` mean of ``effect`` over anchors and steps.
        ranking: ``[K]`` latent indices (from ``dims``), largest ``dim_effect`` first.
        sensitivity: ``[K, F]`` mean over anchors of the summed absolute change of each feature
            along the traversal, divided by the traversal's range: the mean absolute slope of
            feature f along latent ``dims[k]`` (which latent moves which feature).
        out_shape: the decoder's output shape per code.
        batch_size: codes per decoder call.
        wall_time: seconds this call spent sweeping (excluding points done by earlier runs).
        points_per_second: grid points decoded per second by this call.
        store: the store's path when ``out=`` was a path, else None.
        mode: the traversal mode (``"values"`` when explicit values were given).
        points_computed: grid points decoded by this call (fewer than all when resumed).
        output_space: what the outputs and effects are measured in: ``"decoder output"``, or
            e.g. ``"sigmoid(decoder output)"`` with ``output_transform="sigmoid"``.
    """

    dims: torch.Tensor
    values: torch.Tensor
    anchors: torch.Tensor
    outputs: object
    anchor_outputs: torch.Tensor
    effect: torch.Tensor
    dim_effect: torch.Tensor
    ranking: torch.Tensor
    sensitivity: torch.Tensor
    out_shape: tuple[int, ...]
    batch_size: int
    wall_time: float
    points_per_second: float
    store: Path | None = None
    mode: str = "prior"
    points_computed: int = field(default=0)
    output_space: str = "decoder output"

    @property
    def num_points(self) -> int:
        return int(self.values.numel())

    def summary(self, top: int = 5) -> str:
        """A few lines: grid size, speed, and the latents that move the output most."""
        lines = [
            f"{self.values.shape[0]} anchors x {self.values.shape[1]} dims x {self.values.shape[2]} steps "
            f"= {self.num_points} points, mode {self.mode!r}, batch {self.batch_size}: "
            f"{self.wall_time:.2f} s ({self.points_per_second:,.0f} points/s)",
            "latent  effect",
        ]
        order = torch.argsort(self.dim_effect, descending=True)[:top]
        lines += [f"{int(self.dims[i]):>6}  {float(self.dim_effect[i]):.4g}" for i in order]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"TraversalResult(grid={tuple(self.values.shape)}, out_shape={self.out_shape}, "
            f"ranking={self.ranking[:8].tolist()}{'...' if len(self.ranking) > 8 else ''}, "
            f"store={str(self.store) if self.store else None})"
        )
