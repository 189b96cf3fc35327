"""The plan of a sweep: batch size and work units, from the sweep's arguments only.

A work unit is a run of whole traversals (a traversal never spans two units) whose rows start on
a batch boundary, so its batches are the same whoever decodes it, and whose rows cover whole
store chunks, so no two processes ever write the same chunk. The plan is made once (by rank 0;
a store records it) and its units do not depend on the number of processes: that is what makes
results bitwise identical at any world size.

A sweep kept in memory may begin with trial units: the rows the CPU batch-size trials decoded
(whole units of each size tried, see _batching), kept as units 0..T-1 with their own batch size
instead of being thrown away. The regular units follow them. A store's units are all regular (its
chunks are one size), so its trials are scratch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

UNIT_MIN_BATCHES = 4  # decoder calls per unit, about: amortises a unit's record and reset

@dataclass(frozen=True)
class SweepPlan:
    """``num_rows`` grid rows (A*K*S) of ``num_steps`` steps, decoded ``batch_size`` at a time
    in units of ``unit_rows`` rows (a multiple of ``num_steps``); the store's chunks hold
    ``chunk_rows`` rows (``unit_rows`` is a multiple of it). A unit's last batch may be short:
    ``padded`` decodes it padded to ``batch_size`` (every call one shape: a CUDA graph, and stores
    made before this choice was recorded), else as it is (no decoder work on padding)."""

    num_rows: int
    num_steps: int
    batch_size: int
    unit_rows: int
    chunk_rows: int
    padded: bool = True
    # (start, stop, batch_size) of each trial unit, contiguous from row 0; the regular units of
    # unit_rows rows start where they end
    trial_units: tuple[tuple[int, int, int], ...] = ()

    @property
    def trial_rows(self) -> int:
        """Rows of the trial units (the regular units start here)."""
        return self.trial_units[-1][1] if self.trial_units else 0

    @property
    def num_units(self) -> int:
        return len(self.trial_units) - (-(self.num_rows - self.trial_rows) // self.unit_rows)

    def unit_rows_of(self, unit: int) -> tuple[int, int]:
        """Rows ``[start, stop)`` of a unit."""
        if unit < len(self.trial_units):
            return self.trial_units[unit][0], self.trial_units[unit][1]
        start = self.trial_rows + (unit - len(self.trial_units)) * self.unit_rows
        return start, min(start + self.unit_rows, self.num_rows)

    def unit_batch_size(self, unit: int) -> int:
        """The batch size unit ``unit`` is decoded with (a trial unit's own, else the plan's)."""
        return self.trial_units[unit][2] if unit < len(self.trial_units) else self.batch_size

    def as_dict(self) -> dict:
        return asdict(self)


def make_plan(num_rows: int, num_steps: int, batch_size: int, *, padded: bool,
              trial_units: tuple[tuple[int, int, int], ...] = ()) -> SweepPlan:
    """Units of whole traversals filling about UNIT_MIN_BATCHES batches (after the
    ``trial_units``, if any).

    When a few batches hold a whole number of traversals, units are exactly that (no short
    batch, store chunks of one batch). Otherwise a unit is as many whole traversals as fit in
    UNIT_MIN_BATCHES batches (its last batch short by fewer than S rows, padded or not as
    ``padded`` says) and is one store chunk.
    """
    batch_size = max(1, min(batch_size, num_rows))
    trial_units = _as_trial_units(trial_units)
    rows = num_rows - (trial_units[-1][1] if trial_units else 0)  # the regular units'
    aligned = math.lcm(batch_size, num_steps)
    if aligned <= UNIT_MIN_BATCHES * batch_size:
        unit_rows = aligned * -(-UNIT_MIN_BATCHES * batch_size // aligned)
        chunk_rows = batch_size
    else:
        unit_rows = num_steps * max(1, UNIT_MIN_BATCHES * batch_size // num_steps)
        chunk_rows = unit_rows
    if unit_rows >= rows:
        unit_rows = max(rows, num_steps)
        chunk_rows = min(chunk_rows, unit_rows)
    return SweepPlan(num_rows, num_steps, batch_size, unit_rows, chunk_rows, padded, trial_units)


def plan_from_dict(fields: dict) -> SweepPlan:
    padded = fields.get("padded", True)  # plans recorded before it was a choice padded every batch
    if not isinstance(padded, bool):
        raise ValueError(f"inconsistent plan {fields}")
    try:
        trial_units = _as_trial_units(fields.get("trial_units", ()))
    except (TypeError, ValueError):
        raise ValueError(f"inconsistent plan {fields}") from None
    plan = SweepPlan(**{k: int(fields[k]) for k in ("num_rows", "num_steps", "batch_size", "unit_rows", "chunk_rows")},
                     padded=padded, trial_units=trial_units)
    whole = plan.unit_rows == (plan.num_rows - plan.trial_rows or plan.num_steps)  # one regular unit
    if not (min(plan.num_rows, plan.num_steps, plan.batch_size, plan.chunk_rows, plan.unit_rows) >= 1
            and plan.num_rows % plan.num_steps == 0
            and _trials_consistent(plan)
            and (whole or (plan.unit_rows % plan.chunk_rows == 0 and plan.unit_rows % plan.num_steps == 0))):
        raise ValueError(f"inconsistent plan {fields}")
    return plan


def _as_trial_units(raw) -> tuple[tuple[int, int, int], ...]:
    """(start, stop, batch_size) triples as ints (from a plan's arguments or its record)."""
    return tuple((int(a), int(b), int(c)) for a, b, c in raw)


def _trials_consistent(plan: SweepPlan) -> bool:
    """Trial units: contiguous from row 0, whole traversals, within the grid, sizes >= 1."""
    row = 0
    for start, stop, size in plan.trial_units:
        if start != row or stop <= start or stop % plan.num_steps or stop > plan.num_rows or size < 1:
            return False
        row = stop
    return True


def units_for(plan: SweepPlan, pending: list[int], rank: int, world: int) -> list[int]:
    """The pending units a rank decodes: every world-th one (round robin, in unit order)."""
    return pending[rank::world]


def shard_units(plan: SweepPlan, index: int, count: int) -> list[int]:
    """Units of shard ``index`` of ``count``: every count-th unit (fixed, whatever is done)."""
    return list(range(index, plan.num_units, count))
