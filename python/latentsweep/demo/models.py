"""Small demo autoencoders with one uniform interface.

Every model has ``.encoder`` and ``.decoder`` sub-modules, which is all latentsweep needs:

- VAEs: ``encoder(x) -> (mu, logvar)``, each ``[B, D]``; ``forward(x) -> (recon, mu, logvar)``
  (``forward`` decodes the posterior mean, so it is deterministic).
- Plain AE: ``encoder(x) -> z [B, D]``; ``forward(x) -> (recon, z)``.
- Digits decoders return ``[B, 1, 8, 8]`` in [0, 1] (sigmoid); the tabular decoder returns
  ``[B, F]`` with a linear output (standardised features).

Inputs: digits ``x [B, 64]`` in [0, 1] (pixels / 16); tabular ``x [B, F]`` standardised.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import _checks

DIGITS_PIXELS = 64
DIGITS_SHAPE = (1, 8, 8)
_HEAD_ACTIVATIONS = (None, "relu")


class DemoAutoencoder(nn.Module):
    """What every demo model has (declared so that a type checker knows ``model.decoder(z)``
    is a module's call, not ``nn.Module.__getattr__``'s ``Tensor | Module``)."""

    latent_dim: int
    encoder: nn.Module
    decoder: nn.Module


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them and after the last (a trunk for heads to sit on)."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers)


def _sizes(model: str, **sizes) -> list[int]:
    """Layer sizes as ints >= 1 (0 built empty layers, -1 and 2.5 failed inside torch)."""
    return [_checks.integer(f"latentsweep.demo.{model}", name, value, low=1) for name, value in sizes.items()]


def _head_activation(name: str | None, what: str) -> nn.Module:
    if name not in _HEAD_ACTIVATIONS:
        raise ValueError(f"{what} must be one of {_HEAD_ACTIVATIONS}, got {name!r}")
    return nn.ReLU() if name == "relu" else nn.Identity()


class GaussianEncoder(nn.Module):
    """MLP trunk with a mean head and a log-variance head: ``x -> (mu, logvar)``.

    ``mean_activation`` / ``logvar_activation`` = ``"relu"`` reproduce two common mistakes
    (a ReLU on a head that should be linear); the default ``None`` is the correct linear head.
    """

    def __init__(
        self,
        in_features: int,
        hidden: list[int],
        latent_dim: int,
        *,
        mean_activation: str | None = None,
        logvar_activation: str | None = None,
    ) -> None:
        super().__init__()
        self.trunk = _mlp([in_features, *hidden])
        self.mean_head = nn.Linear(hidden[-1], latent_dim)
        self.logvar_head = nn.Linear(hidden[-1], latent_dim)
        self.mean_activation = _head_activation(mean_activation, "mean_activation")
        self.logvar_activation = _head_activation(logvar_activation, "logvar_activation")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.mean_activation(self.mean_head(h)), self.logvar_activation(self.logvar_head(h))


class CodeEncoder(nn.Module):
    """MLP with a linear code layer: ``x -> z`` (a plain autoencoder's encoder)."""

    def __init__(self, in_features: int, hidden: list[int], latent_dim: int) -> None:
        super().__init__()
        self.trunk = _mlp([in_features, *hidden])
        self.code = nn.Linear(hidden[-1], latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.code(self.trunk(x))


class MLPDecoder(nn.Module):
    """``z [B, D] -> [B, *out_shape]``; ``sigmoid=True`` for pixel intensities in [0, 1]."""

    def __init__(
        self, latent_dim: int, hidden: list[int], out_shape: tuple[int, ...], *, sigmoid: bool
    ) -> None:
        super().__init__()
        self.out_shape = tuple(out_shape)
        out_features = 1
        for size in self.out_shape:
            out_features *= size
        self.trunk = _mlp([latent_dim, *hidden])
        self.out = nn.Linear(hidden[-1], out_features)
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.out(self.trunk(z)).reshape(z.shape[0], *self.out_shape)
        return torch.sigmoid(y) if self.sigmoid else y


class DigitsVAE(DemoAutoencoder):
    """VAE for scikit-learn's 8x8 digits: ``x [B, 64]`` in [0, 1] -> ``[B, 1, 8, 8]`` in [0, 1]."""

    def __init__(
        self,
        latent_dim: int = 10,
        *,
        hidden: int = 128,
        mean_activation: str | None = None,
        logvar_activation: str | None = None,
    ) -> None:
        super().__init__()
        latent_dim, hidden = _sizes("DigitsVAE", latent_dim=latent_dim, hidden=hidden)
        self.latent_dim = latent_dim
        self.encoder = GaussianEncoder(
            DIGITS_PIXELS,
            [hidden, hidden],
            latent_dim,
            mean_activation=mean_activation,
            logvar_activation=logvar_activation,
        )
        self.decoder = MLPDecoder(latent_dim, [hidden, hidden], DIGITS_SHAPE, sigmoid=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x)
        return self.decoder(mu), mu, logvar


class DigitsAE(DemoAutoencoder):
    """Plain autoencoder for the 8x8 digits: ``encoder(x) -> z``, ``decoder(z) -> [B, 1, 8, 8]``."""

    def __init__(self, latent_dim: int = 8, *, hidden: int = 128) -> None:
        super().__init__()
        latent_dim, hidden = _sizes("DigitsAE", latent_dim=latent_dim, hidden=hidden)
        self.latent_dim = latent_dim
        self.encoder = CodeEncoder(DIGITS_PIXELS, [hidden, hidden], latent_dim)
        self.decoder = MLPDecoder(latent_dim, [hidden, hidden], DIGITS_SHAPE, sigmoid=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z


class TabularVAE(DemoAutoencoder):
    """VAE for standardised tabular data: ``x [B, F] -> (mu, logvar)``, ``z -> [B, F]`` (linear)."""

    def __init__(self, num_features: int, latent_dim: int = 4, *, hidden: int = 64) -> None:
        super().__init__()
        num_features, latent_dim, hidden = _sizes("TabularVAE", num_features=num_features, latent_dim=latent_dim,
                                                  hidden=hidden)
        self.num_features = num_features
        self.latent_dim = latent_dim
        self.encoder = GaussianEncoder(num_features, [hidden, hidden], latent_dim)
        self.decoder = MLPDecoder(latent_dim, [hidden, hidden], (num_features,), sigmoid=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x)
        return self.decoder(mu), mu, logvar
