"""Closed forms from disentanglement_lib's unit tests: DCI's and Modularity's importance /
mutual-information cases, and the Gaussian total and Wasserstein correlations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metrics_reference as ref
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


@pytest.mark.parametrize("scale", [1e-170, 1e-154, 1.0, 1e150, 1e200])
def test_modularity_is_scale_invariant_without_overflow(scale):
    """Squaring the MI overflowed (1e200: NaN) or underflowed (1e-170 against 0: 0, not 1)."""
    assert modularity_from_mutual_information(np.array([[1.0, 1.0]]) * scale) == 0.0  # equal MI with both
    assert modularity_from_mutual_information(np.array([[1.0, 0.0]]) * scale) == 1.0  # one factor only
    assert modularity_from_mutual_information(np.array([[2.0, 1.0], [0.0, 3.0]]) * scale) == pytest.approx(
        modularity_from_mutual_information(np.array([[2.0, 1.0], [0.0, 3.0]])), rel=1e-15)


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


def wasserstein_of_a_pair(a: float, b: float, rho: float) -> float:
    """W^2 between N(0, [[a, c], [c, b]]) and N(0, diag(a, b)), c = rho sqrt(ab), in the form
    without cancellation: tr sqrt(S C S) = sqrt(a^2 + b^2 + 2 sqrt(ab (ab - c^2))) for 2 x 2, and
    2 (a + b) - 2 sqrt(T) = 4 c^2 / ((1 + sqrt(1 - rho^2)) (a + b + sqrt(T)))."""
    c2 = rho * rho * a * b
    t = a * a + b * b + 2 * a * b * np.sqrt(1 - rho * rho)
    return 4 * c2 / ((1 + np.sqrt(1 - rho * rho)) * (a + b + np.sqrt(t)))


@pytest.mark.parametrize("a, b", [(1.0, 1.0), (1.0, 1e8), (1e-6, 1.0), (1e-6, 1e6), (3.0, 1e-12)])
@pytest.mark.parametrize("rho", [0.03, -0.5, 0.999])
def test_gaussian_wasserstein_correlation_keeps_its_digits_across_scales(a, b, rho):
    """2 tr C - 2 tr sqrt(S C S) cancelled: with SDs 1 and 1e4 it came out negative. Block
    diagonal: the pairs' distances add."""
    cov = np.array([[a, rho * np.sqrt(a * b)], [rho * np.sqrt(a * b), b]])
    expected = wasserstein_of_a_pair(a, b, rho)
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(expected, rel=1e-10)
    blocks = np.zeros((4, 4))
    blocks[:2, :2], blocks[2:, 2:] = cov, np.array([[1.0, 0.5], [0.5, 2.0]])
    assert gaussian_wasserstein_correlation(blocks) == pytest.approx(
        expected + wasserstein_of_a_pair(1.0, 2.0, 0.5 / np.sqrt(2.0)), rel=1e-10)


def test_gaussian_wasserstein_correlation_of_codes_with_a_large_latent_is_positive():
    """The adversarial case: 1000 codes with SDs 1, 1, 1e4 (exact value from 60-digit arithmetic)."""
    codes = np.random.default_rng(0).standard_normal((1000, 3)) * [1.0, 1.0, 1e4]
    from latentsweep import metrics

    assert metrics.unsupervised(codes)["gaussian_wasserstein_correlation"] == pytest.approx(3.959120964898694e-4,
                                                                                          rel=1e-10)


@pytest.mark.parametrize("name, codes", [
    ("two points in two latents", np.array([[0.0, 1.0], [1.0, 3.0]])),
    ("a latent the sum of two others", (lambda z: np.c_[z, z[:, 0] + z[:, 1]])(
        np.random.default_rng(1).standard_normal((500, 2)))),
])
def test_total_correlation_of_singular_codes_is_infinite(name, codes):
    """A singular covariance has total correlation +inf; the log of its rounding noise was
    returned (18.4 for the sum)."""
    from latentsweep import metrics

    assert metrics.unsupervised(codes)["gaussian_total_correlation"] == np.inf
    assert gaussian_total_correlation(np.cov(codes.T)) == np.inf
    assert np.isfinite(gaussian_total_correlation(np.cov(codes.T) + 1e-3 * np.eye(codes.shape[1])))


@pytest.mark.parametrize("cov, what", [
    ([[1.0, 2.0], [2.0, 1.0]], "not positive semi-definite"),
    ([[-1.0, 0.0], [0.0, 1.0]], r"cov\[0, 0\] = -1 < 0"),
    ([[1.0, 0.5], [0.1, 1.0]], "not symmetric"),
    ([[0.0, 1.0], [1.0, 1.0]], "not positive semi-definite"),
    ([[0.0, 1.0], [1.0, 0.0]], "not positive semi-definite"),
])
def test_the_gaussian_scores_refuse_what_is_not_a_covariance(cov, what):
    """A KL of [[1, 2], [2, 1]] came out -0.549; a negative variance was dropped."""
    for score in (gaussian_total_correlation, gaussian_wasserstein_correlation):
        with pytest.raises(ValueError, match=rf"{score.__name__}: cov is not a covariance matrix: .*{what}"):
            score(np.array(cov))


def test_a_covariance_symmetric_to_float32_rounding_is_taken():
    cov = np.array([[1.0, 0.3], [0.3 * (1 + 1e-7), 1.0]])
    assert gaussian_total_correlation(cov) == pytest.approx(-0.5 * np.log(1 - 0.09), rel=1e-6)


@pytest.mark.parametrize("shape", [(3, 1), (1, 3), (1, 1)])
def test_dci_of_nothing_informative_is_zero_with_one_factor_or_code_too(shape):
    """With one factor (or code) the entropy rule gave an all-zero matrix a perfect 1."""
    assert dci_from_importance(np.zeros(shape)) == {"disentanglement": 0.0, "completeness": 0.0}


def test_total_correlation_is_finite_unless_the_smallest_eigenvalue_is_rounding():
    """A fixed cutoff (1e-13 D) on the correlation's smallest eigenvalue called a latent and the
    same plus 5e-7 noise singular (inf for 14.47): the cutoff is a few eps x D of the largest."""
    from latentsweep import metrics

    rng = np.random.default_rng(0)
    x1 = rng.normal(size=1000)
    codes = np.c_[x1, x1 + 5e-7 * rng.normal(size=1000)]
    cov = np.cov(codes.T)
    expected = 0.5 * (np.log(np.diag(cov)).sum() - np.linalg.slogdet(cov)[1])  # 14.465
    # The smallest eigenvalue (1.4e-13) has about 3 correct digits in float64; so has the total.
    assert metrics.unsupervised(codes)["gaussian_total_correlation"] == pytest.approx(expected, rel=1e-3)
    for gap, rel in ((1e-13, 1e-12), (1e-14, 1e-3), (4e-15, 1e-3)):  # correlation 1 - gap: -log(1 - r^2) / 2
        r = 1.0 - gap
        assert gaussian_total_correlation(np.array([[1.0, r], [r, 1.0]])) == pytest.approx(
            -0.5 * np.log((1.0 - r) * (1.0 + r)), rel=rel)
    for gap in (2e-15, 2**-52, 0.0):  # within 4 eps x D of the largest eigenvalue (2): rounding
        r = 1.0 - gap
        assert gaussian_total_correlation(np.array([[1.0, r], [r, 1.0]])) == np.inf


@pytest.mark.parametrize("a, b", [(1e-6, 1.0), (2.0, 7.0), (1.0, 4.0), (3.0, 1e-12)])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_wasserstein_correlation_of_proportional_latents_takes_the_zero_eigenvalue_as_zero(a, b, sign):
    """The rounding noise in place of the zero eigenvalue (3e-16) went through a square root into
    the result: relative errors of 3e-8. One rule for both scores: what the total correlation
    calls singular is 0 here."""
    from latentsweep import metrics

    x = np.random.default_rng(0).standard_normal(1000)
    codes = np.c_[np.sqrt(a) * x, sign * np.sqrt(b) * x]
    cov = np.cov(codes.T)
    expected = wasserstein_of_a_pair(cov[0, 0], cov[1, 1], 1.0)
    assert metrics.unsupervised(codes)["gaussian_wasserstein_correlation"] == pytest.approx(expected, rel=1e-12)
    assert metrics.unsupervised(codes)["gaussian_total_correlation"] == np.inf


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("largest", [1e150, 1e300, np.finfo(np.float64).max])
def test_dci_of_large_importances_does_not_overflow(name, largest):
    """The sums of a matrix of 1e308 overflowed: NaN. Any finite matrix is taken; at this scale
    the 1e-11 smoothing is nothing, and the closed forms hold."""
    matrix, disentanglement, completeness, _ = CASES[name]
    scores = dci_from_importance(matrix / matrix.max() * largest)
    assert scores["disentanglement"] == pytest.approx(disentanglement, rel=1e-12)
    assert scores["completeness"] == pytest.approx(completeness, rel=1e-12)
    assert dci_from_importance(np.full((2, 2), largest)) == {"disentanglement": 0.0, "completeness": 0.0}


@pytest.mark.parametrize("largest", [1e-30, 0.3, 1.0, 5.0, 1e6, 1e100])
def test_dci_keeps_the_reference_smoothing_in_the_matrix_units(largest):
    """disentanglement_lib adds 1e-11 to the importances as given: a matrix with zeros scores
    1e-10 differently with the smoothing relative to its largest entry. Scaling a matrix down
    by a power of two (to keep its sums finite) keeps the results bit for bit."""
    rng = np.random.default_rng(0)
    matrix = rng.uniform(size=(6, 4)) * (rng.uniform(size=(6, 4)) < 0.5)
    matrix *= largest / matrix.max()
    scores = dci_from_importance(matrix)
    expected = ref.dci_from_importance(matrix)
    assert scores["disentanglement"] == pytest.approx(expected["disentanglement"], rel=1e-14)
    assert scores["completeness"] == pytest.approx(expected["completeness"], rel=1e-14)
    assert dci_from_importance(torch.from_numpy(matrix)) == scores


@pytest.mark.parametrize("importance, match", [
    (torch.eye(3, dtype=torch.complex128), "got torch.complex128"),
    (np.eye(3) + 0j, "got a numpy array of dtype complex128"),
    (torch.eye(3, dtype=torch.bool), "got torch.bool"),
    (np.eye(3, dtype=bool), "got torch.bool"),
])
def test_dci_from_importance_takes_real_numbers_only(importance, match):
    """A complex matrix lost its imaginary part (torch's warning alone), a bool one was read as
    0/1; every other metric refuses both."""
    with pytest.raises(TypeError, match=rf"dci_from_importance: importance must hold real numbers, {match}"):
        dci_from_importance(importance)


@pytest.mark.parametrize("importance, error, match", [
    (np.ones(3), ValueError, r"importance must be 2-D, got shape \(3,\)"),
    (np.ones((0, 3)), ValueError, r"importance must be \[D, F\] with D, F >= 1, got shape \(0, 3\)"),
    (np.array([[1.0, np.inf]]), ValueError, "importance has 1 non-finite"),
    (np.array([[1.0, -0.5]]), ValueError, "importance must be >= 0, got a minimum of -0.5"),
    ([[1.0]], TypeError, "importance must be a torch.Tensor or a numpy array"),
])
def test_dci_from_importance_names_what_is_wrong(importance, error, match):
    with pytest.raises(error, match=rf"dci_from_importance: {match}"):
        dci_from_importance(importance)
