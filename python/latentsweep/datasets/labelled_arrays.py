"""A ground-truth data set from a user's own observations and their factor labels."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import torch

from .. import _checks
from . import _protocol

_FN = "latentsweep.datasets.LabelledArrays"


def _array(name: str, value):
    """A tensor as it is; anything else as one numpy array (a ragged list is refused by name,
    not with numpy's "inhomogeneous shape")."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{_FN}: {name} must be a tensor or an array of numbers, got {type(value).__name__}")
    try:
        return np.asarray(value)
    except (ValueError, TypeError):
        raise ValueError(f"{_FN}: {name} must be a tensor or a rectangular array of numbers, got a "
                         f"{type(value).__name__} that is not one array (rows of different lengths?)") from None


class LabelledArrays:
    """Score a model on your own labelled data: every observation with its factor values.

    Args:
        observations: ``[N, ...]`` tensor or numpy array (float inputs of the encoder).
        factors: ``[N, F]`` integer factor values (any integers within int64's range, or floats
            holding such whole numbers; F >= 1).
        factor_names: optional F names (a list, tuple, array or any iterable of them).

    Sampling draws rows uniformly, so factors follow their empirical joint distribution;
    ``sample_factors_matching`` draws rows that share one factor value, which FactorVAE and
    BetaVAE use, so the factors need not be fully crossed. ``observations(factors)`` returns,
    for each factor row, one observation with exactly those values, drawn uniformly among the
    observations that have them (so rows drawn by ``sample_factors`` give observations drawn
    uniformly from the data); the draw is seeded by the factor values themselves, so the same
    factors give the same observations. A combination that does not occur raises ``ValueError``.

    The observations are kept as given, not copied (a large data set is not held twice): change
    them in place and the observations returned change too. The factors are copied.
    """

    def __init__(self, observations, factors, *, factor_names: Iterable[str] | None = None) -> None:
        from ..metrics import _inputs  # the metrics' checks of factor values (imported late: metrics imports datasets)

        obs = _inputs.as_tensor(_FN, "observations", _array("observations", observations))
        _checks.dense_values(_FN, "observations", obs)  # (meta: no values to encode)
        if obs.is_complex():  # (the encoder's inputs; a cast would keep the real parts)
            raise TypeError(f"{_FN}: observations must hold real numbers, got {obs.dtype}")
        labels = _inputs.as_tensor(_FN, "factors", _array("factors", factors))
        _checks.dense_values(_FN, "factors", labels)
        if obs.dim() < 1 or obs.shape[0] < 2:
            raise ValueError(f"{_FN}: observations must be [N, ...] with N >= 2, got shape {tuple(obs.shape)}")
        if labels.dim() != 2 or labels.shape[0] != obs.shape[0] or labels.shape[1] < 1:
            raise ValueError(
                f"{_FN}: factors must be [N, F] with N = {obs.shape[0]} (one row per observation), got {tuple(labels.shape)}"
            )
        labels = _inputs.integer_values(_FN, "factors", labels)
        _checks.finite(_FN, "observations", obs)  # (NaN images were blamed on the encoder: "NaN/Inf codes")
        if factor_names is not None:
            # (a generator of names was used up by the count and the names dropped; an int failed
            # in list(), a str was taken as one name per letter)
            if isinstance(factor_names, (str, bytes)) or not isinstance(factor_names, Iterable):
                raise TypeError(f"{_FN}: factor_names must be a list of F names, got {type(factor_names).__name__}")
            factor_names = [str(n) for n in factor_names]
            if len(factor_names) != labels.shape[1]:
                raise ValueError(f"{_FN}: factor_names has {len(factor_names)} names for {labels.shape[1]} factors")
        self._observations = obs
        # Its own copy: the rows below are indexed from these labels, so a caller changing their
        # tensor later must not change what sample_factors draws (int64 CPU labels were kept as is).
        self.labels = labels.to(torch.int64).cpu().clone()
        self._names = factor_names
        self._rows_of: dict[tuple, list[int]] = {}  # factor values -> the rows that have them
        for row, key in enumerate(map(tuple, self.labels.tolist())):
            self._rows_of.setdefault(key, []).append(row)

    @property
    def factor_sizes(self) -> list[int]:
        return [int(torch.unique(self.labels[:, j]).numel()) for j in range(self.labels.shape[1])]

    @property
    def factor_names(self) -> list[str]:
        return self._names or [f"factor {j}" for j in range(self.labels.shape[1])]

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __repr__(self) -> str:
        # (what evaluate records as its data: object.__repr__'s memory address changed every run)
        return (f"LabelledArrays({len(self)} observations {list(self._observations.shape[1:])}, factors "
                f"{self.factor_names} of sizes {self.factor_sizes})")

    def sample_factors(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = _checks.integer(f"{_FN}.sample_factors", "n", n, low=0)  # (1.5 was drawn as 1, -1 failed in torch)
        generator = _protocol.generator(f"{_FN}.sample_factors", generator)
        _checks.fits_in_memory(f"{_FN}.sample_factors", f"the factors [n={n}, F={self.labels.shape[1]}]",
                               n * self.labels.shape[1] * 8, torch.device("cpu"), "draw fewer")
        rows = torch.randint(self.labels.shape[0], (n,), generator=generator, device="cpu")
        return self.labels[rows]

    def sample_factors_matching(self, index: int, values: torch.Tensor, generator: torch.Generator | None = None):
        """Rows drawn uniformly among those whose factor ``index`` equals each of ``values``."""
        fn = f"{_FN}.sample_factors_matching"
        index = _checks.index(fn, "index", index, self.labels.shape[1], what="factor(s)")
        if not isinstance(values, torch.Tensor) or values.dim() != 1:
            raise TypeError(f"{fn}: values must be a 1-D tensor of factor values, got "
                            f"{tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__}")
        if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
            raise TypeError(f"{fn}: values must hold integers, got {values.dtype}")
        values = _protocol.factor_tensor(fn, "values", values)
        generator = _protocol.generator(fn, generator)
        column = self.labels[:, index]
        out = torch.empty(values.shape[0], self.labels.shape[1], dtype=torch.int64, device="cpu")
        for value in torch.unique(values):
            where = values == value
            candidates = torch.nonzero(column == value).flatten()
            if candidates.numel() == 0:
                raise ValueError(f"{_FN}: no observation has factor {index} = {int(value)}")
            pick = torch.randint(candidates.numel(), (int(where.sum()),), generator=generator, device="cpu")
            out[where] = self.labels[candidates[pick]]
        return out

    def observations(self, factors) -> torch.Tensor:
        if not isinstance(factors, torch.Tensor):  # (a wrong type, a numpy array too: was a ValueError)
            raise TypeError(f"{_FN}.observations: factors must be a torch.Tensor [n, {self.labels.shape[1]}], "
                            f"got {type(factors).__name__}")
        if factors.dim() != 2 or factors.shape[1] != self.labels.shape[1]:
            raise ValueError(f"{_FN}.observations: factors must be [n, {self.labels.shape[1]}], "
                             f"got shape {tuple(factors.shape)}")
        # (0.7 was truncated to 0: an observation of other factor values, without a word)
        factors = _protocol.factor_tensor(f"{_FN}.observations", "factors", factors)
        groups = []
        for key in map(tuple, factors.tolist()):
            group = self._rows_of.get(key)
            if group is None:
                raise ValueError(f"{_FN}.observations: no observation has the factor values {key}")
            groups.append(group)
        # One of the rows with those values, uniformly (the first one was always returned: a data
        # set of 3000 images with 12 factor combinations was scored on 12 images, and latents of
        # pure noise told the combinations apart as well as the factors' own: MIG 0.14, not 0.98).
        # Seeded by the factors, so that a seeded draw of factors gives the same observations.
        rows = [group[0] for group in groups]
        if any(len(group) > 1 for group in groups):
            digest = hashlib.blake2b(factors.numpy().tobytes(), digest_size=8).digest()
            generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
            uniform = torch.rand(len(groups), generator=generator, dtype=torch.float64, device="cpu").tolist()
            rows = [group[min(int(u * len(group)), len(group) - 1)] for group, u in zip(groups, uniform)]
        return self._observations[torch.tensor(rows, dtype=torch.int64, device="cpu")]
