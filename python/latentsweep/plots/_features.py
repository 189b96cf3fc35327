"""Output features of tabular results: their names, and which few to draw when there are many."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .. import _checks
from . import _common

MAX_CURVE_FEATURES = 10  # response curves stay readable up to about this many lines per panel


def feature_name_list(fn: str, feature_names, num_features: int | None = None) -> list[str]:
    """The names as strings, type-checked (a generator is read once); their number is checked
    by :func:`feature_labels` (``num_features`` only words the message)."""
    if isinstance(feature_names, (str, bytes)) or not isinstance(feature_names, Iterable):
        what = "one string" if isinstance(feature_names, (str, bytes)) else type(feature_names).__name__
        count = "" if num_features is None else f"{num_features} "
        raise TypeError(f"{fn}: feature_names must be a sequence of {count}names, got {what}")
    try:
        return [str(n) for n in feature_names]
    except TypeError:  # (a 0-d tensor is Iterable, and raises "iteration over a 0-d tensor")
        raise TypeError(f"{fn}: feature_names must be a sequence of names, got {feature_names!r:.80}") from None


def feature_labels(fn: str, feature_names, num_features: int) -> list[str]:
    """``num_features`` names: the given ones (checked) or ``f0, f1, ...``."""
    if feature_names is None:
        return [f"f{i}" for i in range(num_features)]
    names = feature_name_list(fn, feature_names, num_features)
    if len(names) != num_features:
        raise ValueError(
            f"{fn}: feature_names has {len(names)} names but the decoder outputs {num_features} features"
        )
    return names


def check_feature_names_fit(fn: str, feature_names, out_shape, *, drawn_as_images: bool) -> None:
    """The report's rule for ``feature_names``: they name the features of tabular outputs, as
    many as the outputs have; outputs drawn as images have none to name (the names were ignored
    there, while the command line refused them)."""
    if feature_names is None:
        return
    if drawn_as_images:
        raise ValueError(f"{fn}: feature_names names the features of tabular outputs, but these outputs (shape "
                         f"{list(out_shape)} per code) are drawn as images; leave feature_names out")
    feature_labels(fn, feature_names, math.prod(out_shape))


def pick_features(fn: str, features, names: list[str], sensitivity, max_features: int) -> list[int]:
    """Indices of the features to draw: ``features`` (indices or names) when given; else all of
    them, or the ``max_features`` that the drawn latents move most (by summed sensitivity)."""
    max_features = _checks.integer(fn, "max_features", max_features, low=1)
    if features is None:
        if len(names) <= max_features:
            return list(range(len(names)))
        total = _common.as_array(sensitivity).sum(axis=0)
        return sorted(np.argsort(-total, kind="stable")[:max_features].tolist())
    if isinstance(features, (str, bytes)) or not hasattr(features, "__iter__"):
        raise TypeError(f"{fn}: features must be a sequence of feature indices or names, got {features!r}")
    try:
        features = list(features)
    except TypeError:  # (a 0-d tensor)
        raise TypeError(f"{fn}: features must be a sequence of feature indices or names, got {features!r:.80}") from None
    chosen = []
    for feature in features:
        if isinstance(feature, str):
            if feature not in names:
                raise ValueError(f"{fn}: unknown feature {feature!r}; the features are {names[:20]}")
            chosen.append(names.index(feature))
        else:  # an int, a numpy integer or a 0-d integer tensor (torch.tensor([0, 2]) holds those)
            try:
                chosen.append(_checks.index(fn, "feature index", feature, len(names), what="features"))
            except TypeError:
                raise TypeError(f"{fn}: features must hold ints or names, got {feature!r}") from None
    if not chosen:
        raise ValueError(f"{fn}: features is empty")
    return chosen


def feature_colour(feature: int, num_features: int):
    """The colour of output feature ``feature`` (an index into all F features): fixed per
    feature, so one colour means one feature in every panel and figure; distinct up to 20."""
    from matplotlib import colormaps

    colours = colormaps["tab20"].colors
    # tab20's ten strong colours first, then their light partners: features 0-9 never share a hue.
    palette = colours[0::2] + colours[1::2]
    return palette[feature % len(palette)]
