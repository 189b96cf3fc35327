"""The shipped beta-VAE trained on :class:`latentsweep.datasets.Shapes` (32x32 images).

>>> from latentsweep.demo.shapes_vae import load_shapes_vae
>>> model = load_shapes_vae()                  # eval mode
>>> mu, logvar = model.encoder(images)         # images [B, 1, 32, 32] -> [B, 10] each
>>> recon = model.decoder(mu)                  # [B, 1, 32, 32] in [0, 1]

Reproduced by ``scripts/train_shapes_vae.py``; the weights are stored as float16 to keep the
file small and loaded as float32.
"""

from __future__ import annotations

from importlib import resources

import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from .models import DemoAutoencoder, GaussianEncoder, MLPDecoder, _sizes

SHAPES_VAE_NAME = "shapes-beta-vae"
SHAPES_RESOLUTION = 32


class ShapesVAE(DemoAutoencoder):
    """MLP beta-VAE for ``[B, 1, 32, 32]`` images: ``encoder(x) -> (mu, logvar)``,
    ``decoder(z) -> [B, 1, 32, 32]`` in [0, 1]."""

    def __init__(self, latent_dim: int = 10, *, hidden: int = 128) -> None:
        super().__init__()
        latent_dim, hidden = _sizes("ShapesVAE", latent_dim=latent_dim, hidden=hidden)
        self.latent_dim = latent_dim
        pixels = SHAPES_RESOLUTION * SHAPES_RESOLUTION
        self.encoder = nn.Sequential(nn.Flatten(), GaussianEncoder(pixels, [hidden, hidden], latent_dim))
        self.decoder = MLPDecoder(latent_dim, [hidden, hidden], (1, SHAPES_RESOLUTION, SHAPES_RESOLUTION), sigmoid=True)

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encoder(x)
        return self.decoder(mu), mu, logvar


def shapes_vae_weights_path():
    return resources.files(__package__).joinpath("weights", f"{SHAPES_VAE_NAME}.safetensors")


def load_shapes_vae() -> ShapesVAE:
    """The shipped beta-VAE on Shapes, float32 (whatever torch's default dtype), in eval mode."""
    model = ShapesVAE().float()
    state = load_safetensors(shapes_vae_weights_path().read_bytes())
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return model.eval()
