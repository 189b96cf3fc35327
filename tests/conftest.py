"""Shared fixtures: the device parametrisation (cpu always, cuda when available), switches for
the CPU's AVX2 kernels and thread count that always restore the previous setting, and the
hypothesis profile."""

from __future__ import annotations

import contextlib
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # `import reference` from any test module

from hypothesis import HealthCheck, settings  # noqa: E402

import latentsweep  # noqa: E402
from latentsweep._extension import _C  # noqa: E402

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


@contextlib.contextmanager
def avx2_enabled(enabled: bool):
    """Switches the CPU's AVX2 sampling kernel on or off, restoring the previous setting."""
    previous = _C._set_avx2_enabled(enabled)
    try:
        yield
    finally:
        _C._set_avx2_enabled(previous)


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


@pytest.fixture(autouse=True)
def _restore_global_state():
    """A test that fails half way must not leave AVX2 off or the thread count changed."""
    threads = torch.get_num_threads()
    previous = _C._set_avx2_enabled(True)
    _C._set_avx2_enabled(previous)
    yield
    torch.set_num_threads(threads)
    _C._set_avx2_enabled(previous)


def pytest_make_parametrize_id(config, val, argname):
    """Readable test ids: `float32` rather than `dtype0`."""
    if isinstance(val, torch.dtype):
        return str(val).removeprefix("torch.")
    return None
