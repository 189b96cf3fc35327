"""Where a sweep's rows go: one small Protocol, implemented in memory and by the stores.

``traverse`` only talks to a :class:`Sink`; a new backend implements these methods and nothing
in ``traverse`` changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from .merge import OrderedMerge, UnitStatistics


@dataclass(frozen=True)
class Geometry:
    """Sizes of a sweep's results: the grid, the per-point outputs and their dtypes."""

    num_anchors: int
    num_dims: int
    num_steps: int
    out_shape: tuple[int, ...]
    output_dtype: torch.dtype

    @property
    def num_rows(self) -> int:
        return self.num_anchors * self.num_dims * self.num_steps

    @property
    def features(self) -> int:
        features = 1
        for size in self.out_shape:
            features *= size
        return features

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return (self.num_anchors, self.num_dims, self.num_steps)

    @property
    def statistics_dtype(self) -> torch.dtype:
        """Statistics are computed in the outputs' precision: float64 for float64, else float32."""
        return torch.float64 if self.output_dtype == torch.float64 else torch.float32

    def result_bytes(self, keep_outputs: bool) -> int:
        """Bytes of CPU memory the result holds: the effect of every grid point ``[A, K, S]``,
        the sensitivity ``[K, F]`` and, with ``keep_outputs``, the outputs ``[A, K, S, F]``."""
        statistics = self.statistics_dtype.itemsize
        outputs = self.features * self.output_dtype.itemsize if keep_outputs else 0
        return self.num_rows * (statistics + outputs) + self.num_dims * self.features * statistics

    def merging_bytes(self, statistics_on_cpu: bool) -> int:
        """Bytes of CPU memory held while the sweep runs, beside its result: the sensitivity's
        float64 sums ``[K, F]`` merged in unit order (6 GiB at K = 4,096 latents of 3 x 256 x 256
        outputs, whatever the grid) and, for a sweep on the CPU, the C++ statistics' running sums
        of a unit's latents: counted as ``[K, F]``, the most a unit can touch (the plan, which
        sizes the units, is made after this check)."""
        return self.num_dims * self.features * 8 * (2 if statistics_on_cpu else 1)


class Sink(Protocol):
    """Receives a sweep's rows unit by unit and hands back what it kept."""

    path: Path | None
    geometry: Geometry
    shared: bool  # True when every process of the sweep sees the same sink (a store on disk)

    def done_units(self) -> set[int]:
        """Units already complete (and intact) in this sink."""

    def write_rows(self, start: int, count: int, outputs: torch.Tensor | None, effect: torch.Tensor) -> None:
        """Rows ``[start, start + count)`` of the current unit (outputs None when not kept)."""

    def finish_unit(self, unit: int, start: int, stop: int, statistics: UnitStatistics) -> None:
        """Records unit ``unit`` (rows ``[start, stop)``) as complete, with its statistics."""

    def merged(self):
        """An :class:`latentsweep.merge.OrderedMerge` of every unit's statistics, in unit order."""

    def effect(self) -> torch.Tensor:
        """``[A*K*S]`` effect of every row."""

    def outputs(self):
        """``[A, K, S, *out_shape]`` outputs (tensor or array-like), or None."""

    def status(self):
        """A :class:`latentsweep.StoreStatus`: which units are done, missing or damaged."""

    def checked_merge(self):
        """``(status(), merged())`` from one reading, ``merged`` None unless complete."""

    def heartbeat(self) -> None:
        """Called as rows arrive: a store refreshes its writer's lease."""

    def export_units(self, plan, units) -> dict:
        """What other processes need of these finished units (nothing for a shared sink)."""

    def import_units(self, plan, exported: dict) -> None:
        """Takes in units finished by another process (see export_units)."""

    def close(self) -> None:
        """Releases what the sink holds (files, leases); idempotent."""


class MemorySink:
    """Keeps effect, outputs (unless keep_outputs=False) and unit statistics in CPU memory."""

    path = None
    shared = False

    def __init__(self, geometry: Geometry, keep_outputs: bool, plan, *, keep_units: bool = False):
        """keep_units: keep every unit's statistics (to send them to other ranks); otherwise
        units are merged as soon as all before them are, so memory does not grow with the grid."""
        self.geometry, self.plan, self.keep_units, self.keep_outputs = geometry, plan, keep_units, keep_outputs
        self._prefix = OrderedMerge(geometry.num_dims, geometry.features)
        self._effect = torch.zeros(geometry.num_rows, dtype=geometry.statistics_dtype, device="cpu")
        self._outputs = (
            torch.empty((geometry.num_rows, *geometry.out_shape), dtype=geometry.output_dtype, device="cpu")
            if keep_outputs
            else None
        )
        self._units: dict[int, UnitStatistics] = {}

    def done_units(self) -> set[int]:
        return set(range(self._prefix.next_unit)) | set(self._units)

    def write_rows(self, start, count, outputs, effect) -> None:
        self._effect[start : start + count] = effect
        if self._outputs is not None:
            self._outputs[start : start + count] = outputs

    def finish_unit(self, unit, start, stop, statistics) -> None:
        self._units[unit] = statistics
        while not self.keep_units and self._prefix.next_unit in self._units:
            self._prefix.add(self._prefix.next_unit, self._units.pop(self._prefix.next_unit))

    def merged(self) -> OrderedMerge:
        for unit in sorted(self._units):
            self._prefix.add(unit, self._units.pop(unit))  # raises if a unit is missing
        return self._prefix

    def effect(self) -> torch.Tensor:
        return self._effect

    def outputs(self):
        g = self.geometry
        return None if self._outputs is None else self._outputs.view(*g.grid_shape, *g.out_shape)

    def status(self):
        from .stores import StoreStatus  # noqa: PLC0415 - one status type for every sink

        done = self.done_units()
        rows = sum(self.plan.unit_rows_of(u)[1] - self.plan.unit_rows_of(u)[0] for u in done)
        return StoreStatus(None, self.plan.num_units, done, {}, rows, self.plan.num_rows)

    def checked_merge(self):
        status = self.status()
        return status, self.merged() if status.complete else None

    def heartbeat(self) -> None:
        pass

    def close(self) -> None:
        pass

    # Ranks without a shared store exchange their units (statistics only: effect rows and sums).
    def export_units(self, plan, units) -> dict:
        return {u: (self._effect[slice(*plan.unit_rows_of(u))].clone(), self._units[u]) for u in units}

    def import_units(self, plan, exported: dict) -> None:
        for unit, (effect, statistics) in exported.items():
            start, stop = plan.unit_rows_of(unit)
            self._effect[start:stop] = effect
            self._units[unit] = statistics
