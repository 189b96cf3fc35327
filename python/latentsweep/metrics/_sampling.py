"""Shared pieces of the metrics that draw interventions from a ground-truth data set."""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from ..datasets import _protocol

# Observations per representation call when votes are batched together.
DEFAULT_ENCODE_BATCH = 4096
# Observations per vote (disentanglement_lib's study setting for FactorVAE and BetaVAE).
VOTE_BATCH = 64


def generator(seed: int, stream: int) -> torch.Generator:
    """An independent CPU generator per (seed, stream), so metrics do not share draws."""
    state = np.random.SeedSequence([seed, stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def common(fn: str, *, seed, batch_size, num_train, num_eval, encode_batch_size) -> tuple:
    """The sampled scores' arguments checked: (seed, batch_size, num_train, num_eval, and
    encode_batch_size as a :class:`._representation.CallSize`: the representation's calls made
    fewer where they would not fit the memory, measured once for all of them). evaluate passes
    its own CallSize, so that one measure and its words serve both scores."""
    from ._representation import CallSize

    checked = (
        _checks.integer(fn, "seed", seed, low=0, high=2**63 - 1),
        _checks.integer(fn, "batch_size", batch_size, low=2),
        _checks.integer(fn, "num_train", num_train, low=1),
        _checks.integer(fn, "num_eval", num_eval, low=1),
        encode_batch_size if isinstance(encode_batch_size, CallSize) else
        CallSize(fn, _checks.integer(fn, "encode_batch_size", encode_batch_size, low=1), "encode_batch_size"),
    )
    votes_fit(fn, {"num_train": checked[2], "num_eval": checked[3]})
    return checked


# Bytes of each value the metrics hold per drawn row: int64 factors and labels, float64 codes.
VALUE_BYTES = 8
# A vote (or BetaVAE point) is at least its label and one value: FactorVAE's (factor, latent),
# the record disentanglement_lib draws; BetaVAE's label and its features (D >= 1).
VALUES_PER_VOTE = 2


def rows_fit(fn: str, counts: dict[str, int], values_per_row: int, what: str) -> None:
    """ValueError, before any work, when the ``[rows, values_per_row]`` 8-byte values a metric
    holds for the rows that ``counts`` (argument name -> value) ask for would not fit in memory
    (``_checks.fits_in_memory``): a size that cannot run is refused by name, instead of running
    for ever or being killed for memory hours later. ``what`` names the rows' values."""
    rows = sum(counts.values())
    nbytes = rows * values_per_row * VALUE_BYTES
    if nbytes <= _checks.UNCHECKED_BYTES:  # (no system call for the common, small case)
        return
    named = " and ".join(f"{name}={count}" for name, count in counts.items())
    _checks.fits_in_memory(fn, f"{named}: holding {what} [{rows}, {values_per_row}]", nbytes, torch.device("cpu"),
                           f"lower {'/'.join(counts)}")


def votes_fit(fn: str, counts: dict[str, int], values_per_vote: int = VALUES_PER_VOTE) -> None:
    """:func:`rows_fit` for the train and eval votes (or BetaVAE points) of a sampling metric;
    ``values_per_vote`` once the codes' D is known (BetaVAE holds D features a point)."""
    rows_fit(fn, counts, values_per_vote, "the votes' labels and values")


def points_fit(fn: str, counts: dict[str, int], num_factors: int, latents: int | None = None) -> None:
    """:func:`rows_fit` for drawn points held as factor rows ``[n, F]`` and codes ``[n, D]``
    (their observations are rendered and encoded a batch at a time): D >= 1 before the work,
    ``latents`` once the first batch gave it."""
    rows_fit(fn, counts, num_factors + (latents or 1),
             f"the factor rows (F={num_factors}) and codes (D{'=' if latents else ' >= '}{latents or 1})")


def draw_fits(fn: str, batch_size: int, num_factors: int, *, rows_per_vote: int) -> None:
    """:func:`rows_fit` for one draw of VOTES_PER_DRAW votes (or BetaVAE points), each of
    ``rows_per_vote`` x ``batch_size`` factor rows ``[F]`` and their codes (D >= 1): a batch_size
    beyond the memory was the allocator's RuntimeError from inside the draw."""
    rows_fit(fn, {"batch_size": batch_size}, VOTES_PER_DRAW * rows_per_vote * (num_factors + 1),
             f"the factor rows (F={num_factors}) and codes (D >= 1) of one draw of {VOTES_PER_DRAW} votes, "
             f"{rows_per_vote} x batch_size rows each")


def varying_factors(fn: str, data, sizes: list[int]) -> torch.Tensor:
    """The indices of the factors with two or more values: the factors an intervention may fix.
    Fixing a single-valued factor fixes nothing (every row shares it), so its votes would be
    noise; like disentanglement_lib's data sets, which leave such factors out, it is not drawn."""
    varying = [k for k, size in enumerate(sizes) if size > 1]
    if not varying:
        raise ValueError(f"{fn}: every factor of data takes a single value (factor_sizes {sizes}); nothing to score")
    if len(varying) < len(sizes) and not single_valued_named.set:
        names = _protocol.factor_names(data)
        _checks.warn(f"{fn}: factors {[names[k] for k in range(len(sizes)) if k not in varying]} take a "
                     "single value and are left out", UserWarning)
    return torch.tensor(varying, dtype=torch.int64, device="cpu")


# evaluate names the single-valued factors once itself.
single_valued_named = _checks.ThreadFlag()


# Votes drawn together: fixed, so that the draws (and the scores) do not depend on how the
# observations are then split into representation calls.
VOTES_PER_DRAW = 64
