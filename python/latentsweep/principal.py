"""Principal directions of the codes: the axes the data defines, which is what a plain
autoencoder's latent space can be read along (its coordinate axes are arbitrary)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from . import _checks
from ._blas_threads import blas_on_torch_threads
from .directions import Directions, as_codes, in_one_block, result_dtype, row_blocks, structured_shape

# Above this many latents the D x D covariance is not formed: randomised subspace iteration.
EXACT_MAX_DIM = 4096
RANDOMIZED_DEFAULT_K = 64
METHODS = ("auto", "exact", "randomized")
# Subspace iteration converges geometrically; far fewer passes than this always suffice.
MAX_ITERATIONS = 100
# Float64 blocks of rows (directions.CHUNK_VALUES values, 32 MiB) that a pass over the codes
# holds at once beside them, rounded up, whatever N (measured at D = 32, N = 4e5 and 1.6e6, each
# allocation of 1 MiB or more mapped: 1.0 exact and axis_alignment, the pass's one buffer; 2.1
# randomized, the buffer and its product with the D x 32 basis; 1.7 exact with a projected
# remainder; 1.4 clusters' passes; tests/test_analysis_memory.py); codes of one block: 2 float64
# copies of them. Not a multiple of N: the memory checks count the codes themselves (what a
# broadcast view exceeds).
PASS_BLOCKS = 3


def scaled_rows(block: torch.Tensor, scale, pivot: torch.Tensor) -> torch.Tensor:
    """``block``, a float64 copy of rows of codes (``row_blocks``', or ``codes.to(torch.float64,
    copy=True)``: ``double()`` of float64 codes is the codes themselves), over ``scale`` (a float
    or ``[D]``), less ``pivot`` (``[D]``), in place, with the bits of ``block / scale - pivot``
    (which held three tensors)."""
    return block.div_(scale).sub_(pivot)


@dataclass(frozen=True)
class _Scaled:
    """The codes over ``scale``, the power of two at their largest magnitude: the squares in
    their (co)variance stay in float64's range whether the codes are 1e-300 (whose variance
    underflowed to 0: "the rows are all equal") or 1e300, and a power of two changes no digit.
    Variances are multiplied back by ``scale ** 2`` last. Each latent is also less its first
    code (``pivot``): the rounded sum / N of a constant latent is an ulp off it, and codes whose
    rows were all equal had a total variance of 1e-30 and a PC1 explaining all of it; less the
    pivot, a constant is 0 and its mean 0 exactly."""

    codes: torch.Tensor
    scale: float
    pivot: torch.Tensor

    @classmethod
    def of(cls, codes: torch.Tensor) -> "_Scaled":
        low, high = _checks.extremes(_checks.distinct_values(codes))
        largest = torch.tensor(max(-low, high), dtype=torch.float64, device="cpu")
        scale = float(_checks.power_of_two_at(largest))
        return cls(codes, scale, codes[0].double() / scale)

    @property
    def shape(self) -> torch.Size:
        return self.codes.shape

    @property
    def device(self) -> torch.device:
        return self.codes.device

    def blocks(self):
        """Blocks of rows in float64, over the scale, less the pivot (read-only: codes that fit
        in one block give the same tensor to every pass), each overwritten by the next (see
        ``row_blocks``)."""
        if in_one_block(self.codes):
            yield self._whole
            return
        for block in row_blocks(self.codes):
            yield scaled_rows(block, self.scale, self.pivot)

    def centred_blocks(self, mean: torch.Tensor):
        """The blocks less ``mean`` (``[D]``), each a ``[rows, D]`` float64 tensor that the caller
        may change in place (``square_``: no second temporary per block), overwritten by the
        next (see ``row_blocks``)."""
        one_block = in_one_block(self.codes)  # (the one block is shared by every pass: not changed)
        for block in self.blocks():
            yield block - mean if one_block else block.sub_(mean)

    @functools.cached_property
    def _whole(self) -> torch.Tensor:
        """The codes as their one block, made once: each function passes over the codes 3 to 9
        times, and converting them again each time took a third of its time at N = 10^5."""
        return scaled_rows(self.codes.to(torch.float64, copy=True), self.scale, self.pivot)

    def unshifted(self, mean: torch.Tensor) -> torch.Tensor:
        """A mean of the blocks as one of the codes."""
        return (mean + self.pivot) * self.scale

    def unscaled(self, variance):
        """A variance of the scaled codes as one of the codes (``scale ** 2`` itself may not
        be a float64)."""
        return variance * self.scale * self.scale


def _mean(codes: _Scaled) -> torch.Tensor:
    total = torch.zeros(codes.shape[1], dtype=torch.float64, device=codes.device)
    for chunk in codes.blocks():
        total += chunk.sum(0)
    return total / codes.shape[0]


def _total_variance(codes: _Scaled, mean: torch.Tensor) -> float:
    total = 0.0
    for centred in codes.centred_blocks(mean):
        total += float(centred.square_().sum())
    return total / (codes.shape[0] - 1)


def _covariance_times(codes: _Scaled, mean: torch.Tensor, block: torch.Tensor) -> torch.Tensor:
    """``C @ block`` with C the codes' covariance, one streamed pass, C never formed."""
    result = torch.zeros_like(block)
    for centred in codes.centred_blocks(mean):
        result += centred.T @ (centred @ block)
    return result / (codes.shape[0] - 1)


# eigh of the covariance resolves eigenvalues to about eps x the largest (the covariance squares
# the codes' condition number): below this share of the largest, components are recomputed from
# the codes with the resolved ones projected out (columns scaled 1e-8, 1, 1e8 came out with the
# 1e-8 column second), one more pass per step.
RESOLVED_SHARE = 1e-8
# Codes of at most this many rows per latent (N <= 0.75 D) are decomposed through their N x N
# Gram matrix X X^T (X the centred codes) instead of the D x D covariance X^T X / (N - 1): the
# same nonzero eigenvalues, the directions X^T u orthonormalised, N^2 D + N^3 operations instead
# of N D^2 + D^3 (N = 2000, D = 4096: 8.6 -> 2.0 s on 2 cores); nearer N = D the extra product
# and orthonormalisation cost more than the smaller eigenproblem saves (crossover ~0.8 D).
GRAM_MAX_ROWS_PER_LATENT = 0.75
# A CPU eigenproblem of at least this size asked for at most this share of its eigenpairs computes
# only those (LAPACK's dsyevr through scipy): torch's eigh computes every eigenvector, 2 to 4 times
# the cost of the reduction to tridiagonal form that both need (the eigenproblem of D = 4096,
# k = 64: 7.5 -> 2.2 s; D = 1024, k = 128: 0.18 -> 0.09 s; slower than eigh from a quarter of
# the eigenpairs up). CUDA matrices take torch's eigh.
PARTIAL_MIN_SIZE = 1024
PARTIAL_MAX_SHARE = 1 / 8


def _leading_eigenpairs(matrix: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``count`` largest eigenvalues of the symmetric float64 ``matrix`` (read from its lower
    triangle), descending (equal ones in the order eigh gives them), and their unit eigenvectors
    as columns: torch's eigh, or LAPACK's subset of them (see PARTIAL_MIN_SIZE)."""
    size = matrix.shape[0]
    if matrix.device.type == "cpu" and size >= PARTIAL_MIN_SIZE and count <= PARTIAL_MAX_SHARE * size:
        import scipy.linalg  # (imported where it pays for its 0.17 s)

        with blas_on_torch_threads():  # (OpenBLAS's own count: its environment's or every core, not torch's)
            values, vectors = scipy.linalg.eigh(matrix.numpy(), subset_by_index=(size - count, size - 1),
                                                driver="evr", check_finite=False)
        values, vectors = torch.from_numpy(values), torch.from_numpy(vectors)
    else:
        values, vectors = torch.linalg.eigh(matrix)  # ascending
    order = torch.argsort(values, descending=True, stable=True)[:count]
    return values[order], vectors[:, order]


def _resolved(values: torch.Tensor) -> int:
    """How many of the descending eigenvalues ``values`` eigh resolves (RESOLVED_SHARE of the
    largest; all of them when the largest is 0: nothing is left to resolve)."""
    return int((values >= RESOLVED_SHARE * values[0]).sum()) if values[0] > 0 else len(values)


def _resolved_eigenpairs(codes: _Scaled, mean: torch.Tensor, complement: torch.Tensor | None,
                         wanted: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The leading eigenpairs, at most ``wanted`` and only those resolved, of the covariance of
    the codes projected on ``complement`` (``[D, width]`` orthonormal columns; ``None``: all of
    the latent space), in one streamed pass: ``[r]`` eigenvalues, ``[D, r]`` unit vectors."""
    num_rows = codes.shape[0]
    width = codes.shape[1] if complement is None else complement.shape[1]
    if num_rows > GRAM_MAX_ROWS_PER_LATENT * width:
        covariance = torch.zeros(width, width, dtype=torch.float64, device=codes.device)
        for centred in codes.centred_blocks(mean):
            if complement is not None:
                centred = centred @ complement  # (rebound: the unprojected block is not held while the next is made)
            covariance += centred.T @ centred
        covariance /= num_rows - 1
        values, vectors = _leading_eigenpairs(covariance, wanted)
        resolved = _resolved(values)
        values, vectors = values[:resolved], vectors[:, :resolved]
    else:
        # The projected codes [N, width] (fewer values than the covariance's), each block copied
        # in before the next overwrites it (a list of the blocks and their cat held two copies).
        rows = None if in_one_block(codes.codes) else torch.empty(num_rows, width, dtype=torch.float64,
                                                                   device=codes.device)
        begin = 0
        for centred in codes.centred_blocks(mean):
            block = centred if complement is None else centred @ complement
            if rows is None:  # (the one block: a new tensor already)
                rows = block
            else:
                rows[begin : begin + len(block)] = block
                begin += len(block)
        del centred, block
        gram = rows @ rows.T
        gram /= num_rows - 1
        values, left = _leading_eigenpairs(gram, wanted)  # (wanted <= N - 1: k <= min(N - 1, D))
        resolved = _resolved(values)
        values = values[:resolved]
        if values[0] > 0:
            # X^T u_i has norm sqrt((N - 1) lambda_i) and is the i-th direction; orthonormalised in
            # order (Householder QR: each column less its parts along the larger directions), as
            # rounding of the small ones along the large ones (~eps lambda_1 / sqrt(lambda_i
            # lambda_j)) left them orthogonal only to 1e-8 at RESOLVED_SHARE.
            vectors = torch.linalg.qr(rows.T @ left[:, :resolved]).Q
        else:  # the projected codes are all 0: any orthonormal directions (eigh's of a 0 matrix)
            vectors = torch.eye(width, resolved, dtype=torch.float64, device=codes.device)
    return values, vectors if complement is None else complement @ vectors


def _exact(codes: _Scaled, mean: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k eigenpairs of the covariance, from the D x D covariance or the N x N Gram matrix
    formed in a streamed float64 pass: one pass, and another for each step of RESOLVED_SHARE
    the top k span below the largest."""
    found_values, found_vectors, found = [], [], 0
    complement = None  # [D, D - found]: an orthonormal basis orthogonal to the vectors found
    while found < k:
        values, vectors = _resolved_eigenpairs(codes, mean, complement, k - found)
        found_values.append(values)
        found_vectors.append(vectors)
        found += len(values)
        if found < k:  # (only then: codes of rank below D, N <= D rows, formed this D x D QR for nothing)
            complement = torch.linalg.qr(torch.cat(found_vectors, dim=1), mode="complete").Q[:, found:]
    values, vectors = torch.cat(found_values), torch.cat(found_vectors, dim=1)
    return values.clamp_min(0.0), vectors.T


def _randomized(codes: _Scaled, mean: torch.Tensor, k: int, seed: int, iterations: int):
    """Top-k eigenpairs by randomised subspace iteration (Halko, Martinsson & Tropp 2011,
    algorithm 4.4) on the covariance, applied in streamed passes: memory D x (k + 10)."""
    latent = codes.shape[1]
    width = min(latent, k + 10)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    block = torch.randn(latent, width, generator=generator, dtype=torch.float64, device="cpu").to(codes.device)
    basis = torch.linalg.qr(block).Q
    for _ in range(iterations):
        basis = torch.linalg.qr(_covariance_times(codes, mean, basis)).Q
    # Rayleigh-Ritz on the subspace.
    small = basis.T @ _covariance_times(codes, mean, basis)
    eigenvalues, rotation = torch.linalg.eigh((small + small.T) / 2)
    order = torch.argsort(eigenvalues, descending=True, stable=True)[:k]
    return eigenvalues[order].clamp_min(0.0), (basis @ rotation[:, order]).T


def _fix_signs(vectors: torch.Tensor) -> torch.Tensor:
    """Each vector's largest-magnitude entry made positive; entries within sqrt(eps) of the
    largest count as tied, and the first of them decides: two entries of equal magnitude and
    opposite sign (codes (t, -t)) differ by a rounding that the order of the rows changes, so
    the largest alone flipped the component when the rows were shuffled."""
    magnitude = vectors.abs()
    near = magnitude >= magnitude.amax(dim=1, keepdim=True) * (1 - math.sqrt(torch.finfo(vectors.dtype).eps))
    largest = near.to(torch.uint8).argmax(dim=1)  # (argmax returns the first of equal values)
    signs = torch.sign(vectors.gather(1, largest[:, None]))
    return vectors * torch.where(signs == 0, 1.0, signs)


def principal_directions(
    codes_or_posterior,
    k: int | None = None,
    *,
    method: str = "auto",
    seed: int = 0,
    iterations: int = 7,
) -> Directions:
    """The principal components of the codes (the means, for a VAE's posterior).

    The codes are centred on their mean (kept in ``mean``); the covariance uses ``N - 1``.
    Components are ordered by explained variance, and each one's sign is fixed so that its
    largest-magnitude entry is positive (the first of those equal up to sqrt(eps)): the same
    codes, in any order, give the same vectors.

    Methods: ``"exact"`` forms the ``D x D`` covariance in float64 in one pass over chunks of
    rows (any N) and takes its eigenvectors (for codes of at most ``0.75 D`` rows, the
    eigenvectors ``u`` of the ``N x N`` Gram matrix of the centred codes ``X`` instead, the
    directions ``X^T u`` orthonormalised: the same components in far fewer operations; on the
    CPU, a few components of 1024 latents or more are the only eigenvectors computed);
    ``"randomized"`` runs randomised subspace iteration with ``k + 10`` vectors and
    ``iterations`` passes over the codes, never forming the covariance (memory
    ``D x (k + 10)``), for large D; ``"auto"`` is exact up to D = 4096 latents. Components
    beyond the codes' rank (repeated rows, codes in a subspace: explained variance 0 to
    rounding) are orthonormal and orthogonal to the others, and otherwise arbitrary.

    Args:
        codes_or_posterior: ``[N, D]`` codes (N >= 2; ``[N, *latent_shape]`` is flattened) or a
            :class:`Posterior`.
        k: number of components, at most ``min(N - 1, D)`` (default: all of them for the exact
            method, 64 of them for the randomised one, or all when there are fewer).
        seed: the randomised method's start. iterations: its number of power iterations
            (0 to 100; each is one pass over the codes).

    Returns:
        :class:`Directions` with names ``PC1 ... PCk``, ``explained_variance`` (eigenvalues of
        the covariance), ``explained_variance_ratio`` (share of the total variance) and
        ``mean``, in float32 (float64 for float64 codes), on the codes' device; ``latent_shape``
        of structured codes (``None`` for flat ones).
    """
    fn = "latentsweep.principal_directions"
    # Detached, as clusters() and axis_alignment() read them: codes straight from an encoder
    # outside no_grad gave Directions that required grad (a graph through every pass over the
    # codes) and torch's warning about float() of such a tensor, from inside this function.
    codes = as_codes(fn, codes_or_posterior, min_rows=2).detach()
    method = _checks.choice(fn, "method", method, METHODS)
    num_rows, latent = codes.shape
    _checks.codes_fit_in_memory(fn, f"reading the codes [N={num_rows}, D={latent}]", codes,
                                "pass a sample of the rows (codes[:n] or posterior[:n])")
    if method == "auto":
        method = "exact" if latent <= EXACT_MAX_DIM else "randomized"
    rank = min(num_rows - 1, latent)
    if k is None:
        k = rank if method == "exact" else min(rank, RANDOMIZED_DEFAULT_K)
    k = _checks.integer(fn, "k", k, low=1)
    if k > rank:  # (said with why: "k must be <= 2" puzzled a user with 3 codes of 8 latents)
        raise ValueError(f"{fn}: k must be <= {rank}, the most components codes [N={num_rows}, D={latent}] have "
                         f"(min(N - 1, D)), got {k}")
    seed = _checks.integer(fn, "seed", seed, low=0, high=2**64 - 1)
    iterations = _checks.integer(fn, "iterations", iterations, low=0, high=MAX_ITERATIONS)

    dtype = result_dtype(codes)
    scaled = _Scaled.of(codes)
    mean = _mean(scaled)
    total = _total_variance(scaled, mean)
    if total == 0:
        raise ValueError(f"{fn}: the codes do not vary (all {num_rows} rows are equal); they have no principal directions")
    fits = _check_variance_fits(fn, scaled, total, dtype)
    if method == "exact":
        variance, vectors = _exact(scaled, mean, k)
    else:
        variance, vectors = _randomized(scaled, mean, k, seed, iterations)
    vectors = _fix_signs(vectors)
    return Directions(
        vectors=vectors.to(dtype),
        names=tuple(f"PC{i + 1}" for i in range(k)),
        explained_variance=scaled.unscaled(variance).to(dtype) if fits else None,
        explained_variance_ratio=(variance / total).to(dtype),
        mean=scaled.unshifted(mean).to(dtype),
        source="pca",
        latent_shape=structured_shape(codes_or_posterior),
    )


def _check_variance_fits(fn: str, scaled: _Scaled, total: float, dtype: torch.dtype) -> bool:
    """Whether the variances are finite in the result's dtype (else ValueError; the total, which
    may exceed even float64, is said as a number); inside :func:`variance_unread`, False
    instead (explained_variance is left out: its reader asked for the directions and ratios,
    computed over the scale, and cannot pass other codes). A total below the dtype's smallest
    normal number leaves every explained_variance 0 or a subnormal of few digits in it (float32
    codes of 1e-23 gave all zeros, silently): said in a warning, outside variance_unread."""
    unscaled, info = scaled.unscaled(total), torch.finfo(dtype)
    if unscaled < info.tiny:
        if not variance_unread.set:
            _checks.warn(
                f"{fn}: the codes' total variance ({_checks.unscaled_square_size(total, scaled.scale)}) is below "
                f"the smallest normal {dtype} ({info.tiny:.3g}): explained_variance holds zeros or imprecise "
                "subnormals (the directions and explained_variance_ratio are exact); "
                + ("pass float64 codes (codes.double())" if dtype != torch.float64
                   else f"rescale the codes (e.g. codes / {scaled.scale:.3g}: the directions stay the same)"),
                RuntimeWarning)
        return True
    if unscaled <= info.max:
        return True
    if variance_unread.set:
        return False
    raise ValueError(
        f"{fn}: the codes' total variance ({_checks.unscaled_square_size(total, scaled.scale)}) overflows {dtype}"
        + ("; pass float64 codes (codes.double())" if dtype != torch.float64
           else f"; rescale the codes (e.g. codes / {scaled.scale:.3g}: the directions stay the same)")
    )


# explain reads only the directions and their ratios: explained_variance's underflow is no news
# there, and its overflow (float32 codes near 1e20) no reason to refuse.
variance_unread = _checks.ThreadFlag()


def variance_shares(codes: torch.Tensor, directions: torch.Tensor) -> list[float]:
    """``[K]`` the codes' variance along each unit direction as a share of their total variance
    (``Var(codes @ u_k) / tr Cov(codes)``; for principal components, the explained-variance
    ratio), in float64; NaN when the codes do not vary. Over the power of two at the codes'
    largest entry, as principal_directions reads them: the squares of float64 codes of 1e-170
    underflowed to 0 (and of 1e160 overflowed), and every share was NaN."""
    codes = codes.detach()
    units = directions.detach().to(codes.device, torch.float64)
    if not codes.shape[0]:
        return [math.nan] * units.shape[0]
    scaled = _Scaled.of(codes)
    along = torch.zeros(units.shape[0], dtype=torch.float64, device=codes.device)
    total = 0.0
    for centred in scaled.centred_blocks(_mean(scaled)):
        along += ((centred @ units.T) ** 2).sum(0)
        total += float(centred.square_().sum())
    if not total > 0:
        return [math.nan] * units.shape[0]
    return (along / total).tolist()
