"""traverse(): decode the whole traversal grid in chunks and measure what each latent does."""

from __future__ import annotations

import contextlib
import contextvars
import math
import sys
import time
from pathlib import Path

import torch

from . import _batching, _checks, _progress, decoding
from ._extension import _C
from ._modules import eval_mode, fingerprint, model_device, tensor_digest
from .posterior import Posterior
from .result import TraversalResult
from .stores import Geometry, MemorySink, SweepStore, create_store, existing_store, remove_store
from .traversal import _expand_values, traversal_values

_FN = "latentsweep.traverse"
CHECKPOINT_SECONDS = 2.0  # how often a store records progress (and what a kill -9 can lose)


def traverse(
    decoder,
    anchors,
    *,
    mode: str = "prior",
    span: float = 2.0,
    steps: int = 11,
    dims=None,
    logvar: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
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
    output=None,
    output_transform=None,
) -> TraversalResult:
    """Traverses each latent dimension from each anchor, decodes every grid point, and
    measures how much, and where, the output changes.

    The grid is anchors x dims x steps. It is decoded in chunks of ``batch_size`` codes (the
    last chunk padded, so the decoder always sees one shape) by a C++ executor that writes the
    codes in place, calls the decoder under inference mode and updates exact streaming
    statistics, so memory stays bounded however large the sweep.

    Args:
        decoder: any callable from a ``[B, D]`` tensor to a ``[B, ...]`` tensor, e.g.
            ``vae.decoder`` or ``vae.decode``: an ``nn.Module``, or the module of a bound method,
            runs in eval mode (restored afterwards), and codes are cast to its parameters' dtype.
            Outputs wrapped in a tuple, dict or output object are unwrapped by the rule in
            :data:`latentsweep.decoding.OUTPUT_RULE` (or as ``output=`` says).
        anchors: ``[A, D]`` codes (``[D]`` for one), or a :class:`Posterior` (its means are the
            anchors and its ``logvar`` feeds mode ``"posterior"``).
        mode, span, steps, dims, logvar, reference, prior_std: which values each latent takes,
            as in :func:`latentsweep.traversal_values` (default: anchor ± 2 prior SDs).
        values: explicit values ``[S]``, ``[K, S]`` or ``[A, K, S]``; overrides ``mode``.
        batch_size: codes per decoder call, or ``"auto"``: on the CPU, the fastest of a few
            sizes (64, 256, ... up to what ``memory_budget`` allows, at most 8192) timed on
            the sweep's first chunks, whose results are kept; on CUDA, as many as
            ``memory_budget`` allows (measured on a probe batch). The size used is in the
            result's ``batch_size`` and in a store, whose resume goes on with it.
        memory_budget: bytes for the sweep's buffers (default: half the free GPU memory, or
            1 GiB on the CPU).
        device: where codes are built and decoded (default: the decoder's device, else the
            anchors').
        out: ``None`` to keep results in memory, or a path: ``"sweep.zarr"`` (a zarr store) or
            ``"sweep.npy"`` (outputs in a memory-mappable .npy, the rest beside it). A store
            makes the sweep resumable.
        keep_outputs: False to keep only the statistics (memory does not grow with the grid).
        resume: continue the sweep stored at ``out`` (same arguments) from where it stopped.
        overwrite: replace an existing store at ``out`` with a new sweep.
        progress: a tqdm bar (points/s, ETA); None shows it when stderr is a terminal.
        cuda_graph: capture the decoder in a CUDA graph (CUDA only; for small decoders whose
            launch overhead dominates; the decoder must be graph-safe).
        output: which part of the decoder's output holds the decoded outputs: a key or
            attribute (``"sample"``), a tuple index, or a callable on the raw output (see
            :func:`latentsweep.decoding.decoder_call`).
        output_transform: ``"sigmoid"`` (for a decoder that returns logits), ``"tanh"``,
            ``"exp"``, or any callable applied to the outputs before the statistics; the
            result's ``output_space`` says which space the effects are measured in.

    Returns:
        a :class:`TraversalResult` (outputs, effect, dim_effect, ranking, sensitivity, speed).

    Raises:
        TypeError, ValueError: bad arguments, or a decoder that returns a non-tensor, the wrong
            number of rows, a changing shape, or NaN/Inf (naming the grid points).
        RuntimeError: the decoder ran out of memory even at half the batch size.
        KeyboardInterrupt: Ctrl-C; a store keeps everything done so far (resume=True).
    """
    started = time.perf_counter()
    if not callable(decoder):
        raise TypeError(f"{_FN}: decoder must be callable ([B, D] -> [B, ...]), got {type(decoder).__name__}")
    show_progress = _progress.wanted(progress, _FN)
    decode_fn = decoding.decoder_call(_FN, decoder, output=output, output_transform=output_transform)
    for name, flag in [("keep_outputs", keep_outputs), ("resume", resume), ("overwrite", overwrite), ("cuda_graph", cuda_graph)]:
        if not isinstance(flag, bool):
            raise TypeError(f"{_FN}: {name} must be True or False, got {flag!r}")
    if resume and overwrite:
        raise ValueError(f"{_FN}: resume=True and overwrite=True contradict each other")
    if out is None and resume:
        raise ValueError(f"{_FN}: resume=True needs out= (the path of the stored sweep)")
    if isinstance(anchors, Posterior):
        logvar = anchors.logvar if logvar is None else logvar
        anchors = anchors.mu
    anchors = _checks.tensor(_FN, "anchors", anchors, ndims=(1, 2))
    anchors = anchors[None] if anchors.dim() == 1 else anchors
    _checks.finite(_FN, "anchors", anchors)
    device = _resolve_device(device, decoder, anchors)
    if cuda_graph and device.type != "cuda":
        raise ValueError(f"{_FN}: cuda_graph=True needs a CUDA device, got {device}")

    # The grid's values (computed where the anchors are, then moved to the decoder's device).
    dims_t = (
        torch.arange(anchors.shape[1], device=anchors.device)
        if dims is None
        else _checks.dims(_FN, dims, anchors.shape[1], anchors.device)
    )
    if values is not None:
        grid_values = _expand_values(_FN, values, anchors, dims_t.numel())
        mode = "values"
    else:
        grid_values = traversal_values(
            anchors, mode=mode, span=span, steps=steps, dims=dims_t, logvar=logvar,
            prior_std=prior_std, reference=reference,
        )
    anchors_d = anchors.to(device)
    dims_d = dims_t.to(device)
    values_d = grid_values.to(device)
    num_anchors, latent_dim = anchors.shape
    total = num_anchors * dims_t.numel() * grid_values.shape[2]
    if total > _checks.INT64_MAX:
        raise ValueError(f"{_FN}: the grid has {total} points, which overflows int64")
    if batch_size != "auto":
        batch_size = _checks.integer(_FN, "batch_size", batch_size, low=1)
    if memory_budget is not None:
        memory_budget = _checks.integer(_FN, "memory_budget", memory_budget, low=1)

    with eval_mode(decoder):
        probe_rows = min(num_anchors, 64 if batch_size == "auto" else batch_size)
        anchor_outputs, activation_bytes = _decode_anchors(decode_fn, anchors_d, probe_rows)
        out_shape = tuple(anchor_outputs.shape[1:])
        features = math.prod(out_shape)
        auto_batch = batch_size == "auto"
        if auto_batch:
            batch_size = _batching.auto_batch_size(
                device=device,
                budget=memory_budget or _batching.default_memory_budget(device),
                latent_dim=latent_dim,
                features=features,
                output_bytes=anchor_outputs.element_size(),
                activation_bytes=activation_bytes,
                total_rows=max(total, 1),
            )
        batch_size = min(batch_size, max(total, 1))

        geometry = Geometry(num_anchors, dims_t.numel(), grid_values.shape[2], out_shape,
                            anchor_outputs.dtype, batch_size)
        # Hashing the decoder and the grid is only needed to recognise a stored sweep.
        params = None if out is None else _sweep_params(
            decoder, anchors, dims_t, grid_values, out_shape, anchor_outputs.dtype, keep_outputs, mode,
            decode_fn.output_space,
        )
        sink = _open_sink(out, geometry, keep_outputs, params, resume, overwrite, latent_dim)
        # On the CPU, "auto" times candidate sizes on the first chunks (see _batching); a
        # resumed sweep goes on with the size it recorded.
        recorded_batch = sink.recorded_batch_size() if resume else None
        if auto_batch and resume:
            batch_size = recorded_batch or sink.geometry.chunk_rows
        choose_batch = auto_batch and device.type == "cpu" and recorded_batch is None
        stats = _C.SweepStatistics(anchor_outputs.reshape(num_anchors, features), values_d)
        if resume:
            stats.load_state(sink.load_checkpoint())
        else:
            _write_static(sink, anchors, dims_t, grid_values, anchor_outputs)
        first_row = stats.next_row
        decode = _graphed(decode_fn, batch_size, anchors_d) if cuda_graph else decode_fn

        bar = _progress.bar(show_progress, total=total, unit="pt", desc="traverse", initial=first_row)
        sweep_started = time.perf_counter()
        try:
            batch_size = _run(decode, stats, sink, anchors_d, dims_d, values_d, batch_size, out_shape,
                              keep_outputs, bar, total, choose_batch=choose_batch)
        except BaseException as error:
            _save_progress(sink, stats)
            _explain_stop(error, sink, stats, total)
            raise
        finally:
            bar.close()
        _save_progress(sink, stats)
        sweep_seconds = time.perf_counter() - sweep_started

    points = total - first_row
    grid_shape = (num_anchors, dims_t.numel(), grid_values.shape[2])
    dim_effect = stats.dim_effect().float()
    order = torch.argsort(dim_effect, descending=True, stable=True)
    return TraversalResult(
        dims=dims_t.cpu(),
        values=grid_values.cpu(),
        anchors=anchors.cpu(),
        outputs=sink.outputs_view(),
        anchor_outputs=anchor_outputs.cpu(),
        effect=sink.read_effect().view(grid_shape),
        dim_effect=dim_effect,
        ranking=dims_t.cpu()[order],
        sensitivity=stats.sensitivity().float(),
        out_shape=out_shape,
        batch_size=batch_size,
        wall_time=time.perf_counter() - started,
        points_per_second=points / sweep_seconds if sweep_seconds > 0 else float("inf"),
        store=sink.path,
        mode=mode,
        points_computed=points,
        output_space=decode_fn.output_space,
    )


def _resolve_device(device, decoder, anchors: torch.Tensor) -> torch.device:
    return _checks.device(_FN, device) or model_device(decoder) or anchors.device


def _call_decoder(decoder, codes: torch.Tensor) -> torch.Tensor:
    """One checked decoder call (the executor does the same checks in C++)."""
    result = decoder(codes)
    if not isinstance(result, torch.Tensor):
        raise TypeError(f"{_FN}: the decoder must return a torch.Tensor, got {type(result).__name__}")
    if result.dim() < 1 or result.shape[0] != codes.shape[0]:
        raise ValueError(
            f"{_FN}: the decoder returned shape {tuple(result.shape)} for a batch of {codes.shape[0]} "
            "codes; it must return one output per code ([batch, ...])"
        )
    if not result.is_floating_point():
        raise TypeError(f"{_FN}: the decoder must return floating-point outputs, got {result.dtype}")
    if result.device != codes.device:
        raise ValueError(f"{_FN}: the decoder returned outputs on {result.device} for codes on {codes.device}")
    return result


def _decode_anchors(decoder, anchors: torch.Tensor, probe_rows: int) -> tuple[torch.Tensor, float]:
    """The decoder's outputs at the anchors (x0), in batches of probe_rows (halved once on
    out-of-memory), and the activation memory per row measured on CUDA (0 on the CPU)."""
    measure = anchors.device.type == "cuda"
    for attempt in range(2):
        try:
            outputs = []
            activation_bytes = 0.0
            with torch.inference_mode():
                for start in range(0, anchors.shape[0], probe_rows):
                    chunk = anchors[start : start + probe_rows]
                    if measure and start == 0:
                        torch.cuda.synchronize(anchors.device)
                        torch.cuda.reset_peak_memory_stats(anchors.device)
                        before = torch.cuda.memory_allocated(anchors.device)
                    outputs.append(_call_decoder(decoder, chunk))
                    if measure and start == 0:
                        peak = torch.cuda.max_memory_allocated(anchors.device)
                        activation_bytes = (peak - before) / chunk.shape[0]
            anchor_outputs = torch.cat(outputs)
            break
        except Exception as error:
            if not _batching.is_out_of_memory(error) or attempt == 1 or probe_rows == 1:
                raise
            probe_rows = max(1, probe_rows // 2)
            _release_cached_memory(anchors.device)
    bad = ~torch.isfinite(anchor_outputs.reshape(anchor_outputs.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        rows = bad.nonzero().flatten()[:5].tolist()
        raise ValueError(f"{_FN}: the decoder returned NaN or Inf at anchors {rows} (the anchors themselves)")
    return anchor_outputs, activation_bytes


def _release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _run(decoder, stats, sink, anchors, dims, values, batch_size, out_shape, keep_outputs, bar, total,
         *, choose_batch: bool = False) -> int:
    """Runs the executor from the statistics' next row to the end, checkpointing a store every
    few seconds; with choose_batch, first times candidate sizes up to batch_size on the first
    chunks (kept) and goes on with the fastest; on out-of-memory, halves the batch once and
    goes on. Records and returns the batch size."""
    last_checkpoint = time.monotonic()

    def on_progress(count: int) -> None:
        nonlocal last_checkpoint
        bar.update(count)
        if isinstance(sink, SweepStore) and time.monotonic() - last_checkpoint >= CHECKPOINT_SECONDS:
            sink.checkpoint(stats.state())
            last_checkpoint = time.monotonic()

    def run_rows(size: int, first_row: int, end_row: int) -> None:
        executor = _C.SweepExecutor(decoder, anchors, dims, values, size, list(out_shape))
        executor.run(stats, first_row, end_row, sink.write, keep_outputs, on_progress)

    if choose_batch:
        # One buffer-reuse scope for all the sizes tried (the executor opens its own per run);
        # it ends before the sweep goes on, freeing the blocks of the sizes not chosen.
        with _C.reuse_cpu_buffers():
            choice = _batching.choose_cpu_batch_size(run_rows, start=stats.next_row, end=total, cap=batch_size)
        batch_size = choice.batch_size
    sink.record_batch_size(batch_size)
    halved = False
    while True:
        executor = _C.SweepExecutor(decoder, anchors, dims, values, batch_size, list(out_shape))
        try:
            executor.run(stats, stats.next_row, total, sink.write, keep_outputs, on_progress)
            return batch_size
        except Exception as error:
            if not _batching.is_out_of_memory(error):
                raise
            if halved or batch_size == 1:
                raise RuntimeError(
                    f"{_FN}: the decoder ran out of memory at batch size {batch_size}"
                    + (f" (already halved from {batch_size * 2})" if halved else "")
                    + "; pass a smaller batch_size= or memory_budget="
                ) from error
            del executor
            _release_cached_memory(anchors.device)
            batch_size, halved = max(1, batch_size // 2), True
            sink.record_batch_size(batch_size)
            print(f"latentsweep: out of memory; retrying with batch_size={batch_size}", file=sys.stderr)


def _graphed(decoder, batch_size: int, anchors: torch.Tensor):
    """The decoder captured in a CUDA graph, replayed on a static input buffer."""
    static_codes = torch.zeros(batch_size, anchors.shape[1], dtype=anchors.dtype, device=anchors.device)
    with torch.inference_mode():
        side = torch.cuda.Stream(anchors.device)
        side.wait_stream(torch.cuda.current_stream(anchors.device))
        with torch.cuda.stream(side):  # warm-up outside the graph, as torch.cuda.graph requires
            for _ in range(3):
                _call_decoder(decoder, static_codes)
        torch.cuda.current_stream(anchors.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_outputs = decoder(static_codes)

    def replay(codes: torch.Tensor) -> torch.Tensor:
        static_codes.copy_(codes)
        graph.replay()
        return static_outputs.clone()  # the next replay overwrites static_outputs

    return replay


def _sweep_params(decoder, anchors, dims, values, out_shape, output_dtype, keep_outputs, mode, output_space) -> dict:
    """Everything that makes two sweeps the same sweep (checked before resuming)."""
    return {
        "decoder": fingerprint(decoder),
        "anchors": tensor_digest(anchors),
        "dims": [int(d) for d in dims.tolist()],
        "values": tensor_digest(values.contiguous()),
        "grid": [anchors.shape[0], dims.numel(), values.shape[2]],
        "latent_dim": anchors.shape[1],
        "out_shape": list(out_shape),
        "output_dtype": str(output_dtype),
        "keep_outputs": keep_outputs,
        "mode": mode,
        "output_space": output_space,
    }


def _open_sink(out, geometry, keep_outputs, params, resume, overwrite, latent_dim):
    if out is None:
        total_bytes = geometry.total_rows * geometry.features * torch.empty((), dtype=geometry.output_dtype).element_size()
        ram = _batching.physical_memory()
        if keep_outputs and ram and total_bytes > ram // 2:
            raise ValueError(
                f"{_FN}: keeping all outputs in memory needs {total_bytes / 2**30:.1f} GiB; pass "
                "out='sweep.zarr' (on disk, resumable) or keep_outputs=False (statistics only)"
            )
        return MemorySink(geometry, keep_outputs)
    if not isinstance(out, (str, Path)):
        raise TypeError(f"{_FN}: out must be None or a path, got {type(out).__name__}")
    path = Path(out)
    store = existing_store(path)
    if store is not None:
        if overwrite:
            remove_store(store)
        elif not resume:
            raise ValueError(
                f"{_FN}: {path} already holds a sweep ({store.completed_rows} of "
                f"{store.geometry.total_rows} points done); pass resume=True to continue it or "
                "overwrite=True to replace it"
            )
        else:
            differing = sorted(k for k in set(params) | set(store.params) if params.get(k) != store.params.get(k))
            if differing:
                raise ValueError(
                    f"{_FN}: the sweep stored at {path} has different parameters ({', '.join(differing)}); "
                    "call traverse with the same arguments to resume it, or pass overwrite=True to start over"
                )
            return store
    elif resume:
        raise ValueError(f"{_FN}: resume=True but there is no sweep at {path}")
    return create_store(path, geometry, keep_outputs=keep_outputs, params=params, latent_dim=latent_dim)


def _write_static(sink, anchors, dims, values, anchor_outputs) -> None:
    if isinstance(sink, SweepStore):
        sink.write_static(anchors=anchors, dims=dims, values=values, anchor_outputs=anchor_outputs)


def _save_progress(sink, stats) -> None:
    if isinstance(sink, SweepStore):
        sink.checkpoint(stats.state())


def _explain_stop(error: BaseException, sink, stats, total: int) -> None:
    """Tells the user what was kept and how to go on (as an exception note, or on stderr for
    Ctrl-C, whose traceback users rarely read)."""
    done = stats.committed_row
    if isinstance(sink, SweepStore):
        message = (
            f"latentsweep: the sweep stopped after {done} of {total} points; they are saved in "
            f"{sink.path}. Call traverse(...) again with the same arguments and resume=True to continue."
        )
    else:
        message = (
            f"latentsweep: the sweep stopped after {done} of {total} points. Pass out='sweep.zarr' "
            "to keep partial results on disk and make long sweeps resumable."
        )
    if isinstance(error, KeyboardInterrupt) and not _STOP_MESSAGES_AS_NOTES.get():
        print(message, file=sys.stderr)
    else:
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
