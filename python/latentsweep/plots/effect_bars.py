"""How much each latent moves the output, per traversal: grouped bars that contrast, say, a
traversal by the prior with one by the posterior of the same anchors."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import _checks
from ..result import TraversalResult
from . import _common

_FN = "latentsweep.plots.effect_bars"


def effect_bars(results, *, log: bool | None = None, max_dims: int | None = None, title: str | None = None,
                path=None):
    """Draws ``dim_effect`` (mean |x - x_anchor| over anchors, steps and features) per latent
    (or direction), one group of bars per latent and one bar per traversal; groups are named by
    the results' ``labels`` (latents by index; directions by label).

    Args:
        results: a :class:`TraversalResult`, or a mapping name -> TraversalResult (e.g.
            ``{"prior": ..., "posterior": ...}``).
        log: a logarithmic y axis; default: when the effects span more than 100x.
        max_dims: at most this many groups, those with the largest effect, in their order
            (``None``: at most 48, with a warning when there are more).
        title: the figure's title.
        path: also save the figure there.

    Returns:
        a matplotlib ``Figure`` with one axes (x tick labels: the labels, one legend entry per
        traversal).
    """
    path = _common.output_path(_FN, path)
    _common.check_title(_FN, title)
    max_dims = _checks.optional_integer(_FN, "max_dims", max_dims, low=1)
    named = named_results(_FN, results)
    keys, labels = _groups(named)
    effects = {}
    for name, result in named.items():
        where = f"results[{name!r}].dim_effect" if isinstance(results, Mapping) else "result.dim_effect"
        dim_effect = _common.finite_result_values(_FN, where, _common.as_array(result.dim_effect))
        by_key = dict(zip(_keys(result), dim_effect.tolist()))
        effects[name] = np.array([by_key.get(key, np.nan) for key in keys])
    limit = _common.panel_limit(_FN, len(keys), max_dims, "bar group")
    if limit is not None and limit < len(keys):  # (2000 latents were a 602-inch figure)
        largest = np.nan_to_num(np.fmax.reduce(np.stack(list(effects.values()))), nan=-np.inf)
        kept = np.sort(np.argsort(-largest, kind="stable")[:limit])
        keys, labels = [keys[i] for i in kept], [labels[i] for i in kept]
        effects = {name: effect[kept] for name, effect in effects.items()}
    positive = np.concatenate([e[np.isfinite(e) & (e > 0)] for e in effects.values()])
    if log is None:
        log = bool(positive.size > 0 and positive.max() > 100 * positive.min())
    _checks.boolean(_FN, "log", log)
    log = log and positive.size > 0  # (a log axis of zeros only: matplotlib's "no positive values" warning)

    figure = _common.new_figure(min(max(5.0, 0.3 * len(keys) * len(named) + 2.5), _common.MAX_FIGURE_INCHES), 3.6)
    ax = figure.add_subplot()
    width = 0.8 / len(named)
    x = np.arange(len(keys))
    floor = positive.min() / 2 if log and positive.size else 0.0
    for i, (name, effect) in enumerate(effects.items()):
        heights = np.where(np.isfinite(effect), np.maximum(effect, floor), 0.0)
        ax.bar(x + (i - (len(named) - 1) / 2) * width, heights, width, label=_common.short_label(name))
    if log:
        ax.set_yscale("log")
    if not positive.size:  # (bars of height 0 are not drawn: constant outputs gave an empty chart)
        ax.set_ylim(0.0, 1.0)
        ax.text(0.5, 0.5, "every effect is 0: no traversal changes the output", transform=ax.transAxes,
                ha="center", va="center", color="0.35")
    labels = [_common.short_label(label) for label in labels]
    long = len(keys) > 24 or max(map(len, labels)) * len(keys) > 120
    ax.set_xticks(x, labels, fontsize=8, rotation=90 if long else 0)
    nouns = sorted({_common.traversal_noun(r) for r in named.values()}, reverse=True)
    ax.set_xlabel(" / ".join(nouns))
    ax.set_ylabel("mean |x - x_anchor| (dim_effect)")
    if len(named) > 1:
        ax.legend(title="traversal", fontsize=8)
    ax.set_title(title if title is not None else f"How much each {' or '.join(nouns)} moves the output")
    return _common.finish(figure, path, fn=_FN)


def _keys(result) -> list:
    """What makes two results' bars the same group: the latent index, or the direction itself
    (its label and vector: two sets' "u0" may be different directions) and, for repeats within
    one result, which repeat it is (a second "same" replaced the first's bar)."""
    if result.directions is None:
        return [("latent", int(d)) for d in result.dims.tolist()]
    seen: dict = {}
    keys = []
    for label, vector in zip(result.labels, result.directions.detach().cpu().double()):
        direction = (label, vector.numpy().tobytes())
        seen[direction] = seen.get(direction, -1) + 1
        keys.append(("direction", *direction, seen[direction]))
    return keys


def _groups(named: dict) -> tuple[list, list[str]]:
    """The groups of bars (latents by index, then directions as first met) and their labels."""
    labels = {}
    for result in named.values():
        for key, label in zip(_keys(result), result.labels):
            labels.setdefault(key, label)
    latents = sorted(key for key in labels if key[0] == "latent")
    keys = latents + [key for key in labels if key[0] == "direction"]
    return keys, [labels[key] for key in keys]


def named_results(fn: str, results) -> dict:
    """A TraversalResult or a mapping name -> TraversalResult, as a non-empty dict."""
    if isinstance(results, Mapping):
        named = {str(name): result for name, result in results.items()}
        if not named:
            raise ValueError(f"{fn}: results is empty")
        if len(named) < len(results):  # ({1: a, "1": b}: one name, one result lost)
            names = [str(name) for name in results]
            raise ValueError(f"{fn}: results has names that read the same: {sorted({n for n in names if names.count(n) > 1})}")
    elif isinstance(results, TraversalResult):
        named = {results.mode: results}
    else:
        raise TypeError(f"{fn}: results must be a TraversalResult or a mapping name -> TraversalResult, "
                        f"got {type(results).__name__}")
    for name, result in named.items():
        _common.check_result(f"{fn} (results[{name!r}])", result)
    return named
