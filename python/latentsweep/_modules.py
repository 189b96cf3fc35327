"""Helpers for the user's encoder/decoder callables (nn.Modules or plain functions)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import re
import sys
import threading
from collections.abc import Iterator

import torch


def owning_module(model) -> torch.nn.Module | None:
    """The nn.Module behind a callable: the module itself, the module whose bound method it is
    (``vae.decode``), or that of a ``functools.partial`` or a wrapper (``__wrapped__``, as
    ``functools.wraps`` sets) of either; None for other callables."""
    while isinstance(model, functools.partial) or (
        not isinstance(model, torch.nn.Module) and getattr(model, "__wrapped__", None) is not None
    ):
        model = model.func if isinstance(model, functools.partial) else model.__wrapped__
    if isinstance(model, torch.nn.Module):
        return model
    owner = getattr(model, "__self__", None)  # a bound method
    return owner if isinstance(owner, torch.nn.Module) else None


def modules_behind(model) -> list[torch.nn.Module]:
    """The nn.Modules a callable runs: its owning module, or for a plain function (a lambda
    such as ``lambda z: torch.sigmoid(vae.decoder(z))``) the modules among the variables it
    closes over, reads as globals or takes as default arguments, or for another callable object
    its module attributes; with those a ``functools.partial`` binds as arguments;
    modules held by those in plain objects or containers are found too (``lambda z:
    run.vae.decoder(z)``, ``lambda z: decoders[0](z)``), to :data:`_SEARCH_DEPTH` levels. So
    a snapshot during training can put them in eval mode: a lambda around the model ran it in
    training mode (BatchNorm's running statistics moved, dropout was on). The rule for every
    use of the user's callables: eval mode, device and dtype, fingerprint."""
    owner = owning_module(model)
    if owner is not None:
        bound = _modules_within(_partial_arguments(model))
        return [owner, *(module for module in bound if module is not owner)]
    # A wrapper's references, and those of the function it wraps (functools.wraps' __wrapped__):
    # a lambda encoder was hidden behind the input recorder of a training snapshot (its data was
    # not cast to its modules' dtype).
    candidates: list = []
    wrappers: set[int] = set()
    while model is not None and id(model) not in wrappers:
        wrappers.add(id(model))
        candidates += _partial_arguments(model, wrappers=False)
        while isinstance(model, functools.partial):
            model = model.func
        candidates += _references(model)
        model = getattr(model, "__wrapped__", None)
    return _modules_within(candidates)


def _partial_arguments(model, *, wrappers: bool = True) -> list:
    """The arguments ``functools.partial`` layers bind (``partial(run, vae.decoder)`` ran the
    decoder in training mode: only the partial's function was looked at), through ``__wrapped__``
    layers too unless ``wrappers`` is False."""
    values: list = []
    seen: set[int] = set()
    while id(model) not in seen:
        seen.add(id(model))
        if isinstance(model, functools.partial):
            values += [*model.args, *model.keywords.values()]
            model = model.func
        elif wrappers and not isinstance(model, torch.nn.Module) and getattr(model, "__wrapped__", None) is not None:
            model = model.__wrapped__
        else:
            break
    return values


def _references(model) -> list:
    """The values a callable reads: a function's closure variables, globals and default
    arguments (and a bound method's object's attributes), or another callable object's attributes."""
    import inspect

    if inspect.isfunction(model) or inspect.ismethod(model):
        function = getattr(model, "__func__", model)
        found = inspect.getclosurevars(function)
        # (and its default arguments: ``lambda z, m=vae.decoder: m(z)`` ran in training mode)
        candidates = [*found.nonlocals.values(), *found.globals.values(), *(function.__defaults__ or ()),
                      *(function.__kwdefaults__ or {}).values()]
        if inspect.ismethod(model):  # (of an object that holds the modules: wrapper.decode)
            candidates += list(getattr(model.__self__, "__dict__", {}).values())
        return candidates
    return list(getattr(model, "__dict__", {}).values())


# How far, and through how many values at most, modules are looked for inside the plain objects
# and containers a callable references: enough for run.vae.decoder or models["vae"].decoder,
# bounded for a global that is a large dataset or a config graph.
_SEARCH_DEPTH = 3
_SEARCH_VALUES = 10_000


def _modules_within(values: list) -> list[torch.nn.Module]:
    """The nn.Modules among values, then (breadth first) those inside the plain objects, lists,
    tuples and dicts among them; not inside Python modules, classes, functions, tensors or
    arrays, nor inside a module (its submodules are its own). At most _SEARCH_VALUES values are
    looked at, and queued."""
    import types

    found: dict[int, torch.nn.Module] = {}
    seen: set[int] = set()
    level = list(itertools.islice(values, _SEARCH_VALUES))
    for _ in range(_SEARCH_DEPTH + 1):
        deeper: list = []
        for value in level:
            if id(value) in seen:
                continue
            seen.add(id(value))
            room = _SEARCH_VALUES - len(seen) - len(deeper)  # (a list of long lists: bounded)
            try:  # (a proxy object's attribute access may raise anything: it is then not looked into)
                if isinstance(value, torch.nn.Module):
                    found.setdefault(id(value), value)
                elif room <= 0:
                    continue
                elif isinstance(value, (list, tuple)):
                    deeper += itertools.islice(value, room)
                elif isinstance(value, dict):
                    deeper += itertools.islice(value.values(), room)
                elif not isinstance(value, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType,
                                            torch.Tensor, str, bytes)):
                    attributes = getattr(value, "__dict__", None)
                    if isinstance(attributes, dict):
                        deeper += itertools.islice(attributes.values(), room)
            except Exception:
                continue
        level = deeper
    return list(found.values())


def first_linear_inputs(decoder) -> int | None:
    """in_features of a decoder module's first layer with parameters, when that is an
    ``nn.Linear`` (modules are registered in the order most decoders call them); None for any
    other decoder (a bound method's module holds the encoder too)."""
    if not isinstance(decoder, torch.nn.Module):
        return None
    for module in decoder.modules():
        if next(module.parameters(recurse=False), None) is not None:
            return module.in_features if isinstance(module, torch.nn.Linear) else None
    return None


_SHAPE_WORDS = re.compile(r"shape|size|dimension|\bdims?\b|\b\d+D\b|channels|expected input", re.IGNORECASE)


def shape_error(error: BaseException) -> bool:
    """Whether a model's own error (a decoder's, an encoder's) speaks of its input's shape, where
    the shape it was given is worth saying; one that broke for another reason gets no advice
    about shapes."""
    return isinstance(error, RuntimeError | ValueError | IndexError | TypeError) and bool(_SHAPE_WORDS.search(str(error)))


_DTYPE_WORDS = re.compile(r"dtype|scalar type|Float|Double|Half|BFloat16", re.IGNORECASE)


def mixed_dtypes_note(fn: str, role: str, model, cast_to: torch.dtype | None, error: BaseException) -> str | None:
    """Why a model's call failed on its input's dtype where the modules behind it hold several
    floating dtypes (``vae.decode`` of a VAE whose decoder is bfloat16 and encoder float32: the
    codes were cast to the first parameter's, the encoder's); None otherwise. ``role``: "decoder"
    or "encoder"."""
    if cast_to is None or not isinstance(error, RuntimeError | TypeError) or not _DTYPE_WORDS.search(str(error)):
        return None
    dtypes = list(dict.fromkeys(t.dtype for t in tensors_of(model) if t.is_floating_point()))
    if len(dtypes) < 2:
        return None
    listed = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
    return (f"{fn}: the {role}'s inputs were cast to {str(cast_to).removeprefix('torch.')}, its modules' first "
            f"floating parameter's, but they hold several dtypes ({listed}); pass the {role} module itself (e.g. "
            f"vae.{role} rather than a method of the whole model), or a function that casts its input")


def given_shape(shape, dtype: torch.dtype) -> str:
    """A model's input as its shape-error notes say it: ``[B, ...] dtype`` (e.g. "[20, 12] float32")."""
    return f"[{', '.join(map(str, shape))}] {str(dtype).removeprefix('torch.')}"


def tensors_of(model) -> Iterator[torch.Tensor]:
    """Parameters then buffers of the modules behind the callable (see :func:`modules_behind`;
    nothing for a callable that uses none)."""
    for module in modules_behind(model):
        yield from module.parameters()
        yield from module.buffers()


def model_device(model) -> torch.device | None:
    """The device of the model's first parameter or buffer, None when it has none."""
    for tensor in tensors_of(model):
        return tensor.device
    return None


def model_dtype(model) -> torch.dtype:
    """The dtype of the model's first floating parameter (torch's default otherwise)."""
    return parameter_dtype(model) or torch.get_default_dtype()


def parameter_dtype(model) -> torch.dtype | None:
    """The dtype of the model's first floating parameter or buffer; None when it has none (a
    plain function takes whatever it is given)."""
    for tensor in tensors_of(model):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def without_grad():
    """The grad mode every call of the user's models runs in (encode, the decoder's probe, the
    metrics' representations; the C++ executor's ``at::NoGradGuard`` is the same rule):
    ``torch.no_grad()``, not ``torch.inference_mode()``. What a model creates during the call --
    lazy layers' parameters (``nn.LazyLinear``), caches built in its forward (rotary tables,
    coordinate grids) -- were inference tensors under inference mode, and the training step that
    followed failed in backward ("Inference tensors cannot be saved for backward"). Decoding under
    no_grad measured as fast (MLP and deconv decoders of benchmarks/bench_sweep.py, on the CPU)."""
    return torch.no_grad()


# Every module some eval_mode of this process holds: id -> [module, holders, its mode before the
# first of them]. Shared, because sweeps, encodes and snapshots may run one module at once (in
# threads, or inside the decoder).
_IN_EVAL: dict[int, list] = {}
_IN_EVAL_LOCK = threading.RLock()  # (re-entrant: a module's train() override, run under it, may snapshot)


@contextlib.contextmanager
def eval_mode(model):
    """Runs the modules behind the callable (an nn.Module, the owner of a bound method such as
    ``vae.decode``, the modules a lambda uses: :func:`modules_behind`) in eval mode (no dropout,
    frozen batch norm), restoring each submodule's mode afterwards; a no-op for a callable that
    uses none. Calls that overlap share it: the first records each module's mode, the last to
    end restores it (with a mode restored by each, a sweep that ended while another thread's
    still decoded put the module back in training mode under it: dropout on, wrong outputs;
    and the other then left it in eval mode for good)."""
    owners = modules_behind(model)
    modules = {id(m): m for owner in owners for m in owner.modules()}
    with _IN_EVAL_LOCK:
        for key, module in modules.items():
            _IN_EVAL.setdefault(key, [module, 0, module.training])[1] += 1
    try:
        for owner in owners:
            owner.eval()  # (a module's own train() override runs, as with the module alone)
        yield
    finally:
        with _IN_EVAL_LOCK:
            released = []
            for key in modules:
                entry = _IN_EVAL[key]
                entry[1] -= 1
                if entry[1] == 0:
                    del _IN_EVAL[key]
                    released.append((entry[0], entry[2]))
            _restore_modes(released, still_held=[_IN_EVAL[key][0] for key in modules if key in _IN_EVAL])


def _restore_modes(released: list, still_held: list) -> None:
    """Puts each released module back in its mode (parents first) through its ``train()``, so
    that a module's own override runs both ways (loralib's merged LoRA weights were left merged
    when only the flags were set back, and training went on with them), then the modules another
    call still holds back in eval mode (flag only: their override ran when they were held)."""
    for module, mode in released:
        if module.training != mode:
            module.train(mode)
    for module in still_held:
        module.training = False


# Set by the command line on a module it ran from a file (--model vae.py:make), whose name in
# sys.modules is made unique by the file's folder: the module's identity is the file's name, so
# the same file copied to another folder (a node-local copy, another job's $TMPDIR) sweeps,
# resumes and shards as the same model.
MODULE_IDENTITY = "__latentsweep_identity__"


def fingerprint(model) -> str:
    """Identifies a model for resumable sweeps: its type (or a function's, a bound method's
    name) with its module's name (or MODULE_IDENTITY) and, for an nn.Module or its bound method,
    a hash of the module's parameters and buffers (so resuming with other weights is refused)."""
    kind = type(model)
    name = getattr(model, "__qualname__", None) or kind.__qualname__  # functions by name
    module = getattr(model, "__module__", kind.__module__)
    module = getattr(sys.modules.get(module), MODULE_IDENTITY, module)
    digest = hashlib.sha256(f"{module}.{name}".encode())
    for module in modules_behind(model):  # (a lambda's modules too: other weights, another sweep)
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor_digest(tensor).encode())
    return digest.hexdigest()[:32]


def tensor_digest(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's shape, dtype and values."""
    data = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{tuple(data.shape)}{data.dtype}".encode())
    # Flattened first: a 0-dim tensor (BatchNorm's num_batches_tracked) cannot be viewed as
    # bytes, so a decoder with batch norm could not sweep into a store (same bytes otherwise).
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()
