"""How axis-aligned a set of codes is: whether the latent coordinates are the codes' own main
axes, or an arbitrary mix of them.

A plain autoencoder's axes are arbitrary by construction (any invertible linear map of the
latent space, absorbed by the encoder's last layer and the decoder's first, gives the same
loss). A VAE's factorised posterior and prior favour its coordinate axes, so its latents are
usually close to principal axes of the codes; these numbers say how close.

Both measures are second-order (they see the codes' covariance only): where several coordinates
have the same variance, no covariance can tell a rotation of them from the axes themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import _checks
from ._shares import format_share

# Above this many latents the D x D covariance and its eigenvalues are too costly for a
# diagnosis (seconds to minutes): the top component comes from a randomised pass and the
# Wasserstein correlation is not computed.
EXACT_MAX_DIM = 1024


@dataclass(frozen=True)
class AxisAlignment:
    """The axis statistics of ``[N, D]`` codes (floats; see :func:`axis_alignment`).

    Attributes:
        top_coordinate_share: the largest coordinate variance as a share of the total variance
            (``max_d C_dd / tr C``).
        top_component_share: the top principal component's variance as a share of the total
            (``lambda_1 / tr C``); never below ``top_coordinate_share``.
        wasserstein_correlation: the normalised Gaussian Wasserstein correlation of the
            covariance (Locatello et al. 2019): 0 when the coordinates are uncorrelated, larger
            the more the covariance's axes are rotated away from them; ``None`` above
            ``EXACT_MAX_DIM`` latents.
    """

    top_coordinate_share: float
    top_component_share: float
    wasserstein_correlation: float | None

    @property
    def ratio(self) -> float:
        """``top_coordinate_share / top_component_share`` in (0, 1]: 1 when the top principal
        component is a coordinate axis."""
        return self.top_coordinate_share / self.top_component_share

    def brief(self) -> str:
        """The two shares in a few words (the diagnosis' recommendation)."""
        return (f"top latent {format_share(self.top_coordinate_share)} of the codes' variance, top principal "
                f"component {format_share(self.top_component_share)}")

    def describe(self) -> str:
        """The numbers in words (no capital, no full stop): the findings and the report."""
        text = (
            f"the top latent carries {format_share(self.top_coordinate_share)} of the codes' variance and the top "
            f"principal component {format_share(self.top_component_share)} (ratio {self.ratio:.2f}; 1 when the top "
            "component is a latent axis)"
        )
        if self.wasserstein_correlation is not None:
            text += (
                f"; their Gaussian Wasserstein correlation is {self.wasserstein_correlation:.2g} of the "
                "total variance (0 for uncorrelated latents)"
            )
        return text


def axis_alignment(codes) -> AxisAlignment | None:
    """Axis statistics of finite codes ``[N, D]`` (N >= 2, D >= 1; real numbers of any dtype;
    ``[N, *latent_shape]`` is flattened, a :class:`latentsweep.Posterior` read as its means, as
    ``principal_directions`` and ``clusters`` read them), with ``C`` their covariance
    (``N - 1``), computed in float64 in passes over blocks of rows;
    ``None`` when the codes do not vary (``tr C = 0``). Other codes are refused with a
    ``TypeError``/``ValueError`` (NaN codes read as "they do not vary", and empty ones raised
    from inside torch)."""
    from .latent_shape import flat_rows
    from .posterior import Posterior
    from .principal import _randomized, _Scaled  # (principal imports directions, as this module does)

    fn = "latentsweep.alignment.axis_alignment"
    codes = _checks.dense_values(fn, "codes", codes.mu if isinstance(codes, Posterior) else codes)
    if codes.dim() > 2:  # structured codes: their flat latents
        codes = flat_rows(fn, "codes", codes, "N")
    if not _checks.is_real_number_dtype(codes.dtype):
        raise TypeError(f"{fn}: codes must hold real numbers, got {codes.dtype}")
    if codes.dim() != 2 or codes.shape[0] < 2 or codes.shape[1] < 1:
        raise ValueError(f"{fn}: codes must be [N, D] with N >= 2 and D >= 1, got shape {tuple(codes.shape)}")
    _checks.finite(fn, "codes", codes)
    # Said before the passes over the rows: a broadcast view [10^12, 2] (8 bytes of storage) was
    # read block by block for hours, as principal_directions' codes once were.
    _checks.codes_fit_in_memory(fn, f"reading the codes [N={codes.shape[0]}, D={codes.shape[1]}]", codes,
                                "pass a sample of the rows (codes[:n])")

    # Over a power of two at their largest magnitude: every number here is a share, the same at
    # any scale, and the squares of codes of 1e200 (or 1e-200) over- (under-)flowed float64:
    # None, "the codes do not vary".
    scaled = _Scaled.of(codes.detach())
    num_rows, latent = codes.shape
    mean = torch.zeros(latent, dtype=torch.float64, device=codes.device)
    for block in scaled.blocks():
        mean += block.sum(0)
    del block  # (the pass's buffer, beside the next pass's: 2 blocks held instead of 1)
    mean /= num_rows
    variances = torch.zeros_like(mean)
    for centred in scaled.centred_blocks(mean):
        variances += centred.square_().sum(0)
    del centred  # (the loop's last block, beside the next pass's first: codes of one block held 3 copies)
    variances /= num_rows - 1
    total = float(variances.sum())
    if not total > 0 or not math.isfinite(total):
        return None
    if latent <= EXACT_MAX_DIM:
        covariance = torch.zeros(latent, latent, dtype=torch.float64, device=codes.device)
        for centred in scaled.centred_blocks(mean):
            covariance += centred.T @ centred
        covariance /= num_rows - 1
        top = float(torch.linalg.eigvalsh(covariance)[-1])
        from .metrics.unsupervised_scores import formed_covariance_wasserstein_correlation

        wasserstein = formed_covariance_wasserstein_correlation(covariance) / total  # a sum of squares: >= 0
    else:
        # principal_directions' randomised pass on the scaled codes (its own call refused
        # float32 codes whose variance overflows float32, and float64 ones beyond float64).
        top = float(_randomized(scaled, mean, 1, seed=0, iterations=7)[0][0])
        wasserstein = None
    coordinate = float(variances.max()) / total
    # The Rayleigh quotient bounds every coordinate's variance by lambda_1, and lambda_1 <= tr C
    # (rounding aside: the eigenvalue of one latent's codes came out 4e-16 above their variance,
    # a share over 1 and a ratio under 1 for a top component that is the latent itself).
    return AxisAlignment(coordinate, min(max(top / total, coordinate), 1.0), wasserstein)
