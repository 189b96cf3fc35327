"""latentsweep.sample is reparameterised sampling: gradients reach mu and logvar
(dz/dmu = 1, dz/dlogvar = (z - mu) / 2), as with torch.distributions' rsample."""

from __future__ import annotations


import pytest
import torch

import latentsweep
from conftest import FLOAT_DTYPES

ops = torch.ops.latentsweep


def _inputs(rows=3, dim=37, dtype=torch.float64, device="cpu", requires_grad=True):
    g = torch.Generator().manual_seed(5)
    mu = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    logvar = torch.rand(rows, dim, generator=g, dtype=torch.float64) * 2 - 1
    mu, logvar = mu.to(device=device, dtype=dtype), logvar.to(device=device, dtype=dtype)
    return mu.requires_grad_(requires_grad), logvar.requires_grad_(requires_grad)


def test_gradcheck_float64(device):
    mu, logvar = _inputs(device=device)
    draw = lambda m, lv: latentsweep.sample(m, lv, 4, seed=9, row_offset=3, sample_offset=2**40)  # noqa: E731
    assert torch.autograd.gradcheck(draw, (mu, logvar))
    assert torch.autograd.gradgradcheck(draw, (mu, logvar))  # the backward is differentiable too


def test_gradients_are_the_reparameterisation(device):
    mu, logvar = _inputs(device=device)
    z = latentsweep.sample(mu, logvar, 5, seed=1)
    weights = torch.randn_like(z)
    (z * weights).sum().backward()
    torch.testing.assert_close(mu.grad, weights.sum(1), rtol=1e-12, atol=1e-12)
    expected = (weights * (z - mu[:, None]) / 2).sum(1).detach()
    torch.testing.assert_close(logvar.grad, expected, rtol=1e-10, atol=1e-12)


def test_only_the_inputs_that_require_grad_get_one():
    mu, _ = _inputs()
    logvar = torch.zeros(3, 37, dtype=torch.float64)
    latentsweep.sample(mu, logvar, 2).sum().backward()
    assert mu.grad is not None and logvar.grad is None
    mu, logvar = _inputs(requires_grad=False)
    assert latentsweep.sample(mu, logvar, 2).grad_fn is None


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_gradients_in_every_dtype(dtype):
    """Low precision: eps is recomputed in float32, so the logvar gradient does not lose the
    digits of a small sd (as (z - mu) / 2 in float16 would)."""
    mu, logvar = _inputs(dtype=dtype)
    z = latentsweep.sample(mu, logvar, 3, seed=4)
    z.float().sum().backward()
    assert mu.grad.dtype == dtype and logvar.grad.dtype == dtype
    mu64, logvar64 = mu.detach().double().requires_grad_(), logvar.detach().double().requires_grad_()
    latentsweep.sample(mu64, logvar64, 3, seed=4).sum().backward()
    tol = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}.get(dtype, 2e-6)
    torch.testing.assert_close(logvar.grad.double(), logvar64.grad, rtol=tol, atol=tol)
    torch.testing.assert_close(mu.grad.double(), mu64.grad, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_opcheck_with_and_without_requires_grad(device, dtype):
    for requires_grad in (False, True):
        mu, logvar = _inputs(4, 40, dtype, device, requires_grad)
        torch.library.opcheck(ops.sample.default, (mu, logvar, 3, 7, 2, 5))
        torch.library.opcheck(ops.sample.default, (mu[:0], logvar[:0], 2, 1, 0, 0))


class TinyVAE(torch.nn.Module):
    def __init__(self, features=12, latent=5):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = torch.nn.Linear(features, 2 * latent)
        self.decoder = torch.nn.Linear(latent, features)

    def loss(self, x, draw):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = draw(mu, logvar)  # [N, D]
        recon = ((self.decoder(z) - x) ** 2).sum(1)
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
        return (recon + kl).mean()


def test_training_step_matches_the_torch_idiom_fed_the_same_noise():
    x = torch.randn(16, 12, generator=torch.Generator().manual_seed(1))
    eps = latentsweep.sample(torch.zeros(16, 5), torch.zeros(16, 5), 1, seed=3)[:, 0]

    def ours(mu, logvar):
        return latentsweep.sample(mu, logvar, 1, seed=3)[:, 0]

    def idiom(mu, logvar):
        return mu + torch.exp(0.5 * logvar) * eps

    grads = []
    for draw in (ours, idiom):
        model = TinyVAE()
        model.loss(x, draw).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(g.abs().sum() > 0 for g in grads[0])


def _compile_or_skip(fn):
    try:
        return torch.compile(fn, fullgraph=True)
    except Exception as error:  # pragma: no cover - machine without a working compiler
        pytest.skip(f"torch.compile unavailable: {error}")


def test_torch_compile_fullgraph_vae_loss_with_backward(device):
    x = torch.randn(8, 12, generator=torch.Generator().manual_seed(2)).to(device)
    model = TinyVAE().to(device)

    def step(x):
        return model.loss(x, lambda mu, logvar: ops.sample(mu, logvar, 1, 11, 0, 0)[:, 0])

    compiled = _compile_or_skip(step)
    try:
        loss = compiled(x)
    except Exception as error:
        if any(s in str(error) for s in ("InvalidCxxCompiler", "No working C++ compiler", "CppCompileError")):
            pytest.skip(f"torch.compile backend cannot run here: {str(error)[:200]}")
        raise
    loss.backward()
    compiled_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    step(x).backward()
    for a, b in zip(compiled_grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
