"""The caller's torch.set_default_device does not reach the tensors the library makes itself:
without device=, a default of "meta" (or "cuda") placed the library's own index grids, buffers
and sums there, and diagnose, traverse and interpolate failed inside torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import latentsweep as ls

ROOT = Path(__file__).resolve().parents[1]


def rowwise(z: torch.Tensor) -> torch.Tensor:
    """A decoder of any latent size D: [B, D] -> [B, 4], row by row."""
    return torch.tanh(z @ torch.linspace(-1, 1, z.shape[1] * 4, dtype=z.dtype, device=z.device).view(-1, 4))


def _device_constructors() -> set[str]:
    """The torch functions whose tensors torch.set_default_device places (torch's own list)."""
    from torch.utils._device import _device_constructors as constructors

    return {f.__name__ for f in constructors() if getattr(torch, getattr(f, "__name__", ""), None) is f}


def test_every_tensor_the_library_makes_names_its_device():
    """Without device=, torch.set_default_device("meta") (or "cuda") in the caller's process made
    the library's own index grids, buffers and sums there: diagnose, traverse and interpolate
    failed inside torch ("Tensor.item() cannot be called on meta tensors")."""
    names = _device_constructors()
    assert {"tensor", "zeros", "arange", "linspace", "as_tensor"} <= names  # (this test's own check can fail)
    unnamed = []
    for path in sorted((ROOT / "python" / "latentsweep").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                    and "device" not in {keyword.arg for keyword in node.keywords}):
                unnamed.append(f"{path.relative_to(ROOT)}:{node.lineno}: torch.{node.func.attr}")
    assert not unnamed, "\n".join(unnamed)


def _workflow() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    weights = torch.randn(12, 8, generator=g, device="cpu")
    data = torch.rand(40, 12, generator=g, device="cpu")

    def encoder(x):
        h = x @ weights
        return h[:, :4], h[:, 4:] - 2

    posterior = ls.encode(encoder, data, progress=False)
    diagnosis = ls.diagnose(posterior)
    prior = ls.traverse(rowwise, posterior[:3], steps=5, progress=False)
    empirical = ls.traverse(rowwise, posterior.mu[:3], mode="empirical", reference=posterior.mu, steps=5,
                            progress=False)
    pcs = ls.principal_directions(posterior)
    along = ls.traverse(rowwise, posterior.mu[:2], directions=pcs[[0, 1]], mode="quantile", steps=5, progress=False)
    paths = ls.interpolate(rowwise, posterior.mu[:2], posterior.mu[2:4], steps=5, path="slerp", progress=False)
    return {"mu": posterior.mu, "kl": diagnosis.kl, "prior": prior.outputs, "sensitivity": prior.sensitivity,
            "empirical": empirical.outputs, "pcs": pcs.vectors, "along": along.outputs, "paths": paths.outputs,
            "rows": posterior[[0, 2]].mu, "clusters": ls.clusters(posterior, k=3, seed=0).centroids}


@pytest.mark.parametrize("default", ["meta", "cpu"])
def test_the_callers_default_device_does_not_reach_the_librarys_tensors(default):
    """CPU codes and models, any default device: the same results as without one."""
    expected = _workflow()
    torch.set_default_device(default)
    try:
        got = _workflow()
    finally:
        torch.set_default_device(None)
    assert torch.empty(1).device.type == "cpu"  # (restored for the other tests)
    for name, tensor in expected.items():
        assert got[name].device.type == "cpu" and torch.equal(got[name], tensor), name
