"""The peak memory of one call, measured in a fresh process: the resident set's high-water mark
(VmHWM, reset just before the call through /proc/self/clear_refs) above the resident set before
it. Linux only. Measure allocations of more than 64 MB: glibc maps and unmaps those, so the
resident set is what is live (smaller freed blocks stay in its heap for reuse)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")


def _cpu_peak_measures() -> bool:
    from latentsweep._cpu_memory import cpu_peak

    with cpu_peak() as peak:
        pass
    return peak.bytes is not None


# latentsweep._cpu_memory.cpu_peak measures a model's memory on the CPU with the reusing allocator.
needs_reusing_allocator = pytest.mark.skipif(not _cpu_peak_measures(), reason="needs the reusing CPU "
                                             "allocator (Linux, glibc, torch's default CPU allocator)")

# Around the measured call in a script: BEFORE after its inputs and warm-ups, AFTER after the call.
BEFORE = """
import resource as _resource
_resident = int(open("/proc/self/statm").read().split()[1]) * _resource.getpagesize()
open("/proc/self/clear_refs", "w").write("5")  # the high-water mark from here
"""
AFTER = """
import json as _json
_peak = [int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(_json.dumps({"peak_bytes": _peak - _resident}))
"""


def peak_bytes(setup: str, call: str) -> int:
    """Bytes above the resident set that ``call`` (a statement) reached, after ``setup`` (which
    makes the inputs and warms up the imports and one-time allocations)."""
    return peak_bytes_of_each(setup, [call])[0]


def peak_bytes_of_each(setup: str, calls: list[str]) -> list[int]:
    """peak_bytes of each of ``calls`` in turn, in one process (one start-up, not one per call):
    each measured from the resident set before it, so a call must free what it allocates (its
    statement's names are not deleted) or it counts in the next call's baseline, not its peak."""
    script = "\n".join([setup, *(part for call in calls for part in (BEFORE, call, AFTER))])
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    peaks = [json.loads(line)["peak_bytes"] for line in completed.stdout.splitlines() if line.startswith('{"peak_bytes"')]
    assert len(peaks) == len(calls), completed.stdout
    return peaks
