"""What explain's sweeps will hold in memory and decode, said before the first of them.

explain traverses every active latent of a VAE by default, twice (the recommended mode, and the
posterior's range for contrast). At a Stable-Diffusion VAE's scale ([4, 32, 32] latents, 3 x 256 x
256 outputs) that is 720,896 decoded images: kept for the pictures, 546 GiB, each sweep refused
alone by traverse's memory check with traverse's advice (``out='sweep.zarr'`` or
``keep_outputs=False``, which explain does not take), and sweeps that fitted alone were not counted
together (two of 45% of the memory each). Here they are counted together, and refused or announced
in explain's words. Of more latents than the report draws, a sweep keeps the statistics alone, and
the drawn latents are swept again with their outputs (:mod:`latentsweep.report_pictures`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from . import _checks
from .sinks import Geometry

# Output values decoded by all of explain's sweeps (points x features) above which it says how
# much it will decode and how to decode less: 2^32 values are 21,845 decodes of a 3 x 256 x 256
# image (a few minutes of a GPU for a Stable-Diffusion VAE's decoder, hours of a CPU), and
# 33 million of a 128-feature tabular decoder.
LARGE_WORK_VALUES = 2**32

# What explain asks for less with (the command line words it as its options).
ADVICE = "pass fewer steps, anchors or dims"


class Planned(NamedTuple):
    """One of explain's sweeps: its grid, and whether its result keeps the outputs."""

    geometry: Geometry
    keeps_outputs: bool = True


def check_sweeps(fn: str, sweeps: dict[str, Planned], *, encoded: bool) -> None:
    """ValueError if the results of ``sweeps`` (name -> planned sweep), all held until the
    report is written, exceed half of the memory (the outputs' rule, :func:`latentsweep.traverse`'s
    for one sweep), or if they and the statistics a sweep merges while it runs (its float64 sums
    and the CPU's own, counted on the CPU whatever the device) exceed all of it: traverse checks
    a sweep's statistics alone, not beside the results explain already holds (at a
    Stable-Diffusion VAE's 4,096 latents of 3 x 256 x 256 outputs, 13 GB merged beside 8 GB
    held). A warning when they decode more than LARGE_WORK_VALUES output values. ``encoded``:
    explain encoded the data itself (a refusal says how not to encode again)."""
    sweeps = {name: planned for name, planned in sweeps.items() if planned.geometry.num_rows}
    if not sweeps:
        return
    first = next(iter(sweeps.values())).geometry
    points = sum(planned.geometry.num_rows for planned in sweeps.values())
    listed = "; ".join(f"{name} {_grid(planned.geometry)}" + ("" if planned.keeps_outputs else " (statistics only)")
                       for name, planned in sweeps.items())
    what = f"{points:,} decoded outputs of shape {list(first.out_shape)} (anchors x traversals x steps: {listed})"
    held = sum(planned.geometry.result_bytes(planned.keeps_outputs) for planned in sweeps.values())
    again = (" (the data is encoded first: encode it once, posterior = latentsweep.encode(encoder, data), and pass "
             "posterior= to call explain again without encoding)") if encoded else ""
    _checks.fits_in_memory(fn, f"keeping its sweeps' results, {what},", held, torch.device("cpu"), ADVICE + again)
    merging = max(planned.geometry.merging_bytes(True) for planned in sweeps.values())
    _checks.fits_in_memory(fn, f"keeping its sweeps' results beside a running sweep's statistics (merged in "
                           f"float64, {merging / 2**30:,.1f} GiB), {what},", held + merging, torch.device("cpu"),
                           ADVICE + again, share=1.0)
    values = sum(planned.geometry.num_rows * planned.geometry.features for planned in sweeps.values())
    if values > LARGE_WORK_VALUES:
        _checks.warn(f"{fn}: its sweeps decode {what}, and hold {held / 2**30:,.1f} GiB of results in memory: this "
                     f"may take long; {ADVICE}", UserWarning)


def _grid(geometry: Geometry) -> str:
    return " x ".join(f"{size:,}" for size in geometry.grid_shape)
