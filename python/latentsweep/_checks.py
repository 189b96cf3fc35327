"""Argument checks shared by the public functions.

Every message names the function, the argument and what was expected (a ``TypeError`` or
``ValueError``). What the compiled ops receive is checked by the ops themselves, in C++
(``cpp/ops/checks.h``): their Python wrappers use only the coercions here (``dense_tensor``,
``integer``, ``index_tensor``) and the scans that must read the data (``finite``).
"""

from __future__ import annotations

import cmath
import contextlib
import math
import numbers
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ._batching import is_out_of_memory, physical_memory

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# Frames a warning skips to reach the user's line: the package's, and contextlib's (a warning
# from a context manager of the package is raised in contextlib's __exit__).
_LIBRARY_FILES = (os.path.dirname(__file__) + os.sep, contextlib.__file__)


class ProcessWarning(RuntimeWarning):
    """A warning about this process's own run, which another rank of a launcher's group need not
    share (an out-of-memory retry at half its batch): the command line says it from the rank that
    raised it, naming the rank; every other warning, the same on every rank, is rank 0's to say."""


class ThreadFlag:
    """A flag of the current thread, set inside ``with flag():`` (a nested block restores what
    it found): a caller that says a warning itself, or reads nothing it tells, keeps a function
    from saying it. A catch_warnings filter swaps the process-wide filters instead: calls in
    other threads lost or kept each other's warnings."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def set(self) -> bool:
        return getattr(self._local, "yes", False)

    @contextlib.contextmanager
    def __call__(self):
        before = self.set
        self._local.yes = True
        try:
            yield
        finally:
            self._local.yes = before


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` pointing at the user's line: the first frame outside latentsweep, at
    whatever depth the library warns from (a fixed stacklevel pointed into sweep.py). Python
    3.12's ``skip_file_prefixes`` does this; the package supports 3.11."""
    frame, level = sys._getframe(1), 2  # stacklevel 2: warn's caller
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_FILES):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def call_name(fn: str) -> str:
    """The name a user calls ``fn`` by, for advice in messages ("call interpolate(...) again"):
    ``"latentsweep.interpolate"`` -> ``"interpolate"``."""
    return fn.rpartition(".")[2]


def dense_tensor(fn: str, name: str, value) -> torch.Tensor:
    """A dense (strided) torch.Tensor, whatever its dtype and shape (the op checks those)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{fn}: {name} must be a torch.Tensor, got {type(value).__name__}"
            + (" (use torch.as_tensor)" if hasattr(value, "__array__") else "")
        )
    if value.layout != torch.strided:  # the same text as the ops' check_dense
        raise TypeError(
            f"{fn}: {name} must be a dense (torch.strided) tensor, got layout {value.layout}"
        )
    return value


def tensor(fn: str, name: str, value, *, ndims: Sequence[int]) -> torch.Tensor:
    """A dense floating-point tensor with one of the allowed numbers of dimensions."""
    value = dense_tensor(fn, name, value)
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{fn}: {name} must be float16, bfloat16, float32 or float64, got {value.dtype}"
        )
    if value.dim() not in ndims:
        shapes = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{fn}: {name} must be {shapes}, got shape {tuple(value.shape)}")
    return value


def finite(fn: str, name: str, value: torch.Tensor) -> tuple[float, float] | None:
    """Rejects NaN and infinities, saying how many and where the first one is.

    Returns (min, max) of the tensor (None when empty or not floating point: such tensors hold
    no NaN, and the op reports a wrong dtype): one pass over the data, since NaN and Inf
    propagate to the extremes; the slower search for the culprit runs only on failure.
    """
    if value.device.type == "meta":  # shape-only tensors: there is nothing to check or compute
        raise ValueError(f"{fn}: {name} is on the meta device, which holds no values")
    if value.numel() == 0 or not value.dtype.is_floating_point:
        return None
    value = distinct_values(value.detach())
    low, high = extremes(value)
    if math.isfinite(low) and math.isfinite(high):
        return low, high
    bad = ~torch.isfinite(value)
    first = tuple(int(i) for i in bad.nonzero()[0])
    raise ValueError(
        f"{fn}: {name} has {int(bad.sum())} non-finite value(s) (NaN or Inf); "
        f"the first is at index {first}"
    )


# What to do about values beyond the anchors' dtype (traversal and direction codes take it).
CODES_IN_ANCHORS_DTYPE = "the codes take the anchors' dtype: pass float64 anchors or smaller values"


def is_real_number_dtype(dtype: torch.dtype) -> bool:
    """Floating or integer: what converts to a floating dtype as numbers (not bool, not complex)."""
    return dtype != torch.bool and not dtype.is_complex


def as_dtype_of(value: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``value`` in ``reference``'s floating dtype when both hold real numbers (integer values
    included); anything else as it is, for the op to name."""
    if reference.dtype.is_floating_point and is_real_number_dtype(value.dtype):
        return value.to(reference.dtype)
    return value


def representable(fn: str, name: str, value: torch.Tensor, dtype: torch.dtype, advice: str) -> tuple[float, float] | None:
    """:func:`finite`, and every value within ``dtype``'s range: the check before a cast (a
    float32 1e6 is finite, and infinite as a float16). Returns (min, max) as ``finite``."""
    low_high = finite(fn, name, value)
    if low_high is None and value.numel() and is_real_number_dtype(value.dtype):  # integers: 2**63 is inf in float16
        low_high = tuple(extremes(distinct_values(value)))
    if low_high is not None and dtype.is_floating_point:
        reach, largest = max(-low_high[0], low_high[1]), torch.finfo(dtype).max
        if reach > largest:
            raise ValueError(f"{fn}: {name} reaches {reach:.3g}, beyond the largest {dtype} ({largest:.3g}); {advice}")
    return low_high


def same_fields(a, b, *, skip: tuple[str, ...] = ()) -> bool:
    """Whether two dataclass objects hold the same fields (but ``skip``): tensors as
    :func:`same_tensor`, anything else by ``==`` (for results' ``__eq__``: a dataclass's own
    ``==`` compared tensors with ``==``, "Boolean value of Tensor ... is ambiguous")."""
    for name in a.__dataclass_fields__:
        if name in skip:
            continue
        mine, theirs = getattr(a, name), getattr(b, name)
        if isinstance(mine, torch.Tensor) or isinstance(theirs, torch.Tensor):
            if not (isinstance(mine, torch.Tensor) and isinstance(theirs, torch.Tensor) and same_tensor(mine, theirs)):
                return False
        elif mine != theirs:
            return False
    return True


def same_tensor(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Both None, or equal values with the same dtype and device, as ``torch.equal`` (meta
    tensors hold no values to compare: equal only to themselves). For results' ``__eq__``."""
    if a is b:
        return True
    if a is None or b is None or a.dtype != b.dtype or a.device != b.device or a.device.type == "meta":
        return False
    return torch.equal(a, b)


def power_of_two_at(largest: torch.Tensor) -> torch.Tensor:
    """The power of two at each magnitude of ``largest`` (1 where it is 0): values over it lie
    within [-2, 2], their squares within float64's range, and dividing by it changes no digit."""
    return torch.where(largest > 0, torch.ldexp(torch.ones_like(largest), torch.frexp(largest).exponent - 1), 1.0)


def unscaled_square_size(scaled, scale) -> str:
    """The largest of ``scaled * scale ** 2`` written as a number (e.g. "1.2e+600"): ``scaled``
    are sums of squares of values over ``scale`` (:func:`power_of_two_at` their largest entry;
    a float or a tensor broadcasting with ``scaled``). Worked out in powers of ten, so a size
    past float64's range is still said as a number, not as "inf"."""
    scaled = torch.as_tensor(scaled, dtype=torch.float64, device="cpu")
    scale = torch.as_tensor(scale, dtype=torch.float64, device="cpu")
    exponent = float((torch.log10(scaled) + 2 * torch.log10(scale)).max())
    if not math.isfinite(exponent):
        return "0" if exponent < 0 else f"{exponent}"  # (all 0, or a NaN or inf given)
    power = math.floor(exponent)
    mantissa = 10 ** (exponent - power)
    if float(f"{mantissa:.3g}") >= 10:  # 9.9996 rounds to "10"
        mantissa, power = mantissa / 10, power + 1
    return f"{mantissa:.3g}e{power:+03d}"


def uint64_beyond_int64(value: torch.Tensor) -> int | None:
    """The largest value of a uint64 tensor when it is beyond int64's range (a cast would wrap
    it around to a negative number), else None; None for other dtypes and empty tensors."""
    if value.dtype != torch.uint64 or not value.numel() or value.device.type == "meta":
        return None
    largest = extremes(distinct_values(value))[1]
    return largest if largest > INT64_MAX else None


def by_largest_entry(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of ``x`` over its largest absolute entry (zero rows stay zero), and those
    entries ``[..., 1]``: lengths and angles of the result cannot under- or overflow float64
    (the squares of 1e-200 or 1e200 do), and its direction is ``x``'s."""
    largest = x.abs().amax(dim=-1, keepdim=True)
    return x / torch.where(largest > 0, largest, 1.0), largest


def extremes(value: torch.Tensor) -> list:
    """[min, max] of a non-empty tensor as Python numbers, in one transfer from its device.
    Unsigned 16/32/64-bit integers, which torch's min/max do not take, exactly too."""
    if value.dtype in (torch.uint16, torch.uint32):
        value = value.to(torch.int64)
    elif value.dtype == torch.uint64:
        return [int(n) for n in _uint64_extremes(value)]
    return torch.stack(tuple(torch.aminmax(value))).tolist()


def _uint64_extremes(value: torch.Tensor) -> tuple[int, int]:
    """[min, max] of uint64 values through their int64 view: values of 2**63 and more read as
    negative there (as -2**64 less)."""
    wrapped = value.view(torch.int64)
    high = wrapped < 0
    low_part, high_part = wrapped[~high], wrapped[high] + 0  # (+ 0: a copy to read)
    smallest = int(low_part.min()) if low_part.numel() else int(high_part.min()) + 2**64
    largest = int(high_part.max()) + 2**64 if high_part.numel() else int(low_part.max())
    return smallest, largest


def rows_nonfinite(value: torch.Tensor) -> torch.Tensor | None:
    """``[N]`` bool, the rows of ``value`` (``[N, ...]``, any dtype) holding NaN or Inf, or None
    when every entry is finite (the usual case, found without masks). A finite sum means every
    entry is finite (NaN and Inf propagate): one pass, ~15x faster than ``isfinite``'s masks on
    a batch of codes; a sum that overflowed is checked entry by entry. Summed in float32 at
    least, not float64 (the conversion made it 13 ms for 6,400 decoder outputs, 0.14 ms in
    float32); complex values as complex."""
    if cmath.isfinite(value.sum(dtype=torch.promote_types(value.dtype, torch.float32)).item()):
        return None
    bad = ~torch.isfinite(value.reshape(value.shape[0], -1)).all(dim=1)
    return bad if bool(bad.any()) else None


def distinct_values(value: torch.Tensor) -> torch.Tensor:
    """A view without the repeats of broadcast (zero-stride) dimensions: an expanded tensor of
    2^60 elements holds only a few distinct values, and scanning them all would take forever."""
    index = tuple(
        slice(0, 1) if stride == 0 and size > 1 else slice(None)
        for size, stride in zip(value.shape, value.stride())
    )
    return value[index]


def dense_values(fn: str, name: str, value: torch.Tensor) -> torch.Tensor:
    """A tensor whose values can be read: not on the meta device, and strided (not sparse)."""
    value = dense_tensor(fn, name, value)  # (first: a NumPy array's .device is a string)
    if value.device.type == "meta":
        raise ValueError(f"{fn}: {name} is on the meta device, which holds no values")
    return value


def same_device(fn: str, **tensors: torch.Tensor | None) -> None:
    named = [(n, t) for n, t in tensors.items() if t is not None]
    devices = {t.device for _, t in named}
    if len(devices) > 1:
        where = ", ".join(f"{n} on {t.device}" for n, t in named)
        raise ValueError(f"{fn}: all tensors must be on one device, got {where}")


# The largest share of a device's memory one array may take: the computation that fills it
# needs temporaries of its size, and the decoder needs room too (an array of 53% of the RAM
# was allocated, and the process then killed by the kernel without a word).
MEMORY_SHARE = 0.5


def fits_in_memory(fn: str, what: str, nbytes: int, device: torch.device, advice: str, *,
                   share: float = MEMORY_SHARE) -> None:
    """ValueError if ``nbytes`` exceed ``share`` of ``device``'s memory (the RAM, or the GPU's
    total memory): said before allocating, instead of the allocator's error or the kernel's
    out-of-memory kill."""
    shortfall = memory_shortfall(nbytes, device, share=share)
    if shortfall is not None:
        raise ValueError(f"{fn}: {what} {shortfall}; {advice}")


def memory_shortfall(nbytes: int, device: torch.device, *, share: float = MEMORY_SHARE) -> str | None:
    """``"needs 9.0 GiB, more than 50% of this CPU's 8.0 GiB"`` where ``nbytes`` exceed ``share``
    of ``device``'s memory, else None (also where its memory is unknown): the rule of
    :func:`fits_in_memory`, for a caller that does something else than refuse (a smaller batch)."""
    capacity = _memory_capacity(device)
    if not capacity or nbytes <= capacity * share:
        return None
    of = "" if share == 1 else f"{share:.0%} of "
    return f"needs {nbytes / 2**30:,.1f} GiB, more than {of}this {device.type.upper()}'s {capacity / 2**30:,.1f} GiB"


def codes_fit_in_memory(fn: str, what: str, codes: torch.Tensor, advice: str, *,
                        bytes_per_value: int | None = None) -> None:
    """:func:`fits_in_memory` (all of the memory) for the values of ``codes`` at
    ``bytes_per_value`` each (default: their own size; a function's float64 copies count
    more), said before the work: only a broadcast view (``expand``: 12 bytes of storage for
    [10^12, 3]) holds more values than the memory, and passing over its rows took hours.
    ``what`` names the work, e.g. ``"reading the codes [N=.., D=..]"``."""
    nbytes = codes.numel() * (bytes_per_value or codes.element_size())
    if nbytes > UNCHECKED_BYTES:  # (no system call for the common, small case)
        fits_in_memory(fn, what, nbytes, codes.device, advice, share=1.0)


def _memory_capacity(device: torch.device) -> int | None:
    """Bytes of the device's memory; None where unknown (the op then says what is wrong with
    the device: no CUDA here, no kernels for it)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory if torch.cuda.is_available() else None
    if device.type == "cpu":
        return physical_memory()
    return None


# Allocations below this are never checked: every machine has more than twice as much, and the
# check (a system call) stays out of small calls, training loops and torch.compile graphs.
UNCHECKED_BYTES = 2**26


def op_output_fits(fn: str, what: str, nbytes: int, device: torch.device, advice: str, op_checks) -> None:
    """:func:`fits_in_memory` for what an op will allocate, after the op's own argument checks:
    only when it would not fit does ``op_checks()`` run them (the op's Meta kernel on shape-only
    copies of the tensors, and for data checks the op itself on no rows), so that its errors
    (counter limits, int64 overflow, shapes, dims out of range) come first and the common case
    costs nothing."""
    if nbytes <= UNCHECKED_BYTES:
        return
    capacity = _memory_capacity(device)
    if not capacity or nbytes <= capacity * MEMORY_SHARE:
        return
    op_checks()
    fits_in_memory(fn, what, nbytes, device, advice)


def shape_only(value):
    """A tensor's meta copy (same sizes, strides and dtype; no data) for an op's Meta kernel;
    anything else as it is."""
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
    return value


def grid_codes_fit(fn: str, op, anchors: torch.Tensor, second: torch.Tensor, values: torch.Tensor, start: int, count,
                   *, float32_buffer: bool = False) -> None:
    """The ``[rows, D]`` codes a grid op (traversal or direction codes: ``second`` is the dims or
    the directions) is about to allocate fit in memory: said before it allocates, since an
    overcommitted allocation succeeds and the kernel kills the process when rows are written.
    ``float32_buffer``: the op computes float16/bfloat16 codes in a float32 buffer of their size
    first (direction codes: 6 bytes per value, as its own size check counts)."""
    if anchors.dim() != 2 or values.dim() < 1 or second.dim() < 1:
        return  # the op says what is wrong

    def op_checks():
        op(*(shape_only(x) for x in (anchors, second, values)), start, count)  # shapes, sizes
        op(anchors, second, values, start, 0)  # the data (dims' range, unit lengths), on no rows

    rows = count if count is not None else anchors.shape[0] * second.shape[0] * values.shape[-1] - start
    per_value = anchors.element_size() + (4 if float32_buffer and anchors.element_size() < 4 else 0)
    op_output_fits(fn, f"the codes [{rows}, D={anchors.shape[1]}]", max(rows, 0) * anchors.shape[1] * per_value,
                   anchors.device, "write the grid in parts with start= and count=", op_checks)


@contextlib.contextmanager
def allocation_named(fn: str, what: str, advice: str):
    """The allocator's out-of-memory error inside, as a ValueError that names what was being
    allocated (for ops whose own argument checks must come first)."""
    try:
        yield
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        raise ValueError(f"{fn}: {what} do not fit in memory; {advice}") from error


def integer(fn: str, name: str, value, *, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """A Python (or numpy/0-d tensor) integer within [low, high] (by default, int64's range:
    what torch and the ops can take)."""
    if (
        isinstance(value, torch.Tensor)
        and value.dim() == 0
        and not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
        and value.device.type != "meta"
    ):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < low:
        raise ValueError(f"{fn}: {name} must be >= {low}, got {value}")
    if value > high:
        raise ValueError(f"{fn}: {name} must be <= {high}, got {value}")
    return value


def optional_integer(fn: str, name: str, value, *, low: int = INT64_MIN, high: int = INT64_MAX) -> int | None:
    """``None``, or an integer as :func:`integer` checks it."""
    return None if value is None else integer(fn, name, value, low=low, high=high)


def index(fn: str, name: str, value, size: int, *, what: str = "item(s)") -> int:
    """An int in ``[-size, size)`` (Python's negative indices), returned non-negative."""
    value = integer(fn, name, value)
    if not -size <= value < size:
        raise ValueError(f"{fn}: {name}={value} is out of range for {size} {what} (0..{size - 1})")
    return value % size


def choice(fn: str, name: str, value, choices):
    """One of ``choices`` (compared with ==; unhashable values are refused, not crashed on)."""
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        raise ValueError(f"{fn}: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def boolean(fn: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be True or False, got {value!r}")
    return value


def numeric_array(fn: str, name: str, value):
    """A float32 numpy array from a tensor (any dense device/dtype) or a numeric array-like."""
    import numpy as np

    if isinstance(value, torch.Tensor):
        dense_values(fn, name, value)
        if value.is_complex():
            raise TypeError(f"{fn}: {name} must hold real numbers, got {value.dtype}")
        return value.detach().to("cpu", torch.float32).numpy()
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{fn}: {name} must be a tensor or a numeric array, got {type(value).__name__}")
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(array.dtype)
        return array.astype(np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: {name} must be a tensor or a numeric array, got {type(value).__name__}") from None


def number(fn: str, name: str, value) -> float:
    """A real number as a float: a Python or numpy number, or a 0-d tensor of one (bools and
    complex refused). Its range is the caller's."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.device.type != "meta" \
            and not (value.is_complex() or value.dtype == torch.bool):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float64 (10**400)
        raise ValueError(f"{fn}: {name} must be a finite number, got an integer of {len(str(abs(int(value))))} digits") from None


def real(fn: str, name: str, value, *, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite number (see :func:`number`) within [low, high]."""
    value = number(fn, name, value)
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{fn}: {name} must be a finite number in [{low:g}, {high:g}], got {value}")
    return value


def positive_float(fn: str, name: str, value) -> float:
    value = number(fn, name, value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{fn}: {name} must be a finite number > 0, got {value}")
    return value


# The prior SDs whose variance, and the KL against it, a float64 can hold for any sane code.
PRIOR_STD_RANGE = (1e-100, 1e100)


def prior_std(fn: str, value) -> float:
    """A prior SD: a finite number > 0 within ``PRIOR_STD_RANGE``."""
    value = positive_float(fn, "prior_std", value)
    problem = prior_std_outside_range(value)
    if problem:
        raise ValueError(f"{fn}: prior_std {problem}")
    return value


def prior_std_outside_range(value: float) -> str | None:
    """What is wrong with a finite prior SD > 0 outside ``PRIOR_STD_RANGE`` (the words the
    command line's --prior-std says too), else None."""
    low, high = PRIOR_STD_RANGE
    if low <= value <= high:
        return None
    return f"must lie in [{low:g}, {high:g}] (its variance and the KL against it must fit a float64), got {value:g}"


def _one_or_more_indices(value):
    """A NumPy array (``np.where``'s or ``argsort``'s indices) as a tensor of its own, and a
    single index as a tensor (0-d) as one of one, as an int is: both were refused."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.array(value, copy=True)) if value.dtype.kind in "iub" else value
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        value = value.reshape(1)
    return value


def listed(items, limit: int = 10) -> str:
    """``3, 8, 12, ...``: the first ``limit`` items, for messages that name rows."""
    items = list(items)
    return ", ".join(map(str, items[:limit])) + (", ..." if len(items) > limit else "")


def index_tensor(fn: str, value, device: torch.device) -> torch.Tensor:
    """``dims`` as the ops take it: an int, a list of ints, an integer tensor or NumPy array
    becomes an int64 tensor on ``device``; a tensor of another dtype, or on another accelerator,
    is left for the op to name. CPU indices serve anchors on any device, as in torch's own
    indexing."""
    value = _one_or_more_indices(value)
    if isinstance(value, torch.Tensor):
        value = dense_tensor(fn, "dims", value)
        if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            return value
        largest = uint64_beyond_int64(value)
        if largest is not None:
            raise ValueError(f"{fn}: dims holds {largest}, beyond int64's range (dims index the latents)")
        if value.device.type == "cpu" and device.type not in ("cpu", "meta"):
            value = value.to(device)
        return value.to(dtype=torch.int64)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return torch.tensor([integer(fn, "dims", value)], dtype=torch.int64, device=device)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = [integer(fn, "dims[...]", v) for v in value]
        return torch.tensor(items, dtype=torch.int64, device=device)
    raise TypeError(f"{fn}: dims must be an int, a list of ints, a 1-D integer tensor or NumPy array, got "
                    + (f"a NumPy array of {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__))


def dims(fn: str, value, latent_dim: int, device: torch.device, *, distinct: bool = False) -> torch.Tensor:
    """Latent dimensions to traverse: a non-empty list or 1-D integer tensor, each in [0, D)
    (for the pure-Python functions; traversal_codes leaves this to its op); with ``distinct``,
    each once (a sweep's traversals are labelled and ranked by latent)."""
    value = _one_or_more_indices(value)
    if isinstance(value, torch.Tensor):
        value = dense_tensor(fn, "dims", value)
        if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise TypeError(f"{fn}: dims must hold integers, got {value.dtype}")
        if value.dim() != 1:
            raise ValueError(f"{fn}: dims must be 1-D, got shape {tuple(value.shape)}")
        if value.device.type == "meta":
            raise ValueError(f"{fn}: dims is on the meta device, which holds no values")
    result = index_tensor(fn, value, device).to(device)
    if result.numel() == 0:
        raise ValueError(f"{fn}: dims must not be empty")
    low, high = extremes(result)
    if low < 0 or high >= latent_dim:
        raise ValueError(
            f"{fn}: dims must lie in [0, {latent_dim}) for D={latent_dim}, got values in [{low}, {high}]"
        )
    if distinct:
        unique, counts = result.unique(return_counts=True)
        if unique.numel() != result.numel():
            raise ValueError(f"{fn}: dims must be distinct, got {unique[counts > 1].tolist()[:5]} more than once")
    return result


def device(fn: str, value) -> torch.device | None:
    """A torch.device from a device or a string like 'cuda:0' (None stays None)."""
    if value is None:
        return None
    try:
        return torch.device(value)
    except (TypeError, ValueError, RuntimeError) as error:  # RuntimeError: unknown names; ValueError: int overflow
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(f"{fn}: device must be a torch.device or a string like 'cuda:0', got {value!r}") from None


def usable_device(fn: str, device: torch.device) -> torch.device:
    """A device to compute on: not meta (shapes without values), and one this torch reaches
    (device='cuda' on a CPU-only build raised torch's AssertionError deep inside a call)."""
    if device.type == "meta":
        raise ValueError(f"{fn}: device='meta' holds no values; {call_name(fn)} runs on a real device (cpu, cuda)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{fn}: device={str(device)!r} but this torch has no CUDA device available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{fn}: device={str(device)!r} but this machine has {torch.cuda.device_count()} CUDA "
                         "device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{fn}: device={str(device)!r} but MPS is not available here")
    return device


def seed(fn: str, value) -> int:
    """A seed in [0, 2^64), passed to the op as a wrapped int64."""
    value = integer(fn, "seed", value, low=0, high=2**64 - 1)
    return value - 2**64 if value > INT64_MAX else value


def blocking_file(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a folder (a file where a folder would
    have to be created), or None."""
    return next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)


def user_path(value: str | os.PathLike) -> Path:
    """A path as a user gives it, ``~`` expanded (else a folder named ``~`` is made)."""
    return Path(os.path.expanduser(value))


def output_file(fn: str, name: str, value) -> Path:
    """A file a call will write, checked before any work (a long computation is not lost to a
    path that cannot be written): a str or PathLike, not a folder, no file in the way of its
    folder, and the file (or the nearest folder on its way that exists) writable."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise TypeError(f"{fn}: {name} must be a file path (str or os.PathLike), got {value!r:.80}")
    path = user_path(value)
    if "\x00" in str(path):  # (is_dir() answers False for it: the write failed after all the work)
        raise ValueError(f"{fn}: cannot write {name}={str(path)!r}: embedded null byte (no file name holds one)")
    try:
        is_folder = path.is_dir()
    except OSError as error:  # a name longer than the file system takes (ENAMETOOLONG)
        raise ValueError(f"{fn}: cannot write {name}={str(path)!r}: {error.strerror or error}") from None
    if is_folder:
        raise ValueError(f"{fn}: {name}={str(path)!r} is a folder; give the file to write")
    blocked = blocking_file(path)
    if blocked is not None:
        raise ValueError(f"{fn}: {name}={str(path)!r}: the file {str(blocked)!r} is in the way of its folder")
    # Writable, or its nearest existing folder (a read-only working directory: explain encoded,
    # traversed and drew everything, then failed to write its report); a symbolic link to a file
    # not yet written is written through, so its target's folder counts.
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    place = target if target.exists() else next((parent for parent in target.parents if parent.exists()), None)
    if place is not None and not os.access(place, os.W_OK):  # (also read-only mounts)
        raise ValueError(f"{fn}: cannot write {name}={str(path)!r}: {str(place)!r} is not writable (read-only "
                         "media or no permission)")
    return path
