"""Peak memory for the benchmark scripts: the resident set's high-water mark (VmHWM, Linux),
reset before the call measured so that earlier work's freed peaks do not hide its own."""

from __future__ import annotations


def reset_peak() -> None:
    """The peak resident set back to the current one (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")


def peak_kib() -> int:
    with open("/proc/self/status") as file:
        return next(int(line.split()[1]) for line in file if line.startswith("VmHWM:"))


def resident_kib() -> int:
    with open("/proc/self/status") as file:
        return next(int(line.split()[1]) for line in file if line.startswith("VmRSS:"))
