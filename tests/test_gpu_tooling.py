"""The GPU tooling that CI cannot run on a GPU: the device timeline of benchmarks/profile_sweep.py
(on hand-made profiles) and the archive step of scripts/gpu_check.sh (run for real, every step
skipped, so it works on a machine without a GPU)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
CUDA, CPU = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU


@pytest.fixture(scope="module")
def profile_sweep():
    """benchmarks/profile_sweep.py, imported as the benchmarks import each other (from their folder)."""
    folder = str(ROOT / "benchmarks")
    sys.path.insert(0, folder)
    try:
        import profile_sweep

        yield profile_sweep
    finally:
        sys.path.remove(folder)
        for name in ("profile_sweep", "bench_sweep", "_timing"):
            sys.modules.pop(name, None)


class FakeProfile:
    """What device_timeline reads of a torch.profiler result: events() with a device type and a
    time range in microseconds."""

    def __init__(self, cuda=(), cpu=()):
        self._events = [self.event(CUDA, a, b) for a, b in cuda] + [self.event(CPU, a, b) for a, b in cpu]

    @staticmethod
    def event(device_type, start, end):
        return SimpleNamespace(device_type=device_type, time_range=SimpleNamespace(start=start, end=end))

    def events(self):
        return list(self._events)


TIMELINE = re.compile(
    r"device timeline: ([\d.]+) ms from the first kernel to the last, busy ([\d.]+) ms, "
    r"idle ([\d.]+) ms in (\d+) gaps \(largest, us: ([\d, ]*)\), kernels and copies side by side ([\d.]+)x"
)


def timeline(profile_sweep, prof) -> dict:
    text = profile_sweep.device_timeline(prof)
    match = TIMELINE.fullmatch(text)
    assert match, text
    span, busy, idle, count, gaps, side = match.groups()
    return {
        "span_ms": float(span), "busy_ms": float(busy), "idle_ms": float(idle), "gaps": int(count),
        "largest_us": [int(g) for g in gaps.split(", ") if g], "side_by_side": float(side),
    }


def test_timeline_of_disjoint_intervals_with_gaps(profile_sweep):
    """Busy time is the kernels' total, idle the gaps between them, largest gap first; the CPU's
    events and zero-length device events count for nothing (either would move the span here)."""
    prof = FakeProfile(cuda=[(0, 1000), (1500, 2500), (5000, 6000), (8000, 8000)], cpu=[(0, 9000), (-500, 100)])
    assert timeline(profile_sweep, prof) == {
        "span_ms": 6.0, "busy_ms": 3.0, "idle_ms": 3.0, "gaps": 2, "largest_us": [2500, 500], "side_by_side": 1.0,
    }


def test_timeline_of_nested_and_overlapping_intervals(profile_sweep):
    """Overlapping work counts once in the busy time and shows as side by side > 1: nested
    intervals (one starting last and ending before the one around it) do not shorten the busy
    run or the span, and intervals that touch leave no gap."""
    prof = FakeProfile(cuda=[
        (0, 1000), (200, 400), (800, 1600), (1600, 1700),  # one run: 0..1700 (the last touches)
        (2000, 3000), (2000, 2500), (2500, 2800),  # one run: 2000..3000 (the last starts last, ends first)
    ])
    # busy 1700 + 1000 = 2700 us of a 3000 us span; the intervals sum to 3900 us: 3900 / 2700 = 1.44
    assert timeline(profile_sweep, prof) == {
        "span_ms": 3.0, "busy_ms": 2.7, "idle_ms": 0.3, "gaps": 1, "largest_us": [300], "side_by_side": 1.44,
    }


def test_timeline_of_unsorted_events(profile_sweep):
    """Events in any order give the sorted events' timeline; of many gaps the 8 largest are listed,
    largest first."""
    gaps = [30, 100, 10, 70, 50, 20, 90, 40, 80, 60]
    intervals, start = [], 0
    for gap in [*gaps, 0]:
        intervals.append((start, start + 100))
        start += 100 + gap
    order = [7, 2, 10, 0, 5, 9, 3, 1, 8, 4, 6]
    shuffled = FakeProfile(cuda=[intervals[i] for i in order], cpu=[(0, 99999)])
    # 11 kernels of 100 us, gaps summing to 550 us: a 1650 us span
    expected = {
        "span_ms": 1.65, "busy_ms": 1.1, "idle_ms": 0.55, "gaps": 10,
        "largest_us": [100, 90, 80, 70, 60, 50, 40, 30], "side_by_side": 1.0,
    }
    assert timeline(profile_sweep, shuffled) == expected
    assert profile_sweep.device_timeline(shuffled) == profile_sweep.device_timeline(FakeProfile(cuda=intervals))


def test_timeline_ignores_user_annotations(profile_sweep):
    """record_function ranges show as CUDA events in a profile; they are not device work (here
    one spans the gap and would hide it, and double the side-by-side factor)."""
    prof = FakeProfile(cuda=[(0, 1000), (1500, 2500)])
    annotation = FakeProfile.event(CUDA, 0, 2500)
    annotation.is_user_annotation = True
    prof._events.append(annotation)
    assert timeline(profile_sweep, prof) == {
        "span_ms": 2.5, "busy_ms": 2.0, "idle_ms": 0.5, "gaps": 1, "largest_us": [500], "side_by_side": 1.0,
    }


def test_timeline_of_one_interval(profile_sweep):
    """One kernel: busy for the whole span, no gaps, nothing side by side."""
    assert timeline(profile_sweep, FakeProfile(cuda=[(250, 1250)])) == {
        "span_ms": 1.0, "busy_ms": 1.0, "idle_ms": 0.0, "gaps": 0, "largest_us": [], "side_by_side": 1.0,
    }


def test_timeline_without_device_events(profile_sweep):
    """A profile with no device work (none at all, CPU events only, or only zero-length device
    events) says so instead of dividing by a busy time of zero."""
    for prof in (FakeProfile(), FakeProfile(cpu=[(0, 100)]), FakeProfile(cuda=[(5, 5), (7, 7)], cpu=[(0, 10)])):
        assert profile_sweep.device_timeline(prof) == "device timeline: no device events"


GPU_CHECK = ROOT / "scripts" / "gpu_check.sh"
needs_bash_and_tar = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("tar") is None, reason="needs bash and tar"
)


def gpu_check_steps() -> list[str]:
    """The step names of scripts/gpu_check.sh, read from the script (so a new step is skipped too)."""
    steps = re.findall(r"^(?:[A-Z_]+=\S+ )?step ([\w-]+) \d+ ", GPU_CHECK.read_text(), re.M)
    assert {"build", "sweep-tests", "bench-sweep", "profile-sweep", "bench-statistics", "torchrun-cuda",
            "cuda-tests", "bench-core", "all-tests"} <= set(steps), steps
    return steps


def run_gpu_check(out: Path) -> subprocess.CompletedProcess:
    """scripts/gpu_check.sh with every step skipped: what runs is its preamble (nvidia-smi, the
    CUDA query and `import latentsweep`, which must not stop it on a machine without a GPU) and
    the archive step at its end."""
    env = {**os.environ, "OUT": str(out), "GPU_CHECK_SKIP": " ".join(gpu_check_steps())}
    done = subprocess.run(
        ["bash", str(GPU_CHECK), sys.executable], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "== all-tests: skipped (GPU_CHECK_SKIP)" in done.stdout, done.stdout
    return done


def fill(out: Path, logs: int, traces: int) -> dict[str, bytes]:
    out.mkdir()
    files = {f"step-{i}.log": f"log {i}\nüñí\n".encode() for i in range(logs)}
    files.update({f"trace {i}.json": b'{"traceEvents": [%d]}' % i for i in range(traces)})
    for name, content in files.items():
        (out / name).write_bytes(content)
    return files


@needs_bash_and_tar
def test_gpu_check_archives_more_than_8_logs_and_traces(tmp_path):
    """9 logs and traces (more than the device tool returns) leave as one gpu-check.tar.gz holding
    exactly them, with their contents; none is left loose, and other files are neither archived
    nor removed. The folder's name has a space, the way a quoting slip would show."""
    out = tmp_path / "gpu check"
    files = fill(out, logs=5, traces=4)
    (out / "notes.txt").write_text("kept")
    done = run_gpu_check(out)
    assert "archived in" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["gpu-check.tar.gz", "notes.txt"]
    with tarfile.open(out / "gpu-check.tar.gz") as archive:
        assert sorted(archive.getnames()) == sorted(files)
        assert {name: archive.extractfile(name).read() for name in files} == files


@needs_bash_and_tar
def test_gpu_check_leaves_8_logs_and_traces_as_they_are(tmp_path):
    """8 logs and traces are returned as they are: no archive, every file in place and unchanged."""
    out = tmp_path / "gpu check"
    files = fill(out, logs=4, traces=4)
    done = run_gpu_check(out)
    assert "archived" not in done.stdout
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
