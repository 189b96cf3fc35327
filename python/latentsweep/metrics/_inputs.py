"""Argument checks shared by the metrics: codes ``[N, D]`` and discrete factors ``[N, F]``.

Codes become float64 tensors on their own device (numpy arrays go to the CPU) so every score is
computed in one precision whatever the encoder produced; factors become int64 tensors on the
codes' device. Every message names the function and the argument.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks


def as_tensor(fn: str, name: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided:
            raise TypeError(f"{fn}: {name} must be a dense (torch.strided) tensor, got layout {value.layout}")
        return value
    if isinstance(value, np.ndarray) or (hasattr(value, "__array__") and not isinstance(value, (str, bytes))):
        return torch.from_numpy(np.ascontiguousarray(np.asarray(value)))
    raise TypeError(f"{fn}: {name} must be a torch.Tensor or a numpy array, got {type(value).__name__}")


def codes(fn: str, name: str, value, *, min_latents: int = 1) -> torch.Tensor:
    """Real-valued codes ``[N, D]`` (N >= 2) as float64, finite."""
    value = as_tensor(fn, name, value)
    if value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"{fn}: {name} must hold real numbers, got {value.dtype}")
    if value.dim() != 2:
        raise ValueError(f"{fn}: {name} must be 2-D [N, D] (points x latents), got shape {tuple(value.shape)}")
    if value.shape[0] < 2:
        raise ValueError(f"{fn}: {name} needs at least 2 points, got {value.shape[0]}")
    if value.shape[1] < min_latents:
        raise ValueError(f"{fn}: {name} needs at least {min_latents} latent(s), got shape {tuple(value.shape)}")
    value = value.detach().to(torch.float64)
    _checks.finite(fn, name, value)
    return value


def factors(fn: str, name: str, value, *, points: int, device: torch.device) -> torch.Tensor:
    """Discrete factors ``[N, F]`` as int64, N matching the codes, each factor taking >= 2 values."""
    value = as_tensor(fn, name, value)
    if value.dim() != 2:
        raise ValueError(f"{fn}: {name} must be 2-D [N, F] (points x factors), got shape {tuple(value.shape)}")
    if value.shape[1] < 1:
        raise ValueError(f"{fn}: {name} needs at least one factor, got shape {tuple(value.shape)}")
    if value.shape[0] != points:
        raise ValueError(f"{fn}: {name} has {value.shape[0]} rows but the codes have {points}")
    if value.is_floating_point():
        if not bool(torch.all(value == torch.round(value))):
            raise TypeError(f"{fn}: {name} must hold integers (discrete factor values), got non-integral {value.dtype}")
    elif value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"{fn}: {name} must hold integers, got {value.dtype}")
    value = value.detach().to(device=device, dtype=torch.int64)
    single = [j for j in range(value.shape[1]) if bool(torch.all(value[:, j] == value[0, j]))]
    if single:
        raise ValueError(
            f"{fn}: factor column(s) {single} of {name} take a single value; the metrics need factors "
            "that vary (drop the constant columns)"
        )
    return value


def train_test(fn: str, codes_train, factors_train, codes_test, factors_test, *, min_latents: int = 1):
    """The four arrays of a train/test metric, checked together (same D, same F)."""
    train = codes(fn, "codes", codes_train, min_latents=min_latents)
    test = codes(fn, "test_codes", codes_test, min_latents=min_latents)
    if test.shape[1] != train.shape[1]:
        raise ValueError(f"{fn}: test_codes have {test.shape[1]} latents but codes have {train.shape[1]}")
    y_train = factors(fn, "factors", factors_train, points=train.shape[0], device=train.device)
    y_test = as_tensor(fn, "test_factors", factors_test)
    if y_test.dim() == 2 and y_test.shape[1] != y_train.shape[1]:
        raise ValueError(f"{fn}: test_factors have {y_test.shape[1]} factors but factors have {y_train.shape[1]}")
    y_test = _test_factors(fn, y_test, points=test.shape[0], device=train.device)
    return train, y_train, test.to(train.device), y_test


def _test_factors(fn: str, value: torch.Tensor, *, points: int, device) -> torch.Tensor:
    # A test split may be small and miss values, or hold a single one: only the shape and type matter.
    if value.dim() != 2:
        raise ValueError(f"{fn}: test_factors must be 2-D [N, F], got shape {tuple(value.shape)}")
    if value.shape[0] != points:
        raise ValueError(f"{fn}: test_factors has {value.shape[0]} rows but test_codes have {points}")
    if value.is_floating_point() and not bool(torch.all(value == torch.round(value))):
        raise TypeError(f"{fn}: test_factors must hold integers, got non-integral {value.dtype}")
    if value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"{fn}: test_factors must hold integers, got {value.dtype}")
    return value.detach().to(device=device, dtype=torch.int64)


def bins(fn: str, value) -> int:
    return _checks.integer(fn, "bins", value, low=1)


def numpy(value: torch.Tensor) -> np.ndarray:
    """A CPU numpy copy for scikit-learn."""
    return value.detach().cpu().numpy()
