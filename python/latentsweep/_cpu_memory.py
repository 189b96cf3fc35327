"""How much CPU memory a model's call takes: torch's large blocks in use at their peak during a
``with cpu_peak() as peak:`` block, less before it (``peak.bytes``), as the CUDA allocator's
peak statistics say on a GPU. Counted by latentsweep's reusing allocator
(cpp/engine/cpu/reusing_allocator.h), installed for the block: blocks of 64 KiB or more that torch
allocates (a model's activations and outputs), not memory a library allocates past torch
(oneDNN's scratch: 20 of the ~30 MiB a code of benchmarks/bench_decoder_memory.py's decoder).
``bytes`` is None where that allocator cannot be installed (another CPU allocator is torch's, or
off Linux/glibc). One count for the process: two threads measuring at once see each other's."""

from __future__ import annotations

import torch

from . import _checks
from ._extension import _C
from ._random_state import preserve_rng_state

# The rows a model is measured on (the decoder's probe's first call, encode's measuring call):
# two, not one: batch norm in training mode refuses a batch of one, and a model that squeezes
# its batch dimension returns another shape for it.
MEASURED_ROWS = 2


class cpu_peak:  # noqa: N801 - a context manager used as a function
    """``with cpu_peak() as peak: model(x)``, then ``peak.bytes``."""

    bytes: int | None = None

    def __enter__(self) -> cpu_peak:
        self._scope = _C.reuse_cpu_buffers()
        self._scope.__enter__()
        self._before = _C._reset_reuse_peak()
        return self

    def __exit__(self, *exc) -> None:
        counters = _C._reuse_counters()
        self.bytes = max(0, counters["peak_bytes"] - self._before) if counters["active"] else None
        self._scope.__exit__(*exc)


def memory_per_row(call, inputs: torch.Tensor) -> float | None:
    """``call``'s CPU memory a row of ``inputs`` (MEASURED_ROWS copies of a batch's first rows),
    measured in a call of its own whose outputs are thrown away, the random states restored
    after it; None where cpu_peak cannot measure, or where that call fails (the batch's own call
    then says what is wrong, and a model that takes one batch size only runs as before)."""
    try:
        with preserve_rng_state(), cpu_peak() as peak:
            call(inputs)
    except Exception:  # noqa: BLE001 - said by the batch's own call, if it fails too
        return None
    return None if peak.bytes is None else peak.bytes / inputs.shape[0]


def rows_within_memory(per_row: float | None, device: torch.device, rows: int) -> tuple[int, str] | None:
    """None where ``rows`` rows at ``per_row`` bytes each (None: not measured) fit the memory's
    share (:func:`._checks.memory_shortfall`; small amounts are not checked), else (the largest
    power of two of rows below ``rows`` that fits, at least one; the shortfall's words): the one
    rule of encode's and the metrics' smaller calls."""
    need = int(rows * per_row) if per_row else 0
    if need <= _checks.UNCHECKED_BYTES or (shortfall := _checks.memory_shortfall(need, device)) is None:
        return None
    fit = 1
    while 2 * fit < rows and _checks.memory_shortfall(int(2 * fit * per_row), device) is None:
        fit *= 2
    return fit, shortfall
