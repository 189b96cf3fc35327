"""Turning observations into codes with a user's representation function, in batches."""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from .._modules import eval_mode, model_device, parameter_dtype, without_grad
from ..datasets import _protocol
from ..encoding import _split_output
from . import _inputs


def check(fn: str, representation) -> None:
    if not callable(representation):
        raise TypeError(f"{fn}: representation must be callable (observations -> codes), got {type(representation).__name__}")


def encode_factors(fn: str, representation, data, factors: torch.Tensor, *, batch_size: int, bar=None,
                   latents: int | None = None, held: dict[str, int] | None = None) -> torch.Tensor:
    """``[n, F]`` factor rows -> ``[n, D]`` codes as :func:`encode` gives them, rendered with
    ``data.observations`` ``batch_size`` rows at a time: only the codes are held, not the
    ``[n, ...]`` observations (4 KB an image at 32 x 32: 10^7 points were 40 GB). ``held``:
    the sizes (argument name -> points) of every point the caller will hold, checked with the
    codes' D once the first batch gives it (``_sampling.points_fit``)."""
    from . import _sampling

    out = []
    for start in range(0, factors.shape[0], batch_size):
        observations = _protocol.observations(fn, data, factors[start : start + batch_size])
        out.append(encode(fn, representation, observations, batch_size=batch_size, bar=bar, latents=latents,
                          first=start))
        latents = out[-1].shape[1]
        if held is not None and start == 0:
            _sampling.points_fit(fn, held, factors.shape[1], latents)
    return torch.cat(out)


def encode(fn: str, representation, observations: torch.Tensor, *, batch_size: int, bar=None,
           latents: int | None = None, first: int = 0) -> torch.Tensor:
    """``[n, ...]`` observations -> ``[n, D]`` float64 CPU codes (structured codes flattened).

    An ``nn.Module`` runs in eval mode on its own device and dtype; an output that is a
    ``(mu, logvar)`` pair, a dict, a ``Normal`` or a :class:`~latentsweep.Posterior` gives its mean (the codes the metrics score).
    Every batch must give the same D: ``latents`` when given (what an earlier call returned).
    ``first``: the index of the first observation, for the messages (a part of a larger draw)."""
    device = model_device(representation)
    # Floating observations take the dtype of the representation's parameters; a parameterless
    # callable gets them as they are, as latentsweep.encode gives them (float64 observations
    # were cast to float32 for a plain function: rounded, and a float64 matmul inside failed).
    dtype = parameter_dtype(representation)
    out = []
    with eval_mode(representation), without_grad():
        for start in range(0, observations.shape[0], batch_size):
            batch = observations[start : start + batch_size]
            if batch.is_floating_point() and dtype is not None:
                batch = batch.to(dtype)
            if device is not None:
                batch = batch.to(device)
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


def _codes_of(fn: str, output, index: int) -> torch.Tensor:
    """The codes (means) of what the representation returned for batch ``index``, by encode's
    rules, its errors naming the metric's representation (not latentsweep.encode's encoder,
    which the user never called)."""
    return _split_output(output, index, subject=f"{fn}: representation")[0]
