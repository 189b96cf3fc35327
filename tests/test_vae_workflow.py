"""The VAE workflow of the README, read as a researcher reads it: what diagnose() and its findings
say about the models people actually train (found by training small VAEs on the digits with the
classic mistakes, then checking that the findings name the cause and give advice that applies)."""

from __future__ import annotations

import math

import pytest
import torch

import latentsweep as ls

N = 2000


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- a ReLU on the mean head that died took its latents with it -----------------------------------


def dead_relu_mean_head(seed: int = 0):
    """What a trained VAE with a ReLU on its mean head gave: each mean exactly 0 for about 90% of
    the inputs, small and positive for the rest, and a linear log-variance head near 0: every
    latent collapsed (KL < 0.01 nats), because the ReLU died."""
    g = gen(seed)
    mu = torch.relu(0.05 * torch.randn(N, 4, generator=g, dtype=torch.float64) - 0.065)
    logvar = 0.02 * torch.randn(N, 4, generator=g, dtype=torch.float64)
    return ls.Posterior(mu, logvar)


def test_a_dead_relu_on_the_mean_head_is_named_not_blamed_on_the_kl_pressure():
    """It was flagged ``collapsed`` only, and the first finding said "Retrain with less KL
    pressure": the ReLU, the cause, went unmentioned (the head checks skipped every collapsed
    latent, though a linear head's collapsed means scatter around 0, below it too)."""
    diagnosis = ls.diagnose(dead_relu_mean_head())
    assert diagnosis.num_active == 0
    assert diagnosis.flag("collapsed").dims == [0, 1, 2, 3]
    assert diagnosis.flag("nonnegative-mean").dims == [0, 1, 2, 3]
    codes = [f.code for f in diagnosis.findings()]
    assert codes[:2] == ["relu-heads", "whole-collapse"]
    collapse = diagnosis.findings()[1]
    assert "ReLU" in collapse.text and "make the heads linear first" in collapse.text
    assert "Make the flagged encoder heads linear" in diagnosis.recommendation


def test_collapsed_means_of_exactly_zero_for_every_input_are_still_no_relu():
    """The documented case stays: a collapsed latent's mu = 0 (no positive value) is a collapse."""
    posterior = dead_relu_mean_head()
    mu = posterior.mu.clone()
    mu[:, 1] = 0.0
    mu[:, 2] = 0.05 * torch.randn(N, generator=gen(3), dtype=torch.float64)  # a linear head's: both signs
    diagnosis = ls.diagnose(ls.Posterior(mu, posterior.logvar))
    assert diagnosis.flag("nonnegative-mean").dims == [0, 3]


def test_a_dead_relu_on_the_log_variance_head_of_a_collapsed_latent_is_named():
    """Log-variances never negative, mostly exactly 0, sometimes positive: the ReLU's mark there too."""
    g = gen(4)
    mu = 0.01 * torch.randn(N, 3, generator=g, dtype=torch.float64)
    logvar = torch.relu(0.02 * torch.randn(N, 3, generator=g, dtype=torch.float64) - 0.02)
    logvar[:, 2] = 0.01 * torch.randn(N, generator=g, dtype=torch.float64)  # linear: both signs
    diagnosis = ls.diagnose(ls.Posterior(mu, logvar))
    assert diagnosis.flag("collapsed").dims == [0, 1, 2]
    assert diagnosis.flag("nonnegative-logvar").dims == [0, 1]
    assert diagnosis.flag("nonnegative-mean") is None


# --- a whole collapse: no advice about the axes of noise, nor an empty dims= ---------------------


def test_a_whole_collapse_gets_no_axes_advice_nor_an_empty_list_of_dims_to_keep():
    """Collapsed codes are noise of ~1e-3; their top principal component held 97% of that noise
    and the recommendation said "compare the latents with the principal directions" (the
    findings, rightly, did not), and "leave them out (dims=diagnosis.active_dims)", an empty list."""
    g = gen(5)
    shared = 1e-3 * torch.randn(N, 1, generator=g, dtype=torch.float64)
    mu = shared.expand(N, 4) + 1e-4 * torch.randn(N, 4, generator=g, dtype=torch.float64)
    diagnosis = ls.diagnose(ls.Posterior(mu, torch.zeros_like(mu)))
    assert diagnosis.num_active == 0 and diagnosis.axis_aligned is False
    text = diagnosis.recommendation
    assert "whole posterior collapsed" in text
    assert "principal" not in text and "dims=diagnosis.active_dims" not in text
    assert [f.code for f in diagnosis.findings()] == ["whole-collapse"]


def test_active_latents_still_get_the_axes_and_leave_out_advice():
    g = gen(6)
    z = torch.randn(N, 2, generator=g, dtype=torch.float64)
    mu = torch.cat([z @ torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / math.sqrt(2) * 0.9,
                    1e-3 * torch.randn(N, 2, generator=g, dtype=torch.float64)], dim=1)
    mu[:, 0] *= 1.2  # (an unequal spread, so that the principal axes are defined)
    logvar = torch.cat([torch.full((N, 2), -1.0, dtype=torch.float64), torch.zeros(N, 2, dtype=torch.float64)], 1)
    diagnosis = ls.diagnose(ls.Posterior(mu, logvar))
    assert diagnosis.active_dims == [0, 1] and diagnosis.flag("collapsed").dims == [2, 3]
    assert "dims=diagnosis.active_dims" in diagnosis.recommendation


# --- means that are one number for every input are not "narrow codes" ----------------------------


def test_means_fixed_for_every_input_are_not_blamed_on_the_prior():
    """A dead ReLU mean head (mu = 0 for every input) beside a log-variance head a little away
    from 0 (KL 0.02 to 0.08 nats): the finding said the means "vary by an SD of 0" and to
    "check that the prior is the one the model was trained with", advice that does not apply."""
    g = gen(7)
    mu = torch.zeros(N, 3, dtype=torch.float64)
    logvar = -0.4 + 0.1 * torch.randn(N, 3, generator=g, dtype=torch.float64)
    diagnosis = ls.diagnose(ls.Posterior(mu, logvar))
    assert diagnosis.num_active == 0 and diagnosis.uncollapsed_inactive_dims == [0, 1, 2]
    finding = next(f for f in diagnosis.findings() if f.code == "no-active")
    assert "check that the prior" not in finding.text and "SD of 0 " not in finding.text
    assert "the mean is 0 for every input" in finding.text and "ignore the input" in finding.text
    assert diagnosis.flag("nonnegative-mean").dims == [0, 1, 2]
    assert "as when a ReLU on the mean head died (see above)" in finding.text


def test_fixed_and_varying_means_are_told_apart():
    g = gen(8)
    mu = torch.zeros(N, 3, dtype=torch.float64)
    logvar = -0.4 + 0.1 * torch.randn(N, 3, generator=g, dtype=torch.float64)
    mu[:, 2] = 0.02 * torch.randn(N, generator=g, dtype=torch.float64)  # narrow, varying means
    diagnosis = ls.diagnose(ls.Posterior(mu, logvar))
    finding = next(f for f in diagnosis.findings() if f.code == "no-active")
    assert "the means on dim 2 vary by an SD of 0.02" in finding.text and "check that the prior" in finding.text
    assert "On dims 0-1 the mean is 0 for every input" in finding.text


# --- the training integrations: a sample too small to diagnose is refused up front ---------------


def test_log_traversals_refuses_a_single_input_naming_itself():
    pytest.importorskip("tensorboard")
    from latentsweep.integrations.tensorboard import log_traversals

    class Writer:  # (never written to: the call fails first)
        def add_scalar(self, *a, **k): raise AssertionError
        add_image = add_text = add_scalar

    encoder, decoder = torch.nn.Linear(4, 2), torch.nn.Linear(2, 4)
    with pytest.raises(ValueError, match=r"log_traversals: data must hold at least 2 inputs, got shape \(1, 4\)"):
        log_traversals(Writer(), encoder, decoder, torch.randn(1, 4), step=0)


# --- Var(mu) of latents whose posterior SD is far larger than their means ------------------------


def test_the_variance_of_the_means_survives_huge_posterior_sds():
    """A diverged log-variance head (logvar 750: sigma ~ 1e163) beside means of SD 1: the means
    were divided by sigma's power of two before squaring, their squares underflowed, and
    Var(mu) read 0, so no latent was active."""
    g = gen(9)
    mu = torch.randn(500, 3, generator=g, dtype=torch.float64)
    logvar = torch.full_like(mu, 750.0)
    logvar[:, 2] = -2.0  # an ordinary latent beside them
    diagnosis = ls.diagnose(ls.Posterior(mu, logvar))
    expected = mu.var(0, unbiased=False)
    assert torch.allclose(diagnosis.mu_variance, expected, rtol=1e-12)
    assert diagnosis.active.tolist() == [True, True, True]
    sigma = torch.exp(0.5 * logvar)  # (its square overflows float64 on dims 0-1, where Var(mu) is negligible)
    assert torch.allclose(diagnosis.sd[:2], sigma[0, :2], rtol=1e-12)
    assert float(diagnosis.sd[2]) == pytest.approx(float((expected[2] + (sigma[:, 2] ** 2).mean()).sqrt()), rel=1e-12)


def test_a_fixed_negative_mean_is_described_without_a_relu():
    g = gen(10)
    mu = torch.full((N, 2), -0.3, dtype=torch.float64)
    logvar = -0.2 + 0.05 * torch.randn(N, 2, generator=g, dtype=torch.float64)
    diagnosis = ls.diagnose(ls.Posterior(mu, logvar))
    finding = next(f for f in diagnosis.findings() if f.code == "no-active")
    assert "On dims 0-1 the mean is -0.3 for every input: the means ignore the input." in finding.text
    assert "ReLU" not in finding.text and "check that the prior" not in finding.text


def test_one_collapsed_latent_is_said_in_the_singular():
    torch.manual_seed(0)
    mu = torch.cat([torch.randn(200, 2), torch.zeros(200, 1)], dim=1)
    logvar = torch.cat([torch.full((200, 2), -2.0), torch.zeros(200, 1)], dim=1)
    text = " ".join(f.text for f in ls.diagnose(ls.Posterior(mu, logvar)).findings())
    assert "Dim 2 has KL under" in text, text


def test_shares_near_one_and_one_collapsed_latent_read_right_everywhere():
    # (alignment's brief, the report's zeros column and direction labels printed 0.999 as 100%;
    # "Dim 2 collapsed ... and carry nothing; leave them out")
    torch.manual_seed(0)
    mu = torch.randn(1000, 2) * torch.tensor([1.0, 0.03])
    assert "100%" not in ls.diagnose(mu).axes.brief()
    from latentsweep.latent_shape import direction_labels
    pcs = ls.principal_directions(mu)
    assert direction_labels(pcs)[0] == "PC1 (99.9%)"
    mu = torch.cat([torch.randn(200, 2), torch.zeros(200, 1)], dim=1)
    logvar = torch.cat([torch.full((200, 2), -2.0), torch.zeros(200, 1)], dim=1)
    assert "Dim 2 collapsed to the prior and carries nothing; leave it out" in \
        ls.diagnose(ls.Posterior(mu, logvar)).recommendation
