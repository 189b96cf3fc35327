"""latentsweep.diagnose: statistics against independent closed forms, and each flag on synthetic
posteriors built to have, and not to have, its defect."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

import latentsweep as ls
from latentsweep.diagnosis import FLAG_CODES, format_dims

N = 4000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def healthy(d: int = 4, *, prior_std: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A well-behaved VAE: mu ~ N(0, 0.8^2), sigma = 0.6, so the aggregate is N(0, 1) x prior_std."""
    mu = 0.8 * prior_std * torch.randn(N, d, generator=gen(seed), dtype=torch.float64)
    logvar = torch.full((N, d), 2 * math.log(0.6 * prior_std), dtype=torch.float64)
    return mu, logvar


def diagnose(mu, logvar=None, **kwargs) -> ls.Diagnosis:
    return ls.diagnose(ls.Posterior(mu, logvar), **kwargs)


def flagged(diagnosis: ls.Diagnosis, code: str) -> list[int]:
    flag = diagnosis.flag(code)
    return [] if flag is None else flag.dims


# --- statistics against closed forms computed independently -------------------------------------


@pytest.mark.parametrize("prior_std", [1.0, 2.5, 0.3])
def test_statistics_match_closed_forms(prior_std):
    g = gen(1)
    d = 6
    spread = torch.tensor([0.01, 0.07, 0.15, 1.0, 2.0, 3.0], dtype=torch.float64)  # Var 1e-4 .. 9
    mu = torch.randn(N, d, generator=g, dtype=torch.float64) * spread + 0.2
    logvar = torch.randn(N, d, generator=g, dtype=torch.float64) * 0.5 + torch.linspace(-5, 1, d, dtype=torch.float64)
    diagnosis = diagnose(mu, logvar, prior_std=prior_std)

    sd = torch.exp(0.5 * logvar)
    kl = kl_divergence(Normal(mu, sd), Normal(torch.zeros_like(mu), prior_std)).mean(0)
    torch.testing.assert_close(diagnosis.kl, kl)
    m, s2 = mu.numpy(), np.exp(logvar.numpy())
    # Burda et al.'s Var(mu) > 0.01, in the prior's units
    assert diagnosis.active.tolist() == (np.var(m, axis=0) / prior_std**2 > 0.01).tolist()
    expected_active = {1.0: [2, 3, 4, 5], 2.5: [3, 4, 5], 0.3: [1, 2, 3, 4, 5]}[prior_std]  # Var 0.0049, 0.0225, ...
    assert diagnosis.active_dims == expected_active and diagnosis.num_active == len(expected_active)
    np.testing.assert_allclose(diagnosis.mu_variance, np.var(m, axis=0))
    np.testing.assert_allclose(diagnosis.posterior_sd, np.sqrt(s2).mean(0))
    # aggregate posterior (an equal mixture): mean of means, variance from the second moment
    np.testing.assert_allclose(diagnosis.mean, m.mean(0))
    second_moment = (m**2 + s2).mean(0)
    np.testing.assert_allclose(diagnosis.sd, np.sqrt(second_moment - m.mean(0) ** 2))
    np.testing.assert_allclose(diagnosis.min, m.min(0))
    np.testing.assert_allclose(diagnosis.max, m.max(0))
    assert diagnosis.total_kl == pytest.approx(float(kl.sum()))


def test_kl_is_zero_when_posterior_equals_prior():
    mu = torch.zeros(10, 3)
    diagnosis = diagnose(mu, torch.full((10, 3), 2 * math.log(2.0)), prior_std=2.0)
    torch.testing.assert_close(diagnosis.kl, torch.zeros(3, dtype=torch.float64))


def test_low_precision_posteriors_are_computed_in_float64():
    mu, logvar = healthy()
    reference = diagnose(mu, logvar)
    half = diagnose(mu.half(), logvar.half())
    assert half.kl.dtype == torch.float64
    torch.testing.assert_close(half.kl, reference.kl, atol=2e-3, rtol=2e-3)


# --- each flag: fires on the defect, not without it ----------------------------------------------


def test_healthy_vae_has_no_flags_and_recommends_the_prior():
    diagnosis = diagnose(*healthy())
    assert diagnosis.flags == []
    assert diagnosis.recommended_mode == "prior"
    assert diagnosis.num_active == 4
    torch.testing.assert_close(diagnosis.sd, torch.ones(4, dtype=torch.float64), atol=0.05, rtol=0)


def test_small_posterior_sd():
    mu, logvar = healthy(6)
    mu[:, :3] = torch.randn(N, 3, generator=gen(2), dtype=torch.float64)
    logvar[:, :2] = 2 * math.log(0.02)  # certain: flagged
    logvar[:, 2] = 2 * math.log(0.2)  # 0.2 > 0.1 x prior_std: fine
    mu[:, 5] = 0.001 * mu[:, 5]
    logvar[:, 5] = 2 * math.log(0.02)  # tiny sigma but inactive: not this flag
    diagnosis = diagnose(mu, logvar)
    flag = diagnosis.flag("small-posterior-sd")
    assert flag.dims == [0, 1]
    assert flag.stats["median_posterior_sd"] == pytest.approx([0.02, 0.02])
    assert flag.stats["threshold"] == pytest.approx(0.1)
    assert flagged(diagnosis, "marginal-mismatch") == [5]  # its aggregate is a spike at 0
    without_dim_5 = diagnose(mu[:, :5], logvar[:, :5])
    assert [f.code for f in without_dim_5.flags] == ["small-posterior-sd"]
    assert without_dim_5.recommended_mode == "prior"
    text = str(without_dim_5)
    assert "not the posterior" in text and 'mode "prior" or "absolute"' in text


def test_small_posterior_sd_scales_with_the_prior():
    mu = 2 * torch.randn(N, 1, generator=gen(3), dtype=torch.float64)
    logvar = torch.full_like(mu, 2 * math.log(0.15))
    assert flagged(diagnose(mu, logvar, prior_std=2.0), "small-posterior-sd") == [0]
    assert flagged(diagnose(mu, logvar, prior_std=1.0), "small-posterior-sd") == []


@pytest.mark.parametrize("prior_std", [0.05, 10.0, 1e-30, 1e30])
def test_the_diagnosis_is_the_same_in_the_priors_units(prior_std):
    """Codes and prior scaled together are diagnosed alike: activity was Var(mu) > 0.01 in
    absolute units, so a healthy VAE under N(0, 0.05^2) read as total collapse, and a latent equal
    to the prior under N(0, 10^2) as active."""
    mu, logvar = healthy(5)
    g = gen(8)
    mu[:, 1] = 0.001 * mu[:, 1]  # inactive but informative
    mu[:, 2], logvar[:, 2] = 0.001 * torch.randn(N, generator=g, dtype=torch.float64), 0.0  # collapsed
    logvar[:, 3] = 2 * math.log(0.01)  # small posterior SD
    mu[:, 4] = mu[:, 4] + 1.0  # marginal mismatch
    unit = diagnose(mu, logvar)
    scaled = diagnose(mu * prior_std, logvar + 2 * math.log(prior_std), prior_std=prior_std)
    assert unit.active_dims == scaled.active_dims == [0, 3, 4]
    assert [(f.code, f.dims) for f in unit.flags] == [(f.code, f.dims) for f in scaled.flags]
    assert [f.code for f in unit.flags] == ["small-posterior-sd", "collapsed", "marginal-mismatch"]
    torch.testing.assert_close(unit.kl, scaled.kl)
    assert [f.headline for f in unit.findings()] == [f.headline for f in scaled.findings()]


def test_collapsed():
    mu, logvar = healthy(5)
    g = gen(4)
    mu[:, 3:] = 0.01 * torch.randn(N, 2, generator=g, dtype=torch.float64)  # mu ~ 0 ...
    logvar[:, 3:] = 0.01 * torch.randn(N, 2, generator=g, dtype=torch.float64)  # ... and logvar ~ 0
    mu[:, 2] = 0.01 * mu[:, 2]  # inactive but informative (sigma = 0.6, KL ~ 0.2): not collapsed
    diagnosis = diagnose(mu, logvar)
    flag = diagnosis.flag("collapsed")
    assert flag.dims == [3, 4]
    assert max(flag.stats["kl"]) < 0.01
    assert diagnosis.active.tolist() == [True, True, False, False, False]
    assert "leave them out" in diagnosis.recommendation


def test_nonnegative_mean():
    mu, logvar = healthy(5)
    g = gen(5)
    mu[:, 0] = torch.relu(torch.randn(N, generator=g, dtype=torch.float64))  # ReLU head: flagged
    mu[:, 1] = torch.randn(N, generator=g, dtype=torch.float64).abs()  # >= 0, no exact zeros
    mu[:, 2] = torch.relu(torch.randn(N, generator=g, dtype=torch.float64) + 2.5)  # < 5% zeros
    mu[:, 3] = torch.where(torch.arange(N) % 5 == 0, 0.0, mu[:, 3])  # 20% zeros, but negatives
    diagnosis = diagnose(mu, logvar)
    flag = diagnosis.flag("nonnegative-mean")
    assert flag.dims == [0]
    assert flag.stats["min"] == [0.0]
    assert flag.stats["zero_fraction"][0] == pytest.approx(0.5, abs=0.03)
    assert 0 < diagnosis.zero_fraction[2] < 0.05
    assert diagnosis.zero_fraction[3] == pytest.approx(0.2)


def test_nonnegative_logvar():
    mu, logvar = healthy(4)
    g = gen(6)
    logvar[:, 1] = torch.relu(torch.randn(N, generator=g, dtype=torch.float64))  # ReLU head
    logvar[:, 2] = torch.relu(torch.randn(N, generator=g, dtype=torch.float64)) - 1e-3  # min < 0
    flag = diagnose(mu, logvar).flag("nonnegative-logvar")
    assert flag.dims == [1]
    assert flag.stats["min_logvar"] == [0.0]


def test_nonnegative_logvar_under_a_wide_prior_needs_the_relus_zeros():
    """Under N(0, 10^2) sigma = 2 (logvar > 0 everywhere) is an ordinary posterior: it was told to
    retrain with a linear head. A ReLU head still shows by its exact zeros."""
    g = gen(9)
    mu = 9.8 * torch.randn(N, 3, generator=g, dtype=torch.float64)
    logvar = torch.full((N, 3), 2 * math.log(2.0), dtype=torch.float64)
    logvar[:, 1] = torch.relu(torch.randn(N, generator=g, dtype=torch.float64))  # ReLU head: half zeros
    diagnosis = diagnose(mu, logvar, prior_std=10.0)
    assert flagged(diagnosis, "nonnegative-logvar") == [1]
    assert diagnosis.flag("nonnegative-logvar").stats["zero_fraction"][0] == pytest.approx(0.5, abs=0.03)
    narrow = diagnose(mu / 10, logvar, prior_std=0.1)
    assert flagged(narrow, "nonnegative-logvar") == [1]  # the ReLU's zeros; a fixed sigma of 2 is no ReLU's floor,
    assert flagged(narrow, "marginal-mismatch") == [0, 1, 2]  # though 20 x the prior's SD: the codes are too wide


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda mu, lv: (mu + 1.0, lv), id="shifted"),
        pytest.param(lambda mu, lv: (3 * mu, lv), id="too-wide"),
        pytest.param(lambda mu, lv: (0.1 * mu, torch.full_like(lv, 2 * math.log(0.1))), id="too-narrow"),
    ],
)
def test_marginal_mismatch(change):
    mu, logvar = healthy(3)
    mu[:, 1], logvar[:, 1] = change(mu[:, 1], logvar[:, 1])
    diagnosis = diagnose(mu, logvar)
    assert flagged(diagnosis, "marginal-mismatch") == [1]
    assert diagnosis.recommended_mode == "empirical"
    assert 'mode "empirical"' in diagnosis.recommendation


def test_marginal_mismatch_is_relative_to_the_prior():
    mu, logvar = healthy(3, prior_std=3.0)
    assert flagged(diagnose(mu, logvar, prior_std=3.0), "marginal-mismatch") == []
    assert flagged(diagnose(mu, logvar, prior_std=1.0), "marginal-mismatch") == [0, 1, 2]


def test_nonfinite_is_flagged_and_other_statistics_use_the_finite_values():
    mu, logvar = healthy(4)
    mu[[3, 10], 1] = math.nan
    logvar[7, 2] = math.inf
    logvar[8, 2] = -math.inf
    diagnosis = diagnose(mu, logvar)
    flag = diagnosis.flag("nonfinite")
    assert flag.dims == [1, 2] and flag.stats["count"] == [2, 2]
    assert diagnosis.nonfinite_count.tolist() == [0, 2, 2, 0]
    for dim, rows in [(1, [3, 10]), (2, [7, 8])]:
        keep = torch.ones(N, dtype=torch.bool)
        keep[rows] = False
        clean = diagnose(mu[keep][:, dim : dim + 1], logvar[keep][:, dim : dim + 1])
        for name in ("kl", "mean", "sd", "min", "max", "mu_variance", "posterior_sd"):
            torch.testing.assert_close(getattr(diagnosis, name)[dim : dim + 1], getattr(clean, name))
    assert torch.isfinite(diagnosis.kl).all()
    assert "NaN/Inf" in diagnosis.recommendation


def test_an_all_nan_dim_does_not_crash():
    mu, logvar = healthy(3)
    mu[:, 0] = math.nan
    diagnosis = diagnose(mu, logvar)
    assert flagged(diagnosis, "nonfinite") == [0]
    assert [f.code for f in diagnosis.flags] == ["nonfinite"]  # NaN statistics trigger nothing else
    assert math.isnan(diagnosis.kl[0]) and math.isnan(diagnosis.min[0])
    json.dumps(diagnosis.to_dict(), allow_nan=False)
    assert "nan" in str(diagnosis)


def nan_at(shape, dims=None) -> torch.Tensor:
    value = torch.zeros(shape, dtype=torch.float64)
    value[:, slice(None) if dims is None else dims] = math.nan
    return value


@pytest.mark.parametrize(
    "posterior, name",
    [
        (ls.Posterior(nan_at((10, 4)), torch.zeros(10, 4, dtype=torch.float64)), "posterior.mu"),
        (ls.Posterior(torch.zeros(10, 4), torch.full((10, 4), math.inf)), "posterior.logvar"),
        (ls.Posterior(nan_at((10, 4), [0, 1]), nan_at((10, 4), [2, 3])), "posterior.mu"),  # each entry, in one or the other
        (nan_at((10, 4)), "posterior.mu"),  # a plain autoencoder's codes
    ],
)
def test_nothing_finite_to_diagnose_is_refused(posterior, name):
    """All-NaN codes gave a total KL of 0, 'no dim is active' and mode "prior"."""
    with pytest.raises(ValueError, match=rf"latentsweep.diagnose: {name} has .* non-finite value\(s\).* at index \(0, 0\).*"
                                         "nothing to diagnose"):
        ls.diagnose(posterior)


# --- the plain-autoencoder path ---------------------------------------------------------------


def test_plain_autoencoder():
    codes = 5 + 3 * torch.randn(N, 3, generator=gen(7), dtype=torch.float64)  # no prior to match
    codes[:, 2] = torch.relu(codes[:, 2] - 5)
    diagnosis = ls.diagnose(codes)  # a bare tensor counts as codes
    assert not diagnosis.is_variational
    assert diagnosis.kl is None and diagnosis.active is None and diagnosis.posterior_sd is None
    assert diagnosis.total_kl is None and diagnosis.num_active is None
    assert diagnosis.recommended_mode == "empirical"
    assert 'mode "empirical"' in diagnosis.recommendation
    assert [f.code for f in diagnosis.flags] == ["nonnegative-mean"]  # no marginal-mismatch
    np.testing.assert_allclose(diagnosis.sd, codes.numpy().std(0))
    text = str(diagnosis)
    assert "plain autoencoder" in text and "KL" not in text.splitlines()[2]
    assert json.loads(json.dumps(diagnosis.to_dict()))["kl"] is None


# --- presentation -------------------------------------------------------------------------------


def broken():
    """A VAE with every defect but nonfinite and marginal-mismatch, one per dim."""
    mu, logvar = healthy(5)
    g = gen(8)
    mu[:, 0] = torch.randn(N, generator=g, dtype=torch.float64)
    logvar[:, 0] = 2 * math.log(0.01)  # small-posterior-sd
    mu[:, 1] = 0.0
    logvar[:, 1] = 0.0  # collapsed
    mu[:, 2] = torch.relu(torch.randn(N, generator=g, dtype=torch.float64))  # nonnegative-mean
    logvar[:, 3] = torch.relu(torch.randn(N, generator=g, dtype=torch.float64)) - 1  # fine
    logvar[:, 4] = torch.relu(torch.randn(N, generator=g, dtype=torch.float64)) * 0.1  # nonnegative-logvar
    return mu, logvar


def test_str_has_the_table_the_flags_and_the_recommendation():
    diagnosis = diagnose(*broken())
    codes = [f.code for f in diagnosis.flags]
    assert codes == ["small-posterior-sd", "collapsed", "nonnegative-mean", "nonnegative-logvar"]
    text = str(diagnosis)
    header = text.splitlines()[2].split()
    assert header[:3] == ["dim", "KL", "active"] and "Var(mu)" in header
    assert len(text.splitlines()) >= 3 + 5  # title, blank, header, one row per dim
    for code in codes:
        assert f"[{code}]" in text
    assert "Recommendation (mode 'prior')" in text and "not the posterior" in text
    assert diagnosis.flag("collapsed").dims == [1]


def test_flags_are_small_records_with_one_sentence_recommendations():
    mu, logvar = broken()
    mu[0, 3] = math.nan
    mu[:, 3] += 2.0
    for flag in diagnose(mu, logvar).flags + diagnose(mu).flags:
        assert flag.code in FLAG_CODES
        assert all(isinstance(d, int) for d in flag.dims)
        per_dim = [v for v in flag.stats.values() if isinstance(v, list)]
        assert per_dim and all(len(v) == len(flag.dims) for v in per_dim)
        assert flag.recommendation.endswith(".") and flag.recommendation.count(". ") == 0
        assert flag.code in str(flag)


def test_summary_and_to_dict():
    diagnosis = diagnose(*broken())
    summary = diagnosis.summary()
    assert "\n" not in summary and "total KL" in summary and "4/5 active" in summary
    assert "collapsed (dim 1)" in summary
    data = json.loads(json.dumps(diagnosis.to_dict(), allow_nan=False))
    assert data["kl"] == pytest.approx(diagnosis.kl.tolist())
    assert data["active"] == diagnosis.active.tolist()
    assert [f["code"] for f in data["flags"]] == [f.code for f in diagnosis.flags]
    assert data["recommended_mode"] == "prior" and data["num_active"] == 4


def test_format_dims():
    assert format_dims([0, 1, 2, 3, 7, 9, 10]) == "0-3, 7, 9-10"
    assert format_dims([5]) == "5"


@pytest.mark.parametrize(
    "posterior, kwargs, error, match",
    [
        ("codes", {}, TypeError, "must be a latentsweep.Posterior"),
        (ls.Posterior(torch.zeros(3, 2)), {"prior_std": 0}, ValueError, "prior_std"),
        (ls.Posterior(torch.zeros(3, 2)), {"prior_std": math.nan}, ValueError, "prior_std"),
        (ls.Posterior(torch.zeros(3, 2)), {"prior_std": "1"}, TypeError, "prior_std"),
        (ls.Posterior(torch.zeros(0, 2)), {}, ValueError, r"has 0 input\(s\); a diagnosis needs at least 2"),
        # over one input every Var(mu) is 0: that read as posterior collapse
        (ls.Posterior(torch.tensor([[1.5, -0.3]]), torch.full((1, 2), -4.0)), {}, ValueError,
         r"has 1 input\(s\); a diagnosis needs at least 2"),
    ],
)
def test_bad_input(posterior, kwargs, error, match):
    with pytest.raises(error, match=match):
        ls.diagnose(posterior, **kwargs)


def test_encode_then_diagnose():
    x = torch.randn(300, 4, generator=gen(9))
    posterior = ls.encode(lambda b: (b, torch.full_like(b, -8.0)), x, batch_size=64)
    diagnosis = ls.diagnose(posterior)
    assert diagnosis.flag("small-posterior-sd").dims == [0, 1, 2, 3]


# --- a textbook posterior collapse is not a ReLU'd head (issue 12 item 3) -------------------------


@pytest.mark.parametrize("noise", [0.0, 1e-4, 1e-2])
def test_a_textbook_collapse_is_flagged_collapsed_and_nothing_else(noise):
    g = gen(21)
    mu = noise * torch.randn(500, 4, generator=g, dtype=torch.float64)
    logvar = noise * torch.randn(500, 4, generator=g, dtype=torch.float64)
    diagnosis = diagnose(mu, logvar)
    assert [f.code for f in diagnosis.flags] == ["collapsed"]
    assert diagnosis.flag("collapsed").dims == [0, 1, 2, 3]
    assert "linear" not in diagnosis.recommendation and "ReLU" not in str(diagnosis)
    assert "whole posterior collapsed" in diagnosis.recommendation


@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_relu_heads_are_still_found_beside_collapsed_latents(noise):
    """Collapsed latents (q = prior, maybe with a little noise) beside ReLU'd active ones: the
    head flags name exactly the active latents."""
    g = gen(22)
    mu = noise * torch.randn(N, 4, generator=g, dtype=torch.float64)
    logvar = noise * torch.randn(N, 4, generator=g, dtype=torch.float64)
    mu[:, 1] = torch.relu(torch.randn(N, generator=g, dtype=torch.float64) * 1.5)
    mu[:, 3] = torch.relu(torch.randn(N, generator=g, dtype=torch.float64) * 1.5)
    logvar[:, 1] = torch.relu(torch.randn(N, generator=g, dtype=torch.float64))
    logvar[:, 3] = 0.0  # a ReLU'd log-variance head pinned at its floor
    diagnosis = diagnose(mu, logvar)
    assert flagged(diagnosis, "collapsed") == [0, 2]
    assert flagged(diagnosis, "nonnegative-mean") == [1, 3]
    assert flagged(diagnosis, "nonnegative-logvar") == [1, 3]
    assert "Make the flagged encoder heads linear" in diagnosis.recommendation


def test_an_autoencoder_keeps_its_nonnegative_code_check():
    codes = torch.relu(torch.randn(N, 3, generator=gen(23), dtype=torch.float64))
    assert flagged(ls.diagnose(codes), "nonnegative-mean") == [0, 1, 2]


# --- inputs that used to get an unhelpful error (issue 12 item 10) --------------------------------


@pytest.mark.parametrize("prior_std", [1e-200, 1e200, 1e-101, 1e101])
def test_extreme_prior_stds_are_refused_naming_the_range(prior_std):
    with pytest.raises(ValueError, match=r"prior_std must lie in \[1e-100, 1e\+100\].*got"):
        diagnose(*healthy(2), prior_std=prior_std)


@pytest.mark.parametrize("prior_std", [1e-100, 1e-30, 1e30, 1e100])
def test_kl_at_the_ends_of_the_prior_std_range_matches_the_closed_form(prior_std):
    """KL(N(mu, s^2) || N(0, p^2)) = log(p/s) + (s^2 + mu^2) / (2 p^2) - 1/2, evaluated with
    Python's decimal arithmetic (no float64 range limits) for a few inputs."""
    from decimal import Decimal, getcontext

    getcontext().prec = 50
    mu = torch.tensor([[0.0, 1e-90], [3.0, -2e-95]], dtype=torch.float64) * prior_std
    logvar = torch.tensor([[0.0, -400.0], [1.0, -430.0]], dtype=torch.float64)
    diagnosis = diagnose(mu, logvar, prior_std=prior_std)
    p = Decimal(prior_std)
    for d in range(2):
        terms = []
        for n in range(2):
            m, lv = Decimal(float(mu[n, d])), Decimal(float(logvar[n, d]))
            s2 = lv.exp()
            terms.append(p.ln() - lv / 2 + (s2 + m * m) / (2 * p * p) - Decimal("0.5"))
        expected = float(sum(terms) / 2)
        assert math.isfinite(float(diagnosis.kl[d]))
        assert float(diagnosis.kl[d]) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("make", [
    pytest.param(lambda: ls.Posterior(torch.zeros(5, 3, device="meta")), id="meta-mu"),
    pytest.param(lambda: ls.Posterior(torch.zeros(5, 3, device="meta"), torch.zeros(5, 3, device="meta")), id="meta-both"),
    pytest.param(lambda: torch.zeros(5, 3, device="meta"), id="meta-codes"),
])
def test_meta_tensors_are_refused_by_name(make):
    posterior = make()
    with pytest.raises(ValueError, match=r"latentsweep.diagnose: posterior\.(mu|logvar) is on the meta device"):
        ls.diagnose(posterior)


def test_sparse_codes_are_refused_by_name():
    with pytest.raises(TypeError, match=r"mu must be a dense \(torch.strided\) tensor, got layout torch.sparse_coo"):
        ls.diagnose(torch.eye(5, 3).to_sparse())


@pytest.mark.parametrize("logvar", [None, torch.zeros(5, 0)])
def test_no_latent_dims_is_refused_with_a_message(logvar):
    with pytest.raises(ValueError, match=r"no latent dims \(D = 0\)"):
        ls.diagnose(ls.Posterior(torch.zeros(5, 0), logvar))


def test_collapsed_rest_next_to_non_finite_dims_is_not_called_the_whole_posterior():
    mu, logvar = torch.zeros(200, 3, dtype=torch.float64), torch.zeros(200, 3, dtype=torch.float64)
    mu[:, 1] = math.nan
    diagnosis = diagnose(mu, logvar)
    assert diagnosis.num_active == 0
    assert "No dim with finite codes is active" in diagnosis.recommendation
    assert "dim 1 hold NaN/Inf" in diagnosis.recommendation
    assert "whole posterior" not in diagnosis.recommendation
