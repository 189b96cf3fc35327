"""The grid specification: which code each row of a sweep decodes, validated once.

A sweep's grid has A anchors x K traversals x S steps, in row-major order: row
``g = a*K*S + k*S + s``. ``values[a, k, s]`` is the traversed coordinate at that row (the latent
value for axis-aligned traversals); its range per traversal sets the sensitivity's slope. The
planner, the sinks and the merge only see this geometry and the row order, so a grid built by
another op plugs in by giving a ``code_writer``: traversals along directions do
(:func:`direction_writer`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import _checks
from ._extension import ops
from ._modules import tensor_digest
from .direction_codes import normalised
from .directions import Directions
from .latent_shape import (
    checked_latent_shape,
    coordinate_labels,
    direction_labels,
    flat_codes,
    flat_directions,
    like_anchors,
)
from .posterior import unwrapped
from .traversal import _expand_values, checked_options, values_for

CodeWriter = Callable[[int, int, torch.Tensor], None]  # (start, count, out [count, D]) -> None


def direction_writer(anchors: torch.Tensor, directions: torch.Tensor, values: torch.Tensor) -> CodeWriter:
    """Writes rows of the direction grid (``direction_codes``) for the executor. The grid's
    tensors were checked once by :func:`grid_spec` (finite, unit rows), so each chunk is
    written by the trusted op: the same shape checks and kernel, without the public op's data
    scans (a norm per direction and a finiteness scan per chunk; each a sync on CUDA)."""

    def write(start: int, count: int, out: torch.Tensor) -> None:
        ops._direction_codes_into_trusted(anchors, directions, values, start, count, out)

    return write


@dataclass(frozen=True)
class GridSpec:
    """A sweep's grid: ``anchors [A, D]`` (flat), ``dims [K]`` (int64), ``values [A, K, S]``
    (contiguous, the anchors' dtype), all owned by the sweep (never the caller's tensors) and
    on one device.

    ``directions``: None for coordinate traversals (``dims[k]`` is a latent index), or ``[K, D]``
    unit rows in the anchors' dtype (``dims`` is then ``arange(K)``: indices into them).
    ``labels``: K names of the traversals (``"z3"``, ``"PC1 (34%)"``, ``"u0"``).
    ``latent_shape``: the shape of one code as the decoder takes it (``(D,)`` for flat codes).
    ``code_writer`` writes rows ``[start, start + count)`` into ``out``; None means the
    axis-aligned grid (``anchors[a]`` with column ``dims[k]`` set to ``values[a, k, s]``), which
    the C++ executor writes itself. Direction grids get :func:`direction_writer`.
    ``point_note``: what the executor's "(anchor a, latent dim k, step s)" names mean when they
    are not latents (directions: derived from the labels; interpolation paths); added to its
    errors. ``code_peak``: the largest |code| a ``code_writer`` of its own writes, where known
    (interpolation paths: :func:`latentsweep.paths.path_peak`). ``path_ends``: ``[A, D]`` the
    ends of an interpolation's paths (its anchors are their starts), kept in its store so that
    :func:`latentsweep.open_sweep` gives back the :class:`Interpolation`."""

    anchors: torch.Tensor
    dims: torch.Tensor
    values: torch.Tensor
    mode: str
    code_writer: CodeWriter | None = None
    directions: torch.Tensor | None = None
    labels: tuple[str, ...] = ()
    latent_shape: tuple[int, ...] = ()
    point_note: str = ""
    code_peak: float | None = None
    path_ends: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not self.latent_shape:
            object.__setattr__(self, "latent_shape", (self.latent_dim,))
        if not self.labels:
            object.__setattr__(self, "labels", tuple(
                f"u{k}" for k in range(self.num_dims)) if self.directions is not None
                else coordinate_labels(self.dims.cpu(), self.latent_shape))
        if self.directions is not None and self.code_writer is None:
            object.__setattr__(self, "code_writer", direction_writer(self.anchors, self.directions, self.values))
        if self.directions is not None and not self.point_note:
            # The executor names grid points by dims[k]: here an index into the directions.
            object.__setattr__(self, "point_note", "In this sweep along directions, 'latent dim k' is direction k: "
                               + ", ".join(f"{k} = {label}" for k, label in enumerate(self.labels[:10]))
                               + (", ..." if len(self.labels) > 10 else ""))

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

    def code_bound(self) -> float | None:
        """An upper bound of |code| over the grid (one pass over its tensors), or ``code_peak``
        where a code writer of its own makes the codes (interpolation paths). A coordinate grid's codes
        hold anchor entries and values; a direction grid's are anchor + (value - <anchor, u>) u,
        and |<anchor, u>| <= ||anchor|| for a unit u."""
        if self.directions is None and self.code_writer is not None:
            return self.code_peak

        def largest(tensor: torch.Tensor) -> float:
            return float(tensor.abs().max()) if tensor.numel() else 0.0

        anchors, values = largest(self.anchors), largest(self.values)
        if self.directions is None:
            return max(anchors, values)
        norm = largest(torch.linalg.vector_norm(self.anchors.double(), dim=1)) if self.anchors.numel() else 0.0
        return anchors + (values + norm) * largest(self.directions)

    def to(self, device: torch.device) -> GridSpec:
        directions = None if self.directions is None else self.directions.to(device)
        # A direction grid's writer is rebuilt on the moved tensors.
        writer = None if directions is not None else self.code_writer
        ends = None if self.path_ends is None else self.path_ends.to(device)
        return GridSpec(self.anchors.to(device), self.dims.to(device), self.values.to(device), self.mode,
                        writer, directions, self.labels, self.latent_shape, self.point_note, self.code_peak, ends)

    def digest(self) -> dict:
        """What identifies this grid in a store (shapes, dims, and hashes of the values; for a
        direction grid also of the directions, with their labels; a structured latent's shape)."""
        digest = {
            "anchors": tensor_digest(self.anchors),
            "dims": [int(d) for d in self.dims.tolist()],
            "values": tensor_digest(self.values),
            "grid": list(self.grid_shape),
            "latent_dim": self.latent_dim,
            "mode": self.mode,
            "codes": "axis" if self.code_writer is None else writer_name(self.code_writer),
        }
        # Only where they apply, so the identity of a flat coordinate sweep is unchanged.
        if self.directions is not None:
            digest.update(codes="directions", directions=tensor_digest(self.directions), labels=list(self.labels))
        if len(self.latent_shape) > 1:
            digest["latent_shape"] = list(self.latent_shape)
        return digest


def writer_name(writer) -> str:
    """The writer's ``identity`` (what its rows depend on beyond anchors and values, e.g. a
    path's endpoints), else its name."""
    name = getattr(writer, "identity", None) or \
        f"{getattr(writer, '__module__', '')}.{getattr(writer, '__qualname__', type(writer).__qualname__)}"
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def grid_spec(fn: str, anchors, *, mode, span, steps, dims, logvar, values, reference, prior_std,
              directions=None, latent_shape=None) -> GridSpec:
    """Validates the traversal arguments of :func:`latentsweep.traverse` and builds the grid.

    Anchors ``[A, *latent_shape]`` are flattened to ``[A, D]`` (``logvar``, ``reference`` and
    ``directions`` of that shape too); the decoder gets codes of ``latent_shape`` back."""
    # A Posterior's codes in their own shape (the decoder's), unless a latent_shape is given.
    anchors, logvar, reference = unwrapped(anchors, logvar, reference, flat=latent_shape is not None)
    anchors, given_shape = flat_codes(fn, "anchors", anchors, what="A")
    latent_shape = checked_latent_shape(fn, latent_shape, anchors, given_shape)
    logvar = like_anchors(fn, "logvar", logvar, latent_shape, what="A")
    reference = like_anchors(fn, "reference", reference, latent_shape, what="M")
    # The sweep owns its anchors: a decoder that writes into its input, or a caller who changes
    # theirs later, cannot change the grid (and autograd history is dropped). Row-major whatever
    # the caller's layout: a transposed view's copy kept its strides, and a Linear decoder
    # rounded its outputs at the anchors differently (a resume was refused as "the decoder changed").
    anchors = anchors.detach().clone(memory_format=torch.contiguous_format)
    _checks.finite(fn, "anchors", anchors)
    unit = unit64 = labels = None
    if directions is not None:
        if dims is not None:
            raise ValueError(
                f"{fn}: give dims (coordinates) or directions, not both; to traverse some of the "
                "directions, index them (directions[:3], or a Directions' [[0, 2]])"
            )
        directions = flat_directions(fn, directions, latent_shape)
        # Normalised once, in float64: the values' coordinates are computed in it, and the codes'
        # rows are rounded once from it to the anchors' dtype (float32 directions normalised in
        # float32, then cast, were unit length to float32's precision only).
        unit64 = normalised(fn, directions.vectors if isinstance(directions, Directions) else directions,
                            dtype=torch.float64).detach()
        unit = unit64.to(anchors.dtype)  # a new tensor: owned, like the anchors
        labels = direction_labels(directions)
        if unit.shape[1] != anchors.shape[1]:
            raise ValueError(
                f"{fn}: directions must be [K, D={anchors.shape[1]}] for these anchors"
                + (f" (or [K, *latent_shape={list(latent_shape)}])" if len(latent_shape) > 1 else "")
                + f", got {tuple(unit.shape)}"
            )
        _checks.same_device(fn, anchors=anchors, directions=unit)
        refuse_repeated_directions(fn, unit, labels)
        dims_t = torch.arange(unit.shape[0], device=anchors.device)
    else:
        dims_t = (
            torch.arange(anchors.shape[1], device=anchors.device)
            if dims is None
            else _checks.dims(fn, dims, anchors.shape[1], anchors.device, distinct=True)
        )
    if values is not None:
        # (the options explicit values leave unused are checked all the same)
        checked_options(fn, mode=mode, span=span, steps=steps, prior_std=prior_std, logvar=logvar,
                        reference=reference, used=False)
        grid_values = _expand_values(fn, values, anchors, dims_t.numel())
        mode = "values"
    else:
        grid_values = values_for(
            fn, anchors, mode=mode, span=span, steps=steps, dims=None if unit is not None else dims_t, logvar=logvar,
            prior_std=prior_std, reference=reference, directions=unit64, unit_rows=True,
        )
    _checks.finite(fn, "the traversal values", grid_values)
    total = anchors.shape[0] * dims_t.numel() * grid_values.shape[2]
    if total > _checks.INT64_MAX:
        raise ValueError(f"{fn}: the grid has {total} points, which overflows int64")
    if grid_values.shape[2] > 1:
        _warn_zero_ranges(fn, grid_values, dims_t if unit is None else None, labels)
    else:
        _checks.warn(
            f"{fn}: traversals of one step have no slope: the sensitivity is 0 for every latent (the effect and "
            "the outputs are computed); pass steps >= 2 (or values with S >= 2) to measure it", RuntimeWarning)
    # Owned like the anchors (a caller's contiguous [A, K, S] values or int64 dims came back as
    # the result's own, changed when the caller changed theirs).
    return GridSpec(anchors, dims_t.clone(), grid_values.detach().clone(memory_format=torch.contiguous_format), mode,
                    directions=unit, labels=labels or (), latent_shape=latent_shape)


def _warn_zero_ranges(fn: str, values: torch.Tensor, dims: torch.Tensor | None, labels) -> None:
    """The sensitivity divides each traversal's slope by its range |v[S-1] - v[0]| and averages
    over the A anchors: a traversal whose range is 0 (its values round to one number: a very
    certain posterior, an anchor far beyond span) counts as 0 in that mean, which silently
    understated the latent's sensitivity."""
    zero = values[..., -1] == values[..., 0]  # [A, K]
    if not bool(zero.any()):
        return
    counts = zero.sum(0)
    where = [(k, int(c)) for k, c in enumerate(counts.tolist()) if c]
    name = (lambda k: labels[k]) if labels else (lambda k: f"z{int(dims[k])}")
    listed = ", ".join(f"{name(k)} ({c} of {values.shape[0]})" for k, c in where[:5]) + (", ..." if len(where) > 5 else "")
    _checks.warn(
        f"{fn}: some traversals have a range of 0 (their values round to one number): {listed}; their "
        "sensitivity counts them as 0 in its mean over the anchors (mode='prior', or float64 anchors, give every "
        "traversal a range)", RuntimeWarning)


def refuse_repeated_directions(fn: str, unit: torch.Tensor, labels: tuple[str, ...]) -> None:
    """Each direction is one traversal, one label and one rank, as each latent is (repeated dims
    are refused too): two rows along the same unit vector (a repeat, or a multiple: [1, 0] and
    [2, 0]) traversed it twice under two names."""
    _, inverse, counts = torch.unique(unit, dim=0, return_inverse=True, return_counts=True)
    if not bool((counts > 1).any()):
        return
    first = int((counts[inverse] > 1).nonzero()[0, 0])
    same = (inverse == inverse[first]).nonzero().flatten().tolist()
    names = f" ({', '.join(repr(labels[i]) for i in same[:5])})" if labels else ""
    raise ValueError(
        f"{fn}: directions must be distinct, got rows {same[:5]}{names} along the same unit vector (one repeats or "
        "is a positive multiple of another); drop the repeats"
    )
