"""Type checkers read latentsweep's annotations: the package says it is typed (PEP 561), and a
demo model's parts are declared (mypy read ``model.decoder(z)`` as a call of ``Tensor | Module``,
"Tensor not callable", on the README's first lines)."""

import typing
from importlib import resources

import torch

from latentsweep.demo import load_demo_model


def test_the_package_ships_its_typed_marker():
    assert resources.files("latentsweep").joinpath("py.typed").is_file()


def test_a_demo_models_parts_are_declared_modules():
    model_type = typing.get_type_hints(load_demo_model)["return"]
    hints = typing.get_type_hints(model_type)
    assert hints["encoder"] is torch.nn.Module and hints["decoder"] is torch.nn.Module
    assert isinstance(load_demo_model("digits-ae"), model_type)
