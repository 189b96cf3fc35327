"""Peak memory for the benchmark scripts: the resident set's high-water mark (VmHWM, Linux),
reset before the call measured so that earlier work's freed peaks do not hide its own."""

from __future__ import annotations

import json
import subprocess
import sys


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


def fresh_process_row(script: str, arguments: list[str]) -> tuple[dict | None, str]:
    """One row measured in a process of its own (a fresh process's peak is the row's alone):
    ``python script *arguments`` prints the row as JSON on its last line. Returns (the row,
    "") or (None, what failed: the exit status and the end of its stderr)."""
    completed = subprocess.run([sys.executable, script, *arguments], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return None, f"exit {completed.returncode}: {completed.stderr.strip()[-2000:]}"
    return json.loads(completed.stdout.strip().splitlines()[-1]), ""
