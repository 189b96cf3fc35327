"""Shared pieces of the metrics that draw interventions from a ground-truth data set."""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks

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


# Votes drawn together: fixed, so that the draws (and the scores) do not depend on how the
# observations are then split into representation calls.
VOTES_PER_DRAW = 64
