"""MIG, the mutual information gap (Chen et al. 2018)."""

from __future__ import annotations

import torch

from . import _inputs
from ._threads import one_cpu_thread
from ._information import discretize, entropies, information

_FN = "latentsweep.metrics.mig"


@one_cpu_thread()
def mig(codes, factors, *, bins: int = 20) -> float:
    """The mutual information gap of codes with respect to discrete ground-truth factors.

    Definition (as in disentanglement_lib's ``mig.py``): each latent is discretised into ``bins``
    equal-width histogram bins (:func:`histogram_discretize`); ``I[d, f]`` is the discrete mutual
    information (nats) between latent ``d`` and factor ``f``, ``H[f]`` the factor's entropy; then

        MIG = mean_f (I_(1)[f] - I_(2)[f]) / H[f]

    with ``I_(1) >= I_(2)`` the two largest values of column ``f``. 1 when each factor is
    captured by exactly one latent, 0 when no latent stands out.

    Args:
        codes: ``[N, D]`` codes (the encoder means), torch or numpy, D >= 2.
        factors: ``[N, F]`` integer factor values, each factor taking at least two values.
        bins: histogram bins per latent (disentanglement_lib's study default: 20; at most 100,000).

    Returns:
        the score in [0, 1].

    Reference: R. T. Q. Chen, X. Li, R. Grosse, D. Duvenaud, "Isolating Sources of
    Disentanglement in Variational Autoencoders", NeurIPS 2018.
    """
    x = _inputs.codes(_FN, "codes", codes, min_latents=2)
    y = _inputs.factors(_FN, "factors", factors, points=x.shape[0], device=x.device)
    bins = _inputs.bins(_FN, bins)
    return _mig(information(discretize(x, bins), y), entropies(y))


def mig_from_mutual_information(mutual_info, factor_entropy) -> float:
    """MIG from a ``[D, F]`` MI matrix (finite, >= 0, D >= 2) and the ``[F]`` factor entropies
    (finite, > 0: a factor with one value has no information to capture), torch or numpy."""
    fn = "latentsweep.metrics.mig_from_mutual_information"
    m = _inputs.nonnegative(fn, "mutual_info", mutual_info, dims=2)
    h = _inputs.nonnegative(fn, "factor_entropy", factor_entropy, dims=1).to(m.device)
    if m.shape[0] < 2:
        raise ValueError(f"{fn}: mutual_info must be [D, F] with D >= 2 latents (MIG is a gap between "
                         f"the two most informative), got shape {tuple(m.shape)}")
    if h.shape[0] != m.shape[1]:
        raise ValueError(f"{fn}: factor_entropy has {h.shape[0]} entries for the {m.shape[1]} factors of mutual_info")
    if bool((h == 0).any()):
        raise ValueError(f"{fn}: factor_entropy must be > 0 (a factor with one value has no information "
                         f"to capture), got 0 for factor(s) {torch.nonzero(h == 0).flatten().tolist()}")
    return _mig(m, h)


def _mig(mutual_info: torch.Tensor, factor_entropy: torch.Tensor) -> float:
    top = torch.topk(mutual_info, 2, dim=0).values
    return float(((top[0] - top[1]) / factor_entropy).mean())
