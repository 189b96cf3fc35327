"""What one open of a sweep store has verified and merged so far (a stores.SweepStore keeps one),
so that a sweep reads each unit's record and effect rows once."""

from __future__ import annotations

import numpy as np

from .merge import RunningMerge, UnitStatistics


class VerifiedSoFar:
    """What an opened store has verified and merged so far, not to be read again:

    - the static arrays (anchors, values...) found intact or rewritten;
    - from the owner sweep's open on (:meth:`start_keeping`): the units known intact (done when
      checked, or written here): their records' checksums, and their statistics merged in unit
      order as far as they go (units after one not known wait, within a memory budget);
    - the effect rows of the units checked against their records or written here: kept by the
      owner's open (the result holds every effect row anyway), and by the check of a complete
      store for its result.

    Valid by the rule that a done unit does not change: a store has one owner sweep, whose
    ranks and shards write only units not done, and its static arrays are written only when it
    is created or repaired. A unit whose rows no longer match its record is taken back
    (:meth:`units_checked`): it is computed again, then kept as written.
    """

    def __init__(self, *, num_units: int, num_rows: int, num_dims: int, features: int, effect_dtype: np.dtype):
        self._num_units, self._num_rows = num_units, num_rows
        self._num_dims, self._features = num_dims, features
        self._effect_dtype = effect_dtype
        self._static: set[str] = set()
        self._budget_bytes = 0  # (of the merge kept: see start_keeping)
        self._merge: RunningMerge | None = None
        self._sums: np.ndarray | None = None  # [units, 2]: the (effect, outputs) checksums; -1: not known
        self._effect_rows: np.ndarray | None = None  # [rows]: those of the units marked in _rows_known
        self._rows_known: np.ndarray | None = None  # [units] bool

    # -- static arrays --------------------------------------------------------------------------
    def static_intact(self, name: str) -> bool:
        return name in self._static

    def mark_static_intact(self, name: str) -> None:
        """Read intact, or rewritten and read back."""
        self._static.add(name)

    # -- units ----------------------------------------------------------------------------------
    def start_keeping(self, budget_bytes: int) -> None:
        """The owner sweep's open, before its check: what was known of the units is forgotten,
        and from now on the units found intact and those written here are kept (statistics
        waiting for a unit before them take at most ``budget_bytes``; the merge's end reads the
        others again)."""
        self._budget_bytes = budget_bytes
        self._merge = RunningMerge(self._num_dims, self._features, budget_bytes)
        self._sums = np.full((self._num_units, 2), -1, dtype=np.int64)
        self._effect_rows = self._rows_known = None
        self.keep_effect_rows()

    @property
    def merge(self) -> RunningMerge | None:
        """The statistics kept (None: none are), to which a check offers the records it reads."""
        return self._merge

    def known_sums(self, unit: int, *, with_statistics: bool) -> list[int] | None:
        """The unit's recorded (effect, outputs) checksums when its record need not be read
        again: it is known intact and, ``with_statistics``, its statistics are merged or waiting.
        Else None."""
        if self._sums is None or self._sums[unit, 0] < 0:
            return None
        if with_statistics and (self._merge is None or not self._merge.has(unit)):
            return None
        return [int(self._sums[unit, 0]), int(self._sums[unit, 1])]

    def keep_effect_rows(self) -> bool:
        """From now on, keeps the effect rows a check reads and the units written here; False
        when they are kept already."""
        if self._effect_rows is not None:
            return False
        self._effect_rows = np.empty(self._num_rows, self._effect_dtype)
        self._rows_known = np.zeros(self._num_units, dtype=bool)
        return True

    def rows_known(self, units: np.ndarray) -> np.ndarray:
        """Whether each unit's effect rows are kept (known intact: not to be read again)."""
        if self._rows_known is None:
            return np.zeros(len(units), dtype=bool)
        return self._rows_known[units]

    def effect_rows_read(self, lo: int, hi: int, rows: np.ndarray) -> None:
        """Effect rows ``[lo, hi)`` as a check read them, whole units (known once
        :meth:`units_checked` finds them intact)."""
        if self._effect_rows is not None:
            self._effect_rows[lo:hi] = rows

    def units_checked(self, recorded: dict[int, list[int]], done: set[int]) -> None:
        """After a check of the units with records, ``recorded`` (unit -> its checksums): those
        ``done`` are intact, and known; the others' rows no longer match their record: not
        known, their statistics not merged (they are computed again, then kept as written)."""
        damaged = recorded.keys() - done
        if self._rows_known is not None:
            self._rows_known[list(damaged)] = False
            self._rows_known[list(done)] = True
        if self._merge is None:
            return
        for unit in damaged:
            if unit < self._merge.next_unit:  # (merged already, which cannot be taken back: all read again)
                self._merge = RunningMerge(self._num_dims, self._features, self._budget_bytes)
                break
            self._merge.forget(unit)
        for unit in done:
            self._sums[unit] = recorded[unit]

    def unit_written(self, unit: int, start: int, stop: int, sums: list[int], statistics: UnitStatistics,
                     effect: np.ndarray) -> None:
        """A unit written here (rows ``[start, stop)``, its record in place): known as written,
        also when the check found it damaged before."""
        if self._merge is not None:
            # The next unit is added at once; a copy of its sums [n, F] only to wait (float64, as
            # its record holds them): copied always, a unit of 23 traversals of 3 x 512 x 512
            # outputs took 0.13 GiB more at its end.
            waits = unit != self._merge.next_unit
            self._merge.offer(unit, UnitStatistics.from_arrays(statistics.arrays(), statistics.latents, self._features)
                              if waits else statistics)
        if self._sums is not None:
            self._sums[unit] = sums
        if self._effect_rows is not None:
            self._effect_rows[start:stop] = effect
            self._rows_known[unit] = True

    def take_merge(self) -> RunningMerge | None:
        """The statistics kept, now no longer kept (whoever takes them finishes the merge)."""
        merge, self._merge = self._merge, None
        return merge

    def take_effect_rows(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(effect rows, which units' rows they hold), now no longer kept (the result holds them),
        or None when none are kept."""
        if self._effect_rows is None:
            return None
        kept = self._effect_rows, self._rows_known
        self._effect_rows = self._rows_known = None
        return kept

    def forget_effect_rows(self) -> None:
        self._effect_rows = self._rows_known = None
