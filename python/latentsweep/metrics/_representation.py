"""Turning observations into codes with a user's representation function, in batches."""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from .._modules import eval_mode, model_device, model_dtype
from ..encoding import _split_output
from . import _inputs


def check(fn: str, representation) -> None:
    if not callable(representation):
        raise TypeError(f"{fn}: representation must be callable (observations -> codes), got {type(representation).__name__}")


def encode(fn: str, representation, observations: torch.Tensor, *, batch_size: int, bar=None) -> torch.Tensor:
    """``[n, ...]`` observations -> ``[n, D]`` float64 CPU codes.

    An ``nn.Module`` runs in eval mode on its own device and dtype; an output that is a
    ``(mu, logvar)`` pair, a dict or a ``Normal`` gives its mean (the codes the metrics score)."""
    device = model_device(representation)
    dtype = model_dtype(representation)
    out = []
    with eval_mode(representation), torch.inference_mode():
        for start in range(0, observations.shape[0], batch_size):
            batch = observations[start : start + batch_size]
            if batch.is_floating_point():
                batch = batch.to(dtype)
            if device is not None:
                batch = batch.to(device)
            output = representation(batch)
            if isinstance(output, np.ndarray):
                output = torch.from_numpy(output)
            codes, _ = _split_output(output, start // batch_size)
            if codes.dim() != 2 or codes.shape[0] != batch.shape[0]:
                raise ValueError(
                    f"{fn}: representation returned codes of shape {tuple(codes.shape)} for a batch of "
                    f"{batch.shape[0]} observations; expected [{batch.shape[0]}, D]"
                )
            codes = codes.detach().to("cpu", torch.float64, copy=True)  # a view of a reused buffer stays valid
            if not bool(torch.isfinite(codes).all()):
                raise ValueError(f"{fn}: representation returned NaN/Inf codes for observations {start}..{start + batch.shape[0] - 1}")
            if codes.numel():
                _inputs.magnitude(fn, f"the codes representation returned for observations {start}..{start + batch.shape[0] - 1}",
                                  _checks.extremes(codes))
            out.append(codes)
            if bar is not None:
                bar.update(batch.shape[0])
    return torch.cat(out)
