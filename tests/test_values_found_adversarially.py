"""Defects of the traversal values (traversal_values, the modes, values along directions) and of
axis_alignment found by an adversarial pass: each test failed before its fix. References are
the modes' formulas in float64, or the values along float64 unit directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep.alignment import axis_alignment

FN = "latentsweep.traversal_values"


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- directions of a low-precision dtype ----------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("mode", ["prior", "posterior", "empirical"])  # the modes that project along u
def test_low_precision_directions_give_the_coordinates_along_the_exact_unit_vectors(dtype, mode):
    """float16 directions were normalised in float16: the coordinates of float64 anchors along
    (1, 1, 1) were off by ~1e-3, so the middle step of mode "prior" was not the anchor in the
    codes traverse writes (its unit vectors are normalised in float64)."""
    anchors = torch.tensor([[1.0, 2.0, 3.0], [-0.5, 0.25, 4.0]], dtype=torch.float64)
    options = dict(mode=mode, span=1.5, steps=5, logvar=torch.full_like(anchors, -1.0),
                   reference=torch.randn(40, 3, generator=gen(0), dtype=torch.float64))
    u = torch.tensor([[1.0, 1.0, 1.0], [0.0, 2.0, -1.0]])  # exact in every dtype
    got = ls.traversal_values(anchors, directions=u.to(dtype), **options)
    torch.testing.assert_close(got, ls.traversal_values(anchors, directions=u.double(), **options), rtol=0, atol=0)
    swept = ls.traverse(lambda z: z, anchors, directions=u.to(dtype), progress=False, **options)
    assert torch.equal(swept.values, got)
    if mode == "prior":  # the middle step is the anchor itself
        codes = ls.direction_codes(anchors, ls.unit_directions(u.double()), got).view(2, 2, 5, 3)
        torch.testing.assert_close(codes[:, :, 2], anchors[:, None].expand(2, 2, 3), rtol=0, atol=1e-15)


# --- the posterior SD along a direction with tiny entries -----------------------------------------


def test_posterior_sd_along_a_direction_with_a_tiny_entry():
    """u = (1, 1e-200): its weight u_1^2 = 1e-400 underflowed to 0, and with logvar (-1000, 0)
    the variance along u, exp(-1000) + 1e-400 ~ 1e-400, read 0: log 0 = -inf was then refused
    as 'logvar has 1 non-finite value(s)', though the logvar given was finite."""
    anchors = torch.zeros(1, 2, dtype=torch.float64)
    logvar = torch.tensor([[-1000.0, 0.0]], dtype=torch.float64)
    u = torch.tensor([[1.0, 1e-200]], dtype=torch.float64)
    values = ls.traversal_values(anchors, mode="posterior", logvar=logvar, directions=u, span=1.0, steps=3)
    sd = 1e-200  # sqrt(1e-400 + e^-1000), e^-1000 ~ 5e-435 below float64's last digit of it
    torch.testing.assert_close(values[0, 0], torch.tensor([-sd, 0.0, sd], dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("shift", [-1400.0, 0.0, 1400.0])
def test_posterior_sd_along_a_direction_is_the_formula_at_any_scale(shift):
    """sqrt(sum_d u_d^2 sigma_d^2), sigma_d^2 = exp(logvar_d), at log-variances of +-1400 too
    (a guard of the log-sum-exp that fixed the test above)."""
    logvar = torch.tensor([[0.0, -2.0, 1.0]], dtype=torch.float64) + shift
    u = torch.tensor([[3.0, 0.0, 4.0]], dtype=torch.float64)
    values = ls.traversal_values(torch.zeros(1, 3, dtype=torch.float64), mode="posterior", logvar=logvar,
                                 directions=u, span=1.0, steps=2)
    log_sd = 0.5 * (shift + math.log(0.36 * math.exp(0.0) + 0.64 * math.exp(1.0)))
    assert values[0, 0, 1].item() == pytest.approx(math.exp(log_sd), rel=1e-13)


# --- coordinates along directions beyond the dtype ---------------------------------------------


@pytest.mark.parametrize("mode", ["prior", "posterior"])
def test_anchors_whose_coordinates_leave_their_dtype_are_named(mode):
    """(60000, 60000) is a float16, its coordinate 84853 along (1, 1)/sqrt(2) is not: "posterior"
    said 'logvar must be <= about -1.4, got a maximum of -3.4e-08' (logvar was 0)."""
    anchors = torch.full((1, 2), 60000.0, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"traversal_values: the anchors' coordinates along the directions reach "
                                         r"8\.485e\+04, beyond the largest torch\.float16.*float64 anchors"):
        ls.traversal_values(anchors, mode=mode, logvar=torch.zeros(1, 2), directions=torch.ones(1, 2))
    # the modes that do not use the anchors' coordinates still give their values
    absolute = ls.traversal_values(anchors, mode="absolute", directions=torch.ones(1, 2), steps=3)
    assert absolute[0, 0].tolist() == [-2, 0, 2]


def test_a_finite_reference_whose_coordinates_overflow_is_not_called_non_finite():
    """reference (1.7e308, 1.7e308) projects to 2.4e308 along (1, 1): refused as 'reference has 1
    non-finite value(s)', though every value given was finite."""
    reference = torch.tensor([[1.7e308, 1.7e308], [0.0, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"the reference's coordinates along the directions reach inf, beyond the "
                                         r"largest torch\.float64.*pass smaller reference"):
        ls.traversal_values(torch.zeros(1, 2, dtype=torch.float64), mode="empirical", reference=reference,
                            directions=torch.ones(1, 2))


# --- huge latents, one traversed -------------------------------------------------------------


@pytest.mark.parametrize("mode", ls.MODES)
def test_a_few_dims_of_huge_broadcast_codes_are_computed_without_copying_them(mode):
    """Anchors (and logvar, reference) expanded from one column to D = 10^12: traversing dims
    [0, 5] copied them whole (a float16 -> float32 copy, a float64 logvar cast), or made an
    arange(D) before any check: the allocator's RuntimeError for 8 TB."""
    huge = 10**12
    anchors = torch.full((1, 1), 0.5, dtype=torch.float16).expand(2, huge)
    options = dict(logvar=torch.zeros(1, 1, dtype=torch.float64).expand(2, huge),
                   reference=torch.tensor([[-1.0], [1.0]], dtype=torch.float64).expand(2, huge))
    values = ls.traversal_values(anchors, mode=mode, dims=[0, 5], span=1.0, steps=3, **options)
    small = ls.traversal_values(torch.full((2, 6), 0.5, dtype=torch.float16), mode=mode, dims=[0, 5], span=1.0,
                                steps=3, logvar=torch.zeros(2, 6, dtype=torch.float64),
                                reference=torch.tensor([[-1.0], [1.0]], dtype=torch.float64).expand(2, 6))
    assert torch.equal(values, small)


def test_every_dim_of_huge_broadcast_codes_is_refused_before_allocating():
    with pytest.raises(ValueError, match=r"traversal_values: the values \[A=1, K=1000000000000, S=3\] and their "
                                         r"temporaries needs .* GiB"):
        ls.traversal_values(torch.zeros(1, 1).expand(1, 10**12), steps=3)


# --- a Posterior as anchors, as traverse takes it --------------------------------------------


@pytest.mark.parametrize("mode", ls.MODES)
@pytest.mark.parametrize("along", [False, True])
def test_traversal_values_of_a_posterior_are_what_traverse_sweeps(mode, along):
    """traverse(decoder, posterior, mode=...) takes a Posterior (its mu, and its logvar); the
    function that says which values it sweeps refused one ('anchors must be a torch.Tensor')."""
    mu = torch.randn(3, 2, 2, 2, generator=gen(1))
    posterior = ls.Posterior(mu, torch.randn(3, 2, 2, 2, generator=gen(2)) - 2)
    options = dict(mode=mode, span=1.5, steps=5, reference=torch.randn(20, 2, 2, 2, generator=gen(3)))
    if along:
        options["directions"] = torch.randn(2, 2, 2, 2, generator=gen(4))
    values = ls.traversal_values(posterior, **options)
    assert torch.equal(values, ls.traverse(lambda z: z.flatten(1), posterior, progress=False, **options).values)
    flat = dict(options, logvar=posterior.logvar, reference=options["reference"].flatten(1))
    if along:
        flat["directions"] = options["directions"].flatten(1)
    assert torch.equal(values, ls.traversal_values(posterior.mu, **flat))


def test_a_posterior_without_logvar_says_what_posterior_mode_needs():
    with pytest.raises(ValueError, match="mode='posterior' needs logvar"):
        ls.traversal_values(ls.Posterior(torch.zeros(2, 3)), mode="posterior")


# --- axis_alignment on codes it cannot describe --------------------------------------------------


@pytest.mark.parametrize("codes, error, match", [
    (torch.tensor([[1.0, math.nan], [2.0, 3.0], [4.0, 5.0]]), ValueError, r"codes has 1 non-finite value"),  # was None
    (torch.tensor([[1.0, math.inf], [2.0, 3.0], [4.0, 5.0]]), ValueError, r"codes has 1 non-finite value"),  # was None
    (torch.ones(0, 3), ValueError, r"codes must be \[N, D\] with N >= 2 and D >= 1, got shape \(0, 3\)"),  # aminmax
    (torch.ones(5, 0), ValueError, r"got shape \(5, 0\)"),  # aminmax's RuntimeError
    (torch.ones(1, 3), ValueError, r"got shape \(1, 3\)"),  # None: "the codes do not vary"
    (torch.randn(5), ValueError, r"got shape \(5,\)"),  # 'not enough values to unpack'
    (torch.randn(5, 3, dtype=torch.complex64), TypeError, r"codes must hold real numbers"),  # aminmax_cpu
    (torch.ones(5, 3, dtype=torch.bool), TypeError, r"codes must hold real numbers"),  # was None
    (np.ones((5, 3)), TypeError, r"codes must be a torch.Tensor, got ndarray"),  # AttributeError
    (torch.ones(5, 3, device="meta"), ValueError, r"codes is on the meta device"),  # NotImplementedError
])
def test_axis_alignment_refuses_codes_it_cannot_describe(codes, error, match):
    with pytest.raises(error, match=r"latentsweep\.alignment\.axis_alignment: .*" + match):
        axis_alignment(codes)


def test_axis_alignment_still_takes_integer_and_low_precision_codes():
    codes = torch.randn(50, 3, generator=gen(5)) * torch.tensor([3.0, 1.0, 0.5])
    exact = axis_alignment(codes.double())
    assert axis_alignment(codes.round().to(torch.int64)).top_coordinate_share == pytest.approx(
        exact.top_coordinate_share, rel=0.05)
    assert axis_alignment(codes.half()).top_component_share == pytest.approx(exact.top_component_share, rel=1e-2)
    assert axis_alignment(torch.ones(4, 2)) is None  # constant codes: documented None
