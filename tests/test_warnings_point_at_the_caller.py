"""Every warning latentsweep gives points at the user's line, whatever depth inside the package
(decorators, context managers, the sweep engine) it is raised from: one rule, _checks.warn.
Fixed stacklevels pointed into the package (sweep.py:177, contextlib.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import latentsweep as ls


def warned_here(record) -> list[str]:
    return [w.filename for w in record if w.filename != __file__]


def test_a_warning_from_an_op_points_here():
    start = torch.ones(1, 3, dtype=torch.float64)
    with pytest.warns(UserWarning, match="opposite endpoints") as record:
        ls.interpolation_codes(start, -start, path="slerp")
    assert not warned_here(record)


def test_a_warning_from_a_decorated_metric_points_here():
    rng = np.random.default_rng(0)
    codes, factors = rng.normal(size=(200, 3)), rng.integers(0, 3, size=(200, 1))
    with pytest.warns(UserWarning, match="modularity needs at least two factors") as record:
        ls.metrics.modularity_explicitness(codes, factors, codes, factors)
    assert not warned_here(record)


def test_a_warning_from_a_context_manager_points_here():
    from sklearn.exceptions import ConvergenceWarning

    from latentsweep.metrics._reference_fits import reference_fits

    with pytest.warns(RuntimeWarning, match="stopped at the iteration limit") as record:
        with reference_fits("latentsweep.metrics.test", "LogisticRegression"):
            warnings.warn("did not converge", ConvergenceWarning)
    assert not warned_here(record)


def test_a_warning_from_a_picture_points_here():
    posterior = ls.Posterior(torch.randn(20, 50), torch.zeros(20, 50))
    with pytest.warns(UserWarning, match="drawing 48 of 50") as record:
        ls.plots.sigma_histograms(posterior)
    assert not warned_here(record)
