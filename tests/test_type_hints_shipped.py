"""Type checkers read latentsweep's annotations: the package says it is typed (PEP 561), and a
demo model's parts are declared (mypy read ``model.decoder(z)`` as a call of ``Tensor | Module``,
"Tensor not callable", on the README's first lines)."""

import inspect
import typing
from importlib import resources

import pytest
import torch

import latentsweep as ls
from latentsweep.demo import load_demo_model


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
