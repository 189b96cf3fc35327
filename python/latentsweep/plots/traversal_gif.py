"""An animated GIF of one anchor's traversal: each frame is one step, every latent at once."""

from __future__ import annotations

import io
import math

import numpy as np

from .. import _checks
from . import _common
from ._images import image_shape_of, rgb_tile, shrunk_size

_FN = "latentsweep.plots.traversal_gif"
LAYOUTS = ("side-by-side", "stacked")
_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)


def traversal_gif(
    result,
    *,
    anchor: int = 0,
    layout: str = "side-by-side",
    diagnosis=None,
    order: str = "auto",
    max_dims: int | None = None,
    image_shape=None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "gray",
    tile_size: int = 64,
    duration: int = 150,
    bounce: bool = True,
    path=None,
):
    """Animates one anchor's traversal: frame s shows every drawn latent at its step s.

    Args:
        result: a :class:`TraversalResult` with image outputs (see :func:`traversal_grid`).
        anchor: which anchor to animate.
        layout: ``"side-by-side"`` (one row of tiles, the latent above each tile and its value
            below) or ``"stacked"`` (one row per latent: name, tile, value).
        diagnosis, order, max_dims: which latents, in which order (see :func:`traversal_grid`).
        image_shape: ``(H, W)`` or ``(C, H, W)`` for flat outputs.
        vmin, vmax, cmap: colour scale (see :func:`traversal_grid`).
        tile_size: smaller outputs are enlarged by a whole factor (nearest neighbour, so pixels
            stay sharp) until a tile's longer side is at least this many pixels, keeping their
            aspect ratio; at most 4096.
        duration: milliseconds per frame (at most 655350, the GIF format's limit).
        bounce: play the steps forward then back (``2 S - 2`` frames, a seamless loop) instead
            of forward only (``S`` frames).
        path: also write the GIF there.

    Returns:
        the animated GIF as a ``PIL.Image.Image`` (``n_frames``, ``seek``; save it with
        ``image.save(p, save_all=True)``).
    """
    path = _common.output_path(_FN, path, suffixes=(".gif",))
    from PIL import Image

    data = gif_bytes(
        result, anchor=anchor, layout=layout, diagnosis=diagnosis, order=order, max_dims=max_dims,
        image_shape=image_shape, vmin=vmin, vmax=vmax, cmap=cmap, tile_size=tile_size,
        duration=duration, bounce=bounce,
    )
    if path is not None:
        _common.write_file(_FN, path, lambda p: p.write_bytes(data))
    return Image.open(io.BytesIO(data))


# The enlarged tiles of all frames are held at once before encoding: bounded.
MAX_TILE_BYTES = 256 << 20


def gif_bytes(
    result, *, anchor=0, layout="side-by-side", diagnosis=None, order="auto", max_dims=None,
    image_shape=None, vmin=None, vmax=None, cmap="gray", tile_size=64, duration=150, bounce=True, fn: str = _FN,
    max_tile_size: int | None = None,
) -> bytes:
    """The encoded GIF of :func:`traversal_gif` (what the HTML report inlines; ``fn``: the public
    function that draws it, whose arguments the errors' advice names). ``max_tile_size``: outputs
    larger than this many pixels a side are shrunk to fit, by a whole factor (the report's)."""
    result = _common.check_result(_FN, result)
    anchor = _checks.index(_FN, "anchor", anchor, result.values.shape[0], what="anchor(s)")
    _checks.choice(_FN, "layout", layout, LAYOUTS)
    shape = image_shape_of(_FN, result.out_shape, image_shape)
    cmap = _common.check_cmap(_FN, cmap)
    tile_size = _checks.integer(_FN, "tile_size", tile_size, low=1, high=4096)
    duration = _checks.integer(_FN, "duration", duration, low=1, high=655_350)  # (GIF: 16-bit centiseconds)
    _checks.boolean(_FN, "bounce", bounce)
    positions, _, _ = _common.dim_order(_FN, result, diagnosis, order, max_dims)

    outputs = _common.anchor_outputs(_FN, result, anchor, positions)  # K' x [S, *out_shape]
    vmin, vmax = _common.colour_range(_FN, vmin, vmax, *outputs, image_shape=shape)
    rows, num_steps = len(outputs), outputs[0].shape[0]
    height, width = shrunk_size(shape, max_tile_size)
    scale = max(1, math.ceil(tile_size / max(height, width)))
    enlarged = rows * num_steps * height * width * scale * scale * 3  # bytes of the enlarged uint8 tiles
    if enlarged > MAX_TILE_BYTES:  # (said before the tiles are drawn: their float64 was 8 times these)
        # (a smaller tile_size helps only where it enlarges the tiles; report takes no tile_size)
        if fn != _FN:
            made, advice = f"the GIF of anchor {anchor}", "pass max_dims= (fewer rows), or gifs=False"
        else:
            made = f"tile_size={tile_size}"
            advice = "pass a smaller tile_size or max_dims" if scale > 1 else (
                "the tiles are the outputs' own size (tile_size only enlarges smaller ones): pass max_dims, or "
                "traverse fewer steps")
        raise ValueError(
            f"{fn}: {made} makes {rows} x {num_steps} tiles of "
            f"{height * scale} x {width * scale} pixels ({enlarged / 2**20:,.0f} MiB before encoding, "
            f"more than {MAX_TILE_BYTES >> 20} MiB); {advice}"
        )
    tiles = np.empty((rows, num_steps, height, width, 3), np.uint8)  # enlarged as bytes, not float64 (8x the memory)
    for k, row in enumerate(outputs):
        for step, image in enumerate(row):
            tile = rgb_tile(image, shape, vmin=vmin, vmax=vmax, cmap=cmap, max_side=max_tile_size)
            tiles[k, step] = (tile * 255).round()
    tiles = np.repeat(np.repeat(tiles, scale, axis=2), scale, axis=3)

    values = _common.as_array(result.values)[anchor, positions]  # [K', S]
    names = _common.row_labels(result, positions)
    steps = list(range(tiles.shape[1]))
    if bounce and len(steps) > 2:
        steps += steps[-2:0:-1]
    font = _font()
    frames = [
        _frame(tiles[:, s], names, values[:, s], f"anchor {anchor}  step {s + 1}/{tiles.shape[1]}", layout, font)
        for s in steps
    ]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0,
        optimize=False,
    )
    return buffer.getvalue()


def _font():
    from PIL import ImageFont

    try:  # Pillow >= 10.1 with FreeType: the bundled scalable font, no file on disk needed
        return ImageFont.load_default(size=12)
    except TypeError:
        return ImageFont.load_default()


def _frame(tiles: np.ndarray, names: list[str], values: np.ndarray, header: str, layout: str, font):
    """One frame: ``tiles [K', h, w, 3]`` uint8 with their names (latents or directions) and
    current values."""
    from PIL import Image, ImageDraw

    count, h, w, _ = tiles.shape
    line = 16  # text line height in pixels
    pad = 6
    texts = [f"{v:+.2f}" for v in values]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # Wide enough for the longest name ("PC1 (34%)", "z[1,0,2]"), at least 48 px.
    name_w = max([48, *(measure.textbbox((0, 0), n, font=font)[2] + 6 for n in names)])
    if layout == "side-by-side":
        cell_w = max(w, name_w)
        size = (pad + count * (cell_w + pad), line + pad + line + h + line + pad)
        frame = Image.new("RGB", size, _BACKGROUND)
        draw = ImageDraw.Draw(frame)
        for i in range(count):
            left = pad + i * (cell_w + pad)
            top = line + pad
            _centred_text(draw, (left + cell_w / 2, top + line / 2), names[i], font)
            frame.paste(Image.fromarray(tiles[i]), (left + (cell_w - w) // 2, top + line))
            _centred_text(draw, (left + cell_w / 2, top + line + h + line / 2), texts[i], font)
    else:
        value_w = 56
        size = (pad + name_w + w + value_w + pad, line + pad + count * (h + pad))
        frame = Image.new("RGB", size, _BACKGROUND)
        draw = ImageDraw.Draw(frame)
        for i in range(count):
            top = line + pad + i * (h + pad)
            _centred_text(draw, (pad + name_w / 2, top + h / 2), names[i], font)
            frame.paste(Image.fromarray(tiles[i]), (pad + name_w, top))
            _centred_text(draw, (pad + name_w + w + value_w / 2, top + h / 2), texts[i], font)
    draw.text((pad, 3), header, fill=_TEXT, font=font)
    return frame


def _centred_text(draw, centre, text: str, font) -> None:
    """Text centred on a point (measured, since bitmap fallback fonts have no anchors)."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = centre
    draw.text((x - (right - left) / 2 - left, y - (bottom - top) / 2 - top), text, fill=_TEXT, font=font)
