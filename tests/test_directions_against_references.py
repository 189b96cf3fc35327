"""Directions, clusters and paths against independent references: scikit-learn's PCA and KMeans,
slerp's closed form, and traverse's own codes for direction_codes of a Directions."""

import math

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

import latentsweep as ls


def _codes(num_rows, latent, rank=None, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    rank = rank or latent
    mixing = torch.randn(rank, latent, generator=generator, dtype=torch.float64)
    codes = torch.randn(num_rows, rank, generator=generator, dtype=torch.float64) @ mixing + 3.0
    return codes.to(dtype)


@pytest.mark.parametrize("num_rows, latent, rank, k", [(200, 6, None, None), (5, 12, None, None), (60, 8, 3, 3)],
                         ids=["N>D", "N<D", "rank 3"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_principal_directions_are_sklearns_pca(num_rows, latent, rank, k, dtype):
    codes = _codes(num_rows, latent, rank, dtype)
    found = ls.principal_directions(codes, k)
    reference = PCA(n_components=len(found)).fit(codes.double().numpy())  # (on the same values)
    tolerance = 1e-10 if dtype == torch.float64 else 1e-5
    assert found.vectors.dtype == dtype
    # sklearn's signs are its own: ours make each vector's largest-magnitude entry positive.
    vectors = torch.from_numpy(reference.components_)
    largest = vectors.abs().argmax(dim=1, keepdim=True)
    vectors = vectors * vectors.gather(1, largest).sign()
    torch.testing.assert_close(found.vectors.double(), vectors, atol=tolerance, rtol=0)
    torch.testing.assert_close(found.explained_variance.double(), torch.from_numpy(reference.explained_variance_),
                               atol=tolerance * reference.explained_variance_[0], rtol=0)
    torch.testing.assert_close(found.explained_variance_ratio.double(),
                               torch.from_numpy(reference.explained_variance_ratio_), atol=tolerance, rtol=0)
    torch.testing.assert_close(found.mean.double(), torch.from_numpy(reference.mean_), atol=tolerance * 10, rtol=0)


def test_kmeans_clusters_are_sklearns_with_the_same_seed_and_directions_go_from_i_to_j():
    generator = torch.Generator().manual_seed(1)
    centres = 5 * torch.randn(4, 5, generator=generator, dtype=torch.float64)
    codes = (centres[:, None] + torch.randn(4, 30, 5, generator=generator, dtype=torch.float64)).reshape(120, 5)
    found = ls.clusters(codes, k=4, seed=7)
    reference = KMeans(n_clusters=4, random_state=7, n_init="auto").fit(codes.numpy())
    assert np.array_equal(found.labels.numpy(), reference.labels_)  # (its labels are 0..3, all used)
    torch.testing.assert_close(found.centroids, torch.from_numpy(reference.cluster_centers_), atol=1e-12, rtol=0)
    for i, j in [(0, 3), (3, 0), (1, 2)]:
        direction = found.directions(i, j)
        difference = found.centroids[j] - found.centroids[i]
        torch.testing.assert_close(direction.vectors[0], difference / difference.norm(), atol=1e-15, rtol=0)
        assert direction.names == (f"{i}->{j}",)


def _angles(codes):
    unit = codes / torch.linalg.vector_norm(codes, dim=-1, keepdim=True)
    return 2 * torch.atan2(torch.linalg.vector_norm(unit[:, 1:] - unit[:, :-1], dim=-1),
                           torch.linalg.vector_norm(unit[:, 1:] + unit[:, :-1], dim=-1))


def test_slerp_is_the_closed_form_at_constant_angular_speed_between_codes_of_equal_norm():
    generator = torch.Generator().manual_seed(2)
    start = torch.randn(3, 16, generator=generator, dtype=torch.float64)
    end = torch.randn(3, 16, generator=generator, dtype=torch.float64) * torch.tensor([[1.0], [2.0], [0.5]])
    codes = ls.interpolation_codes(start, end, steps=9, path="slerp")
    theta = torch.arccos(torch.nn.functional.cosine_similarity(start, end))[:, None, None]
    t = torch.linspace(0, 1, 9, dtype=torch.float64)[None, :, None]
    closed = (torch.sin((1 - t) * theta) * start[:, None] + torch.sin(t * theta) * end[:, None]) / torch.sin(theta)
    torch.testing.assert_close(codes, closed, atol=1e-13, rtol=0)
    assert torch.equal(codes[:, 0], start) and torch.equal(codes[:, -1], end)
    # Endpoints of equal norm: the norm is kept and consecutive steps are equal angles apart.
    end = end / torch.linalg.vector_norm(end, dim=1, keepdim=True) * torch.linalg.vector_norm(start, dim=1, keepdim=True)
    codes = ls.interpolation_codes(start, end, steps=9, path="slerp")
    norms = torch.linalg.vector_norm(codes, dim=-1)
    torch.testing.assert_close(norms, norms[:, :1].expand_as(norms), atol=1e-13, rtol=0)
    angles = _angles(codes)
    torch.testing.assert_close(angles, angles[:, :1].expand_as(angles), atol=1e-13, rtol=0)


def test_slerp_between_opposite_or_zero_endpoints_is_the_line_as_documented():
    start = torch.tensor([3.0, -4.0], dtype=torch.float64)
    with pytest.warns(UserWarning, match="opposite endpoints"):
        opposite = ls.interpolation_codes(start, -start, steps=5, path="slerp")
    assert torch.equal(opposite, ls.interpolation_codes(start, -start, steps=5))
    zero = ls.interpolation_codes(torch.zeros(2, dtype=torch.float64), start, steps=5, path="slerp")
    assert torch.equal(zero, ls.interpolation_codes(torch.zeros(2, dtype=torch.float64), start, steps=5))
    assert not math.isnan(float(zero.sum()))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_paths_end_exactly_at_their_endpoints_in_every_dtype(dtype, path):
    generator = torch.Generator().manual_seed(3)
    start = (100 * torch.randn(4, 7, generator=generator)).to(dtype)
    end = (100 * torch.randn(4, 7, generator=generator)).to(dtype)
    codes = ls.interpolation_codes(start, end, steps=6, path=path)
    assert codes.dtype == dtype and bool(torch.isfinite(codes).all())
    assert torch.equal(codes[:, 0], start) and torch.equal(codes[:, -1], end)


@pytest.mark.parametrize("anchors_dtype", [torch.float64, torch.float32, torch.float16])
@pytest.mark.parametrize("vectors_dtype", [torch.float64, torch.float32])
def test_direction_codes_of_a_directions_are_traverses_codes(anchors_dtype, vectors_dtype):
    """A Directions' vectors are unit to 1e-5: principal directions of float32 codes cast to
    float64 were refused by direction_codes (norm 1 - 2.6e-8, beyond float64's sqrt(eps)),
    while traverse and traversal_values took them."""
    codes = _codes(100, 6, dtype=torch.float32)
    directions = ls.principal_directions(codes, 3).to(vectors_dtype)
    anchors, values = codes[:2].to(anchors_dtype), torch.linspace(-2, 2, 5).to(anchors_dtype)
    grid = ls.direction_codes(anchors, directions, values)
    swept = ls.traverse(lambda z: z.clone(), anchors, directions=directions, values=values, progress=False)
    assert torch.equal(grid, swept.outputs.reshape(-1, 6))
    # A tensor is still held to the op's rule for the anchors' dtype.
    if anchors_dtype == torch.float64 and vectors_dtype == torch.float64:
        with pytest.raises(ValueError, match="latentsweep.direction_codes: directions must have unit length"):
            ls.direction_codes(anchors, directions.vectors.float().double() * (1 + 1e-7), values)


def test_direction_codes_takes_every_directions_that_traverse_takes():
    """Directions accepts rows within 1e-5 of unit length (e.g. normalised in float32, stored
    as float64); direction_codes refused them (float64's sqrt(eps) is 1.5e-8)."""
    unit = torch.nn.functional.normalize(torch.tensor([[1.0, 2.0, 2.0], [0.0, 3.0, 4.0]], dtype=torch.float64))
    directions = ls.Directions(unit * (1 + 1e-6), ("a", "b"))
    anchors, values = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64), torch.tensor([-1.0, 0.0, 1.0]).double()
    grid = ls.direction_codes(anchors, directions, values)
    swept = ls.traverse(lambda z: z.clone(), anchors, directions=directions, values=values, progress=False)
    assert torch.equal(grid, swept.outputs.reshape(-1, 3))
    torch.testing.assert_close(grid, ls.direction_codes(anchors, unit, values), atol=1e-15, rtol=0)
