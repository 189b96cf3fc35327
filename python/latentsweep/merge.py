"""A unit's partial statistics and their merge, in unit order.

Each work unit holds whole traversals, so its statistics are sums over its own rows only:
``dim_effect_sum[k]`` (sum of effect over its rows of latent k) and ``sensitivity_sum[k, f]``
(sum over its traversals of latent k of the slope of feature f). The sweep's statistics are
these sums added unit after unit in unit order: the same additions in the same order whoever
computed the units, so the result is bitwise identical at any number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch


@dataclass
class UnitStatistics:
    """The float64 sums of one unit (named tensors; serialised by name, never by position)."""

    dim_effect_sum: torch.Tensor  # [K]
    sensitivity_sum: torch.Tensor  # [K, F]

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name).detach().cpu().double().numpy() for f in fields(self)}

    @staticmethod
    def shapes(num_dims: int, features: int) -> dict[str, tuple[int, ...]]:
        """The arrays' names and shapes, as :meth:`arrays` gives them."""
        return {"dim_effect_sum": (num_dims,), "sensitivity_sum": (num_dims, features)}

    @classmethod
    def from_arrays(cls, arrays, num_dims: int, features: int) -> UnitStatistics:
        """From :meth:`arrays` (e.g. an ``np.load`` of a unit record); ValueError if malformed."""
        values = {}
        for name, shape in cls.shapes(num_dims, features).items():
            array = np.asarray(arrays[name])
            if array.shape != shape or array.dtype != np.float64:
                raise ValueError(f"{name} is {array.dtype}{list(array.shape)}, expected float64{list(shape)}")
            values[name] = torch.from_numpy(array.copy())
        return cls(**values)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> UnitStatistics:
        """From the C++ statistics' ``unit_sums_to_host()`` (or ``state()``) after a unit."""
        return cls(state["dim_effect_sum"], state["sensitivity_sum"])


class OrderedMerge:
    """Adds unit statistics in unit order (units 0, 1, 2, ...; each exactly once)."""

    def __init__(self, num_dims: int, features: int):
        self.dim_effect_sum = torch.zeros(num_dims, dtype=torch.float64)
        self.sensitivity_sum = torch.zeros(num_dims, features, dtype=torch.float64)
        self.next_unit = 0

    def add(self, unit: int, statistics: UnitStatistics) -> None:
        if unit != self.next_unit:
            raise RuntimeError(f"merge out of order: unit {unit} after unit {self.next_unit - 1}")
        self.dim_effect_sum += statistics.dim_effect_sum
        self.sensitivity_sum += statistics.sensitivity_sum
        self.next_unit += 1

    def result(self, fn: str, *, num_anchors: int, num_steps: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(dim_effect [K], sensitivity [K, F]) in ``dtype`` (the statistics' precision);
        ValueError if the sensitivity overflowed (the effect is checked chunk by chunk)."""
        dim_effect = (self.dim_effect_sum / float(num_anchors * num_steps)).to(dtype)
        sensitivity = (self.sensitivity_sum / float(num_anchors)).to(dtype)
        overflowed = ~torch.isfinite(sensitivity).all(dim=1)
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
        self.unit_bytes = 8 * num_dims * (features + 1)
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
            if (len(self.waiting) + 1) * self.unit_bytes <= self.budget_bytes:
                self.waiting[unit] = statistics
            return
        self.merge.add(unit, statistics)
        while self.merge.next_unit in self.waiting:
            self.merge.add(self.merge.next_unit, self.waiting.pop(self.merge.next_unit))

    def forget(self, unit: int) -> None:
        """Drops a waiting unit (found damaged; a merged one cannot be taken back)."""
        self.waiting.pop(unit, None)

    def finish(self, num_units: int, read) -> OrderedMerge:
        """The merge of units 0 .. num_units-1, ``read(unit)`` giving the statistics of those not
        known; consumes this running merge."""
        for unit in range(self.merge.next_unit, num_units):
            waiting = self.waiting.pop(unit, None)
            self.merge.add(unit, waiting if waiting is not None else read(unit))
        return self.merge
