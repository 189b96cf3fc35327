"""latentsweep.traversal_codes and latentsweep.traversal_values against the references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentsweep
import reference as R
from conftest import FLOAT_DTYPES, num_threads


def make_grid(num_anchors, latent, num_dims, steps, dtype=torch.float32, device="cpu", seed=0, values_ndim=3):
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randn(num_anchors, latent, generator=g, dtype=torch.float64)
    dims = torch.randperm(latent, generator=g)[:num_dims].tolist()
    shape = {1: (steps,), 2: (num_dims, steps), 3: (num_anchors, num_dims, steps)}[values_ndim]
    values = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    return anchors.to(dtype=dtype, device=device), dims, values.to(dtype=dtype, device=device)


# --------------------------------------------------------------------------- traversal_codes


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("values_ndim", [1, 2, 3])
@pytest.mark.parametrize("num_anchors, latent, num_dims, steps", [(3, 5, 2, 4), (1, 1, 1, 1), (4, 64, 64, 3), (2, 33, 7, 11)])
def test_traversal_codes_matches_reference(device, dtype, values_ndim, num_anchors, latent, num_dims, steps):
    anchors, dims, values = make_grid(num_anchors, latent, num_dims, steps, dtype, device, values_ndim=values_ndim)
    got = latentsweep.traversal_codes(anchors, dims, values)
    assert got.shape == (num_anchors * num_dims * steps, latent)
    assert got.dtype == dtype and got.device.type == device
    assert torch.equal(got.cpu(), R.reference_traversal_codes(anchors.cpu(), dims, values.cpu()))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_traversal_codes_dims_as_list_tensor_or_int(device, dtype):
    anchors, dims, values = make_grid(3, 10, 3, 5, dtype, device)
    expected = latentsweep.traversal_codes(anchors, dims, values)
    for as_dims in (torch.tensor(dims), torch.tensor(dims, dtype=torch.int32), torch.tensor(dims, device=device), tuple(dims)):
        assert torch.equal(latentsweep.traversal_codes(anchors, as_dims, values), expected)
    single = latentsweep.traversal_codes(anchors, dims[1], values[:, 1:2])
    assert torch.equal(single, R.reference_traversal_codes(anchors.cpu(), [dims[1]], values[:, 1:2].cpu()).to(device))


def test_traversal_codes_repeated_dims():
    anchors, _, values = make_grid(2, 6, 3, 4, torch.float64)
    dims = [2, 2, 0]
    assert torch.equal(latentsweep.traversal_codes(anchors, dims, values), R.reference_traversal_codes(anchors, dims, values))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_traversal_codes_chunks_concatenate_to_full_grid(device, dtype):
    anchors, dims, values = make_grid(5, 40, 6, 7, dtype, device)  # 210 rows
    full = latentsweep.traversal_codes(anchors, dims, values)
    total = full.shape[0]
    for chunk in (1, 7, 13, 64, total):
        pieces = [latentsweep.traversal_codes(anchors, dims, values, start=s, count=min(chunk, total - s)) for s in range(0, total, chunk)]
        assert torch.equal(torch.cat(pieces), full)
    assert torch.equal(latentsweep.traversal_codes(anchors, dims, values, start=100), full[100:])
    assert latentsweep.traversal_codes(anchors, dims, values, start=total).shape == (0, 40)
    assert latentsweep.traversal_codes(anchors, dims, values, start=3, count=0).shape == (0, 40)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_traversal_codes_out_reuses_buffer(device, dtype):
    anchors, dims, values = make_grid(4, 24, 5, 6, dtype, device)
    full = latentsweep.traversal_codes(anchors, dims, values)
    out = torch.full((32, 24), float("nan"), dtype=dtype, device=device)
    pieces = []
    for start in range(0, full.shape[0], 32):
        count = min(32, full.shape[0] - start)
        buffer = out[:count]
        result = latentsweep.traversal_codes(anchors, dims, values, start=start, count=count, out=buffer)
        assert result.data_ptr() == out.data_ptr()
        pieces.append(result.clone())
    assert torch.equal(torch.cat(pieces), full)
    # Every element of out is overwritten (no NaN left behind from before).
    out.fill_(float("nan"))
    latentsweep.traversal_codes(anchors, dims, values, start=0, count=32, out=out)
    assert torch.equal(out, full[:32])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_traversal_codes_values_of_another_dtype_are_cast(dtype):
    anchors, dims, values = make_grid(2, 9, 3, 4, dtype)
    values64 = values.double() + 1e-3
    got = latentsweep.traversal_codes(anchors, dims, values64)
    assert got.dtype == dtype
    assert torch.equal(got, R.reference_traversal_codes(anchors, dims, values64.to(dtype)))


def test_traversal_codes_non_contiguous_inputs():
    anchors, dims, values = make_grid(6, 20, 4, 5, torch.float64)
    anchors_nc = anchors.T.contiguous().T
    values_nc = values.permute(2, 1, 0).contiguous().permute(2, 1, 0)
    assert not anchors_nc.is_contiguous() and not values_nc.is_contiguous()
    expected = R.reference_traversal_codes(anchors, dims, values)
    assert torch.equal(latentsweep.traversal_codes(anchors_nc, dims, values_nc), expected)
    assert torch.equal(latentsweep.traversal_codes(anchors[::2], dims, values[::2]), R.reference_traversal_codes(anchors[::2], dims, values[::2]))
    per_dim = torch.randn(5, 4, dtype=torch.float64).T  # [K=4, S=5] non-contiguous
    assert torch.equal(latentsweep.traversal_codes(anchors, dims, per_dim), R.reference_traversal_codes(anchors, dims, per_dim))


def test_traversal_codes_one_dimensional_anchor():
    anchors, dims, values = make_grid(1, 12, 3, 4, torch.float32)
    assert torch.equal(latentsweep.traversal_codes(anchors[0], dims, values), latentsweep.traversal_codes(anchors, dims, values))


def test_traversal_codes_leaves_inputs_alone():
    anchors, dims, values = make_grid(3, 12, 3, 4, torch.float32)
    before = anchors.clone(), values.clone()
    latentsweep.traversal_codes(anchors, dims, values)
    assert torch.equal(anchors, before[0]) and torch.equal(values, before[1])


def test_traversal_codes_independent_of_thread_count():
    anchors, dims, values = make_grid(50, 64, 32, 21, torch.float32)  # 33,600 rows: several tasks
    results = []
    for threads in (1, 2, 3):
        with num_threads(threads):
            results.append(latentsweep.traversal_codes(anchors, dims, values, start=17, count=30000))
    assert all(torch.equal(r, results[0]) for r in results)
    assert torch.equal(results[0], R.reference_traversal_codes(anchors, dims, values, start=17, count=30000))


def test_traversal_codes_bit_patterns_survive():
    """Pure data movement: -0.0, subnormals and extreme values come through bit for bit."""
    specials = torch.tensor([-0.0, 1e-310, -1e-320, 1.7976931348623157e308, -2.2250738585072014e-308], dtype=torch.float64)
    anchors = specials[None].repeat(2, 1)
    got = latentsweep.traversal_codes(anchors, [0, 4], specials.flip(0))
    expected = R.reference_traversal_codes(anchors, [0, 4], specials.flip(0))
    assert torch.equal(got.view(torch.int64), expected.view(torch.int64))


# --------------------------------------------------------------------------- traversal_values


def values_inputs(num_anchors=4, latent=6, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(1)
    anchors = torch.randn(num_anchors, latent, generator=g, dtype=torch.float64)
    logvar = torch.rand(num_anchors, latent, generator=g, dtype=torch.float64) * 4 - 4
    reference = torch.randn(257, latent, generator=g, dtype=torch.float64) * 2 + 0.5
    return (t.to(dtype=dtype, device=device) for t in (anchors, logvar, reference))


@pytest.mark.parametrize("mode", latentsweep.MODES)
@pytest.mark.parametrize("dims", [None, [3, 0], [5]])
@pytest.mark.parametrize("span, steps, prior_std", [(2.0, 11, 1.0), (3.5, 4, 0.7), (0.5, 1, 2.0)])
def test_traversal_values_float64_matches_reference(device, mode, dims, span, steps, prior_std):
    anchors, logvar, reference = values_inputs(device=device)
    kwargs = dict(mode=mode, span=span, steps=steps, dims=dims, prior_std=prior_std)
    got = latentsweep.traversal_values(anchors, logvar=logvar, reference=reference, **kwargs)
    num_dims = 6 if dims is None else len(dims)
    assert got.shape == (4, num_dims, steps) and got.dtype == torch.float64 and got.device.type == device
    assert got.is_contiguous()
    expected = R.reference_traversal_values(anchors.cpu(), logvar=logvar.cpu(), reference=reference.cpu(), **kwargs)
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", latentsweep.MODES)
def test_traversal_values_low_precision(mode, dtype):
    anchors, logvar, reference = values_inputs(dtype=dtype)
    got = latentsweep.traversal_values(anchors, mode=mode, span=2.5, steps=9, logvar=logvar, reference=reference)
    assert got.dtype == dtype and got.shape == (4, 6, 9)
    expected = R.reference_traversal_values(anchors.double(), mode=mode, span=2.5, steps=9, logvar=logvar.double(), reference=reference.double())
    tol = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}[dtype]
    torch.testing.assert_close(got.double(), expected, rtol=tol, atol=tol)


def test_traversal_values_modes_say_what_they_mean():
    anchors, logvar, reference = values_inputs()
    prior = latentsweep.traversal_values(anchors, mode="prior", span=2.0, steps=5)
    absolute = latentsweep.traversal_values(anchors, mode="absolute", span=2.0, steps=5)
    quantile = latentsweep.traversal_values(anchors, mode="quantile", span=2.0, steps=5)
    posterior = latentsweep.traversal_values(anchors, mode="posterior", span=2.0, steps=5, logvar=logvar)
    # Prior mode is centred on the anchor; absolute is not, and is the same for every anchor.
    torch.testing.assert_close(prior[:, :, 2], anchors)
    torch.testing.assert_close(absolute[:, :, 2], torch.zeros_like(anchors))
    assert torch.equal(absolute[0], absolute[3])
    torch.testing.assert_close(prior - anchors[:, :, None], absolute)
    # Quantile has the same ends as absolute but is denser in the middle.
    torch.testing.assert_close(quantile[..., [0, -1]], absolute[..., [0, -1]])
    assert (quantile[..., 1:-1].abs() < absolute[..., 1:-1].abs() + 1e-12).all()
    # Posterior moves by the posterior sd (smaller than 1 here).
    torch.testing.assert_close(posterior[..., -1] - anchors, 2.0 * torch.exp(0.5 * logvar))
    # Default mode is the prior, default span 2 and 11 steps.
    torch.testing.assert_close(latentsweep.traversal_values(anchors), latentsweep.traversal_values(anchors, mode="prior", span=2.0, steps=11))


def test_traversal_values_empirical_matches_torch_quantile():
    anchors, _, reference = values_inputs()
    got = latentsweep.traversal_values(anchors, mode="empirical", span=1.0, steps=7, dims=[1, 4], reference=reference)
    levels = torch.linspace(0.15865525393145707, 0.8413447460685429, 7, dtype=torch.float64)
    expected = torch.quantile(reference[:, [1, 4]], levels, dim=0).T
    torch.testing.assert_close(got[2], expected, rtol=1e-12, atol=1e-12)
    single = latentsweep.traversal_values(anchors, mode="empirical", span=1.0, steps=3, reference=reference[:1])
    assert torch.equal(single[0, :, 0], reference[0]) and torch.equal(single[0, :, 2], reference[0])


def test_traversal_values_one_dimensional_inputs_and_dims_tensor():
    anchors, logvar, _ = values_inputs(1, 5)
    got = latentsweep.traversal_values(anchors[0], mode="posterior", logvar=logvar[0], dims=torch.tensor([4, 1]))
    expected = R.reference_traversal_values(anchors, mode="posterior", logvar=logvar, dims=[4, 1])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_traversal_values_feed_traversal_codes():
    anchors, logvar, _ = values_inputs()
    values = latentsweep.traversal_values(anchors, mode="posterior", steps=3, dims=[1, 2], logvar=logvar)
    codes = latentsweep.traversal_codes(anchors, [1, 2], values)
    assert torch.equal(codes, R.reference_traversal_codes(anchors, [1, 2], values))


# --------------------------------------------------------------------------- grids that overflow (issue 12 item 2)


@pytest.mark.parametrize("span", [0.1, 2.0, 3.7, 6.0, 8.0, 9.0, 12.0, 37.5])
@pytest.mark.parametrize("steps", [1, 2, 3, 6, 11, 101])
def test_quantile_mode_keeps_the_promised_ends(span, steps):
    """Phi(9) rounds to 1 in float64, so ndtri(linspace(Phi(-9), Phi(9))) ended at inf (span 9)
    or at an asymmetric 8.03 (span 8); the lower tail gives the exact, symmetric ends."""
    values = latentsweep.traversal_values(torch.zeros(1, 2, dtype=torch.float64), mode="quantile", span=span, steps=steps)
    row = values[0, 0]
    assert torch.isfinite(row).all()
    torch.testing.assert_close(row[0], torch.tensor(-span, dtype=torch.float64), rtol=1e-9, atol=0)
    if steps > 1:
        torch.testing.assert_close(row[-1], torch.tensor(span, dtype=torch.float64), rtol=1e-9, atol=0)
        assert torch.equal(row, -row.flip(0))  # exactly symmetric, the middle exactly 0
        assert (row.diff() > 0).all()


def test_quantile_mode_matches_scipy_in_the_body():
    import scipy.stats

    span, steps = 2.5, 7
    levels = np.linspace(scipy.stats.norm.cdf(-span), scipy.stats.norm.cdf(span), steps)
    values = latentsweep.traversal_values(torch.zeros(1, 1, dtype=torch.float64), mode="quantile", span=span, steps=steps, prior_std=1.5)
    torch.testing.assert_close(values[0, 0], torch.tensor(1.5 * scipy.stats.norm.ppf(levels)), rtol=1e-10, atol=1e-12)


def test_quantile_mode_refuses_spans_past_the_float64_tail():
    with pytest.raises(ValueError, match=r"mode='quantile' needs span <= 37.5 .* got 40"):
        latentsweep.traversal_values(torch.zeros(1, 2), mode="quantile", span=40.0)


@pytest.mark.parametrize(
    "dtype, logvar",
    [(torch.float32, 180.0), (torch.float64, 1500.0), (torch.float16, 22.0), (torch.bfloat16, 180.0)],
)
def test_posterior_mode_refuses_grids_that_overflow(dtype, logvar):
    """Was [-inf, nan, inf] (float32, logvar 180; float16 from logvar ~21), which traverse then
    blamed on the decoder."""
    anchors = torch.zeros(1, 2, dtype=dtype)
    big = torch.full((1, 2), logvar, dtype=dtype)
    with pytest.raises(ValueError, match=rf"mode='posterior' gives values beyond the largest {dtype}.*logvar must be <= about [0-9.]+, got a maximum of") as info:
        latentsweep.traversal_values(anchors, mode="posterior", logvar=big, steps=3)
    limit = float(str(info.value).split("must be <= about ")[1].split(",")[0])
    # The limit it names works, a little above it does not.
    fine = torch.full((1, 2), limit - 0.5, dtype=torch.float64).to(dtype)
    assert torch.isfinite(latentsweep.traversal_values(anchors, mode="posterior", logvar=fine, steps=3)).all()


def test_prior_mode_refuses_float16_grids_that_overflow():
    anchors = torch.full((1, 2), 65000.0, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"mode='prior' gives values beyond the largest torch.float16.*anchors \+ span \* prior_std"):
        latentsweep.traversal_values(anchors, mode="prior", span=2.0, prior_std=400.0)


def test_traverse_refuses_an_overflowing_grid_before_decoding():
    calls = []

    def decoder(z):
        calls.append(z.shape[0])
        return z * 2

    with pytest.raises(ValueError, match="mode='posterior' gives values beyond"):
        latentsweep.traverse(decoder, torch.zeros(2, 3), mode="posterior", logvar=torch.full((2, 3), 180.0), steps=3, progress=False)
    assert calls == []


def test_empirical_mode_refuses_reference_quantiles_beyond_float16():
    anchors = torch.zeros(1, 2, dtype=torch.float16)
    reference = torch.full((10, 2), 1e6)  # finite in float32, inf in float16
    with pytest.raises(ValueError, match="mode='empirical' gives values beyond the largest torch.float16.*reference's quantiles"):
        latentsweep.traversal_values(anchors, mode="empirical", reference=reference)


def test_values_beyond_the_anchors_dtype_are_named_as_such():
    """1e6 is a finite float32 and an infinite float16: not "non-finite" (one rule, _checks.representable)."""
    anchors = torch.zeros(2, 3, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"traversal_codes: values reaches 1e\+06, beyond the largest torch.float16 .*float64 anchors"):
        latentsweep.traversal_codes(anchors, [0], torch.tensor([0.0, 1e6]))
    with pytest.raises(ValueError, match=r"direction_codes: values reaches 1e\+06, beyond the largest torch.float16"):
        latentsweep.direction_codes(anchors, torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1e6]))
    codes = latentsweep.traversal_codes(anchors, [0], torch.tensor([0.0, 6e4]))  # within float16
    assert codes.dtype == torch.float16 and torch.isfinite(codes).all()


# --------------------------------------------------------------------------- memory of traversal_values

MIB = 2**20


@pytest.fixture
def small_machine(monkeypatch):
    """The memory checks see a machine of 256 MiB (128 MiB for one computation)."""
    from latentsweep import _checks

    monkeypatch.setattr(_checks, "_memory_capacity", lambda device: 256 * MIB)


@pytest.mark.parametrize(("dtype", "mode", "steps"), [
    (torch.float16, "prior", 8 * MIB),  # 16 MiB of values; ~100 MiB computing them (float32 buffer, t)
    (torch.float32, "quantile", 2 * MIB),  # 8 MiB of values; ~100 MiB (the float64 prior levels)
    (torch.float32, "empirical", 1536 * 1024),  # 6 MiB of values; ~140 MiB (levels, float64 quantiles)
])
def test_traversal_values_counts_what_computing_the_values_takes(small_machine, dtype, mode, steps):
    """Only the values' own bytes were counted: a one-latent grid of many steps needs 6 (float16
    "prior") to 24 ("empirical") times as much, so grids the check let through were killed for
    memory."""
    with pytest.raises(ValueError, match=rf"traversal_values: the values \[A=1, K=1, S={steps}\] and their "
                                         r"temporaries needs 0.[12] GiB, more than 50%"):
        latentsweep.traversal_values(torch.zeros(1, 1, dtype=dtype), mode=mode, steps=steps,
                                     reference=torch.randn(10, 1))


def test_traversal_values_still_computes_what_fits(small_machine):
    values = latentsweep.traversal_values(torch.zeros(1, 1), mode="quantile", steps=MIB)
    assert values.shape == (1, 1, MIB) and float(values[0, 0, 0]) == -2.0 and float(values[0, 0, -1]) == 2.0


def test_modes_without_prior_levels_never_compute_them(monkeypatch):
    """The float64 prior levels (32 bytes a step at their peak) were computed for every mode."""
    from latentsweep import modes

    def refuse(span, steps):
        raise AssertionError("prior levels computed")

    monkeypatch.setattr(modes, "prior_levels", refuse)
    anchors = torch.randn(2, 3)
    for mode in ("prior", "absolute"):
        assert latentsweep.traversal_values(anchors, mode=mode, steps=5).shape == (2, 3, 5)
    assert latentsweep.traversal_values(anchors, mode="posterior", logvar=torch.zeros(2, 3), steps=5).shape == (2, 3, 5)
    with pytest.raises(AssertionError, match="prior levels computed"):
        latentsweep.traversal_values(anchors, mode="quantile", steps=5)
