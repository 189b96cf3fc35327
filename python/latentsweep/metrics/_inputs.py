"""Argument checks shared by the metrics: codes ``[N, D]`` and factors ``[N, F]``.

Codes become float64 tensors on their own device (numpy arrays go to the CPU) so every score is
computed in one precision whatever the encoder produced; factors become int64 tensors on the
codes' device (discrete factors), or float64 ones where a score takes continuous factors. Every
message names the function and the argument.

Codes are limited to magnitudes of at most ``MAX_CODE_MAGNITUDE`` (1e30): scikit-learn's trees
(DCI) cast to float32, whose largest value is 3.4e38, and the scores raise codes to the fourth
power (Wasserstein's ``S C S``, liblinear's SAP fits, which loop for ever once those overflow,
from about 1e77) in float64, where 1e120 is still finite. No encoder's codes come near it.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks

MAX_CODE_MAGNITUDE = 1e30
# Histogram bins per latent: far more bins than points only makes every label distinct, and the
# [bins + 1, D] edges grow with it (10^9 bins were 40 GB).
MAX_BINS = 100_000


def as_tensor(fn: str, name: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided:
            raise TypeError(f"{fn}: {name} must be a dense (torch.strided) tensor, got layout {value.layout}")
        return value
    if isinstance(value, np.ma.MaskedArray):  # (np.asarray drops the mask: masked values would be scored)
        raise TypeError(f"{fn}: {name} is a numpy masked array; drop the masked rows or fill them "
                        "(np.ma.compress_rows, .filled()) first")
    if isinstance(value, np.ndarray) or (hasattr(value, "__array__") and not isinstance(value, (str, bytes))):
        array = np.asarray(value)
        if array.dtype.kind == "c":  # the words real_numbers uses for a complex tensor
            raise TypeError(f"{fn}: {name} must hold real numbers, got a numpy array of dtype {array.dtype}")
        if array.dtype.kind not in "biuf":  # object, str, datetime ... arrays
            raise TypeError(f"{fn}: {name} must hold numbers, got a numpy array of dtype {array.dtype}")
        try:
            # (ascontiguousarray makes a 0-d array 1-d: the shape in the messages was wrong)
            return torch.from_numpy(np.ascontiguousarray(array)).reshape(array.shape)
        except TypeError:  # a numeric dtype torch lacks (longdouble, ...)
            raise TypeError(f"{fn}: {name} has numpy dtype {array.dtype}, which torch cannot hold; "
                            "convert it to float64 or int64") from None
    raise TypeError(f"{fn}: {name} must be a torch.Tensor or a numpy array, got {type(value).__name__}")


def codes(fn: str, name: str, value, *, min_latents: int = 1) -> torch.Tensor:
    """Real-valued codes ``[N, D]`` (N >= 2) as float64, finite."""
    value = real_numbers(fn, name, as_tensor(fn, name, value))
    if value.dim() != 2:
        raise ValueError(f"{fn}: {name} must be 2-D [N, D] (points x latents), got shape {tuple(value.shape)}")
    if value.shape[0] < 2:
        raise ValueError(f"{fn}: {name} needs at least 2 points, got {value.shape[0]}")
    if value.shape[1] < min_latents:
        raise ValueError(f"{fn}: {name} needs at least {min_latents} latent(s), got shape {tuple(value.shape)}")
    # (a broadcast view, expand(), of more rows than the memory holds reached the float64 copy:
    # the allocator's RuntimeError, or the kernel's out-of-memory kill)
    _checks.codes_fit_in_memory(fn, f"the float64 copy of {name} [N={value.shape[0]}, D={value.shape[1]}]", value,
                                "score fewer points", bytes_per_value=8)
    value = value.detach().to(torch.float64)
    magnitude(fn, name, _checks.finite(fn, name, value))
    return value


def real_numbers(fn: str, name: str, value: torch.Tensor) -> torch.Tensor:
    """``value`` if it holds real numbers (floating or integer): a cast to float64 would drop a
    complex tensor's imaginary part and read bools as 0/1, silently."""
    if not _checks.is_real_number_dtype(value.dtype):
        raise TypeError(f"{fn}: {name} must hold real numbers, got {value.dtype}")
    return value


def magnitude(fn: str, name: str, extremes) -> None:
    """Codes within +-MAX_CODE_MAGNITUDE (see the module docstring), from their (min, max)."""
    if extremes is not None and max(-extremes[0], extremes[1]) > MAX_CODE_MAGNITUDE:
        raise ValueError(
            f"{fn}: {name} must lie within +-{MAX_CODE_MAGNITUDE:g} (float32 conversions and the scores' powers of "
            f"the codes must not overflow), got values in [{extremes[0]:g}, {extremes[1]:g}]; rescale them"
        )


def integer_values(fn: str, name: str, value: torch.Tensor) -> torch.Tensor:
    """Factor values as int64: integers, or floats that are finite whole numbers within int64's
    range (a cast would wrap 1e30 and inf, merging distinct values)."""
    if value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"{fn}: {name} must hold integers, got {value.dtype}")
    if value.is_floating_point():
        extremes = _checks.finite(fn, name, value)
        if not bool(torch.all(value == torch.round(value))):
            raise TypeError(f"{fn}: {name} must hold integers (discrete factor values), got non-integral {value.dtype}")
        # 2^63 is a float exactly; every float below it (and from -2^63 up) fits an int64.
        if extremes is not None and not (-(2.0**63) <= extremes[0] and extremes[1] < 2.0**63):
            raise ValueError(f"{fn}: {name} must lie within int64's range, got values in "
                             f"[{extremes[0]:g}, {extremes[1]:g}]")
    elif (largest := _checks.uint64_beyond_int64(value)) is not None:
        raise ValueError(f"{fn}: {name} must lie within int64's range, got a value of {largest}")
    return value.detach().to(torch.int64)


def real_values(fn: str, name: str, value: torch.Tensor) -> torch.Tensor:
    """Continuous factor values as float64: real numbers (floating or integer), finite."""
    value = real_numbers(fn, name, value).detach().to(torch.float64)
    _checks.finite(fn, name, value)
    return value


def factor_values(fn: str, name: str, value: torch.Tensor, *, continuous: bool) -> torch.Tensor:
    """:func:`real_values` of continuous factors, else :func:`integer_values`."""
    return real_values(fn, name, value) if continuous else integer_values(fn, name, value)


def factors(fn: str, name: str, value, *, points: int, device: torch.device, continuous: bool = False) -> torch.Tensor:
    """Factors ``[N, F]``, N matching the codes, each factor taking >= 2 values: discrete ones as
    int64, ``continuous`` ones (real-valued) as float64."""
    value = as_tensor(fn, name, value)
    if value.dim() != 2:
        raise ValueError(f"{fn}: {name} must be 2-D [N, F] (points x factors), got shape {tuple(value.shape)}")
    if value.shape[1] < 1:
        raise ValueError(f"{fn}: {name} needs at least one factor, got shape {tuple(value.shape)}")
    if value.shape[0] != points:
        raise ValueError(f"{fn}: {name} has {value.shape[0]} rows but the codes have {points}")
    value = factor_values(fn, name, value, continuous=continuous).to(device)
    single = [j for j in range(value.shape[1]) if bool(torch.all(value[:, j] == value[0, j]))]
    if single:
        raise ValueError(
            f"{fn}: factor column(s) {single} of {name} take a single value; the metrics need factors "
            "that vary (drop the constant columns)"
        )
    return value


def labels(fn: str, name: str, value) -> torch.Tensor:
    """Integer labels ``[N, P]`` (N, P >= 1) as int64 on their own device."""
    value = as_tensor(fn, name, value)
    if value.dim() != 2 or value.shape[0] < 1 or value.shape[1] < 1:
        raise ValueError(f"{fn}: {name} must be 2-D [N, P] with N, P >= 1, got shape {tuple(value.shape)}")
    _checks.codes_fit_in_memory(fn, f"the int64 copy of {name} [N={value.shape[0]}, P={value.shape[1]}]", value,
                                "pass fewer points", bytes_per_value=8)
    return integer_values(fn, name, value)


def nonnegative(fn: str, name: str, value, *, dims: int) -> torch.Tensor:
    """A ``dims``-D float64 tensor of finite values >= 0 (mutual information, entropies)."""
    value = as_tensor(fn, name, value)
    if value.dim() != dims:
        raise ValueError(f"{fn}: {name} must be {dims}-D, got shape {tuple(value.shape)}")
    _checks.codes_fit_in_memory(fn, f"the float64 copy of {name} {list(value.shape)}", value,
                                f"pass a smaller {name}", bytes_per_value=8)
    value = real_numbers(fn, name, value).detach().to(torch.float64)
    extremes = _checks.finite(fn, name, value)
    if extremes is not None and extremes[0] < 0:
        raise ValueError(f"{fn}: {name} must be >= 0, got a minimum of {extremes[0]:g}")
    return value


# A covariance given in float32 (or computed in float32) is symmetric and positive semi-definite
# only to its rounding: this much is taken as rounding, relative to the largest variance.
COVARIANCE_TOLERANCE = 1e-6


def covariance(fn: str, value) -> torch.Tensor:
    """A covariance matrix ``[D, D]`` (D >= 1) as float64: finite, symmetric and positive
    semi-definite to within ``COVARIANCE_TOLERANCE`` of its largest variance (then symmetrised;
    a KL or a distance of anything else is not defined)."""
    value = as_tensor(fn, "cov", value)
    if value.dim() != 2 or value.shape[0] != value.shape[1] or value.shape[0] < 1:
        raise ValueError(f"{fn}: cov must be a square [D, D] matrix, got shape {tuple(value.shape)}")
    value = real_numbers(fn, "cov", value).detach().to(torch.float64)
    _checks.finite(fn, "cov", value)
    variances = torch.diagonal(value)
    if bool((variances < 0).any()):
        d = int(torch.nonzero(variances < 0)[0])
        raise ValueError(f"{fn}: cov is not a covariance matrix: its diagonal (the variances) has "
                         f"cov[{d}, {d}] = {float(variances[d]):.6g} < 0")
    largest = float(variances.max())
    # (halves before the sums: cov + cov.T overflowed float64 from entries of 9e307)
    if float((value / 2 - value.T / 2).abs().max()) > COVARIANCE_TOLERANCE * largest / 2:
        raise ValueError(f"{fn}: cov is not a covariance matrix: it is not symmetric (cov != cov.T beyond "
                         f"{COVARIANCE_TOLERANCE:g} of the largest variance)")
    value = value / 2 + value.T / 2
    # (all variances 0: any other entry makes it indefinite)
    if float(torch.linalg.eigvalsh(value / (largest or 1.0))[0]) < -COVARIANCE_TOLERANCE * value.shape[0]:
        raise ValueError(f"{fn}: cov is not a covariance matrix: it is not positive semi-definite (an "
                         "eigenvalue below 0 beyond rounding)")
    return value


def train_test(fn: str, codes_train, factors_train, codes_test, factors_test, *, min_latents: int = 1,
               continuous: bool = False):
    """The four arrays of a train/test metric, checked together (same D, same F); ``continuous``
    factors as in :func:`factors`."""
    train = codes(fn, "codes", codes_train, min_latents=min_latents)
    test = codes(fn, "test_codes", codes_test, min_latents=min_latents)
    if test.shape[1] != train.shape[1]:
        raise ValueError(f"{fn}: test_codes have {test.shape[1]} latents but codes have {train.shape[1]}")
    y_train = factors(fn, "factors", factors_train, points=train.shape[0], device=train.device, continuous=continuous)
    y_test = as_tensor(fn, "test_factors", factors_test)
    if y_test.dim() == 2 and y_test.shape[1] != y_train.shape[1]:
        raise ValueError(f"{fn}: test_factors have {y_test.shape[1]} factors but factors have {y_train.shape[1]}")
    y_test = _test_factors(fn, y_test, points=test.shape[0], device=train.device, continuous=continuous)
    return train, y_train, test.to(train.device), y_test


def _test_factors(fn: str, value: torch.Tensor, *, points: int, device, continuous: bool) -> torch.Tensor:
    # A test split may be small and miss values, or hold a single one: only the shape and type matter.
    if value.dim() != 2:
        raise ValueError(f"{fn}: test_factors must be 2-D [N, F], got shape {tuple(value.shape)}")
    if value.shape[0] != points:
        raise ValueError(f"{fn}: test_factors has {value.shape[0]} rows but test_codes have {points}")
    return factor_values(fn, "test_factors", value, continuous=continuous).to(device)


def bins(fn: str, value) -> int:
    return _checks.integer(fn, "bins", value, low=1, high=MAX_BINS)


def numpy(value: torch.Tensor) -> np.ndarray:
    """A CPU numpy copy for scikit-learn."""
    return value.detach().cpu().numpy()
