"""principal_directions and diagnose at large latent sizes (D in the thousands): the routes that
avoid the D x D eigendecomposition against the plain computation they replace.

- Codes of at most GRAM_MAX_ROWS_PER_LATENT x D rows are decomposed through their N x N Gram
  matrix (the directions X^T u orthonormalised) instead of the D x D covariance.
- A few components of a large CPU covariance (PARTIAL_MIN_SIZE, PARTIAL_MAX_SHARE) are the only
  eigenvectors computed (LAPACK's dsyevr through scipy).
- A D x D QR of the directions found is formed only when more components are still wanted.
- diagnose's Wasserstein correlation of the covariance it formed skips the checks of a caller's
  matrix (a D x D eigvalsh).

Each is compared with the reference below, written in plain torch: the float64 covariance,
every eigenvector from torch.linalg.eigh, descending, each one's largest entry positive. The
sizes are small: the thresholds are lowered where a test needs a route at its size.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

import latentsweep as ls
import latentsweep.directions
from latentsweep import principal
from latentsweep.metrics import unsupervised_scores


def reference(codes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(vectors [k, D], explained variance [k], ratio [k]) of the centred covariance's eigh."""
    x = codes.double()
    centred = x - x.mean(0)
    covariance = centred.T @ centred / (x.shape[0] - 1)
    values, vectors = torch.linalg.eigh(covariance)
    order = torch.argsort(values, descending=True)[:k]
    values, vectors = values[order], vectors[:, order].T
    largest = vectors.abs().argmax(dim=1, keepdim=True)
    vectors = vectors * torch.sign(vectors.gather(1, largest))
    return vectors, values, values / torch.diagonal(covariance).sum()


def spread_codes(num_rows: int, latent: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    """Codes with a few dominant, well-separated directions (SDs 8, 6, 4.5, 3.4, 2.5, 1.9) plus
    noise of SD 0.1 and a non-zero mean: the leading eigenvectors are well defined."""
    g = torch.Generator().manual_seed(seed)
    sds = 8 * 0.75 ** torch.arange(6, dtype=torch.float64)
    basis = torch.linalg.qr(torch.randn(latent, len(sds), generator=g, dtype=torch.float64)).Q.T
    z = torch.randn(num_rows, len(sds), generator=g, dtype=torch.float64) * sds
    noise = 0.1 * torch.randn(num_rows, latent, generator=g, dtype=torch.float64)
    return (z @ basis + noise + torch.randn(latent, generator=g, dtype=torch.float64)).to(dtype)


class Calls:
    """The shapes of the matrices torch.linalg.eigh and torch.linalg.qr (with its mode) were
    called on, and the subsets scipy's eigh was asked for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import scipy.linalg

        self.eigh, self.qr, self.subsets = [], [], []
        eigh, qr, subset_eigh = torch.linalg.eigh, torch.linalg.qr, scipy.linalg.eigh

        def spy_eigh(matrix, *args, **kwargs):
            self.eigh.append(tuple(matrix.shape))
            return eigh(matrix, *args, **kwargs)

        def spy_qr(matrix, mode="reduced"):
            self.qr.append((tuple(matrix.shape), mode))
            return qr(matrix, mode=mode)

        def spy_subset_eigh(matrix, *args, **kwargs):
            self.subsets.append((matrix.shape, kwargs.get("subset_by_index")))
            return subset_eigh(matrix, *args, **kwargs)

        monkeypatch.setattr(torch.linalg, "eigh", spy_eigh)
        monkeypatch.setattr(torch.linalg, "qr", spy_qr)
        monkeypatch.setattr(scipy.linalg, "eigh", spy_subset_eigh)


@contextlib.contextmanager
def linalg_calls():
    """The Calls made inside the block (the references' own calls stay outside)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield Calls(monkeypatch)


def assert_matches_reference(got: ls.Directions, codes: torch.Tensor, atol: float) -> None:
    k = len(got)
    vectors, variance, ratio = reference(codes, k)
    torch.testing.assert_close(got.vectors.double(), vectors, rtol=0, atol=atol)
    torch.testing.assert_close(got.explained_variance.double(), variance, rtol=atol, atol=atol * float(variance[0]))
    torch.testing.assert_close(got.explained_variance_ratio.double(), ratio, rtol=atol, atol=atol)
    gram = got.vectors.double() @ got.vectors.double().T
    torch.testing.assert_close(gram, torch.eye(k, dtype=torch.float64), rtol=0, atol=atol)


TOLERANCE = {torch.float64: 1e-9, torch.float32: 2e-6}  # (float32 results: their rounding)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("num_rows, latent, route", [(20, 80, "gram"), (60, 80, "gram"), (61, 80, "covariance"),
                                                     (200, 80, "covariance")])
@pytest.mark.parametrize("k", [2, 5])  # (of the 6 dominant, well-separated directions)
def test_each_route_gives_the_covariances_eigenvectors(num_rows, latent, route, k, dtype):
    """At most 0.75 D rows: the Gram matrix (N x N) is the only one decomposed; above: the
    covariance (D x D). Either way the reference's components, signs and variances, and no
    complete D x D QR once the first pass found all k (before: formed whenever eigenvalues were
    left unresolved, as 61 rows' rank 60 < 80 always leaves them)."""
    codes = spread_codes(num_rows, latent, dtype)
    with linalg_calls() as calls:
        got = ls.principal_directions(codes, k)
    size = num_rows if route == "gram" else latent
    assert calls.eigh == [(size, size)] and "complete" not in [mode for _, mode in calls.qr]
    assert got.vectors.dtype == dtype
    assert_matches_reference(got, codes, TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_component_of_fewer_rows_than_latents_comes_from_the_gram_matrix(dtype):
    """k = N - 1, all there are: the noise's components too (eigenvalues ~0.01 to 0.05, apart
    enough for eigenvectors to 1e-7), without any D x D matrix (before: eigh of the 80 x 80
    covariance, then a complete 80 x 80 QR of the directions found, for nothing)."""
    codes = spread_codes(30, 80, dtype, seed=1)
    with linalg_calls() as calls:
        got = ls.principal_directions(codes)
    assert len(got) == 29 and calls.eigh == [(30, 30)]
    assert [shape for shape, _ in calls.qr] == [(80, 29)]  # (the directions orthonormalised)
    assert_matches_reference(got, codes, 1e-7 if dtype == torch.float64 else 2e-6)


def test_the_gram_route_holds_across_blocks_of_rows_row_orders_and_calls(monkeypatch):
    codes = spread_codes(40, 90, seed=2)
    whole = ls.principal_directions(codes, 8)
    assert torch.equal(ls.principal_directions(codes, 8).vectors, whole.vectors)  # same bits on every call
    shuffled = ls.principal_directions(codes[torch.randperm(40, generator=torch.Generator().manual_seed(3))], 8)
    torch.testing.assert_close(shuffled.vectors, whole.vectors, rtol=0, atol=1e-10)
    monkeypatch.setattr(latentsweep.directions, "CHUNK_VALUES", 7 * 90)  # blocks of 7 rows, concatenated
    torch.testing.assert_close(ls.principal_directions(codes, 8).vectors, whole.vectors, rtol=0, atol=1e-10)


def test_the_sign_rule_holds_on_the_gram_route():
    """Codes (t, -t, small noise on 38 more latents), 10 rows: the top component is
    (1, -1, 0, ...) / sqrt(2) up to rounding, and the first of its tied entries is the positive one."""
    g = torch.Generator().manual_seed(4)
    t = 3 * torch.randn(10, 1, generator=g, dtype=torch.float64)
    codes = torch.cat([t, -t, 0.01 * torch.randn(10, 38, generator=g, dtype=torch.float64)], 1)
    got = ls.principal_directions(-codes)
    first = got.vectors[0]
    assert first[0] > 0 > first[1] and float(first[0]) == pytest.approx(2**-0.5, abs=1e-4)
    largest = got.vectors.abs().argmax(dim=1, keepdim=True)
    assert bool((got.vectors.gather(1, largest) > 0).all())


@pytest.mark.parametrize("route", ["gram", "covariance"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_components_beyond_the_rank_are_orthonormal_and_carry_no_variance(route, dtype, monkeypatch):
    """Three distinct rows, each twice, of 10 latents: rank 2 after centring, k = 5 allowed
    (min(N - 1, D)). The components beyond the rank are recomputed in the complement of those
    found (RESOLVED_SHARE): orthonormal, orthogonal to the first two, explained variance 0 to
    rounding, the same bits on every call; which directions they are is arbitrary (the two
    routes differ there), the first two are the reference's."""
    monkeypatch.setattr(principal, "GRAM_MAX_ROWS_PER_LATENT", 0.75 if route == "gram" else 0.0)
    g = torch.Generator().manual_seed(5)
    codes = torch.randn(3, 10, generator=g, dtype=torch.float64).repeat(2, 1).to(dtype)
    got = ls.principal_directions(codes, 5)
    assert torch.equal(ls.principal_directions(codes, 5).vectors, got.vectors)
    vectors = got.vectors.double()
    torch.testing.assert_close(vectors @ vectors.T, torch.eye(5, dtype=torch.float64), rtol=0, atol=TOLERANCE[dtype])
    expected, variance, _ = reference(codes, 2)
    torch.testing.assert_close(vectors[:2], expected, rtol=0, atol=TOLERANCE[dtype])
    assert float(got.explained_variance[2:].max()) <= 1e-12 * float(variance[0])


def test_codes_along_one_latent_complete_their_components_alike_on_both_routes(monkeypatch):
    """Codes on latent 3 alone: the complement of e_3 holds no variance at all (the projected
    codes are exactly 0), and its first columns are the further components on either route."""
    codes = torch.zeros(6, 10, dtype=torch.float64)
    codes[:, 3] = torch.arange(6.0, dtype=torch.float64)
    gram = ls.principal_directions(codes, 4)
    monkeypatch.setattr(principal, "GRAM_MAX_ROWS_PER_LATENT", 0.0)
    covariance = ls.principal_directions(codes, 4)
    assert torch.equal(gram.vectors, covariance.vectors) and torch.equal(gram.vectors[0], torch.eye(10, dtype=torch.float64)[3])
    for got in (gram, covariance):
        assert got.explained_variance[1:].tolist() == [0.0, 0.0, 0.0]
        assert float(got.explained_variance[0]) == pytest.approx(3.5, rel=1e-15)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("num_rows", [300, 40])  # the covariance's, the Gram matrix's
def test_a_few_components_of_a_large_matrix_are_the_only_eigenvectors_computed(num_rows, dtype, monkeypatch):
    """PARTIAL_MIN_SIZE lowered to 32 for 64 latents: k = 4 components ask scipy's eigh for the
    top 4 only, of the 64 x 64 covariance or of the 40 x 40 Gram matrix; more than an eighth
    of them (PARTIAL_MAX_SHARE), torch's eigh for all."""
    monkeypatch.setattr(principal, "PARTIAL_MIN_SIZE", 32)
    codes = spread_codes(num_rows, 64, dtype, seed=6)
    size = 64 if num_rows == 300 else 40
    with linalg_calls() as calls:
        got = ls.principal_directions(codes, 4)
    assert calls.subsets == [((size, size), (size - 4, size - 1))] and calls.eigh == []
    assert_matches_reference(got, codes, TOLERANCE[dtype])
    with linalg_calls() as calls:
        ls.principal_directions(codes, size // 8 + 1)
    assert calls.subsets == [] and calls.eigh == [(size, size)]


def test_leading_eigenpairs_of_the_subset_equal_eighs(monkeypatch):
    """The top eigenpairs of a symmetric matrix from scipy's subset, as torch's eigh gives them:
    descending, unit vectors (up to sign), on the lower triangle alone."""
    monkeypatch.setattr(principal, "PARTIAL_MIN_SIZE", 16)
    g = torch.Generator().manual_seed(7)
    factor = torch.randn(48, 48, generator=g, dtype=torch.float64)
    matrix = factor @ factor.T
    lower_only = matrix.tril() + 1e3 * torch.ones(48, 48, dtype=torch.float64).triu(1)  # (the upper half ignored)
    values, vectors = principal._leading_eigenpairs(lower_only, 6)
    all_values, all_vectors = torch.linalg.eigh(matrix)
    torch.testing.assert_close(values, all_values.flip(0)[:6], rtol=1e-12, atol=0)
    signs = torch.sign((vectors * all_vectors.flip(1)[:, :6]).sum(0))
    torch.testing.assert_close(vectors * signs, all_vectors.flip(1)[:, :6], rtol=0, atol=1e-10)


def test_diagnoses_wasserstein_correlation_skips_the_checks_with_the_same_bits(monkeypatch):
    """The covariance axis_alignment formed needs no check of a caller's matrix (its D x D
    eigvalsh was a tenth of diagnose at D = 1024): one eigvalsh (the top component), and the
    same value as gaussian_wasserstein_correlation bit for bit."""
    codes = spread_codes(500, 40, seed=8)
    centred = codes - codes.mean(0)
    covariance = centred.T @ centred / 499
    assert (unsupervised_scores.formed_covariance_wasserstein_correlation(covariance)
            == unsupervised_scores.gaussian_wasserstein_correlation(covariance))
    eigvalsh, sizes = torch.linalg.eigvalsh, []

    def spy(matrix, *args, **kwargs):
        sizes.append(tuple(matrix.shape))
        return eigvalsh(matrix, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "eigvalsh", spy)
    axes = ls.diagnose(codes).axes
    assert sizes == [(40, 40)]
    expected = unsupervised_scores.gaussian_wasserstein_correlation(torch.cov(codes.T)) / float(torch.cov(codes.T).trace())
    assert axes.wasserstein_correlation == pytest.approx(expected, rel=1e-9)
