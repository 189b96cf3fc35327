"""interpolate(): decoded paths between codes (two inputs' means, two cluster centroids),
swept by the same engine as traverse: a grid of P paths x 1 x S steps whose rows the
interpolation writes, so batching, stores, resume, devices and progress come with it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import overload

import torch

from . import _checks
from ._extension import ops
from ._modules import tensor_digest
from .grid_spec import GridSpec, writer_name
from .latent_shape import checked_latent_shape, flat_codes
from .paths import (PATHS, _endpoints, check_path_grid_size, check_path_range, interpolation_codes, path_label,
                    path_weights, path_writer_bytes, warn_undefined_arcs, _angle_terms)
from .posterior import Posterior, unwrapped
from .result import TraversalResult
from .stores import StoreStatus, recorded_params, store_path

_FN = "latentsweep.interpolate"


# How a sweep computes its arcs' weights: revision 1 per chunk, over the paths the chunk touches
# (torch's atan2 rounds a tensor's last few elements by another routine, so a float64 row could
# differ in its last bit from interpolation_codes', and the weights took ~10 ms of a 0.31 s slerp
# of 6,400 paths); revision 2 once, over all paths: the rows are interpolation_codes' bit for bit.
# A slerp store's identity says its revision, and a resume writes as its store began (_arcs_revision).
ARCS_REVISION = 2


class PathWriter:
    """Writes rows ``[first, first + count)`` of the P x 1 x S path grid (row ``p * S + s`` is
    step s of path p) with the compiled ``_path_codes_into_trusted``. The float64 endpoints and
    the weights (:func:`latentsweep.paths.path_weights`) of a line, or of arcs at
    ``arcs_revision`` 2, are computed once per device over all paths: the rows of
    :func:`latentsweep.paths.path_codes` over all paths, bit for bit. At ``arcs_revision`` 1 (a
    slerp store begun before revision 2) a chunk of arcs computes its paths' angles and weights
    with torch over the paths it touches, as path_codes over that slice did (on the CPU from
    row-wise terms computed once)."""

    def __init__(self, start: torch.Tensor, end: torch.Tensor, steps: int, path: str,
                 arcs_revision: int = ARCS_REVISION):
        self.start, self.end, self.steps, self.path = start, end, steps, path
        self.arcs_once = path == "slerp" and arcs_revision >= 2
        # Per device the sweep uses: the float64 endpoints [P, D], a line's weights [P, 2, S] and
        # divisors [P] (broadcast), an arc's _angle_terms [P, 1, 1] x 3 (CPU).
        self._on_device: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    @cached_property
    def identity(self) -> str:
        """What the grid's digest (a store's identity) records beyond anchors = start and t (read
        when needed: interpolation_codes writes rows without a store, and end's digest copies it)."""
        return f"{self.path} path to {tensor_digest(self.end)}" + (", arcs over all paths" if self.arcs_once else "")

    def __call__(self, first: int, count: int, out: torch.Tensor) -> None:
        if out.device not in self._on_device:
            start, end = self.start.to(out.device).double(), self.end.to(out.device).double()
            if self.path == "linear":
                weights = path_weights(len(start), self.steps, device=out.device)
            elif self.arcs_once:
                weights = path_weights(len(start), self.steps, *_angle_terms(start[:, None, :], end[:, None, :]))
            else:
                weights = ()
            # Revision 1: an arc's angle terms (norms) are row-wise on the CPU (tested), once; CUDA's
            # reductions spread a row over more threads when fewer rows are reduced: a chunk's.
            once = self.path == "slerp" and not self.arcs_once and out.device.type == "cpu"
            terms = _angle_terms(start[:, None, :], end[:, None, :]) if once else ()
            self._on_device[out.device] = (start, end, weights, terms)
        start, end, weights, terms = self._on_device[out.device]
        if weights:  # every chunk reads the weights computed once
            return ops._path_codes_into_trusted(start, end, *weights, first, count, out)
        # The paths the rows touch, within the grid (a negative slice bound would pick paths
        # from the end: rows out of range are then the op's errors, not other paths' rows).
        low = min(max(first // self.steps, 0), len(start))
        high = min(max(-(-(first + count) // self.steps), low), len(start))
        start, end = start[low:high], end[low:high]
        terms = [term[low:high] for term in terms] if terms else _angle_terms(start[:, None, :], end[:, None, :])
        # theta per chunk: its bits depend on the slice it is computed over (see _angle_of)
        weights = path_weights(high - low, self.steps, *terms)
        ops._path_codes_into_trusted(start, end, *weights, first - low * self.steps, count, out)


@dataclass
class Interpolation:
    """Decoded paths from ``start`` to ``end`` (what :func:`interpolate` returns). P = paths,
    S = steps, D = latent size. Tensors are on the CPU.

    Attributes:
        start, end: ``[P, D]`` the endpoints (flat; ``.view(P, *latent_shape)`` for a
            structured latent), both in the dtype the two given promote to (also when
            :func:`latentsweep.open_sweep` reads them from a store).
        path: ``"linear"`` or ``"slerp"``.
        t: ``[S]`` float64 positions along each path, ``linspace(0, 1, S)``.
        change: ``[P, S]`` mean over output features of ``|x(t) - x(start)|``: how far the
            output has moved from the start's at each step (0 at ``t = 0``, up to the decoder's
            rounding: ``x(start)`` is decoded alone, the path's steps in batches).
        sweep: the engine's :class:`TraversalResult` of the P x 1 x S grid (its ``outputs``,
            ``effect``, ``sensitivity``, ``batch_size``, ``store``, speed).
    """

    start: torch.Tensor
    end: torch.Tensor
    path: str
    t: torch.Tensor
    change: torch.Tensor
    sweep: TraversalResult

    def __eq__(self, other) -> bool:
        """Same fields, tensors as ``torch.equal`` (the dataclass's own ``==`` compared them with
        ``==``: "Boolean value of Tensor ... is ambiguous"); the sweeps as TraversalResult does."""
        if not isinstance(other, Interpolation):
            return NotImplemented
        return _checks.same_fields(self, other)

    __hash__ = None  # the tensors are mutable

    @property
    def num_paths(self) -> int:
        return self.start.shape[0]

    @property
    def codes(self) -> torch.Tensor:
        """``[P, S, D]`` the codes decoded (:func:`latentsweep.interpolation_codes`), bit for bit
        on the CPU. (A slerp store begun by latentsweep before its arcs were computed over all
        paths at once computed them per chunk: its float64 codes may differ in the last bit.)"""
        return interpolation_codes(self.start, self.end, steps=len(self.t), path=self.path)

    @property
    def outputs(self):
        """``[P, S, *out_shape]`` decoder outputs: a tensor in memory, an array read from the
        store with ``out=`` (in the outputs' dtype; bfloat16, which numpy lacks, as float32),
        ``None`` with ``keep_outputs=False``."""
        outputs = self.sweep.outputs
        return None if outputs is None else outputs[:, 0]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one code as the decoder took it (``(D,)`` for flat codes)."""
        return self.sweep.latent_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.sweep.out_shape

    @property
    def output_space(self) -> str:
        return self.sweep.output_space

    def summary(self) -> str:
        """One line: paths, steps, where the output changed most, speed."""
        final = self.change[:, -1]
        return (
            f"{self.num_paths} {self.path} path{'' if self.num_paths == 1 else 's'} x {len(self.t)} steps, effects in {self.output_space}: "
            f"the output moved by {float(final.min()):.3g} to {float(final.max()):.3g} (mean |x(end) - x(start)|); "
            f"{self.sweep.speed_text()}"
        )

    @classmethod
    def of_sweep(cls, sweep: TraversalResult, start: torch.Tensor, end: torch.Tensor) -> Interpolation:
        """The interpolation whose P x 1 x S grid ``sweep`` is (the paths from ``start`` to ``end``,
        ``[P, D]``), as :func:`interpolate` returns it and :func:`latentsweep.open_sweep` reads it.
        ``end`` takes ``start``'s dtype, which :func:`interpolate` gave both: a store keeps bfloat16
        ends widened to float32 (exactly) and reads them back as float32."""
        return cls(start=start.cpu(), end=end.cpu().to(start.dtype), path=sweep.mode,
                   t=torch.linspace(0.0, 1.0, sweep.values.shape[2], dtype=torch.float64, device="cpu"),
                   change=sweep.effect[:, 0].clone(), sweep=sweep)  # (its own: not a view of the sweep's effect)

    def __repr__(self) -> str:
        return (f"Interpolation(paths={self.num_paths}, steps={len(self.t)}, path={self.path!r}, "
                f"out_shape={self.out_shape}, store={str(self.sweep.store) if self.sweep.store else None})")


# Type checkers (mypy, an editor's Pylance) read the result of a sweep without shard= as
# an Interpolation, not a union whose every attribute they flagged.
@overload
def interpolate(
    decoder,
    start,
    end,
    *,
    steps: int = 11,
    path: str = "linear",
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    device: torch.device | str | None = None,
    out: str | Path | None = None,
    keep_outputs: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    shard: None = None,
    distributed: bool = True,
    group: torch.distributed.ProcessGroup | None = None,
    output=None,
    output_transform=None,
    latent_shape=None,
) -> Interpolation: ...


@overload
def interpolate(
    decoder,
    start,
    end,
    *,
    steps: int = 11,
    path: str = "linear",
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    device: torch.device | str | None = None,
    out: str | Path | None = None,
    keep_outputs: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    shard: tuple[int, int],
    distributed: bool = True,
    group: torch.distributed.ProcessGroup | None = None,
    output=None,
    output_transform=None,
    latent_shape=None,
) -> Interpolation | StoreStatus: ...


def interpolate(
    decoder,
    start,
    end,
    *,
    steps: int = 11,
    path: str = "linear",
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    device: torch.device | str | None = None,
    out: str | Path | None = None,
    keep_outputs: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    shard: tuple[int, int] | None = None,
    distributed: bool = True,
    group: torch.distributed.ProcessGroup | None = None,
    output=None,
    output_transform=None,
    latent_shape=None,
) -> Interpolation | StoreStatus:
    """Decodes P paths of S codes from ``start`` to ``end``.

    The paths are :func:`latentsweep.interpolation_codes` (``"linear"``: straight lines;
    ``"slerp"``: great-circle arcs, White 2016, for Gaussian latents, where a straight line
    between two typical codes passes through the unlikely region near the origin). They are
    swept as a grid of P anchors (the starts) x 1 x S steps by the engine of
    :func:`latentsweep.traverse`: batches, a resumable store, devices and the progress bar work
    as there, and the first and last steps' codes are exactly ``start`` and ``end`` (their
    outputs are the decoder's there, up to its own rounding in a batch of other codes).

    Args:
        decoder: as for :func:`latentsweep.traverse` (a module, bound method or function
            ``[B, D] -> [B, ...]``; ``output=`` and ``output_transform=`` as there).
        start, end: ``[D]`` or ``[P, D]`` codes of the same shape (e.g. two inputs' means, or
            two cluster centroids ``clusters.centroids[[i]]``, ``clusters.centroids[[j]]``), or
            ``[P, *latent_shape]`` for a structured latent (the decoder then gets
            ``[B, *latent_shape]``; paths are computed on the flattened codes), or
            :class:`Posterior` rows (their means, in their latent shape: ``posterior[[0]]``).
        steps: S >= 2 codes per path, endpoints included.
        path: ``"linear"`` or ``"slerp"``.
        batch_size, memory_budget, device, out, keep_outputs, resume, overwrite, progress,
        shard, distributed, group, latent_shape: as for :func:`latentsweep.traverse` (``shard=(i, n)``
            computes shard i of n of the paths' units into the store ``out``; ``group=`` sweeps on
            that process group's ranks alone).

    Returns:
        an :class:`Interpolation`: ``outputs [P, S, *out_shape]``, ``codes [P, S, D]``,
        ``t [S]``, ``change [P, S]`` and the engine's result as ``sweep``. With ``shard=``, that
        when the store is complete after this shard, else a :class:`latentsweep.StoreStatus`
        saying which units are still missing (:func:`latentsweep.open_sweep` reads the
        Interpolation once they are done).

    Raises:
        TypeError, ValueError: bad arguments (named), or a decoder that returns a non-tensor,
            the wrong number of rows or NaN/Inf (as :func:`latentsweep.traverse` says).
    """
    built = {}

    def build_spec(start=start, end=end, steps=steps, path=path, latent_shape=latent_shape) -> GridSpec:
        """The path grid, checked (after the ranks join, so that a rank whose checks fail tells
        the others: see sweep_grid); its endpoints and positions kept for the result."""
        start, end = (_as_codes(point, flat=latent_shape is not None) for point in (start, end))
        structured = None
        if isinstance(start, torch.Tensor) and isinstance(end, torch.Tensor) and max(start.dim(), end.dim()) > 2:
            if start.shape != end.shape:
                raise ValueError(f"{_FN}: start and end must have the same shape, got {tuple(start.shape)} and {tuple(end.shape)}")
            (start, structured), (end, _) = flat_codes(_FN, "start", start, what="P"), flat_codes(_FN, "end", end, what="P")
        start, end = _endpoints(_FN, start, end)
        latent_shape = checked_latent_shape(_FN, latent_shape, start, structured or (start.shape[1],),
                                            name="endpoints", what="P")
        steps = _checks.integer(_FN, "steps", steps, low=2)
        path = _checks.choice(_FN, "path", path, PATHS)
        if path == "slerp":
            warn_undefined_arcs(_FN, start, end)
        num_paths, latent = start.shape
        check_path_grid_size(_FN, num_paths, steps, latent)
        dtype = torch.promote_types(start.dtype, end.dtype)
        peak = check_path_range(_FN, start, end, path, dtype)
        # The grid's values [P, 1, S] and the path writer's tensors (the sweep checks its outputs).
        _checks.fits_in_memory(_FN, f"the path grid [P={num_paths}, steps={steps}]",
                               num_paths * steps * dtype.itemsize + path_writer_bytes(num_paths, steps, latent, path),
                               start.device, "pass fewer steps or paths")
        # The sweep owns its endpoints (a decoder that writes into its input cannot change them).
        start, end = start.detach().to(dtype).clone(), end.detach().to(dtype).clone()
        writer = PathWriter(start, end, steps, path, _arcs_revision(out, overwrite, start, end, steps, path))
        t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64, device="cpu")
        spec = GridSpec(
            anchors=start,
            dims=torch.zeros(1, dtype=torch.int64, device=start.device),
            values=t.to(start.device, dtype).expand(num_paths, 1, steps).contiguous(),
            mode=path,
            code_writer=writer,
            labels=(path_label(path),),
            code_peak=peak,
            latent_shape=latent_shape,
            path_ends=end,
            point_note=f"{_FN}: in these grid points 'anchor p' is path p (start[p] to end[p]), 'step s' is "
                       f"point s of its {steps} (t = s / {steps - 1}), and 'latent dim 0' is the path itself.",
        )
        built.update(start=start, end=end)
        return spec

    from .sweep import sweep_grid

    result = sweep_grid(
        _FN, decoder, build_spec, batch_size=batch_size, memory_budget=memory_budget, device=device, out=out,
        keep_outputs=keep_outputs, resume=resume, overwrite=overwrite, progress=progress, shard=shard,
        distributed=distributed, group=group, output=output, output_transform=output_transform,
    )
    if isinstance(result, StoreStatus):  # a shard whose store is not complete yet
        return result
    return Interpolation.of_sweep(result, built["start"], built["end"])


def _arcs_revision(out, overwrite: bool, start: torch.Tensor, end: torch.Tensor, steps: int, path: str) -> int:
    """The arcs' revision (ARCS_REVISION) of a sweep into ``out``: 1 where a slerp store of these
    paths begun before revision 2 is there (its identity says so; a resume or another shard must
    write its rows as it began), else this version's. Read unchecked: opening the store checks it."""
    if path != "slerp" or out is None or overwrite:
        return ARCS_REVISION
    try:
        params = recorded_params(store_path(_FN, "out", out))
    except (TypeError, ValueError):  # (a bad out=: the sweep's checks say so)
        return ARCS_REVISION
    began_per_chunk = PathWriter(start, end, steps, path, arcs_revision=1)
    return 1 if params is not None and params.get("codes") == writer_name(began_per_chunk) else ARCS_REVISION


def _as_codes(point, *, flat: bool):
    """A Posterior's means in the decoder's shape ``[P, *latent_shape]`` (``flat``: as ``[P, D]``
    rows, when the call gives its own latent_shape, which replaces the Posterior's as in
    traverse: it was refused as "give one or the other"); anything else as it is (the endpoints'
    checks name it)."""
    if isinstance(point, Posterior):
        return unwrapped(point, None, None, flat=flat)[0]
    return point
