"""Small models and posteriors shared by the picture and report tests."""

from __future__ import annotations

import torch

import latentsweep

# The spread of mu per dim sets the KL order (dims 4 and 5 collapse to the prior).
MU_SCALES = torch.tensor([0.7, 1.8, 1.0, 1.4, 1e-3, 1e-3])
LATENT_DIM = len(MU_SCALES)


def small_decoder(out_features: int, *image_shape: int) -> torch.nn.Module:
    """LATENT_DIM -> out_features (sigmoid images of image_shape when given)."""
    torch.manual_seed(0)
    layers = [torch.nn.Linear(LATENT_DIM, 32), torch.nn.Tanh(), torch.nn.Linear(32, out_features)]
    if image_shape:
        layers += [torch.nn.Sigmoid(), torch.nn.Unflatten(1, image_shape)]
    return torch.nn.Sequential(*layers)


def synthetic_posterior(rows: int, seed: int) -> latentsweep.Posterior:
    """Confident posteriors (SD exp(-2.5)) on dims 0-3, collapsed dims 4-5."""
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(rows, LATENT_DIM, generator=gen) * MU_SCALES
    logvar = torch.full((rows, LATENT_DIM), -5.0)
    logvar[:, 4:] = 0.0  # collapsed dims: posterior = prior
    return latentsweep.Posterior(mu, logvar)
