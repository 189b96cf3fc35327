"""Shared pieces of the metrics that draw interventions from a ground-truth data set."""

from __future__ import annotations


import numpy as np
import torch

from .. import _checks
from ..datasets import _protocol

# Observations per representation call when votes are batched together.
DEFAULT_ENCODE_BATCH = 4096


def generator(seed: int, stream: int) -> torch.Generator:
    """An independent CPU generator per (seed, stream), so metrics do not share draws."""
    state = np.random.SeedSequence([seed, stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def common(fn: str, *, seed, batch_size, num_train, num_eval, encode_batch_size) -> tuple[int, int, int, int, int]:
    return (
        _checks.integer(fn, "seed", seed, low=0, high=2**63 - 1),
        _checks.integer(fn, "batch_size", batch_size, low=2),
        _checks.integer(fn, "num_train", num_train, low=1),
        _checks.integer(fn, "num_eval", num_eval, low=1),
        _checks.integer(fn, "encode_batch_size", encode_batch_size, low=1),
    )


def varying_factors(fn: str, data, sizes: list[int]) -> torch.Tensor:
    """The indices of the factors with two or more values: the factors an intervention may fix.
    Fixing a single-valued factor fixes nothing (every row shares it), so its votes would be
    noise; like disentanglement_lib's data sets, which leave such factors out, it is not drawn."""
    varying = [k for k, size in enumerate(sizes) if size > 1]
    if not varying:
        raise ValueError(f"{fn}: every factor of data takes a single value (factor_sizes {sizes}); nothing to score")
    if len(varying) < len(sizes):
        names = _protocol.factor_names(data)
        _checks.warn(f"{fn}: factors {[names[k] for k in range(len(sizes)) if k not in varying]} take a "
                     "single value and are left out", UserWarning)
    return torch.tensor(varying, dtype=torch.int64)


# Votes drawn together: fixed, so that the draws (and the scores) do not depend on how the
# observations are then split into representation calls.
VOTES_PER_DRAW = 64
