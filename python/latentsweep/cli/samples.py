"""What ``latentsweep sample`` needs besides the library: the model's latent size (so prior
samples need no ``--latent-dim`` for a typical model) and a labelled picture of the samples."""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
import torch

from .._modules import without_grad
from .errors import CliError
from .loading import part_device_dtype

# Attributes that models commonly use for their latent size, tried in order.
LATENT_DIM_ATTRIBUTES = ("latent_dim", "latent_size", "z_dim", "zdim", "latent_dims", "n_latent", "num_latents", "code_size")
# The picture's name in its warnings (far outliers clipped).
PICTURE = "samples.png"
# At most this many samples per input are drawn in samples.png (all are saved in the .npy files).
MAX_PICTURE_COLUMNS = 16
# At most this many rows (inputs, or prior samples by the row) are drawn: -n 100000 made a figure
# 560,000 pixels tall, and drawing it ran out of memory.
MAX_PICTURE_ROWS = 16
# A tile is drawn at most this many times taller than wide (or wider than tall), stretched
# beyond: a [1, 20000, 1] output drawn to scale made a figure 1.6 million pixels tall, and the
# kernel killed the process for its memory.
MAX_TILE_ASPECT = 4


def latent_dim(model, decoder, given: int | None) -> tuple[int, str]:
    """The latent size D for prior samples and where it came from: ``--latent-dim``, else a
    ``latent_dim``-like attribute of the model or decoder, else the input size of the decoder's
    first layer when that is an ``nn.Linear``, else the one input size of the model's Linear
    layers that the decoder accepts (a decoder written as a method, as in PyTorch's VAE
    example). A guess is checked by decoding one code."""
    if given is not None:
        return given, "--latent-dim"
    found = stated_latent_dim(model, decoder)
    if found is not None:
        dim, source = found
        failure = _decode_fails(model, decoder, dim)
        if failure is None:
            return dim, source
        raise CliError(f"the decoder fails on codes of size {dim} (taken from {source}: {failure}); give --latent-dim D "
                       "(or --latent-shape C,H,W for a decoder that takes structured codes)")
    owner = model if isinstance(model, torch.nn.Module) else None
    sizes = sorted({m.in_features for m in owner.modules() if isinstance(m, torch.nn.Linear)}) if owner else []
    accepted = [size for size in sizes if _decode_fails(model, decoder, size) is None]
    if len(accepted) == 1:
        return accepted[0], "the only input size of the model's Linear layers that the decoder accepts"
    raise CliError(
        "cannot tell the model's latent size: give --latent-dim D, or --latent-shape C,H,W for a decoder that "
        "takes structured codes (or, for a VAE, --data to sample its posterior at those inputs; or give the model "
        "a latent_dim attribute)" + (f"; the decoder accepts codes of each of the sizes {accepted}" if accepted else "")
    )


def stated_latent_dim(model, decoder) -> tuple[int, str] | None:
    """(D, where it came from) when the model says its latent size: a ``latent_dim``-like
    attribute, else the input size of the decoder's first ``nn.Linear``; None otherwise."""
    return _from_attributes(model, decoder) or _from_first_layer(decoder)


def _decode_fails(model, decoder, dim: int) -> str | None:
    """None when the decoder takes one code of size ``dim``, else the error's type."""
    try:
        with without_grad():
            device, dtype = part_device_dtype(decoder, model)
            decoder(torch.zeros(1, dim, dtype=dtype, device=device))
    except Exception as error:  # noqa: BLE001  (a wrong size: any error the model raises)
        return type(error).__name__
    return None


def _from_attributes(model, decoder) -> tuple[int, str] | None:
    for owner in (model, decoder):
        for name in LATENT_DIM_ATTRIBUTES:
            value = getattr(owner, name, None)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0:
                return int(value), f"the model's {name}"
    return None


def _from_first_layer(decoder) -> tuple[int, str] | None:
    from .._modules import first_linear_inputs

    width = first_linear_inputs(decoder)
    return None if width is None else (width, "the in_features of the decoder's first Linear layer")


def save_samples_picture(images: np.ndarray, path: Path, *, per_row: int, row_label, title: str,
                         column_label: str = "sample"):
    """Draws ``images`` ``[N, *image_shape]`` as one labelled picture, ``per_row`` to a row
    (at most MAX_PICTURE_COLUMNS shown per row, and MAX_PICTURE_ROWS rows); ``row_label(r)``
    names row r. Returns the figure."""
    import textwrap

    from ..plots._common import SAVE_DPI, colour_range, finish, new_figure, shown_tile_pixels
    from ..plots._images import rgb_tile

    total_rows = -(-len(images) // per_row)
    rows, shown = min(total_rows, MAX_PICTURE_ROWS), min(per_row, MAX_PICTURE_COLUMNS, len(images))
    # the pictures' one rule: far outliers clipped with a warning (a hot pixel drew every tile black)
    low, high = colour_range(PICTURE, None, None, images, image_shape=tuple(images.shape[1:]))
    drawn = [i for i in (r * per_row + c for r in range(rows) for c in range(shown)) if i < len(images)]
    # Tiles no larger than the picture shows, averaged down ([3, 2048, 2048] outputs drawn as they
    # are made a canvas of gigabytes), a tile at a time
    tiles = [rgb_tile(images[i], tuple(images.shape[1:]), vmin=low, vmax=high, max_side=shown_tile_pixels(SAVE_DPI))
             for i in drawn]
    height, width = tiles[0].shape[:2]
    canvas = np.ones((rows * (height + 1) - 1, shown * (width + 1) - 1, 3), dtype=np.float32)
    for index, tile in zip(drawn, tiles):
        r, c = divmod(index, per_row)
        canvas[r * (height + 1): r * (height + 1) + height, c * (width + 1): c * (width + 1) + width] = tile
    inches = 0.45 if max(height, width) <= 16 else 0.8  # per tile
    aspect = min(max(height / width, 1 / MAX_TILE_ASPECT), MAX_TILE_ASPECT)
    figure = new_figure(max(4.0, 1.2 + shown * inches), 1.1 + rows * inches * aspect)
    axes = figure.add_subplot()
    axes.imshow(canvas, interpolation="nearest", aspect="equal" if aspect == height / width else "auto")
    axes.set_yticks([r * (height + 1) + height / 2 for r in range(rows)], [row_label(r) for r in range(rows)])
    axes.set_xticks([c * (width + 1) + width / 2 for c in range(shown)], [str(c) for c in range(shown)])
    # (4 prior samples, drawn 8 to a row, are all of them: not "first 4 of 8")
    axes.set_xlabel(column_label + (f" (first {shown} of {per_row})" if shown < min(per_row, len(images)) else ""))
    if rows < total_rows:
        axes.set_ylabel(f"first {rows} of {total_rows} rows")
    axes.tick_params(length=0)
    axes.set_title("\n".join(textwrap.wrap(title, width=int(figure.get_figwidth() * 11))), fontsize=9)
    return finish(figure, path)
