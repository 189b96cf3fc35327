"""Helpers shared by the pictures: an Agg figure (no pyplot, no global backend), saving,
the checks only pictures need (generic ones are in ``latentsweep._checks``), the order in
which latents are drawn, and the x axis of a traversal.

matplotlib is imported inside the functions so that ``import latentsweep`` stays fast for
users who never draw.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import math
import numbers
import os
from pathlib import Path

import numpy as np
import torch

from .. import _checks
from ..diagnosis import Diagnosis
from ..result import TraversalResult

ORDERS = ("auto", "kl", "effect", "dims")
# Pictures stay of bounded size whatever D is (4096 latents made a 131,512-pixel-wide bar
# chart and a report that took minutes): at most this many panels or rows unless the caller
# asks for more with max_dims=, and no figure wider than this.
DEFAULT_MAX_PANELS = 48
MAX_FIGURE_INCHES = 24.0
# The largest side of an output's tile a picture needs, at SHOWN_TILE_DPI: a grid's tile is 0.75
# inches (68 pixels at 90 dpi), so larger outputs drawn at their own size cost memory and time
# for nothing that shows (12 x 11 tiles of 3 x 512 x 512 took 3.6 GB to draw, 3 GB more to save),
# as matplotlib renders them smaller anyway; more in proportion at a higher dpi.
SHOWN_TILE_PIXELS = 128
SHOWN_TILE_DPI = 90
SAVE_DPI = 100  # a picture saved to a file (the plots' path=) or drawn as PNG bytes, unless asked


def shown_tile_pixels(dpi: float) -> int:
    """The ``max_tile_size`` of the grids and panels drawn for a page or a log at ``dpi``."""
    return max(SHOWN_TILE_PIXELS, math.ceil(SHOWN_TILE_PIXELS * dpi / SHOWN_TILE_DPI))
# A grid's tile: beyond this a 10 x 21 grid is a figure of hundreds of inches (tile_inches=1000
# ran out of memory in the renderer, 30 took 26 s).
MAX_TILE_INCHES = 4.0
# A user's name drawn beside a picture (a direction, result, feature or cluster): longer ones
# are shortened in the middle (a 300-character direction name took the grid's whole width
# and squeezed its images to nothing). Both ends are kept: names often differ at the end.
MAX_LABEL_CHARS = 40


def short_label(text) -> str:
    """``text`` as drawn: at most MAX_LABEL_CHARS characters per line, a longer line keeping
    its start and end around an ellipsis."""
    head = (MAX_LABEL_CHARS - 1) * 2 // 3
    tail = MAX_LABEL_CHARS - 1 - head
    return "\n".join(line if len(line) <= MAX_LABEL_CHARS else f"{line[:head]}\u2026{line[-tail:]}"
                     for line in str(text).split("\n"))


def tile_inches(fn: str, value) -> float:
    """A grid's ``tile_inches``: a number in (0, MAX_TILE_INCHES]."""
    value = _checks.positive_float(fn, "tile_inches", value)
    if value > MAX_TILE_INCHES:
        raise ValueError(f"{fn}: tile_inches must be at most {MAX_TILE_INCHES:g}, got {value:g}")
    return value


def panel_limit(fn: str, count: int, max_dims: int | None, noun: str, *,
                keyword: str = "max_dims") -> int | None:
    """``max_dims``, or DEFAULT_MAX_PANELS (with a warning) when it is None and there are more
    than that many ``noun``s to draw.
    ``keyword``: the caller's name for ``max_dims`` (the warning tells the user to pass it)."""
    if max_dims is None and count > DEFAULT_MAX_PANELS:
        _checks.warn(f"{fn}: drawing {DEFAULT_MAX_PANELS} of {count} {noun}s; pass {keyword}= to draw more",
                     UserWarning)
        return DEFAULT_MAX_PANELS
    return max_dims


def new_figure(width: float, height: float, *, fixed_aspect: bool = False):
    """A matplotlib Figure on an Agg canvas: it renders without a display and without pyplot,
    so nothing global changes and nothing ever pops up. ``fixed_aspect``: for an image grid
    (square pixels) beside a colour bar, whose layout otherwise pushed the row names' axis label
    off the figure's left edge (8 rows x 5 steps) or the title over the colour bar (1 step)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    figure = Figure(figsize=(width, height), layout=ConstrainedLayoutEngine(compress=fixed_aspect))
    FigureCanvasAgg(figure)
    return figure


def text_inches(text: str, points: float) -> float:
    """About how wide ``text`` is drawn at ``points`` (its longest line; 0.6 em a character)."""
    return max(map(len, str(text).split("\n"))) * points * 0.6 / 72


def grid_width(grid_inches: float, title: str, axis_label: str) -> float:
    """An image grid's figure width: its tiles and labels (``grid_inches``), and room for its
    title (12 points) and x axis label (10) above and below it: a grid of one step was 3.15
    inches wide, its title cut off at the edge and drawn over the colour bar."""
    return max(grid_inches, min(max(text_inches(title, 12), text_inches(axis_label, 10)) + 2.4, MAX_FIGURE_INCHES))


def figure_formats() -> tuple[str, ...]:
    """The file suffixes matplotlib can save a figure as (``.png``, ``.pdf``, ``.svg``...)."""
    import shutil

    import matplotlib
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    # .pgf is written by a TeX install: without one, savefig raised "'xelatex' not found" after
    # the drawing.
    has_tex = shutil.which(matplotlib.rcParams["pgf.texsystem"]) is not None
    return tuple(f".{name}" for name in formats if name != "pgf" or has_tex)


def output_path(fn: str, path, *, suffixes: tuple[str, ...] | None = None) -> Path | None:
    """``path=`` of a picture, checked before anything is drawn: a file name (not a folder) whose
    suffix names a format we can write (``suffixes``; default: every figure format). Without
    this check matplotlib turns ``folder`` into ``folder.png`` and an unknown suffix fails after
    the drawing with its own message."""
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: path must be a file name (str or os.PathLike), got {type(path).__name__}")
    path = _checks.user_path(path)
    suffixes = figure_formats() if suffixes is None else suffixes
    examples = ", ".join(s for s in (".png", ".pdf", ".svg", ".gif") if s in suffixes)
    try:
        if path.is_dir():
            raise ValueError(f"{fn}: path={str(path)!r} is a folder; give a file name inside it, e.g. "
                             f"{str(path / ('picture' + suffixes[0]))!r}")
        _checks.output_file(fn, "path", path)
    except OSError as error:  # (a name too long for the file system: raised by is_dir)
        raise ValueError(f"{fn}: cannot write path={str(path)!r}: {error.strerror or error}") from error
    if path.suffix.lower() not in suffixes:
        raise ValueError(
            f"{fn}: path={str(path)!r} must end in a picture format's suffix ({examples}"
            f"{', ...' if len(suffixes) > 3 else ''}), got {path.suffix or 'no suffix'!r}"
        )
    return path


def write_file(fn: str, path: Path, write) -> None:
    """Creates ``path``'s folder and calls ``write(path)``; a file system error (no permission, a
    file where a folder should be, disk full) becomes a ValueError naming ``path=``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
    except OSError as error:
        raise ValueError(f"{fn}: cannot write path={str(path)!r}: {error.strerror or error}") from error


def finish(figure, path: Path | None, *, dpi: int = SAVE_DPI, fn: str = "latentsweep.plots"):
    """Saves the figure to ``path`` (format from the suffix) when given; returns the figure.
    ``path`` is the caller's, already checked by :func:`output_path` before it drew (so that a
    bad path fails before the drawing, not after): not checked again here."""
    _as_typed(figure)
    if path is not None:
        dpi = fitting_dpi(fn, figure, dpi)
        write_file(fn, path, lambda p: _save(figure, p, dpi=dpi))
    return figure


def figure_png(figure, *, dpi: int = SAVE_DPI, fn: str = "latentsweep.report") -> bytes:
    """The figure as PNG bytes (for inlining in the HTML report)."""
    buffer = io.BytesIO()
    _as_typed(figure)
    _save(figure, buffer, format="png", dpi=fitting_dpi(fn, figure, dpi))
    return buffer.getvalue()


# The most pixels a picture is rendered with (about 5,800 x 5,800; an image in the figure costs
# matplotlib about 80 bytes a pixel: 2.7 GB), and the most on a side (the renderer's limit,
# 2^16): a report of 48 latents x 48 steps at dpi=1200 drew a grid of 46,080 x 45,120 pixels,
# and its memory ran out.
MAX_PIXELS = 2**25
MAX_SIDE_PIXELS = 2**16 - 1


def fitting_dpi(fn: str, figure, dpi: float) -> float:
    """``dpi``, or the largest lower one at which the figure stays within MAX_PIXELS and
    MAX_SIDE_PIXELS (with a warning)."""
    width, height = (float(x) for x in figure.get_size_inches())
    fitting = min(dpi, math.sqrt(MAX_PIXELS / (width * height)), MAX_SIDE_PIXELS / max(width, height))
    if fitting < dpi:
        fitting = max(1, math.floor(fitting))
        _checks.warn(f"{fn}: a picture of {width:.3g} x {height:.3g} inches at dpi={dpi:g} would be "
                     f"{width * dpi:,.0f} x {height * dpi:,.0f} pixels; drawn at dpi={fitting}", UserWarning)
    return fitting


def _as_typed(figure) -> None:
    """Every text in the figure drawn as typed: matplotlib reads ``$...$`` as math, so a user's
    feature name, title or label with a ``$`` failed to parse (a traceback from deep inside
    matplotlib) or lost its ``$`` signs to italics. latentsweep writes no math itself."""
    from matplotlib.text import Text

    for text in figure.findobj(Text):
        text.set_parse_math(False)
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            _plain_log_ticks(axis)


def _plain_log_ticks(axis) -> None:
    """A log axis' tick labels as plain numbers (``0.01``, ``1e-05``), on the ticks matplotlib
    labels: it writes them as math (``$\\mathdefault{10^{-2}}$``), which ``_as_typed`` draws as
    typed: every log axis (KL bars, posterior SD histograms) showed that text, overlapping."""
    from matplotlib.ticker import LogFormatter, LogFormatterMathtext

    class PlainLogFormatter(LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    for get, put in ((axis.get_major_formatter, axis.set_major_formatter),
                     (axis.get_minor_formatter, axis.set_minor_formatter)):
        old = get()
        if isinstance(old, LogFormatterMathtext):
            # (its private base and linthresh, read with defaults: another matplotlib may rename them)
            put(PlainLogFormatter(base=getattr(old, "_base", 10.0), labelOnlyBase=old.labelOnlyBase,
                                  minor_thresholds=old.minor_thresholds, linthresh=getattr(old, "_linthresh", None)))


def _save(figure, target, **options) -> None:
    """``savefig`` with texts made while drawing (ticks) also as typed."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):
        figure.savefig(target, **options)


def as_array(value) -> np.ndarray:
    """A float numpy array from a tensor (any device or dtype) or an array-like: float64 stays
    float64 (outputs of 1e100 or 1e-100 became inf or 0 in float32, drawn as garbage), anything
    else is float32."""
    if isinstance(value, torch.Tensor):
        dtype = torch.float64 if value.dtype == torch.float64 else torch.float32
        return value.detach().to("cpu", dtype).numpy()
    array = np.asarray(value)
    return array.astype(np.float64 if array.dtype == np.float64 else np.float32, copy=False)


def user_array(fn: str, name: str, value, *, finite: bool = True) -> np.ndarray:
    """A user's numbers to draw (outputs, coordinates) as :func:`as_array` makes them (float64
    stays float64), checked first: a dense tensor holding real values, or a numeric array-like
    (strings, complex numbers and objects raised numpy's own errors or lost their imaginary
    part); with ``finite``, no NaN or Inf (drawn black, without a word)."""
    if isinstance(value, torch.Tensor):
        _checks.dense_values(fn, name, value)
        if value.is_complex():
            raise TypeError(f"{fn}: {name} must hold real numbers, got {value.dtype}")
    elif isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{fn}: {name} must be a tensor or a numeric array, got {type(value).__name__}")
    else:
        try:
            value = np.asarray(value)
        except (TypeError, ValueError):  # (ragged nested lists)
            raise TypeError(f"{fn}: {name} must be a tensor or a numeric array, got {type(value).__name__}") from None
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{fn}: {name} must be a tensor or a numeric array, got an array of {value.dtype}")
    array = as_array(value)
    bad = nonfinite_count(array) if finite else 0
    if bad:
        raise ValueError(f"{fn}: {name} has {bad} NaN/Inf value(s)")
    return array


def nonfinite_count(*arrays: np.ndarray) -> int:
    """How many NaN/Inf values ``arrays`` hold, counted a block at a time (each mask of the whole
    outputs was a quarter of their float32 bytes)."""
    from ._images import value_blocks

    return sum(int(block.size - np.count_nonzero(np.isfinite(block)))
               for array in arrays for block in value_blocks(array))


# Inside columns_said_once: the caller's name and the column warnings said so far (per thread and task).
_COLUMN_WARNINGS: contextvars.ContextVar[tuple[str, set[str]] | None] = contextvars.ContextVar(
    "latentsweep_column_warnings", default=None)


@contextlib.contextmanager
def columns_said_once(fn: str):
    """Each column warning of the pictures drawn in this block said once, by ``fn``: a report
    drew one grid per anchor and result, each warning alike (16 lines for one explain call;
    Python's own once-per-line rule is undone by the warnings filters matplotlib sets while
    drawing)."""
    token = _COLUMN_WARNINGS.set((fn, set()))
    try:
        yield
    finally:
        _COLUMN_WARNINGS.reset(token)


def column_steps(fn: str, steps: int) -> np.ndarray:
    """The steps a grid draws as columns: all of them, or DEFAULT_MAX_PANELS evenly spaced ones
    (the first and the last included) with a warning (2000 steps drew a grid 1,500 inches wide,
    a 150,000-pixel PNG that took half a minute; more ran out of the renderer's limits)."""
    if steps <= DEFAULT_MAX_PANELS:
        return np.arange(steps)
    block = _COLUMN_WARNINGS.get()
    fn, said = block if block is not None else (fn, None)
    message = (f"{fn}: drawing {DEFAULT_MAX_PANELS} of {steps} steps as columns (evenly spaced, the first and the "
               "last included)")
    if said is None or message not in said:
        _checks.warn(message, UserWarning)
        if said is not None:
            said.add(message)
    return np.unique(np.round(np.linspace(0, steps - 1, DEFAULT_MAX_PANELS)).astype(np.int64))


def check_result(fn: str, result) -> TraversalResult:
    if not isinstance(result, TraversalResult):
        raise TypeError(f"{fn}: result must be a latentsweep.TraversalResult, got {type(result).__name__}")
    return result


def check_diagnosis(fn: str, diagnosis, *, latent_dim: int | None = None) -> Diagnosis | None:
    """``None`` or a Diagnosis; when ``latent_dim`` is given, of a model with that many latents
    (the traversal's D: a diagnosis of another model would label rows with the wrong KL)."""
    if diagnosis is None:
        return None
    if not isinstance(diagnosis, Diagnosis):
        raise TypeError(f"{fn}: diagnosis must be a latentsweep.Diagnosis, got {type(diagnosis).__name__}")
    if latent_dim is not None and latent_dim != diagnosis.latent_dim:
        raise ValueError(
            f"{fn}: the result's codes have D={latent_dim} latents but the diagnosis has "
            f"{diagnosis.latent_dim}; pass the diagnosis of the same model"
        )
    return diagnosis


def anchor_outputs(fn: str, result: TraversalResult, anchor: int, positions, steps=None) -> list[np.ndarray]:
    """The drawn outputs of one anchor: a row ``[S', *out_shape]`` per position into
    ``result.dims`` (of ``steps``; default: all), only those checked. A tensor's row is a view
    where its dtype is drawn as it is; a store reads the anchor once. (The anchor's every
    traversal was checked, then copied, before the drawn ones were picked.)"""
    if result.outputs is None:
        raise ValueError(
            f"{fn}: result.outputs is None (the sweep ran with keep_outputs=False); rerun "
            "traverse() with keep_outputs=True to draw the decoded outputs"
        )
    traversals = result.outputs[anchor]
    rows = []
    for position in positions:
        row = as_array(traversals[int(position)])
        rows.append(row if steps is None or len(steps) == row.shape[0] else row[steps])
    finite_result_values(fn, "result.outputs", *rows)
    return rows


def finite_result_values(fn: str, name: str, array: np.ndarray, *more: np.ndarray) -> np.ndarray:
    """``array`` (a result's ``name``, as drawn; with ``more`` parts of it) when it holds no NaN
    or Inf: traverse refuses a decoder that returns them, so only a result changed afterwards has
    them (its curves raised a storm of numpy warnings, its bars and heatmap cells were drawn as 0
    or left blank)."""
    bad = nonfinite_count(array, *more)
    if bad:
        raise ValueError(f"{fn}: {name} has {bad} NaN/Inf value(s); traverse never returns them "
                         "(was the result changed after the sweep?)")
    return array


def all_outputs(fn: str, result: TraversalResult) -> np.ndarray:
    """``[A, K, S, F]`` all kept outputs, features flattened."""
    if result.outputs is None:
        raise ValueError(
            f"{fn}: result.outputs is None (the sweep ran with keep_outputs=False); rerun "
            "traverse() with keep_outputs=True to draw the decoded outputs"
        )
    outputs = finite_result_values(fn, "result.outputs", as_array(result.outputs))
    return outputs.reshape(*outputs.shape[:3], -1)


def dim_order(fn: str, result: TraversalResult, diagnosis: Diagnosis | None, order: str, max_dims=None):
    """Which traversals (latents or directions) to draw, and in which order.

    Returns ``(positions, scores, score_name)``: positions into ``result.dims``; the score each
    drawn traversal is sorted by (``None`` for ``order="dims"``). ``"auto"`` sorts by KL when the
    diagnosis has it (a VAE) and the traversals are latents, else by the measured effect (the
    diagnosis' KL is per latent: a sweep along directions has none).
    """
    _checks.choice(fn, "order", order, ORDERS)
    max_dims = _checks.optional_integer(fn, "max_dims", max_dims, low=1)
    dims = result.dims.tolist()
    max_dims = panel_limit(fn, len(dims), max_dims, traversal_noun(result))
    coordinates = result.directions is None
    diagnosis = check_diagnosis(fn, diagnosis, latent_dim=result.anchors.shape[1])
    if order == "auto":
        order = "kl" if diagnosis is not None and diagnosis.is_variational and coordinates else "effect"
    if order == "kl":
        if not coordinates:
            raise ValueError(
                f"{fn}: order='kl' sorts latents by their KL; this result traverses directions, which "
                "have none: use order='effect' or 'dims'"
            )
        if diagnosis is None or not diagnosis.is_variational:
            raise ValueError(
                f"{fn}: order='kl' needs the diagnosis of a VAE (diagnosis=...); a plain "
                "autoencoder has no KL, use order='effect'"
            )
        scores, name = np.nan_to_num(diagnosis.kl.numpy()[dims], nan=-np.inf), "KL"
    elif order == "effect":
        scores, name = as_array(result.dim_effect).astype(np.float64), "effect"
    else:
        positions = np.arange(len(dims))[:max_dims]
        return positions, None, None
    # Stable sort, largest first: ties keep the order of result.dims.
    positions = np.argsort(-scores, kind="stable")[:max_dims]
    return positions, scores[positions], name


def score_text(score: float, name: str | None) -> str:
    if name is None:
        return ""
    return f"{name} {score:.3g}" if math.isfinite(score) else f"{name} n/a"


def row_labels(result: TraversalResult, positions) -> list[str]:
    """The names of the drawn traversals (``result.labels``: ``"z3"``, ``"PC1 (34%)"``)."""
    return [short_label(result.labels[int(p)]) for p in positions]


def traversal_noun(result: TraversalResult) -> str:
    """``"latent"`` or ``"direction"``: what a row of the picture is."""
    return result.traversal_kind


def value_axis_labels(result: TraversalResult) -> tuple[str, str]:
    """(the values' name, their offsets' name) on a picture's axis: the latent value z, or the
    coordinate along a direction u."""
    if result.directions is None:
        return "latent value z", "offset from the anchor, z - z_anchor"
    return "coordinate along u", "offset along u from the anchor"


def _rows_agree(rows: np.ndarray, values: np.ndarray, dtype: torch.dtype, rtol: float, atol: float) -> bool:
    """Every row of ``rows`` equal to the first, up to the rounding of ``values`` in their own
    ``dtype`` (float16's is 1e-3 of them: mode "prior" offsets of half-precision anchors differed
    by more than 1e-4, and the grid fell back to step numbers)."""
    eps = torch.finfo(dtype).eps
    scale = float(np.abs(values).max()) if values.size else 0.0
    # ``atol`` is relative to the rows' own size: an absolute 1e-5 made mode "posterior" offsets
    # of ±2e-6, ±4e-6 and ±8e-6 "agree", and the grid labelled every row's columns ±2e-6.
    size = float(np.abs(rows).max()) if rows.size else 0.0
    return bool(np.allclose(rows, rows[:1], rtol=max(rtol, 8 * eps), atol=max(atol * size, 8 * eps * scale)))


def grid_columns(values: np.ndarray, anchor_values: np.ndarray | None,
                 labels: tuple[str, str] = ("latent value z", "offset from the anchor, z - z_anchor"),
                 dtype: torch.dtype = torch.float64) -> tuple[np.ndarray | None, str]:
    """Column labels for one anchor's grid, from its values ``[K, S]`` and its own value of each
    traversed latent (or coordinate along each direction) ``[K]``: the values when every row
    takes the same ones (modes "absolute", "quantile"), else the offsets from the anchor when
    those agree (mode "prior"; not without ``anchor_values``), else ``None`` (modes "posterior",
    "empirical": every row has its own range); offsets within the rounding of the values in
    their dtype are 0. ``labels``: :func:`value_axis_labels`.
    ``dtype``: the values' own (the grids of the traversals and of the directions share this
    one rule: float16 offsets that differ by their rounding were labelled ±2 in one picture and
    by step numbers in the other)."""
    values = values.astype(np.float64)
    same_values = _rows_agree(values, values, dtype, 1e-5, 1e-6)
    # Values whose labels do not tell the columns apart ("+1.1" five times for a single latent
    # swept by ±2e-6 around 1.1) give way to the offsets from the anchor when those agree.
    if same_values and (anchor_values is None or _labels_apart(values[0])):
        return values[0], labels[0]
    if anchor_values is None:
        return None, "step"
    anchor_values = anchor_values.astype(np.float64)
    offsets = values - anchor_values[:, None]
    if _rows_agree(offsets, values, dtype, 1e-4, 1e-5):
        # An offset within one rounding of the row's values in their dtype is 0: a float16
        # coordinate along a direction, computed apart from the grid's, left the middle column
        # 1 ulp off ("-0.00098"); offsets beyond that rounding are shown as they are.
        rounding = torch.finfo(dtype).eps * max(float(np.abs(values[0]).max()), abs(float(anchor_values[0])))
        return np.where(np.abs(offsets[0]) <= rounding, 0.0, offsets[0]), labels[1]
    if same_values:
        return values[0], labels[0]
    return None, "step"


def curve_axis(result: TraversalResult, positions) -> tuple[np.ndarray, str]:
    """The x coordinates ``[K', S]`` of the steps of each drawn traversal, shared by all
    anchors: the values when every anchor takes the same ones (modes "absolute", "quantile",
    "empirical"), else the offsets from each anchor's own value (mode "prior"; averaged over
    anchors when they differ, as in mode "posterior")."""
    value_label, offset_label = value_axis_labels(result)
    values = as_array(result.values)[:, positions].astype(np.float64)  # [A, K', S]
    if _rows_agree(values, values, result.values.dtype, 1e-5, 1e-6):
        return values[0], value_label
    offsets = values - as_array(result.anchor_values)[:, positions].astype(np.float64)[:, :, None]
    if _rows_agree(offsets, values, result.values.dtype, 1e-4, 1e-5):
        return offsets[0], offset_label
    return offsets.mean(axis=0), f"{offset_label} (mean over anchors)"


def colour_range(fn: str, vmin, vmax, *arrays: np.ndarray, image_shape: tuple[int, ...] | None = None) -> tuple[float, float]:
    """The values mapped to the colour map's ends: the caller's finite numbers, else the data's
    range (see ``value_range``); vmax > vmin. (An infinite end made every tile one colour.)
    ``image_shape``: the images' shape, when ``arrays`` hold whole images of it (an RGBA
    image's alpha is left out of the range: see ``colour_values``)."""
    from ._images import colour_values, value_blocks, value_range

    # Read a block at a time (whole images of image_shape: an RGBA's alpha is cut per image).
    size = math.prod(image_shape) if image_shape is not None else None
    arrays = tuple(block if image_shape is None else colour_values(block, image_shape)
                   for a in arrays if a is not None for block in value_blocks(a, size))

    for name, value in (("vmin", vmin), ("vmax", vmax)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{fn}: {name} must be None or a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{fn}: {name} must be finite, got {value}")
    if vmin is None or vmax is None:
        low, high = value_range(*arrays)
        if vmin is None and vmax is None:
            low, high = _bulk_range(fn, arrays, low, high)
        vmin, vmax = (low if vmin is None else vmin), (high if vmax is None else vmax)
    if not vmax > vmin:
        raise ValueError(f"{fn}: vmax must be greater than vmin, got vmin={vmin}, vmax={vmax}")
    return float(vmin), float(vmax)


def colour_bar(figure, ax, *, vmin: float, vmax: float, cmap: str, label: str, **options):
    """A colour bar for values ``[vmin, vmax]`` beside ``ax``, each tick written in full (``2e-31``):
    matplotlib's shared factor ("1e-31" above the bar) was drawn over the figure's title."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.ticker import FuncFormatter

    if not math.isfinite(vmax - vmin):  # (±1.7e308: matplotlib's colour bar cannot span it)
        scale = max(abs(vmin), abs(vmax))
        vmin, vmax, label = vmin / scale, vmax / scale, f"{label} (x {scale:.3g})"
    mappable = ScalarMappable(norm=Normalize(vmin, vmax), cmap=cmap)
    bar = figure.colorbar(mappable, ax=ax, label=label, **options)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    return bar


# Colours span the bulk of the values instead of their whole range when that range is over
# 1 / BULK_SHARE times wider: one output of 1e6 among images in [-0.3, 1.2] (or a hot pixel in
# each) drew every tile black. The bulk: the values within one width of the 10-90% quantile range
# on either side of it.
BULK_QUANTILES = (0.1, 0.9)
BULK_SHARE = 0.01


def _bulk_range(fn: str, arrays, low: float, high: float) -> tuple[float, float]:
    """``(low, high)``, or the range of the bulk of the values (BULK_QUANTILES) when the whole
    range is more than 1 / BULK_SHARE times wider, with a warning. Outputs in [0, 1] keep
    [0, 1] (``value_range``: their contrast is the true one, and ``low``, ``high`` say so).
    ``arrays``: blocks of the values (one copy of their finite values is made, in their dtype)."""
    if low >= 0.0 and high <= 1.0:
        return low, high
    finite = np.empty(sum(int(np.count_nonzero(np.isfinite(a))) for a in arrays), np.result_type(*arrays))
    filled = 0
    for a in arrays:
        values = a[np.isfinite(a)]
        finite[filled : filled + values.size] = values
        filled += values.size
    # (halved: a range of ±1.7e308 overflows)
    q_low, q_high = (q * 0.5 for q in _quantiles(finite, BULK_QUANTILES))
    width = q_high - q_low
    total, kept, bulk_low, bulk_high = finite.size, 0, math.inf, -math.inf
    del finite
    for a in arrays:  # (NaN and Inf are never within the bulk's bounds)
        halves = np.multiply(a, 0.5, dtype=np.float64)
        bulk = a[(halves >= q_low - width) & (halves <= q_high + width)]
        if bulk.size:
            kept += bulk.size
            bulk_low, bulk_high = min(bulk_low, float(bulk.min())), max(bulk_high, float(bulk.max()))
    if not (bulk_high > bulk_low and bulk_high * 0.5 - bulk_low * 0.5 < BULK_SHARE * (high * 0.5 - low * 0.5)):
        return low, high
    clipped = (f"{total - kept} of {total} output values lie far outside the others (all: "
               f"{low:.3g} .. {high:.3g}); the colours span the others, {bulk_low:.3g} .. {bulk_high:.3g}, and clip "
               "those beyond")
    collected = _CLIPPED_PICTURES.get()
    if collected is not None:  # (said once by the caller that draws several: clipping_said_once)
        collected.append(clipped)
    else:
        _checks.warn(f"{fn}: {clipped}; pass vmin= and vmax= to choose", UserWarning)
    return bulk_low, bulk_high


def _quantiles(values: np.ndarray, quantiles) -> list[float]:
    """``np.quantile(values.astype(np.float64), quantiles)`` (its default, linear method) without
    the float64 copy: ``values`` (a copy of the caller's own, non-empty) is partitioned in place
    about the two values each quantile lies between, and those are interpolated in float64."""
    last = values.size - 1
    at = [(last * q, math.floor(last * q)) for q in quantiles]
    values.partition(sorted({i for _, below in at for i in (below, min(below + 1, last))}))
    return [float(np.quantile(np.array([values[below], values[min(below + 1, last)]], np.float64), where - below))
            for where, below in at]


# What clipping_said_once collects: the clipping messages of the pictures drawn within it.
_CLIPPED_PICTURES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "latentsweep_clipped_pictures", default=None)


@contextlib.contextmanager
def clipping_collected():
    """Collects the clipping messages of the pictures drawn in this block into the list it
    yields, instead of a warning each (per thread and task); within another such block, the outer
    one collects them (and this yields None)."""
    if _CLIPPED_PICTURES.get() is not None:
        yield None
        return
    token = _CLIPPED_PICTURES.set([])
    try:
        yield _CLIPPED_PICTURES.get()
    finally:
        _CLIPPED_PICTURES.reset(token)


def clipping_text(clipped: list[str]) -> str:
    """Collected clipping messages as one sentence: how many pictures, and the first one's."""
    if len(clipped) == 1:
        return f"a picture clips far outliers: {clipped[0]}"
    return f"{len(clipped)} pictures clip far outliers; in the first, {clipped[0]}"


@contextlib.contextmanager
def clipping_said_once(fn: str, advice: str = "draw one with latentsweep.plots.traversal_grid(result, vmin=..., "
                                              "vmax=...) to choose its scale"):
    """The far outliers clipped by the pictures drawn in this block, said in one warning by
    ``fn`` when it ends (``report``/``explain`` drew four, each advising ``vmin=``/``vmax=``,
    which they do not take); ``advice``: how to choose the scale instead."""
    with clipping_collected() as clipped:
        yield
    if clipped:
        _checks.warn(f"{fn}: {clipping_text(clipped)}; {advice}", UserWarning)


def clipped_ends(vmin: float, vmax: float, *arrays: np.ndarray) -> str:
    """A colour bar's ``extend=``: which ends clip values (drawn as arrows, so that a reader of the
    picture sees them; the warning of ``_bulk_range`` reaches only the one who drew it)."""
    from ._images import finite_extremes

    extremes = finite_extremes(*arrays)
    below = extremes is not None and extremes[0] < vmin
    above = extremes is not None and extremes[1] > vmax
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[below, above]


def check_title(fn: str, title) -> None:
    """``title=``: None (the picture's own) or a string (any object was drawn as its repr, e.g.
    "<object object at 0x7f...>"), as the report's."""
    if title is not None and not isinstance(title, str):
        raise TypeError(f"{fn}: title must be a string or None, got {type(title).__name__}")


def check_cmap(fn: str, cmap: str) -> str:
    from matplotlib import colormaps

    if not isinstance(cmap, str) or cmap not in colormaps:
        raise ValueError(f"{fn}: cmap must be the name of a matplotlib colour map, got {cmap!r}")
    return cmap


def format_value(value: float, *, extra_digits: int = 0, zero: float = 5e-7) -> str:
    """A short signed label: ``-2``, ``+0.5``, ``0``, ``+13.1`` (``extra_digits`` more significant
    digits); a value below ``zero`` in size is ``0``."""
    if abs(value) < zero:
        return "0"
    digits = (2 if abs(value) < 10 else 3) + extra_digits
    return f"{value:+.{digits}g}"


MAX_EXTRA_DIGITS = 6


def format_values(values) -> list[str]:
    """Labels of a row of values (a grid's columns, a range's ends) as :func:`format_value`
    writes them, with as few extra digits as tell distinct values apart (two ends of a range of
    ±2e-6 around 1.1 both read "+1.1"); 0 below 5e-7 of the largest value's size when that is
    under 1 (offsets of ±2e-7 all read "0")."""
    values = [float(v) for v in values]
    extra, zero = _digits_apart(values)
    return [format_value(v, extra_digits=MAX_EXTRA_DIGITS if extra is None else extra, zero=zero) for v in values]


def _digits_apart(values: list[float]) -> tuple[int | None, float]:
    """The fewest extra digits (up to MAX_EXTRA_DIGITS; None: none do) whose labels tell distinct
    values apart, and the size below which a value reads 0 (those count as one value)."""
    zero = 5e-7 * min(1.0, max((abs(v) for v in values), default=0.0))
    distinct = len({0.0 if abs(v) < zero else v for v in values})
    for extra in range(MAX_EXTRA_DIGITS + 1):
        if len({format_value(v, extra_digits=extra, zero=zero) for v in values}) == distinct:
            return extra, zero
    return None, zero


def _labels_apart(values: np.ndarray) -> bool:
    """Whether :func:`format_value`'s labels of distinct values differ with at most one extra digit."""
    extra, _ = _digits_apart([float(v) for v in values])
    return extra is not None and extra <= 1
