"""The metrics against their published definitions (the papers and disentanglement_lib's
``evaluation/metrics/*.py``), on small cases computed by hand, and the places where latentsweep
deliberately departs from the reference (a NaN there, a number here)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import latentsweep as ls
from metrics_reference import IdentityData

m = ls.metrics


def test_mig_of_a_hand_computed_case():
    # f = [0, 0, 1, 1]; z0 = [0, 0, 0, 1] falls into 2 bins as [1, 1, 1, 2]; z1 = [0, 1, 0, 1] is
    # independent of f. I(z0; f) = 1/2 log(4/3) + 1/4 log(2/3) + 1/4 log 2 = 3/2 log 2 - 3/4 log 3,
    # H(f) = log 2, so MIG = (I(z0; f) - 0) / H(f) = 3/2 - 3/4 log2(3).
    codes = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    factors = np.array([[0], [0], [1], [1]])
    assert m.mig(codes, factors, bins=2) == pytest.approx(1.5 - 0.75 * math.log2(3), abs=1e-12)


def test_mig_discretises_each_latent_over_its_own_range():
    # Per-latent edges (disentanglement_lib's histogram per row): a latent a million times wider
    # than the other still gets all 20 bins, so both capture their factor.
    # Every pair of values of the two factors 25 times: independent, so only the matching
    # latent carries information and MIG is exactly 1 when each latent resolves its factor.
    factors = np.tile(np.stack(np.meshgrid(np.arange(4), np.arange(4)), axis=-1).reshape(16, 2), (25, 1))
    codes = factors + 0.01 * np.random.default_rng(0).normal(size=factors.shape)
    wide = codes * np.array([1.0, 1e6])
    assert m.mig(codes, factors) == pytest.approx(1.0, abs=1e-12)
    assert m.mig(wide, factors) == pytest.approx(1.0, abs=1e-12)


def test_irs_of_a_hand_computed_case():
    # f0 = [0, 0, 1, 1]. z0 = f0: no deviation within a group, IRS 1. z1 = [0, 1, 0, 1]: deviation
    # 0.5 in each group of f0 (and 0 in f1's), but f1 = z1: IRS[1, f1] = 1 too; z2 = [0, 1, 1, 0]
    # deviates by 0.5 within every group of both: IRS 0. Each max_dev is 0.5: the mean of the
    # per-latent maxima [1, 1, 0].
    codes = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    result = m.irs(codes, factors, diff_quantile=1.0)
    assert result["irs"] == pytest.approx(2 / 3)
    assert result["per_latent"].tolist() == pytest.approx([1.0, 1.0, 0.0])
    assert result["parents"][:2].tolist() == [0, 1]


def test_sap_continuous_of_a_hand_computed_case():
    # y = [0, 1, 2, 3] (Var 5/3, ddof=1); w = [1, -1, -1, 1] is uncorrelated with y (Var 4/3).
    # z0 = y has R^2 = 1, z1 = y + w has R^2 = (5/3)^2 / ((5/3 + 4/3) 5/3) = 5/9: SAP = 4/9.
    y = np.array([0.0, 1.0, 2.0, 3.0])
    w = np.array([1.0, -1.0, -1.0, 1.0])
    codes = np.stack([y, y + w], axis=1)
    factors = y[:, None]
    assert m.sap(codes, factors, codes, factors, continuous=True) == pytest.approx(4 / 9)


def test_dci_weights_codes_and_factors_by_their_share_of_the_importance():
    # Code 0 serves factor 0 alone (disentanglement 1), code 1 both factors evenly (0); each holds
    # half the importance: disentanglement 1/2 (to the 1e-11 smoothing). Factor 0 is spread over
    # the codes 1/2 : 1/4 (completeness 1 - H_2(2/3, 1/3)), factor 1 is in code 1 alone (1);
    # their weights are 3/4 and 1/4.
    importance = np.array([[0.5, 0.0], [0.25, 0.25]])
    scores = m.dci_from_importance(importance)
    assert scores["disentanglement"] == pytest.approx(0.5, abs=1e-9)
    h = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert scores["completeness"] == pytest.approx(0.75 * (1 - h) + 0.25 * 1.0, abs=1e-9)


@pytest.mark.parametrize("importance, disentanglement, completeness", [
    ([[0.5], [0.5]], 1.0, 0.0),   # one factor: the reference's entropy in base 1 is 0 / 0 (NaN)
    ([[0.5, 0.5]], 0.0, 1.0),     # one code: completeness in base 1, NaN there
])
def test_dci_with_one_factor_or_one_code_is_a_number_not_nan(importance, disentanglement, completeness):
    scores = m.dci_from_importance(np.array(importance))
    assert scores["disentanglement"] == pytest.approx(disentanglement, abs=1e-9)
    assert scores["completeness"] == pytest.approx(completeness, abs=1e-9)


def test_modularity_template_of_a_hand_computed_case():
    # Ridgeway & Mozer: per latent, the squared deviation from the template (its largest MI in
    # one place, 0 elsewhere) over theta^2 (F - 1): rows [2, 1, 0] -> 1 - 1/(4 * 2) = 7/8 and
    # [0, 0, 0] -> 0 (no information); the mean is 7/16.
    assert m.modularity_from_mutual_information(np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])) == pytest.approx(7 / 16)


def test_explicitness_ignores_a_constant_latent_where_the_reference_gives_nan():
    # The reference standardises by an SD of 0 (NaN codes; scikit-learn then refuses the fit);
    # here the constant latent becomes 0, which a logistic regression gives no weight.
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 3, size=(300, 2))
    codes = factors + rng.normal(size=(300, 2))
    with_constant = np.concatenate([codes, np.full((300, 1), 7.0)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = m.modularity_explicitness(codes[:200], factors[:200], codes[200:], factors[200:])
        padded = m.modularity_explicitness(with_constant[:200], factors[:200], with_constant[200:], factors[200:])
    assert padded["explicitness_train"] == pytest.approx(plain["explicitness_train"], abs=1e-6)
    assert padded["explicitness_test"] == pytest.approx(plain["explicitness_test"], abs=1e-6)


def test_factor_vae_counts_the_active_latents_and_scores_as_the_reference_does():
    # Identity codes with a collapsed latent (constant) in the middle: pruned, so 5 of 6 latents
    # are active (the reference would report 6, its mask's length), and each factor's vote goes
    # to its own latent: accuracy 1, with votes indexed by latent (column 2 empty).
    data = IdentityData(num_factors=5)

    def representation(x):
        return torch.cat([x[:, :2], torch.zeros(x.shape[0], 1, dtype=x.dtype), x[:, 2:]], dim=1)

    result = m.factor_vae_score(representation, data, num_train=200, num_eval=100, num_variance_estimate=500,
                                progress=False)
    assert result["num_active_dims"] == 5
    assert result["train_accuracy"] == 1.0 and result["eval_accuracy"] == 1.0
    votes = result["votes"]
    assert int(votes[:, 2].sum()) == 0
    assert [int(votes[:, d].argmax()) for d in (0, 1, 3, 4, 5)] == [0, 1, 2, 3, 4]


_ARRAY_METRICS = {
    "mig": lambda x, y: m.mig(x, y),
    "irs": lambda x, y: m.irs(x, y),
    "sap": lambda x, y: m.sap(x, y, x, y),
    "dci": lambda x, y: m.dci(x, y, x, y, estimator="random_forest"),
    "modularity_explicitness": lambda x, y: m.modularity_explicitness(x, y, x, y),
}
_RNG = np.random.default_rng(0)
_CODES = _RNG.normal(size=(40, 3))
_FACTORS = _RNG.integers(0, 3, size=(40, 2))
_NAN_CODES = _CODES.copy()
_NAN_CODES[5, 1] = np.nan


@pytest.mark.parametrize("name", sorted(_ARRAY_METRICS))
@pytest.mark.parametrize("codes, factors, error, match", [
    (_NAN_CODES, _FACTORS, ValueError, r"codes has 1 non-finite value"),
    (_CODES[:1], _FACTORS[:1], ValueError, r"codes needs at least 2 points, got 1"),
    (_CODES, _FACTORS + 0.5, TypeError, r"factors must hold integers"),
    (_CODES, np.stack([_FACTORS[:, 0], np.zeros(40, dtype=np.int64)], axis=1), ValueError,
     r"factor column\(s\) \[1\] of factors take a single value"),
])
def test_adversarial_inputs_are_named_errors(name, codes, factors, error, match):
    with pytest.raises(error, match=rf"latentsweep\.metrics\.{name}: {match}"):
        _ARRAY_METRICS[name](codes, factors)


@pytest.mark.parametrize("name", sorted(_ARRAY_METRICS))
def test_more_latents_than_points_give_finite_scores(name):
    codes = np.random.default_rng(1).normal(size=(6, 10))
    factors = np.array([[0, 1], [1, 0], [0, 0], [1, 1], [0, 1], [1, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = _ARRAY_METRICS[name](codes, factors)
    values = [result] if isinstance(result, float) else [v for v in result.values() if isinstance(v, float)]
    assert values and all(math.isfinite(v) for v in values)


def test_unsupervised_of_more_latents_than_points_is_infinite_total_correlation():
    # N <= D: the sample covariance is singular, the Gaussian total correlation +inf (the
    # reference returns the logarithm of rounding noise).
    scores = m.unsupervised(np.random.default_rng(1).normal(size=(6, 10)))
    assert scores["gaussian_total_correlation"] == math.inf
    assert math.isfinite(scores["gaussian_wasserstein_correlation"]) and math.isfinite(scores["mutual_info"])
