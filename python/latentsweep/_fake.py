"""Fake (meta) kernels: shapes and dtypes of the compiled ops without running them, so they
work under torch.compile and torch.library.opcheck.

The C++ ops name this module (``set_python_module``), so torch imports it when it needs a fake
kernel even if nothing imported latentsweep. Each fake kernel repeats its op's shape checks
with the same exception type and text (``tests/test_errors.py`` compares the two for every
case of the error table); checks that need values (the range of ``dims``) run in C++ only.
The counter limits come from the compiled library.
"""

from __future__ import annotations

import torch

from ._extension import _C

INT64_MAX = 2**63 - 1
_FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _value(cond, fn: str, message: str) -> None:
    torch._check_value(cond, lambda: f"{fn}: {message}")


def _type(cond, fn: str, message: str) -> None:
    torch._check_type(cond, lambda: f"{fn}: {message}")


def _dense(t: torch.Tensor, fn: str, name: str) -> None:
    _type(t.layout == torch.strided, fn, f"{name} must be a dense (torch.strided) tensor, got layout {t.layout}")


def _floating(t: torch.Tensor, fn: str, name: str) -> None:
    _type(t.dtype in _FLOATING, fn, f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")


def _same_device(fn: str, **tensors: torch.Tensor) -> None:
    devices = {t.device for t in tensors.values()}
    where = ", ".join(f"{n} on {t.device}" for n, t in tensors.items())
    _value(len(devices) == 1, fn, f"all tensors must be on one device, got {where}")


def _counter(fn: str, name: str, offset, count, limit: int, limit_text: str) -> None:
    _value(offset >= 0, fn, f"{name} must be >= 0, got {offset}")
    _value(offset <= limit - count, fn, f"{name} must be <= {limit - count} ({limit_text}), got {offset}")


def _output_bytes(fn: str, what: str, rows, samples, latent_size, dtype: torch.dtype) -> None:
    itemsize = 8 if dtype == torch.float64 else 4  # the compute dtype's
    _value(
        rows * samples * latent_size <= INT64_MAX // itemsize,
        fn,
        f"{what} = {rows} * {samples} * {latent_size} values, whose size in bytes overflows int64",
    )


@torch.library.register_fake("latentsweep::sample")
def _sample_fake(mu, logvar, n, seed=0, row_offset=0, sample_offset=0):
    fn = "latentsweep.sample"
    _dense(mu, fn, "mu")
    _dense(logvar, fn, "logvar")
    _floating(mu, fn, "mu")
    _floating(logvar, fn, "logvar")
    _value(mu.dim() == 2, fn, f"mu must be 2-D [N, D], got shape {_shape(mu)}")
    _value(logvar.shape == mu.shape, fn, f"logvar must have mu's shape {_shape(mu)}, got {_shape(logvar)}")
    _type(logvar.dtype == mu.dtype, fn, f"mu is {mu.dtype} but logvar is {logvar.dtype}; use one dtype")
    _same_device(fn, mu=mu, logvar=logvar)
    _value(n >= 0, fn, f"n must be >= 0, got {n}")
    _value(n <= _C.MAX_SAMPLE_COUNTER, fn, f"n must be <= {_C.MAX_SAMPLE_COUNTER} (2**47), got {n}")
    _counter(fn, "row_offset", row_offset, mu.shape[0], _C.MAX_ROW_COUNTER, "2**48 - N")
    _counter(fn, "sample_offset", sample_offset, n, _C.MAX_SAMPLE_COUNTER, "2**47 - n")
    _value(mu.shape[1] <= _C.MAX_LATENT_SIZE, fn, f"D must be <= 2**34, got {mu.shape[1]}")
    _output_bytes(fn, "N * n * D", mu.shape[0], n, mu.shape[1], mu.dtype)
    return mu.new_empty((mu.shape[0], n, mu.shape[1]))


@torch.library.register_fake("latentsweep::sample_prior")
def _sample_prior_fake(n, latent_size, seed=0, offset=0, *, dtype=None, device=None):
    fn = "latentsweep.sample_prior"
    dtype = torch.get_default_dtype() if dtype is None else dtype
    _value(n >= 0, fn, f"n must be >= 0, got {n}")
    _value(latent_size >= 0, fn, f"latent_size must be >= 0, got {latent_size}")
    _value(n <= _C.MAX_ROW_COUNTER, fn, f"n must be <= {_C.MAX_ROW_COUNTER} (2**48), got {n}")
    _value(latent_size <= _C.MAX_LATENT_SIZE, fn, f"D must be <= 2**34, got {latent_size}")
    _counter(fn, "offset", offset, n, _C.MAX_ROW_COUNTER, "2**48 - n")
    _type(dtype in _FLOATING, fn, f"dtype must be float16, bfloat16, float32 or float64, got {dtype}")
    _output_bytes(fn, "n * D", n, 1, latent_size, dtype)
    return torch.empty((n, latent_size), dtype=dtype, device=device or "cpu")


@torch.library.register_fake("latentsweep::sample_prior_")
def _sample_prior_inplace_fake(self, seed=0, offset=0):
    fn = "latentsweep.sample_prior_"
    _dense(self, fn, "self")
    _floating(self, fn, "self")
    _value(self.dim() == 2, fn, f"self must be 2-D [n, D], got shape {_shape(self)}")
    _counter(fn, "offset", offset, self.shape[0], _C.MAX_ROW_COUNTER, "2**48 - n")
    _value(self.shape[1] <= _C.MAX_LATENT_SIZE, fn, f"D must be <= 2**34, got {self.shape[1]}")
    return None


def _grid_rows(fn: str, anchors, values, num_traversed, traversed: str, start, count, bytes_per_value) -> int:
    """Mirror of check_grid_rows (cpp/ops/checks.cpp): the values' shape and the row range."""
    num_anchors = anchors.shape[0]
    leading = values.dim() - 1
    shape_ok = (
        1 <= values.dim() <= 3
        and (leading < 1 or values.shape[leading - 1] == num_traversed)
        and (leading < 2 or values.shape[0] == num_anchors)
    )
    _value(
        shape_ok,
        fn,
        f"values must be [S], [K, S] or [A, K, S] with A = {num_anchors} anchors and "
        f"K = {num_traversed} {traversed}, got shape {_shape(values)}",
    )
    steps = values.shape[-1]
    total = num_anchors * num_traversed * steps
    _value(
        total <= INT64_MAX,
        fn,
        f"the grid has A * K * S = {num_anchors} * {num_traversed} * {steps} rows, which overflows int64",
    )
    _value(start >= 0, fn, f"start must be >= 0, got {start}")
    _value(start <= total, fn, f"start must be <= {total}, got {start}")
    rows = total - start if count is None else count
    _value(rows >= 0, fn, f"count must be >= 0, got {rows}")
    _value(rows <= total - start, fn, f"count must be <= {total - start}, got {rows}")
    _value(
        rows * anchors.shape[1] * bytes_per_value <= INT64_MAX,
        fn,
        f"count * D = {rows} * {anchors.shape[1]} values, whose size in bytes overflows int64",
    )
    return rows


def _codes_output(fn: str, anchors, out, rows) -> None:
    """Mirror of check_codes_output (cpp/ops/checks.cpp)."""
    _dense(out, fn, "out")
    ok = (
        out.dim() == 2
        and out.shape[0] == rows
        and out.shape[1] == anchors.shape[1]
        and out.dtype == anchors.dtype
        and out.device == anchors.device
    )
    _value(
        ok,
        fn,
        f"out must be [{rows}, {anchors.shape[1]}] {anchors.dtype} on {anchors.device}, "
        f"got {_shape(out)} {out.dtype} on {out.device}",
    )
    _value(out.is_contiguous(), fn, "out must be contiguous")


def _check_traversal_inputs(anchors, dims, values, start, count):
    fn = "latentsweep.traversal_codes"
    _dense(anchors, fn, "anchors")
    _dense(dims, fn, "dims")
    _dense(values, fn, "values")
    _floating(anchors, fn, "anchors")
    _value(anchors.dim() == 2, fn, f"anchors must be 2-D [A, D], got shape {_shape(anchors)}")
    _type(dims.dtype == torch.int64, fn, f"dims must hold int64 integers, got {dims.dtype}")
    _value(dims.dim() == 1, fn, f"dims must be 1-D [K], got shape {_shape(dims)}")
    _type(
        values.dtype == anchors.dtype,
        fn,
        f"values must have the anchors' dtype {anchors.dtype}, got {values.dtype}",
    )
    _same_device(fn, anchors=anchors, dims=dims, values=values)
    return _grid_rows(fn, anchors, values, dims.shape[0], "dims", start, count, anchors.element_size())


@torch.library.register_fake("latentsweep::traversal_codes")
def _traversal_codes_fake(anchors, dims, values, start=0, count=None):
    rows = _check_traversal_inputs(anchors, dims, values, start, count)
    return anchors.new_empty((rows, anchors.shape[1]))


@torch.library.register_fake("latentsweep::traversal_codes_into")
def _traversal_codes_into_fake(anchors, dims, values, start, count, out):
    fn = "latentsweep.traversal_codes"
    rows = _check_traversal_inputs(anchors, dims, values, start, count)
    _codes_output(fn, anchors, out, rows)
    return None


def _check_direction_inputs(anchors, directions, values, start, count):
    fn = "latentsweep.direction_codes"
    _dense(anchors, fn, "anchors")
    _dense(directions, fn, "directions")
    _dense(values, fn, "values")
    _floating(anchors, fn, "anchors")
    _value(anchors.dim() == 2, fn, f"anchors must be 2-D [A, D], got shape {_shape(anchors)}")
    _type(
        directions.dtype == anchors.dtype,
        fn,
        f"directions must have the anchors' dtype {anchors.dtype}, got {directions.dtype}",
    )
    _value(
        directions.dim() == 2 and directions.shape[1] == anchors.shape[1],
        fn,
        f"directions must be 2-D [K, D] with D = {anchors.shape[1]}, got shape {_shape(directions)}",
    )
    _type(values.dtype == anchors.dtype, fn, f"values must have the anchors' dtype {anchors.dtype}, got {values.dtype}")
    _same_device(fn, anchors=anchors, directions=directions, values=values)
    # Low precision computes in a float32 buffer (as in the op).
    return _grid_rows(fn, anchors, values, directions.shape[0], "directions", start, count,
                      max(anchors.element_size(), 4))


@torch.library.register_fake("latentsweep::direction_codes")
def _direction_codes_fake(anchors, directions, values, start=0, count=None):
    rows = _check_direction_inputs(anchors, directions, values, start, count)
    return anchors.new_empty((rows, anchors.shape[1]))


@torch.library.register_fake("latentsweep::direction_codes_into")
def _direction_codes_into_fake(anchors, directions, values, start, count, out):
    fn = "latentsweep.direction_codes"
    rows = _check_direction_inputs(anchors, directions, values, start, count)
    _codes_output(fn, anchors, out, rows)
    return None
