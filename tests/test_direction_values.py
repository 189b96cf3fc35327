"""traversal_values(..., directions=U): every mode along unit directions, against direct
computations, one-hot directions against coordinates, and the premise (the projection of
N(0, I) on a unit vector is N(0, 1)) as a statistical test."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

import latentsweep

MODES = latentsweep.MODES


def setup(num_anchors=4, latent=6, num_dirs=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randn(num_anchors, latent, generator=g, dtype=torch.float64)
    raw = torch.randn(num_dirs, latent, generator=g, dtype=torch.float64)
    logvar = torch.randn(num_anchors, latent, generator=g, dtype=torch.float64) - 2
    reference = torch.randn(500, latent, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2, latent, dtype=torch.float64)
    return anchors, raw, logvar, reference


def test_each_mode_along_directions_matches_its_definition():
    anchors, raw, logvar, reference = setup()
    u = raw / raw.norm(dim=1, keepdim=True)
    t = torch.linspace(-2.5, 2.5, 7, dtype=torch.float64)
    kwargs = dict(span=2.5, steps=7, prior_std=1.5, logvar=logvar, reference=reference, directions=raw)
    along = anchors @ u.T  # [A, K]
    got = {mode: latentsweep.traversal_values(anchors, mode=mode, **kwargs) for mode in MODES}
    assert torch.allclose(got["prior"], along[..., None] + t * 1.5, atol=1e-12)
    assert torch.allclose(got["absolute"], (t * 1.5).expand(4, 3, 7), atol=1e-12)
    quantile = 1.5 * torch.special.ndtri(torch.linspace(scipy.stats.norm.cdf(-2.5), scipy.stats.norm.cdf(2.5), 7, dtype=torch.float64))
    assert torch.allclose(got["quantile"], quantile.expand(4, 3, 7), atol=1e-9)
    sd_along = torch.sqrt((torch.exp(logvar)[:, None, :] * (u**2)[None]).sum(-1))  # [A, K]
    assert torch.allclose(got["posterior"], along[..., None] + t * sd_along[..., None], atol=1e-12)
    levels = torch.linspace(scipy.stats.norm.cdf(-2.5), scipy.stats.norm.cdf(2.5), 7, dtype=torch.float64)
    projected = reference @ u.T
    empirical = torch.quantile(projected, levels, dim=0).T  # [K, S]
    assert torch.allclose(got["empirical"], empirical.expand(4, 3, 7), atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_one_hot_directions_give_the_coordinates_values(mode):
    anchors, _, logvar, reference = setup(seed=1)
    dims = [4, 0, 2]
    kwargs = dict(mode=mode, span=2.0, steps=5, logvar=logvar, reference=reference)
    by_direction = latentsweep.traversal_values(anchors, directions=torch.eye(6, dtype=torch.float64)[dims], **kwargs)
    by_dim = latentsweep.traversal_values(anchors, dims=dims, **kwargs)
    assert torch.allclose(by_direction, by_dim, atol=1e-12)


def test_directions_are_normalised_and_accepted_as_directions_objects():
    anchors, raw, logvar, reference = setup(seed=2)
    pcs = latentsweep.principal_directions(reference, k=2)
    from_object = latentsweep.traversal_values(anchors, directions=pcs)
    assert torch.equal(from_object, latentsweep.traversal_values(anchors, directions=pcs.vectors))
    assert torch.allclose(
        latentsweep.traversal_values(anchors, directions=raw * 7.0), latentsweep.traversal_values(anchors, directions=raw)
    )
    assert latentsweep.traversal_values(anchors.float(), directions=raw).dtype == torch.float32
    # exp(720) overflows float64, the SD along a direction (about exp(360)) does not.
    logvar[:, 0] = 720.0
    got = latentsweep.traversal_values(anchors, mode="posterior", logvar=logvar, directions=raw, steps=3)
    u0 = float(raw[0, 0] / raw[0].norm())
    assert torch.isfinite(got).all()
    assert math.isclose(float(got[0, 0, 2] - got[0, 0, 1]), 2.0 * math.exp(360) * abs(u0), rel_tol=1e-6)  # span 2 * SD


def test_projection_of_the_prior_on_a_unit_direction_is_standard_normal():
    """The premise of the prior modes along directions, tested on draws from the prior."""
    draws = latentsweep.sample_prior(20000, 16, seed=3, dtype=torch.float64)
    u = latentsweep.unit_directions(torch.linspace(-1, 2, 16, dtype=torch.float64))[0]
    result = scipy.stats.kstest((draws @ u).numpy(), "norm")
    assert result.pvalue > 1e-3
    # The "quantile" grid's levels match the projected draws' empirical quantiles.
    values = latentsweep.traversal_values(torch.zeros(1, 16, dtype=torch.float64), mode="quantile", span=1.5, steps=5, directions=u)
    levels = torch.tensor(scipy.stats.norm.cdf(values[0, 0].numpy()))
    empirical = torch.quantile(draws @ u, levels)
    assert torch.allclose(empirical, values[0, 0], atol=0.05)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(directions=torch.eye(6)[:2], dims=[0]), ValueError, "dims .* or directions, not both"),
        (dict(directions=torch.zeros(2, 6)), ValueError, r"traversal_values: direction\(s\) \[0, 1\] are zero"),
        (dict(directions=torch.ones(2, 5)), ValueError, r"directions must be \[K, D=6\]"),
        (dict(directions=torch.full((1, 6), math.nan)), ValueError, "traversal_values: directions has 6 non-finite"),
        (dict(directions="pca"), TypeError, "directions must be a torch.Tensor"),
        (dict(directions=torch.eye(6)[:1], mode="posterior", logvar=torch.zeros(4, 5)), ValueError, "logvar must have the anchors' shape"),
        (dict(directions=torch.eye(6)[:1], mode="posterior"), ValueError, "needs logvar"),
        (dict(directions=torch.eye(6)[:1], mode="empirical", reference=torch.zeros(3, 5)), ValueError, r"reference must be \[M, 6\]"),
        (dict(directions=torch.eye(6)[:1], mode="empirical"), ValueError, "needs reference"),
    ],
)
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.traversal_values(torch.zeros(4, 6), **kwargs)
    assert str(info.value).startswith("latentsweep.traversal_values:")


def test_the_posterior_sd_along_a_direction_of_dims_far_below_the_rows_largest_logvar_is_not_zero():
    """Each row's sum was shifted by its largest log-variance over all dims: a direction along
    dims more than ~745 nats below it summed exp(-1500) = 0 and got SD 0 (a flat traversal)."""
    anchors = torch.zeros(1, 2, dtype=torch.float64)
    logvar = torch.tensor([[800.0, -700.0]], dtype=torch.float64)
    directions = torch.tensor([[0.0, 1.0], [0.6, 0.8]], dtype=torch.float64)
    values = latentsweep.traversal_values(anchors, mode="posterior", logvar=logvar, directions=directions, steps=3,
                                          span=2.0)
    expected_sd = torch.tensor([math.exp(-350.0), 0.6 * math.exp(400.0)], dtype=torch.float64)
    torch.testing.assert_close(values[0, :, 2], 2.0 * expected_sd, rtol=1e-12, atol=0.0)
