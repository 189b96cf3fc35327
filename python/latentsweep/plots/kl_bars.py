"""KL per latent as bars, coloured by whether the latent is used (active) or collapsed."""

from __future__ import annotations

import numpy as np

from .. import _checks
from . import _common
from ..diagnosis import COLLAPSED_KL
from ..latent_shape import latent_label

_FN = "latentsweep.plots.kl_bars"
_COLOURS = {"active": "tab:blue", "inactive": "tab:orange", "collapsed": "0.75"}
_LEGEND = {
    "active": "active (Var(mu) > 0.01)",
    "inactive": "inactive, KL >= 0.01",
    "collapsed": "collapsed (inactive, KL < 0.01)",
}


# On a linear axis the collapse threshold must sit at least this high (a fraction of the axis)
# to be seen; below that the axis turns logarithmic.
VISIBLE_FRACTION = 0.04


def kl_bars(diagnosis, *, log: bool | None = None, title: str | None = None, path=None):
    """Draws the mean KL of each latent (``diagnosis.kl``, nats) as one bar per dim.

    Active dims are blue; collapsed dims (the ``collapsed`` flag: posterior = prior, nothing
    encoded) are grey, hatched and labelled; inactive dims with some KL are orange. A dashed
    line marks the collapse threshold.

    Args:
        diagnosis: the :class:`Diagnosis` of a VAE (a plain autoencoder has no KL).
        log: a logarithmic y axis (shows tiny KLs of collapsed dims); default: when the
            collapse threshold would sit too low on a linear axis to be seen.
        title: the figure's title (default: total KL and active units).
        path: also save the figure there.

    Returns:
        a matplotlib ``Figure`` with one axes holding D bars (x tick labels ``z<dim>``).
    """
    path = _common.output_path(_FN, path)
    _common.check_title(_FN, title)
    diagnosis = _common.check_diagnosis(_FN, diagnosis)
    if diagnosis is None:
        raise TypeError(f"{_FN}: diagnosis must be a latentsweep.Diagnosis, got None")
    if not diagnosis.is_variational:
        raise ValueError(f"{_FN}: a plain autoencoder (no logvar) has no KL per dim to draw")
    kl = diagnosis.kl.numpy()
    active = diagnosis.active.numpy()
    collapsed = np.zeros_like(active)
    flag = diagnosis.flag("collapsed")
    if flag is not None:
        collapsed[flag.dims] = True
    kinds = np.where(active, "active", np.where(collapsed, "collapsed", "inactive"))
    heights = np.nan_to_num(kl, nan=0.0)
    if log is None:
        log = COLLAPSED_KL < VISIBLE_FRACTION * 1.15 * float(heights.max(initial=0.0))
    _checks.boolean(_FN, "log", log)
    positive = heights[heights > 0]
    # The log axis starts a decade under the threshold (or the smallest KL): exact zeros sit
    # on the bottom edge instead of dropping off an infinitely deep axis.
    floor = min(COLLAPSED_KL, float(positive.min()) if positive.size else COLLAPSED_KL) / 10

    dims = np.arange(diagnosis.latent_dim)
    many = len(dims) > _common.DEFAULT_MAX_PANELS  # thin bars: no outlines, notes or every label
    figure = _common.new_figure(min(max(5.0, 0.32 * len(dims) + 2.0) + 2.4, _common.MAX_FIGURE_INCHES), 3.6)
    ax = figure.add_subplot()
    for kind in ("active", "inactive", "collapsed"):
        chosen = kinds == kind
        if chosen.any():
            ax.bar(dims[chosen], np.maximum(heights[chosen], floor) if log else heights[chosen],
                   color=_COLOURS[kind], edgecolor="none" if many else "0.3", lw=0.5,
                   hatch="//" if kind == "collapsed" else None, label=_LEGEND[kind])
    ax.axhline(COLLAPSED_KL, color="tab:red", ls="--", lw=1.5, label=f"collapse threshold ({COLLAPSED_KL:g} nats)")
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
    for d in dims[collapsed] if not many else ():
        ax.annotate("collapsed", (d, max(heights[d], COLLAPSED_KL if not log else floor)), xytext=(0, 3), textcoords="offset points",
                    rotation=90, ha="center", va="bottom", fontsize=7, color="0.35")
    for d in dims[np.isnan(kl)]:
        ax.annotate("n/a", (d, 0), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=7)
    labelled = dims[:: -(-len(dims) // _common.DEFAULT_MAX_PANELS)]  # every k-th latent when there are many
    ax.set_xticks(labelled, [latent_label(int(d), diagnosis.latent_shape) for d in labelled], fontsize=8,
                  rotation=90 if len(labelled) > 24 else 0)
    ax.set_xlabel("latent")
    ax.set_ylabel("KL(q(z_d|x) || p(z_d)), nats")
    ax.margins(y=0.15)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never hides a bar
    ax.set_title(
        title
        if title is not None
        else f"KL per latent: total {diagnosis.total_kl:.3g} nats, {diagnosis.num_active}/{diagnosis.latent_dim} active"
    )
    return _common.finish(figure, path, fn=_FN)
