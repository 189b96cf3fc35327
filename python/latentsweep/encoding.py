"""Run an encoder over a data set and collect its outputs as a :class:`Posterior`."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch

from . import _checks, _progress
from ._cpu_memory import MEASURED_ROWS, memory_per_row, rows_within_memory
from ._modules import (eval_mode, first_linear_inputs, given_shape, mixed_dtypes_note, model_device, parameter_dtype,
                       shape_error, without_grad)
from ._random_state import preserve_rng_state
from .posterior import Posterior

# Dict keys tried, in order, for the parts of an encoder's output (compared lower-cased, without
# a "z_" prefix: Keras' z_mean/z_log_var, z_log_sigma). pythae's encoders return
# ModelOutput(embedding=mu, log_covariance=logvar) (a plain autoencoder's: embedding alone).
MEAN_KEYS = ("mu", "mean", "loc", "embedding")
LOGVAR_KEYS = ("logvar", "log_var", "logvariance", "log_variance", "log_covariance", "log_sigma_sq")
LOGSTD_KEYS = ("logstd", "log_std", "logsigma", "log_sigma", "logscale", "log_scale")
STD_KEYS = ("std", "sigma", "scale", "stddev")
VAR_KEYS = ("var", "variance")
POSTERIOR_KEYS = frozenset(MEAN_KEYS + LOGVAR_KEYS + LOGSTD_KEYS + STD_KEYS + VAR_KEYS)
# Dict keys tried, in order, for the inputs when a data loader yields dicts.
INPUT_KEYS = ("x", "input", "inputs", "data", "image", "images", "pixel_values", "features")

_FN = "latentsweep.encode"
_EXPECTED = (
    "expected a (mu, logvar) tuple, a dict (or an object's attributes) with 'mu'/'mean' and 'logvar'/'log_var', "
    "a torch.distributions.Normal (or a diagonal MultivariateNormal), a latentsweep.Posterior, or a single [B, D] "
    "tensor of codes"
)
# Who returned the output, as the messages about it say (the metrics name their representation).
_ENCODER = f"{_FN}: the encoder"

# On the CPU the encoder's memory an input (cpu_peak: torch's large blocks at their peak) is
# measured before the first batch of more inputs than this goes to it: a Stable-Diffusion VAE's
# encoder takes ~1 GB an input at 512 x 512, and 256 of them got the process killed by the kernel
# (nothing raised, nothing kept). Measured in a call of its own, on copies of the batch's first
# inputs, whose outputs are thrown away (and the random states restored after it): splitting the
# batch instead (2, then 254) changed the codes' last bits (an MLP's matrix product rounds by the
# rows it is given) and broke encoders that take one batch size. So every batch, and every code,
# is as it was; the cost is one more call, of two inputs (two, not one: see MEASURED_ROWS).
MEASURED_INPUTS = MEASURED_ROWS
# Nor is it measured before a batch whose inputs take fewer bytes than this (a table's rows):
# the encoder would need 65,536 times its inputs' bytes to fill half of an 8 GiB machine
# (Stable Diffusion's VAE encoder takes ~300 times its images', a transformer on token ids some
# thousands of times), and such encoders keep their calls as they were too, without that one.
MEASURED_FROM_BYTES = 64 << 10
# Set while that call runs: a wrapper that keeps the inputs it sees (the training integrations'
# _InputRecorder) leaves its inputs out.
MEASURING = _checks.ThreadFlag()


def encode(
    encoder,
    data,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: bool | None = None,
) -> Posterior:
    """Encodes ``data`` batch by batch and concatenates the results on the CPU.

    Args:
        encoder: a callable from a ``[B, ...]`` batch of inputs to one of (``[B, D]`` below, or
            ``[B, *latent_shape]`` for structured latents)
            - a ``(mu, logvar)`` tuple or list of ``[B, D]`` tensors;
            - a dict (or a namedtuple, or pythae's ``ModelOutput``) with the mean under
              ``mu``/``mean``/``loc``/``embedding`` and the log-variance under
              ``logvar``/``log_var``/``log_covariance`` (or the SD under ``std``/``sigma``/``scale``,
              its log under ``log_std``/``log_sigma``, or the variance under ``var``; keys compared
              lower-cased, a ``z_`` prefix ignored: ``z_mean``, ``z_log_var``); a tuple's second
              element is always read as a log-variance;
            - an object with those keys as attributes (diffusers' ``DiagonalGaussianDistribution``:
              ``.mean``, ``.logvar``), or a dict of one entry holding the posterior (diffusers'
              ``AutoencoderKL.encode`` output, ``latent_dist``), so ``encode(vae.encode, x)`` works;
            - a ``torch.distributions.Normal`` (or ``Independent(Normal)``) with ``[B, D]`` loc, or
              a ``MultivariateNormal`` / ``LowRankMultivariateNormal`` whose covariance is diagonal
              (correlated latents are refused: return their marginals as a dict if you want those);
            - a :class:`Posterior` of the batch (its means and log-variances);
            - a single ``[B, D]`` tensor: the codes of a plain autoencoder (``logvar=None``).
            An ``nn.Module``, a bound method of one (``vae.encode``), or a function or lambda
            that uses modules (``lambda x: vae(x)[1:]``) runs with those modules in eval mode
            (their modes are restored afterwards), so dropout and batch norm neither randomise
            the codes nor make them depend on the batching. The global random states (torch,
            numpy, Python) are restored afterwards too: an encoder that samples z, or a
            DataLoader drawing its seed, leaves a training loop's random stream as it was.
            Both are process-wide: call ``encode`` from the thread that trains the model (from
            another thread, it would switch the model to eval mode and rewind the random
            states under a training step running meanwhile), or give it a copy of the model.
        data: a ``[N, ...]`` tensor or numpy array (split into ``batch_size`` rows), a
            ``torch.utils.data.Dataset`` (wrapped in a DataLoader of ``batch_size``), or an
            iterable of batches such as a DataLoader (``batch_size`` is then the loader's own;
            one that draws in random order, drops its last rows or reads one process's share
            of the data (a DistributedSampler) is refused: row i of the codes must be input i).
            An ``IterableDataset`` is taken as yielding single inputs, batched here as torch's
            DataLoader batches them; one that yields batches (webdataset's ``.batched()``)
            goes in as ``iter(dataset)``.
            A batch that is a tuple/list gives its first element; a dict gives the entry under
            one of ``x``, ``input(s)``, ``data``, ``image(s)``, ``pixel_values``, ``features``.
            Floating data (tensors and numpy arrays, which default to float64) is cast to the
            dtype of the encoder's (or its module's) parameters.
        batch_size: rows per encoder call for tensors, arrays and datasets (int >= 1). On the
            CPU, before the first batch whose inputs take 64 KiB or more, the encoder is called
            once on copies of two of its inputs to measure its memory an input (torch's large
            blocks at their peak; that call's outputs are thrown away, the random states
            restored). Where ``batch_size`` inputs would take more than half the machine's memory
            by that measure (a Stable-Diffusion VAE's encoder takes ~1 GB an image at
            512 x 512), the data is encoded in calls of the largest power of two of inputs
            within it, with a warning (codes that differ at most in their last bits); a
            DataLoader's or an iterable's own batches are refused instead, with the size that fits.
        device: where batches go (default: the encoder's parameters' device; for an encoder
            without parameters, the device of a tensor ``data``; else the CPU).
        progress: a tqdm bar when True, or when None on a terminal or in a Jupyter notebook.

    Returns:
        a :class:`Posterior` with CPU tensors ``mu`` ``[N, D]`` and ``logvar`` ``[N, D]``
        (``None`` for a plain autoencoder). Structured codes ``[B, *latent_shape]`` (a spatial
        VAE's ``[B, C, H, W]``) are kept flat, ``D = prod(latent_shape)``, with their shape in
        the posterior's ``latent_shape`` (which :func:`latentsweep.traverse` gives the decoder).

    Raises:
        TypeError: unsupported data, batches or encoder outputs.
        ValueError: a bad ``batch_size``, empty data, NaN/Inf in an output (naming the batch
            and the rows), outputs whose shapes disagree with the batch or earlier batches, or
            a DataLoader's (or an iterable's) batch the encoder would take more than half the
            memory on (on the CPU, as measured above).
    """
    batch_size = _checks.integer(_FN, "batch_size", batch_size, low=1)
    show = _progress.wanted(progress, _FN)
    if not callable(encoder):
        raise TypeError(f"{_FN}: encoder must be callable, got {type(encoder).__name__}")
    device = _resolve_device(encoder, data, device)
    with preserve_rng_state():  # (a DataLoader draws its seed when iterated: in _batches)
        return _encode(encoder, data, batch_size, device, show)


def _encode(encoder, data, batch_size: int, device: torch.device, show: bool) -> Posterior:
    batches, total = _batches(data, batch_size)
    batched_here = isinstance(data, torch.utils.data.IterableDataset)
    # Floating inputs take the dtype of the encoder's parameters (float64 data into a float32
    # model would fail in its first layer); a parameterless callable gets the data as it is
    # (numpy's too: it was cast to torch's default dtype, tensors were not).
    input_dtype = parameter_dtype(encoder)
    batches = _within_memory(batches, encoder, data, batch_size, device, input_dtype)

    mus: list[torch.Tensor] = []
    logvars: list[torch.Tensor] = []
    rows = 0
    with _progress.bar(show, total=total, unit="input", desc="encode") as bar, eval_mode(encoder), \
            without_grad():
        for index, batch in enumerate(batches):
            batch = _to_encoder(batch, device, input_dtype, index)
            mu, logvar = _split_output(_call_encoder(encoder, batch, input_dtype, index), index)
            _check_batch(mu, logvar, index, rows, batch.shape[0], mus, logvars)
            if index == 0 and batched_here and mu.dim() > 2:
                _checks.warn(
                    f"{_FN}: data is an IterableDataset, batched here {batch.shape[0]} items at a time, and the "
                    f"encoder returned codes of shape {list(mu.shape[1:])} per item; if the dataset yields batches "
                    "rather than single inputs (webdataset's .batched()), pass iter(dataset)", UserWarning)
            # Copies, also on the CPU: an encoder may return a view of a buffer it overwrites
            # in its next call.
            mus.append(mu.detach().to("cpu", copy=True))
            logvars.append(None if logvar is None else logvar.detach().to("cpu", copy=True))
            rows += batch.shape[0]
            bar.update(batch.shape[0])
    if rows == 0:
        raise ValueError(f"{_FN}: data is empty (no batches, or no rows)")
    mu = torch.cat(mus)
    logvar = None if logvars[0] is None else torch.cat(logvars)
    return Posterior(mu, logvar)


def _within_memory(batches, encoder, data, batch_size: int, device: torch.device, input_dtype: torch.dtype | None):
    """The batches as the encoder is called on them: as they come, unless the encoder (measured
    on the CPU, :func:`_memory_per_input`) would take more than the memory's share on one
    (:func:`._checks.memory_shortfall`). Data that encode batches itself (a tensor, an array, a
    Dataset) then goes in calls of the largest power of two of inputs within it, with a warning;
    the batches of a DataLoader or an iterable, which are the caller's, are refused."""
    batched_here = isinstance(data, (torch.Tensor, np.ndarray)) or (
        isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.utils.data.DataLoader))
    per_input, measured, limit = None, False, None  # limit: inputs a call, once a batch did not fit
    for index, batch in enumerate(batches):
        if not measured and batch.shape[0] > MEASURED_INPUTS and \
                batch.numel() * batch.element_size() >= MEASURED_FROM_BYTES:
            measured, per_input = True, _memory_per_input(encoder, batch, device, input_dtype, index)
        fitting = rows_within_memory(per_input, device, batch.shape[0]) if limit is None else None
        if fitting is not None:
            limit, shortfall = fitting
            took = f"the encoder took {per_input / 2**20:,.1f} MiB an input on the CPU, measured on {MEASURED_INPUTS}"
            if not batched_here:
                if isinstance(data, torch.utils.data.DataLoader) and data.batch_size is not None:
                    what, advice = (f"the DataLoader's batch_size={data.batch_size} ({took})",
                                    f"pass a DataLoader of batch_size={limit} or less, or its dataset (encode "
                                    "batches a Dataset itself, within the memory)")
                else:
                    what, advice = (f"batch {index} of the data ({batch.shape[0]:,} inputs; {took})",
                                    f"pass batches of {limit} inputs or less, or the data as a tensor, an array or a "
                                    "Dataset (encode batches those itself, within the memory)")
                _checks.fits_in_memory(_FN, what, int(batch.shape[0] * per_input), device, advice)  # (raises)
            whole = f"{batch.shape[0]:,} inputs a call: the whole data; " if batch.shape[0] < batch_size else ""
            _checks.warn(f"{_FN}: batch_size={batch_size} ({whole}{took}) {shortfall}; encoding {limit} "
                         f"input{'s' * (limit > 1)} a call instead (codes that differ at most in their last bits, "
                         f"where the encoder's arithmetic depends on the batch); pass batch_size={limit} or less to "
                         "choose the size yourself", _checks.ProcessWarning)
        yield from batch.split(limit) if limit is not None and batch.shape[0] > limit else (batch,)


def _memory_per_input(encoder, batch: torch.Tensor, device: torch.device, input_dtype: torch.dtype | None,
                      index: int) -> float | None:
    """The encoder's CPU memory an input, measured on MEASURED_INPUTS copies of ``batch``'s first
    inputs (:func:`._cpu_memory.memory_per_row`); None on another device."""
    if device.type != "cpu":
        return None
    inputs = _to_encoder(batch[:MEASURED_INPUTS], device, input_dtype, index).clone()  # (it may write into them)
    with MEASURING():
        return memory_per_row(encoder, inputs)


def _resolve_device(encoder, data, device) -> torch.device:
    own = model_device(encoder)
    if own is not None and own.type == "meta":
        raise ValueError(f"{_FN}: the encoder's parameters are on the meta device (shapes without values): load "
                         "its weights first (e.g. model.to_empty(device='cpu') and load_state_dict)")
    if device is not None:
        device = _checks.device(_FN, device)
    elif own is not None:
        device = own
    else:
        device = data.device if isinstance(data, torch.Tensor) else torch.device("cpu")
    return _checks.usable_device(_FN, device)


def _to_encoder(batch: torch.Tensor, device: torch.device, input_dtype: torch.dtype | None, index: int) -> torch.Tensor:
    """A batch on the encoder's device, floating inputs in its parameters' dtype; a cast that
    overflows that dtype (1e6 into float16) is named here, not as NaN/Inf codes."""
    if batch.device.type == "meta":
        raise ValueError(f"{_FN}: batch {index} of the data is on the meta device, which holds no values")
    cast = input_dtype if input_dtype and batch.is_floating_point() and batch.dtype != input_dtype else None
    moved = batch.to(device=device, dtype=cast)
    if cast is not None and not bool(torch.isfinite(moved).all()) and bool(torch.isfinite(batch).all()):
        raise ValueError(f"{_FN}: batch {index} of the data ({batch.dtype}) holds values beyond the range of the "
                         f"encoder's {cast} (up to {torch.finfo(cast).max:g}); scale the data, or run the encoder "
                         f"in a wider dtype")
    return moved


def _call_encoder(encoder, batch: torch.Tensor, input_dtype: torch.dtype | None, index: int):
    """``encoder(batch)``; when it fails on integer or boolean inputs while its parameters are
    floating point, the error gets a note saying so (the cause is usually uint8 images or int64
    labels-as-data, not the model); when it fails on the inputs' shape, a note saying what it was
    given."""
    try:
        return encoder(batch)
    except Exception as error:
        mixed = mixed_dtypes_note(_FN, "encoder", encoder, input_dtype, error) if batch.is_floating_point() else None
        if mixed is not None:
            error.add_note(mixed)
        elif input_dtype is not None and not batch.is_floating_point() and not batch.is_complex():
            error.add_note(
                f"{_FN}: data is {batch.dtype} while the encoder's parameters are {input_dtype}; pass floating-point "
                "data (e.g. data.float() / 255 for uint8 images) unless the encoder takes integers (an Embedding)"
            )
        elif shape_error(error) and not str(error).startswith(_FN):
            error.add_note(_input_shape_note(encoder, batch, index))
        raise


def _input_shape_note(encoder, batch: torch.Tensor, index: int) -> str:
    """What the encoder was given when its own code failed on the inputs' shape (torch said only
    "mat1 and mat2 shapes cannot be multiplied (20x12 and 10x4)", naming no argument), and for a
    first Linear layer what it takes."""
    per_input, shape = math.prod(batch.shape[1:]), tuple(batch.shape[1:])
    note = (f"{_FN}: the encoder raised this on batch {index} of the data, given inputs "
            f"{given_shape(batch.shape, batch.dtype)}")
    width = first_linear_inputs(encoder)
    if width is not None and width == per_input and batch.dim() > 2:
        return (f"{note}; its first Linear takes {width} inputs, each input's {per_input} values in shape {shape}: "
                "pass them flat (data.flatten(1)), or put nn.Flatten() before that Linear")
    if width is not None and width != per_input:
        return (f"{note}; its first Linear takes {width} inputs, but each input holds {per_input} values: is data "
                "what the model was trained on (the same features, in the same columns)?")
    return note


def _batches(data, batch_size: int) -> tuple[Iterable[torch.Tensor], int | None]:
    """The input batches as tensors, and the number of rows when known (for the progress bar)."""
    if isinstance(data, torch.Tensor):
        if data.dim() == 0:
            raise ValueError(f"{_FN}: data must have a leading batch dimension, got a 0-d tensor")
        return data.split(batch_size) if data.shape[0] else (), data.shape[0]  # (split yields one empty batch)
    if isinstance(data, np.ndarray):
        if data.ndim == 0:
            raise ValueError(f"{_FN}: data must have a leading batch dimension, got a 0-d array")
        # Convert batch by batch: no full copy of a large (maybe memory-mapped) array.
        chunks = (data[i : i + batch_size] for i in range(0, data.shape[0], batch_size))
        return (array_as_tensor(chunk, None) for chunk in chunks), data.shape[0]
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.utils.data.DataLoader):
        data = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    if isinstance(data, torch.utils.data.DataLoader):
        check_loader_order(data)
    if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Iterable):
        raise TypeError(
            f"{_FN}: data must be a tensor, a numpy array, a Dataset or an iterable of batches "
            f"(e.g. a DataLoader), got {type(data).__name__}"
        )
    total = None
    dataset = getattr(data, "dataset", None)
    with contextlib.suppress(TypeError):
        total = len(dataset) if dataset is not None else None
    return (_batch_inputs(batch, index) for index, batch in enumerate(data)), total


_RANDOM_SAMPLERS = (torch.utils.data.RandomSampler, torch.utils.data.SubsetRandomSampler,
                    torch.utils.data.WeightedRandomSampler)


def check_loader_order(loader: torch.utils.data.DataLoader, fn: str = _FN) -> None:
    """Row i of the codes must be item i of the loader's dataset, and every item must be there:
    a loader that draws in random order, reads one process's share or drops its last rows is
    refused (they gave codes reordered, padded with repeats, or short, without a word). ``fn``
    names the caller (the training integrations check their fixed sample when set up)."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    samplers = [s for s in (getattr(loader, "sampler", None), getattr(batch_sampler, "sampler", None)) if s is not None]
    why = None
    if any(isinstance(sampler, _RANDOM_SAMPLERS) for sampler in samplers):
        why = "draws in random order (shuffle=True or a random sampler)"
    for sampler in samplers:
        if isinstance(sampler, torch.utils.data.distributed.DistributedSampler):
            if sampler.num_replicas > 1:
                why = (f"reads one process's share of the data (a DistributedSampler with num_replicas="
                       f"{sampler.num_replicas})")
            elif sampler.shuffle:
                why = "draws in random order (a DistributedSampler with shuffle=True)"
    if why is None and (getattr(loader, "drop_last", False) or getattr(batch_sampler, "drop_last", False)):
        why = "drops its last rows (drop_last=True)"
    if why is not None:
        raise ValueError(
            f"{fn}: data is a DataLoader that {why}: row i of the codes would not be item i of its dataset, nor "
            "match labels taken from it; pass the dataset itself (or a DataLoader with shuffle=False, "
            "drop_last=False and no DistributedSampler)"
        )


def array_as_tensor(array: np.ndarray, index: int | None) -> torch.Tensor:
    """A batch of a numpy array as a tensor of its dtype (cast, like a tensor's, in encode)."""
    if array.dtype == object or array.dtype.kind in "USV":
        where = "data" if index is None else f"batch {index}"
        raise TypeError(f"{_FN}: {where} is a numpy array of {array.dtype}, which has no tensor equivalent")
    array = np.ascontiguousarray(array)
    if not array.dtype.isnative:  # (big-endian data: torch takes the machine's byte order only)
        array = array.astype(array.dtype.newbyteorder("="))
    # A read-only array (np.load(mmap_mode="r")) is copied, batch by batch: torch warns about
    # tensors sharing memory it may not write.
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _batch_inputs(batch, index: int) -> torch.Tensor:
    """The inputs of one loader batch: the batch itself, its first element, or a dict entry."""
    if isinstance(batch, Mapping):
        lowered = {str(k).lower(): k for k in batch}
        key = next((lowered[k] for k in INPUT_KEYS if k in lowered), None)
        if key is None:
            raise TypeError(
                f"{_FN}: batch {index} is a dict without an input key; expected one of "
                f"{list(INPUT_KEYS)}, got keys {list(batch)}"
            )
        batch = batch[key]
    elif isinstance(batch, (tuple, list)):
        if not batch:
            raise TypeError(f"{_FN}: batch {index} is an empty {type(batch).__name__}")
        batch = batch[0]
    if isinstance(batch, np.ndarray):
        batch = array_as_tensor(batch, index)
    if not isinstance(batch, torch.Tensor) or batch.dim() == 0:
        what = "a 0-d tensor" if isinstance(batch, torch.Tensor) else type(batch).__name__
        raise TypeError(
            f"{_FN}: batch {index} must be (or start with) a [B, ...] tensor or numpy array, got {what}"
        )
    return batch


def _split_output(output, index: int, subject: str = _ENCODER) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mu, logvar or None) from whatever the encoder returned for batch ``index``; ``subject``
    names who returned it in the errors."""
    if isinstance(output, Posterior):  # the library's own (in the codes' own shape)
        shape = (output.num_inputs, *output.latent_shape)
        return output.mu.view(shape), None if output.logvar is None else output.logvar.view(shape)
    distributions = torch.distributions
    if isinstance(output, distributions.Independent) and isinstance(output.base_dist, distributions.Normal):
        output = output.base_dist
    if isinstance(output, distributions.Normal):
        return output.loc, 2.0 * torch.log(output.scale)
    if isinstance(output, (distributions.MultivariateNormal, distributions.LowRankMultivariateNormal)):
        return _diagonal_gaussian(output, index, subject)
    if isinstance(output, torch.Tensor):
        return output, None
    if isinstance(output, tuple) and hasattr(output, "_asdict"):  # a namedtuple: use its names
        fields = output._asdict()
        if any(_key(k) in MEAN_KEYS for k in fields):
            output = fields
    if isinstance(output, Mapping) and len(output) == 1:
        # One entry that is a posterior holds the posterior: diffusers' AutoencoderKL returns
        # AutoencoderKLOutput(latent_dist=DiagonalGaussianDistribution).
        (inner,) = output.values()
        if isinstance(inner, (Posterior, distributions.Distribution)) or _mean_attributes(inner) is not None:
            return _split_output(inner, index, subject)
    if isinstance(output, Mapping):
        return _split_mapping(output, index, subject)
    if (attributes := _mean_attributes(output)) is not None:
        return _split_mapping(attributes, index, subject)
    if isinstance(output, (tuple, list)):
        if len(output) == 2 and all(isinstance(t, torch.Tensor) for t in output):
            return output[0], output[1]
        kinds = ", ".join(type(t).__name__ for t in output)
        hint = ""
        if len(output) == 3:
            # A method of the model, not a plain lambda: its module is found, so it runs in eval
            # mode and in the module's dtype (a lambda's batch norm would update its statistics).
            hint = (" (for an encoder returning (z, mu, logvar), pass types.MethodType(lambda self, x: self(x)[1:], "
                    "model): a method of the model, which encode runs in eval mode)")
        elif len(output) == 4:  # AntixK's PyTorch-VAE: forward(x) -> [recons, input, mu, log_var]
            hint = (" (a whole VAE whose forward returns [recons, input, mu, log_var], as in AntixK's PyTorch-VAE: "
                    "pass its encode method, vae.encode)")
        raise TypeError(
            f"{subject} returned a {type(output).__name__} of {len(output)} items "
            f"({kinds}) for batch {index}; {_EXPECTED}{hint}"
        )
    raise TypeError(f"{subject} returned a {type(output).__name__} for batch {index}; {_EXPECTED}")


def _diagonal_gaussian(output, index: int, subject: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, logvar) of a multivariate normal whose covariance is diagonal (a ``scale_tril``
    with nothing below its diagonal, a low-rank one with a zero factor): the latents are then
    independent, one mean and one SD each, as the Normal's. Correlated latents are refused: their
    marginals alone would traverse a posterior other than the encoder's."""
    if isinstance(output, torch.distributions.MultivariateNormal):
        tril = output.scale_tril
        diagonal = bool((torch.tril(tril, diagonal=-1) == 0).all())
        logvar = 2.0 * torch.log(torch.diagonal(tril, dim1=-2, dim2=-1))
    else:
        diagonal = bool((output.cov_factor == 0).all())
        logvar = torch.log(output.cov_diag)
    if not diagonal:
        raise ValueError(
            f"{subject} returned a {type(output).__name__} for batch {index} whose covariance is not diagonal "
            "(correlated latents); latentsweep reads one mean and one SD per latent: to traverse the marginals, "
            "dropping the correlations, return {'mu': d.mean, 'var': d.variance}"
        )
    return output.loc, logvar.expand_as(output.loc)


def _mean_attributes(output) -> dict | None:
    """The attributes of an object that holds a mean under one of MEAN_KEYS as a tensor
    attribute (diffusers' DiagonalGaussianDistribution: .mean, .logvar, .std, .var), read as
    a dict's keys; None for anything else (containers, tensors, numbers). Instance attributes,
    dataclass fields, and properties under the posterior's names (a wrapper whose ``.mu`` is a
    slice of one parameter tensor)."""
    # (a Distribution other than Normal is refused: Laplace's loc and scale are not a Gaussian's)
    if isinstance(output, (Mapping, tuple, list, torch.Tensor, torch.distributions.Distribution)):
        return None
    if dataclasses.is_dataclass(output) and not isinstance(output, type):  # (slots=True ones have no __dict__)
        attributes = {field.name: getattr(output, field.name) for field in dataclasses.fields(output)}
    else:
        attributes = dict(getattr(output, "__dict__", None) or {})
    for name in dir(type(output)):  # only the posterior's names: other properties may be costly
        if _key(name) in POSTERIOR_KEYS and name not in attributes and \
                isinstance(getattr(type(output), name, None), (property, functools.cached_property)):
            attributes[name] = getattr(output, name)
    if any(_key(k) in MEAN_KEYS and isinstance(v, torch.Tensor) for k, v in attributes.items()):
        return attributes
    return None


def _key(name) -> str:
    """A dict key as the key lists above hold it."""
    return str(name).lower().removeprefix("z_")


def _split_mapping(output: Mapping, index: int, subject: str = _ENCODER) -> tuple[torch.Tensor, torch.Tensor | None]:
    named = {}  # key as the lists hold it -> the output's own key
    for k in output:
        named.setdefault(_key(k), k)  # (the first of 'mu' and 'z_mu', as the keys are tried in order)

    def entry(keys):
        """The output's own key of the first of ``keys`` it has, or None."""
        return next((named[k] for k in keys if k in named), None)

    def first(keys):
        return None if (key := entry(keys)) is None else output[key]

    mu = first(MEAN_KEYS)
    if mu is None:
        raise TypeError(
            f"{subject} returned a dict with keys {list(output)} for batch {index}; "
            f"expected the mean under one of {list(MEAN_KEYS)}{_PREFIX_NOTE}"
        )
    if (logvar := first(LOGVAR_KEYS)) is not None:
        return mu, logvar
    if (logstd := first(LOGSTD_KEYS)) is not None:
        return mu, 2.0 * _as_output_tensor(logstd, "log SD", index, subject)
    if (key := entry(STD_KEYS)) is not None:
        return mu, 2.0 * torch.log(_positive(key, output[key], STD_KEYS, "SD", index, subject))
    if (key := entry(VAR_KEYS)) is not None:
        return mu, torch.log(_positive(key, output[key], VAR_KEYS, "variance", index, subject))
    others = [k for k, v in output.items() if isinstance(v, torch.Tensor) and _key(k) not in MEAN_KEYS]
    if others:
        # A mean beside other tensors most likely means a log-variance under a name we don't
        # know; guessing "plain autoencoder" would silently drop it.
        raise TypeError(
            f"{subject} returned a dict with a mean but no log-variance for batch {index} "
            f"(keys {list(output)}); expected it under one of {list(LOGVAR_KEYS)}, the SD under one of "
            f"{list(STD_KEYS)}, its log under one of {list(LOGSTD_KEYS)}, or the variance under one of {list(VAR_KEYS)}"
            f"{_PREFIX_NOTE}"
        )
    return mu, None


_PREFIX_NOTE = " (compared lower-cased, a 'z_' prefix ignored)"


def _positive(key, value, keys: tuple[str, ...], what: str, index: int, subject: str) -> torch.Tensor:
    """An SD or variance, refused where it is not > 0: its log was reported as "the encoder's
    logvar has NaN/Inf", for a head that is in fact unconstrained (a log-SD or log-variance
    under the name 'sigma') or a ReLU'd one (zeros)."""
    value = _as_output_tensor(value, what, index, subject)
    if value.is_floating_point() and bool((value <= 0).any()):
        raise ValueError(
            f"{subject}'s {what} (its entry {key!r}) is <= 0 for batch {index} (smallest "
            f"{float(value.min()):.4g}); latentsweep takes the entries {list(keys)} as the {what} itself, which "
            f"must be > 0: if the head returns its log, return it under 'log_sigma' (a log SD) or 'logvar' (a "
            f"log-variance) instead, else make it positive (e.g. softplus)"
        )
    return value


def _as_output_tensor(value, what: str, index: int, subject: str = _ENCODER) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{subject}'s {what} for batch {index} must be a tensor, got {type(value).__name__}")
    return value


# Advice for codes of the wrong shape (the command line words it for its own options).
ONE_DIMENSIONAL_HINT = (" (a 1-D output: was the batch one unbatched input? a DataLoader with batch_size=None, or a "
                        "list of single inputs, gives those; batch them)")


def _check_batch(mu, logvar, index: int, start: int, batch_rows: int, mus: list, logvars: list) -> None:
    """Shapes and dtypes against the batch and earlier batches; NaN/Inf with their rows."""
    parts = [("codes", mu)] if logvar is None else [("mu", mu), ("logvar", logvar)]
    for name, tensor in parts:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{_FN}: the encoder's {name} for batch {index} must be a tensor, got {type(tensor).__name__}")
        if not tensor.is_floating_point():
            raise TypeError(f"{_FN}: the encoder's {name} for batch {index} must be floating point, got {tensor.dtype}")
        if tensor.device.type == "meta":
            raise ValueError(f"{_FN}: the encoder's {name} for batch {index} {'are' if name == 'codes' else 'is'} on "
                             "the meta device, which holds no values (shapes only)")
        if tensor.dim() < 2 or tensor.shape[0] != batch_rows:
            hint = ONE_DIMENSIONAL_HINT if tensor.dim() == 1 else ""  # [B] for B rows, or one unbatched input's [D]
            raise ValueError(
                f"{_FN}: the encoder's {name} for batch {index} must be [B={batch_rows}, D] (or "
                f"[B={batch_rows}, *latent_shape]), got shape {tuple(tensor.shape)}{hint}"
            )
    if logvar is not None and logvar.shape != mu.shape:
        raise ValueError(
            f"{_FN}: the encoder's logvar for batch {index} has shape {tuple(logvar.shape)}, "
            f"but mu has {tuple(mu.shape)}"
        )
    if mus:
        for name, tensor, first in (("codes" if logvar is None else "mu", mu, mus[0]), ("logvar", logvar, logvars[0])):
            if tensor is not None and first is not None and tensor.dtype != first.dtype:  # (torch.cat would promote)
                raise ValueError(f"{_FN}: the encoder returned {name} of {tensor.dtype} for batch {index} but of "
                                 f"{first.dtype} for batch 0; it must return one dtype for every batch")
        if mu.shape[1:] != mus[0].shape[1:]:
            now, before = (f"D={mu.shape[1]} latents", f"D={mus[0].shape[1]}") if mu.dim() == mus[0].dim() == 2 else \
                (f"codes of shape {list(mu.shape[1:])}", f"{list(mus[0].shape[1:])}")
            raise ValueError(f"{_FN}: the encoder returned {now} for batch {index} but {before} for batch 0")
        if (logvar is None) != (logvars[0] is None):
            now, before = ("no", "a") if logvar is None else ("a", "no")
            raise ValueError(f"{_FN}: the encoder returned {now} logvar for batch {index} but {before} logvar for batch 0")
    for name, tensor in parts:
        bad = _checks.rows_nonfinite(tensor)
        if bad is not None:
            rows = (bad.nonzero()[:, 0] + start).tolist()
            shown = _checks.listed(rows)
            raise ValueError(
                f"{_FN}: the encoder's {name} has NaN/Inf for batch {index}, in {len(rows)} "
                f"row(s) of the data: {shown}"
            )
