"""Shared fixtures: the device parametrisation (cpu always, cuda when available), running calls
under another CPU capability (a subprocess), a thread-count switch that always restores the
previous setting, and the hypothesis profile."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # `import reference` from any test module

from hypothesis import HealthCheck, settings  # noqa: E402

import latentsweep  # noqa: E402

# Modest and reproducible: the whole suite should run in a few minutes on 2 cores.
settings.register_profile(
    "latentsweep",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "latentsweep"))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Every device test runs on the CPU, and also on CUDA when this machine has it."""
    return request.param


RUNNER = os.path.join(os.path.dirname(__file__), "capability_runner.py")


def run_with_capability(capability: str, calls: list, *, timeout: float = 300) -> tuple[list, dict]:
    """Runs ``[(function, args, kwargs), ...]`` of latentsweep in a fresh process with
    LATENTSWEEP_CPU_CAPABILITY=capability; returns (results, that process's build_info())."""
    with tempfile.TemporaryDirectory() as tmp:
        calls_path, results_path = os.path.join(tmp, "calls.pt"), os.path.join(tmp, "results.pt")
        encoded = [
            (name, args, {k: str(v) if isinstance(v, torch.dtype) else v for k, v in kwargs.items()})
            for name, args, kwargs in calls
        ]
        torch.save(encoded, calls_path)
        env = {**os.environ, "LATENTSWEEP_CPU_CAPABILITY": capability}
        done = subprocess.run(
            [sys.executable, RUNNER, calls_path, results_path],
            env=env, capture_output=True, text=True, timeout=timeout,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        saved = torch.load(results_path, weights_only=True)
    return saved["results"], saved["build_info"]


@contextlib.contextmanager
def num_threads(n: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cpu_has_avx2_kernels() -> bool:
    info = latentsweep.build_info()
    return bool(info["avx2_kernels"] and info["cpu_avx2"])


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_in_pytests_folder(tmp_path_factory):
    """The temporary files of the tests and of the processes they start (torchrun's log folders,
    a script's own mkdtemp, torch's caches) go under pytest's base folder, of which pytest keeps
    the last three runs: left in /tmp by every run, they filled this machine's disk."""
    folder = str(tmp_path_factory.mktemp("tmp"))
    previous = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = tempfile.tempdir = folder
    yield
    if previous[0] is None:
        del os.environ["TMPDIR"]
    else:
        os.environ["TMPDIR"] = previous[0]
    tempfile.tempdir = previous[1]


@pytest.fixture(autouse=True)
def _restore_global_state():
    """A test that fails half way must not leave the thread count changed."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def pytest_make_parametrize_id(config, val, argname):
    """Readable test ids: `float32` rather than `dtype0`."""
    if isinstance(val, torch.dtype):
        return str(val).removeprefix("torch.")
    return None
