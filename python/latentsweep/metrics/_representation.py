"""Turning observations into codes with a user's representation function, in batches."""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from .._cpu_memory import MEASURED_ROWS, memory_per_row, rows_within_memory
from .._modules import eval_mode, model_device, parameter_dtype, without_grad
from ..datasets import _protocol
from ..encoding import MEASURED_FROM_BYTES, _split_output
from . import _inputs


def check(fn: str, representation) -> None:
    if not callable(representation):
        raise TypeError(f"{fn}: representation must be callable (observations -> codes), got {type(representation).__name__}")


class CallSize:
    """The observations a representation call takes in one metric's call: ``batch_size``, or
    fewer where the representation would take more than the memory's share of the CPU on them,
    measured (:func:`._cpu_memory.memory_per_row`) before its first call of many observations,
    once: a metric's default of 4,096 observations a call was 40 GB for an encoder taking 10 MB
    an image (a ResNet's at 64 x 64), and the kernel killed the process. ``keyword``: the
    caller's name for the batch size, in the warning."""

    def __init__(self, fn: str, batch_size: int, keyword: str = "batch_size"):
        self.fn, self.batch_size, self.keyword = fn, batch_size, keyword
        self.measured = False

    def fitted(self, representation, observations: torch.Tensor, as_given) -> int:
        """The observations a call, for a call's ``observations`` (``as_given(rows)``: rows as
        the representation gets them, on its device and dtype)."""
        used = min(self.batch_size, observations.shape[0])
        if self.measured or used <= MEASURED_ROWS or \
                used * observations[0].numel() * observations.element_size() < MEASURED_FROM_BYTES:
            return self.batch_size
        self.measured = True
        inputs = as_given(observations[:MEASURED_ROWS]).clone()  # (it may write into them)
        per_row = memory_per_row(representation, inputs) if inputs.device.type == "cpu" else None
        fitting = rows_within_memory(per_row, torch.device("cpu"), used)
        if fitting is None:
            return self.batch_size
        asked, (self.batch_size, shortfall) = self.batch_size, fitting
        _checks.warn(f"{self.fn}: {self.keyword}={asked} (the representation took {per_row / 2**20:,.1f} MiB an "
                     f"observation on the CPU, measured on {MEASURED_ROWS}) {shortfall}; calling it on "
                     f"{self.batch_size} observations at a time instead (codes that differ at most in their last "
                     "bits, where its arithmetic depends on the batch); pass "
                     f"{self.keyword}={self.batch_size} or less to choose the size yourself", _checks.ProcessWarning)
        return self.batch_size


def encode_factors(fn: str, representation, data, factors: torch.Tensor, *, batch_size: int | CallSize, bar=None,
                   latents: int | None = None, held: dict[str, int] | None = None) -> torch.Tensor:
    """``[n, F]`` factor rows -> ``[n, D]`` codes as :func:`encode` gives them, rendered with
    ``data.observations`` ``batch_size`` rows at a time: only the codes are held, not the
    ``[n, ...]`` observations (4 KB an image at 32 x 32: 10^7 points were 40 GB). ``held``:
    the sizes (argument name -> points) of every point the caller will hold, checked with the
    codes' D once the first batch gives it (``_sampling.points_fit``)."""
    from . import _sampling

    calls = batch_size if isinstance(batch_size, CallSize) else CallSize(fn, batch_size)
    batch_size = calls.batch_size  # (the rendering's; the calls' may be fewer)
    out = []
    for start in range(0, factors.shape[0], batch_size):
        observations = _protocol.observations(fn, data, factors[start : start + batch_size])
        out.append(encode(fn, representation, observations, batch_size=calls, bar=bar, latents=latents,
                          first=start))
        latents = out[-1].shape[1]
        if held is not None and start == 0:
            _sampling.points_fit(fn, held, factors.shape[1], latents)
    return torch.cat(out)


def encode(fn: str, representation, observations: torch.Tensor, *, batch_size: int | CallSize, bar=None,
           latents: int | None = None, first: int = 0) -> torch.Tensor:
    """``[n, ...]`` observations -> ``[n, D]`` float64 CPU codes (structured codes flattened),
    ``batch_size`` observations a call (a :class:`CallSize` measured once for a metric's calls;
    an int is measured in this call).

    An ``nn.Module`` runs in eval mode on its own device and dtype; an output that is a
    ``(mu, logvar)`` pair, a dict, a ``Normal`` or a :class:`~latentsweep.Posterior` gives its mean (the codes the metrics score).
    Every batch must give the same D: ``latents`` when given (what an earlier call returned).
    ``first``: the index of the first observation, for the messages (a part of a larger draw)."""
    device = model_device(representation)
    # Floating observations take the dtype of the representation's parameters; a parameterless
    # callable gets them as they are, as latentsweep.encode gives them (float64 observations
    # were cast to float32 for a plain function: rounded, and a float64 matmul inside failed).
    dtype = parameter_dtype(representation)
    calls = batch_size if isinstance(batch_size, CallSize) else CallSize(fn, batch_size)
    out = []
    with eval_mode(representation), without_grad():
        batch_size = calls.fitted(representation, observations, lambda rows: _as_given(rows, dtype, device))
        for start in range(0, observations.shape[0], batch_size):
            batch = _as_given(observations[start : start + batch_size], dtype, device)
            rows = f"observations {first + start}..{first + start + batch.shape[0] - 1}"
            output = representation(batch)
            if isinstance(output, np.ndarray):
                output = _inputs.as_tensor(fn, f"the codes representation returned for {rows}", output)
            codes = _codes_of(fn, output, (first + start) // batch_size)
            if codes.dim() < 2 or codes.shape[0] != batch.shape[0]:
                raise ValueError(
                    f"{fn}: representation returned codes of shape {tuple(codes.shape)} for a batch of "
                    f"{batch.shape[0]} observations; expected [{batch.shape[0]}, D] (or [{batch.shape[0]}, "
                    "*latent_shape])"
                )
            codes = codes.flatten(1)  # structured codes [n, C, H, W]: D latents, as encode reads them
            if latents is None:
                latents = codes.shape[1]
            elif codes.shape[1] != latents:  # (torch.cat's size mismatch would name neither)
                raise ValueError(
                    f"{fn}: representation returned {latents} latents for one batch and {codes.shape[1]} for another "
                    f"({rows}); it must return the same number of latents for every batch"
                )
            # The metrics' own real-number rule: float64 would drop an imaginary part and read bools as 0/1.
            _inputs.real_numbers(fn, f"the codes representation returned for {rows}", codes)
            codes = codes.detach().to("cpu", torch.float64, copy=True)  # a view of a reused buffer stays valid
            if not bool(torch.isfinite(codes).all()):
                raise ValueError(f"{fn}: representation returned NaN/Inf codes for {rows}")
            if codes.numel():
                _inputs.magnitude(fn, f"the codes representation returned for {rows}", _checks.extremes(codes))
            out.append(codes)
            if bar is not None:
                bar.update(batch.shape[0])
    return torch.cat(out)


def _as_given(batch: torch.Tensor, dtype: torch.dtype | None, device: torch.device | None) -> torch.Tensor:
    """A batch of observations as the representation is called on it: floating observations in
    the dtype of its parameters, on its device."""
    if batch.is_floating_point() and dtype is not None:
        batch = batch.to(dtype)
    return batch if device is None else batch.to(device)


def _codes_of(fn: str, output, index: int) -> torch.Tensor:
    """The codes (means) of what the representation returned for batch ``index``, by encode's
    rules, its errors naming the metric's representation (not latentsweep.encode's encoder,
    which the user never called)."""
    return _split_output(output, index, subject=f"{fn}: representation")[0]
