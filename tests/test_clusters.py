"""clusters: centroids, sizes, eta squared and the ANOVA F against direct computations (and
scipy.stats.f_oneway), pairwise effects, directions between centroids, KMeans as scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.cluster import KMeans

import latentsweep


def blobs(num_per=40, latent=5, centres=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(centres, latent, generator=g, dtype=torch.float64) * 4
    means[:, -1] = 0.0  # one latent that does not separate the clusters
    labels = torch.arange(centres).repeat_interleave(num_per)
    codes = means[labels] + torch.randn(len(labels), latent, generator=g, dtype=torch.float64)
    return codes, labels


def direct_statistics(codes: np.ndarray, labels: np.ndarray):
    """eta^2 = SS_between / SS_total per latent, from the definitions with loops."""
    grand = codes.mean(0)
    total = ((codes - grand) ** 2).sum(0)
    between = np.zeros(codes.shape[1])
    for c in np.unique(labels):
        members = codes[labels == c]
        between += len(members) * (members.mean(0) - grand) ** 2
    return between / total


def test_statistics_match_direct_computation_and_scipy():
    codes, labels = blobs()
    got = latentsweep.clusters(codes, labels)
    x, y = codes.numpy(), labels.numpy()
    assert got.method == "labels" and got.label_values == (0, 1, 2) and len(got) == 3
    assert torch.equal(got.labels, labels) and got.sizes.tolist() == [40, 40, 40]
    for c in range(3):
        assert np.allclose(got.centroids[c].numpy(), x[y == c].mean(0), atol=1e-12)
        assert np.allclose(got.variances[c].numpy(), x[y == c].var(0), atol=1e-12)
    assert np.allclose(got.eta_squared.numpy(), direct_statistics(x, y), atol=1e-12)
    f_scipy = scipy.stats.f_oneway(*[x[y == c] for c in range(3)]).statistic
    assert np.allclose(got.f_statistic.numpy(), f_scipy, rtol=1e-10)
    # The non-separating latent explains little; the others a lot.
    assert got.eta_squared[-1] < 0.1 and (got.eta_squared[:-1] > 0.5).all()


def test_statistics_do_not_depend_on_the_block_size(monkeypatch):
    import latentsweep.directions

    codes, labels = blobs(num_per=17, seed=6)
    whole = latentsweep.clusters(codes, labels)
    monkeypatch.setattr(latentsweep.directions, "CHUNK_VALUES", 3 * 5)  # blocks of 3 rows
    blocked = latentsweep.clusters(codes, labels)
    for name in ("centroids", "variances", "eta_squared", "f_statistic"):
        assert torch.allclose(getattr(blocked, name), getattr(whole, name), rtol=1e-12, atol=1e-12), name


def test_user_labels_of_any_kind_keep_their_values():
    codes, labels = blobs(num_per=10, centres=3, seed=1)
    names = np.array(["cat", "dog", "ant"])[labels.numpy()]
    by_name = latentsweep.clusters(codes, list(names))
    assert by_name.label_values == ("ant", "cat", "dog")  # sorted
    assert torch.allclose(by_name.centroids[1], codes[labels == 0].mean(0))
    sparse = latentsweep.clusters(codes, labels * 7 + 2)
    assert sparse.label_values == (2, 9, 16)
    assert torch.allclose(sparse.eta_squared, by_name.eta_squared)
    assert sparse.directions(0, 2).names == ("2->16",)
    assert latentsweep.clusters(latentsweep.Posterior(codes.float()), labels.numpy()).centroids.dtype == torch.float32


def test_kmeans_is_scikit_learns():
    codes, _ = blobs(num_per=30, centres=4, seed=2)
    got = latentsweep.clusters(codes, k=4, seed=3)
    expected = KMeans(n_clusters=4, random_state=3, n_init="auto").fit(codes.numpy())
    assert got.method == "kmeans" and got.label_values == (0, 1, 2, 3)
    assert np.array_equal(got.labels.numpy(), expected.labels_)
    assert np.allclose(got.centroids.numpy(), expected.cluster_centers_, atol=1e-10)
    assert torch.equal(latentsweep.clusters(codes, k=4, seed=3).labels, got.labels)


def test_pair_effect_separating_latents_and_directions():
    codes, labels = blobs(num_per=25, latent=6, centres=3, seed=4)
    got = latentsweep.clusters(codes, labels)
    x, y = codes.numpy(), labels.numpy()
    a, b = x[y == 0], x[y == 2]
    pooled = np.sqrt(((len(a) - 1) * a.var(0, ddof=1) + (len(b) - 1) * b.var(0, ddof=1)) / (len(a) + len(b) - 2))
    cohen = (b.mean(0) - a.mean(0)) / pooled
    assert np.allclose(got.pair_effect(0, 2).numpy(), cohen, rtol=1e-10)
    assert got.separating_latents(0, 2, top=3) == list(np.argsort(-np.abs(cohen), kind="stable")[:3])
    assert got.separating_latents(0, 2, top=3)[0] != 5  # the latent with equal means is not first
    direction = got.directions(0, 2)
    difference = torch.from_numpy(b.mean(0) - a.mean(0))
    assert direction.names == ("0->2",) and direction.source == "clusters"
    assert torch.allclose(direction.vectors[0], difference / difference.norm(), atol=1e-12)
    (near, far) = got.closest_and_farthest()
    distance = torch.cdist(got.centroids, got.centroids)
    assert distance[near] == distance[distance > 0].min() and distance[far] == distance.max()


def test_degenerate_statistics_are_defined():
    codes = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 3.0], [0.0, 3.0]])
    got = latentsweep.clusters(codes, [0, 0, 1, 1])
    assert got.eta_squared.tolist() == [0.0, 1.0]  # constant latent: 0; perfectly separated: 1
    assert got.f_statistic[0] == 0 and got.f_statistic[1] == float("inf")
    assert got.pair_effect(0, 1).tolist() == [0.0, float("inf")]
    with pytest.raises(ValueError, match="same centroid"):
        latentsweep.clusters(torch.tensor([[0.0], [1.0], [0.0], [1.0]]), [0, 0, 1, 1]).directions(0, 1)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((torch.randn(10, 2), [0] * 5 + [1] * 5), {"k": 2}, ValueError, "not both"),
        ((torch.randn(10, 2),), {}, ValueError, "give labels"),
        ((torch.randn(10, 2),), {"k": 1}, ValueError, "k must be >= 2"),
        ((torch.randn(10, 2),), {"k": 10}, ValueError, "k must be <= 9"),
        ((torch.randn(10, 2), [0] * 9), {}, ValueError, "one label per code"),
        ((torch.randn(10, 2), [0] * 10), {}, ValueError, "got 1 cluster"),
        ((torch.randn(4, 2), [0, 1, 2, 3]), {}, ValueError, "clusters < N=4"),
        ((torch.randn(10, 2), torch.zeros(10)), {}, TypeError, "labels must hold integers"),
        ((torch.randn(2, 2),), {"k": 2}, ValueError, "N >= 3"),
        ((torch.randn(4, 2), torch.tensor([0, 1, 0, 1], device="meta")), {}, ValueError, "labels is on the meta device"),
        ((torch.randn(4, 2), torch.tensor([0, 1, 0, 1]).to_sparse()), {}, TypeError, "labels must be a dense"),
        ((torch.full((10, 2), float("inf")),), {"k": 2}, ValueError, "non-finite"),
        ((torch.tensor([[0.0, 0], [1, 1]]).repeat(3, 1),), {"k": 3}, ValueError,
         r"the codes hold only 2 distinct point\(s\), fewer than k=3 clusters; use k <= 2"),
        ((torch.randn(5, 2), [None, 1, 2, 1, 2]), {}, TypeError, "labels must be all integers or all strings, got NoneType, integers"),
        ((torch.randn(5, 2), ["a", 1, "a", 1, "b"]), {}, TypeError, "got integers, strings"),
        ((torch.randn(5, 2), np.array(["a", 1, "a", 1, "b"], dtype=object)), {}, TypeError, "got integers, strings"),
        ((torch.randn(5, 2), [1.5, 2, 3, 1, 1]), {}, TypeError, "got float, integers"),
        ((torch.randn(50, 3, generator=torch.Generator().manual_seed(0)) * 1e37,), {"k": 3}, ValueError,
         r"variances \(.*e\+7.\) overflow torch.float32; pass float64 codes"),
        ((torch.randn(50, 3, dtype=torch.float64) * 1e300,), {"k": 3}, ValueError, "overflow torch.float64; rescale the codes"),
    ],
)
def test_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.clusters(*args, **kwargs)
    assert str(info.value).startswith("latentsweep.clusters:")


@pytest.mark.parametrize("scale", [1e15, 1e-30])
def test_kmeans_clusters_codes_of_extreme_magnitude_as_their_rescaled_copy(scale):
    """KMeans sees the codes scaled to a largest entry of 1 when its float32 squared distances
    would overflow or underflow: the clustering is the one of the rescaled codes, without
    warnings, and the statistics are of the codes as given."""
    codes, _ = blobs(num_per=20, centres=3, seed=4)
    codes = codes.float()
    largest = codes.abs().max()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = latentsweep.clusters(codes * scale, k=3, seed=1)
    expected = latentsweep.clusters(codes / largest, k=3, seed=1)
    assert torch.equal(got.labels, expected.labels)
    assert torch.allclose(got.centroids.double() / scale, latentsweep.clusters(codes, got.labels).centroids.double(), rtol=1e-5)


def test_bad_cluster_indices():
    got = latentsweep.clusters(*blobs(num_per=5))
    with pytest.raises(ValueError, match="j must be <= 2"):
        got.directions(0, 3)
    with pytest.raises(TypeError, match="i must be an int"):
        got.pair_effect(0.5, 1)


@given(
    num_rows=st.integers(4, 40),
    latent=st.integers(1, 5),
    num_clusters=st.integers(2, 4),
    seed=st.integers(0, 10_000),
)
def test_property_eta_squared_and_f_agree_with_each_other(num_rows, latent, num_clusters, seed):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randn(num_rows, latent, generator=g, dtype=torch.float64)
    labels = torch.cat([torch.arange(num_clusters), torch.randint(0, num_clusters, (num_rows - num_clusters,), generator=g)])
    if num_clusters >= num_rows:
        return
    got = latentsweep.clusters(codes, labels)
    eta, f_stat = got.eta_squared, got.f_statistic
    assert ((eta >= 0) & (eta <= 1 + 1e-12)).all() and (f_stat >= 0).all()
    # F = eta^2 / (1 - eta^2) * (N - C) / (C - 1), the identity between the two.
    finite = eta < 1 - 1e-9
    expected = eta / (1 - eta) * (num_rows - num_clusters) / (num_clusters - 1)
    assert torch.allclose(f_stat[finite], expected[finite], rtol=1e-8, atol=1e-10)
    assert int(got.sizes.sum()) == num_rows
    assert torch.allclose((got.sizes[:, None] * got.centroids).sum(0) / num_rows, codes.mean(0), atol=1e-12)


def test_tiny_codes_keep_their_cluster_directions_and_pairs():
    """Differences of 1e-170 codes squared to 0: 'the same centroid', and every pair tied."""
    generator = torch.Generator().manual_seed(0)
    codes = torch.cat([torch.randn(10, 3, generator=generator) + shift for shift in (0.0, 5.0, 50.0)]).double()
    labels = [0] * 10 + [1] * 10 + [2] * 10
    ordinary = latentsweep.clusters(codes, labels=labels)
    tiny = latentsweep.clusters(codes * 1e-170, labels=labels)
    assert tiny.closest_and_farthest() == ordinary.closest_and_farthest() == ((0, 1), (0, 2))
    torch.testing.assert_close(tiny.directions(0, 1).vectors, ordinary.directions(0, 1).vectors, rtol=1e-12, atol=0)
