"""The public annotations say what the functions accept: latentsweep ships py.typed, so users'
checkers (mypy, Pylance) hold their calls to these annotations, and one narrower than the
function made a correct, documented call fail type checking (``traversal_values(posterior)``,
``direction_codes(anchors, pcs, values)``). Each case below is a documented call that runs; its
type must be among the parameter's annotated ones.

The package says it is typed (PEP 561); a demo model's parts are declared (mypy read
``model.decoder(z)`` as a call of ``Tensor | Module``); a sweep without shard= returns its result,
not a union with StoreStatus."""

from __future__ import annotations

import ast
import collections.abc
import inspect
import types
import typing
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep.datasets import LabelledArrays
from latentsweep.demo import load_demo_model
from latentsweep.direction_codes import direction_codes
from latentsweep.traversal import traversal_values


def annotated_types(function, parameter: str) -> list:
    """The types a parameter's annotation allows (the members of a union), resolved with the
    package's names (direction_codes imports Directions for type checkers only)."""
    hint = typing.get_type_hints(function, localns=vars(ls))[parameter]
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return [typing.get_origin(m) or m for m in members]


def sweeps_and_overloads(function) -> list:
    return [function, *typing.get_overloads(function)]


@pytest.mark.parametrize("function, parameter, accepted", [
    (traversal_values, "anchors", ls.Posterior),       # "or a Posterior (its mu, and its logvar)"
    (traversal_values, "reference", ls.Posterior),     # "or a Posterior (its means)"
    (direction_codes, "directions", ls.Directions),   # "or a Directions, whose vectors are normalised"
    *[(f, "reference", ls.Posterior) for f in sweeps_and_overloads(ls.traverse)],
    (LabelledArrays.__init__, "factor_names", collections.abc.Iterable),  # a generator or an array of names
    (ls.metrics.evaluate, "sampling_votes", collections.abc.Sequence),   # [300, 200] as well as (300, 200)
], ids=lambda v: getattr(v, "__qualname__", str(v)))
def test_a_documented_argument_type_is_annotated(function, parameter, accepted):
    assert accepted in annotated_types(function, parameter)


def test_the_widened_calls_run():
    """The calls the widened annotations now allow are ones the functions take."""
    codes = torch.randn(6, 4)
    posterior = ls.Posterior(codes, torch.full((6, 4), -2.0))
    assert ls.traversal_values(posterior[:2], mode="empirical", reference=posterior, steps=3).shape == (2, 4, 3)
    pcs = ls.principal_directions(codes, k=2)
    assert ls.direction_codes(codes[:1], pcs, torch.linspace(-1, 1, 3)).shape == (6, 4)
    result = ls.traverse(torch.nn.Linear(4, 2), codes[:1], mode="empirical", reference=posterior, steps=3,
                         progress=False)
    assert result.values.shape == (1, 4, 3)
    factors = np.repeat(np.arange(3), 2)[:, None]
    named = LabelledArrays(np.random.rand(6, 2), factors, factor_names=(n for n in ["digit"]))
    assert named.factor_names == ["digit"]
    assert LabelledArrays(np.random.rand(6, 2), factors, factor_names=np.array(["digit"])).factor_names == ["digit"]


def test_the_plot_functions_are_imported_from_their_own_modules():
    """Each plot function shares its name with its module (``plots/traversal_grid.py``). Imported
    as ``from .plots import traversal_grid``, mypy resolved ``ls.traversal_grid`` (in the
    package's import cycle) to the module: "Module not callable" on the README's first block.
    ``from .plots.traversal_grid import traversal_grid`` names the function without doubt."""
    source = Path(ls.__file__).read_text(encoding="utf-8")
    from_plots = [node for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module == "plots"]
    shadowed = [alias.name for node in from_plots for alias in node.names if alias.name in ls.plots.__all__]
    assert not shadowed, f"import these from latentsweep.plots.<name>, not latentsweep.plots: {shadowed}"
    for name in ls.plots.__all__:
        if name in ls.__all__:
            assert inspect.isfunction(getattr(ls, name)) and getattr(ls, name) is getattr(ls.plots, name)


def test_the_package_ships_its_typed_marker():
    assert resources.files("latentsweep").joinpath("py.typed").is_file()


def test_a_demo_models_parts_are_declared_modules():
    model_type = typing.get_type_hints(load_demo_model)["return"]
    hints = typing.get_type_hints(model_type)
    assert hints["encoder"] is torch.nn.Module and hints["decoder"] is torch.nn.Module
    assert isinstance(load_demo_model("digits-ae"), model_type)


@pytest.mark.parametrize("function", [ls.traverse, ls.interpolate], ids=lambda f: f.__name__)
def test_the_sweeps_overloads_repeat_the_signature_but_for_shard(function):
    """Without shard= a sweep's result is its result, not ``... | StoreStatus`` (mypy and Pylance
    flagged every ``result.outputs``): two overloads, which must stay the function's own
    parameters and defaults, differing only in shard's type."""
    implementation = inspect.signature(function)
    overloads = [inspect.signature(o) for o in typing.get_overloads(function)]
    assert len(overloads) == 2
    for overload in overloads:
        assert list(overload.parameters) == list(implementation.parameters)
        for name, parameter in implementation.parameters.items():
            if name != "shard":
                assert overload.parameters[name] == parameter, name
    whole, sharded = overloads
    assert whole.parameters["shard"].annotation == "None" and whole.parameters["shard"].default is None
    assert sharded.parameters["shard"].annotation == "tuple[int, int]"
    assert sharded.parameters["shard"].default is inspect.Parameter.empty
    assert "StoreStatus" not in whole.return_annotation and "StoreStatus" in sharded.return_annotation
    assert implementation.return_annotation == sharded.return_annotation
