"""principal_directions and Directions against numpy.linalg.svd of the centred codes."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import latentsweep
import latentsweep.directions
from latentsweep import principal


def codes_with_spectrum(num_rows=400, latent=8, seed=0, spread=None, dtype=torch.float64):
    """Codes with well-separated principal variances (stable eigenvectors) and a non-zero mean."""
    g = torch.Generator().manual_seed(seed)
    spread = spread if spread is not None else torch.linspace(3.0, 0.2, latent, dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(latent, latent, generator=g, dtype=torch.float64)).Q
    z = torch.randn(num_rows, latent, generator=g, dtype=torch.float64) * spread
    return (z @ rotation.T + torch.randn(latent, generator=g, dtype=torch.float64) * 5).to(dtype)


def numpy_pca(codes: np.ndarray):
    """The textbook PCA: SVD of the centred data; sign: largest-|entry| of each vector positive."""
    centred = codes - codes.mean(0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    largest = np.abs(vt).argmax(1)
    vt = vt * np.sign(vt[np.arange(len(vt)), largest])[:, None]
    variance = singular**2 / (codes.shape[0] - 1)
    total = codes.var(0, ddof=1).sum()
    return vt, variance, variance / total, codes.mean(0)


@pytest.mark.parametrize("num_rows, latent", [(400, 8), (50, 3), (5, 12), (1000, 1)])
def test_matches_numpy_svd(num_rows, latent):
    codes = codes_with_spectrum(num_rows, latent)
    got = latentsweep.principal_directions(codes)
    vt, variance, ratio, mean = numpy_pca(codes.numpy())
    k = min(num_rows - 1, latent)
    assert len(got) == k and got.names == tuple(f"PC{i + 1}" for i in range(k))
    assert got.source == "pca" and got.vectors.dtype == torch.float64
    assert np.allclose(got.vectors.numpy(), vt[:k], atol=1e-9)
    assert np.allclose(got.explained_variance.numpy(), variance[:k], rtol=1e-9, atol=1e-12)
    assert np.allclose(got.explained_variance_ratio.numpy(), ratio[:k], rtol=1e-9, atol=1e-12)
    assert np.allclose(got.mean.numpy(), mean, atol=1e-12)
    assert torch.allclose(got.vectors @ got.vectors.T, torch.eye(k, dtype=torch.float64), atol=1e-10)


def test_top_k_float32_codes_and_posterior():
    codes = codes_with_spectrum(600, 10, seed=3)
    full = latentsweep.principal_directions(codes)
    top = latentsweep.principal_directions(codes.float(), k=3)
    assert top.vectors.dtype == torch.float32 and len(top) == 3
    assert torch.allclose(top.vectors.double(), full.vectors[:3], atol=1e-5)
    assert torch.allclose(top.explained_variance_ratio.double(), full.explained_variance_ratio[:3], rtol=1e-5)
    posterior = latentsweep.Posterior(codes, torch.zeros_like(codes))
    assert torch.equal(latentsweep.principal_directions(posterior).vectors, full.vectors)


def test_deterministic_and_independent_of_row_order_and_chunking(monkeypatch):
    codes = codes_with_spectrum(500, 6, seed=4)
    first = latentsweep.principal_directions(codes)
    assert torch.equal(first.vectors, latentsweep.principal_directions(codes).vectors)
    shuffled = latentsweep.principal_directions(codes[torch.randperm(500, generator=torch.Generator().manual_seed(1))])
    assert torch.allclose(shuffled.vectors, first.vectors, atol=1e-10)  # signs fixed by the data, not the order
    monkeypatch.setattr(latentsweep.directions, "CHUNK_VALUES", 7 * 6)  # blocks of 7 rows
    chunked = latentsweep.principal_directions(codes)
    assert torch.allclose(chunked.vectors, first.vectors, atol=1e-10)
    assert torch.allclose(chunked.explained_variance, first.explained_variance, rtol=1e-12)


def test_sign_rule_largest_entry_positive():
    got = latentsweep.principal_directions(-codes_with_spectrum(300, 5, seed=5))
    largest = got.vectors.abs().argmax(1)
    assert (got.vectors.gather(1, largest[:, None]) > 0).all()


def test_tied_entries_of_opposite_sign_keep_their_sign_whatever_the_row_order():
    """Codes (t, -t, noise): the top component is (1, -1, 0) / sqrt(2) up to a rounding that the
    order of the rows decides; by the largest entry alone, 44 of 200 shuffles flipped it."""
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        t = 3 * torch.randn(500, 1, generator=g, dtype=torch.float64)
        codes = torch.cat([t, -t, 0.1 * torch.randn(500, 1, generator=g, dtype=torch.float64)], 1)
        first = latentsweep.principal_directions(codes).vectors[0]
        shuffled = latentsweep.principal_directions(codes[torch.randperm(500, generator=g)]).vectors[0]
        torch.testing.assert_close(shuffled, first, rtol=0, atol=1e-9)
        assert first[0] > 0 > first[1]  # the first of the tied entries is the positive one


def test_randomized_matches_exact_on_the_leading_components(monkeypatch):
    spread = torch.cat([torch.tensor([10.0, 7.0, 5.0, 3.0]), torch.full((156,), 0.1)]).double()
    codes = codes_with_spectrum(3000, 160, seed=6, spread=spread)
    exact = latentsweep.principal_directions(codes, k=4, method="exact")
    randomized = latentsweep.principal_directions(codes, k=4, method="randomized")
    assert torch.allclose(randomized.vectors, exact.vectors, atol=1e-6)
    assert torch.allclose(randomized.explained_variance, exact.explained_variance, rtol=1e-8)
    assert torch.allclose(randomized.explained_variance_ratio, exact.explained_variance_ratio, rtol=1e-8)
    # "auto" switches to the randomised method above EXACT_MAX_DIM latents (64 components by default).
    monkeypatch.setattr(principal, "EXACT_MAX_DIM", 100)
    auto = latentsweep.principal_directions(codes)
    assert len(auto) == principal.RANDOMIZED_DEFAULT_K
    assert torch.allclose(auto.vectors[:4], exact.vectors, atol=1e-6)


def test_directions_from_user_vectors_subset_and_projection():
    user = latentsweep.Directions.from_vectors(torch.tensor([[3.0, 4.0], [0.0, -2.0]]))
    assert user.names == ("u0", "u1") and user.source == "user" and user.explained_variance is None
    assert torch.allclose(user.vectors, torch.tensor([[0.6, 0.8], [0.0, -1.0]]))
    pcs = latentsweep.principal_directions(codes_with_spectrum(200, 4))
    top = pcs[:2]
    assert top.names == ("PC1", "PC2") and top.explained_variance.shape == (2,)
    assert pcs[3].names == ("PC4",)
    codes = codes_with_spectrum(10, 4, seed=9)
    assert torch.allclose(pcs.project(codes), codes @ pcs.vectors.T)
    with pytest.raises(ValueError, match="zero"):
        latentsweep.Directions.from_vectors(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="vectors must be 2-D"):
        latentsweep.Directions(torch.ones(3), ("a",))
    with pytest.raises(ValueError, match="2 vectors but 1 names"):
        latentsweep.Directions(torch.eye(2), ("a",))


def test_directions_that_are_not_unit_rows_or_of_the_wrong_sizes_are_refused():
    D = latentsweep.Directions
    unit = torch.eye(3)[:2]
    for vectors, error, match in [
        (torch.ones(2, 3), ValueError, r"vectors must be unit rows; row\(s\) \[0, 1\] have norm\(s\) \[1.73.*from_vectors"),
        (torch.zeros(2, 3), ValueError, "must be unit rows"),
        (torch.tensor([[float("nan"), 0, 0], [1.0, 0, 0]]), ValueError, "vectors has 1 non-finite"),
        (torch.empty(0, 3), ValueError, r"vectors must be \[K >= 1, D >= 1\]"),
        (torch.eye(2, dtype=torch.int64), TypeError, "vectors must be float16"),
    ]:
        with pytest.raises(error, match=match):
            D(vectors, tuple(f"u{k}" for k in range(len(vectors))))
    for kwargs, error, match in [
        (dict(names="ab"), TypeError, "names must be a sequence of K=2 strings"),
        (dict(names=(0, 1)), TypeError, "names must be a sequence"),
        (dict(explained_variance=torch.ones(3)), ValueError, r"explained_variance must be \[K=2\], got shape \(3,\)"),
        (dict(explained_variance_ratio=torch.tensor([0.5, -0.1])), ValueError, "explained_variance_ratio must be >= 0"),
        (dict(mean=torch.zeros(2)), ValueError, r"mean must be \[D=3\]"),
        (dict(mean=torch.tensor([0.0, float("inf"), 0.0])), ValueError, "mean has 1 non-finite"),
        (dict(mean=torch.zeros(3, device="meta")), ValueError, "meta device"),
        (dict(source=3), TypeError, "source must be a str"),
    ]:
        with pytest.raises(error, match=match):
            D(unit, **{"names": ("a", "b"), **kwargs})
    # Roundings of a low-precision dtype are within tolerance; names become a tuple.
    half = D(latentsweep.Directions.from_vectors(torch.randn(4, 7)).vectors.bfloat16(), ["a", "b", "c", "d"])
    assert half.names == ("a", "b", "c", "d")


def test_directions_indexing_and_equality():
    pcs = latentsweep.principal_directions(codes_with_spectrum(200, 4))
    assert pcs[-1].names == ("PC4",) and pcs[[2, 0]].names == ("PC3", "PC1")
    assert pcs[np.array([1, 3])].names == ("PC2", "PC4")
    assert pcs[[True, False, False, True]].names == pcs[torch.tensor([True, False, False, True])].names == ("PC1", "PC4")
    assert pcs[:2].mean is pcs.mean and torch.equal(pcs[1:3].explained_variance, pcs.explained_variance[1:3])
    for index, error, match in [
        (4, IndexError, r"cannot select directions 4 from 4 direction\(s\)"),
        (slice(2, 2), IndexError, r"selects none of the 4 direction\(s\)"),
        ("PC1", TypeError, "index must be an int in -K..K-1, a slice"),
        (1.5, TypeError, "index must be"),
        ((0, 1), TypeError, "index must be"),
        (torch.tensor([0.0]), TypeError, "got a torch.float32 tensor"),
        ([True, False], IndexError, "cannot select"),
        (2**70, IndexError, "cannot select"),
    ]:
        with pytest.raises(error, match=match):
            pcs[index]
    assert pcs == pcs[:] and pcs[:2] == pcs[[0, 1]] and pcs != pcs[:3] and pcs != pcs.to(torch.float32)
    assert pcs != "pcs" and pcs[:1] != latentsweep.Directions(pcs.vectors[:1], ("PC1",))
    with pytest.raises(TypeError, match="unhashable"):
        hash(pcs)


@pytest.mark.parametrize("method", ["exact", "randomized"])
@pytest.mark.parametrize("scale", [1e-310, 1e-300, 1e-160, 1e140])
def test_tiny_and_huge_codes_have_the_same_directions(scale, method):
    """Codes of 1e-300 were "all equal": their squares underflowed to 0 (1e160: overflowed)."""
    codes = codes_with_spectrum(200, 5)
    unit = latentsweep.principal_directions(codes, method=method)
    # (variances below float64's normal numbers are said: explained_variance cannot hold them)
    below = float(unit.explained_variance.sum()) * scale * scale < torch.finfo(torch.float64).tiny
    with pytest.warns(RuntimeWarning, match="below the smallest normal") if below else contextlib.nullcontext():
        got = latentsweep.principal_directions(codes * scale, method=method)
    torch.testing.assert_close(got.vectors, unit.vectors, rtol=0, atol=1e-9)
    torch.testing.assert_close(got.explained_variance_ratio, unit.explained_variance_ratio, rtol=1e-12, atol=0)
    torch.testing.assert_close(got.mean, unit.mean * scale, rtol=1e-9, atol=0)
    # The variances are scale^2 times, where a float64 holds that (not at 1e-310^2 = 0).
    expected = unit.explained_variance * scale * scale
    torch.testing.assert_close(got.explained_variance, expected, rtol=1e-9, atol=1e-320)


def test_codes_whose_variance_no_float64_holds_are_refused_with_its_size():
    """At 1e300 the variance (~1e600) does not fit a float64: said as it is, not as inf."""
    codes = codes_with_spectrum(200, 5) * 1e300
    with pytest.raises(ValueError, match=r"total variance \(\d\.\d+e\+601\) overflows torch.float64; rescale the codes"):
        latentsweep.principal_directions(codes)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((torch.zeros(1, 3),), {}, ValueError, "N >= 2"),
        ((torch.zeros(4, 3),), {}, ValueError, "do not vary"),
        ((torch.tensor([[0.0, float("nan")], [1.0, 2.0]]),), {}, ValueError, "non-finite"),
        ((torch.ones(4),), {}, ValueError, "2-D"),
        ((torch.tensor([[-1.7e30], [2.5e29], [-6.1e29]]),), {}, ValueError, r"variance \(9.*e\+59\) overflows torch.float32; pass float64"),
        ((torch.tensor([[-1e300], [1e300], [0.0]], dtype=torch.float64),), {}, ValueError, "overflows torch.float64"),  # ([N, *latent_shape] is flattened: test_structured_latents)
        ((np.ones((4, 3)),), {}, TypeError, "torch.Tensor"),
        ((torch.randn(5, 3),), {"k": 4}, ValueError, "k must be <= 3"),
        ((torch.randn(5, 3),), {"k": 0}, ValueError, "k must be >= 1"),
        ((torch.randn(5, 3),), {"method": "svd"}, ValueError, "method must be one of"),
        ((torch.randn(5, 3),), {"seed": -1}, ValueError, "seed must be >= 0"),
    ],
)
def test_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.principal_directions(*args, **kwargs)
    assert str(info.value).startswith("latentsweep.principal_directions:")


@given(
    num_rows=st.integers(2, 40),
    latent=st.integers(1, 12),
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_property_orthonormal_ordered_and_a_share_of_the_variance(num_rows, latent, seed, scale, dtype):
    codes = (torch.randn(num_rows, latent, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale).to(dtype)
    got = latentsweep.principal_directions(codes)
    k = len(got)
    gram = got.vectors.double() @ got.vectors.double().T
    assert torch.allclose(gram, torch.eye(k, dtype=torch.float64), atol=1e-5)
    variance = got.explained_variance.double()
    assert (variance[:-1] >= variance[1:] - 1e-9 * variance[0]).all()
    assert float(got.explained_variance_ratio.double().sum()) <= 1 + 1e-5
    # The variance along each vector, measured directly, is its explained variance.
    centred = codes.double() - codes.double().mean(0)
    along = (centred @ got.vectors.double().T).var(0, unbiased=True)
    assert torch.allclose(along, variance, rtol=1e-4, atol=1e-6 * float(variance[0]))


@pytest.mark.parametrize("dtype, scales, checked", [(torch.float64, (1e-8, 1.0, 1e8), 2),
                                                    (torch.float64, (1e-6, 1.0, 1e6), 3),
                                                    (torch.float32, (1e-6, 1.0, 1e6), 3)])
def test_exact_components_spanning_more_than_eigh_resolves_keep_their_order(dtype, scales, checked):
    """The covariance squares the codes' condition number: eigh of it resolved eigenvalues to
    ~eps x the largest, and columns scaled 1e-8, 1, 1e8 came out with the 1e-8 column second.
    Against the SVD of the centred codes, for the variances float64 can resolve at all (the
    1e-16 of the first case is below the rounding of the 1e8 column, for the SVD too)."""
    g = torch.Generator().manual_seed(3)
    codes = (torch.randn(300, len(scales), generator=g, dtype=torch.float64) * torch.tensor(scales, dtype=torch.float64)).to(dtype)
    directions = latentsweep.principal_directions(codes, method="exact")
    centred = codes.double() - codes.double().mean(0)
    expected = torch.linalg.svdvals(centred) ** 2 / (codes.shape[0] - 1)
    torch.testing.assert_close(directions.explained_variance.double()[:checked], expected[:checked], rtol=1e-6, atol=0)
    order = torch.argsort(torch.tensor(scales), descending=True)
    assert directions.vectors.abs().argmax(dim=1).tolist() == order.tolist()


def codes_with_spread(dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(6)
    return (torch.randn(200, 5, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2, 1, 0.5, 0.1],
                                                                                    dtype=torch.float64)).to(dtype)




def test_explained_variance_float32_cannot_hold_is_said():
    """float32 codes of 1e-23: variances of 1e-46, every explained_variance 0 in float32, silently
    (the ratios, computed over the codes' scale, were right). Now a warning says so and what to do."""
    codes = codes_with_spread(torch.float32)
    plain = latentsweep.principal_directions(codes)
    with pytest.warns(RuntimeWarning, match=r"total variance \(1\.\d+e-45\) is below the smallest normal "
                                            r"torch\.float32 .*pass float64 codes"):
        tiny = latentsweep.principal_directions(codes * 1e-23)
    torch.testing.assert_close(tiny.explained_variance_ratio, plain.explained_variance_ratio)
    float64 = latentsweep.principal_directions(codes.double() * 1e-23)  # (what the warning advises: no warning)
    torch.testing.assert_close(float64.explained_variance, plain.explained_variance.double() * 1e-46, rtol=1e-6, atol=0)
