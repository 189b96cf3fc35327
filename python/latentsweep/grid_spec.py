"""The grid specification: which code each row of a sweep decodes, validated once.

A sweep's grid has A anchors x K traversals x S steps, in row-major order: row
``g = a*K*S + k*S + s``. ``values[a, k, s]`` is the traversed coordinate at that row (the latent
value for axis-aligned traversals); its range per traversal sets the sensitivity's slope. The
planner, the sinks and the merge only see this geometry and the row order, so a grid built by
another op (e.g. traversals along directions) plugs in by giving a ``code_writer``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import _checks
from ._modules import tensor_digest
from .posterior import Posterior
from .traversal import _expand_values, traversal_values

CodeWriter = Callable[[int, int, torch.Tensor], None]  # (start, count, out [count, D]) -> None


@dataclass(frozen=True)
class GridSpec:
    """A sweep's grid: ``anchors [A, D]``, ``dims [K]`` (int64), ``values [A, K, S]``
    (contiguous, the anchors' dtype), all owned by the sweep (never the caller's tensors) and
    on one device. ``code_writer`` writes rows ``[start, start + count)`` into ``out``;
    None means the axis-aligned grid (``anchors[a]`` with column ``dims[k]`` set to
    ``values[a, k, s]``), which the C++ executor writes itself."""

    anchors: torch.Tensor
    dims: torch.Tensor
    values: torch.Tensor
    mode: str
    code_writer: CodeWriter | None = None

    @property
    def num_anchors(self) -> int:
        return self.anchors.shape[0]

    @property
    def num_dims(self) -> int:
        return self.dims.numel()

    @property
    def num_steps(self) -> int:
        return self.values.shape[2]

    @property
    def latent_dim(self) -> int:
        return self.anchors.shape[1]

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return (self.num_anchors, self.num_dims, self.num_steps)

    @property
    def num_rows(self) -> int:
        return self.num_anchors * self.num_dims * self.num_steps

    def to(self, device: torch.device) -> GridSpec:
        return GridSpec(self.anchors.to(device), self.dims.to(device), self.values.to(device), self.mode,
                        self.code_writer)

    def digest(self) -> dict:
        """What identifies this grid in a store (shapes, dims, and hashes of the values)."""
        return {
            "anchors": tensor_digest(self.anchors),
            "dims": [int(d) for d in self.dims.tolist()],
            "values": tensor_digest(self.values),
            "grid": list(self.grid_shape),
            "latent_dim": self.latent_dim,
            "mode": self.mode,
            "codes": "axis" if self.code_writer is None else _writer_name(self.code_writer),
        }


def _writer_name(writer) -> str:
    name = f"{getattr(writer, '__module__', '')}.{getattr(writer, '__qualname__', type(writer).__qualname__)}"
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def grid_spec(fn: str, anchors, *, mode, span, steps, dims, logvar, values, reference, prior_std) -> GridSpec:
    """Validates the traversal arguments of :func:`latentsweep.traverse` and builds the grid."""
    if isinstance(anchors, Posterior):
        logvar = anchors.logvar if logvar is None else logvar
        anchors = anchors.mu
    anchors = _checks.tensor(fn, "anchors", anchors, ndims=(1, 2))
    anchors = anchors[None] if anchors.dim() == 1 else anchors
    if anchors.shape[0] == 0 or anchors.shape[1] == 0:
        raise ValueError(
            f"{fn}: anchors must hold at least one code of at least one latent ([A >= 1, D >= 1]), "
            f"got shape {tuple(anchors.shape)}"
        )
    # The sweep owns its anchors: a decoder that writes into its input, or a caller who changes
    # theirs later, cannot change the grid (and autograd history is dropped).
    anchors = anchors.detach().clone()
    _checks.finite(fn, "anchors", anchors)
    dims_t = (
        torch.arange(anchors.shape[1], device=anchors.device)
        if dims is None
        else _checks.dims(fn, dims, anchors.shape[1], anchors.device)
    )
    if values is not None:
        grid_values = _expand_values(fn, values, anchors, dims_t.numel())
        mode = "values"
    else:
        grid_values = traversal_values(
            anchors, mode=mode, span=span, steps=steps, dims=dims_t, logvar=logvar,
            prior_std=prior_std, reference=reference,
        )
    _checks.finite(fn, "the traversal values", grid_values)
    total = anchors.shape[0] * dims_t.numel() * grid_values.shape[2]
    if total > _checks.INT64_MAX:
        raise ValueError(f"{fn}: the grid has {total} points, which overflows int64")
    return GridSpec(anchors, dims_t, grid_values.detach().contiguous(), mode)
