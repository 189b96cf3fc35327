"""Claims of the public docstrings that a review found false, checked against the behaviour."""

from __future__ import annotations

import re

import pytest
import torch

import latentsweep as ls


def _codes(n: int = 40, d: int = 6) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


def test_clusters_latent_shape_is_none_for_flat_codes_given_either_way():
    # Clusters' docstring: "None for flat codes", as principal_directions' Directions say it;
    # a flat Posterior (latent_shape (D,)) gave (D,) while the same codes as a tensor gave None.
    codes = _codes()
    labels = [i % 3 for i in range(len(codes))]
    assert ls.clusters(codes, labels).latent_shape is None
    assert ls.clusters(ls.Posterior(codes, torch.zeros_like(codes)), labels).latent_shape is None
    assert ls.clusters(ls.Posterior(codes), labels).latent_shape is None
    assert ls.principal_directions(ls.Posterior(codes)).latent_shape is None


def test_clusters_latent_shape_kept_for_structured_codes():
    codes = _codes(d=8)
    labels = [i % 2 for i in range(len(codes))]
    assert ls.clusters(codes.view(-1, 2, 4), labels).latent_shape == (2, 4)
    assert ls.clusters(ls.Posterior(codes, latent_shape=(2, 4)), labels).latent_shape == (2, 4)


def test_build_info_docstring_names_every_key():
    named = set(re.findall(r"``(\w+)``", ls.build_info.__doc__))
    assert set(ls.build_info()) <= named, sorted(set(ls.build_info()) - named)


def test_principal_directions_randomized_default_k_is_capped_by_the_codes():
    # "64 of them for the randomised one, or all when there are fewer" (min(N - 1, D)).
    codes = _codes(n=40, d=6)
    assert len(ls.principal_directions(codes, method="randomized")) == 6
    assert len(ls.principal_directions(codes[:4], method="randomized")) == 3


def test_sensitivity_counts_a_traversal_without_range_as_zero():
    # TraversalResult.sensitivity: "A traversal without a range ... counts as 0 in that mean".
    decoder = torch.nn.Linear(1, 2)
    values = torch.tensor([[[0.0, 0.0, 0.0]], [[0.0, 1.0, 2.0]]])  # anchor 0 does not move
    with torch.no_grad():
        slope = decoder.weight.T.abs()  # [K=1, F=2]
    with pytest.warns(RuntimeWarning, match="range of 0"):
        result = ls.traverse(decoder, torch.zeros(2, 1), values=values, progress=False, batch_size=8)
    torch.testing.assert_close(result.sensitivity, slope / 2)


def _public_callables():
    """Every public function and class of the package and its public subpackages, with each
    public method of a class, as (qualified name, object)."""
    import importlib
    import inspect

    found = []
    for module_name in ("latentsweep", "latentsweep.plots", "latentsweep.metrics", "latentsweep.integrations"):
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not callable(obj):
                continue
            found.append((f"{module_name}.{name}", obj))
            if inspect.isclass(obj):
                found += [(f"{module_name}.{name}.{attr}", value) for attr, value in vars(obj).items()
                          if not attr.startswith("_") and inspect.isfunction(value)]
    return found


@pytest.mark.parametrize("name, obj", _public_callables(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_public_parameter_is_named_in_its_docstring(name, obj):
    # StoreStatus, unit_directions and the two metrics from mutual information named none or
    # some of their arguments. (*args/**kwargs forwarded as they are, as Posterior.to's to
    # torch's Tensor.to, and private fields are not the user's.)
    import inspect

    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return
    doc = (inspect.getdoc(obj) or "") + (inspect.getdoc(obj.__init__) or "" if inspect.isclass(obj) else "")
    unnamed = [p.name for p in signature.parameters.values()
               if p.name not in ("self", "cls") and not p.name.startswith("_")
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               and not re.search(rf"\b{re.escape(p.name)}\b", doc)]
    assert not unnamed, f"{name}: its docstring does not name {unnamed}"
