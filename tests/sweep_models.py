"""Decoders for the sweep tests, importable from subprocesses too.

`rowwise_decoder` computes each output row from its own code with elementwise operations only,
so its outputs do not depend on the batch a code arrives in (unlike a matmul, whose rounding
depends on the batch): sweeps with it must give bitwise-identical statistics at any batch size.
"""

from __future__ import annotations

import time

import torch

FEATURES = 12


def rowwise_decoder(codes: torch.Tensor) -> torch.Tensor:
    """[B, D] -> [B, 3, 4]: smooth, in [0, 1), different for every latent, batch-independent.

    Only +, * and / (exactly rounded, so vectorised and scalar code paths agree bit for bit;
    torch's sin/exp do not)."""
    d = codes.shape[1]
    columns = []
    for f in range(FEATURES):
        t = codes[:, f % d] * ((f + 1) / FEATURES) + codes[:, (f * 7 + 1) % d] * 0.5
        columns.append(t * t / (1.0 + t * t))
    return torch.stack(columns, dim=1).view(-1, 3, 4)


def mlp_decoder(latent_dim: int = 6, features: int = 20, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(latent_dim, 32), torch.nn.Tanh(), torch.nn.Linear(32, features), torch.nn.Sigmoid()
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return model


class SlowRowwiseDecoder:
    """rowwise_decoder that sleeps per call, so a test can stop a sweep half way."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return rowwise_decoder(codes)


def wide_rowwise_decoder(features: int):
    """A cheap batch-independent decoder with many output features (for memory tests)."""

    def decode(codes: torch.Tensor) -> torch.Tensor:
        base = codes.sum(dim=1, keepdim=True) + torch.linspace(0, 1, features, device=codes.device)
        return base * base / (1.0 + base * base)

    return decode


def cpu_probe_calls(num_anchors: int, row_bytes: int = 64) -> int:
    """The decoder calls of the anchors' probe on the CPU before a sweep's own, by the probe's
    own rule (:func:`latentsweep.decoder_probe.probe_growth`), for a decoder of ``row_bytes`` of
    outputs a code."""
    from latentsweep.decoder_probe import probe_growth

    growth = probe_growth(torch.device("cpu"))
    first = min(num_anchors, growth.first_rows)
    return 1 + -(-max(0, num_anchors - first) // growth.later_rows(first, row_bytes))
