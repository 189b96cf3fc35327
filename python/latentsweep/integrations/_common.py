"""What the training integrations compute and log, in one place: the options, one snapshot of
the latent space (encode -> diagnose -> traverse the ranked latents -> pictures, scalars, text),
the guard that keeps the training run's random numbers untouched, and the ways a snapshot is
written (a TensorBoard ``SummaryWriter``, or PNG and Markdown files in a folder).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import numbers
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch

from .. import _checks
from .._modules import eval_mode, model_device, model_dtype, modules_behind
from .._random_state import preserve_rng_state
from ..decoding import decoder_call
from ..diagnosis import FLAG_CODES, MIN_INPUTS, Diagnosis, diagnose, dims_label
from ..encoding import MEASURING, array_as_tensor, check_loader_order, encode
from ..latent_shape import latent_label
from ..modes import MODE_TABLE
from ..plots import kl_bars, response_curves, traversal_grid
from ..plots._common import shown_tile_pixels
from ..plots._images import image_shape_of, is_image_output
from ..result import TraversalResult
from ..sweep import traverse

TEXT_KEY = "diagnosis"


def require(module: str, extra: str, *, alternatives: tuple[str, ...] = ()):
    """Imports ``module`` (or the first importable of ``alternatives``); otherwise an ImportError
    that says which extra installs it."""
    for name in (module, *alternatives):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(
        f"latentsweep.integrations.{extra} needs the {module.split('.')[0]!r} package: "
        f"pip install 'latentsweep[{extra}]'"
    )


@dataclass(frozen=True)
class SnapshotOptions:
    """What a snapshot computes and draws (see :func:`take_snapshot`); checked once, when an
    integration is set up, so a bad option fails before training rather than epochs into it."""

    steps: int = 11
    mode: str = "auto"
    max_dims: int | None = None
    anchors: int = 8
    span: float = 2.0
    prior_std: float = 1.0
    grid_anchors: int = 1
    image_shape: tuple[int, ...] | None = None
    batch_size: int = 256
    prefix: str = "latentsweep"
    output: object = None
    output_transform: object = None

    @classmethod
    def checked(cls, fn: str, **options) -> "SnapshotOptions":
        o = cls(**options)
        mode = o.mode
        if not (isinstance(mode, str) and (mode == "auto" or mode in MODE_TABLE)):
            choices = ", ".join(map(repr, ("auto", *MODE_TABLE)))
            raise ValueError(f"{fn}: mode must be one of {choices}, got {mode!r}")
        max_dims = None if o.max_dims is None else _checks.integer(fn, "max_dims", o.max_dims, low=1)
        anchors = _checks.integer(fn, "anchors", o.anchors, low=1)
        if not isinstance(o.prefix, str):
            raise TypeError(f"{fn}: prefix must be a str, got {type(o.prefix).__name__}")
        image_shape = o.image_shape
        if image_shape is not None:
            if isinstance(image_shape, (str, bytes)) or not isinstance(image_shape, Iterable):
                raise TypeError(f"{fn}: image_shape must be a tuple (H, W) or (C, H, W), got {image_shape!r}")
            image_shape = tuple(image_shape)
            if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in image_shape):
                raise TypeError(f"{fn}: image_shape must hold ints, got {image_shape!r}")
            image_shape_of(fn, image_shape, image_shape)  # its form now; its size against the outputs later
        # traverse's own checks of output= and output_transform= (on a stand-in decoder): said
        # now, not when the first snapshot decodes, epochs into training.
        decoder_call(fn, _no_decoder, output=o.output, output_transform=o.output_transform)
        return cls(
            steps=_checks.integer(fn, "steps", o.steps, low=1),
            mode=mode,
            max_dims=max_dims,
            anchors=anchors,
            span=_checks.positive_float(fn, "span", o.span),
            prior_std=_checks.prior_std(fn, o.prior_std),  # (diagnose's range, said now, not epochs into training)
            grid_anchors=_checks.integer(fn, "grid_anchors", o.grid_anchors, low=0, high=anchors),
            image_shape=image_shape,
            batch_size=_checks.integer(fn, "batch_size", o.batch_size, low=1),
            prefix=o.prefix.strip("/"),
            output=o.output,
            output_transform=o.output_transform,
        )

    def tag(self, key: str) -> str:
        """The logged name of ``key``: ``"<prefix>/<key>"``."""
        return f"{self.prefix}/{key}" if self.prefix else key


def _no_decoder(codes: torch.Tensor) -> torch.Tensor:
    """The decoder :meth:`SnapshotOptions.checked` checks ``output=`` and ``output_transform=`` with
    (never called: the real one may be known only when training starts)."""
    raise AssertionError("SnapshotOptions' stand-in decoder is never called")


def _refuse_too_few(fn: str, got: str) -> None:
    raise ValueError(f"{fn}: data must hold at least {MIN_INPUTS} inputs, got {got}: the diagnosis measures how each "
                     "latent's mean varies over the inputs (a few hundred is typical)")


def check_data(fn: str, data) -> None:
    """The data kinds :func:`latentsweep.encode` takes (its own checks run on every snapshot)."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        if isinstance(data, torch.Tensor):  # (a meta or sparse tensor failed in torch's copy, naming nothing)
            _checks.dense_values(fn, "data", data)
        if data.ndim == 0 or data.shape[0] == 0:
            raise ValueError(f"{fn}: data must be a non-empty [N, ...] tensor or array, got shape {tuple(data.shape)}")
        if data.shape[0] < MIN_INPUTS:  # (said now: the callback failed in diagnose, at the end of the first epoch)
            _refuse_too_few(fn, f"shape {tuple(data.shape)}")
        if isinstance(data, torch.Tensor) and data.is_complex():
            refuse_complex(fn, data.dtype)
        if isinstance(data, np.ndarray) and data.dtype.kind == "c":
            refuse_complex(fn, f"a numpy array of dtype {data.dtype}")
        if isinstance(data, np.ndarray) and data.dtype.kind not in "biuf":
            raise TypeError(f"{fn}: data must be a numeric array, got dtype {data.dtype}")
        # (said now, naming the data: the first snapshot blamed the encoder, "mu has NaN/Inf"; an
        # array as encode reads it, big-endian too)
        if isinstance(data, torch.Tensor) or data.dtype.kind == "f":
            _checks.finite(fn, "data", array_as_tensor(data, None) if isinstance(data, np.ndarray) else data)
        return
    if isinstance(data, torch.utils.data.DataLoader):  # (said now, not at the end of the first epoch)
        check_loader_order(data, fn)
    if isinstance(data, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        dataset = getattr(data, "dataset", data)
        size = None
        with contextlib.suppress(TypeError, NotImplementedError):  # (an IterableDataset may have no length)
            size = len(dataset)
        if size is not None and not isinstance(dataset, torch.utils.data.IterableDataset) and size < MIN_INPUTS:
            _refuse_too_few(fn, f"a {type(dataset).__name__} of {size}")
    if isinstance(data, torch.utils.data.Dataset):
        return
    if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Iterable):
        raise TypeError(
            f"{fn}: data must be a tensor, a numpy array, a Dataset or a DataLoader (a fixed "
            f"sample of inputs), got {type(data).__name__}"
        )
    if isinstance(data, Iterator):  # (never call iter() here: a DataLoader's draws a seed from the RNG)
        raise TypeError(
            f"{fn}: data is a one-shot iterator ({type(data).__name__}), which would be empty "
            "after the first snapshot; pass a tensor, a Dataset or a DataLoader"
        )


def refuse_complex(fn: str, got) -> None:
    """Complex inputs are refused (integers and bools may feed an Embedding; a complex batch only
    fails in the encoder's first layer, with torch's dtype error that names nothing)."""
    raise TypeError(f"{fn}: data must hold real numbers (complex inputs are not supported), got {got}")


@dataclass
class TraversalSnapshot:
    """One look at the latent space during training. A = anchors, K = traversed latents,
    S = steps, D = latent size.

    Attributes:
        step: the training step it belongs to.
        diagnosis: :func:`latentsweep.diagnose` of the encoded data.
        result: the :class:`TraversalResult` of the ranked latents from all A anchors: values,
            effect, ranking, sensitivity (``outputs`` is None: only the drawn anchors' outputs
            are decoded and kept, for the pictures).
        scalars: name -> number (unprefixed): ``active_units``, ``mean_kl`` (mean over the inputs
            of KL(q(z|x) || p(z)), summed over the latents, nats), ``collapsed_latents``,
            ``kl/z<d>`` per latent (VAEs only); ``flags/<code>`` (number of latents flagged, for
            every flag code); ``effect/z<d>`` per traversed latent (``result.dim_effect``).
        images: name -> ``[H, W, 3]`` uint8 RGB: ``traversal/anchor<a>`` (image outputs) or
            ``response_curves`` (tabular outputs), and ``kl`` (VAEs).
        text: Markdown: the diagnosis' summary, its flags and what to do about them.
        seconds: wall time of the snapshot, drawing included.
    """

    step: int
    diagnosis: Diagnosis
    result: TraversalResult
    scalars: dict[str, float]
    images: dict[str, np.ndarray]
    text: str
    seconds: float


def take_snapshot(
    encoder,
    decoder,
    data,
    options: SnapshotOptions,
    *,
    step: int,
    fn: str,
    device: torch.device | None = None,
    modules: Iterable[torch.nn.Module] | None = None,
) -> TraversalSnapshot:
    """Encodes ``data``, diagnoses it, traverses the latents ranked by KL (variance of the codes
    for an autoencoder; the first ``max_dims``) from the first ``anchors`` inputs in the
    diagnosis' recommended mode (or ``options.mode``), and draws the pictures.

    Runs without gradients and without autocast (in the model's dtype), with every module
    involved (the modules behind the encoder and decoder, see
    :func:`latentsweep._modules.modules_behind`, and ``modules``) in eval mode,
    restoring each submodule's mode afterwards, and restores every global random state it could
    touch, so a training run goes on exactly as without it. With no module found and
    ``modules=None``, a warning (pass ``modules=()`` for a model without any).
    ``fn`` names the public caller in error messages.
    """
    started = time.perf_counter()
    for role, part in (("encoder", encoder), ("decoder", decoder)):  # (before encoding; named for the caller)
        if not callable(part):
            raise TypeError(f"{fn}: {role} must be callable, got {type(part).__name__}")
    owners = _unique([*(m for f in (encoder, decoder) for m in modules_behind(f)), *(modules or ())])
    if not owners and modules is None:
        warnings.warn(
            f"{fn}: found no nn.Module behind the encoder or the decoder, so nothing is put in eval mode "
            "(BatchNorm statistics would change, dropout would be on): pass modules=[model] (or modules=() "
            "for a model without modules)",
            stacklevel=3,
        )
    # Each part runs on its own device (a decoder on another GPU than the encoder's, or than the
    # LightningModule's, got the encoder's codes there); ``device`` overrides both; a part without
    # parameters goes where the other modules are.
    fallback = next((d for d in map(model_device, owners) if d is not None), None)
    encoder_device, decoder_device = (device or model_device(part) or fallback for part in (encoder, decoder))
    if isinstance(data, np.ndarray):  # encode() would cast it to the recorder's dtype, not the model's
        data = torch.from_numpy(np.ascontiguousarray(data))
        if data.is_floating_point():
            data = data.to(model_dtype(owners[0]) if owners else torch.get_default_dtype())
    recorder = _InputRecorder(encoder, options.anchors, fn)
    with preserve_rng_state(), torch.no_grad(), contextlib.ExitStack() as modes:
        for module in owners:
            modes.enter_context(eval_mode(module))
        # Called inside a training loop's autocast block, the snapshot ran in bfloat16/float16: other
        # flags and KLs than the same model outside it (and than Lightning, whose callbacks run
        # outside autocast), and a result whose values numpy cannot take. It runs in the model's dtype.
        for kind in {"cpu", *(d.type for d in (encoder_device, decoder_device) if d is not None)}:
            if torch.amp.is_autocast_available(kind):
                modes.enter_context(torch.autocast(kind, enabled=False))
        posterior = encode(recorder, data, batch_size=options.batch_size, device=encoder_device, progress=False)
        diagnosis = diagnose(posterior, prior_std=options.prior_std)
        refuse_overflowing_kl(fn, posterior, diagnosis)
        mode = diagnosis.recommended_mode if options.mode == "auto" else options.mode
        if MODE_TABLE[mode].needs_logvar and posterior.logvar is None:
            raise ValueError(
                f"{fn}: mode={mode!r} needs the posterior's logvar, and this encoder returns codes only "
                "(a plain autoencoder); use mode='auto' or 'empirical'"
            )
        sweep = dict(
            mode=mode, span=options.span, steps=options.steps, dims=ranked_dims(diagnosis)[: options.max_dims],
            reference=posterior.mu if MODE_TABLE[mode].needs_reference else None, prior_std=options.prior_std,
            device=decoder_device, progress=False, output=options.output, output_transform=options.output_transform,
            distributed=False,  # runs on rank 0 alone while the other ranks train
        )
        # Statistics over all anchors without keeping outputs (A x K x S images can be large);
        # outputs only for what is drawn: the grid's anchors, or every anchor of tabular outputs.
        result = traverse(decoder, posterior[: options.anchors], keep_outputs=False, **sweep)
        images_out = is_image_output(result.out_shape, options.image_shape, fn=fn)
        drawn = options.grid_anchors if images_out else (options.anchors if options.grid_anchors else 0)
        pictured = traverse(decoder, posterior[:drawn], **sweep) if drawn else None
        images = _draw(pictured, images_out, diagnosis, recorder.inputs(), options, step)
    return TraversalSnapshot(
        step=step,
        diagnosis=diagnosis,
        result=result,
        scalars=_scalars(diagnosis, result),
        images=images,
        text=diagnosis_markdown(diagnosis, step),
        seconds=time.perf_counter() - started,
    )


# exp(x) overflows float64 above this: a logvar beyond it is an infinite posterior variance.
LOG_FLOAT64_MAX = math.log(torch.finfo(torch.float64).max)


def refuse_overflowing_kl(fn: str, posterior, diagnosis: Diagnosis) -> None:
    """encode() refuses NaN/Inf codes; finite codes whose KL to the prior overflows float64 (it is
    computed in float64: a logvar above ~709, |mu| above ~1e154) are the same failure, and would be
    logged as an infinite mean_kl with advice about the heads, not about the overflow."""
    if not diagnosis.is_variational or math.isfinite(diagnosis.total_kl):
        return
    dims = torch.nonzero(torch.isinf(diagnosis.kl)).flatten().tolist()
    where = f"on {dims_label(dims, diagnosis.latent_shape)}" if dims else "summed over the latents"
    logvar, mu = posterior.logvar.double(), posterior.mu.double()
    raise ValueError(
        f"{fn}: the encoder's outputs overflow: their KL to the prior is beyond float64's range {where} "
        f"(logvar in [{float(logvar.min()):.3g}, {float(logvar.max()):.3g}]: exp(logvar), the posterior variance, "
        f"overflows float64 above {LOG_FLOAT64_MAX:.1f}; |mu| up to {float(mu.abs().max()):.3g}); check the encoder "
        "and its inputs (e.g. data far outside the range it was trained on)"
    )


def ranked_dims(diagnosis: Diagnosis) -> list[int]:
    """All latents, most informative first: by KL for a VAE, by the variance of the codes for an
    autoencoder (NaN last; ties keep the latent order)."""
    score = diagnosis.kl if diagnosis.is_variational else diagnosis.mu_variance
    score = torch.nan_to_num(score, nan=-math.inf)
    return torch.argsort(-score, stable=True).tolist()


def diagnosis_markdown(diagnosis: Diagnosis, step: int) -> str:
    """The diagnosis as Markdown (TensorBoard renders it): summary line, flags, advice."""
    lines = [f"**latentsweep at step {step}**: {diagnosis.summary()}", ""]
    lines += [f"- **{flag.code}** ({dims_label(flag.dims, diagnosis.latent_shape)}): {flag.recommendation}"
              for flag in diagnosis.flags]
    if not diagnosis.flags:
        lines.append("- no flags")
    return "\n".join(lines)


def is_summary_writer(writer) -> bool:
    """A TensorBoard SummaryWriter (torch.utils.tensorboard or tensorboardX) or a look-alike."""
    return all(callable(getattr(writer, name, None)) for name in ("add_scalar", "add_image", "add_text"))


def write_media(writer, snapshot: TraversalSnapshot, options: SnapshotOptions) -> None:
    """The snapshot's images and text to a SummaryWriter at the snapshot's step, then the writer
    flushed if it has a ``flush`` (a look-alike needs only the methods :func:`is_summary_writer` checks)."""
    for key, image in snapshot.images.items():
        writer.add_image(options.tag(key), image, snapshot.step, dataformats="HWC")
    writer.add_text(options.tag(TEXT_KEY), snapshot.text, snapshot.step)
    flush = getattr(writer, "flush", None)
    if callable(flush):
        flush()


def save_media(fn: str, folder: str | Path, snapshot: TraversalSnapshot, options: SnapshotOptions) -> Path:
    """The snapshot's images as PNG files and its text as ``diagnosis.md`` in
    ``<folder>/<prefix>/step=<step>/``; returns that folder. A folder that cannot be written (a
    file in the way, no permission, disk full) is a ValueError naming it."""
    from PIL import Image

    target = Path(folder) / (options.prefix or "latentsweep") / f"step={snapshot.step:07d}"
    try:
        target.mkdir(parents=True, exist_ok=True)
        for key, image in snapshot.images.items():
            Image.fromarray(image).save(target / f"{key.replace('/', '-')}.png")
        (target / f"{TEXT_KEY}.md").write_text(snapshot.text + "\n", encoding="utf-8")
    except OSError as error:
        raise ValueError(f"{fn}: cannot write the snapshot's pictures to {str(target)!r} (the logger's log_dir "
                         f"{str(folder)!r}): {error.strerror or error}") from error
    return target


def _scalars(diagnosis: Diagnosis, result: TraversalResult) -> dict[str, float]:
    scalars: dict[str, float] = {}
    if diagnosis.is_variational:
        collapsed = diagnosis.flag("collapsed")
        scalars["active_units"] = float(diagnosis.num_active)
        scalars["mean_kl"] = float(diagnosis.total_kl)
        scalars["collapsed_latents"] = float(len(collapsed.dims) if collapsed else 0)
        scalars.update({f"kl/{latent_label(d, diagnosis.latent_shape)}": kl
                        for d, kl in enumerate(diagnosis.kl.tolist())})
    for code in FLAG_CODES:
        flag = diagnosis.flag(code)
        scalars[f"flags/{code}"] = float(len(flag.dims) if flag else 0)
    scalars.update(
        {f"effect/{label}": e for label, e in zip(result.labels, result.dim_effect.tolist())}
    )
    return scalars


def _draw(pictured: TraversalResult | None, images_out: bool, diagnosis: Diagnosis, inputs,
          options: SnapshotOptions, step: int) -> dict[str, np.ndarray]:
    images = {}
    if pictured is not None and images_out:
        anchors = pictured.values.shape[0]
        if inputs is not None and inputs[0].numel() != math.prod(pictured.out_shape):
            inputs = None  # the inputs are not the kind of thing the decoder draws
        inputs = None if inputs is None else _drawn_inputs(inputs)
        for a in range(anchors):
            figure = traversal_grid(  # (tiles no larger than the logged picture shows)
                pictured, anchor=a, diagnosis=diagnosis, image_shape=options.image_shape,
                max_tile_size=shown_tile_pixels(matplotlib.rcParams["figure.dpi"]),
                input=None if inputs is None else inputs[:anchors],
                title=f"Step {step}: anchor {a}, mode {pictured.mode!r}",
            )
            images[f"traversal/anchor{a}"] = _rgb(figure)
    elif pictured is not None:
        figure = response_curves(pictured, diagnosis=diagnosis, title=f"Step {step}: response curves")
        images["response_curves"] = _rgb(figure)
    if diagnosis.is_variational:
        images["kl"] = _rgb(kl_bars(diagnosis))
    return images


def _drawn_inputs(inputs: torch.Tensor) -> torch.Tensor | None:
    """Inputs on the outputs' colour scale, as far as it can be known: uint8 images as ``x / 255``
    (torchvision's ``ToTensor`` convention; drawn as 0..255 beside outputs of 0..1, every decoded
    tile was white), other integers not at all (the encoder's own scaling is unknown)."""
    if inputs.dtype == torch.uint8:
        return inputs.float() / 255
    return inputs if inputs.is_floating_point() else None


def _rgb(figure) -> np.ndarray:
    """A matplotlib figure (on an Agg canvas) as ``[H, W, 3]`` uint8."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


class _InputRecorder:
    """Calls the encoder and keeps (on the CPU) the first ``keep`` inputs it saw, so the traversal
    grid can show each anchor's input whatever order a DataLoader yields."""

    def __init__(self, encoder, keep: int, fn: str = "latentsweep.integrations") -> None:
        if not callable(encoder):
            raise TypeError(f"latentsweep.integrations: encoder must be callable, got {type(encoder).__name__}")
        self.encoder, self.keep, self.fn, self._kept, self._rows = encoder, keep, fn, [], 0
        self.__wrapped__ = encoder  # encode() finds the encoder's module: its dtype, device, eval mode

    def __call__(self, batch: torch.Tensor):
        if batch.is_complex():  # (a Dataset's or DataLoader's batches: check_data sees tensors only)
            refuse_complex(self.fn, f"a batch of {batch.dtype}")
        if self._rows < self.keep and not MEASURING.set:  # (encode's call measuring the memory: inputs seen again)
            taken = batch[: self.keep - self._rows].detach().cpu()
            self._kept.append(taken)
            self._rows += taken.shape[0]
        return self.encoder(batch)

    def inputs(self) -> torch.Tensor | None:
        return torch.cat(self._kept) if self._kept else None


def checked_modules(fn: str, modules) -> list[torch.nn.Module] | None:
    """``modules=``: None, one nn.Module, or an iterable of them."""
    if modules is None:
        return None
    if isinstance(modules, torch.nn.Module):
        return [modules]
    try:
        modules = list(modules)
    except TypeError:
        raise TypeError(f"{fn}: modules must be an nn.Module or a list of them, got {type(modules).__name__}") from None
    for module in modules:
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"{fn}: modules must hold nn.Modules, got {type(module).__name__}")
    return modules


def _unique(modules) -> list[torch.nn.Module]:
    seen: dict[int, torch.nn.Module] = {}
    for module in modules:
        seen.setdefault(id(module), module)
    return list(seen.values())
