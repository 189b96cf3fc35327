"""What the command line loads: models named ``module:attr`` and arrays from files.

Every failure is a :class:`CliError` with one line saying what was wrong and how to fix it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch


class CliError(Exception):
    """An error the CLI reports as one line on stderr (exit status 1)."""


def load_model(spec: str, weights: str | None = None) -> torch.nn.Module:
    """``module:attr`` (or ``path/to/file.py:attr``), as uvicorn names apps: ``attr`` is a
    module object, or a class/function called without arguments (a factory). ``weights`` is a
    .safetensors file or a torch checkpoint (a state dict, loaded with weights_only=True)."""
    if ":" not in spec:
        raise CliError(f"--model must look like 'package.module:attr' or 'file.py:attr', got {spec!r}")
    module_name, _, attr = spec.rpartition(":")
    module = _import(module_name)
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise CliError(f"--model: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    model = target if isinstance(target, torch.nn.Module) else _call_factory(target, spec)
    if weights is not None:
        load_weights(model, weights)
    if isinstance(model, torch.nn.Module):
        model.eval()
    return model


def _import(module_name: str):
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise CliError(f"--model: no such file {module_name!r}")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
        return module
    sys.path.insert(0, str(Path.cwd()))  # as uvicorn: modules next to the user resolve
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise CliError(f"--model: cannot import {module_name!r} ({error})") from None


def _call_factory(target, spec: str):
    if not callable(target):
        raise CliError(f"--model {spec!r} is neither an nn.Module nor a factory that returns one")
    model = target()
    if not isinstance(model, torch.nn.Module) and not (hasattr(model, "encoder") or hasattr(model, "decoder")):
        raise CliError(f"--model {spec!r} returned a {type(model).__name__}, not a model")
    return model


def load_weights(model, path: str) -> None:
    if not isinstance(model, torch.nn.Module):
        raise CliError("--weights needs the model to be a torch.nn.Module")
    file = Path(path)
    if not file.is_file():
        raise CliError(f"--weights: no such file {path!r}")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(file)
    else:
        try:  # weights_only: never unpickle arbitrary objects from a file
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001
            raise CliError(f"--weights: cannot read {path!r} as a torch checkpoint ({error})") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise CliError(f"--weights {path!r} do not fit the model: {' '.join(first[:3])}") from None


def model_part(model, names: tuple[str, ...], what: str, option: str):
    """The encoder or decoder of a model: the first attribute of `names` it has."""
    for name in names:
        part = getattr(model, name, None)
        if callable(part):
            return part
    raise CliError(
        f"the model has no {what} ({' or '.join(names)}); name it with {option} ATTR"
    )


def load_array(path: str, *, key: str | None = None) -> torch.Tensor:
    """A tensor from .npy, .npz, .pt/.pth (weights_only) or .safetensors (``key`` picks an
    entry of a file holding several; default: the only one, or 'x'/'data')."""
    file = Path(path)
    if not file.is_file():
        raise CliError(f"--data: no such file {path!r}")
    suffix = file.suffix.lower()
    try:
        if suffix == ".npy":
            entries = {"": np.load(file, allow_pickle=False)}
        elif suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                entries = {name: archive[name] for name in archive.files}
        elif suffix in (".pt", ".pth"):
            loaded = torch.load(file, map_location="cpu", weights_only=True)
            entries = loaded if isinstance(loaded, dict) else {"": loaded}
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            entries = load_file(file)
        else:
            raise CliError(f"--data: unsupported file type {suffix!r} (use .npy, .npz, .pt or .safetensors)")
    except CliError:
        raise
    except Exception as error:  # noqa: BLE001
        raise CliError(f"--data: cannot read {path!r} ({error})") from None
    value = _pick(entries, key, path)
    tensor = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
    if not tensor.is_floating_point():
        tensor = tensor.float()
    return tensor


def _pick(entries: dict, key: str | None, path: str):
    if key is not None:
        if key not in entries:
            raise CliError(f"--data: {path!r} has no entry {key!r} (it has: {', '.join(map(str, entries))})")
        return entries[key]
    if len(entries) == 1:
        return next(iter(entries.values()))
    for name in ("x", "data", "inputs", "X"):
        if name in entries:
            return entries[name]
    raise CliError(f"--data: {path!r} holds several arrays ({', '.join(map(str, entries))}); choose one with --key")
