"""Helpers for the user's encoder/decoder callables (nn.Modules or plain functions)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch


def tensors_of(model) -> Iterator[torch.Tensor]:
    """Parameters then buffers of an nn.Module (nothing for other callables)."""
    if isinstance(model, torch.nn.Module):
        yield from model.parameters()
        yield from model.buffers()


def model_device(model) -> torch.device | None:
    """The device of the model's first parameter or buffer, None when it has none."""
    for tensor in tensors_of(model):
        return tensor.device
    return None


def model_dtype(model) -> torch.dtype:
    """The dtype of the model's first floating parameter (torch's default otherwise)."""
    for tensor in tensors_of(model):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


@contextlib.contextmanager
def eval_mode(model):
    """Runs an nn.Module in eval mode (no dropout, frozen batch norm), restoring each
    submodule's mode afterwards; a no-op for other callables."""
    if not isinstance(model, torch.nn.Module):
        yield
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def fingerprint(model) -> str:
    """Identifies a model for resumable sweeps: its type and, for an nn.Module, a hash of its
    parameters and buffers (so resuming with other weights is refused)."""
    kind = type(model)
    name = getattr(model, "__qualname__", None) or kind.__qualname__  # functions by name
    digest = hashlib.sha256(f"{getattr(model, '__module__', kind.__module__)}.{name}".encode())
    if isinstance(model, torch.nn.Module):
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor_digest(tensor).encode())
    return digest.hexdigest()[:32]


def tensor_digest(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's shape, dtype and values."""
    data = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{tuple(data.shape)}{data.dtype}".encode())
    digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()
