"""How much each latent moves the output, per traversal: grouped bars that contrast, say, a
traversal by the prior with one by the posterior of the same anchors."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import _checks
from ..result import TraversalResult
from . import _common

_FN = "latentsweep.plots.effect_bars"


def effect_bars(results, *, log: bool | None = None, title: str | None = None, path=None):
    """Draws ``dim_effect`` (mean |x - x_anchor| over anchors, steps and features) per latent
    (or direction), one group of bars per latent and one bar per traversal; groups are named by
    the results' ``labels`` (latents by index; directions by label).

    Args:
        results: a :class:`TraversalResult`, or a mapping name -> TraversalResult (e.g.
            ``{"prior": ..., "posterior": ...}``).
        log: a logarithmic y axis; default: when the effects span more than 100x.
        title: the figure's title.
        path: also save the figure there.

    Returns:
        a matplotlib ``Figure`` with one axes (x tick labels: the labels, one legend entry per
        traversal).
    """
    path = _common.output_path(_FN, path)
    named = named_results(_FN, results)
    keys, labels = _groups(named)
    effects = {}
    for name, result in named.items():
        by_key = dict(zip(_keys(result), _common.as_array(result.dim_effect).tolist()))
        effects[name] = np.array([by_key.get(key, np.nan) for key in keys])
    positive = np.concatenate([e[np.isfinite(e) & (e > 0)] for e in effects.values()])
    if log is None:
        log = bool(positive.size > 0 and positive.max() > 100 * positive.min())
    _checks.boolean(_FN, "log", log)

    figure = _common.new_figure(max(5.0, 0.3 * len(keys) * len(named) + 2.5), 3.6)
    ax = figure.add_subplot()
    width = 0.8 / len(named)
    x = np.arange(len(keys))
    floor = positive.min() / 2 if log and positive.size else 0.0
    for i, (name, effect) in enumerate(effects.items()):
        heights = np.where(np.isfinite(effect), np.maximum(effect, floor), 0.0)
        ax.bar(x + (i - (len(named) - 1) / 2) * width, heights, width, label=name)
    if log:
        ax.set_yscale("log")
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
    """What makes two results' bars the same group: the latent index, or the direction's label."""
    if result.directions is None:
        return [("latent", int(d)) for d in result.dims.tolist()]
    return [("direction", label) for label in result.labels]


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
    elif isinstance(results, TraversalResult):
        named = {results.mode: results}
    else:
        raise TypeError(f"{fn}: results must be a TraversalResult or a mapping name -> TraversalResult, "
                        f"got {type(results).__name__}")
    for name, result in named.items():
        _common.check_result(f"{fn} (results[{name!r}])", result)
    return named
