"""The result of a sweep: decoder outputs over the traversal grid and what they say."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import _checks
from .latent_shape import coordinate_labels
from .paths import PATHS


@dataclass
class TraversalResult:
    """What :func:`latentsweep.traverse` found. A = anchors, K = traversals (latents or
    directions), S = steps, F = output features (the decoder's output shape flattened). Tensors
    are on the CPU.

    Attributes:
        dims: ``[K]`` the traversed latent indices (flat indices into the latent for structured
            latents); for a sweep along directions, ``0..K-1``: indices into ``directions``.
        directions: ``[K, D]`` the unit directions traversed, or ``None`` for coordinates.
        labels: K names of the traversals, for text and pictures: ``"z3"`` for latent 3
            (``"z[1,4,2]"`` in a structured latent), a :class:`Directions`' names with the share
            of the variance when known (``"PC1 (34%)"``), else ``"u0" .. "uK-1"``.
        latent_shape: the shape of one code as the decoder took it (``(D,)`` for flat codes).
        values: ``[A, K, S]`` the value each traversed latent took (the coordinate along the
            direction for a direction sweep).
        anchors: ``[A, D]`` the codes the traversals start from (flat; ``anchors.view(A,
            *latent_shape)`` for structured latents).
        outputs: ``[A, K, S, *out_shape]`` decoder outputs: a tensor (in memory), an
            array-like read from the store when ``out=`` is a path (``numpy.asarray`` works),
            or ``None`` with ``keep_outputs=False``.
        anchor_outputs: ``[A, *out_shape]`` the decoder at the anchors themselves (x0).
        effect: ``[A, K, S]`` mean over features of ``|x[a,k,s] - x0[a]|``. Statistics are in
            the outputs' precision: float64 for float64 outputs, else float32.
        dim_effect: ``[K]`` mean of ``effect`` over anchors and steps.
        ranking: ``[K]`` latent indices (from ``dims``; direction indices for a direction
            sweep), largest ``dim_effect`` first. ``labels_of(ranking)`` names them.
        sensitivity: ``[K, F]`` mean over anchors of the summed absolute change of each feature
            along the traversal, divided by the traversal's range: the mean absolute slope of
            feature f along traversal k (which latent or direction moves which feature). A
            traversal without a range (one step, or values that round to one number) counts as
            0 in that mean, with a warning.
        out_shape: the decoder's output shape per code.
        batch_size: codes per decoder call (the sweep's plan; a store records it), or the
            smaller size out of memory halved it to (on any rank, in this call).
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
    # A tensor, a store's array or None (see above): Any, as the field's type, so that a type
    # checker takes users' result.outputs.shape (as object it flagged every use).
    outputs: Any
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
    directions: torch.Tensor | None = None
    labels: tuple[str, ...] = ()
    latent_shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.latent_shape:
            self.latent_shape = (int(self.anchors.shape[-1]),)
        if not self.labels:
            self.labels = (tuple(f"u{k}" for k in range(len(self.dims))) if self.directions is not None
                           else coordinate_labels(self.dims, self.latent_shape))
        self.labels = tuple(self.labels)

    def __eq__(self, other) -> bool:
        """Same fields: tensors as ``torch.equal`` (values, dtype and device), outputs read from
        a store by the store they read (its path is a field). The dataclass's own ``==``
        compared tensors with ``==`` and raised "Boolean value of Tensor ... is ambiguous"."""
        if not isinstance(other, TraversalResult):
            return NotImplemented
        if self is other:
            return True
        mine, theirs = self.outputs, other.outputs
        if mine is not None and theirs is not None and not isinstance(mine, torch.Tensor) \
                and not isinstance(theirs, torch.Tensor):  # array-likes of a store
            if type(mine) is not type(theirs) or (getattr(mine, "shape", None), getattr(mine, "dtype", None)) != (
                    getattr(theirs, "shape", None), getattr(theirs, "dtype", None)):
                return False
            return _checks.same_fields(self, other, skip=("outputs",))
        return _checks.same_fields(self, other)

    __hash__ = None  # the tensors are mutable

    @property
    def num_points(self) -> int:
        return int(self.values.numel())

    @property
    def anchor_values(self) -> torch.Tensor:
        """``[A, K]`` each anchor's own value of each traversed coordinate: ``anchors[:, dims]``,
        or for a direction sweep the projections ``anchors @ directions.T`` (in float64, rounded
        to the anchors' dtype). Mode "prior" steps from these."""
        if self.directions is None:
            return self.anchors[:, self.dims]
        return (self.anchors.double() @ self.directions.double().T).to(self.anchors.dtype)

    @property
    def traversal_kind(self) -> str:
        """``"direction"`` or ``"latent"``: what one traversal is, for text."""
        return "direction" if self.directions is not None else "latent"

    def labels_of(self, indices) -> list[str]:
        """The labels of traversals named as ``dims`` and ``ranking`` name them (latent
        indices, or direction indices): ``result.labels_of(result.ranking[:3])``."""
        fn = "TraversalResult.labels_of"
        position = {int(d): k for k, d in enumerate(self.dims.tolist())}
        wanted = indices.tolist() if hasattr(indices, "tolist") else indices
        if isinstance(wanted, (str, bytes)) or not isinstance(wanted, (int, Sequence)):
            raise TypeError(f"{fn}: indices must be an int or a sequence of ints (e.g. result.ranking[:3]), "
                            f"got {type(indices).__name__}")
        wanted = [wanted] if isinstance(wanted, int) else list(wanted)
        unknown = [i for i in wanted if isinstance(i, bool) or not isinstance(i, int) or i not in position]
        if unknown:
            raise ValueError(f"{fn}: indices must be among this sweep's {self.traversal_kind} "
                             f"indices {sorted(position)[:10]}{' ...' if len(position) > 10 else ''}, got {unknown[:5]}")
        return [self.labels[position[i]] for i in wanted]

    @property
    def opened(self) -> bool:
        """Whether this result was read by :func:`latentsweep.open_sweep` (no call decoded it:
        no points computed and no time taken, from a store)."""
        return self.store is not None and self.points_computed == 0 and self.wall_time == 0.0

    def speed_text(self) -> str:
        """Points, seconds and points/s of this call's sweep, consistent with each other."""
        points, rate = self.points_computed, self.points_per_second
        if self.opened:
            return f"read from the store at {self.store} (decoded by the runs that wrote it)"
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
        top = _checks.integer("TraversalResult.summary", "top", top, low=0)
        a, k, s = self.values.shape
        shown = min(top, k)
        kind = self.traversal_kind
        structured = f", latent shape {list(self.latent_shape)}" if len(self.latent_shape) > 1 else ""
        speed = self.speed_text() + ("" if self.opened else f"; {self.wall_time:.3g} s in all")
        if self.mode in PATHS:  # an interpolation's sweep (interpolate, or open_sweep of its store)
            return "\n".join([
                f"{a} {self.mode} path{'' if a == 1 else 's'} x {s} steps = {self.num_points:,} points, batch {self.batch_size}, "
                f"effects in {self.output_space}{structured}", speed,
                f"mean change along the paths (effect): {float(self.dim_effect[0]):.4g}"])
        lines = [
            f"{a} anchors x {k} {kind}s x {s} steps = {self.num_points:,} points, mode {self.mode!r}, "
            f"batch {self.batch_size}, effects in {self.output_space}{structured}",
            speed,
        ]
        order = torch.argsort(self.dim_effect, descending=True, stable=True)[:shown]
        names = [self.labels[i] for i in order.tolist()]
        width = max([len(kind), *map(len, names)])
        lines.append(f"{kind:>{width}}  effect   ({'top ' + str(shown) + ' of ' + str(k) if shown < k else 'all ' + str(k)} "
                     f"{kind}s, largest effect first)")
        lines += [f"{name:>{width}}  {float(self.dim_effect[i]):.4g}" for name, i in zip(names, order.tolist())]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"TraversalResult(grid={tuple(self.values.shape)}, out_shape={self.out_shape}, "
            f"ranking={self.labels_of(self.ranking[:8])}{'...' if len(self.ranking) > 8 else ''}, "
            f"store={str(self.store) if self.store else None})"
        )
