"""traverse(): decode the whole traversal grid in work units and measure what each latent does.

The steps, in order (each a named function below or a module of its own):
  grid_spec   which code each grid row decodes, validated once           (grid_spec.py)
  workers     this process's rank or shard, a process group if asked for (distributed.py)
  probe       the decoder at the anchors: output shape, dtype, x0    (decoder_probe.py)
  plan        batch size and work units, from the sweep's arguments only  (plan.py)
  sink        memory or a store on disk, behind one Protocol             (sinks.py, stores.py,
              opened for this sweep by store_session.py)
  units       the C++ executor decodes this process's units              (cpp/engine)
  merge       unit statistics added in unit order                        (merge.py)
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import overload

import torch

from . import _batching, _checks, _progress, decoding, stores
from . import distributed as _distributed
from ._extension import _C
from ._modules import eval_mode, model_device
from .decoder_probe import Probe, graphed, probe_anchors, probe_growth, retry_halved
from .grid_spec import GridSpec, grid_spec
from .host_copies import HostCopies
from .interpolation import Interpolation
from .latent_shape import coordinate_labels
from .merge import OrderedMerge, UnitStatistics, unit_latents
from .paths import PATHS, path_label
from .plan import SweepPlan, make_plan, plan_from_dict, shard_units, units_for
from .posterior import Posterior
from .result import TraversalResult
from .sinks import Geometry, MemorySink
from .store_session import leader_store, named_errors, probe_revision_to_use, static_arrays, sweep_params
from .stores import (StoreDamaged, StoreStatus, check_store_name, describe_units, existing_store, paths_of,
                     store_path, sweep_id, visible_by, writer_of)

_FN = "latentsweep.traverse"


# Type checkers (mypy, an editor's Pylance) read the result of a sweep without shard= as
# a TraversalResult, not a union whose every attribute they flagged.
@overload
def traverse(
    decoder,
    anchors,
    *,
    mode: str = "prior",
    span: float = 2.0,
    steps: int = 11,
    dims=None,
    directions=None,
    latent_shape=None,
    logvar: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
    reference: torch.Tensor | Posterior | None = None,
    prior_std: float = 1.0,
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    device: torch.device | str | None = None,
    out: str | Path | None = None,
    keep_outputs: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    cuda_graph: bool = False,
    shard: None = None,
    distributed: bool = True,
    group: torch.distributed.ProcessGroup | None = None,
    output=None,
    output_transform=None,
) -> TraversalResult: ...


@overload
def traverse(
    decoder,
    anchors,
    *,
    mode: str = "prior",
    span: float = 2.0,
    steps: int = 11,
    dims=None,
    directions=None,
    latent_shape=None,
    logvar: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
    reference: torch.Tensor | Posterior | None = None,
    prior_std: float = 1.0,
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    device: torch.device | str | None = None,
    out: str | Path | None = None,
    keep_outputs: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    cuda_graph: bool = False,
    shard: tuple[int, int],
    distributed: bool = True,
    group: torch.distributed.ProcessGroup | None = None,
    output=None,
    output_transform=None,
) -> TraversalResult | StoreStatus: ...


def traverse(
    decoder,
    anchors,
    *,
    mode: str = "prior",
    span: float = 2.0,
    steps: int = 11,
    dims=None,
    directions=None,
    latent_shape=None,
    logvar: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
    reference: torch.Tensor | Posterior | None = None,
    prior_std: float = 1.0,
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    device: torch.device | str | None = None,
    out: str | Path | None = None,
    keep_outputs: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    cuda_graph: bool = False,
    shard: tuple[int, int] | None = None,
    distributed: bool = True,
    group: torch.distributed.ProcessGroup | None = None,
    output=None,
    output_transform=None,
) -> TraversalResult | StoreStatus:
    """Traverses each latent dimension (or each direction) from each anchor, decodes every grid
    point, and measures how much, and where, the output changes.

    The grid is anchors x traversals x steps (row ``a*K*S + k*S + s``): the K traversals are the
    latents ``dims`` (row = ``anchors[a]`` with latent ``dims[k]`` set to ``values[a, k, s]``), or
    the K unit ``directions`` (row = ``anchors[a] + (values[a, k, s] - <anchors[a], u_k>) * u_k``,
    the anchor with its coordinate along ``u_k`` replaced; see :func:`direction_codes`). It is
    planned as work units of whole traversals, each decoded in batches of ``batch_size`` codes by
    a C++ executor (codes written in place, decoder under ``torch.no_grad``, exact statistics), so
    memory stays bounded however large the sweep. Statistics are merged from the units in unit
    order, so results are bitwise identical whatever the number of processes and the pattern of
    interruptions.

    Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set, or an initialised process group) the same
    call in every process splits the units among the ranks; every rank returns the merged
    result. With more than one process and ``keep_outputs=True``, ``out=`` is required.

    Args:
        decoder: any callable from a ``[B, D]`` tensor to a ``[B, ...]`` tensor, e.g.
            ``vae.decoder`` or ``vae.decode``: an ``nn.Module``, the module of a bound method, or
            the modules a function or lambda uses, run in eval mode (restored afterwards), and
            codes are cast to their parameters' dtype.
            Outputs wrapped in a tuple, dict or output object are unwrapped by the rule in
            :data:`latentsweep.decoding.OUTPUT_RULE` (or as ``output=`` says). It never receives
            the caller's tensors (it may modify its input in place); its input is a reused
            buffer that the next call's codes overwrite (clone it to keep it).
        anchors: ``[A, D]`` codes (``[D]`` for one), or a :class:`Posterior` (its means are the
            anchors, its ``logvar`` feeds mode ``"posterior"``, its ``latent_shape`` is the
            decoder's). Structured latents:
            ``[A, *latent_shape]`` (e.g. ``[A, 4, 8, 8]``); the decoder is then called with
            ``[B, *latent_shape]`` codes, and ``dims`` are flat indices into the latent
            (row-major, as ``torch.flatten``: ``numpy.ravel_multi_index((c, h, w), latent_shape)``).
        dims: the latents to traverse (default: all D); not together with ``directions``.
        latent_shape: the shape of one code as the decoder takes it, for flat anchors ``[A, D]``
            of a structured latent: ``(4, 8, 8)`` with ``D = 256``. Anchors ``[A, *latent_shape]``
            and a :class:`Posterior` say it themselves (a Posterior's is replaced by one given).
        directions: ``[K, D]`` vectors (``[K, *latent_shape]`` for structured anchors) or a
            :class:`Directions` (e.g. :func:`principal_directions`, :func:`channel_directions`),
            traversed instead of coordinates. Each is scaled to unit length (a zero or
            non-finite one is a ``ValueError``, and so are two along the same unit vector, as
            repeated ``dims`` are); to traverse some of them, index them
            (``pcs[:3]``). Every mode keeps its meaning along a unit direction (see
            :func:`traversal_values`); the result's ``dims`` and ``ranking`` are then indices
            ``0..K-1`` into the directions, and its ``labels`` their names.
        mode, span, steps, logvar, reference, prior_std: which values each latent (or
            direction) takes, as in :func:`latentsweep.traversal_values` (default: anchor ± 2
            prior SDs); the modes are the entries of :data:`latentsweep.modes.MODE_TABLE`.
        values: explicit values ``[S]``, ``[K, S]`` or ``[A, K, S]``; overrides ``mode``
            (coordinates along the directions for a direction sweep). Each traversal's values
            are non-decreasing or non-increasing (the sensitivity divides by their span).
        batch_size: codes per decoder call, or ``"auto"``: on CUDA as many as ``memory_budget``
            allows (the decoder's memory measured at the anchors); on the CPU the fastest of a few
            sizes within ``memory_budget`` (the decoder's memory a code measured there too),
            timed on the first rows (at most 8192; a short sweep uses the size whose call takes
            ~2 ms).
            The trials decode whole work units: a sweep in memory keeps them (at most 8% of its
            time; timing decides which sizes are tried, so pass a size for statistics that are
            bit-reproducible from run to run), a store throws them away (at most 2%); under
            torchrun they get less, as the other ranks wait. A store records the batch size,
            and every rank, shard and resume of the sweep uses it. On the CPU a size whose
            decoder memory (as measured) exceeds the machine's is refused before the sweep.
        memory_budget: bytes for the sweep's buffers and the decoder's own memory in a batch
            (measured at the anchors), which ``batch_size="auto"`` keeps within (default: half
            the free GPU memory, or 1 GiB and at most an eighth of the RAM on the CPU).
        device: where codes are built and decoded (default: the decoder's device, else the
            anchors'); ``"cuda"`` under torchrun means each rank's ``LOCAL_RANK`` GPU
            (under srun, ``SLURM_LOCALID``'s among the GPUs the task sees, modulo their number; a
            group of ranks that set neither is refused). On CUDA
            the probe of the decoder's memory resets the device's peak memory statistics
            (``torch.cuda.max_memory_allocated``): read yours before the sweep.
        out: ``None`` to keep results in memory, or a path: ``"sweep.zarr"`` (a zarr store) or
            ``"sweep.npy"`` (outputs in a memory-mappable .npy, the rest beside it). A store
            makes the sweep resumable and shareable by ranks and shards.
        keep_outputs: False to keep only the statistics (memory does not grow with the grid).
        resume: continue the sweep stored at ``out`` (same arguments) with whatever units are
            missing or damaged, at any number of processes (under ``torchrun --max-restarts``
            it also starts the store the first attempt finds missing).
        overwrite: replace an existing store at ``out`` (refused while another process writes
            to it, or if its folder holds files latentsweep did not write).
        progress: a tqdm bar (points/s, ETA) on rank 0; None shows it on a terminal or in a Jupyter notebook.
        cuda_graph: capture the decoder in a CUDA graph (CUDA only; for small decoders whose
            launch overhead dominates; the decoder must be graph-safe).
        shard: ``(i, n)``: compute only shard i of n into the store ``out`` (no process group:
            Slurm job arrays, Kubernetes indexed jobs). Shards join the store of the same sweep.
        distributed: False to sweep the whole grid in this process alone even when it belongs
            to a process group (e.g. on rank 0 of a training job while the other ranks train).
        group: a ``torch.distributed.ProcessGroup`` of the initialised default group
            (``torch.distributed.new_group([0, 1])``) whose ranks alone make the call and split
            the sweep (the other ranks do something else meanwhile); None: the default group. Rank
            and world are then the group's (rank 0 of the group plans and leads; messages name
            ranks by their rank in the whole job, as torchrun's logs do). Not with ``shard=`` or
            ``distributed=False``.
        output: which part of the decoder's output holds the decoded outputs: a key or
            attribute (``"sample"``), a tuple index, or a callable on the raw output (see
            :func:`latentsweep.decoding.decoder_call`).
        output_transform: ``"sigmoid"`` (for a decoder that returns logits), ``"tanh"``,
            ``"exp"``, or any callable applied to the outputs before the statistics; the
            result's ``output_space`` says which space the effects are measured in.

    Returns:
        a :class:`TraversalResult` (outputs, effect, dim_effect, ranking, sensitivity, labels,
        directions, speed).
        With ``shard=``, the result when the store is complete after this shard, else a
        :class:`latentsweep.StoreStatus` saying which units are still missing.

    Precision: statistics are computed in the outputs' precision (float64 outputs: float64
    throughout; float32 and narrower: correctly rounded float32 differences, float64 totals).

    Raises:
        TypeError, ValueError: bad arguments (also a grid too large for this machine's memory,
            or the sensitivity ``[K, F]`` of its traversals, in or out of a store), or a decoder
            that returns a non-tensor, the wrong number of rows, a changing shape or
            dtype, or NaN/Inf (naming the grid points); statistics that overflow their precision;
            a store of another sweep, a damaged one (saying where), or one another process is
            writing.
        RuntimeError: the decoder ran out of memory even at a batch of one code (the batch is
            halved, with a warning, until it fits).
        KeyboardInterrupt: Ctrl-C; a store keeps every finished unit (resume=True).
    """
    started = time.perf_counter()
    spec = functools.partial(grid_spec, _FN, anchors, mode=mode, span=span, steps=steps, dims=dims,
                             directions=directions, latent_shape=latent_shape, logvar=logvar, values=values,
                             reference=reference, prior_std=prior_std)
    return sweep_grid(_FN, decoder, spec, batch_size=batch_size, memory_budget=memory_budget, device=device, out=out,
                      keep_outputs=keep_outputs, resume=resume, overwrite=overwrite, progress=progress,
                      cuda_graph=cuda_graph, shard=shard, distributed=distributed, group=group, output=output,
                      output_transform=output_transform, started=started)


def sweep_grid(
    fn: str,
    decoder,
    build_spec: Callable[[], GridSpec],
    *,
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    device: torch.device | str | None = None,
    out: str | Path | None = None,
    keep_outputs: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    cuda_graph: bool = False,
    shard: tuple[int, int] | None = None,
    distributed: bool = True,
    group: torch.distributed.ProcessGroup | None = None,
    output=None,
    output_transform=None,
    started: float | None = None,
) -> TraversalResult | StoreStatus:
    """Decodes the grid that ``build_spec()`` builds and checks (:func:`traverse`'s, or
    :func:`latentsweep.interpolate`'s with its own code writer) with the options of
    :func:`traverse`; ``fn`` names the public function in every message (checks, decoder, store,
    advice such as ``interpolate(..., resume=True)``).

    The grid and the options are checked after joining the other ranks, and a rank whose checks
    fail tells them (``workers.agree``): checked before, a rank that failed alone left the others
    waiting in the rendezvous (30 minutes) or pairing their collectives with its next call (a
    memory check passes on one node and fails on another)."""
    started = time.perf_counter() if started is None else started
    show_progress = _progress.wanted(progress, fn)
    requested = _checks.device(fn, device)
    workers = _distributed.join(fn, shard, requested,
                               distributed=_checks.boolean(fn, "distributed", distributed), group=group)
    sink = bar = None
    try:
        try:
            spec = build_spec()
            batch_size, memory_budget, out = _check_arguments(
                fn, decoder, batch_size, memory_budget, out, keep_outputs=keep_outputs, resume=resume,
                overwrite=overwrite, cuda_graph=cuda_graph, shard=shard)
            decode_fn = decoding.decoder_call(fn, decoder, output=output, output_transform=output_transform,
                                              latent_shape=spec.latent_shape)
            decode_fn.trust_codes_within(spec.code_bound())  # (no range scan per batch where none can fail)
            decode_fn.range_advice = lambda: _range_advice(spec, decode_fn.input_dtype)
        except Exception as error:  # noqa: BLE001 - the other ranks learn it, then it is raised
            workers.agree(error)
            raise
        with eval_mode(decoder):
            try:  # until the ranks agree that each got this far with the same call
                if workers.world > 1 and workers.shard is None and keep_outputs and out is None:
                    raise ValueError(
                        f"{fn}: with {workers.world} processes and keep_outputs=True, pass out='sweep.zarr' (one "
                        "store all ranks write into), or keep_outputs=False (statistics only)"
                    )
                device = _distributed.local_device(_resolve_device(fn, requested, decoder, spec.anchors), workers)
                if cuda_graph and device.type != "cuda":
                    raise ValueError(f"{fn}: cuda_graph=True needs a CUDA device, got {device}")
                spec_d = spec.to(device)
                # Shown from the start: the batch trials a memory sweep keeps count as done rows.
                bar = _progress.bar(show_progress and workers.leader,
                                    total=spec.num_rows if workers.world == 1 else None, unit="pt",
                                    desc=_checks.call_name(fn) if workers.world == 1
                                    else f"{_checks.call_name(fn)} (rank {workers.rank}/{workers.world})")
                probe_revision = probe_revision_to_use(out, overwrite=overwrite)
                probe = probe_anchors(fn, decode_fn, spec_d, growth=probe_growth(device, probe_revision),
                                      nonfinite_subject=decode_fn.nonfinite_subject)
                # The result's inputs go to the host while the grid is decoded.
                host = HostCopies({"dims": spec.dims, "directions": spec.directions, "values": spec.values,
                                   "anchors": spec.anchors, "anchor_outputs": probe.outputs})
                geometry = Geometry(*spec.grid_shape, probe.out_shape, probe.outputs.dtype)
                # (here, where a rank whose memory is smaller tells the others)
                _check_statistics_fit(fn, geometry, statistics_on_cpu=device.type == "cpu")
                if out is None:
                    _check_fits_in_memory(fn, geometry, keep_outputs)
                params = None if out is None else sweep_params(decode_fn, spec, probe, keep_outputs,
                                                               probe_revision=probe_revision)
                identity = None if not workers.grouped else _call_identity(
                    spec, probe, decode_fn, params, out, keep_outputs=keep_outputs, batch_size=batch_size,
                    memory_budget=memory_budget)
            except Exception as error:  # noqa: BLE001 - the other ranks learn it, then it is raised
                workers.agree(error)
                raise
            # The decoder's outputs at the anchors, already computed, must agree too (by their
            # fingerprint), or the ranks would merge the units of different decoders: without a
            # store the weights are not hashed (a model initialised, not loaded, in every
            # process), and with one, what is not recorded (an output_transform, a closure's
            # value) was merged silently.
            workers.agree(identity=identity, near=None if not workers.grouped else {
                "the decoder's outputs at the anchors": _distributed.fingerprint(probe.outputs)})

            def choose_batch(keep) -> tuple:  # only when no store has chosen already
                return _choose_batch_size(fn, decode_fn, batch_size, memory_budget, device, spec_d, probe, keep,
                                          processes=workers.world if workers.grouped else 1, progress=bar.update,
                                          ranks_here=_distributed.ranks_on_this_machine(workers))

            opening = time.perf_counter()
            opened = _open_sink(fn, out, spec, probe, geometry, params, choose_batch,
                                explicit=None if batch_size == "auto" else batch_size,
                                keep_outputs=keep_outputs, resume=resume, overwrite=overwrite, workers=workers,
                                padded=cuda_graph)
            sink, plan, pending = opened
            try:  # what can fail on one rank alone (memory, a CUDA graph's capture): the others learn it
                mine = _my_units(plan, pending, workers)
                trial_rows = plan.trial_rows if workers.leader else 0  # decoded here while choosing the size
                stats = _C.SweepStatistics(probe.outputs.reshape(spec.num_anchors, -1), spec_d.values)
                if cuda_graph and not plan.padded:
                    raise ValueError(f"{fn}: cuda_graph=True needs batches of one size, and the sweep at {out} was "
                                     "planned with short batches (started without cuda_graph); resume it without "
                                     "cuda_graph")
                if cuda_graph:
                    # The host copies' thread synchronises with the device: beside a capture it
                    # invalidated it ("operation failed due to a previous error during capture", seen
                    # under load on an H200). They are done before it (a few small tensors).
                    host.result()
                decode = graphed(fn, decode_fn, plan.batch_size, spec_d.anchors) if cuda_graph else decode_fn
            except Exception as error:  # noqa: BLE001 - the other ranks learn it, then it is raised
                workers.agree(error)
                raise
            workers.agree()
            sweep_started = opening if trial_rows else time.perf_counter()
            rows = trial_rows + sum(plan.unit_rows_of(u)[1] - plan.unit_rows_of(u)[0] for u in mine)
            _progress.recount(bar, total=rows, done=trial_rows)
            error = None
            try:
                with _distributed.beating(workers):  # (the ranks done first wait for it: _settle)
                    computed, used_batch = _decode_units(fn, decode, spec_d, stats, sink, plan, mine, keep_outputs,
                                                         bar, nonfinite_subject=decode_fn.nonfinite_subject,
                                                         others_failed=workers.stop_if_another_rank_failed,
                                                         graphed=cuda_graph)
                computed += trial_rows
            except BaseException as caught:  # noqa: BLE001 - reported to the other ranks, then re-raised
                error, computed, used_batch = caught, 0, plan.batch_size
            finally:
                bar.close()
            sweep_seconds = time.perf_counter() - sweep_started
            _settle(fn, workers, error, sink)
        merged, status = _merge(sink, plan, workers)
        if merged is None:  # a shard whose store is not complete yet
            return status
        dim_effect, sensitivity = merged.result(fn, num_anchors=spec.num_anchors, num_steps=spec.num_steps,
                                                dtype=geometry.statistics_dtype)
        if workers.grouped:  # (every rank returns the same result: a rank's halved batch is the smallest)
            reports = workers.all_gather((computed, used_batch))
            points, used_batch = sum(r[0] for r in reports), min(r[1] for r in reports)
        else:
            points = computed
        return _result(spec, host.result(), sink, geometry, dim_effect, sensitivity, used_batch,
                       wall_time=time.perf_counter() - started,
                       points_per_second=points / sweep_seconds if sweep_seconds > 0 else float("inf"),
                       points=points, output_space=decode_fn.output_space)
    finally:
        if bar is not None:
            bar.close()
        if sink is not None:
            sink.close()
        workers.close()


def _range_advice(spec: GridSpec, dtype: torch.dtype) -> str:
    """How to bring a grid's codes within the range of the decoder's narrower ``dtype``, in the
    arguments of the call that made the grid: an interpolation's endpoints (it has no span=), or
    anchors that are themselves beyond it (a smaller span= left them so), else the traversed range."""
    wider = "or run the decoder in a wider dtype"
    if spec.path_ends is not None:
        return f"pass start and end within that range, {wider}"
    if spec.anchors.numel() and float(spec.anchors.abs().max()) > torch.finfo(dtype).max:
        return f"the anchors themselves reach beyond it: pass anchors within that range, {wider}"
    return f"traverse a smaller range (span=, prior_std=, or smaller values=), {wider}"


def _check_arguments(fn: str, decoder, batch_size, memory_budget, out, *, shard, **flags) -> tuple:
    """The sweep's options, checked once (the grid's arguments are checked by grid_spec)."""
    if not callable(decoder):
        raise TypeError(f"{fn}: decoder must be callable ([B, D] -> [B, ...]), got {type(decoder).__name__}")
    if isinstance(decoder, type):  # (called with the codes, it would construct one from them)
        raise TypeError(f"{fn}: decoder must be callable ([B, D] -> [B, ...]), got the class {decoder.__qualname__} "
                        "itself; pass an instance of it")
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise TypeError(f"{fn}: {name} must be True or False, got {flag!r}")
    if flags["resume"] and flags["overwrite"]:
        raise ValueError(f"{fn}: resume=True and overwrite=True contradict each other")
    out = None if out is None else store_path(fn, "out", out)
    if out is not None:
        check_store_name(fn, out)
    if out is not None and any(p.is_symlink() for p in (Path(out), paths_of(Path(out))[0])):
        # A store is created, locked and replaced by renaming its own folder: through a link,
        # overwrite=True would empty the target and then fail.
        raise ValueError(f"{fn}: out={str(out)!r} is a symbolic link; pass the path it points to "
                         f"({os.path.realpath(out)!r})")
    if flags["overwrite"] and shard is not None:
        raise ValueError(f"{fn}: overwrite=True with shard= would let each shard delete the others' work; "
                         "remove the old store once before starting the shards")
    if out is None and (flags["resume"] or shard is not None):
        raise ValueError(f"{fn}: {'resume=True' if flags['resume'] else 'shard='} needs out= (the path of the stored sweep)")
    if isinstance(batch_size, str) and batch_size != "auto":  # ("AUTO" was told "must be an int")
        raise ValueError(f"{fn}: batch_size must be an int >= 1 or 'auto', got {batch_size!r}")
    if not (isinstance(batch_size, str) and batch_size == "auto"):  # (an array's == is elementwise)
        batch_size = _checks.integer(fn, "batch_size", batch_size, low=1)
    if memory_budget is not None:
        memory_budget = _checks.integer(fn, "memory_budget", memory_budget, low=1)
    return batch_size, memory_budget, out


def _my_units(plan: SweepPlan, pending: list[int], workers) -> list[int]:
    """The pending units this process decodes: its shard's, or its share among the ranks."""
    if workers.shard is not None:
        pending_set = set(pending)
        return [u for u in shard_units(plan, *workers.shard) if u in pending_set]
    return units_for(plan, pending, workers.rank, workers.world)


def _resolve_device(fn: str, requested, decoder, anchors: torch.Tensor) -> torch.device:
    return _checks.usable_device(fn, requested or model_device(decoder) or anchors.device)


# ---- plan -----------------------------------------------------------------------------------
def _choose_batch_size(fn: str, decoder, batch_size, memory_budget, device, spec: GridSpec, probe: Probe,
                       keep=None, *, processes: int = 1, progress=None,
                       ranks_here: int = 1) -> tuple[int, tuple[tuple[int, int, int], ...]]:
    """The batch size a new sweep is planned with, and the trial units kept: explicit, or chosen
    (on rank 0 only, while the other ``processes - 1`` ranks wait; the plan carries it to them,
    the store to shards and resumes).

    This is the one place the automatic choice is made: on the CPU by measured throughput
    (``_batching``), the trials decoding whole units of each size tried. With ``keep`` (a
    :class:`MemorySink`) their rows and statistics go into it and they are returned as
    ``(start, stop, batch_size)`` trial units for the plan (and ``progress(rows)`` hears of their
    rows); otherwise they are scratch. An explicit CPU batch must fit the memory's share of each of
    the ``ranks_here`` ranks on this machine."""
    if batch_size != "auto":
        used = min(batch_size, spec.num_rows)
        if device.type == "cpu":  # (CUDA's out-of-memory error is caught: the batch is halved)
            whole = f"{used:,} codes a call: the whole grid; " if used < batch_size else ""
            each = f", on each of the {ranks_here} ranks on this machine" if ranks_here > 1 else ""
            _checks.fits_in_memory(
                fn, f"batch_size={batch_size} ({whole}the decoder took {probe.activation_bytes / 2**20:,.1f} MiB a "
                f"code at the anchors, outputs included{each})", int(used * probe.activation_bytes), device,
                "pass a smaller batch_size, or 'auto' (it keeps within memory_budget)", share=1.0 / ranks_here)
        return used, ()
    choice = _batching.auto_batch_size(
        device=device,
        budget=memory_budget or _batching.default_memory_budget(device),
        latent_dim=spec.latent_dim,
        features=math.prod(probe.out_shape),
        output_bytes=probe.outputs.element_size(),
        activation_bytes=probe.activation_bytes,
        total_rows=spec.num_rows,
    )
    if device.type != "cpu":
        return choice, ()
    trial = _TrialRunner(fn, decoder, spec, probe, keep, progress)
    with _C.reuse_cpu_buffers():
        choice = _batching.choose_cpu_batch_size(
            trial.run, start=0, end=spec.num_rows, cap=choice, unit_rows=trial.unit_rows if keep is not None else None,
            time_share=_batching.trial_time_share(kept=keep is not None, processes=processes),
            estimate=probe.seconds_per_row,
        ).batch_size
    return choice, tuple(trial.kept)


class _TrialRunner:
    """run(size, first_row, end_row) for timing batch sizes: decodes those rows with the real
    executor. With a ``sink``, unit by unit as a plan at that size would (so they time what the
    sweep will do), handing each finished run's units to the sink and their rows to ``progress``
    (a run that fails leaves nothing recorded: the sweep decodes its rows again, and its bar is
    recounted after the plan). Without, as scratch, in batches from
    ``first_row`` (any row: its statistics are thrown away)."""

    def __init__(self, fn: str, decoder, spec: GridSpec, probe: Probe, sink, progress=None):
        self.fn, self.decoder, self.spec, self.sink, self.progress = fn, decoder, spec, sink, progress
        self.stats = _C.SweepStatistics(probe.outputs.reshape(spec.num_anchors, -1), spec.values)
        self.template = self.stats.state()
        self.out_shape, self.out_dtype = list(probe.out_shape), probe.outputs.dtype
        self.executors = {}  # one per size tried
        self.kept: list[tuple[int, int, int]] = []  # the trial units given to the sink

    def unit_rows(self, size: int) -> int:
        return make_plan(self.spec.num_rows, self.spec.num_steps, size, padded=False).unit_rows

    def run(self, size: int, first_row: int, end_row: int) -> None:
        spec = self.spec
        if size not in self.executors:
            self.executors[size] = _C.SweepExecutor(self.fn, self.decoder, spec.anchors, spec.dims, spec.values, size,
                                                    self.out_shape, spec.code_writer, False, self.out_dtype,
                                                    self.decoder.nonfinite_subject)
        executor = self.executors[size]
        if self.sink is None:
            # (from the first row's traversal: the sums hold the latents of the rows run, not K)
            unit_start = first_row - first_row % spec.num_steps
            self.stats.load_state({**self.template, "next_row": torch.tensor(first_row, device="cpu"),
                                   "unit_start": torch.tensor(unit_start, device="cpu")})
            executor.run(self.stats, first_row, end_row, None, False, None)
            return
        unit_rows, finished = self.unit_rows(size), []
        rows = [(start, min(start + unit_rows, end_row)) for start in range(first_row, end_row, unit_rows)]
        _decode_run(executor, self.stats, self.sink, rows, self.sink.keep_outputs, self.progress,
                    lambda i, statistics: finished.append((*rows[i], statistics)))
        for start, stop, statistics in finished:
            self.sink.finish_unit(len(self.kept), start, stop, statistics)
            self.kept.append((start, stop, size))


def _decode_run(executor, stats, sink, rows: list[tuple[int, int]], keep_outputs: bool, progress, on_unit) -> None:
    """Units ``rows`` (``(start, stop)`` each, in order) through the executor into ``sink`` as one
    run (on CUDA one pipeline: nothing waits at a unit's end); ``on_unit(i, UnitStatistics)``
    as unit ``rows[i]`` is done (its statistics: the rows of the latents it touches)."""
    g = sink.geometry
    executor.run_units(stats, rows, sink.write_rows, keep_outputs, progress, lambda i, sums: on_unit(
        i, UnitStatistics.from_state(sums, unit_latents(*rows[i], g.num_steps, g.num_dims))))


# ---- sink -----------------------------------------------------------------------------------
def _open_sink(fn: str, out, spec, probe, geometry, params, choose_batch, *, explicit, keep_outputs, resume,
               overwrite, workers, padded):
    """(sink, plan, pending units). Memory, or a store (``params``: its identity, see
    sweep_params) opened by the leader first (created, resumed or replaced), then joined by the
    other ranks. The batch size is chosen only for a new sweep, by the leader; a store's
    recorded plan wins."""
    def new_plan(keep=None) -> SweepPlan:
        # Short batches are padded only for a CUDA graph (one shape for every call). Padded on
        # any GPU, the deconv sweep's last unit (5796 rows at batch 52312) decoded 22% more rows
        # than the grid has (H100, 2026-11-26).
        batch_size, trial_units = choose_batch(keep)
        return make_plan(spec.num_rows, spec.num_steps, batch_size, padded=padded, trial_units=trial_units)

    if out is None:  # (its memory was checked before the ranks agreed)
        # The leader's batch trials decode into the sink (their units are kept, see plan.py).
        sink = MemorySink(geometry, keep_outputs, None, keep_units=workers.grouped)
        plan = plan_from_dict(_distributed.leader_decides(workers, lambda: new_plan(sink).as_dict(),
                                                          "planned the sweep for the others"))
        sink.plan = plan
        return sink, plan, list(range(len(plan.trial_units), plan.num_units))
    path = Path(out)
    want = dict(params=params, static=static_arrays(spec, probe), geometry=geometry, latent_dim=spec.latent_dim,
                keep_outputs=keep_outputs)
    opened = {}

    def open_as_leader():
        opened["store"] = store = leader_store(fn, path, want, new_plan, explicit=explicit, resume=resume,
                                               overwrite=overwrite, join=workers.shard is not None)
        status = store.status(keep_for_merge=True)  # (the merge at the end reads only the units done since)
        # The units this call computes: a shard's own, or all missing ones among the ranks.
        ours = status.missing if workers.shard is None else sorted(
            set(shard_units(store.plan, *workers.shard)) & set(status.missing))
        if ours:  # (a resume with nothing to compute writes nothing: it works on read-only media)
            with named_errors(fn):
                store.check_writable()
        if status.damaged:
            detail = "; ".join(f"unit {u}: {why}" for u, why in sorted(status.damaged.items())[:3])
            mine = sorted(set(ours) & set(status.damaged))
            if workers.shard is None or len(mine) == len(status.damaged):
                doing = "computing them again"
            elif not mine:  # another shard's units are not this one's to compute
                doing = "they are other shards' units, left to those shards to compute again"
            else:
                doing = (f"this shard computes its own ({describe_units(mine)}) again, the others are left to "
                         "their shards")
            _checks.warn(f"{fn}: {len(status.damaged)} work unit(s) of {path} are damaged ({detail}); {doing}",
                         RuntimeWarning)
        return store.plan.as_dict(), status.missing

    try:
        plan_fields, pending = _distributed.leader_decides(workers, open_as_leader,
                                                           "opened the sweep's store for the others")
        plan = plan_from_dict(plan_fields)
        store, joined = opened.get("store"), None
        if store is None:  # the other ranks join the store the leader opened
            try:
                # A path that reaches another place on this rank (a disk of each machine's own, or a
                # relative path from another working folder) was said to hold "not a sweep store".
                elsewhere = ("every rank must write into the same store: pass an out= on a filesystem that all "
                             "ranks share (not a disk of each machine's own), and an absolute one if their working "
                             "folders differ")
                with named_errors(fn):
                    store = _store_rank_0_made(path)
                if store is None:
                    raise ValueError(f"{fn}: rank {workers.global_rank(workers.rank)} finds nothing at {path}, where "
                                     f"rank {workers.global_rank(0)} opened the sweep's store; {elsewhere}")
                opened["store"] = store
                if store.sweep_id != sweep_id(params) or store.plan != plan:
                    raise RuntimeError(f"{fn}: the store at {path} changed while the ranks were opening it, or rank "
                                       f"{workers.global_rank(workers.rank)} reaches another store there; {elsewhere}")
            except Exception as error:  # noqa: BLE001 - the other ranks learn it, then it is raised
                joined = error
        workers.agree(joined)  # no rank decodes for a store another could not join
    except BaseException:
        if "store" in opened:  # a lease it took must not outlive this call in a live process
            opened["store"].close()
        raise
    store.caller = fn
    return store, plan, pending


def _call_identity(spec, probe, decoder, params, out, *, keep_outputs, batch_size, memory_budget) -> dict:
    """What must be the same in every rank's call: a store's parameters (its identity, the
    decoder's weights included), else the grid and the outputs' shape and type (a sweep in
    memory does not hash the weights); and ``out``, ``batch_size`` and ``memory_budget`` as given
    (rank 0 plans the sweep: a rank asked for another batch size decoded at rank 0's)."""
    identity = dict(params) if params is not None else {
        **spec.digest(), "out_shape": list(probe.out_shape), "output_dtype": str(probe.outputs.dtype),
        "output_space": decoder.output_space, "keep_outputs": keep_outputs,
    }
    identity["out"] = None if out is None else os.fspath(out)
    identity["batch_size"], identity["memory_budget"] = batch_size, memory_budget
    return identity


def _store_rank_0_made(path: Path):
    """The store at ``path`` that rank 0 opened, once this rank sees it (None if it never does:
    another machine is given stores.WRITTEN_ELSEWHERE_VISIBLE_SECONDS to show it)."""
    seen = visible_by(path, time.monotonic() + stores.WRITTEN_ELSEWHERE_VISIBLE_SECONDS)
    return existing_store(path, writable=True) if seen else None


def _check_statistics_fit(fn: str, geometry: Geometry, *, statistics_on_cpu: bool) -> None:
    """Every sweep, in memory or into a store, holds the sensitivity [K, F] of its traversals
    (and the float64 sums it is merged from) whatever the grid: 4,096 latents of 3 x 256 x 256
    outputs took 21 GiB of a 23.5 GiB machine with no output kept, unchecked. Counted exactly, so
    against all of the memory (the outputs' rule leaves half of it for their temporaries)."""
    nbytes = geometry.result_bytes(False) + geometry.merging_bytes(statistics_on_cpu)
    _checks.fits_in_memory(
        fn, f"the statistics of {geometry.num_dims:,} traversals of {geometry.features:,} output features each (the "
        "sensitivity [K, F], merged in float64)", nbytes, torch.device("cpu"),
        "traverse fewer latents (dims=) or directions", share=1.0)


def _check_fits_in_memory(fn: str, geometry: Geometry, keep_outputs: bool) -> None:
    """A sweep kept in memory holds its effect [A, K, S], its outputs when kept, and the
    sensitivity [K, F] (its float64 sums while it runs: _check_statistics_fit)."""
    _checks.fits_in_memory(
        fn, "keeping all outputs in memory" if keep_outputs else "the effect of every grid point ([A, K, S])",
        geometry.result_bytes(keep_outputs), torch.device("cpu"),
        "pass out='sweep.zarr' (on disk, resumable)" + (" or keep_outputs=False (statistics only)" if keep_outputs
                                                         else " or traverse fewer points"))


# ---- units ----------------------------------------------------------------------------------
# (the out-of-memory halving's; the graph's replay copied a smaller batch into its captured one)
_GRAPH_SIZE_FIXED = ("a CUDA graph replays at the size it captured (cuda_graph=True), so it is not halved: pass "
                     "cuda_graph=False, or a smaller batch_size to a new sweep")
def _decode_units(fn: str, decoder, spec: GridSpec, stats, sink, plan: SweepPlan, units: list[int], keep_outputs,
                  bar, *, nonfinite_subject: str, others_failed, graphed: bool = False):
    """Decodes the given units, recording each when done. Returns (points, batch size used).
    ``nonfinite_subject``: the :class:`DecoderCall`'s (``decoder`` may be its CUDA graph:
    ``graphed``, whose batch size cannot be halved); ``others_failed()``: raises when another
    rank has failed (it waits for this one to stop)."""
    remaining = collections.deque(units)  # units finish in order: O(1) each at any count
    computed = 0

    def on_progress(count: int) -> None:
        bar.update(count)
        sink.heartbeat()
        others_failed()

    def run(batch_size: int) -> int:
        executor = _C.SweepExecutor(fn, decoder, spec.anchors, spec.dims, spec.values, batch_size,
                                    list(sink.geometry.out_shape), spec.code_writer, plan.padded,
                                    sink.geometry.output_dtype, nonfinite_subject)
        # One executor run for all the units: one buffer-reuse scope on the CPU (a scope per unit
        # page-faulted each unit's first chunk again: every 4th MLP call 1.7x slower), one
        # pipeline on CUDA.
        this_run = list(remaining)
        rows = [plan.unit_rows_of(unit) for unit in this_run]

        def unit_done(i: int, statistics: UnitStatistics) -> None:
            nonlocal computed
            start, stop = rows[i]
            sink.finish_unit(this_run[i], start, stop, statistics)
            computed += stop - start
            remaining.popleft()

        _decode_run(executor, stats, sink, rows, keep_outputs, on_progress, unit_done)
        return batch_size

    try:
        used = retry_halved(fn, run, plan.batch_size, spec.anchors.device, fixed=_GRAPH_SIZE_FIXED if graphed else None
                            ) if units else plan.batch_size
    except BaseException as error:
        if spec.point_note and isinstance(error, ValueError) and "latent dim" in str(error):
            error.add_note(spec.point_note)
        _explain_stop(fn, error, sink, plan, len(units) - len(remaining), len(units))
        raise
    return computed, used


def _settle(fn: str, workers, error, sink) -> None:
    """Every rank learns whether all finished (so none waits forever for a failed one), once
    every rank has decoded its share, however long that takes (a failed rank tells at once)."""
    advice = "" if sink.path is None else (
        f"the units finished are kept in {sink.path} ({_checks.call_name(fn)}(..., resume=True) continues, at "
        "any number of processes)")
    if error is None:
        _distributed.wait_for_every_rank(workers, "decoded its share of the units", advice=advice)
    workers.agree(error, advice=advice)


def _explain_stop(fn: str, error: BaseException, sink, plan: SweepPlan, done: int, total: int) -> None:
    """Tells the user what was kept and how to go on (as an exception note, or on stderr for
    Ctrl-C, whose traceback users rarely read)."""
    if sink.path is not None:
        message = (
            f"{fn}: the sweep stopped after {done} of this process's {total} work units; every finished "
            f"unit is saved in {sink.path}. Call {_checks.call_name(fn)}(...) again with the same arguments and "
            "resume=True to continue (at any number of processes)."
        )
    elif _SWEEPING_FOR.get() is not None:
        caller, advice = _SWEEPING_FOR.get()
        message = f"{caller}: its {_checks.call_name(fn)} sweep stopped after {done} of {total} work units. {advice}"
    else:
        message = (
            f"{fn}: the sweep stopped after {done} of {total} work units. Pass out='sweep.zarr' to keep "
            "partial results on disk and make long sweeps resumable."
        )
    if isinstance(error, KeyboardInterrupt) and not _STOP_MESSAGES_AS_NOTES.get():
        print(message, file=sys.stderr)
    elif isinstance(error, Exception | KeyboardInterrupt):
        error.add_note(message)


# The command line words the advice after Ctrl-C itself (with its flags): it asks for a note.
_STOP_MESSAGES_AS_NOTES = contextvars.ContextVar("latentsweep_stop_messages_as_notes", default=False)


@contextlib.contextmanager
def stop_messages_as_notes():
    """Within this block the advice after Ctrl-C is an exception note, not printed."""
    token = _STOP_MESSAGES_AS_NOTES.set(True)
    try:
        yield
    finally:
        _STOP_MESSAGES_AS_NOTES.reset(token)


# A public function that sweeps inside and keeps nothing of a stopped sweep (explain): the
# advice after a stop is its own, in its name (traverse's out='sweep.zarr' is none of its
# arguments). (caller, advice) or None.
_SWEEPING_FOR = contextvars.ContextVar("latentsweep_sweeping_for", default=None)


@contextlib.contextmanager
def sweeping_for(caller: str, advice: str):
    """Within this block a stopped sweep kept in memory says ``advice`` in ``caller``'s name."""
    token = _SWEEPING_FOR.set((caller, advice))
    try:
        yield
    finally:
        _SWEEPING_FOR.reset(token)


# ---- merge ----------------------------------------------------------------------------------
def _merge(sink, plan: SweepPlan, workers) -> tuple[OrderedMerge | None, StoreStatus | None]:
    """Unit statistics added in unit order; on every rank the same numbers. For a shard, also
    the store's status as its check found it (the merge is None while the store is not complete)."""
    if workers.grouped and not sink.shared:  # process-local sinks swap their units' effect and sums
        for part in workers.all_gather(sink.export_units(plan, sink.done_units())):
            sink.import_units(plan, part)
    if workers.shard is not None:  # the store is complete when this was the last shard
        status, merged = sink.checked_merge()
        return merged, status

    def all_units() -> OrderedMerge:
        with named_errors(workers.fn):  # (a store's record unreadable now: said in the caller's name)
            return sink.merged()

    if workers.grouped and sink.shared:  # rank 0 reads the store for all, and its failure reaches them
        return _distributed.leader_decides(workers, all_units, "read the store's units for the others"), None
    return all_units(), None


def _result(spec, host: dict, sink, geometry, dim_effect, sensitivity, batch_size, *, wall_time, points_per_second,
            points, output_space) -> TraversalResult:
    """``host``: the CPU copies of the spec's dims, directions, values and anchors, and of the
    anchor outputs (see HostCopies)."""
    order = torch.argsort(dim_effect, descending=True, stable=True)
    dims = host["dims"]
    return TraversalResult(
        dims=dims,
        directions=host["directions"],
        labels=spec.labels,
        latent_shape=spec.latent_shape,
        values=host["values"],
        anchors=host["anchors"],
        outputs=sink.outputs(),
        anchor_outputs=host["anchor_outputs"],
        effect=sink.effect().view(geometry.grid_shape),
        dim_effect=dim_effect,
        ranking=dims[order],
        sensitivity=sensitivity,
        out_shape=geometry.out_shape,
        batch_size=batch_size,
        wall_time=wall_time,
        points_per_second=points_per_second,
        store=sink.path,
        mode=spec.mode,
        points_computed=points,
        output_space=output_space,
    )


# ---- reading a store ------------------------------------------------------------------------
def open_sweep(path: str | Path) -> TraversalResult | Interpolation:
    """The result of the complete sweep stored at ``path``, read-only (works on read-only media;
    checks every unit's record and checksums): the :class:`TraversalResult` that
    :func:`traverse` returned, or the :class:`Interpolation` for a store :func:`interpolate` wrote
    (its ``sweep`` is that TraversalResult).

    Raises:
        ValueError: nothing or something else at ``path``; an incomplete sweep (naming the
            missing and damaged units: finish it with ``traverse(..., resume=True)``, or
            ``interpolate(...)`` for a store it wrote, or the missing shards); a damaged store
            (saying which part).
    """
    fn = "latentsweep.open_sweep"
    path = store_path(fn, "path", path)
    with named_errors(fn):
        store = existing_store(path, writable=False)
    if store is None:
        raise ValueError(f"{fn}: there is no sweep at {path}")
    try:
        problems = store.static_problems()
        if problems:
            where = "; ".join(f"{name} {why}" for name, why in problems.items())
            raise StoreDamaged(f"{fn}: the sweep store {path} is damaged ({where}); resume=True with the "
                               "sweep's arguments rewrites it")
        status, merged = store.checked_merge()
        if not status.complete:
            missing = status.missing
            detail = "; ".join(f"unit {u}: {why}" for u, why in sorted(status.damaged.items())[:5])
            raise ValueError(
                f"{fn}: the sweep at {path} is incomplete: {len(missing)} of {status.num_units} work units are "
                f"missing ({describe_units(missing)})" + (f"; damaged: {detail}" if detail else "")
                + f". {unfinished_advice(writer_of(store.params))}"
            )
        g = store.geometry
        dim_effect, sensitivity = merged.result(fn, num_anchors=g.num_anchors, num_steps=g.num_steps,
                                                dtype=g.statistics_dtype)
        dims = store.read_static("dims")
        order = torch.argsort(dim_effect, descending=True, stable=True)
        latent_shape = tuple(int(n) for n in store.params.get("latent_shape", [store.latent_dim]))
        directions = store.read_static("directions") if store.has_static("directions") else None
        mode = str(store.params.get("mode", "?"))
        # (an interpolation's label follows from its path, which is its store's mode)
        labels = store.params.get("labels") or ((path_label(mode),) if mode in PATHS
                                                 else coordinate_labels(dims, latent_shape))
        result = TraversalResult(
            dims=dims, directions=directions, labels=tuple(map(str, labels)), latent_shape=latent_shape,
            values=store.read_static("values"), anchors=store.read_static("anchors"),
            outputs=store.outputs(), anchor_outputs=store.read_static("anchor_outputs"),
            effect=store.effect().view(g.grid_shape), dim_effect=dim_effect, ranking=dims[order],
            sensitivity=sensitivity, out_shape=g.out_shape, batch_size=store.plan.batch_size, wall_time=0.0,
            points_per_second=0.0, store=path, mode=mode, points_computed=0,
            output_space=str(store.params.get("output_space", "decoder output")),
        )
        if mode in PATHS:
            return Interpolation.of_sweep(result, result.anchors, store.read_static("path_ends"))
        return result
    finally:
        store.close()


def sweep_status(path: str | Path) -> StoreStatus:
    """Which work units of the sweep stored at ``path`` are done, missing or damaged, and
    whether its static arrays (anchors, values, ...) are intact (read-only)."""
    fn = "latentsweep.sweep_status"
    path = store_path(fn, "path", path)
    with named_errors(fn):
        store = existing_store(path, writable=False)
    if store is None:
        raise ValueError(f"{fn}: there is no sweep at {path}")
    try:
        return store.status()
    finally:
        store.close()


def unfinished_advice(writer: str) -> str:
    """What to do with an incomplete store that ``writer`` (traverse, interpolate) wrote (the CLI's
    ``open`` says it in its own words, finding it by this text)."""
    return f"Finish it with {writer}(..., out=path, resume=True) or run the missing shards"
