"""explain(): the whole workflow in one call: encode, diagnose, pick the mode, traverse what can
be read (a VAE's active latents, a plain autoencoder's principal directions), clusters and the
paths between them, and one self-contained HTML report. The command line's ``report`` and the
demo call it."""

from __future__ import annotations

import inspect
import math
import numbers
import os
from pathlib import Path

import numpy as np
import torch

from . import _checks
from . import distributed as _distributed
from .clusters import Clusters
from .clusters import clusters_named
from .diagnosis import Diagnosis, diagnose
from .directions import Directions
from .encoding import array_as_tensor, encode
from .explain_work import Planned, check_sweeps
from .html_report import check_options, report
from .interpolation import interpolate
from .plots._common import DEFAULT_MAX_PANELS, clipping_said_once
from .plots._features import check_feature_names_fit
from .plots._images import image_shape_of, is_image_output
from .posterior import Posterior
from .principal import principal_directions, variance_unread
from .report_pictures import drawn_dims
from .sinks import Geometry
from .sweep import sweeping_for, traverse
from .modes import MODE_TABLE, MODES

_FN = "latentsweep.explain"
# What explain says of a sweep stopped inside it (Ctrl-C, a decoder that failed): traverse's
# advice, out='sweep.zarr', is none of explain's arguments.
STOPPED_ADVICE = ("Nothing of this call is kept (the report is written at the end): call explain again, with fewer "
                  "steps, anchors or dims for a shorter run.")
DIRECTION_CHOICES = ("auto", "coordinates", "pca", "clusters")
# Principal directions carrying less than this share of the codes' variance are not traversed
# (a VAE's collapsed latents leave components with almost none).
MIN_DIRECTION_SHARE = 0.01
DEFAULT_REPORT = "report.html"


def explain(
    encoder,
    decoder,
    data,
    *,
    out: str | Path = "latentsweep-report",
    labels=None,
    clusters: int | None = None,
    directions="auto",
    posterior: Posterior | None = None,
    mode: str = "auto",
    span: float = 2.0,
    steps: int = 11,
    anchors: int = 8,
    dims=None,
    max_directions: int = 8,
    prior_std: float = 1.0,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    output=None,
    output_transform=None,
    image_shape=None,
    feature_names=None,
    title: str = "latentsweep report",
    metrics=None,
    seed: int = 0,
    progress: bool | None = None,
    distributed: bool = True,
    group: torch.distributed.ProcessGroup | None = None,
    **report_options,
) -> Path:
    """Explains a latent space in one self-contained HTML report and returns its path.

    What it does, in order:

    1. encodes ``data`` (unless ``posterior`` is given) and diagnoses the codes;
    2. picks the traversal mode (``mode="auto"``: the diagnosis' recommendation);
    3. clusters the codes when asked (``clusters=K`` for KMeans, or your ``labels``), with the
       decoded centroids and the paths between the closest and the farthest centroids (slerp
       for a VAE, whose codes are Gaussian; straight lines for a plain autoencoder);
    4. traverses, from the first ``anchors`` inputs, what can be read: a VAE's latents (the
       active ones when some collapsed), with the posterior's ± span SDs beside them for
       contrast; a plain autoencoder's principal directions (its axes are arbitrary); and the
       ``directions`` asked for (a VAE's beside its latents);
    5. writes the report (:func:`latentsweep.report`).

    Args:
        encoder, decoder: as for :func:`latentsweep.encode` and :func:`latentsweep.traverse`.
        data: the inputs ``[N, ...]`` (a tensor, array, Dataset or DataLoader, as ``encode``
            takes them); a tensor is also drawn beside the traversals when its rows are images
            of the decoder's output size. ``None`` with ``posterior``.
        out: the report's folder (``report.html`` is written in it) or a path ending in
            ``.html``.
        labels: ``[N]`` a label per input (ints or strings): the clusters are these.
        clusters: K >= 2 clusters found by KMeans (``seed``), when there are no ``labels``.
        directions: what to traverse besides a VAE's latents: ``"auto"`` (a plain
            autoencoder's principal directions, nothing more for a VAE), ``"coordinates"``
            (the latents only, also for an autoencoder), ``"pca"`` (the principal directions
            carrying at least 1% of the variance, at most ``max_directions``), ``"clusters"``
            (the directions from centroid to centroid of the closest and the farthest pairs;
            needs ``clusters`` or ``labels``), or your own ``[K, D]`` tensor or
            :class:`Directions`.
        posterior: the codes of ``data`` if you have them (:func:`latentsweep.encode`).
            Structured latents (an encoder's ``[B, C, H, W]`` codes) are read as D flat latents
            and reach the decoder in their own shape (``Posterior.latent_shape``).
        mode: a traversal mode of :func:`latentsweep.traversal_values` or ``"auto"``.
        span, steps, prior_std: as for :func:`latentsweep.traverse`.
        anchors: traverse from the first A inputs (all of them when there are fewer).
        dims: the latents to traverse (default: a VAE's active latents when some collapsed,
            else all); given for a plain autoencoder, its latents are traversed too.
        max_directions: at most this many principal directions.
        batch_size: inputs per encoder call. device: where to encode and decode.
        output, output_transform: which part of the decoder's output to use and a function
            of it (``"sigmoid"`` for logits), as for :func:`latentsweep.traverse`.
        image_shape: ``(H, W)`` or ``(C, H, W)`` to draw flat outputs as images (default:
            the inputs' shape when the decoder reproduces their size, else tabular).
        feature_names: names of tabular output features (refused for outputs drawn as
            images). title: the page's title.
        metrics: a :class:`latentsweep.metrics.MetricResults` to add to the report.
        seed: KMeans' random state. progress: tqdm bars (None: on a terminal or in a Jupyter notebook).
        report_options: more options of :func:`latentsweep.report` (``max_dims``, ``gifs``,
            ``dpi``, ``anchor_indices``).

    Under ``torchrun`` (every rank calling explain) rank 0 does the work, its sweeps in its own
    process (``device="cuda"``: its own GPU, ``cuda:LOCAL_RANK``, as for traverse), and writes
    the report once; the other ranks wait for it, return the same path, and raise if rank 0
    failed (or stopped answering: its process ended without an error). Every rank's call must be
    the same (``out=`` and the options; the data and the weights are rank 0's): one that
    differs, or a bad argument on one rank, is refused on every rank at once, before any work.
    ``distributed=False``: this process alone (``if rank == 0:
    explain(...)`` in a training job, which otherwise waits for the other ranks to call it and
    says so after 30 s); ``group=``: the ranks of that process group alone make the call, as
    for :func:`latentsweep.traverse`. Under torchrun without a process group, explain creates
    one (gloo), as traverse does, and the process keeps it: a later
    ``torch.distributed.init_process_group`` is refused by torch ("trying to initialize the
    default process group twice"), so initialise yours before the first call.

    Returns:
        the path of the written report.

    Raises:
        TypeError, ValueError: bad arguments (named), or what the steps above raise for the
            encoder, decoder or codes (e.g. NaN/Inf outputs). Codes that hold NaN/Inf (the
            encoder's, or a ``posterior``'s) are refused with their rows before anything is
            decoded (the diagnosis alone would skip them, :func:`latentsweep.diagnose`); so are
            codes that do not vary when principal directions are to be traversed (an
            autoencoder's, by default): the encoder gives every input one code, and there is
            nothing to read. Sweeps whose results would take more than half of the memory are
            refused before the first of them, saying how many outputs
            (:mod:`latentsweep.explain_work`; with a warning when they decode more than 2^32
            values): pass fewer ``steps``, ``anchors`` or ``dims``. (Of more latents than the
            report draws, ``max_dims``, whose outputs would take more than 256 MiB, a sweep
            keeps its statistics alone, and the drawn latents are traversed again with their
            outputs for the pictures.)
    """
    def checked() -> dict:
        """The arguments checked, once the ranks met (leader_only): a rank's refusal reaches the
        others at once. Returns what must be the same in every rank's call."""
        nonlocal path, report_options, directions, anchors, max_directions, mode, clusters, device
        path = _report_path(out)
        report_options = _check_report_options(dict(report_options, title=title, feature_names=feature_names))
        directions = _check_directions(directions)
        anchors = _checks.integer(_FN, "anchors", anchors, low=1)
        max_directions = _checks.integer(_FN, "max_directions", max_directions, low=1)
        mode = _checks.choice(_FN, "mode", mode, ("auto", *MODES))
        if clusters is not None:
            if labels is not None:
                raise ValueError(f"{_FN}: give labels (your clusters) or clusters=K (KMeans), not both")
            clusters = _checks.integer(_FN, "clusters", clusters, low=2)
        if isinstance(directions, str) and directions == "clusters" and clusters is None and labels is None:
            raise ValueError(f"{_FN}: directions='clusters' needs clusters=K (KMeans) or labels")
        if posterior is None and data is None:
            raise ValueError(f"{_FN}: give data (the inputs) or posterior (their codes)")
        if posterior is not None and not isinstance(posterior, Posterior):
            raise TypeError(f"{_FN}: posterior must be a latentsweep.Posterior, got {type(posterior).__name__}")
        device = _checks.device(_FN, device)
        return _call_identity(
            path, directions, report_options, mode=mode, span=span, steps=steps, prior_std=prior_std,
            anchors=anchors, dims=dims, max_directions=max_directions, clusters=clusters, seed=seed,
            batch_size=batch_size, output=output, output_transform=output_transform, image_shape=image_shape)

    # Under torchrun every rank calls explain: the ranks meet and check their calls (checked),
    # then rank 0 does the work (its sweeps in this process alone) and writes the report once;
    # the others wait for it and return its path. What depends on the machine (where out= can
    # be written, the device) is checked by rank 0 alone, and what it finds reaches the others:
    # checked by every rank before they met, a rank that will not write the report refused a
    # path it could not write on its node, and the others waited for it until the group's timeout.
    with _distributed.leader_only(_FN, checked, distributed=_checks.boolean(_FN, "distributed", distributed),
                                  group=group) as workers, sweeping_for(_FN, STOPPED_ADVICE):
        if not workers.leader:
            return path
        path = _checks.output_file(_FN, "out", path)
        if device is not None:  # (named as explain's: encode's or a sweep's name said it)
            # 'cuda' is this rank's GPU, as for traverse: the sweeps here run in this process
            # alone, where it was the current device (cuda:0 on a subgroup led by rank 2)
            device = _checks.usable_device(_FN, _distributed.local_device(device, workers))
        encoded = posterior is None  # (a refusal of the sweeps says how not to encode again)
        if posterior is None:
            posterior = encode(encoder, data, batch_size=batch_size, device=device, progress=progress)
        if isinstance(data, np.ndarray):
            data = array_as_tensor(data, None)  # (as encode reads it: big-endian data too)
        if isinstance(data, torch.Tensor) and (data.dim() == 0 or data.shape[0] != posterior.num_inputs):
            raise ValueError(
                f"{_FN}: data must hold the {posterior.num_inputs} inputs of posterior, one per row, got shape "
                f"{tuple(data.shape)}"
            )

        diagnosis = diagnose(posterior, prior_std=prior_std)
        _refuse_nonfinite_rows(posterior, diagnosis)
        if mode == "auto":
            mode = diagnosis.recommended_mode
        elif MODE_TABLE[mode].needs_logvar and not posterior.is_variational:
            raise ValueError(
                f"{_FN}: mode='{mode}' needs an encoder that gives a posterior (mu, logvar), but this one gives "
                f"plain codes (an autoencoder): use mode='{diagnosis.recommended_mode}' (what mode='auto' picks)"
            )
        if dims is not None:  # (named as explain's, before clustering and decoding: traverse named them)
            dims = _checks.dims(_FN, dims, posterior.latent_dim, posterior.mu.device, distinct=True).tolist()
        found = None
        if clusters is not None or labels is not None:
            _refuse_codes_that_do_not_vary(posterior, diagnosis, "there are no clusters to find or compare")
            found = clusters_named(_FN, posterior, labels, k=clusters, seed=seed, k_name="clusters")
        chosen = _directions(directions, diagnosis, posterior, found, max_directions)  # (before any decoding)

        sweep = dict(mode=mode, span=span, steps=steps, prior_std=prior_std, device=device, progress=progress,
                     output=output, output_transform=output_transform, distributed=False,
                     reference=posterior.mu if MODE_TABLE[mode].needs_reference else None)
        starts = posterior[:anchors]
        for a in report_options.get("anchor_indices", ()):  # drawn from these anchors
            _checks.index(_FN, "anchor_indices", a, starts.num_inputs, what="anchor(s)")
        # The outputs' shape, from one decoded point, for the options that need it: a bad
        # image_shape or feature_names failed after every sweep, named as report's.
        # (two steps: a one-step traversal is warned about; 0 and 1 are finite in every dtype)
        two_steps = torch.tensor([[[0.0, 1.0]]], dtype=starts.mu.dtype, device=starts.mu.device)
        one = traverse(decoder, starts[:1], dims=[0], values=two_steps, device=device, progress=False,
                       output=output, output_transform=output_transform, distributed=False)
        out_shape = one.out_shape
        if output_transform is None:
            _warn_of_logits(one.anchor_outputs, data)
        if image_shape is None:
            _warn_of_other_size(out_shape, data)
        shape = output_image_shape(out_shape, image_shape, data)
        check_feature_names_fit(_FN, report_options.get("feature_names"), out_shape, drawn_as_images=shape is not None)
        latents = posterior.is_variational or directions == "coordinates" or dims is not None
        if latents and dims is None and diagnosis.is_variational:
            dims = diagnosis.traversal_options()["dims"]
        count = posterior.latent_dim if dims is None else len(dims)
        drawn = _drawn_traversals(report_options)
        pictured = _pictured_count(one, starts, steps, count, drawn) if latents else None
        pictured_directions = None if chosen is None else \
            _pictured_count(one, starts, steps, _direction_count(chosen[1]), drawn)
        check_sweeps(_FN, _planned_sweeps(one, starts, steps, mode, dims if latents else (), chosen, found, posterior,
                                          pictured, pictured_directions), encoded=encoded)
        results, pictures = {}, {}
        if latents:
            modes = {mode: sweep}
            if posterior.is_variational and mode != "posterior":
                modes["posterior"] = {**sweep, "mode": "posterior", "reference": None}
            for name, options in modes.items():
                results[name], picture = _latent_sweep(decoder, starts, dims, options, diagnosis, pictured)
                if picture is not None:
                    pictures[name] = picture
        along = {}
        if chosen is not None:
            name, vectors = chosen
            if pictured_directions is None:
                along[name] = traverse(decoder, starts, directions=vectors, **sweep)
            else:  # (the report's grid draws the first directions: they alone keep their outputs)
                along[name] = traverse(decoder, starts, directions=vectors, keep_outputs=False, **sweep)
                pictures[name] = traverse(decoder, starts, directions=vectors[:pictured_directions], **sweep)

        centroid_outputs, paths = None, {}
        if found is not None:
            centroid_outputs, paths = _cluster_paths(
                decoder, found, posterior, steps=steps, device=device, progress=progress, output=output,
                output_transform=output_transform, distributed=False,
            )
        first = next(iter([*results.values(), *along.values()]), None)
        inputs = None
        if shape is not None and isinstance(data, torch.Tensor) and data.dim() >= 2 and first is not None \
                and math.prod(data.shape[1:]) == math.prod(out_shape):
            inputs = data[: first.values.shape[0]].reshape(-1, *out_shape)
        with clipping_said_once(_FN):  # (in explain's name: the report it writes draws them)
            return report(path, **_report_arguments(
                diagnosis=diagnosis, results=results or None, posterior=posterior, image_shape=shape, inputs=inputs,
                prior_std=prior_std, metrics=metrics, directions=along or None, clusters=found,
                centroid_outputs=centroid_outputs, interpolations=paths or None, pictures=pictures or None,
            ), **report_options)


# How far below 0 a decoder's output at an input in [0, 1] reaches before it reads as logits (a
# linear-output decoder trained with MSE undershoots a little, tanh reaches -1; a dark pixel's
# logit is -5 and below). Only below: a far outlier above (a hot pixel) is not a logit.
LOGIT_REACH = 1.0


def _warn_of_logits(outputs: torch.Tensor, data) -> None:
    """A warning when the inputs lie in [0, 1] but the decoder's output at the first anchor
    reaches far outside: a Bernoulli decoder's logits, measured and drawn as if they were
    images, unless output_transform='sigmoid' turns them into probabilities."""
    if not isinstance(data, torch.Tensor) or not data.is_floating_point() or data.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(data.detach()))
    if not (0.0 <= low and high <= 1.0):
        return
    out_low, out_high = (float(v) for v in torch.aminmax(outputs.detach().float()))
    if out_low < -LOGIT_REACH:
        _checks.warn(
            f"{_FN}: the inputs lie in [0, 1], but the decoder's output at the first input reaches "
            f"{out_low:.3g} .. {out_high:.3g}: if the decoder returns logits (a Bernoulli decoder), pass "
            "output_transform='sigmoid' so that effects and pictures are in the inputs' scale",
            UserWarning,
        )


def _warn_of_other_size(out_shape: tuple[int, ...], data) -> None:
    """A warning when the decoder's outputs hold another number of values than each input: a
    decoder reconstructs its inputs, and a network's body without its output layer (a model
    whose ``decode`` method adds the layer, as AntixK's VanillaVAE's ``final_layer``) gives
    hidden features, which were measured and drawn without a word."""
    if not isinstance(data, torch.Tensor) or data.dim() < 2:
        return
    per_input = math.prod(data.shape[1:])
    if per_input == math.prod(out_shape):
        return
    _checks.warn(
        f"{_FN}: the decoder's output at the first input holds {math.prod(out_shape)} values (shape "
        f"{tuple(out_shape)}), but each input holds {per_input} (shape {tuple(data.shape[1:])}), as many as a "
        "decoder that reconstructs its inputs gives: if the decoder is a network's body without its output layer, "
        "pass the model's method that adds it (vae.decode rather than vae.decoder); if the sizes differ by design, "
        "ignore this (image_shape= for outputs drawn as images says so)",
        UserWarning,
    )


def output_image_shape(out_shape: tuple[int, ...], hint=None, inputs=None, *, fn: str = _FN) -> tuple[int, ...] | None:
    """The shape to draw outputs of ``out_shape`` as images, or None for tabular outputs: the
    ``hint`` (``image_shape=``, checked against the outputs), else the outputs' own shape when
    they are images, else the inputs' shape when the inputs are images of as many values (an
    autoencoder reconstructs its input). ``fn`` names the caller in the hint's errors."""
    hint = tuple(hint) if hint else None
    if is_image_output(out_shape, hint, fn=fn):
        return image_shape_of(fn, out_shape, hint)
    if isinstance(inputs, torch.Tensor) and inputs.dim() > 2 and is_image_output(tuple(inputs.shape[1:])) \
            and math.prod(inputs.shape[1:]) == math.prod(out_shape):
        return tuple(inputs.shape[1:])
    return None


def _report_arguments(*, diagnosis, results, posterior, image_shape, inputs, prior_std, metrics, directions,
                      clusters, centroid_outputs, interpolations, pictures) -> dict:
    """The keywords of :func:`latentsweep.report` that explain fills itself: this signature is
    the one list of them (:func:`_check_report_options` refuses them as ``report_options``)."""
    return dict(locals())


def _call_identity(path: Path, directions, report_options: dict, **options) -> dict:
    """What must be the same in every rank's call (Workers.agree, as traverse's ranks compare
    theirs): the report's path as each rank returns it, and the options as far as they are
    cheap to compare: not the data, codes or weights, nor your own directions or
    reconstructions (rank 0's are used: their type alone is compared)."""
    identity = {name: _comparable(value) for name, value in {**options, **report_options}.items()
                if name != "reconstructions"}
    identity["directions"] = directions if isinstance(directions, str) else _comparable(directions)
    identity["out"] = os.fspath(path)
    return identity


def _comparable(value):
    """``value`` as the ranks compare it: a number, a string or a sequence of them as it is (a
    1-D tensor's or array's as a list; NaN as "nan", which is unequal to itself); anything else
    (a function, a Directions, a [K, D] tensor) by its type."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim <= 1:
        value = value.tolist()
    if isinstance(value, (list, tuple, range)):
        return [_comparable(item) for item in value]
    if value is None or isinstance(value, (str, numbers.Number)):
        return "nan" if value != value else value
    return f"a {type(value).__name__}"


def _check_report_options(options: dict) -> dict:
    """``explain``'s keywords for :func:`latentsweep.report` (its own ``title`` and
    ``feature_names``, and the extra ones), checked before the work (a bad one failed after
    every sweep); those explain sets itself are refused. Returns them as report checks them."""
    own = inspect.signature(_report_arguments).parameters
    accepted = {name for name, parameter in inspect.signature(report).parameters.items()
                if parameter.kind is parameter.KEYWORD_ONLY and name not in own}  # (path: explain's out)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(f"{_FN}: unexpected keyword argument(s) {unknown}; the report takes "
                        f"{sorted(accepted - {'title', 'feature_names'})}")
    return check_options(_FN, **options)


def _report_path(out) -> Path:
    """The report's path (``~`` expanded); where it can be written is checked by the rank that
    writes it (``_checks.output_file``)."""
    if not isinstance(out, (str, os.PathLike)) or not str(out):
        raise TypeError(f"{_FN}: out must be a folder or an .html path (str or os.PathLike), got {out!r}")
    out = _checks.user_path(out)
    return out if out.suffix.lower() in (".html", ".htm") else out / DEFAULT_REPORT


def _check_directions(directions):
    if isinstance(directions, str):
        return _checks.choice(_FN, "directions", directions, DIRECTION_CHOICES)
    if isinstance(directions, (torch.Tensor, Directions)):
        return directions
    raise TypeError(
        f"{_FN}: directions must be one of {', '.join(repr(c) for c in DIRECTION_CHOICES)}, a [K, D] tensor or a "
        f"latentsweep.Directions, got {type(directions).__name__}"
    )


def _directions(directions, diagnosis: Diagnosis, posterior: Posterior, found: Clusters | None,
                max_directions: int) -> tuple[str, object] | None:
    """(section name, directions to traverse) or None."""
    if isinstance(directions, (torch.Tensor, Directions)):
        return "your directions", directions
    if directions == "coordinates" or (directions == "auto" and diagnosis.recommended_directions == "coordinates"):
        return None
    if directions == "clusters":
        parts = [_cluster_direction(found, i, j) for i, j in dict.fromkeys(found.closest_and_farthest())]
        vectors = torch.cat([p.vectors for p in parts])
        return "directions between clusters", Directions(vectors, tuple(n for p in parts for n in p.names),
                                                         source="clusters")
    _refuse_codes_that_do_not_vary(posterior, diagnosis, "there is no principal direction to traverse and every "
                                   "decoded output would be the same")
    with variance_unread():  # (only the ratios are read: explained_variance out of range is no news here)
        pcs = principal_directions(posterior, k=min(max_directions, posterior.num_inputs - 1, posterior.latent_dim))
    keep = max(1, int((pcs.explained_variance_ratio >= MIN_DIRECTION_SHARE).sum()))
    return "principal directions", pcs[:keep]


# Codes that differ by at most this many units of their dtype's rounding (relative to the
# codes' largest magnitude: an encoder's sums round at the scale of their terms, so a latent
# near 0 by cancellation differs by more than its own ulps) do not vary: one input encoded in
# two batches gave codes ~1e-7 apart (float32 GEMMs round by batch shape), which KMeans split
# into two "clusters" of +-inf SDs, and whose principal direction was traversed over 2.4e-7.
ROUNDING_UNITS = 64


def _refuse_codes_that_do_not_vary(posterior: Posterior, diagnosis: Diagnosis, consequence: str) -> None:
    """ValueError when no latent's codes vary by more than float rounding (from the diagnosis'
    extremes: no pass over the codes)."""
    low, high = diagnosis.min.double(), diagnosis.max.double()
    rounding = ROUNDING_UNITS * torch.finfo(posterior.mu.dtype).eps * float(torch.maximum(low.abs(), high.abs()).max())
    if bool((high - low <= rounding).all()):
        same = "the same code" if bool((low == high).all()) else "the same code up to float rounding"
        raise ValueError(
            f"{_FN}: the codes do not vary: all {posterior.num_inputs} inputs have {same}, so {consequence}; "
            "the encoder ignores its input (untrained, or a dead layer): check it"
        )


def _cluster_direction(found: Clusters, i: int, j: int) -> Directions:
    """``found.directions(i, j)``, its one refusal (two clusters with the same centroid) said as
    explain's, naming the user's labels and what to do: Clusters.directions named itself and the
    clusters' indices, neither of which the caller of explain knows."""
    try:
        return found.directions(i, j)
    except ValueError as error:  # (i and j are found's own indices: their range cannot be wrong)
        first, second = found.label_values[i], found.label_values[j]
        raise ValueError(
            f"{_FN}: directions='clusters' finds no direction between the clusters labelled {first!r} and "
            f"{second!r}: their centroids (mean codes) are the same; give them one label (or ask for fewer "
            "clusters=), or traverse other directions (directions='pca', or your own [K, D] tensor)"
        ) from error


def _refuse_nonfinite_rows(posterior: Posterior, diagnosis: Diagnosis) -> None:
    """Codes with NaN/Inf, named by their rows before any decoding, as ``encode`` names the
    encoder's: the diagnosis skips them, but the traversals, principal directions, clusters
    and paths need every input's codes (they failed one after another, deep inside)."""
    if diagnosis.flag("nonfinite") is None:
        return
    tensors = [("mu", posterior.mu)] if posterior.logvar is None else [("mu", posterior.mu), ("logvar", posterior.logvar)]
    bad = torch.zeros(posterior.num_inputs, dtype=torch.bool, device=posterior.mu.device)
    for _, tensor in tensors:
        bad |= ~torch.isfinite(tensor).all(dim=1)
    rows = bad.nonzero()[:, 0].tolist()
    shown = _checks.listed(rows)
    raise ValueError(
        f"{_FN}: posterior has NaN/Inf (in {' or '.join(name for name, _ in tensors)}) for {len(rows)} of its "
        f"{posterior.num_inputs} inputs: {shown}; find their source, or explain the others (keep = "
        + " & ".join(f"torch.isfinite(posterior.{name}).all(1)" for name, _ in tensors)
        + "; posterior[keep], with data[keep] and labels[keep])"
    )


def _drawn_traversals(report_options: dict) -> int:
    """How many latents (or directions) of a traversal the report draws: its ``max_dims``
    (report's default unless given), or with ``max_dims=None`` all of them up to the pictures'
    bound."""
    max_dims = report_options.get("max_dims", inspect.signature(report).parameters["max_dims"].default)
    return DEFAULT_MAX_PANELS if max_dims is None else max_dims


# Of more latents than the report draws, a latent sweep keeps its statistics alone, and the drawn
# latents are swept again with their outputs, when the other latents' outputs would take more than
# this: that second sweep decodes the drawn latents twice (75% more decodes at 16 latents, 12
# drawn), worth it for the 11 GB of a conv VAE's 1,024 latents at 3 x 128 x 128, not for a few MB.
SEPARATE_PICTURES_FROM_BYTES = 256 << 20


def _pictured_count(one, starts: Posterior, steps, count: int, drawn: int) -> int | None:
    """How many latents (or directions) a sweep of their own keeps the outputs of (the
    ``drawn``), or None when one sweep keeps every one's (``count`` of them, ``one``: the decoded
    probe): see SEPARATE_PICTURES_FROM_BYTES. None when ``steps`` is no count (the first sweep
    refuses it)."""
    if count <= drawn or isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        return None
    undrawn = Geometry(starts.num_inputs, count - drawn, int(steps), one.out_shape, one.outputs.dtype)
    outputs = undrawn.num_rows * undrawn.features * undrawn.output_dtype.itemsize
    return drawn if outputs > SEPARATE_PICTURES_FROM_BYTES else None


def _latent_sweep(decoder, starts: Posterior, dims, options: dict, diagnosis: Diagnosis, pictured: int | None):
    """(the traversal of the latents ``dims``, the traversal of the ``pictured`` latents the
    report draws of it, or None): with ``pictured``, the first keeps the statistics alone and the
    second the drawn latents' outputs, for the pictures (:mod:`latentsweep.report_pictures`)."""
    if pictured is None:
        return traverse(decoder, starts, dims=dims, **options), None
    whole = traverse(decoder, starts, dims=dims, keep_outputs=False, **options)
    return whole, traverse(decoder, starts, dims=drawn_dims(_FN, whole, diagnosis, pictured), **options)


def _planned_sweeps(one, starts: Posterior, steps, mode: str, dims, chosen, found: Clusters | None,
                    posterior: Posterior, pictured: int | None, pictured_directions: int | None) -> dict[str, Planned]:
    """The sweeps explain is about to make (name -> planned sweep; ``one``: the decoded probe,
    with the outputs' shape and dtype; ``dims``: the latents' (None: all, ``()``: no latent
    sweep); ``pictured``, ``pictured_directions``: the latents, and the first directions, swept
    again with their outputs, :func:`_pictured_count`), for :func:`check_sweeps`. Empty when
    ``steps`` is no count: the first sweep refuses it."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        return {}
    steps = int(steps)
    shape, dtype = one.out_shape, one.outputs.dtype
    sweeps = {}
    if dims != ():
        count = posterior.latent_dim if dims is None else len(dims)
        names = [f"latents in mode '{mode}'"]
        if posterior.is_variational and mode != "posterior":
            names.append("latents in mode 'posterior' (for contrast)")
        for name in names:
            sweeps[name] = Planned(Geometry(starts.num_inputs, count, steps, shape, dtype), pictured is None)
            if pictured is not None:
                sweeps[f"{name}, the {pictured} drawn"] = Planned(Geometry(starts.num_inputs, pictured, steps, shape,
                                                                           dtype))
    if chosen is not None:
        name = chosen[0]
        count = _direction_count(chosen[1])
        sweeps[name] = Planned(Geometry(starts.num_inputs, count, steps, shape, dtype), pictured_directions is None)
        if pictured_directions is not None:
            sweeps[f"{name}, the first {pictured_directions}"] = Planned(
                Geometry(starts.num_inputs, pictured_directions, steps, shape, dtype))
    if found is not None and found.num_clusters >= 2:
        sweeps["cluster centroids"] = Planned(Geometry(found.num_clusters, 1, 2, shape, dtype))
        pairs = len(dict.fromkeys(found.closest_and_farthest()))
        sweeps["paths between clusters"] = Planned(Geometry(pairs, 1, max(steps, 2), shape, dtype))
    return sweeps


def _direction_count(vectors) -> int:
    """K of the directions explain traverses (a Directions, or a [K, D] tensor: checked by the
    sweep; one direction for anything else)."""
    rows = vectors.vectors if isinstance(vectors, Directions) else vectors
    return rows.shape[0] if isinstance(rows, torch.Tensor) and rows.dim() > 1 else 1


def _cluster_paths(decoder, found: Clusters, posterior: Posterior, *, steps: int, **options):
    """The decoder at the centroids ``[C, *out_shape]``, and ``{(i, j): Interpolation}`` from
    centroid i to centroid j for the closest and the farthest pairs (slerp for a VAE's
    Gaussian codes, straight lines for an autoencoder's)."""
    centroids = found.centroids.to(posterior.mu.dtype)
    # Each centroid decoded as a path from itself to itself: the engine's checks and options.
    options = dict(options, latent_shape=posterior.latent_shape)  # (the decoder's codes: [B, *latent_shape])
    at_centroids = interpolate(decoder, centroids, centroids, steps=2, **options).outputs[:, 0]
    path = "slerp" if posterior.is_variational else "linear"
    paths = {}
    for i, j in dict.fromkeys(found.closest_and_farthest()):
        paths[(i, j)] = interpolate(decoder, centroids[i], centroids[j], steps=max(steps, 2), path=path, **options)
    return at_centroids, paths
