"""IRS, the interventional robustness score (Suter et al. 2019)."""

from __future__ import annotations

import math

import torch

from .. import _checks
from . import _inputs
from ._threads import one_cpu_thread
from ._information import discretize, relabel

_FN = "latentsweep.metrics.irs"


@one_cpu_thread()
def irs(codes, factors, *, diff_quantile: float = 0.99, bins: int = 20) -> dict:
    """How robust each latent is to changes of the factors other than its own.

    Definition (as in disentanglement_lib's ``irs.py``, ``scalable_disentanglement_score``):
    each factor's values are relabelled 0..V-1 in sorted order and discretised into ``bins``
    equal-width histogram bins (every value its own bin when V <= ``bins``; the reference bins
    factor indices 0..V-1, so the score does not depend on how a factor's values are spaced),
    latents with zero variance are dropped. For latent ``d`` and factor ``f``:
    ``dev[d, f]`` is the mean over the values ``g`` of ``f`` of the ``diff_quantile``-quantile of
    ``|z_d - E[z_d | f = g]|`` over the points with ``f = g``; ``max_dev[d] = max |z_d - E z_d|``.
    ``IRS[d, f] = 1 - dev[d, f] / max_dev[d]``; each latent's score is ``max_f IRS[d, f]`` and the
    result is their average weighted by ``max_dev`` (plain mean if all are 0).

    Args:
        codes: ``[N, D]`` codes.
        factors: ``[N, F]`` integer factors.
        diff_quantile: the quantile of the deviations (``1.0`` is the paper's maximum; the
            reference's default is 0.99). Quantiles interpolate linearly, as ``np.percentile``.
        bins: histogram bins for the factors (study default 20; at most 100,000).

    Returns:
        dict with ``irs`` (float; 0 when every latent is constant), ``num_active_dims`` (int),
        ``per_latent`` (``[D_active]`` scores), ``parents`` (``[D_active]`` argmax factor) and
        ``active_dims`` (indices of the latents kept).

    Reference: R. Suter, Đ. Miladinović, B. Schölkopf, S. Bauer, "Robustly Disentangled Causal
    Mechanisms: Validating Deep Representations for Interventional Robustness", ICML 2019.
    """
    x = _inputs.codes(_FN, "codes", codes)
    y = _inputs.factors(_FN, "factors", factors, points=x.shape[0], device=x.device)
    bins = _inputs.bins(_FN, bins)
    q = _checks.real(_FN, "diff_quantile", diff_quantile, low=0.0, high=1.0)
    active = torch.nonzero(x.var(dim=0, correction=0) > 0).flatten()
    if active.numel() == 0:
        return {"irs": 0.0, "num_active_dims": 0, "per_latent": torch.zeros(0, dtype=torch.float64, device="cpu"),
                "parents": torch.zeros(0, dtype=torch.int64, device="cpu"), "active_dims": active.cpu()}
    z = x[:, active]
    y = discretize(relabel(y)[0].to(torch.float64), bins)
    max_dev = (z - z.mean(dim=0)).abs().amax(dim=0)
    deviations = torch.stack([_mean_group_quantile(z, y[:, f], q) for f in range(y.shape[1])], dim=1)
    matrix = 1.0 - deviations / max_dev[:, None]
    per_latent, parents = matrix.max(dim=1)
    if float(max_dev.sum()) > 0:
        score = float((per_latent * max_dev).sum() / max_dev.sum())
    else:
        score = float(per_latent.mean())
    return {"irs": score, "num_active_dims": int(active.numel()), "per_latent": per_latent.cpu(),
            "parents": parents.cpu(), "active_dims": active.cpu()}


def _mean_group_quantile(z: torch.Tensor, labels: torch.Tensor, q: float) -> torch.Tensor:
    """``[D]``: the mean over the groups of ``labels`` of the q-quantile (linear interpolation,
    as ``np.percentile``) of ``|z - group mean|`` per latent. A quantile needs only the two order
    statistics around its position, which ``topk`` finds without sorting the whole group."""
    _, group, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    sums = torch.zeros(counts.numel(), z.shape[1], dtype=z.dtype, device=z.device).index_add_(0, group, z)
    deviation = (z - (sums / counts[:, None])[group]).abs()
    grouped = deviation[torch.argsort(group, stable=True)].T.contiguous()  # [D, N], group by group
    total = torch.zeros(z.shape[1], dtype=z.dtype, device=z.device)
    for block, n in zip(grouped.split(counts.tolist(), dim=1), counts.tolist()):
        position = q * (n - 1)
        low = math.floor(position)
        high = min(low + 1, n - 1)
        if low >= (n - 1) / 2:  # the largest n - low values, ascending from the low-th
            top = torch.topk(block, n - low, dim=1, largest=True, sorted=True).values
            below, above = top[:, -1], top[:, -1 - (high - low)]
        else:  # the smallest high + 1 values
            top = torch.topk(block, high + 1, dim=1, largest=False, sorted=True).values
            below, above = top[:, low], top[:, high]
        total += torch.lerp(below, above, position - low)
    return total / counts.numel()
