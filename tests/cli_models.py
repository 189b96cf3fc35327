"""The small model and data the command-line tests give ``latentsweep`` as files (imported as
``from cli_models import ...``: tests/conftest.py puts tests/ on sys.path)."""

from __future__ import annotations

import textwrap

import numpy as np

# [B, 16] data -> (mu, logvar) of [B, 3] -> [B, 1, 4, 4] outputs; make() builds it seeded.
_TINY_VAE = """
import torch
from torch import nn

class TinyVAE(nn.Module):
    latent_dim = 3

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(16, 6)
        self.out = nn.Linear(3, 16)

    def encoder(self, x):
        h = self.body(x)
        return h[:, :3], h[:, 3:] + ({logvar_offset!r})

    def decoder(self, z):
        return torch.sigmoid(self.out(z)).view(-1, 1, 4, 4)

def make():
    torch.manual_seed(0)
    return TinyVAE()
"""


def tiny_vae_source(more: str = "", *, logvar_offset: float = -7.0) -> str:
    """The source of a module with ``TinyVAE`` and its factory ``make``, then ``more`` (more
    models and factories, dedented; it may subclass TinyVAE or redefine make). The log-variances
    are the encoder's outputs plus ``logvar_offset`` (-7: confident posteriors, SD ~ 0.03)."""
    return _TINY_VAE.format(logvar_offset=float(logvar_offset)) + textwrap.dedent(more)


def tiny_data(rows: int = 40) -> np.ndarray:
    """``[rows, 16]`` float32 data in [0, 1) for TinyVAE, the same for every call."""
    return np.random.default_rng(0).random((rows, 16)).astype(np.float32)
