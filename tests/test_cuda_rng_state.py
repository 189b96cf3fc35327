"""A call that starts CUDA leaves CUDA's random stream where it would be without the call (CUDA
only: the generators cannot be read before CUDA starts, so they are put back at their seeds)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    import latentsweep as ls

    torch.manual_seed(0)  # (queued for CUDA's generators until CUDA starts)
    if sys.argv[1] == "call":
        class SamplingEncoder(torch.nn.Module):  # draws from CUDA's global stream
            def forward(self, x):
                mu = x[:, :2]
                return mu + 0.1 * torch.randn_like(mu), torch.zeros_like(mu)

        assert not torch.cuda.is_initialized()
        ls.encode(SamplingEncoder(), torch.randn(8, 3), device="cuda", progress=False)
        assert torch.cuda.is_initialized()
    print(torch.randn(4, device="cuda").tolist())
    """
)


def _draws(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_call_that_starts_cuda_leaves_its_random_stream_as_found():
    assert _draws("call") == _draws("alone")
