"""The array-level metrics on disentanglement_lib's test cases (identity codes, pure noise,
duplicated latents), their invariances, argument checks and reproducibility."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import metrics_reference as ref
from latentsweep import metrics

N = 3000


def identity(n=N, seed=0, num_factors=5):
    """disentanglement_lib's IdentityObservationsData: codes equal to the factors (10 values)."""
    rng = np.random.default_rng(seed)
    factors = rng.integers(0, 10, (n, num_factors))
    return factors.astype(np.float64), factors


def permuted_rows(codes, seed=0):
    """The reference's 'bad' representation: each point's code entries shuffled."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(row) for row in codes])


# ---- MIG ------------------------------------------------------------------------------------
def test_mig_identity_noise_duplicated():
    codes, factors = identity()
    assert 0.9 <= metrics.mig(codes, factors) <= 1.0
    assert 0.0 <= metrics.mig(np.zeros_like(codes), factors) <= 0.2
    noise = np.random.default_rng(1).standard_normal(codes.shape)
    assert 0.0 <= metrics.mig(noise, factors) <= 0.05
    assert 0.0 <= metrics.mig(np.hstack([codes, codes]), factors) <= 0.1


def test_mig_matches_the_numpy_reference():
    codes, factors = identity(2000)
    codes = codes + 0.7 * np.random.default_rng(2).standard_normal(codes.shape)
    mi = ref.mutual_information_matrix(ref.histogram_discretize(codes, 20), factors)
    h = np.array([ref.entropy(factors[:, j]) for j in range(factors.shape[1])])
    top = np.sort(mi, axis=0)[::-1]
    assert metrics.mig(codes, factors) == pytest.approx(np.mean((top[0] - top[1]) / h), rel=1e-10)


def test_mig_invariant_to_scaling_and_sign_of_a_latent():
    codes, factors = identity(2000)
    codes = codes + 0.5 * np.random.default_rng(3).standard_normal(codes.shape)
    scaled = codes.copy()
    scaled[:, 0] *= 4.0
    scaled[:, 2] *= -1.0
    assert metrics.mig(scaled, factors) == metrics.mig(codes, factors)


# ---- SAP ------------------------------------------------------------------------------------
def test_sap_continuous_identity_noise_duplicated():
    codes, factors = identity()
    test_codes, test_factors = identity(seed=1)
    assert 0.9 <= metrics.sap(codes, factors, test_codes, test_factors, continuous=True) <= 1.0
    zeros = np.zeros_like(codes)
    assert 0.0 <= metrics.sap(zeros, factors, zeros, test_factors, continuous=True) <= 0.2
    double = np.hstack([codes, codes])
    assert 0.0 <= metrics.sap(double, factors, np.hstack([test_codes] * 2), test_factors, continuous=True) <= 0.2


def test_sap_continuous_takes_real_valued_factors_closed_form():
    """Factors exactly linear in one latent each: that latent's R^2 is 1, the runner-up's the
    squared correlation of the two latents (train split, as disentanglement_lib), so SAP is
    1 - mean_f max_{d != f} corr(z_d, z_f)^2. Real-valued factors were a TypeError ("must hold
    integers"), which only the discrete score needs."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((500, 3))
    z[:, 1] += 0.6 * z[:, 0]
    z[:, 2] += 0.3 * z[:, 1]
    y = np.c_[2.5 * z[:, 0] - 1.0, -0.7 * z[:, 1] + 3.0]  # factor f linear in latent f
    r2 = np.corrcoef(z[:400].T) ** 2
    expected = np.mean([1.0 - max(r2[d, f] for d in range(3) if d != f) for f in range(2)])
    assert metrics.sap(z[:400], y[:400], z[400:], y[400:], continuous=True) == pytest.approx(expected, rel=1e-12)
    # The test split is not used (only checked); scaling a factor changes nothing.
    other = rng.uniform(-1, 1, (100, 2))
    assert metrics.sap(z[:400], y[:400], z[400:], other, continuous=True) == pytest.approx(expected, rel=1e-12)
    for scale in (1e-300, 1e-200, 1e200, 1e300):
        assert metrics.sap(z[:400], y[:400] * scale, z[400:], y[400:], continuous=True) == pytest.approx(
            expected, rel=1e-12)
    # The brief's case: noisy real factors, a noise latent.
    w = rng.uniform(size=(500, 2))
    codes = np.c_[w + 0.01 * rng.standard_normal(w.shape), rng.standard_normal(500)]
    assert 0.95 < metrics.sap(codes[:400], w[:400], codes[400:], torch.from_numpy(w[400:]).float(), continuous=True) <= 1


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda z, y: metrics.sap(z, y, z, y), TypeError, "sap: factors must hold integers"),  # discrete needs them
        (lambda z, y: metrics.sap(z, np.where(y > 1, np.nan, y), z, y, continuous=True), ValueError,
         r"sap: factors has \d+ non-finite"),
        (lambda z, y: metrics.sap(z, y, z, np.where(y > 1, np.inf, y), continuous=True), ValueError,
         r"sap: test_factors has \d+ non-finite"),
        (lambda z, y: metrics.sap(z, y > 0, z, y, continuous=True), TypeError,
         "sap: factors must hold real numbers, got torch.bool"),
        (lambda z, y: metrics.sap(z, torch.from_numpy(y + 0j), z, y, continuous=True), TypeError,
         "sap: factors must hold real numbers, got torch.complex128"),
        (lambda z, y: metrics.sap(z, np.c_[y[:, 0], np.full(len(y), 0.5)], z, y, continuous=True), ValueError,
         r"sap: factor column\(s\) \[1\] of factors take a single value"),
        (lambda z, y: metrics.sap(z, y, z, y[:, :1], continuous=True), ValueError,
         "sap: test_factors have 1 factors but factors have 2"),
    ],
)
def test_sap_continuous_factor_checks(call, error, match):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200, 3))
    with pytest.raises(error, match=match):
        call(z, z[:, :2] + 1.0)


def test_sap_discrete_separates_identity_from_noise():
    codes, factors = identity(1000, num_factors=3)
    test_codes, test_factors = identity(500, seed=1, num_factors=3)
    good = metrics.sap(codes, factors, test_codes, test_factors)
    noise = np.random.default_rng(4).standard_normal(codes.shape)
    bad = metrics.sap(noise, factors, noise[:500], test_factors)
    assert good > 0.1 and bad < 0.05 and good > 3 * bad


# ---- DCI ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_dci_identity_and_duplicated_latents():
    codes, factors = identity(1000)
    test_codes, test_factors = identity(1000, seed=1)
    scores = metrics.dci(codes, factors, test_codes, test_factors)
    assert 0.9 <= scores["disentanglement"] <= 1.0
    assert 0.9 <= scores["completeness"] <= 1.0
    assert scores["informativeness_test"] > 0.95
    double = metrics.dci(np.hstack([codes, codes]), factors, np.hstack([test_codes] * 2), test_factors)
    target = 1.0 - np.log(2) / np.log(10)
    assert 0.9 <= double["disentanglement"] <= 1.0
    assert target - 0.1 <= double["completeness"] <= target + 0.1


@pytest.mark.slow
def test_dci_permuted_rows_is_low():
    codes, factors = identity(1000)
    test_codes, test_factors = identity(1000, seed=1)
    scores = metrics.dci(permuted_rows(codes), factors, permuted_rows(test_codes, 1), test_factors)
    assert scores["disentanglement"] <= 0.2
    assert scores["completeness"] <= 0.2


def test_dci_random_forest_option():
    codes, factors = identity(1000, num_factors=3)
    test_codes, test_factors = identity(500, seed=1, num_factors=3)
    scores = metrics.dci(codes, factors, test_codes, test_factors, estimator="random_forest")
    assert scores["disentanglement"] > 0.9 and scores["completeness"] > 0.9
    with pytest.raises(ValueError, match="estimator"):
        metrics.dci(codes, factors, test_codes, test_factors, estimator="lasso")


# ---- Modularity / explicitness ---------------------------------------------------------------
def test_explicitness_leaves_out_test_rows_of_a_value_the_train_split_lacks():
    """A rare value in the test split alone (some seeds' splits): those rows sit out that
    factor's test score, with a warning; it was a ValueError that lost every other score."""
    codes, factors = identity(1000, num_factors=3)
    test_codes, test_factors = identity(500, seed=1, num_factors=3)
    rare_codes, rare_factors = test_codes.copy(), test_factors.copy()
    rare_factors[:3, 1] = factors[:, 1].max() + 5  # a value the train split never has
    one = [1]  # factor 1 alone: its test score is explicitness_test (and modularity is left out, a warning)
    with pytest.warns(UserWarning) as caught:
        rare = metrics.modularity_explicitness(codes, factors[:, one], rare_codes, rare_factors[:, one])
        kept = metrics.modularity_explicitness(codes, factors[:, one], test_codes[3:], test_factors[3:, one])
    unseen = [str(w.message) for w in caught if "absent from the train split" in str(w.message)]
    assert len(unseen) == 1 and re.search(r"3 test row\(s\) with values \[\d+\] of factor 0", unseen[0]), unseen
    assert (rare["explicitness_train"], rare["explicitness_test"]) == (kept["explicitness_train"], kept["explicitness_test"])
    all_unseen = test_factors.copy()
    all_unseen[:, 2] = factors[:, 2].max() + 1
    with pytest.raises(ValueError, match="none of test_factors column 2's values occur in factors"):
        metrics.modularity_explicitness(codes, factors, test_codes, all_unseen)


def test_modularity_of_one_factor_is_left_out_not_nan():
    """0 / 0 in the definition (the reference's NaN): modularity_explicitness warns and scores
    explicitness only; modularity_from_mutual_information refuses."""
    codes, factors = identity(1000, num_factors=3)
    test_codes, test_factors = identity(500, seed=1, num_factors=3)
    with pytest.warns(UserWarning, match="modularity needs at least two factors, got one"):
        scores = metrics.modularity_explicitness(codes, factors[:, :1], test_codes, test_factors[:, :1])
    assert set(scores) == {"explicitness_train", "explicitness_test"} and scores["explicitness_test"] > 0.9
    with pytest.raises(ValueError, match=r"mutual_info must be \[D, F\] with F >= 2 factors, got shape \(3, 1\)"):
        metrics.modularity_from_mutual_information(torch.ones(3, 1))


def test_modularity_identity_duplicated_and_permuted():
    codes, factors = identity()
    test_codes, test_factors = identity(1000, seed=1)
    scores = metrics.modularity_explicitness(codes, factors, test_codes, test_factors)
    assert 0.9 <= scores["modularity"] <= 1.0
    assert scores["explicitness_test"] > 0.95
    double = metrics.modularity_explicitness(np.hstack([codes, codes]), factors, np.hstack([test_codes] * 2), test_factors)
    assert 0.9 <= double["modularity"] <= 1.0
    # The reference's 'bad' case (20,000 points: fewer leave MI bias that breaks the tie).
    big_codes, big_factors = identity(20000, seed=5)
    labels = metrics.histogram_discretize(torch.from_numpy(permuted_rows(big_codes)), 20)
    bad = metrics.modularity_from_mutual_information(metrics.mutual_information(labels, torch.from_numpy(big_factors)))
    assert 0.0 <= bad <= 0.2


# ---- Unsupervised ----------------------------------------------------------------------------
def test_unsupervised_scores():
    rng = np.random.default_rng(6)
    independent = rng.standard_normal((N, 4)) * np.array([1.0, 2.0, 0.5, 3.0])
    scores = metrics.unsupervised(independent)
    assert abs(scores["gaussian_total_correlation"]) < 0.01
    assert abs(scores["gaussian_wasserstein_correlation_norm"]) < 0.01
    assert scores["mutual_info"] < 0.1
    correlated = independent.copy()
    correlated[:, 1] = correlated[:, 0] + 0.1 * rng.standard_normal(N)
    dependent = metrics.unsupervised(correlated)
    assert dependent["gaussian_total_correlation"] > 1.0
    mi = ref.mutual_information_matrix(*(2 * [ref.histogram_discretize(correlated, 20)]))
    np.fill_diagonal(mi, 0)
    assert dependent["mutual_info"] == pytest.approx(mi.sum() / 12, rel=1e-10)


def test_unsupervised_leaves_out_constant_latents():
    rng = np.random.default_rng(7)
    codes = np.hstack([rng.standard_normal((500, 3)), np.zeros((500, 1))])
    scores = metrics.unsupervised(codes)
    assert np.isfinite(scores["gaussian_total_correlation"])
    assert scores["gaussian_total_correlation"] == pytest.approx(metrics.unsupervised(codes[:, :3])["gaussian_total_correlation"])


# ---- IRS -------------------------------------------------------------------------------------
def test_irs_identity_and_zeros():
    codes, factors = identity()
    assert 0.9 <= metrics.irs(codes, factors)["irs"] <= 1.0
    zero = metrics.irs(np.zeros_like(codes), factors)
    assert zero["irs"] <= 0.1 and zero["num_active_dims"] == 0


@pytest.mark.parametrize("quantile", [0.0, 0.3, 0.5, 0.77, 0.99, 1.0])
@pytest.mark.parametrize("points", [1000, 37])  # 37: groups of 1 to 7 points, uneven sizes
def test_irs_matches_a_direct_numpy_computation(quantile, points):
    codes, factors = identity(points)
    codes = codes + np.random.default_rng(8).standard_normal(codes.shape)
    max_dev = np.abs(codes - codes.mean(0)).max(0)
    dev = np.zeros((codes.shape[1], factors.shape[1]))
    for f in range(factors.shape[1]):
        values = np.unique(factors[:, f])
        for g in values:
            group = codes[factors[:, f] == g]
            dev[:, f] += np.percentile(np.abs(group - group.mean(0)), quantile * 100, axis=0)
        dev[:, f] /= len(values)
    per_latent = (1 - dev / max_dev[:, None]).max(1)
    expected = np.average(per_latent, weights=max_dev)
    assert metrics.irs(codes, factors, diff_quantile=quantile)["irs"] == pytest.approx(expected, rel=1e-10)


# ---- invariances, reproducibility, inputs -----------------------------------------------------
def noisy_identity(seed=9, n=1000):
    codes, factors = identity(n, seed)
    return codes + 0.8 * np.random.default_rng(seed).standard_normal(codes.shape), factors


def test_permuting_latents_leaves_scores_unchanged():
    codes, factors = noisy_identity()
    test_codes, test_factors = noisy_identity(10, 300)
    order = np.array([3, 0, 4, 1, 2])
    pc, ptc = codes[:, order], test_codes[:, order]
    assert metrics.mig(pc, factors) == metrics.mig(codes, factors)
    assert metrics.sap(pc, factors, ptc, test_factors) == metrics.sap(codes, factors, test_codes, test_factors)
    assert metrics.sap(pc, factors, ptc, test_factors, continuous=True) == pytest.approx(
        metrics.sap(codes, factors, test_codes, test_factors, continuous=True), rel=1e-12)
    for key, value in metrics.unsupervised(pc).items():
        assert value == pytest.approx(metrics.unsupervised(codes)[key], rel=1e-9, abs=1e-12)
    assert metrics.irs(pc, factors)["irs"] == pytest.approx(metrics.irs(codes, factors)["irs"], rel=1e-12)
    mod, mod_p = (metrics.modularity_explicitness(c, factors, t, test_factors) for c, t in ((codes, test_codes), (pc, ptc)))
    assert mod_p["modularity"] == pytest.approx(mod["modularity"], rel=1e-12)
    assert mod_p["explicitness_test"] == pytest.approx(mod["explicitness_test"], abs=1e-3)
    rf, rf_p = (metrics.dci(c, factors, t, test_factors, estimator="random_forest") for c, t in ((codes, test_codes), (pc, ptc)))
    # Trees pick among equally good splits by the feature order: close, not bit-identical.
    assert rf_p["disentanglement"] == pytest.approx(rf["disentanglement"], abs=0.03)
    assert rf_p["completeness"] == pytest.approx(rf["completeness"], abs=0.03)


def test_torch_numpy_and_float32_inputs_agree():
    codes, factors = noisy_identity()
    t = torch.from_numpy(codes)
    assert metrics.mig(t, torch.from_numpy(factors)) == metrics.mig(codes, factors)
    assert metrics.mig(t.float(), factors) == metrics.mig(codes.astype(np.float32), factors)


def test_seeded_scores_are_bit_identical():
    codes, factors = noisy_identity()
    test_codes, test_factors = noisy_identity(10, 300)
    first = metrics.dci(codes, factors, test_codes, test_factors, estimator="random_forest", seed=3)
    again = metrics.dci(codes, factors, test_codes, test_factors, estimator="random_forest", seed=3)
    assert first == again
    assert metrics.sap(codes, factors, test_codes, test_factors) == metrics.sap(codes, factors, test_codes, test_factors)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda c, f: metrics.mig(c[:, :1], f), ValueError, "at least 2 latent"),
        (lambda c, f: metrics.mig(c, f[:-1]), ValueError, "rows"),
        (lambda c, f: metrics.mig(c[:, 0], f), ValueError, "2-D"),
        (lambda c, f: metrics.mig(c, f + 0.5), TypeError, "integers"),
        (lambda c, f: metrics.mig(c, np.zeros_like(f)), ValueError, "single value"),
        (lambda c, f: metrics.mig(np.where(c > 8, np.nan, c), f), ValueError, "non-finite"),
        (lambda c, f: metrics.mig(c, f, bins=0), ValueError, "bins"),
        (lambda c, f: metrics.mig([[1.0]], f), TypeError, "numpy array"),
        (lambda c, f: metrics.sap(c, f, c[:, :2], f), ValueError, "test_codes"),
        (lambda c, f: metrics.sap(c, f, c, f, continuous="yes"), TypeError, "continuous"),
        (lambda c, f: metrics.irs(c, f, diff_quantile=1.5), ValueError, "diff_quantile"),
        (lambda c, f: metrics.dci(c, f, c, f, seed=-1), ValueError, "seed"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    codes, factors = identity(200)
    with pytest.raises(error, match=match):
        call(codes, factors)


def test_metrics_run_on_one_thread_and_restore_the_count(monkeypatch):
    from latentsweep.metrics import _information

    seen = []
    original = _information.information

    def spy(a, b):
        seen.append(torch.get_num_threads())
        return original(a, b)

    monkeypatch.setattr("latentsweep.metrics.mutual_information_gap.information", spy)
    codes, factors = identity(200)
    torch.set_num_threads(2)
    metrics.mig(codes, factors)
    assert seen == [1] and torch.get_num_threads() == 2
    with pytest.raises(ValueError):
        metrics.mig(codes[:, :1], factors)
    assert torch.get_num_threads() == 2


def test_unconverged_reference_fits_give_one_clear_warning(monkeypatch):
    """The definitions fix LogisticRegression()'s 100 iterations: scikit-learn's per-fit
    ConvergenceWarning (with advice that does not apply) becomes one warning per metric call,
    saying the score follows its definition; other warnings pass through unchanged."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression.fit

    def fit_that_stops_early(self, *args, **kwargs):
        warnings.warn("lbfgs failed to converge", ConvergenceWarning)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", fit_that_stops_early)
    generator = np.random.default_rng(0)
    factors = generator.integers(0, 3, (300, 2))
    codes = factors + 0.3 * generator.standard_normal((300, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = metrics.modularity_explicitness(codes, factors, codes, factors)
    assert 0.9 < scores["explicitness_test"] <= 1
    assert [w.category for w in caught] == [RuntimeWarning]
    assert "2 LogisticRegression fit(s) stopped at the iteration limit" in str(caught[0].message)
    assert "modularity_explicitness" in str(caught[0].message)

    from latentsweep.metrics._reference_fits import reference_fits

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with reference_fits("fn", "X"):
            warnings.warn("unrelated", UserWarning)
    assert [(w.category, str(w.message)) for w in caught] == [(UserWarning, "unrelated")]


# ---- defects found by an adversarial tester ---------------------------------------------------
def test_modularity_scores_a_dead_latent_zero():
    """disentanglement_lib: modularity_score[max_squared_mi == 0] = 0. MI residue (1e-16) of a
    constant latent made it score near 1 (0.815 here instead of 2/3; 0.446 for all-dead codes)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, (1000, 2))
    z = np.c_[y.astype(float), np.zeros(1000)]
    scores = metrics.modularity_explicitness(z[:500], y[:500], z[500:], y[500:])
    assert scores["modularity"] == pytest.approx(2 / 3, abs=1e-3)
    dead = np.zeros((1000, 3))
    assert metrics.modularity_explicitness(dead[:500], y[:500], dead[500:], y[500:])["modularity"] == 0.0
    # MIG's top-two gap is unchanged by the dead latent.
    assert metrics.mig(z, y) == pytest.approx(metrics.mig(z[:, :2], y), abs=1e-12)


def test_explicitness_test_leaves_out_a_factor_with_one_test_value():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, (400, 2))
    z = rng.normal(size=(400, 3)) + np.c_[y, y[:, :1]]
    test_factors = np.array([[0, 1], [0, 2]])  # factor 0 single-valued in the test split
    with pytest.warns(UserWarning, match=r"factor\(s\) \[0\] take a single value in test_factors"):
        scores = metrics.modularity_explicitness(z[:300], y[:300], z[300:302], test_factors)
    assert np.isfinite(scores["explicitness_test"])
    with pytest.warns(UserWarning, match="modularity needs at least two factors"):
        alone = metrics.modularity_explicitness(z[:300], y[:300, 1:], z[300:302], test_factors[:, 1:])
    assert scores["explicitness_test"] == alone["explicitness_test"]
    with pytest.raises(ValueError, match="every factor takes a single value in test_factors"):
        metrics.modularity_explicitness(z[:300], y[:300], z[300:302], np.array([[0, 1], [0, 1]]))


def test_float_factors_beyond_int64_are_refused_not_wrapped():
    codes, factors = identity(200)
    with pytest.raises(ValueError, match=r"mig: factors must lie within int64's range"):
        metrics.mig(codes, factors.astype(float) * 1e30)
    with pytest.raises(ValueError, match=r"mig: factors has \d+ non-finite"):
        metrics.mig(codes, np.where(factors == 3, np.inf, factors))
    with pytest.raises(ValueError, match=r"sap: test_factors must lie within int64's range"):
        metrics.sap(codes, factors, codes, factors.astype(float) * 1e30)
    big = factors.astype(float) * 2.0**52  # whole floats within int64: taken, as the integers
    assert metrics.mig(codes, big) == metrics.mig(codes, factors)


@pytest.mark.parametrize(
    "call",
    [
        lambda c, f, s: metrics.sap(c * s, f, c * s, f),  # liblinear looped for ever from about 1e77
        lambda c, f, s: metrics.sap(c * s, f, c * s, f, continuous=True),
        lambda c, f, s: metrics.dci(c * s, f, c * s, f, estimator="random_forest"),
        lambda c, f, s: metrics.unsupervised(c * s),
        lambda c, f, s: metrics.modularity_explicitness(c * s, f, c * s, f),
        lambda c, f, s: metrics.mig(c * s, f),
        lambda c, f, s: metrics.irs(c * s, f),
    ],
)
def test_codes_beyond_the_magnitude_limit_are_refused(call):
    codes, factors = identity(200, num_factors=2)
    with pytest.raises(ValueError, match=r"codes must lie within \+-1e\+30"):
        call(codes, factors, 1e120)
    call(codes, factors, 1e29 / 9)  # the limit itself is usable


def test_unsupervised_all_constant_codes_score_zero():
    assert metrics.unsupervised(np.ones((100, 3))) == {
        "gaussian_total_correlation": 0.0, "gaussian_wasserstein_correlation": 0.0,
        "gaussian_wasserstein_correlation_norm": 0.0, "mutual_info": 0.0}


def test_wasserstein_is_scaled_so_large_variances_do_not_overflow():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    small = metrics.gaussian_wasserstein_correlation(cov)
    assert metrics.gaussian_wasserstein_correlation(cov * 1e300) == pytest.approx(small * 1e300, rel=1e-12)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda c, f: metrics.mig(c.astype(object), f), TypeError, "mig: codes must hold numbers, got a numpy array of dtype object"),
        # complex codes: the same words for numpy and torch (numpy's once said "must hold numbers")
        (lambda c, f: metrics.mig(c + 0j, f), TypeError, "mig: codes must hold real numbers, got a numpy array of dtype complex128"),
        (lambda c, f: metrics.mig(torch.from_numpy(c + 0j), f), TypeError, "mig: codes must hold real numbers, got torch.complex128"),
        (lambda c, f: metrics.mig(c, f.astype(str)), TypeError, "mig: factors must hold numbers"),
        (lambda c, f: metrics.mig(c.astype(np.longdouble), f), TypeError, "mig: codes has numpy dtype float128"),
        (lambda c, f: metrics.sap(c, f, c, f.astype(object)), TypeError, "sap: test_factors must hold numbers"),
        (lambda c, f: metrics.irs(c, f, diff_quantile="x"), TypeError, "irs: diff_quantile must be a number"),
        (lambda c, f: metrics.irs(c, f, diff_quantile=None), TypeError, "irs: diff_quantile must be a number"),
        (lambda c, f: metrics.irs(c, f, diff_quantile=float("nan")), ValueError, "irs: diff_quantile must be a finite"),
        (lambda c, f: metrics.mig(c, f, bins=10**9), ValueError, "mig: bins must be <= 100000"),
        (lambda c, f: metrics.unsupervised(c, bins=10**6), ValueError, "unsupervised: bins must be <= 100000"),
    ],
)
def test_bad_argument_types_are_named(call, error, match):
    if "float128" in match and np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("longdouble is float64 on this platform")
    codes, factors = identity(200)
    with pytest.raises(error, match=match):
        call(codes, factors)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: metrics.mig_from_mutual_information(torch.ones(1, 2), torch.ones(2)), ValueError, "D >= 2 latents"),
        (lambda: metrics.mig_from_mutual_information(np.ones((3, 2)), np.array([1.0, 0.0])), ValueError,
         r"factor_entropy must be > 0 .* factor\(s\) \[1\]"),
        (lambda: metrics.mig_from_mutual_information(np.ones((3, 2)), np.ones(3)), ValueError, "3 entries for the 2 factors"),
        # a subnormal entropy made the gap inf; so did a gap far above its entropy
        (lambda: metrics.mig_from_mutual_information(np.array([[1.0], [0.0]]), np.array([1e-320])), ValueError,
         r"mig_from_mutual_information: factor_entropy must be > 0 .* at least 2.225e-308 .* factor\(s\) \[0\]"),
        (lambda: metrics.mig_from_mutual_information(np.array([[1.7e308, 1.0], [0.0, 0.0]]), np.array([1e-10, 1.0])),
         ValueError, r"mig_from_mutual_information: the gaps of mutual_info over factor_entropy overflow float64 \(factor 0"),
        (lambda: metrics.mig_from_mutual_information(-np.ones((3, 2)), np.ones(2)), ValueError, "mutual_info must be >= 0"),
        (lambda: metrics.modularity_from_mutual_information(np.array([[np.nan, 1.0]])), ValueError,
         "modularity_from_mutual_information: mutual_info has 1 non-finite"),
        (lambda: metrics.modularity_from_mutual_information(np.array([[-1.0, 1.0]])), ValueError, "mutual_info must be >= 0"),
        (lambda: metrics.modularity_from_mutual_information(np.ones(3)), ValueError, "mutual_info must be 2-D"),
        (lambda: metrics.gaussian_total_correlation(np.ones((2, 3))), ValueError,
         r"gaussian_total_correlation: cov must be a square \[D, D\] matrix"),
        (lambda: metrics.gaussian_total_correlation(np.array([[np.nan, 0], [0, 1.0]])), ValueError, "cov has 1 non-finite"),
        (lambda: metrics.gaussian_wasserstein_correlation(np.ones(3)), ValueError, "gaussian_wasserstein_correlation: cov must be a square"),
    ],
)
def test_public_helpers_check_their_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_mig_from_mutual_information_takes_numpy():
    mi = np.array([[0.9, 0.1], [0.2, 0.5], [0.0, 0.0]])
    h = np.array([1.0, 0.5])
    assert metrics.mig_from_mutual_information(mi, h) == pytest.approx(((0.9 - 0.2) / 1.0 + (0.5 - 0.1) / 0.5) / 2)
