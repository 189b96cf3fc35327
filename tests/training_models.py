"""A tiny VAE, its loss and a few dozen 8x8 digits, shared by the training-integration tests."""

from __future__ import annotations

import torch
from torch import nn

LATENT_DIM = 4
PIXELS = 64
IMAGE_SHAPE = (1, 8, 8)


class TinyVAE(nn.Module):
    """64 -> 32 -> (mu, logvar) [B, 4]; 4 -> 32 -> [B, 1, 8, 8] in [0, 1].

    The dropout and the reparameterised sample make training draw from the global RNG, so any
    draw a logging step takes (or leaves out) changes the trained weights; the dropout also makes
    the encoder random in train mode. ``relu_logvar=True`` puts the classic mistake, a ReLU, on the
    log-variance head.
    """

    def __init__(self, *, relu_logvar: bool = False) -> None:
        super().__init__()
        self.encoder = GaussianHead(relu_logvar=relu_logvar)
        self.decoder = nn.Sequential(
            nn.Linear(LATENT_DIM, 32), nn.ReLU(), nn.Linear(32, PIXELS), nn.Sigmoid(), nn.Unflatten(1, IMAGE_SHAPE)
        )

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return vae_loss(self.encoder, self.decoder, x)


def vae_loss(encoder, decoder, x: torch.Tensor) -> torch.Tensor:
    """The negative ELBO per input (Bernoulli likelihood), one reparameterised sample."""
    mu, logvar = encoder(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = decoder(z).flatten(1)
    nll = nn.functional.binary_cross_entropy(recon, x, reduction="sum") / x.shape[0]
    kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(1).mean()
    return nll + kl


class GaussianHead(nn.Module):
    def __init__(self, *, relu_logvar: bool) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(PIXELS, 32), nn.ReLU(), nn.Dropout(0.2))
        self.mu = nn.Linear(32, LATENT_DIM)
        self.logvar = nn.Sequential(nn.Linear(32, LATENT_DIM), nn.ReLU() if relu_logvar else nn.Identity())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.mu(h), self.logvar(h)


def digits(rows: int = 64) -> torch.Tensor:
    """The first ``rows`` of scikit-learn's 8x8 digits, ``[rows, 64]`` float32 in [0, 1]."""
    from latentsweep.demo.data import load_digits_data

    return load_digits_data()[0][:rows].clone()
