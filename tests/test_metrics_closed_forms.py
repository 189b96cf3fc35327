"""Closed forms from disentanglement_lib's unit tests: DCI's and Modularity's importance /
mutual-information cases, and the Gaussian total and Wasserstein correlations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentsweep.metrics import (
    dci_from_importance,
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    mig_from_mutual_information,
    modularity_from_mutual_information,
)

DIAGONAL = np.diag(5.0 * np.ones(5))
CASES = {
    # name: (matrix [codes, factors], disentanglement, completeness, modularity)
    "diagonal": (DIAGONAL, 1.0, 1.0, 1.0),
    "diagonal_empty_codes": (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1.0, 1.0, 2.0 / 3.0),
    "redundant_codes": (np.vstack([DIAGONAL, DIAGONAL]), 1.0, 1.0 - np.log(2) / np.log(10), 1.0),
    "missed_factors": (DIAGONAL[:2, :], 1.0, 1.0, 1.0),
    "one_code_two_factors": (np.hstack([DIAGONAL, DIAGONAL]), 1.0 - np.log(2) / np.log(10), 1.0, 1.0 - 1.0 / 9),
}


@pytest.mark.parametrize("name", CASES)
def test_dci_closed_forms(name):
    matrix, disentanglement, completeness, _ = CASES[name]
    scores = dci_from_importance(matrix)
    assert scores["disentanglement"] == pytest.approx(disentanglement, rel=1e-7)
    assert scores["completeness"] == pytest.approx(completeness, rel=1e-7)


@pytest.mark.parametrize("name", CASES)
def test_modularity_closed_forms(name):
    matrix, _, _, modularity = CASES[name]
    assert modularity_from_mutual_information(matrix) == pytest.approx(modularity, rel=1e-12)


def test_zero_matrices():
    zero = np.zeros((10, 10))
    scores = dci_from_importance(zero)
    assert scores["disentanglement"] == pytest.approx(0.0, abs=1e-7)
    assert scores["completeness"] == pytest.approx(0.0, abs=1e-7)
    assert modularity_from_mutual_information(zero) == 0.0


def test_dci_rejects_negative_importance():
    with pytest.raises(ValueError, match="importance"):
        dci_from_importance(-np.eye(3))


def test_mig_from_a_matrix():
    mi = torch.tensor([[1.0, 0.2], [0.5, 0.2], [0.0, 0.1]], dtype=torch.float64)
    entropy = torch.tensor([2.0, 0.5], dtype=torch.float64)
    assert mig_from_mutual_information(mi, entropy) == pytest.approx(((1.0 - 0.5) / 2.0 + 0.0 / 0.5) / 2)


def test_gaussian_total_correlation_zero_for_diagonal_covariance():
    assert gaussian_total_correlation(np.diag([1.0, 2.0, 0.5, 3.0, 1.0])) == pytest.approx(0.0, abs=1e-12)


def test_gaussian_total_correlation_is_the_kl_to_the_product_of_marginals():
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    central = np.diag(np.diag(cov))
    inv = np.linalg.inv(central)
    kl = 0.5 * (np.trace(inv @ cov) - 2 + np.log(np.linalg.det(central) / np.linalg.det(cov)))
    assert gaussian_total_correlation(cov) == pytest.approx(kl, rel=1e-12)
    assert gaussian_total_correlation(cov) == pytest.approx(-0.5 * np.log(1 - 0.81), rel=1e-12)


def test_gaussian_wasserstein_correlation():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    assert gaussian_wasserstein_correlation(np.eye(5)) == pytest.approx(0.0, abs=1e-12)
    for cov in (np.array([[1.0, 0.9], [0.9, 1.0]]), np.array([[2.0, 0.3, -0.5], [0.3, 1.0, 0.2], [-0.5, 0.2, 0.7]])):
        diagonal = np.diag(np.diag(cov))
        expected = np.trace(cov + diagonal - 2 * scipy_linalg.sqrtm(cov @ diagonal)).real
        assert gaussian_wasserstein_correlation(cov) == pytest.approx(expected, rel=1e-9)
