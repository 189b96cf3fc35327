"""Running the decoder for a sweep: checked calls, the probe at the anchors, the one
out-of-memory retry, and CUDA-graph capture."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from . import _batching, _checks
from ._cpu_memory import MEASURED_ROWS, cpu_peak
from ._extension import _C
from ._modules import first_linear_inputs, given_shape, mixed_dtypes_note, shape_error, without_grad
from ._random_state import drew_random_numbers, generator_states
from .decoding import DecoderCall
from .grid_spec import GridSpec
from .paths import PATHS

# The anchors are decoded this many at a time, whatever the sweep's batch_size: their outputs'
# bits can depend on the batch, and a store compares them at every resume, which may pass
# another batch_size argument than the start did ('auto' for an explicit size, or the reverse).
ANCHOR_PROBE_ROWS = 64
# The probe's calls after the first: this many anchors, fewer if their outputs would take more
# than the byte limit (a size set by the outputs' shape alone, the same in every rank and resume).
CUDA_PROBE_ROWS = 4096
CUDA_PROBE_OUTPUT_BYTES = 256 << 20
# On the CPU smaller: past a few MiB of outputs a batch spills out of the caches (a small deconv
# decoder's 64x64 outputs: 256 anchors a call).
CPU_PROBE_ROWS = 1024
CPU_PROBE_OUTPUT_BYTES = 4 << 20
# How the CPU batches the anchors: revision 1 decoded them all ANCHOR_PROBE_ROWS at a time (6,400
# path starts: 100 calls, ~10 ms of a 0.3 s MLP interpolation), revision 2 grew the calls after
# the first as CUDA does, revision 3 decodes two anchors first (the call that measures the
# decoder's memory a code): a decoder taking 1.5 GB a code (a Stable-Diffusion VAE's at 512 x 512)
# was given 64 anchors in its first call, ~96 GB, and the kernel killed the process (two, not
# one: see MEASURED_ROWS). The later calls are bounded by the outputs' size
# (CPU_PROBE_OUTPUT_BYTES: one 512 x 512 image a call, four of 256 x 256), not by the memory
# measured: a first call in a process pays one-off allocations that a resume in the same process
# does not, and anchors batched otherwise could differ in their last bits from the store's. A
# store records the revision it was probed with, and a resume probes as its store did.
PROBE_REVISION = 3
CPU_FIRST_PROBE_ROWS = MEASURED_ROWS  # (another value is another PROBE_REVISION)


@dataclass(frozen=True)
class ProbeGrowth:
    """The probe's calls: ``first_rows`` anchors first, then up to ``rows`` anchors and
    ``output_bytes`` of outputs a call."""

    rows: int
    output_bytes: int
    first_rows: int = ANCHOR_PROBE_ROWS

    def later_rows(self, first_rows: int, row_bytes: int) -> int:
        rows = first_rows
        while rows * 2 <= self.rows and rows * 2 * row_bytes <= self.output_bytes:
            rows *= 2
        return rows


def probe_growth(device: torch.device, revision: int = PROBE_REVISION) -> ProbeGrowth | None:
    """How the anchors on ``device`` are batched, by probe ``revision`` (None: ANCHOR_PROBE_ROWS
    at a time). CUDA's never changed (its out-of-memory error is caught: the batch is halved)."""
    if device.type == "cuda":
        return ProbeGrowth(CUDA_PROBE_ROWS, CUDA_PROBE_OUTPUT_BYTES)
    if revision >= 3:
        return ProbeGrowth(CPU_PROBE_ROWS, CPU_PROBE_OUTPUT_BYTES, CPU_FIRST_PROBE_ROWS)
    return ProbeGrowth(CPU_PROBE_ROWS, CPU_PROBE_OUTPUT_BYTES) if revision == 2 else None


@dataclass
class Probe:
    """The decoder at the anchors: x0 ``[A, *out_shape]``, the decoder's memory per row (its
    activations and outputs: measured on CUDA in the first call, on the CPU in the largest, 0
    where it cannot be measured), and the wall seconds per row of the decoder at the probe's
    batch (the fastest call after the first, which pays one-off costs; the first when it is the
    only one). It estimates the decoder's cost for the CPU batch choice."""

    outputs: torch.Tensor
    activation_bytes: float
    seconds_per_row: float = 0.0

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.outputs.shape[1:])


def call_decoder(fn: str, decoder, codes: torch.Tensor) -> torch.Tensor:
    """One checked decoder call (the executor does the same checks in C++); ``fn`` names the
    public function the user called, in the messages."""
    result = decoder(codes)
    if not isinstance(result, torch.Tensor):
        raise TypeError(f"{fn}: the decoder must return a torch.Tensor, got {type(result).__name__}")
    if result.layout != torch.strided or result.is_nested:
        kind = "nested" if result.is_nested else str(result.layout).removeprefix("torch.")
        raise TypeError(f"{fn}: the decoder returned a {kind} tensor; it must return a dense one "
                        "(tensor.to_dense())")
    if result.dim() < 1 or result.shape[0] != codes.shape[0]:
        raise ValueError(
            f"{fn}: the decoder returned shape {tuple(result.shape)} for a batch of {codes.shape[0]} "
            "codes; it must return one output per code ([batch, ...])"
        )
    if result.shape[0] and result[0].numel() == 0:  # no features: every effect would be a 0/0
        raise ValueError(
            f"{fn}: the decoder returned empty outputs (shape {tuple(result.shape)}: no features per code); "
            "it must return at least one output value per code"
        )
    if not result.is_floating_point():
        raise TypeError(f"{fn}: the decoder must return floating-point outputs, got {result.dtype}")
    if result.device != codes.device:
        raise ValueError(f"{fn}: the decoder returned outputs on {result.device} for codes on {codes.device}")
    return result


def allocated_bytes(device: torch.device, which: str) -> int:
    """The CUDA allocator's "current" or "peak" allocated bytes. torch.cuda.memory_allocated
    flattens every statistic into a new dict first: 0.25 ms a call, on every sweep."""
    return torch.cuda.memory_stats_as_nested_dict(device)["allocated_bytes"]["all"][which]


# Said when torch's random state moved while the probe decoded the anchors (in eval mode).
RANDOM_DECODER = (
    "{fn}: the decoder draws random numbers in eval mode (torch's random state moved while it decoded the "
    "anchors): e.g. F.dropout(x, p) without training=self.training, or outputs sampled from a distribution. "
    "Every grid point then carries that noise beside the latent's effect, and a store's resume finds the "
    "anchors' outputs changed; make the decoder deterministic in eval mode (for sampled outputs, return the "
    "distribution's mean, or pick it with output=)"
)


def probe_anchors(fn: str, decoder, spec: GridSpec, probe_rows: int = ANCHOR_PROBE_ROWS, *,
                  growth: ProbeGrowth | None = None, nonfinite_subject: str = "the decoder returned") -> Probe:
    """Decodes the anchors in batches of probe_rows. Both sides are copies: the decoder may write
    into its inputs, and may return a view of a buffer that its next call overwrites.

    With ``growth`` (:func:`probe_growth`), the first batch is its first_rows, the others as
    large as it allows (6400 anchors probed 64 at a time took 10 ms of a 28 ms sweep on an H100).
    A size set by the outputs' shape alone, not by the free memory nor the memory measured: the
    anchors' outputs, whose bits can depend on the batch, must be the same in every rank and
    resume (a store compares them). After an out-of-memory retry, every batch is the halved
    size. ``nonfinite_subject``: a :class:`DecoderCall`'s, for the NaN/Inf error."""
    anchors = spec.anchors
    on_cuda = anchors.device.type == "cuda"

    def run(rows: int) -> Probe:
        outputs, activation_bytes, per_row, measured_rows = None, 0.0, [], 0
        later_rows, start = rows, 0
        with without_grad():  # (the decoder's first call: lazy layers are made here)
            while start < anchors.shape[0]:
                chunk = anchors[start : start + (rows if start == 0 else later_rows)].clone()
                if on_cuda and start == 0:
                    torch.cuda.synchronize(anchors.device)
                    torch.cuda.reset_peak_memory_stats(anchors.device)
                    before = allocated_bytes(anchors.device, "current")
                began = _batching._clock()  # the clock the CPU batch choice times with
                try:
                    with contextlib.nullcontext() if on_cuda else cpu_peak() as peak:
                        result = call_decoder(fn, decoder, chunk)
                except Exception as error:
                    if start == 0:
                        _note_first_call(fn, error, chunk, spec, decoder)
                    raise
                per_row.append((_batching._clock() - began) / chunk.shape[0])  # CUDA: unused
                if outputs is not None and (result.shape[1:] != outputs.shape[1:] or result.dtype != outputs.dtype):
                    raise ValueError(
                        f"{fn}: the decoder's output shape changed from {list(outputs.shape[1:])} "
                        f"{outputs.dtype} to {list(result.shape[1:])} {result.dtype} per code between "
                        "two calls; it must return the same shape and dtype for every batch"
                    )
                if on_cuda and start == 0:
                    activation_bytes = (allocated_bytes(anchors.device, "peak") - before) / chunk.shape[0]
                elif not on_cuda and peak.bytes is not None and chunk.shape[0] >= measured_rows:
                    # The largest call's, the last of equals (the first's bytes include one-off
                    # ones, lazy layers' weights; blocks below 64 KiB are not counted).
                    activation_bytes, measured_rows = peak.bytes / chunk.shape[0], chunk.shape[0]
                if outputs is None:  # the result's anchor_outputs
                    outputs = result.new_empty((anchors.shape[0], *result.shape[1:]))
                outputs[start : start + chunk.shape[0]].copy_(result)
                if growth is not None and start == 0 and rows == first_rows:
                    later_rows = growth.later_rows(rows, result[0].numel() * result.element_size())
                start += chunk.shape[0]
        # The first call pays one-off costs: the fastest later call estimates better, if any.
        estimate = min(per_row[1:]) if len(per_row) > 1 else per_row[0]
        return Probe(outputs, activation_bytes, estimate)

    first_rows = min(anchors.shape[0], probe_rows if growth is None else growth.first_rows)
    generators = generator_states(anchors.device)
    with contextlib.nullcontext() if on_cuda else _C.reuse_cpu_buffers():  # (one scope for every call)
        probe = retry_halved(fn, run, first_rows, anchors.device)
    if drew_random_numbers(generators, anchors.device) and _draws_again(fn, decoder, anchors):
        _checks.warn(RANDOM_DECODER.format(fn=fn), UserWarning)
    bad = _checks.rows_nonfinite(probe.outputs)
    if bad is not None:
        rows = bad.nonzero().flatten()[:5].tolist()
        raise ValueError(f"{fn}: {nonfinite_subject} NaN or Inf at anchors {rows} (the anchors themselves)")
    return probe


def _draws_again(fn: str, decoder, anchors: torch.Tensor) -> bool:
    """Whether the decoder draws random numbers on a later call too (one anchor decoded again):
    a first call may draw them once, as lazy layers initialising their weights do."""
    generators = generator_states(anchors.device)
    with without_grad():
        call_decoder(fn, decoder, anchors[:1].clone())
    return drew_random_numbers(generators, anchors.device)


# Words of torch's (and most code's) errors about the shape of an input: "Expected 3D (unbatched)
# or 4D (batched) input", "mat1 and mat2 shapes cannot be multiplied", "size mismatch",
# "shape '[-1, 4, 2, 2]' is invalid", "expected input[2, 16] to have 4 channels".


def _note_first_call(fn: str, error: Exception, codes: torch.Tensor, spec: GridSpec, decoder=None) -> None:
    """What the decoder was given when its own code failed on the first call with an error about
    its input's shape (a conv decoder given flat codes said only "Expected 3D or 4D input to
    conv_transpose2d, got [2, 16]")."""
    if str(error).startswith(fn) or isinstance(error, torch.OutOfMemoryError):
        return  # (ours; retried at half)
    user = decoder.decoder if isinstance(decoder, DecoderCall) else decoder
    mixed = None if user is None else mixed_dtypes_note(fn, "decoder", user, codes.dtype, error)
    if mixed is not None:
        error.add_note(mixed)
        return
    if not shape_error(error):
        return  # (not about shapes)
    latent_shape = spec.latent_shape
    given = given_shape((codes.shape[0], *latent_shape), codes.dtype)
    paths = spec.mode in PATHS  # (an interpolation's anchors are its paths' starts)
    where, shaped = ("the paths' starts", "endpoints of that shape ([P, C, H, W])") if paths else \
        ("the anchors", "anchors of that shape ([A, C, H, W])")
    hint = (f"; a decoder that takes structured codes gets them from {shaped} or latent_shape=(C, H, W)"
            if len(latent_shape) == 1 else "")
    width = first_linear_inputs(user)
    if len(latent_shape) == 1 and width is not None and width != latent_shape[0]:
        hint = "; " + code_width_hint(latent_shape[0], width)
    error.add_note(f"{fn}: the decoder raised this on its first call, given codes {given} on {codes.device} "
                   f"({where}){hint}")


def code_width_hint(latents: int, width: int) -> str:
    """Why flat codes of ``latents`` values may not fit a decoder whose first Linear takes
    ``width``: twice as wide is an encoder's mean and log-variance in one tensor (read as plain
    codes); another width, most often, an encoder that is the network's body without its heads."""
    if latents == 2 * width:
        return (f"the decoder's first Linear takes {width} inputs and the codes have {latents} = 2 x {width}: an "
                "encoder that returns its mean and log-variance in one tensor is read as a plain autoencoder's "
                "codes; split it into (mu, logvar), e.g. torch.chunk(h, 2, dim=1)")
    return (f"the decoder's first Linear takes {width} inputs, but the codes have {latents}: is the encoder the "
            "network's body without its mean and log-variance heads (vae.encode rather than vae.encoder)?")


def release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def retry_halved(fn: str, run, batch_size: int, device: torch.device, *, fixed: str | None = None):
    """run(batch_size); on out-of-memory, again at half the batch (with a warning each time),
    down to one code. (Halved once only, a second out-of-memory advised arguments that some
    callers, such as explain, do not have.) ``fixed``: why the batch cannot change, said instead
    of halving (a CUDA graph replays the shape it captured)."""
    while True:
        try:
            return run(batch_size)
        except Exception as error:  # noqa: BLE001
            if not _batching.is_out_of_memory(error):
                raise
            if fixed is not None:
                raise RuntimeError(f"{fn}: the decoder ran out of memory at batch size {batch_size}, which {fixed}"
                                   ) from error
            if batch_size == 1:
                raise RuntimeError(
                    f"{fn}: the decoder ran out of memory at batch size 1 (one code at a time): it does not fit "
                    f"in the memory left on {device}; free memory (other processes, tensors kept alive) or decode "
                    "on a device with more"
                ) from error
        release_cached_memory(device)
        smaller = max(1, batch_size // 2)
        _checks.warn(
            f"{fn}: out of memory at batch_size={batch_size}; retrying with batch_size={smaller} (the units "
            "decoded at this size may differ in the last bits if the decoder's arithmetic depends on the batch)",
            _checks.ProcessWarning,
        )
        batch_size = smaller


def graphed(fn: str, decoder, batch_size: int, anchors: torch.Tensor):
    """The decoder captured in a CUDA graph, replayed on a static input buffer."""
    static_codes = torch.zeros(batch_size, anchors.shape[1], dtype=anchors.dtype, device=anchors.device)
    with without_grad():
        side = torch.cuda.Stream(anchors.device)
        side.wait_stream(torch.cuda.current_stream(anchors.device))
        with torch.cuda.stream(side):  # warm-up outside the graph, as torch.cuda.graph requires
            for _ in range(3):
                call_decoder(fn, decoder, static_codes)
        torch.cuda.current_stream(anchors.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                static_outputs = decoder(static_codes)
        except RuntimeError as error:  # torch's words name the capture, not the option that asked for it
            raise RuntimeError(
                f"{fn}: cuda_graph=True: the decoder cannot be captured in a CUDA graph ({' '.join(str(error).split())}); "
                "a decoder that copies from the host during its call (e.g. a distribution built with a Python number, "
                "Normal(loc, 1.0): use a tensor on the device), synchronises (.item(), printing a tensor) or depends on "
                "values read back cannot be captured: pass cuda_graph=False"
            ) from error

    def replay(codes: torch.Tensor) -> torch.Tensor:
        static_codes.copy_(codes)
        graph.replay()
        return static_outputs.clone()  # the next replay overwrites static_outputs

    return replay
