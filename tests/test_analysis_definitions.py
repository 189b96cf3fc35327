"""clusters and principal_directions against their textbook definitions, computed here
independently (exactly, in rational arithmetic, where rounding is the question), on small data:
eta^2 = SS_between / SS_total, F = (SS_between / (C - 1)) / (SS_within / (N - C)), Cohen's d
with the pooled SD, and PCA's explained variance with the N - 1 convention."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

import latentsweep


def exact_anova(codes: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """eta^2 and F per latent in exact rational arithmetic on the codes' float64 values
    (0 where the latent does not vary; F inf where only the clusters' means differ)."""
    values = sorted(set(labels))
    num_rows, num_clusters = len(labels), len(values)
    eta, f_stat = [], []
    for d in range(codes.shape[1]):
        column = [Fraction(float(v)) for v in codes[:, d]]
        grand = sum(column) / num_rows
        groups = {v: [column[i] for i in range(num_rows) if labels[i] == v] for v in values}
        means = {v: sum(g) / len(g) for v, g in groups.items()}
        between = sum(len(groups[v]) * (means[v] - grand) ** 2 for v in values)
        within = sum((x - means[v]) ** 2 for v, g in groups.items() for x in g)
        total = between + within
        eta.append(float(between / total) if total else 0.0)
        if within:
            f_stat.append(float((between / (num_clusters - 1)) / (within / (num_rows - num_clusters))))
        else:
            f_stat.append(float("inf") if between else 0.0)
    return np.array(eta), np.array(f_stat)


def reference_clusters(codes: np.ndarray, labels: np.ndarray):
    values, index = np.unique(labels, return_inverse=True)
    centroids = np.stack([codes[index == c].mean(0) for c in range(len(values))])
    variances = np.stack([codes[index == c].var(0) for c in range(len(values))])
    return values, index, centroids, variances


@pytest.mark.parametrize("seed", range(12))
def test_cluster_statistics_are_their_definitions(seed):
    rng = np.random.default_rng(seed)
    num_rows, latent = int(rng.integers(3, 30)), int(rng.integers(1, 5))
    num_clusters = int(rng.integers(2, num_rows))
    codes = rng.normal(size=(num_rows, latent)) * rng.uniform(0.1, 10, latent) + rng.normal(size=latent)
    labels = np.concatenate([np.arange(num_clusters), rng.integers(0, num_clusters, num_rows - num_clusters)])
    labels = rng.permutation(labels) * 7 - 3  # not 0 .. C-1
    result = latentsweep.clusters(torch.from_numpy(codes), labels)
    values, index, centroids, variances = reference_clusters(codes, labels)
    eta, f_stat = exact_anova(codes, labels.tolist())
    assert result.label_values == tuple(values.tolist())
    assert result.labels.tolist() == index.tolist()
    assert result.sizes.tolist() == np.bincount(index).tolist()
    np.testing.assert_allclose(result.centroids.numpy(), centroids, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.variances.numpy(), variances, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(result.eta_squared.numpy(), eta, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(result.f_statistic.numpy(), f_stat, rtol=1e-10)
    # Cohen's d of the first and last cluster, with the pooled (n - 1) SD.
    i, j = 0, len(values) - 1
    n_i, n_j = (index == i).sum(), (index == j).sum()
    pooled = (n_i * variances[i] + n_j * variances[j]) / max(n_i + n_j - 2, 1)
    with np.errstate(divide="ignore"):
        d = (centroids[j] - centroids[i]) / np.sqrt(pooled)
    np.testing.assert_allclose(result.pair_effect(i, j).numpy(), d, rtol=1e-10)
    difference = centroids[j] - centroids[i]
    np.testing.assert_allclose(result.directions(i, j).vectors[0].numpy(), difference / np.linalg.norm(difference),
                               rtol=1e-12, atol=1e-15)


def test_string_labels_give_the_same_statistics_as_their_integer_codes():
    rng = np.random.default_rng(1)
    codes = torch.from_numpy(rng.normal(size=(12, 3)))
    names = ["b", "a", "c"]
    ints = [int(v) for v in rng.permutation([0, 1, 2] * 4)]
    by_name = latentsweep.clusters(codes, [names[v] for v in ints])
    by_int = latentsweep.clusters(codes, ints)
    assert by_name.label_values == ("a", "b", "c")
    # "a" is cluster 0 for the names and label 1 for the integers.
    assert torch.equal(by_name.centroids[[1, 0, 2]], by_int.centroids)
    assert torch.equal(by_name.eta_squared, by_int.eta_squared)
    assert torch.equal(by_name.f_statistic, by_int.f_statistic)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", range(6))
def test_a_constant_latent_does_not_separate_the_clusters(seed, dtype):
    # The docstring: eta^2 is 0 (and F is 0) for a latent that does not vary. The rounded mean of
    # a constant (sum / n) is an ulp off it, and these latents came out with eta^2 = 1, F = inf.
    rng = np.random.default_rng(seed)
    num_rows = int(rng.integers(20, 60))
    num_clusters = int(rng.integers(2, 12))
    labels = np.concatenate([np.arange(num_clusters), rng.integers(0, num_clusters, num_rows - num_clusters)])
    codes = torch.from_numpy(rng.normal(size=(num_rows, 2)))
    for value in rng.uniform(-10, 10, size=8):
        codes[:, 0] = value
        result = latentsweep.clusters(codes.to(dtype), labels)
        assert result.eta_squared[0] == 0 and result.f_statistic[0] == 0, value
        assert (result.variances[:, 0] == 0).all()
        assert (result.pair_effect(0, num_clusters - 1)[0] == 0)
        assert result.separating_latents(0, num_clusters - 1, top=1) == [1]


@pytest.mark.parametrize("seed", range(6))
def test_a_latent_constant_within_each_cluster_separates_them_completely(seed):
    # The docstring: F is inf when the clusters are constant but differ (and the effect ±inf);
    # the rounded centroids left variances of 1e-30, F of 1e32 and effects of 1e15.
    rng = np.random.default_rng(seed)
    num_rows = int(rng.integers(6, 60))
    labels = np.array([0] * (num_rows // 2) + [1] * (num_rows - num_rows // 2))
    codes = torch.from_numpy(rng.normal(size=(num_rows, 2)))
    for low, high in rng.uniform(-10, 10, size=(8, 2)):
        codes[:, 0] = torch.from_numpy(np.where(labels == 0, low, high))
        result = latentsweep.clusters(codes, labels)
        assert (result.variances[:, 0] == 0).all()
        assert result.eta_squared[0] == 1 and result.f_statistic[0] == float("inf")
        assert result.pair_effect(0, 1)[0] == (float("inf") if high > low else -float("inf"))


@pytest.mark.parametrize("offset", [1e6, 1e10])
def test_cluster_statistics_of_codes_far_from_zero_are_those_of_their_values(offset):
    # SS_between compares centroids: their roundings (eps x offset) were 1e-3 of eta^2 at an offset
    # 1e12 times the spread.
    rng = np.random.default_rng(4)
    for _ in range(5):
        num_rows, num_clusters = int(rng.integers(6, 40)), int(rng.integers(2, 5))
        codes = rng.normal(size=(num_rows, 2)) * 0.01 + offset
        labels = np.concatenate([np.arange(num_clusters), rng.integers(0, num_clusters, num_rows - num_clusters)])
        result = latentsweep.clusters(torch.from_numpy(codes), labels)
        eta, f_stat = exact_anova(codes, labels.tolist())
        np.testing.assert_allclose(result.eta_squared.numpy(), eta, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(result.f_statistic.numpy(), f_stat, rtol=1e-9)


def reference_pca(codes: np.ndarray):
    mean = codes.mean(0)
    covariance = (codes - mean).T @ (codes - mean) / (len(codes) - 1)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(-values, kind="stable")
    return mean, values[order], values[order] / np.trace(covariance), vectors[:, order].T


@pytest.mark.parametrize("method", ["exact", "randomized"])
@pytest.mark.parametrize("seed", range(8))
def test_principal_directions_are_the_covariance_eigenpairs(seed, method):
    rng = np.random.default_rng(seed)
    num_rows, latent = int(rng.integers(2, 30)), int(rng.integers(1, 7))
    codes = rng.normal(size=(num_rows, latent)) * np.linspace(5, 0.5, latent) + rng.normal(size=latent) * 5
    mean, values, ratio, vectors = reference_pca(codes)
    result = latentsweep.principal_directions(torch.from_numpy(codes), method=method, iterations=60)
    k = len(result)
    assert k == min(num_rows - 1, latent)
    np.testing.assert_allclose(result.mean.numpy(), mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.explained_variance.numpy(), values[:k], rtol=1e-9, atol=1e-12 * values[0])
    np.testing.assert_allclose(result.explained_variance_ratio.numpy(), ratio[:k], rtol=1e-9, atol=1e-12)
    for i in range(k):  # components of separated variances, sign: largest entry positive
        gaps = np.abs(np.diff(values))
        if (i > 0 and gaps[i - 1] < 1e-6 * values[0]) or (i < len(gaps) and gaps[i] < 1e-6 * values[0]):
            continue
        expected = vectors[i] * np.sign(vectors[i][np.abs(vectors[i]).argmax()])
        np.testing.assert_allclose(result.vectors[i].numpy(), expected, atol=1e-7)


def test_the_ratios_of_rank_deficient_codes_are_zero_beyond_the_rank():
    rng = np.random.default_rng(2)
    codes = rng.normal(size=(10, 2)) @ rng.normal(size=(2, 6))
    result = latentsweep.principal_directions(torch.from_numpy(codes))
    assert len(result) == 6
    np.testing.assert_allclose(result.explained_variance_ratio[:2].sum().item(), 1.0, rtol=1e-12)
    assert (result.explained_variance_ratio[2:].abs() < 1e-14).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_codes_whose_rows_are_all_equal_are_refused_whatever_their_values(dtype):
    # The rounded mean (sum / N) of a constant column is an ulp off it: equal rows had a total
    # variance of 1e-30 and came out with a PC1 explaining all of it.
    rng = np.random.default_rng(0)
    for _ in range(30):
        num_rows, latent = int(rng.integers(2, 50)), int(rng.integers(1, 4))
        codes = torch.from_numpy(rng.uniform(-10, 10, size=latent)).expand(num_rows, latent).to(dtype)
        with pytest.raises(ValueError, match="principal_directions: the codes do not vary"):
            latentsweep.principal_directions(codes)


@pytest.mark.parametrize("method", ["exact", "randomized"])
def test_a_constant_latent_has_no_variance_and_no_weight_in_the_components(method):
    rng = np.random.default_rng(3)
    for _ in range(20):
        num_rows = int(rng.integers(4, 50))
        codes = torch.from_numpy(rng.normal(size=(num_rows, 3)))
        codes[:, 1] = float(rng.uniform(-10, 10))
        result = latentsweep.principal_directions(codes, method=method)
        assert result.mean[1] == codes[0, 1]  # the mean of equal values is that value
        if len(result) == 3:  # zero up to the roundings of an eigensolver (eps^2 x the largest)
            assert result.explained_variance[2] <= 1e-28 * result.explained_variance[0]
            assert result.explained_variance_ratio[2] <= 1e-28
        assert (result.vectors[:2, 1].abs() <= 1e-14).all()


def test_the_direction_between_float32_centroids_far_from_zero_is_that_of_their_means():
    # The float32 centroids of codes near 1000 hold their 0.01 differences to 4 digits: the
    # direction between them was 0.1% off the one between the codes' means.
    rng = np.random.default_rng(0)
    labels = np.array([0] * 100 + [1] * 100)
    shift = np.array([0.01, -0.02, 0.005, 0.0])
    codes = (1000 + rng.normal(size=(200, 4)) * 0.01 + labels[:, None] * shift).astype(np.float32)
    result = latentsweep.clusters(torch.from_numpy(codes), labels)
    values = codes.astype(np.float64)
    difference = values[labels == 1].mean(0) - values[labels == 0].mean(0)
    direction = result.directions(0, 1)
    assert direction.vectors.dtype == torch.float32
    np.testing.assert_allclose(direction.vectors[0].numpy(), difference / np.linalg.norm(difference), atol=1e-6)


def test_closest_and_farthest_are_those_of_the_centroids():
    rng = np.random.default_rng(5)
    for _ in range(10):
        num_clusters = int(rng.integers(2, 6))
        labels = np.repeat(np.arange(num_clusters), 4)
        codes = rng.normal(size=(len(labels), 3)) + rng.normal(size=(num_clusters, 3))[labels] * 3
        result = latentsweep.clusters(torch.from_numpy(codes), labels)
        _, _, centroids, _ = reference_clusters(codes, labels)
        distance = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
        rows, columns = np.triu_indices(num_clusters, 1)
        pairs = distance[rows, columns]
        low, high = pairs.argmin(), pairs.argmax()
        assert result.closest_and_farthest() == ((rows[low], columns[low]), (rows[high], columns[high]))


def test_a_list_of_numpy_booleans_is_taken_as_the_array_and_python_booleans_are():
    # list(mask) of a numpy mask was refused ("must be all integers or all strings, got bool"),
    # while the mask itself and a list of Python booleans were taken.
    codes = torch.from_numpy(np.random.default_rng(0).normal(size=(8, 2)))
    mask = np.array([True, False] * 4)
    expected = latentsweep.clusters(codes, mask)
    for labels in (list(mask), [bool(v) for v in mask]):
        result = latentsweep.clusters(codes, labels)
        assert result.label_values == expected.label_values == (False, True)
        assert torch.equal(result.labels, expected.labels)
        assert torch.equal(result.eta_squared, expected.eta_squared)


@pytest.mark.parametrize("seed", range(4))
def test_float32_codes_give_the_statistics_of_their_values_in_float32(seed):
    rng = np.random.default_rng(seed)
    codes = (rng.normal(size=(30, 3)) * [1.0, 1e-3, 1e3] + 50).astype(np.float32)
    labels = rng.integers(0, 3, 30)
    labels[:3] = [0, 1, 2]
    result = latentsweep.clusters(torch.from_numpy(codes), labels)
    eta, f_stat = exact_anova(codes.astype(np.float64), labels.tolist())
    assert result.eta_squared.dtype == result.f_statistic.dtype == torch.float32
    np.testing.assert_allclose(result.eta_squared.numpy(), eta, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result.f_statistic.numpy(), f_stat, rtol=1e-6)
    pca = latentsweep.principal_directions(torch.from_numpy(codes))
    _, values, ratio, _ = reference_pca(codes.astype(np.float64))
    assert pca.explained_variance.dtype == torch.float32
    np.testing.assert_allclose(pca.explained_variance.numpy(), values[:3], rtol=1e-6, atol=1e-6 * values[0])
    np.testing.assert_allclose(pca.explained_variance_ratio.numpy(), ratio[:3], rtol=1e-6, atol=1e-7)
