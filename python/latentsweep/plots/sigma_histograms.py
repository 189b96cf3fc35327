"""Per-latent histograms of the posterior SD against the prior SD: the picture that explains why
a traversal of +/- 2 posterior SDs moves nothing."""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import _checks
from . import _common
from ..latent_shape import latent_label
from ..posterior import Posterior

_FN = "latentsweep.plots.sigma_histograms"
# The x axis' widest range: beyond it matplotlib's log tick labels overflow float64 while saving.
# (prior_std lies well inside: see _checks.PRIOR_STD_RANGE.)
SD_AXIS = (1e-150, 1e150)


def sigma_histograms(
    posterior,
    *,
    prior_std: float | None = None,
    diagnosis=None,
    dims=None,
    order: str = "dims",
    max_dims: int | None = None,
    bins: int = 30,
    ncols: int = 4,
    title: str | None = None,
    path=None,
):
    """One histogram per latent of sigma_d = exp(logvar_d / 2) over the inputs, on a log axis,
    with a vertical line at the prior SD.

    When the mass sits far left of the line, the encoder is certain on that latent: a
    traversal of +/- k posterior SDs covers a sliver of the range the decoder knows, so the
    output hardly changes; traverse by the prior instead.

    Args:
        posterior: a :class:`Posterior` with ``logvar`` ``[N, D]`` (e.g. from
            :func:`latentsweep.encode`).
        prior_std: the prior's SD (default: ``diagnosis.prior_std``, else 1).
        diagnosis: the :class:`Diagnosis` of this posterior, for ``order="kl"``.
        dims: the latents to draw (default all).
        order: ``"dims"`` (ascending) or ``"kl"`` (largest KL first; needs ``diagnosis``).
        max_dims: draw only the first ``max_dims`` of that order.
        bins: histogram bins (log-spaced over the shared x range), 1 to 10,000.
        ncols: panels per row.
        title: the figure's title.
        path: also save the figure there.

    Returns:
        a matplotlib ``Figure`` with one axes per drawn latent (titled ``z<dim>``), each with
        the histogram, the prior SD line and the median posterior SD line.
    """
    path = _common.output_path(_FN, path)
    _common.check_title(_FN, title)
    if not isinstance(posterior, Posterior):
        raise TypeError(f"{_FN}: posterior must be a latentsweep.Posterior, got {type(posterior).__name__}")
    if posterior.logvar is None:
        raise ValueError(f"{_FN}: this posterior has no logvar (a plain autoencoder), so it has no posterior SD to draw")
    _checks.dense_values(_FN, "posterior.logvar", posterior.logvar)
    diagnosis = _common.check_diagnosis(_FN, diagnosis, latent_dim=posterior.latent_dim)
    if prior_std is None:
        prior_std = diagnosis.prior_std if diagnosis is not None else 1.0
    prior_std = _checks.prior_std(_FN, prior_std)
    bins = _checks.integer(_FN, "bins", bins, low=1, high=10_000)  # beyond that: no picture, just memory
    ncols = _checks.integer(_FN, "ncols", ncols, low=1)
    max_dims = _checks.optional_integer(_FN, "max_dims", max_dims, low=1)
    _checks.choice(_FN, "order", order, ("dims", "kl"))

    latent_dim = posterior.latent_dim
    chosen = _chosen_dims(dims, latent_dim)
    if order == "kl":
        if diagnosis is None or not diagnosis.is_variational or diagnosis.latent_dim != latent_dim:
            raise ValueError(f"{_FN}: order='kl' needs diagnosis=latentsweep.diagnose(posterior)")
        kl = np.nan_to_num(diagnosis.kl.numpy(), nan=-np.inf)
        chosen = sorted(chosen, key=lambda d: -kl[d])
    chosen = chosen[: _common.panel_limit(_FN, len(chosen), max_dims, "latent")]

    # Only the drawn latents' columns in float64 (all D of them took 2 x 8 bytes a value: +4.7 GB
    # at N = 50,000, D = 4,096 to draw 48 panels)
    columns = torch.tensor(chosen, dtype=torch.long, device=posterior.logvar.device)
    logvar = posterior.logvar.detach().index_select(1, columns).to("cpu", torch.float64).numpy()  # [N, drawn]
    with np.errstate(over="ignore", under="ignore"):  # (counted and said below)
        shown = np.exp(0.5 * logvar)
    lost = int(np.sum(~((shown > 0) & np.isfinite(shown)) & np.isfinite(logvar)))
    if lost:  # exp(logvar / 2) beyond float64 (logvar > 1419 or < -1490): no point of the log axis
        _checks.warn(f"{_FN}: {lost} posterior SD(s) exp(logvar / 2) are beyond float64's range (finite logvar "
                     "above 1419 or below -1490) and are left out of the histograms", UserWarning)
    finite = shown[np.isfinite(shown) & (shown > 0)]
    low = min(float(finite.min()) if finite.size else prior_std, prior_std) / 1.5
    high = max(float(finite.max()) if finite.size else prior_std, prior_std) * 1.5
    far = int(np.sum((finite < SD_AXIS[0]) | (finite > SD_AXIS[1])))
    if far:  # (a log axis to 1e217, logvar 1000, failed in matplotlib's tick labels while saving)
        _checks.warn(f"{_FN}: {far} posterior SD(s) lie beyond [{SD_AXIS[0]:g}, {SD_AXIS[1]:g}], the axis' range; "
                     "they are counted in its end bins", UserWarning)
        low, high = max(low, SD_AXIS[0]), min(high, SD_AXIS[1])
    edges = np.geomspace(low, high, bins + 1)

    from matplotlib.ticker import NullFormatter

    count = len(chosen)
    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    figure = _common.new_figure(3.0 * ncols + 0.6, 2.4 * nrows + 1.0)
    axes = figure.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= count:
            ax.remove()  # unused cell of the last row
            continue
        d = chosen[i]
        values = shown[:, i][np.isfinite(shown[:, i])]
        ax.hist(np.clip(values, low, high), bins=edges, color="tab:blue", alpha=0.8)
        ax.axvline(prior_std, color="tab:red", lw=2, label=f"prior SD {prior_std:g}")
        median = float(np.median(values)) if values.size else math.nan
        if math.isfinite(median):
            ax.axvline(min(max(median, low), high), color="black", ls="--", lw=1, label="median posterior SD")
        ax.set_xscale("log")
        ax.set_xlim(low, high)  # the same range on every panel, so they compare at a glance
        # Major (decade) labels only: minor log ticks cost much layout time and add clutter.
        ax.xaxis.set_minor_formatter(NullFormatter())
        ratio = f" ({median / prior_std:.2g}× prior)" if math.isfinite(median) else ""
        ax.set_title(f"{latent_label(d, posterior.latent_shape)}: median σ {median:.2g}{ratio}", fontsize=9)
        ax.set_xlabel("posterior SD σ (log scale)", fontsize=8)
        ax.set_ylabel("inputs", fontsize=8)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left")
    figure.suptitle(
        title
        if title is not None
        else f"Posterior SD σ per latent (blue) against the prior SD {prior_std:g} (red): where σ is far "
        "below it, ± 2 posterior SDs moves z by a sliver of the prior's range",
        fontsize=10,
    )
    return _common.finish(figure, path, fn=_FN)


def _chosen_dims(dims, latent_dim: int) -> list[int]:
    if dims is None:
        return list(range(latent_dim))
    return _checks.dims(_FN, dims, latent_dim, torch.device("cpu")).tolist()
