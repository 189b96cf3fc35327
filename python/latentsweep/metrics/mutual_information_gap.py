"""MIG, the mutual information gap (Chen et al. 2018)."""

from __future__ import annotations

import math

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
    """MIG from ``mutual_info``, a ``[D, F]`` MI matrix (finite, >= 0, D >= 2), and
    ``factor_entropy``, the ``[F]`` factor entropies (finite, > 0: a factor with one value has no
    information to capture; at least the smallest normal float64, 2.2e-308), torch or numpy. A
    score that overflows float64 is a ValueError."""
    fn = "latentsweep.metrics.mig_from_mutual_information"
    m = _inputs.nonnegative(fn, "mutual_info", mutual_info, dims=2)
    h = _inputs.nonnegative(fn, "factor_entropy", factor_entropy, dims=1).to(m.device)
    if m.shape[0] < 2 or m.shape[1] < 1:
        raise ValueError(f"{fn}: mutual_info must be [D, F] with D >= 2 latents (MIG is a gap between "
                         f"the two most informative) and F >= 1 factors, got shape {tuple(m.shape)}")
    if h.shape[0] != m.shape[1]:
        raise ValueError(f"{fn}: factor_entropy has {h.shape[0]} entries for the {m.shape[1]} factors of mutual_info")
    # A subnormal entropy (1e-320) turns any gap into inf: the smallest normal float64 is the floor.
    tiny = torch.finfo(torch.float64).tiny
    if bool((h < tiny).any()):
        bad = torch.nonzero(h < tiny).flatten().tolist()
        raise ValueError(f"{fn}: factor_entropy must be > 0 (a factor with one value has no information "
                         f"to capture) and at least {tiny:.4g} (the smallest normal float64), got "
                         f"{float(h[bad[0]]):g} for factor(s) {bad}")
    score = _mig(m, h)
    if not math.isfinite(score):  # a gap far above its entropy (the MI is at most the entropy)
        gaps = torch.topk(m, 2, dim=0).values
        ratio = (gaps[0] - gaps[1]) / h
        f = int(torch.argmax(ratio))
        raise ValueError(f"{fn}: the gaps of mutual_info over factor_entropy overflow float64 (factor {f}: a gap "
                         f"of {float(gaps[0, f] - gaps[1, f]):g} nats over an entropy of {float(h[f]):g}); a "
                         "latent's mutual information with a factor is at most the factor's entropy")
    return score


def _mig(mutual_info: torch.Tensor, factor_entropy: torch.Tensor) -> float:
    top = torch.topk(mutual_info, 2, dim=0).values
    return float(((top[0] - top[1]) / factor_entropy).mean())
