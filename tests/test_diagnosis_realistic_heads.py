"""diagnose() on small VAEs trained on the digits with the encoder heads people get wrong: each
finding must name the cause the model was built with, and nothing false. The models are tiny
MLPs trained for 300 seeded steps (well under a second each), trained once per module."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

import latentsweep as ls
from conftest import num_threads

sklearn_datasets = pytest.importorskip("sklearn.datasets")

STEPS = 300


@functools.cache
def digits() -> torch.Tensor:
    """``[1797, 64]`` the digits, in [0, 1]."""
    return torch.tensor(sklearn_datasets.load_digits().data / 16.0, dtype=torch.float32)


class Encoder(nn.Module):
    """An MLP whose heads are built with one of the mistakes:

    - ``"linear"``: (mu, logvar), both linear (a healthy VAE);
    - ``"relu-mean"`` / ``"relu-logvar"`` / ``"softplus-logvar"``: that activation on that head;
    - ``"log-sd"``: the second head is log sigma (0.5 x logvar), returned as if it were logvar;
    - ``"plain"``: a deterministic autoencoder's codes only.
    """

    def __init__(self, heads: str, latent: int):
        super().__init__()
        self.heads = heads
        self.body = nn.Sequential(nn.Linear(64, 64), nn.Tanh())
        self.mu = nn.Linear(64, latent)
        self.second = nn.Linear(64, latent)

    def forward(self, x):
        h = self.body(x)
        mu = self.mu(h)
        if self.heads == "relu-mean":
            mu = torch.relu(mu)
        if self.heads == "plain":
            return mu
        second = self.second(h)
        if self.heads == "relu-logvar":
            second = torch.relu(second)
        elif self.heads == "softplus-logvar":
            second = F.softplus(second)
        return mu, second

    def true_logvar(self, second: torch.Tensor) -> torch.Tensor:
        """The log-variance the model was trained with."""
        return 2 * second if self.heads == "log-sd" else second


@functools.cache
def trained(heads: str, latent: int = 6, seed: int = 0, beta: float = 1.0) -> tuple[Encoder, ls.Diagnosis]:
    """The encoder after STEPS Adam steps of the beta-ELBO on the digits, and the diagnosis
    of what it returns as (mu, logvar); the global RNG is left as it was."""
    x = digits()
    # One thread: these matrices are tiny, and threads fighting over busy cores took 10x longer.
    with torch.random.fork_rng(devices=[]), num_threads(1):
        torch.manual_seed(seed)
        encoder = Encoder(heads, latent)
        decoder = nn.Sequential(nn.Linear(latent, 64), nn.Tanh(), nn.Linear(64, 64))
        optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-2)
        for _ in range(STEPS):
            batch = x[torch.randint(0, len(x), (256,))]
            if heads == "plain":
                z, kl = encoder(batch), 0.0
            else:
                mu, second = encoder(batch)
                logvar = encoder.true_logvar(second)
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
                kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1).mean()
            reconstruction = F.binary_cross_entropy_with_logits(decoder(z), batch, reduction="none").sum(1).mean()
            optimizer.zero_grad()
            (reconstruction + beta * kl).backward()
            optimizer.step()
    encoder.eval()
    return encoder, ls.diagnose(ls.encode(encoder, x, progress=False))


def true_kl(encoder: Encoder) -> torch.Tensor:
    """``[D]`` the mean KL to N(0, 1) per latent of the posterior the model was trained with."""
    with torch.no_grad():
        mu, second = encoder(digits())
        sd = torch.exp(0.5 * encoder.true_logvar(second))
    return kl_divergence(Normal(mu.double(), sd.double()), Normal(0.0, 1.0)).mean(0)


def codes(diagnosis: ls.Diagnosis) -> list[str]:
    return [f.code for f in diagnosis.findings()]


def everything(diagnosis: ls.Diagnosis) -> str:
    return str(diagnosis)


# --- 1. an SD read as a log-variance, on latents that read as collapsed -------------------------


class SDEncoder(nn.Module):
    """Constructed weights: means that hardly vary (SD ~0.01) and a softplus SD head of 0.05 to
    0.2, returned as the tuple's second element (read as a log-variance). Read so, KL < 0.01:
    "collapsed"; read as SDs, the posteriors are 5 to 20 times narrower than the prior."""

    def __init__(self, latent: int = 4, active: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(11)
        self.mu = nn.Linear(64, latent)
        self.sd = nn.Linear(64, latent)
        with torch.no_grad():
            self.mu.weight.copy_(0.01 * torch.randn(latent, 64, generator=g))
            self.mu.weight[:active] *= 100  # these means vary: active latents
            self.mu.bias.zero_()
            self.sd.weight.copy_(0.1 * torch.randn(latent, 64, generator=g))
            self.sd.bias.fill_(-2.3)  # softplus(-2.3) = 0.095

    def forward(self, x):
        x = x - 0.3
        return self.mu(x), F.softplus(self.sd(x))


def test_an_sd_read_as_a_log_variance_is_not_masked_by_the_collapse_it_reads_as():
    """Every latent read as collapsed, and the SD-as-log-variance check skipped collapsed
    latents: the only finding was "Posterior collapse ... retrain with less KL pressure"."""
    encoder = SDEncoder()
    posterior = ls.encode(encoder, digits(), progress=False)
    sd = posterior.logvar
    assert 0.02 < float(sd.min()) and float(sd.max()) < 0.3  # (the setting of the known gap)
    diagnosis = ls.diagnose(posterior)
    assert diagnosis.num_active == 0 and diagnosis.flag("collapsed").dims == [0, 1, 2, 3]
    assert diagnosis.flag("nonnegative-logvar").dims == [0, 1, 2, 3]
    first, second = diagnosis.findings()[:2]
    assert first.headline == "Check what the encoder returns as the log-variance"
    assert '{"mu": mu, "sigma": sd}' in first.text
    # Both causes are said, the likelier first, and the collapse is not stated as the fact.
    assert second.code == "whole-collapse"
    assert second.headline == "No latent is active: an SD read as a log-variance, or a collapse"
    assert "the likelier cause is an SD or a variance read as a log-variance" in second.text
    assert second.text.index("SD or a variance") < second.text.index("less KL pressure")
    assert "ReLU's mark" not in second.text
    assert "likelier an SD or a variance read as a log-variance" in diagnosis.recommendation
    assert "Check that the encoder's second output is a log-variance" in diagnosis.recommendation
    # Named as what it is, the same encoder's posteriors are narrow: neither collapsed nor flagged.
    named = ls.diagnose(ls.encode(lambda x: dict(zip(("mu", "sigma"), encoder(x))), digits(), progress=False))
    assert named.flag("collapsed") is None and named.flag("nonnegative-logvar") is None
    assert float(named.kl.min()) > 1


def test_an_sd_read_as_a_log_variance_beside_active_latents_qualifies_the_collapse():
    diagnosis = ls.diagnose(ls.encode(SDEncoder(active=2), digits(), progress=False))
    assert diagnosis.active_dims == [0, 1] and diagnosis.flag("collapsed").dims == [2, 3]
    assert diagnosis.flag("nonnegative-logvar").dims == [0, 1, 2, 3]
    collapsed = next(f for f in diagnosis.findings() if f.code == "collapsed")
    assert "On dims 2-3 the log-variances are above 0 for every input" in collapsed.text


def test_a_linear_heads_collapse_stays_a_collapse():
    """A real collapse (beta = 4 on 12 latents): log-variances scatter around 0, below it too."""
    encoder, diagnosis = trained("linear", latent=12, beta=4.0)
    assert diagnosis.num_active == 0
    with torch.no_grad():
        assert bool((encoder(digits())[1] < 0).any())
    assert codes(diagnosis) == ["whole-collapse"]
    assert diagnosis.findings()[0].headline == "Posterior collapse: no latent carries information"
    assert diagnosis.flag("nonnegative-logvar") is None and diagnosis.flag("nonnegative-mean") is None
    assert "SD or a variance" not in everything(diagnosis)


def test_collapsed_latents_a_hair_above_zero_beside_healthy_ones_are_no_misreading():
    """A linear head's collapsed log-variances can all sit a hair above 0 (a KL of 1e-4 nats
    pushes them no further); beside live latents with ordinary log-variances that is no SD read
    as a log-variance (it was flagged so, with an action, on a healthy model)."""
    g = torch.Generator().manual_seed(0)
    mu, logvar = 0.9 * torch.randn(1000, 6, generator=g), -3.0 + 0.1 * torch.randn(1000, 6, generator=g)
    mu[:, 4:] = 0.001 * torch.randn(1000, 2, generator=g)
    logvar[:, 4:] = 0.0008 + 0.0002 * torch.randn(1000, 2, generator=g)
    assert float(logvar[:, 4:].min()) > 0
    diagnosis = ls.diagnose(ls.Posterior(mu, logvar))
    assert [flag.code for flag in diagnosis.flags] == ["collapsed"]
    assert "SD or a variance" not in everything(diagnosis)


# --- 2. trained models with each head --------------------------------------------------------------


def test_a_relu_on_the_mean_head():
    encoder, diagnosis = trained("relu-mean")
    with torch.no_grad():
        mu = encoder(digits())[0]
    dead = [d for d in range(mu.shape[1]) if bool((mu[:, d] == 0).all())]
    alive = [d for d in range(mu.shape[1]) if d not in dead]
    assert dead and alive  # (the ReLU killed some units: the setting of this test)
    assert diagnosis.flag("nonnegative-mean").dims == alive
    assert diagnosis.flag("nonnegative-logvar") is None
    first = diagnosis.findings()[0]
    assert first.headline == "Retrain with a linear mean head" and first.action
    # The latents whose means are 0 for every input are the ReLU's dead units, said as such
    # (they were called collapsed only, the cause unmentioned).
    collapsed = next(f for f in diagnosis.findings() if f.code == "collapsed")
    assert diagnosis.flag("collapsed").dims == dead
    assert "likelier units the ReLU killed than a collapse" in collapsed.text
    assert "Make the flagged encoder heads linear and retrain" in diagnosis.recommendation


def test_a_relu_on_the_log_variance_head():
    _, diagnosis = trained("relu-logvar")
    assert diagnosis.flag("nonnegative-logvar").dims == list(range(6))
    assert diagnosis.flag("nonnegative-mean") is None and diagnosis.flag("collapsed") is None
    first = diagnosis.findings()[0]
    assert first.headline == "Retrain with a linear log-variance head"
    assert "SD or a variance" not in first.text  # (the ReLU's exact zeros are there)


def test_a_softplus_on_the_log_variance_head_is_named_beside_the_sd_reading():
    """No exact zeros, so an SD read as a log-variance is said first; the softplus the model
    has must be named too (it said "a ReLU (or similar)" only)."""
    _, diagnosis = trained("softplus-logvar")
    assert diagnosis.flag("nonnegative-logvar").dims == list(range(6))
    assert diagnosis.flag("nonnegative-mean") is None
    first = diagnosis.findings()[0]
    assert first.headline == "Check what the encoder returns as the log-variance"
    assert "a ReLU, softplus or similar on the encoder's log-variance head: make it linear" in first.text


def test_a_log_sd_named_logvar_raises_no_false_alarm():
    """log sigma read as a log-variance reads sigma as sqrt(sigma): a plausible posterior that
    the codes alone cannot tell from a right one. Nothing false may be said: no head flag
    (log sigma goes below 0), and the collapsed latents are those of the model's own KL."""
    encoder, diagnosis = trained("log-sd")
    assert diagnosis.flag("nonnegative-logvar") is None and diagnosis.flag("nonnegative-mean") is None
    assert set(codes(diagnosis)) <= {"collapsed", "healthy"}
    kl = true_kl(encoder)
    assert diagnosis.active_dims == (kl >= 0.01).nonzero()[:, 0].tolist()


def test_a_healthy_vae_raises_no_alarm():
    """Besides its one collapsed latent (true), the finding "the codes' main axes are not the
    latents" fired: the latents are all but uncorrelated (Wasserstein correlation < 0.01), but
    three of near-equal variance let the top component fall between them (ratio 0.88)."""
    encoder, diagnosis = trained("linear")
    kl = true_kl(encoder)
    collapsed = (kl < 0.01).nonzero()[:, 0].tolist()
    assert len(collapsed) == 1 and diagnosis.flag("collapsed").dims == collapsed
    assert [f.code for f in diagnosis.flags] == ["collapsed"]
    assert codes(diagnosis) == ["collapsed"]
    assert not any(f.action for f in diagnosis.findings())
    assert diagnosis.axes.wasserstein_correlation < 0.02 and diagnosis.axis_aligned is True
    assert "main axes are not the latents" not in everything(diagnosis)
    assert "all but uncorrelated" in diagnosis.recommendation
    text = diagnosis.findings()[0].text
    assert f"Dim {collapsed[0]} has KL under 0.01 nats and carries nothing (its posterior is the prior)" in text


def test_a_vae_with_collapsed_latents_names_them_and_only_them():
    encoder, diagnosis = trained("linear", latent=10)
    kl = true_kl(encoder)
    collapsed = (kl < 0.01).nonzero()[:, 0].tolist()
    assert 2 <= len(collapsed) <= 8 and float(kl[kl >= 0.01].min()) > 0.1  # (a clear gap)
    assert diagnosis.flag("collapsed").dims == collapsed
    active = [d for d in range(10) if d not in collapsed]
    assert diagnosis.active_dims == active
    assert [f.code for f in diagnosis.flags] == ["collapsed"]
    assert codes(diagnosis) == ["collapsed"]
    assert diagnosis.traversal_options()["dims"] == active


def test_a_plain_autoencoder_is_pointed_to_directions_not_to_kls():
    _, diagnosis = trained("plain")
    assert not diagnosis.is_variational and diagnosis.flags == []
    assert codes(diagnosis) == ["autoencoder"]
    finding = diagnosis.findings()[0]
    assert "coordinate axes are arbitrary" in finding.text and "principal directions" in finding.text
    assert "KL" not in finding.text and "KL" not in diagnosis.recommendation
    assert "principal_directions" in diagnosis.recommendation
    assert diagnosis.recommended_directions == "principal"
    assert diagnosis.traversal_options()["mode"] == "empirical"


# --- 3. a real mix, and a whole collapse a hair above 0 ----------------------------------------------


def _mixed_pair(latent: int = 16) -> ls.Posterior:
    """Healthy-looking codes whose latents 0 and 1 are a 45-degree mix of sources with SDs 1.3
    and 0.9 (correlation 0.35); the other latents independent, SD 0.9."""
    generator = torch.Generator().manual_seed(0)
    num = 20000
    codes = torch.randn(num, latent, generator=generator, dtype=torch.float64) * 0.9
    sources = torch.randn(num, 2, generator=generator, dtype=torch.float64) * torch.tensor([1.3, 0.9],
                                                                                          dtype=torch.float64)
    c = math.cos(math.pi / 4)
    codes[:, :2] = sources @ torch.tensor([[c, c], [-c, c]], dtype=torch.float64)
    return ls.Posterior(codes.float(), torch.full((num, latent), math.log(0.19)))


def test_latents_correlated_at_a_third_are_not_said_all_but_uncorrelated():
    """Gaussian Wasserstein correlation under 0.02 of the total variance made axis_aligned
    true at any ratio; that share is second order in the correlations and shrinks with the
    number of latents: two latents of 16 correlated at 0.35 gave 0.006 (a healthy digits VAE:
    0.007, correlations under 0.14), so the rotated-axes finding was lost and the
    recommendation said "the latents are all but uncorrelated"."""
    posterior = _mixed_pair()
    assert abs(float(torch.corrcoef(posterior.mu[:, :2].T)[0, 1]) - 0.35) < 0.02
    diagnosis = ls.diagnose(posterior)
    assert diagnosis.axes.wasserstein_correlation < 0.02 and diagnosis.axes.ratio < 0.8
    assert diagnosis.axis_aligned is False
    assert "rotated-axes" in [f.code for f in diagnosis.findings()]
    assert "all but uncorrelated" not in diagnosis.recommendation
    assert "main axes are not the latents" in diagnosis.recommendation


def test_a_linear_head_whole_collapse_a_hair_above_0_is_no_misreading():
    """A linear head in whole collapse whose log-variances sit a hair above 0 for every input
    (Adam keeps the bias within ~1e-3 of 0, at times all on one side) was said to be "likelier
    an SD or a variance read as a log-variance", with a ReLU-heads finding to act on; it is a
    posterior collapse, and nothing else."""
    generator = torch.Generator().manual_seed(0)
    mu = 1e-3 * torch.randn(2000, 4, generator=generator)
    logvar = 2e-4 + 5e-5 * torch.rand(2000, 4, generator=generator)  # (above 0, not one number)
    diagnosis = ls.diagnose(ls.Posterior(mu, logvar))
    assert [f.code for f in diagnosis.flags] == ["collapsed"]
    found = diagnosis.findings()
    assert [f.code for f in found] == ["whole-collapse"]
    assert found[0].headline == "Posterior collapse: no latent carries information"
    assert "read as a log-variance" not in found[0].text + diagnosis.recommendation
