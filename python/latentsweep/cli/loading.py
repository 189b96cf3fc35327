"""What the command line loads: models named ``module:attr`` and arrays from files.

Every failure is a :class:`CliError` with one line saying what was wrong and how to fix it;
exceptions raised by the user's own code while importing or building the model are reported
the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import math
import os
import re
import sys
import zipfile
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch

from .._modules import MODULE_IDENTITY
from .checkpoints import load_weights, missing_file, named_entry, read_safetensors, read_torch_file
from .errors import CliError, UsageError, reason


# User files are imported under this prefix, never under their own name: a model file called
# json.py must not replace the standard library's json in sys.modules.
PRIVATE_MODULE_PREFIX = "_latentsweep_user_model_"


def load_model(spec: str, weights: str | None = None, *, weights_key: str | None = None) -> torch.nn.Module:
    """``module:attr`` (or ``path/to/file.py:attr``), as uvicorn names apps: ``attr`` is a
    module object, or a class/function called without arguments (a factory). ``weights`` is
    read by :func:`checkpoints.load_weights` (state dicts, checkpoints, .safetensors)."""
    if ":" not in spec:
        raise CliError(f"--model must look like 'package.module:attr' or 'file.py:attr', got {spec!r}")
    module_name, _, attr = spec.rpartition(":")
    module = _import(module_name)
    target = module
    for part in attr.split("."):
        try:  # (a module's __getattr__ or a property is user code: it may raise anything)
            target = getattr(target, part)
        except AttributeError:
            raise CliError(f"--model: {module_name!r} has no attribute {attr!r}") from None
        except Exception as error:  # noqa: BLE001
            raise CliError(f"--model: getting {attr!r} from {module_name!r} raised {reason(error)}") from None
    model = target if isinstance(target, torch.nn.Module) else _call_factory(target, spec)
    if weights is not None:
        load_weights(model, weights, key=weights_key)
    if isinstance(model, torch.nn.Module):
        model.eval()
    return model


# The folders appended to sys.path in this context for its models (see model_folders_on_path).
_appended_folders: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("appended_folders",
                                                                                     default=None)


@contextlib.contextmanager
def model_folders_on_path():
    """The folders appended to sys.path for the models inside (the working directory, a model
    file's folder) stay there while the block runs, as a model may import its sibling modules
    when it runs, and are taken off when it ends: a program that calls the command line's main()
    keeps its path as it was (each call appended the working directory once more)."""
    token = _appended_folders.set([])
    try:
        yield
    finally:
        for folder in _appended_folders.get():
            with contextlib.suppress(ValueError):  # (taken off meanwhile by someone else)
                sys.path.remove(folder)
        _appended_folders.reset(token)


def _append_to_path(folder: str) -> None:
    """``folder`` at the end of sys.path, unless it is on it already."""
    if folder in sys.path:
        return
    sys.path.append(folder)
    appended = _appended_folders.get()
    if appended is not None:
        appended.append(folder)


def _import(module_name: str):
    if module_name.endswith(".py"):
        return _import_file(Path(module_name))
    cwd = str(Path.cwd())
    # As uvicorn: modules next to the user resolve first while the model is imported; then the
    # folder moves to the end of the path, so it cannot shadow modules imported later.
    sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise CliError(f"--model: cannot import {module_name!r} ({error})") from None
    except (Exception, SystemExit) as error:  # noqa: BLE001  (the user's module raised while importing)
        raise CliError(f"--model: importing {module_name!r} raised {reason(error)}") from None
    finally:
        sys.path.remove(cwd)
        _append_to_path(cwd)


def _import_file(path: Path):
    missing_file(path, "--model")  # (a folder named x.py was "no such file")
    name = PRIVATE_MODULE_PREFIX + re.sub(r"\W", "_", str(path.resolve().with_suffix("")))
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    setattr(module, MODULE_IDENTITY, PRIVATE_MODULE_PREFIX + path.name)  # (not its folder: see MODULE_IDENTITY)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    _append_to_path(str(path.resolve().parent))  # its sibling modules import, without shadowing installed ones
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # noqa: BLE001  (SyntaxError, sys.exit(), anything it raises)
        del sys.modules[name]
        raise CliError(f"--model: running {str(path)!r} raised {reason(error)}") from None
    return module


def _call_factory(target, spec: str):
    if not callable(target):
        raise CliError(f"--model {spec!r} is neither an nn.Module nor a factory that returns one")
    try:
        model = target()
    except (Exception, SystemExit) as error:  # noqa: BLE001  (the factory is user code: report, don't crash)
        raise CliError(f"--model {spec!r}: the factory raised {reason(error)}") from None
    if not isinstance(model, torch.nn.Module) and not (hasattr(model, "encoder") or hasattr(model, "decoder")):
        raise CliError(f"--model {spec!r} returned a {type(model).__name__}, not a model")
    return model


def model_part(model, names: tuple[str, ...], what: str, option: str):
    """The encoder or decoder of a model: the first attribute of `names` it has; a dotted name
    (``vae.encode``) is followed attribute by attribute (a Lightning module holding the VAE)."""
    for name in names:
        part = model
        for attr in name.split(".") if name else (name,):
            part = getattr(part, attr, None)
        if callable(part):
            return part
    tried = " or ".join(repr(name) for name in names)  # ('' shown as such: an empty --encoder)
    raise CliError(f"the model has no {what} ({tried}); name it with {option} ATTR{_inner_part(model, names, option)}")


def _inner_part(model, names: tuple[str, ...], option: str) -> str:
    """Advice naming the model's own modules that have the part (``self.vae = VAE()`` in a
    Lightning module: ``--encoder vae.encode``), or ''."""
    if not isinstance(model, torch.nn.Module):
        return ""
    found = [f"{child}.{name}" for child, module in model.named_children() for name in names
             if name and callable(getattr(module, name, None))]
    return f" (e.g. {option} {found[0]}, which the model has)" if found else ""


def part_device_dtype(part, model) -> tuple[torch.device, torch.dtype]:
    """Where, and in which dtype, the model's encoder or decoder runs: that of the module behind
    it (the package's one rule, ``owning_module``: the part itself, the module of a bound method,
    or of a partial or wrapper of either), else the model's (a plain function of it)."""
    from .._modules import model_device, model_dtype, owning_module

    owner = owning_module(part)
    owner = model if owner is None else owner
    return model_device(owner) or model_device(model) or torch.device("cpu"), model_dtype(owner)


# The options that name files or folders (argparse's dest -> the flag), checked for paths the
# file system cannot hold before any work (Path.exists() raises on them: "[Errno 36] File name
# too long", naming no option).
PATH_OPTIONS = {"model": "--model", "weights": "--weights", "data": "--data", "factors": "--factors",
                "out": "--out", "store": "--store", "json": "--json", "directions": "--directions", "path": "PATH"}


def check_path_options(args) -> None:
    """CliError naming the option whose path is empty (``--out ''`` wrote into the current
    folder, ``--store ''`` was taken as no store), has a name longer than the file system allows,
    or is longer than a path may be."""
    for dest, flag in PATH_OPTIONS.items():
        value = getattr(args, dest, None)
        if not isinstance(value, str):  # absent, or a flag (diagnose --json)
            continue
        if not value.strip() and dest != "model":  # (an empty --model: its own message says what it looks like)
            raise CliError(f"{flag}: the path is empty" + (" (. is the current folder)" if dest == "out" else ""))
        path = value.rpartition(":")[0] if dest == "model" else value
        if dest == "model" and not path.endswith(".py"):  # a module's name, not a file's
            continue
        why = _too_long(path)
        if why is not None:
            shown = path if len(path) <= 60 else f"{path[:30]}...{path[-20:]}"
            raise CliError(f"{flag}: the path is too long: {why} ({shown!r})")


def _too_long(path: str) -> str | None:
    """Why the file system cannot hold ``path`` (a name in it, or the whole, too long), or None."""
    encoded = os.fsencode(path)
    name_max, path_max = 255, 4096  # Linux's, where pathconf cannot tell
    with contextlib.suppress(OSError, ValueError, AttributeError):  # (no pathconf on Windows)
        path_max = os.pathconf(".", "PC_PATH_MAX")
        folder = next((p for p in Path(path).parents if _is_dir(p)), Path("."))  # the file system it goes on
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    if len(encoded) >= path_max:
        return f"{len(encoded)} bytes, the file system takes at most {path_max - 1}"
    longest = max(encoded.split(os.fsencode(os.sep)), key=len)
    if len(longest) > name_max:
        return f"a name in it has {len(longest)} bytes, the file system takes at most {name_max}"
    return None


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # (too long itself)
        return False


def load_array(path: str, *, key: str | None = None, option: str = "--data") -> torch.Tensor:
    """A tensor from .npy, .npz, .pt/.pth (weights_only) or .safetensors (``key`` picks an
    entry of a file holding several; default: the only one, or 'x'/'data'; of an .npz, only
    that entry is read). ``option``: the flag that named the file, which every message names
    (with its key flag, see :func:`key_flag`)."""
    file = Path(path)
    missing_file(file, option)
    suffix = file.suffix.lower()
    if suffix in (".npy", ".npz"):
        npy_file(file, option, archive=suffix == ".npz")
    try:
        if suffix == ".npy":
            entries = {"": np.load(file, allow_pickle=False)}
        elif suffix == ".npz":
            # an NpzFile reads an entry when it is indexed: only the chosen one is read (the
            # others may be large, or object arrays that allow_pickle=False refuses)
            with np.load(file, allow_pickle=False) as archive:
                name = _pick(archive.files, key, path, option)
                entries = {name: archive[name]}
        elif suffix in (".pt", ".pth"):
            loaded = read_torch_file(file, option)
            entries = loaded if isinstance(loaded, dict) else {"": loaded}
        elif suffix == ".safetensors":
            entries = read_safetensors(file, option, choose=lambda names: _pick(names, key, path, option))
        else:
            raise CliError(f"{option}: unsupported file type {suffix!r} (use .npy, .npz, .pt or .safetensors)")
    except CliError:
        raise
    except Exception as error:  # noqa: BLE001
        raise CliError(f"{option}: cannot read {path!r} ({error})") from None
    return _as_tensor(entries[_pick(entries, key, path, option)], path, option)


def npy_file(file: Path, option: str, *, archive: bool = False) -> None:
    """CliError unless ``file`` starts as numpy's .npy (or, with ``archive``, a zip) does: numpy
    would say "pickled data" of any other file, a text file included."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(6)
        valid = zipfile.is_zipfile(file) if archive else head == b"\x93NUMPY"  # (an empty .npz has no entry header)
    except OSError as error:
        raise CliError(f"{option}: cannot read {str(file)!r} ({error.strerror or error})") from None
    if not valid:
        raise CliError(f"{option}: {str(file)!r} is not a numpy {'.npz' if archive else '.npy'} file "
                       f"(it does not start with numpy's {'zip' if archive else '.npy'} header)")


# Integer dtypes kept as they are (as ``latentsweep.encode`` keeps integer data): those that
# index layers take (token ids for an nn.Embedding). uint8/int8/int16 and bool data become
# float32, as before: no index layer takes them, and they are images or masks.
INDEX_DTYPES = (torch.int32, torch.int64)


# Layouts made dense (as they always were), after their dense size is checked; any other
# layout, and meta, nested or quantized tensors, hold no values the encoder can take.
SPARSE_LAYOUTS = (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc)


def _as_tensor(value, path: str, option: str) -> torch.Tensor:
    """A dense real tensor with a batch dimension: floating point (commands cast it on to the
    encoder's dtype) or int32/int64 ids, kept; other integer and bool data become float32.
    Sparse tensors are made dense (see :func:`_dense`); every failure names ``option``."""
    if not isinstance(value, (torch.Tensor, np.ndarray, bool, int, float)):  # torch.save of a list, a str, ...
        raise CliError(f"{option}: {path!r} holds a {type(value).__name__}, not an array; it must hold one tensor or "
                       f"array of inputs [N, ...] (or a dict of them, chosen with {key_flag(option)})")
    try:  # (what a file holds may fail to convert in ways not foreseen here: still said as the option's)
        if isinstance(value, torch.Tensor):
            tensor = _dense(value, path, option)
        else:
            array = np.asarray(value)
            if array.dtype.kind not in "biuf":
                raise CliError(f"{option}: {path!r} holds {array.dtype} values; expected numbers (an array of floats or ints)")
            array = array.astype(array.dtype.newbyteorder("="), copy=False)  # torch needs native byte order
            # (np.asarray keeps a single number 0-d, np.ascontiguousarray made it [1])
            tensor = torch.from_numpy(np.asarray(array, order="C"))
        if tensor.is_complex():
            raise CliError(f"{option}: {path!r} holds complex numbers ({tensor.dtype}); expected real numbers")
        if tensor.dim() == 0:
            raise CliError(f"{option}: {path!r} holds a single number; expected inputs [N, ...] with one row per input")
        return tensor if tensor.is_floating_point() or tensor.dtype in INDEX_DTYPES else tensor.float()
    except CliError:
        raise
    except Exception as error:  # noqa: BLE001
        raise CliError(f"{option}: {path!r} holds {_described(value)}, which cannot be read as inputs "
                       f"({reason(error)})") from None


def _dense(value: torch.Tensor, path: str, option: str) -> torch.Tensor:
    """A tensor of a torch file as a strided one: sparse layouts made dense when that fits in
    memory (the library's rule); tensors without plain values refused, saying what they are."""
    held = f"{option}: {path!r} holds {_described(value)}"
    if value.is_nested:
        raise CliError(f"{held}; expected one tensor [N, ...] (stack the inputs, padded to one shape)")
    if value.device.type == "meta":
        raise CliError(f"{held}, which has a shape but no values; save the inputs themselves")
    if value.is_quantized:
        raise CliError(f"{held}; save tensor.dequantize() instead")
    if value.layout == torch.strided:
        return value
    if value.layout not in SPARSE_LAYOUTS:
        raise CliError(f"{held}; save it as a dense tensor (tensor.to_dense())")
    from .._checks import fits_in_memory

    try:
        fits_in_memory(held, "made dense, it", math.prod(value.shape) * value.dtype.itemsize, torch.device("cpu"),
                       "save fewer inputs (the encoder takes them dense)")
    except ValueError as error:
        raise CliError(str(error)) from None
    return value.to_dense()


def _described(value) -> str:
    """What a value of a data file is, for messages: "a sparse_coo tensor [10, 4] float32"."""
    if isinstance(value, np.ndarray):
        return f"an array {list(value.shape)} {value.dtype}"
    if not isinstance(value, torch.Tensor):
        return f"a {type(value).__name__}"
    dtype = str(value.dtype).removeprefix("torch.")
    if value.is_nested:  # (it has no one shape)
        return f"a nested tensor ({value.size(0)} tensors, {dtype})"
    kind = "quantized " if value.is_quantized else "" if value.layout == torch.strided else \
        f"{str(value.layout).removeprefix('torch.')} "
    where = " on the meta device" if value.device.type == "meta" else ""
    return f"a {kind}tensor {list(value.shape)} {dtype}{where}"


def _pick(entries: Collection, key: str | None, path: str, option: str):
    """The name of the entry to use (of a dict's keys, or a list of names): ``key``, the only
    one, or 'x'/'data'/'inputs'/'X'."""
    if key is not None:
        if list(entries) == [""]:  # (an .npy, or a .pt of one tensor: no names to pick from)
            raise UsageError(f"{option}: {path!r} holds one unnamed array; {key_flag(option)} picks an entry of "
                             "an .npz, .safetensors or .pt dict: leave it out")
        if (entry := named_entry(entries, key)) is None:  # (a value the data cannot take: exit 2, as on an .npy)
            raise UsageError(f"{option}: {path!r} has no entry {key!r} (it has: {', '.join(map(str, entries))})")
        return entry
    if not entries:
        raise CliError(f"{option}: {path!r} holds no arrays")
    if len(entries) == 1:
        return next(iter(entries))
    for name in ("x", "data", "inputs", "X"):
        if name in entries:
            return name
    raise CliError(f"{option}: {path!r} holds several arrays ({', '.join(map(str, entries))}); choose one with {key_flag(option)}")


def key_flag(option: str) -> str:
    """The flag that picks an entry of ``option``'s file: ``--key`` for ``--data``, else
    ``--factors-key`` for ``--factors``."""
    return "--key" if option == "--data" else f"{option}-key"


def load_directions(path: str) -> torch.Tensor:
    """``--directions FILE.npy``: ``[K, D]`` (or ``[D]``) real vectors, or ``[K, *latent_shape]``
    for a structured latent (returned in that shape), none of them zero or non-finite, read
    without unpickling; every problem is one line naming the option."""
    file = Path(path)
    if file.suffix.lower() != ".npy":
        # (a mistyped word, as a mistyped --mode: a usage error, exit 2)
        raise UsageError(f"--directions: expected auto, coordinates, pca, clusters or a .npy file of [K, D] vectors, "
                       f"got {path!r}")
    if not file.is_file():
        raise CliError(f"--directions: no such file {path!r}")
    npy_file(file, "--directions")
    try:
        array = np.load(file, allow_pickle=False)
    except Exception as error:  # noqa: BLE001  (a damaged file, or a pickled object array)
        raise CliError(f"--directions: cannot read {path!r} ({error})") from None
    if array.dtype.kind not in "biuf":
        raise CliError(f"--directions: {path!r} holds {array.dtype} values; expected real numbers [K, D]")
    if array.ndim == 0 or array.size == 0:
        raise CliError(f"--directions: {path!r} must hold [K, D] vectors (or one [D], or [K, *latent_shape]), got "
                       f"shape {array.shape}")
    dtype = np.float64 if array.dtype == np.float64 else np.float32
    tensor = torch.from_numpy(np.ascontiguousarray(array.astype(dtype)))  # native byte order, floats
    import latentsweep as ls

    from ..grid_spec import refuse_repeated_directions

    try:  # the library's rules: no zero or non-finite vector, none along another's unit vector
        units = ls.unit_directions(tensor.flatten(1) if tensor.dim() > 2 else tensor)
        refuse_repeated_directions("latentsweep.unit_directions", units.reshape(-1, units.shape[-1]), ())
        return units.view(tensor.shape)
    except (TypeError, ValueError) as error:
        message = str(error).split(": ", 1)[-1]
        raise CliError(f"--directions {path!r}: {message}") from None
