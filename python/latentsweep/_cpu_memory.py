"""How much CPU memory a model's call takes: torch's large blocks in use at their peak during a
``with cpu_peak() as peak:`` block, less before it (``peak.bytes``), as the CUDA allocator's
peak statistics say on a GPU. Counted by latentsweep's reusing allocator
(cpp/engine/cpu/reusing_allocator.h), installed for the block: blocks of 64 KiB or more that torch
allocates (a model's activations and outputs), not memory a library allocates past torch
(oneDNN's scratch: 20 of the ~30 MiB a code of benchmarks/bench_decoder_memory.py's decoder).
``bytes`` is None where that allocator cannot be installed (another CPU allocator is torch's, or
off Linux/glibc). One count for the process: two threads measuring at once see each other's."""

from __future__ import annotations

from ._extension import _C

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
