"""Defects of the metrics found by adversarial testing (thirty-fourth session), each held here."""

import itertools
import math

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep import metrics as m


def _grid_data():
    grid = np.array(list(itertools.product(range(3), range(3))))
    return ls.datasets.LabelledArrays(torch.tensor(grid, dtype=torch.float64), grid)


@pytest.mark.parametrize("relabelled", [
    lambda f: np.array([0, 1, 100])[f],  # uneven: 0 and 1 shared a histogram bin
    lambda f: 7 * f - 3,                  # evenly spaced, shifted and scaled
    lambda f: -f,                         # reversed
], ids=["uneven", "affine", "reversed"])
def test_irs_does_not_depend_on_how_a_factors_values_are_spaced(relabelled):
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 3, (900, 2))
    codes = factors + 0.01 * rng.normal(size=(900, 2))
    expected = m.irs(codes, factors)["irs"]
    assert expected > 0.95
    assert m.irs(codes, relabelled(factors))["irs"] == expected


def test_irs_bins_a_factor_of_more_values_than_bins_by_its_sorted_values():
    # 30 values into 20 bins: the reference's bins of the indices 0..29, whatever the values.
    rng = np.random.default_rng(1)
    factors = rng.integers(0, 30, (600, 2))
    codes = factors + 0.5 * rng.normal(size=(600, 2))
    squared = factors**2  # uneven spacing, same order
    assert m.irs(codes, squared)["irs"] == m.irs(codes, factors)["irs"]


def test_gaussian_scores_of_covariances_near_float64s_largest_value():
    # (symmetrised as (cov + cov.T) / 2, they overflowed: inf, or eigh/svd failing inside torch)
    rho = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert m.gaussian_total_correlation(rho * 1.7e308) == pytest.approx(0.5 * math.log(1 / 0.75), rel=1e-12)
    assert m.gaussian_total_correlation(np.eye(3) * 1e308) == 0.0
    assert m.gaussian_wasserstein_correlation(np.eye(3) * 1e308) == 0.0
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert m.gaussian_wasserstein_correlation(cov * 5e307) == pytest.approx(
        m.gaussian_wasserstein_correlation(cov) * 5e307, rel=1e-12)


@pytest.mark.parametrize("call", [
    lambda labels, values: m.entropy(labels),
    lambda labels, values: m.mutual_information(labels, labels),
    lambda labels, values: m.mig_from_mutual_information(values, torch.ones(1, dtype=torch.float64)),
    lambda labels, values: m.modularity_from_mutual_information(values),
    lambda labels, values: m.dci_from_importance(values),
], ids=["entropy", "mutual_information", "mig_from_mutual_information", "modularity_from_mutual_information",
        "dci_from_importance"])
def test_a_broadcast_view_beyond_the_memory_is_refused_before_its_copy(call):
    labels = torch.ones(1, 1, dtype=torch.int64).expand(10**11, 1)
    values = torch.ones(1, 1, dtype=torch.float64).expand(10**11, 1)
    with pytest.raises(ValueError, match="needs .* GiB"):
        call(labels, values)


@pytest.mark.parametrize("score", [m.factor_vae_score, m.beta_vae_score])
def test_a_batch_size_beyond_the_memory_is_refused_by_name(score):
    with pytest.raises(ValueError, match="batch_size=1000000000000: .* lower batch_size"):
        score(lambda o: o.clone(), _grid_data(), batch_size=10**12, num_train=10, num_eval=10, progress=False)


def test_mig_from_mutual_information_of_no_factors_is_refused():
    with pytest.raises(ValueError, match="F >= 1 factors, got shape \\(3, 0\\)"):
        m.mig_from_mutual_information(np.zeros((3, 0)), np.zeros(0))


def test_a_zero_dimensional_array_is_reported_with_its_own_shape():
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        m.mig(np.float64(1.0), np.zeros((1, 1), dtype=np.int64))


def test_a_masked_array_is_refused_not_scored_with_its_masked_values():
    codes = np.ma.masked_array(np.random.default_rng(0).normal(size=(50, 2)), mask=False)
    codes.mask[0, 0] = True
    with pytest.raises(TypeError, match="codes is a numpy masked array"):
        m.mig(codes, np.random.default_rng(1).integers(0, 3, (50, 1)))


def test_a_numpy_bool_flag_is_named_in_the_message():
    x = np.random.default_rng(0).normal(size=(100, 3))
    y = np.random.default_rng(1).integers(0, 3, (100, 2))
    with pytest.raises(TypeError, match="continuous must be True or False, got np.True_"):
        m.sap(x[:80], y[:80], x[80:], y[80:], continuous=np.True_)


def test_evaluate_says_to_draw_more_points_when_a_metric_refuses_its_draw():
    grid = np.array(list(itertools.product(range(5), range(4), range(6))))
    data = ls.datasets.LabelledArrays(torch.tensor(grid, dtype=torch.float64), grid)
    with pytest.warns(UserWarning, match="below 1000"):
        with pytest.raises(ValueError, match=r"modularity_explicitness on the drawn points \(num_train=5, "
                                             r"num_test=2\): .*draw more points \(num_train, num_test\)"):
            m.evaluate(lambda o: o.clone(), data, metrics=["modularity_explicitness"], num_train=5, num_test=2,
                       progress=False)
