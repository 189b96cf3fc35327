"""A unit's partial statistics and their merge, in unit order.

Each work unit holds whole traversals, so its statistics are sums over its own rows only, and
only for the latents its traversals touch (see :func:`unit_latents`): ``dim_effect_sum[j]`` (sum
of effect over its rows of latent ``(first + j) % K``) and ``sensitivity_sum[j, f]`` (sum over
its traversals of that latent of the slope of feature f). So a unit's statistics take
8·n·(F+1) bytes, n <= its traversals, whatever K is. The sweep's statistics are these sums added
unit after unit in unit order: the same additions in the same order whoever computed the units,
so the result is bitwise identical at any number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_ARRAYS = ("dim_effect_sum", "sensitivity_sum")  # a unit's arrays, by name (a record's order)


def unit_latents(start: int, stop: int, num_steps: int, num_dims: int) -> tuple[int, int]:
    """``(first, count)``: the latent indices touched by the traversals of grid rows ``[start,
    stop)`` (a unit's) are ``(first + j) % num_dims`` for ``j < count``, a range that may wrap
    around (traversal t is latent t % K of anchor t // K). A unit that touches every latent
    holds them in latent order (``first`` 0: nothing to reorder for small K, the common case).
    The C++ statistics give a unit's sums by the same rule (``SweepStatistics::touched_latents``,
    checked against this in :meth:`UnitStatistics.from_state`). From the plan's rows only: a
    record's arrays are checked against it, never trusted for it."""
    first_traversal, end_traversal = start // num_steps, -(-stop // num_steps)
    count = min(num_dims, end_traversal - first_traversal)
    return (0 if count == num_dims else first_traversal % num_dims), count


def _latent_runs(first: int, count: int, num_dims: int) -> list[tuple[int, int, int]]:
    """``(j, k, length)``: rows j .. j+length-1 of a unit are latents k .. k+length-1 (one run,
    or two when the range wraps past K - 1; as the C++ for_each_latent_run)."""
    head = min(count, num_dims - first)
    return [(0, first, head)] + ([(head, 0, count - head)] if count > head else [])


@dataclass
class UnitStatistics:
    """The float64 sums of one unit for the latents it touches (named tensors; serialised by
    name, never by position). ``first``: the latent of row 0, from the plan (not serialised)."""

    dim_effect_sum: torch.Tensor  # [n]
    sensitivity_sum: torch.Tensor  # [n, F]
    first: int

    @property
    def latents(self) -> tuple[int, int]:
        """``(first, count)`` of the latents it holds (see :func:`unit_latents`)."""
        return self.first, self.dim_effect_sum.shape[0]

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).numel() * 8 for name in _ARRAYS)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).detach().cpu().double().numpy() for name in _ARRAYS}

    @staticmethod
    def shapes(count: int, features: int) -> dict[str, tuple[int, ...]]:
        """The arrays' names and shapes, as :meth:`arrays` gives them, for a unit touching
        ``count`` latents (see :func:`unit_latents`)."""
        return {"dim_effect_sum": (count,), "sensitivity_sum": (count, features)}

    @classmethod
    def from_arrays(cls, arrays, latents: tuple[int, int], features: int) -> UnitStatistics:
        """From :meth:`arrays` (e.g. an ``np.load`` of a unit record) of a unit touching
        ``latents`` (``(first, count)``, see :func:`unit_latents`); ValueError if malformed."""
        first, count = latents
        values = {}
        for name, shape in cls.shapes(count, features).items():
            array = np.asarray(arrays[name])
            if array.shape != shape or array.dtype != np.float64:
                raise ValueError(f"{name} is {array.dtype}{list(array.shape)}, expected float64{list(shape)}")
            values[name] = torch.from_numpy(array.copy())
        return cls(**values, first=first)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], latents: tuple[int, int]) -> UnitStatistics:
        """From the C++ statistics' ``unit_sums_to_host()`` after a unit touching ``latents``
        (``(first, count)``, see :func:`unit_latents`): it gives those latents' rows only, by the
        same rule (``SweepStatistics::touched_latents``), checked here."""
        first, count = latents
        if state["dim_effect_sum"].shape[0] != count or state["sensitivity_sum"].shape[0] != count:
            raise RuntimeError(f"the unit's sums have {state['dim_effect_sum'].shape[0]} latents' rows, its plan "
                               f"{count} (from latent {first})")
        return cls(state["dim_effect_sum"], state["sensitivity_sum"], first)


# Values of the sensitivity divided and checked at a time (temporaries of 8 MiB and 1 MiB).
RESULT_BLOCK_VALUES = 1 << 20


class OrderedMerge:
    """Adds unit statistics in unit order (units 0, 1, 2, ...; each exactly once)."""

    def __init__(self, num_dims: int, features: int):
        self.dim_effect_sum = torch.zeros(num_dims, dtype=torch.float64, device="cpu")
        self.sensitivity_sum = torch.zeros(num_dims, features, dtype=torch.float64, device="cpu")
        self.next_unit = 0

    def add(self, unit: int, statistics: UnitStatistics) -> None:
        """Adds the unit's rows to those of its latents. The latents it does not touch get
        nothing, where the unit's full [K, F] sums added +0.0 (C++'s reset() zeroes them and only
        the unit's traversals add to them): the same bits, since the sums start at +0.0 and,
        rounding to nearest, x + y is -0.0 only when both are, so a sum from +0.0 is never -0.0
        and adding +0.0 to it changes no bit."""
        if unit != self.next_unit:
            raise RuntimeError(f"merge out of order: unit {unit} after unit {self.next_unit - 1}")
        for j, k, length in _latent_runs(*statistics.latents, self.dim_effect_sum.shape[0]):
            self.dim_effect_sum[k : k + length] += statistics.dim_effect_sum[j : j + length]
            self.sensitivity_sum[k : k + length] += statistics.sensitivity_sum[j : j + length]
        self.next_unit += 1

    def result(self, fn: str, *, num_anchors: int, num_steps: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(dim_effect [K], sensitivity [K, F]) in ``dtype`` (the statistics' precision);
        ValueError if the sensitivity overflowed (the effect is checked chunk by chunk)."""
        dim_effect = (self.dim_effect_sum / float(num_anchors * num_steps)).to(dtype)
        # Divided into the result block by block (computed in float64, rounded once as .to(dtype)
        # rounds: the same bits): the quotient of all [K, F] sums at once was a second float64
        # copy of them (6 GiB at K = 4,096 latents of 3 x 256 x 256 outputs), and so is torch's
        # own temporary for an out= of another dtype
        num_dims, features = self.sensitivity_sum.shape
        sensitivity = torch.empty(num_dims, features, dtype=dtype, device="cpu")
        overflowed = torch.zeros(num_dims, dtype=torch.bool, device="cpu")
        rows = max(1, RESULT_BLOCK_VALUES // max(1, features))
        for start in range(0, num_dims, rows):
            block = sensitivity[start : start + rows]
            torch.div(self.sensitivity_sum[start : start + rows], float(num_anchors), out=block)
            overflowed[start : start + rows] = ~torch.isfinite(block).all(dim=1)
        if bool(overflowed.any()):
            rows = overflowed.nonzero().flatten().tolist()
            raise ValueError(
                f"{fn}: the sensitivity overflowed {str(dtype).removeprefix('torch.')} in rows {rows[:5]} of its "
                "[K, F] (the traversed latents in order): the outputs change along a traversal by more than it "
                "holds, or a traversal's values span almost nothing (the sensitivity divides by the span); "
                "return float64 outputs, scale them (output_transform=), or traverse a wider range"
            )
        return dim_effect, sensitivity


class RunningMerge:
    """An :class:`OrderedMerge` advanced as far as the units known so far allow: a unit offered
    is added at once when all before it are; one offered early waits in memory for its turn
    while the waiting units take at most ``budget_bytes`` (beyond that it is not kept: whoever
    finishes the merge reads it again). Memory stays bounded however many units there are."""

    def __init__(self, num_dims: int, features: int, budget_bytes: int):
        self.merge = OrderedMerge(num_dims, features)
        self.waiting: dict[int, UnitStatistics] = {}
        self.waiting_bytes = 0  # (their statistics' own sizes: 8·n·(F+1) each)
        self.budget_bytes = budget_bytes

    @property
    def next_unit(self) -> int:
        return self.merge.next_unit

    def has(self, unit: int) -> bool:
        """Whether the unit is merged or waiting (known: the statistics need not be read)."""
        return unit < self.merge.next_unit or unit in self.waiting

    def offer(self, unit: int, statistics: UnitStatistics) -> None:
        if self.has(unit):
            return  # (the same unit's statistics, e.g. a record read after its unit was written here)
        if unit != self.merge.next_unit:
            if self.waiting_bytes + statistics.nbytes <= self.budget_bytes:
                self.waiting[unit] = statistics
                self.waiting_bytes += statistics.nbytes
            return
        self.merge.add(unit, statistics)
        while self.merge.next_unit in self.waiting:
            self.merge.add(self.merge.next_unit, self._take(self.merge.next_unit))

    def _take(self, unit: int) -> UnitStatistics | None:
        """A waiting unit's statistics, no longer waiting (None if it was not)."""
        statistics = self.waiting.pop(unit, None)
        if statistics is not None:
            self.waiting_bytes -= statistics.nbytes
        return statistics

    def forget(self, unit: int) -> None:
        """Drops a waiting unit (found damaged; a merged one cannot be taken back)."""
        self._take(unit)

    def finish(self, num_units: int, read) -> OrderedMerge:
        """The merge of units 0 .. num_units-1, ``read(unit)`` giving the statistics of those not
        known; consumes this running merge."""
        for unit in range(self.merge.next_unit, num_units):
            waiting = self._take(unit)
            self.merge.add(unit, waiting if waiting is not None else read(unit))
        return self.merge
