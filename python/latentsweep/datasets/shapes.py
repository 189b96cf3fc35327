"""A procedural dSprites-like data set: one white shape on black, five factors, no download."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import torch

from .. import _checks
from . import _protocol

_FN = "latentsweep.datasets.Shapes"
SHAPES = ("square", "circle", "triangle")
FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")
_TABLES: dict[int, torch.Tensor] = {}  # resolution -> every image; the same for all instances
_SUPERSAMPLE = 2  # 2x2 samples per pixel: grey edges, so small moves still change the image


class Shapes:
    """Images of a square, circle or triangle with known scale, orientation and position.

    Factors (all discrete, sampled uniformly and independently, like dSprites):

    ============  ======  ======================================================
    name          values  meaning
    ============  ======  ======================================================
    shape         3       square, circle, triangle
    scale         6       0.5 .. 1.0 of the largest size (a circle of radius 0.16)
    orientation   8       0 .. 7/16 pi rad, so each orientation of the square and
                          triangle is distinct (the circle looks the same)
    x, y          16, 16  centre at 0.25 .. 0.72 of the width / height, in steps
                          of 1/32 (whole pixels)
    ============  ======  ======================================================

    Observations are ``[n, 1, R, R]`` float32 images in [0, 1] (R = ``resolution``), rendered
    deterministically: each pixel is the fraction of its 2x2 sub-pixel samples inside the shape.
    At R = 32 the upright square (orientation 0) looks the same at scales 3 and 4 (its edges
    fall between the same sub-pixel samples): 256 pairs of images, 0.7% of all, whose scale no
    model can tell apart. Every other square and triangle image is distinct, and at R = 64 all
    are.
    All 36,864 images are built on first use (about a second; 38 MB at R = 32, kept for the
    process and shared by instances of the same resolution up to 64) and then looked up.

    Args:
        resolution: image side in pixels, a multiple of 32 (default 32).
        fixed: factors held at one value, by name or index, e.g. ``{"shape": 0}``: they are left
            out of ``factor_sizes``, ``factor_names`` and the factor rows (F becomes 5 minus the
            number fixed), and every observation uses the fixed value.

    The ground-truth data set protocol: ``factor_sizes``, ``factor_names``,
    ``sample_factors(n, generator)``, ``observations(factors)``.
    """

    ALL_SIZES = (3, 6, 8, 16, 16)

    def __init__(self, *, resolution: int = 32, fixed: Mapping | None = None) -> None:
        self.resolution = _checks.integer(_FN, "resolution", resolution, low=32, high=1024)
        if self.resolution % 32:
            raise ValueError(f"{_FN}: resolution must be a multiple of 32 (positions move by whole pixels), got {resolution}")
        if fixed is not None and not isinstance(fixed, Mapping):
            raise TypeError(f"{_FN}: fixed must be a dict of factor name (or index) -> value, got {type(fixed).__name__}")
        self.fixed: dict[int, int] = {}
        for key, value in (fixed or {}).items():
            # (True was factor 1; numpy's integers were refused as keys)
            named = isinstance(key, str) and key in FACTOR_NAMES
            index = FACTOR_NAMES.index(key) if named else key
            if not named and (isinstance(index, (str, bool)) or not isinstance(index, numbers.Integral)
                              or not 0 <= index < len(FACTOR_NAMES)):
                raise ValueError(f"{_FN}: fixed keys must be factor names {FACTOR_NAMES} or indices 0..4, got {key!r}")
            index = int(index)
            if index in self.fixed:  # ({"shape": 0, 0: 1}: the last one won)
                raise ValueError(f"{_FN}: fixed names factor {FACTOR_NAMES[index]!r} twice (by name and by index)")
            self.fixed[index] = _checks.integer(_FN, f"fixed[{key!r}]", value, low=0, high=self.ALL_SIZES[index] - 1)
        self.free = [j for j in range(len(FACTOR_NAMES)) if j not in self.fixed]
        self._images: torch.Tensor | None = None  # [36864, R, R] uint8, built on first use
        if not self.free:
            raise ValueError(f"{_FN}: at least one factor must vary; all five are fixed")

    @property
    def factor_sizes(self) -> list[int]:
        return [self.ALL_SIZES[j] for j in self.free]

    @property
    def factor_names(self) -> list[str]:
        return [FACTOR_NAMES[j] for j in self.free]

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return (1, self.resolution, self.resolution)

    def __repr__(self) -> str:
        fixed = {FACTOR_NAMES[j]: v for j, v in self.fixed.items()}
        return f"Shapes(resolution={self.resolution}, fixed={fixed})"

    def sample_factors(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[n, F]`` int64 factor values, each uniform over its range, drawn with ``generator``."""
        n = _checks.integer(f"{_FN}.sample_factors", "n", n, low=0)
        generator = _protocol.generator(f"{_FN}.sample_factors", generator)
        _checks.fits_in_memory(f"{_FN}.sample_factors", f"the factors [n={n}, F={len(self.free)}]",
                               2 * n * len(self.free) * 8, torch.device("cpu"), "draw fewer")  # (columns, then stacked)
        columns = [torch.randint(size, (n,), generator=generator, device="cpu") for size in self.factor_sizes]
        return torch.stack(columns, dim=1)

    def observations(self, factors) -> torch.Tensor:
        """``[n, F]`` factor values -> ``[n, 1, R, R]`` float32 images in [0, 1]."""
        r = self.resolution  # (uint8 rows of the table, then their float32 copy; 10**7 rows were killed by the OS)
        rows = factors.shape[0] if isinstance(factors, torch.Tensor) and factors.dim() == 2 else 0
        # (before the full [n, 5] factor table: an expand()ed [10^9, 5] failed in the allocator)
        if (nbytes := rows * (r * r * 5 + 8 * len(FACTOR_NAMES))) > _checks.UNCHECKED_BYTES:
            _checks.fits_in_memory(f"{_FN}.observations", f"the images [n={rows}, 1, {r}, {r}]",
                                   nbytes, torch.device("cpu"), "ask for fewer rows at a time")
        full = self._full_factors(factors)
        flat = (((full[:, 0] * 6 + full[:, 1]) * 8 + full[:, 2]) * 16 + full[:, 3]) * 16 + full[:, 4]
        return self._table()[flat].unsqueeze(1).to(torch.float32).div_(_SUPERSAMPLE**2)

    def _table(self) -> torch.Tensor:
        """All 36,864 images as uint8 sub-sample counts (exact), built on first use.

        Positions are whole-pixel shifts, so each image is one of 144 templates (shape x scale x
        orientation, rendered at x = y = 0) moved by (x, y) * R/32 pixels: exact and fast.
        """
        if self.resolution in _TABLES:
            return _TABLES[self.resolution]
        if self._images is None:
            r = self.resolution  # (38.7 GB at R = 1024: the OS killed the process while building it)
            _checks.fits_in_memory(f"{_FN}.observations", f"the table of all 36,864 images at resolution {r}",
                                   36864 * r * r, torch.device("cpu"), "pass a smaller resolution")
            corner = torch.cartesian_prod(*(torch.arange(n, device="cpu") for n in self.ALL_SIZES[:3]))
            zeros = torch.zeros(corner.shape[0], 2, dtype=torch.int64, device="cpu")
            templates = self._render(torch.cat([corner, zeros], 1)).mul_(_SUPERSAMPLE**2).round_().to(torch.uint8)
            r, step = self.resolution, self.resolution // 32
            images = torch.zeros(corner.shape[0], 16, 16, r, r, dtype=torch.uint8, device="cpu")
            for x in range(16):
                for y in range(16):
                    images[:, x, y, y * step :, x * step :] = templates[:, : r - y * step, : r - x * step]
            self._images = images.reshape(-1, r, r)
            if r <= 64:  # shared by every instance (38 MB at R = 32); larger tables stay per instance
                _TABLES[r] = self._images
        return self._images

    def _full_factors(self, factors) -> torch.Tensor:
        fn = f"{_FN}.observations"
        if not isinstance(factors, torch.Tensor):
            raise TypeError(f"{fn}: factors must be a torch.Tensor [n, {len(self.free)}], got {type(factors).__name__}")
        if factors.dim() != 2 or factors.shape[1] != len(self.free):
            raise ValueError(f"{fn}: factors must be [n, {len(self.free)}] ({self.factor_names}), got {tuple(factors.shape)}")
        factors = _protocol.factor_tensor(fn, "factors", factors)
        full = torch.zeros(factors.shape[0], len(FACTOR_NAMES), dtype=torch.int64, device=factors.device)
        for column, j in enumerate(self.free):
            values = factors[:, column]
            if values.numel() and (int(values.min()) < 0 or int(values.max()) >= self.ALL_SIZES[j]):
                raise ValueError(
                    f"{fn}: factor {FACTOR_NAMES[j]!r} must lie in [0, {self.ALL_SIZES[j]}), "
                    f"got values in [{int(values.min())}, {int(values.max())}]"
                )
            full[:, j] = values
        for j, value in self.fixed.items():
            full[:, j] = value
        return full

    def _render(self, full: torch.Tensor) -> torch.Tensor:
        """``[n, 5]`` full factor rows -> ``[n, R, R]`` float32 coverage in [0, 1]."""
        # (float32 whatever torch's default dtype: the table is the same in every process)
        out = torch.empty(full.shape[0], self.resolution, self.resolution, dtype=torch.float32, device=full.device)
        for kind, inside_test in enumerate((_in_square, _in_circle, _in_triangle)):
            rows = torch.nonzero(full[:, 0] == kind).flatten()
            if rows.numel():
                out[rows] = self._coverage(full[rows], inside_test)
        return out

    def _coverage(self, full: torch.Tensor, inside_test) -> torch.Tensor:
        _, scale, angle, x, y = (full[:, j] for j in range(5))
        radius = 0.16 * (0.5 + 0.1 * scale.to(torch.float32))  # scale index 0..5 -> 0.5..1.0
        theta = angle.to(torch.float32) * (math.pi / 16)
        cx = 0.25 + x.to(torch.float32) / 32  # whole pixels when R is a multiple of 32
        cy = 0.25 + y.to(torch.float32) / 32
        samples = self.resolution * _SUPERSAMPLE
        grid = (torch.arange(samples, dtype=torch.float32, device=full.device) + 0.5) / samples
        dx = grid[None, None, :] - cx[:, None, None]  # [n, 1, S]: columns
        dy = grid[None, :, None] - cy[:, None, None]  # [n, S, 1]: rows
        # Shape-local coordinates: the sample points rotated by -theta, in units of the radius.
        cos = (torch.cos(theta) / radius)[:, None, None]
        sin = (torch.sin(theta) / radius)[:, None, None]
        u = cos * dx + sin * dy
        v = cos * dy - sin * dx
        inside = inside_test(u, v).to(torch.float32)
        return inside.reshape(-1, self.resolution, _SUPERSAMPLE, self.resolution, _SUPERSAMPLE).mean(dim=(2, 4))


def _in_square(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), v.abs()) <= 0.8


def _in_circle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return u * u + v * v <= 1.0


def _in_triangle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Equilateral, circumradius 1.2: inside all three edges' half-planes."""
    inside = torch.ones(torch.broadcast_shapes(u.shape, v.shape), dtype=torch.bool, device=u.device)
    for k in range(3):
        a = math.pi / 2 + k * 2 * math.pi / 3 + math.pi  # edge normals point away from the vertices
        inside &= (u * math.cos(a) - v * math.sin(a)) <= 0.6
    return inside
