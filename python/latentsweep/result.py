"""The result of a sweep: decoder outputs over the traversal grid and what they say."""

from __future__ import annotations

import math
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
        effect: ``[A, K, S]`` mean over features of ``|x[a,k,s] - x0[a]|``. Statistics are in
            the outputs' precision: float64 for float64 outputs, else float32.
        dim_effect: ``[K]`` mean of ``effect`` over anchors and steps.
        ranking: ``[K]`` latent indices (from ``dims``), largest ``dim_effect`` first.
        sensitivity: ``[K, F]`` mean over anchors of the summed absolute change of each feature
            along the traversal, divided by the traversal's range: the mean absolute slope of
            feature f along latent ``dims[k]`` (which latent moves which feature).
        out_shape: the decoder's output shape per code.
        batch_size: codes per decoder call (the sweep's plan; a store records it).
        wall_time: seconds this call took (0 for :func:`latentsweep.open_sweep`).
        points_per_second: grid points decoded per second by this call (all ranks together).
        store: the store's path when ``out=`` was a path, else None.
        mode: the traversal mode (``"values"`` when explicit values were given).
        points_computed: grid points decoded by this call, all ranks together (fewer than
            all when resumed; 0 when a resumed sweep had nothing left to do).
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

    def speed_text(self) -> str:
        """Points, seconds and points/s of this call's sweep, consistent with each other."""
        points, rate = self.points_computed, self.points_per_second
        if points <= 0:
            return "no points decoded by this call (the stored sweep was already complete)"
        if not math.isfinite(rate) or rate <= 0:
            return f"{points:,} points decoded"
        text = f"{points:,} points decoded in {points / rate:.3g} s ({rate:,.0f} points/s)"
        if points < self.num_points:
            text += f"; the other {self.num_points - points:,} by an earlier run"
        return text

    def summary(self, top: int = 5) -> str:
        """A few lines: grid size, speed, and the ``top`` latents that move the output most
        (the heading says when that is fewer than all)."""
        a, k, s = self.values.shape
        shown = min(top, k)
        lines = [
            f"{a} anchors x {k} latents x {s} steps = {self.num_points:,} points, mode {self.mode!r}, "
            f"batch {self.batch_size}, effects in {self.output_space}",
            f"{self.speed_text()}; {self.wall_time:.3g} s in all",
            f"latent  effect   ({'top ' + str(shown) + ' of ' + str(k) if shown < k else 'all ' + str(k)} latents, largest effect first)",
        ]
        order = torch.argsort(self.dim_effect, descending=True, stable=True)[:shown]
        lines += [f"{int(self.dims[i]):>6}  {float(self.dim_effect[i]):.4g}" for i in order]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"TraversalResult(grid={tuple(self.values.shape)}, out_shape={self.out_shape}, "
            f"ranking={self.ranking[:8].tolist()}{'...' if len(self.ranking) > 8 else ''}, "
            f"store={str(self.store) if self.store else None})"
        )
