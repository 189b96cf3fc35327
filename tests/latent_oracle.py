"""Per-dimension latent statistics, an independent oracle for the demo models' tests.

The definitions are those of ``latentsweep.diagnose`` (issue 4, item 2), computed here
independently so the tests that pin the demo models' properties do not depend on the code the
models are meant to exercise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ACTIVE_VAR = 0.01  # Var over the data of mu_d above this: the dim is used (Burda et al.)
COLLAPSED_KL = 0.01  # nats; an inactive dim this close to the prior carries nothing


@dataclass(frozen=True)
class LatentStats:
    """Per-dim ``[D]`` tensors over N inputs; the VAE-only fields are ``None`` for codes."""

    aggregate_mean: torch.Tensor
    aggregate_sd: torch.Tensor  # sqrt(Var(mu_d) + mean(sigma_d^2)); the codes' SD for an AE
    mu_var: torch.Tensor
    mu_min: torch.Tensor
    zero_fraction: torch.Tensor  # fraction of exact zeros in mu_d
    kl: torch.Tensor | None = None  # mean KL(N(mu, sigma^2) || N(0, 1)) in nats
    posterior_sd: torch.Tensor | None = None  # mean sigma_d
    logvar_min: torch.Tensor | None = None

    @property
    def active(self) -> torch.Tensor:
        return self.mu_var > ACTIVE_VAR

    @property
    def collapsed(self) -> torch.Tensor:
        assert self.kl is not None, "collapse is defined for VAEs only"
        return ~self.active & (self.kl < COLLAPSED_KL)

    def median_active_posterior_sd(self) -> float:
        assert self.posterior_sd is not None, "posterior SDs exist for VAEs only"
        return float(self.posterior_sd[self.active].median())


def latent_stats(mu: torch.Tensor, logvar: torch.Tensor | None = None) -> LatentStats:
    """Statistics of ``mu [N, D]`` (and ``logvar [N, D]`` for a VAE) against a N(0, 1) prior."""
    mu = mu.double()
    mu_var = mu.var(dim=0, unbiased=False)
    common = dict(
        mu_var=mu_var,
        mu_min=mu.amin(dim=0),
        zero_fraction=(mu == 0).double().mean(dim=0),
        aggregate_mean=mu.mean(dim=0),
    )
    if logvar is None:
        return LatentStats(aggregate_sd=mu_var.sqrt(), **common)
    logvar = logvar.double()
    var = logvar.exp()
    kl = 0.5 * (mu.square() + var - 1.0 - logvar).mean(dim=0)
    return LatentStats(
        aggregate_sd=(mu_var + var.mean(dim=0)).sqrt(),
        kl=kl,
        posterior_sd=(0.5 * logvar).exp().mean(dim=0),
        logvar_min=logvar.amin(dim=0),
        **common,
    )
