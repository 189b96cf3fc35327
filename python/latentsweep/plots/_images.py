"""Turning decoder outputs into displayable images: which output shapes are images, and
colour-mapped RGB tiles in [0, 1] shared by the grid figure and the GIF."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

# Grey (colour-mapped), RGB, and RGBA (sprites: composited over white). Two channels stay tabular.
IMAGE_CHANNELS = (1, 3, 4)
RGBA_CHANNELS = 4


def image_shape_of(fn: str, out_shape, image_shape=None) -> tuple[int, ...]:
    """The ``(H, W)`` or ``(C, H, W)`` shape to view one output as, with C in (1, 3, 4).

    ``image_shape`` (for flat outputs) must hold as many values as the output; without it the
    output itself must be ``[H, W]`` or ``[C, H, W]``.
    """
    out_shape = tuple(int(s) for s in out_shape)
    if image_shape is not None:
        if isinstance(image_shape, (str, bytes)) or not hasattr(image_shape, "__len__"):
            raise TypeError(f"{fn}: image_shape must be a tuple (H, W) or (C, H, W), got {image_shape!r}")
        try:
            shape = tuple(image_shape)
        except TypeError:  # (a 0-d tensor: "iteration over a 0-d tensor")
            raise TypeError(f"{fn}: image_shape must be a tuple (H, W) or (C, H, W), got {image_shape!r}") from None
        if len(shape) not in (2, 3) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in shape
        ):
            raise ValueError(f"{fn}: image_shape must be (H, W) or (C, H, W) of positive ints, got {image_shape!r}")
        shape = tuple(int(s) for s in shape)
        if math.prod(shape) != math.prod(out_shape):
            raise ValueError(
                f"{fn}: image_shape {shape} holds {math.prod(shape)} values but each decoder output "
                f"{out_shape} holds {math.prod(out_shape)}"
            )
        # (a channels-last slip, numpy's and PIL's order, was told its outputs are "not images"). A
        # first axis of 4 beside a last of 1 or 3 is read so too, as before RGBA was drawn: an image
        # 4 pixels high is likelier than an RGBA one 1 or 3 pixels wide.
        if len(shape) == 3 and shape[2] in IMAGE_CHANNELS and (
                shape[0] not in IMAGE_CHANNELS or (shape[0] == RGBA_CHANNELS and shape[2] != RGBA_CHANNELS)):
            raise ValueError(f"{fn}: image_shape {shape} reads as channels last (H, W, C); images here are (C, H, W): "
                             f"pass image_shape=({shape[2]}, {shape[0]}, {shape[1]})")
    else:
        shape = out_shape
    if len(shape) == 2 or (len(shape) == 3 and shape[0] in IMAGE_CHANNELS):
        if 0 in shape:
            raise ValueError(f"{fn}: images of shape {shape} hold no pixels")
        return shape
    raise ValueError(
        f"{fn}: decoder outputs of shape {out_shape} are not images ([H, W], or [C, H, W] with C "
        "1, 3 or 4 (RGBA)); pass image_shape=(H, W) or (C, H, W) for flat image vectors, or draw tabular "
        "outputs with response_curves / sensitivity_heatmap"
    )


def is_image_output(out_shape, image_shape=None, *, fn: str = "latentsweep") -> bool:
    """Whether outputs of this shape are drawn as images (an ``image_shape`` that does not fit
    still raises, named for ``fn``: a wrong hint is an error, not a fallback)."""
    if image_shape is not None:
        image_shape_of(fn, out_shape, image_shape)
        return True
    try:
        image_shape_of(fn, out_shape)
    except ValueError:
        return False
    return True


# The most values a check or colour scale reads at a time: a block's temporaries (a mask, a
# float64 copy) stay small whatever the outputs' size (whole outputs copied to float64 took 3.6 GB
# to draw 12 x 11 images of 3 x 512 x 512).
BLOCK_VALUES = 1 << 22


def value_blocks(array: np.ndarray, image_size: int | None = None):
    """Views of ``array`` that together hold its values, each at most BLOCK_VALUES of them where
    the leading axes can cut it; with ``image_size``, each whole images of that many values."""
    if array.size <= BLOCK_VALUES or array.ndim <= 1 or (image_size and array[0].size % image_size):
        yield array
        return
    for row in array:
        yield from value_blocks(row, image_size)


def finite_extremes(*arrays: np.ndarray | None) -> tuple[float, float] | None:
    """The smallest and largest finite values of ``arrays`` (None: they have none), read a block
    at a time."""
    low = high = None
    for block in (block for array in arrays if array is not None for block in value_blocks(array)):
        finite = np.isfinite(block)
        values = block if finite.all() else block[finite]
        if values.size:
            block_low, block_high = float(values.min()), float(values.max())
            low = block_low if low is None else min(low, block_low)
            high = block_high if high is None else max(high, block_high)
    return None if low is None else (low, high)


def value_range(*arrays: np.ndarray) -> tuple[float, float]:
    """[0, 1] when every value lies there (sigmoid outputs keep their true contrast), else the
    data's own range."""
    extremes = finite_extremes(*arrays)
    if extremes is None:
        return 0.0, 1.0
    low, high = extremes
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def colour_values(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The values of ``array`` (whole images of ``shape``, any leading axes) that the colour
    scale spans: all of them, but an RGBA image's alpha, which is an opacity in [0, 1] whatever
    the colours' scale (with it, colours in [2, 3] were drawn on a scale of [1, 3])."""
    if len(shape) == 3 and shape[0] == RGBA_CHANNELS:
        return array.reshape(-1, *shape)[:, :3]
    return array


def shrink_factor(shape: tuple[int, ...], max_side: int | None) -> int:
    """The smallest whole f such that images of ``shape`` averaged over f x f blocks have no side
    beyond ``max_side`` pixels (1: as they are; also without a bound)."""
    return 1 if max_side is None else max(1, -(-max(shape[-2:]) // max_side))


def shrunk(outputs: np.ndarray, lead_ndim: int, shape: tuple[int, ...], max_side: int | None) -> tuple[np.ndarray, tuple[int, ...]]:
    """Images (the first ``lead_ndim`` axes of ``outputs`` index them, each of ``shape``) whose
    larger side exceeds ``max_side`` pixels, each averaged over blocks of f x f pixels for the
    smallest whole f that fits (a block cut by the edge over the pixels it holds), and their new
    shape; smaller images as they are. Shrunk a row of the first axis at a time: its copies in
    float are the only temporaries."""
    factor = shrink_factor(shape, max_side)
    if factor <= 1:
        return outputs, shape
    height, width = shape[-2:]
    channels = shape[0] if len(shape) == 3 else 1
    dtype = torch.float64 if outputs.dtype == np.float64 else torch.float32
    rows = []
    for row in outputs.reshape(outputs.shape[0], -1, channels, height, width):
        planes = torch.from_numpy(np.ascontiguousarray(row)).to(dtype)
        rows.append(torch.nn.functional.avg_pool2d(planes, factor, ceil_mode=True).numpy())
    small = np.stack(rows)
    new_shape = (*shape[:-2], *small.shape[-2:])
    return small.reshape(*outputs.shape[:lead_ndim], *new_shape), new_shape


def shrunk_size(shape: tuple[int, ...], max_side: int | None = None) -> tuple[int, int]:
    """``(height, width)`` of the tile :func:`rgb_tile` draws of an image of ``shape``."""
    factor = shrink_factor(shape, max_side)
    return -(-shape[-2] // factor), -(-shape[-1] // factor)


def rgb_tile(image: np.ndarray, shape: tuple[int, ...], *, vmin: float, vmax: float, cmap: str = "gray",
             max_side: int | None = None) -> np.ndarray:
    """One output (``shape``'s values) as its RGB tile ``[h, w, 3]`` (:func:`to_rgb`), averaged
    down first when larger than ``max_side`` pixels a side (:func:`shrunk`). The pictures draw a
    tile at a time: all their tiles at once, in float64 with the temporaries, took 5 times the
    outputs' bytes."""
    image = image.reshape(1, *shape)
    image, shape = shrunk(image, 1, shape, max_side)
    return to_rgb(image, 1, shape, vmin=vmin, vmax=vmax, cmap=cmap)[0]


def to_rgb(outputs: np.ndarray, lead_ndim: int, shape: tuple[int, ...], *, vmin: float, vmax: float, cmap: str = "gray") -> np.ndarray:
    """Outputs whose first ``lead_ndim`` axes index images -> ``[*lead, H, W, 3]`` RGB in
    [0, 1]: one channel goes through the colour map, three channels are shown as they are
    (clipped to [vmin, vmax]), four are RGBA: the colours as three channels are, composited
    over white by their alpha clipped to [0, 1]. NaN colours are drawn black, and so is a
    pixel whose alpha is NaN (a NaN hidden by transparency would not be seen)."""
    from matplotlib import colormaps

    images = outputs.reshape(*outputs.shape[:lead_ndim], *shape).astype(np.float64)
    # Halved, in float64: a range wider than half the dtype's largest value (float32 outputs in
    # [-3e38, 3e38]) overflowed to inf in images - vmin, and every tile was drawn black or white.
    with np.errstate(invalid="ignore"):  # (NaN outputs: drawn black below)
        scaled = np.clip((images * 0.5 - vmin * 0.5) / (vmax * 0.5 - vmin * 0.5), 0.0, 1.0)
    scaled = np.nan_to_num(scaled, nan=0.0)
    if len(shape) == 3 and shape[0] == RGBA_CHANNELS:
        alpha = images[..., 3, :, :]
        unknown = np.isnan(alpha)
        alpha = np.clip(np.where(unknown, 1.0, alpha), 0.0, 1.0)[..., None]
        colours = np.where(unknown[..., None], 0.0, np.moveaxis(scaled[..., :3, :, :], -3, -1))
        return colours * alpha + (1.0 - alpha)
    if len(shape) == 3 and shape[0] == 3:
        return np.moveaxis(scaled, -3, -1)
    if len(shape) == 3:
        scaled = scaled[..., 0, :, :]
    return colormaps[cmap](scaled)[..., :3]


def single_output(fn: str, name: str, value, out_shape, anchor: int, num_anchors: int) -> np.ndarray:
    """One output (an input image or a reconstruction) for ``anchor``: ``value`` is either one
    output ``[*out_shape]`` or one per anchor ``[A, *out_shape]``."""
    from ._common import user_array

    # (NaN/Inf were drawn black without a word; float64 images beyond float32 became inf)
    array = user_array(fn, name, value)
    size = math.prod(out_shape)
    if array.size == size:
        return array.reshape(out_shape)
    if array.ndim >= 1 and array.shape[0] == num_anchors and array.size == num_anchors * size:
        return array[anchor].reshape(out_shape)
    raise ValueError(
        f"{fn}: {name} must hold one output of shape {tuple(out_shape)} or one per anchor "
        f"[{num_anchors}, *{tuple(out_shape)}], got shape {tuple(array.shape)}"
    )
