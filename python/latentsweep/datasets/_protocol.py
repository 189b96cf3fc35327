"""What the sampling metrics need from a ground-truth data set, checked in one place.

A ground-truth data set is any object with

- ``factor_sizes``: list of ints, the number of values of each of the F factors;
- ``sample_factors(n, generator) -> [n, F]`` int64 tensor, drawn with the ``torch.Generator``;
- ``observations(factors) -> Tensor [n, ...]``: one observation per row of factors;

and optionally ``factor_names`` (list of str) and
``sample_factors_matching(index, values, generator) -> [n, F]``: rows whose factor ``index``
equals ``values [n]``, drawn from the data set's distribution given that factor. Data sets whose
factors are not all crossed (a user's labelled arrays) need it for FactorVAE/BetaVAE; without it
the other factors are drawn with ``sample_factors`` and the column is overwritten (the
disentanglement_lib convention for fully crossed data such as dSprites).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks


def generator(fn: str, value) -> torch.Generator | None:
    """``None`` (torch's global generator) or a CPU ``torch.Generator``, what the data sets draw
    with (an int seed, a numpy Generator or a str failed inside ``torch.randint``)."""
    if value is None:
        return None
    if not isinstance(value, torch.Generator):
        kind = type(value)
        kind = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        raise TypeError(f"{fn}: generator must be a torch.Generator or None, got {kind} "
                        "(for a seed: torch.Generator().manual_seed(seed))")
    if value.device.type != "cpu":
        raise ValueError(f"{fn}: generator must be a CPU torch.Generator (the factors are drawn on the CPU), "
                         f"got one on {value.device}")
    return value


def factor_tensor(fn: str, name: str, value) -> torch.Tensor:
    """Integer factor values that can be read, as int64 on the CPU: a dense tensor off the meta
    device (else TypeError/ValueError by name, not torch's "Cannot copy out of meta tensor"),
    integers (complex ones were cast to their real parts), uint64 within int64's range (a cast
    wrapped 2**63 to -2**63: a wrong value in the message, or torch's overflow error)."""
    value = _checks.dense_values(fn, name, value)
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{fn}: {name} must be integers, got {value.dtype}")
    if (largest := _checks.uint64_beyond_int64(value)) is not None:
        raise ValueError(f"{fn}: {name} must lie within int64's range, got a value of {largest}")
    return value.detach().cpu().to(torch.int64)


def check(fn: str, data) -> list[int]:
    """The data set's factor sizes after checking that it offers the protocol."""
    missing = [name for name in ("factor_sizes", "sample_factors", "observations") if not hasattr(data, name)]
    if missing:
        raise TypeError(
            f"{fn}: data must be a ground-truth data set with factor_sizes, sample_factors(n, generator) "
            f"and observations(factors); {type(data).__name__} lacks {', '.join(missing)}"
        )
    sizes = list(data.factor_sizes)
    # (numpy's integers too, as every other check takes them; as Python ints from here on)
    if not sizes or any(not isinstance(s, int | np.integer) or isinstance(s, bool | np.bool_) or s < 1 for s in sizes):
        raise ValueError(f"{fn}: data.factor_sizes must be a non-empty list of ints >= 1, got {sizes}")
    sizes = [int(s) for s in sizes]
    return sizes


def factor_names(data) -> list[str]:
    names = getattr(data, "factor_names", None)
    sizes = list(data.factor_sizes)
    if names is None or len(list(names)) != len(sizes):
        return [f"factor {j}" for j in range(len(sizes))]
    return [str(n) for n in names]


def sample_factors(fn: str, data, n: int, generator: torch.Generator) -> torch.Tensor:
    factors = data.sample_factors(n, generator)
    return _checked(fn, "sample_factors", factors, n, len(data.factor_sizes))


def sample_factors_matching(fn: str, data, index: int, values: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``[n, F]`` factors whose column ``index`` equals ``values``."""
    if hasattr(data, "sample_factors_matching"):
        factors = data.sample_factors_matching(index, values, generator)
        factors = _checked(fn, "sample_factors_matching", factors, values.shape[0], len(data.factor_sizes))
        if not bool(torch.equal(factors[:, index], values)):
            raise ValueError(f"{fn}: data.sample_factors_matching returned rows whose factor {index} differs from the request")
        return factors
    factors = sample_factors(fn, data, values.shape[0], generator).clone()
    factors[:, index] = values
    return factors


def observations(fn: str, data, factors: torch.Tensor) -> torch.Tensor:
    obs = data.observations(factors)
    if not isinstance(obs, torch.Tensor):
        raise TypeError(f"{fn}: data.observations must return a torch.Tensor, got {type(obs).__name__}")
    if obs.dim() < 1 or obs.shape[0] != factors.shape[0]:
        raise ValueError(f"{fn}: data.observations returned shape {tuple(obs.shape)} for {factors.shape[0]} factor rows")
    return obs


def _checked(fn: str, what: str, factors, n: int, num_factors: int) -> torch.Tensor:
    if not isinstance(factors, torch.Tensor):
        raise TypeError(f"{fn}: data.{what} must return a torch.Tensor, got {type(factors).__name__}")
    if tuple(factors.shape) != (n, num_factors):
        raise ValueError(f"{fn}: data.{what} returned shape {tuple(factors.shape)}, expected ({n}, {num_factors})")
    if factors.is_floating_point() or factors.dtype == torch.bool:
        raise TypeError(f"{fn}: data.{what} must return integer factors, got {factors.dtype}")
    return factors.to(torch.int64)
