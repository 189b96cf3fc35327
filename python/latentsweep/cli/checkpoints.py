"""Weights for ``--weights``: the model's state dict found in a file as people save it.

Accepted, in this order:

- a ``.safetensors`` file (only tensors, nothing to unpickle);
- a torch file holding a state dict (``torch.save(model.state_dict(), path)``);
- a checkpoint dict holding one under ``--weights-key``, or under one of ``CHECKPOINT_KEYS``
  (``{"model_state_dict": ...}`` as the PyTorch tutorials save it, ``{"state_dict": ...}`` as
  Lightning does);
- keys with a common prefix the model lacks (Lightning's ``model.``, DataParallel's
  ``module.``): the prefix is stripped when what remains is exactly the model's keys.

Torch files are read with ``weights_only=True``: a pickled whole model is refused, never
unpickled (unpickling can run arbitrary code).
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import CliError, reason

# Where checkpoints keep the model's state dict, tried in order.
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def load_weights(model, path: str, *, key: str | None = None) -> None:
    """Loads ``path`` into ``model`` (strictly: every key must match)."""
    if not isinstance(model, torch.nn.Module):
        raise CliError("--weights needs the model to be a torch.nn.Module")
    file = Path(path)
    missing_file(file, "--weights")
    if file.suffix.lower() == ".safetensors":
        loaded = read_safetensors(file, "--weights")
    else:
        loaded = read_torch_file(file, "--weights")
    state = _state_dict(loaded, path, key)
    expected = model.state_dict()
    state = _fitted_keys(state, set(expected))
    _refuse_unfit_tensors(state, expected, path)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise CliError(f"--weights {path!r} do not fit the model: {' '.join(first[:3])}") from None


def _refuse_unfit_tensors(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: str) -> None:
    """What ``load_state_dict`` would copy into garbage without a word (integer, bool or complex
    values into floating-point weights: truncated numbers, 0/1, the real part), or fail on with
    torch's internals (sparse, meta, nested tensors): a CliError naming the entry."""
    for name, value in state.items():
        target = expected.get(name)
        if target is None:
            continue  # (load_state_dict names unexpected keys)
        layout = "nested" if value.is_nested else None if value.layout == torch.strided else \
            str(value.layout).removeprefix("torch.")
        if layout is not None:
            raise CliError(f"--weights {path!r}: {name!r} is a {layout} tensor; save the weights as plain dense "
                           "tensors (model.state_dict() of the model itself)")
        if value.device.type == "meta":
            raise CliError(f"--weights {path!r}: {name!r} is on the meta device (a shape without values); save the "
                           "weights after loading or training them")
        if target.is_floating_point() and not value.is_floating_point():
            got = str(value.dtype).removeprefix("torch.")
            raise CliError(f"--weights {path!r}: {name!r} holds {got} values where the model has "
                           f"{str(target.dtype).removeprefix('torch.')} weights (copied, they would be "
                           f"{'the real parts' if value.is_complex() else '0 and 1' if value.dtype == torch.bool else 'whole numbers'}); "
                           "these are not the "
                           "model's floating-point weights (a quantized or another model's checkpoint?)")


def missing_file(file: Path, option: str) -> None:
    """CliError unless ``file`` is a regular file: saying what is there instead."""
    if file.is_file():
        return
    if file.is_dir():
        raise CliError(f"{option}: {str(file)!r} is a folder, not a file")
    if file.exists():
        raise CliError(f"{option}: {str(file)!r} is not a regular file (a device or a pipe)")
    raise CliError(f"{option}: no such file {str(file)!r}")


def read_safetensors(file: Path, option: str, choose=None) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file, all of them or, with ``choose`` (the names -> the one
    to read), only that one (the others are not read: they may be large); a damaged file is a
    CliError naming ``option``."""
    from safetensors import safe_open

    try:
        with safe_open(file, framework="pt") as opened:
            names = list(opened.keys())
            wanted = names if choose is None else [choose(names)]
            return {name: opened.get_tensor(name) for name in wanted}
    except CliError:
        raise
    except Exception as error:  # noqa: BLE001  (SafetensorError, OSError, ...: all one story)
        raise CliError(f"{option}: {str(file)!r} is not a readable .safetensors file ({reason(error)})") from None


# What to save instead of a pickled object, per option.
_SAVE_INSTEAD = {"--weights": "Save the weights instead: torch.save(model.state_dict(), 'weights.pt')",
                 "--data": "Save the inputs as an array instead: np.save('x.npy', x) or torch.save(tensor, 'x.pt')"}


def file_kind(file: Path) -> str | None:
    """What a file is by its first bytes, when that is a kind the options do not take for what
    its suffix says: "a numpy .npy file", "a numpy .npz archive", or None."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(6)
        if head == b"\x93NUMPY":
            return "a numpy .npy file"
        if head[:4] == b"PK\x03\x04" and zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                names = archive.namelist()
            if names and all(n.endswith(".npy") for n in names):
                return "a numpy .npz archive"
    except OSError:
        return None
    return None


# What each option reads, for a file that is none of it.
_ACCEPTED = {"--weights": "--weights takes a .safetensors file or a torch file of torch.save(model.state_dict(), ...)",
             "--data": "--data takes .npy, .npz, .pt/.pth (torch.save of a tensor) or .safetensors files"}


def _not_torch(file: Path) -> str | None:
    """Why ``file`` cannot be what torch.save writes, a zip (since torch 1.6) or a pickle (the
    legacy format; pickle protocols 2 and up start with 0x80), or None when it may be. An
    unreadable file may be: torch.load says why."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return None
    if not head:
        return "it is empty"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return None
    return "it starts with neither torch.save's zip header nor a pickle's"


def read_torch_file(file: Path, option: str):
    """What ``torch.save`` wrote, loaded with ``weights_only=True`` (tensors, dicts, lists,
    numbers, strings); a pickled object of another class is refused with what it was."""
    kind = file_kind(file)
    if kind is not None:
        raise CliError(f"{option}: {str(file)!r} is {kind}, not a torch file; "
                       + ("give it a .npy/.npz suffix" if option == "--data" else _ACCEPTED[option]))
    wrong = _not_torch(file)
    if wrong is not None:  # text, an image, ...: torch.load would say "KeyError: 101" or the like
        raise CliError(f"{option}: {str(file)!r} is not a torch file ({wrong}); {_ACCEPTED[option]}")
    try:
        # (sparse tensors' indices are checked as they load: torch skips that by default, and a
        # CSR tensor with indices out of range crashed the process when made dense)
        with warnings.catch_warnings(), torch.sparse.check_sparse_tensor_invariants():
            warnings.simplefilter("ignore")  # torch's own remarks on the pickle protocol: the outcome is said below
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        if refused is None and "weights_only" not in str(error).lower():  # not a pickle at all (text, ...)
            raise CliError(f"{option}: cannot read {str(file)!r} as a torch file ({reason(error)})") from None
        what = f" ({refused.group(1)})" if refused else ""
        raise CliError(
            f"{option}: {str(file)!r} holds pickled Python objects{what}, not only tensors; latentsweep "
            f"does not unpickle them (that can run arbitrary code). {_SAVE_INSTEAD.get(option, _SAVE_INSTEAD['--weights'])}"
        ) from None
    except Exception as error:  # noqa: BLE001  (a damaged zip, a truncated file, ...)
        raise CliError(f"{option}: cannot read {str(file)!r} as a torch file ({reason(error)})") from None


def _is_state_dict(value) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def _state_dict(loaded, path: str, key: str | None) -> dict[str, torch.Tensor]:
    """The state dict inside what was loaded: itself, the entry ``key``, or a known entry."""
    if not isinstance(loaded, Mapping):
        raise CliError(f"--weights {path!r} holds a {type(loaded).__name__}, not a state dict")
    if key is not None:
        if (entry := named_entry(loaded, key)) is None:
            raise CliError(f"--weights-key {key!r} is not in {path!r} (it has: {_keys(loaded)})")
        if not _is_state_dict(loaded[entry]):
            raise CliError(f"--weights-key {key!r} of {path!r} is not a state dict (name -> tensor)")
        return dict(loaded[entry])
    if _is_state_dict(loaded):
        return dict(loaded)
    for name in CHECKPOINT_KEYS:
        if _is_state_dict(loaded.get(name)):
            return dict(loaded[name])
    nested = [str(k) for k, v in loaded.items() if _is_state_dict(v)]
    if nested:
        raise CliError(
            f"--weights {path!r} is a checkpoint whose state dict is not under a usual key "
            f"({', '.join(CHECKPOINT_KEYS)}); name it with --weights-key (candidates: {', '.join(nested)})"
        )
    raise CliError(f"--weights {path!r} holds no state dict (name -> tensor); its entries: {_keys(loaded)}")


def named_entry(entries, key: str):
    """The entry of ``entries`` (a dict's keys, or names) that a flag's text ``key`` names: ``key``
    itself, else the one entry written so (a .pt dict's int keys: ``--key 0``, which the errors list
    as 0, found no entry 0); None when none is."""
    if key in entries:
        return key
    written = [entry for entry in entries if str(entry) == key]
    return written[0] if len(written) == 1 else None


def _keys(mapping: Mapping) -> str:
    names = [repr(k) for k in list(mapping)[:12]]
    return ", ".join(names) + (", ..." if len(mapping) > 12 else "")


def _fitted_keys(state: dict[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    """The state with a leading prefix removed when that makes its keys exactly the model's
    (``model.encoder.0.weight`` -> ``encoder.0.weight``); otherwise unchanged."""
    if set(state) == model_keys:
        return state
    prefixes = {key[: i + 1] for key in state for i, char in enumerate(key) if char == "."}
    for prefix in sorted(prefixes, key=len):
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if set(stripped) == model_keys:
            return stripped
    return state
