"""The registered ops: opcheck (schema, fake kernels, autograd registration, AOT dispatch), a
torch.compile(fullgraph=True) graph calling them, the same in a process that only loaded the
library, and build_info. The fake kernels are the ops' C++ Meta kernels."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import latentsweep
from conftest import FLOAT_DTYPES

ops = torch.ops.latentsweep


def _inputs(device, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 40, generator=g).to(device=device, dtype=dtype)
    logvar = (torch.rand(4, 40, generator=g) - 0.5).to(device=device, dtype=dtype)
    return mu, logvar


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_opcheck_sample(device, dtype):
    mu, logvar = _inputs(device, dtype)
    torch.library.opcheck(ops.sample.default, (mu, logvar, 3, 7, 2, 5))
    torch.library.opcheck(ops.sample.default, (mu, logvar, 0, 0, 0, 0))
    torch.library.opcheck(ops.sample.default, (mu[:0], logvar[:0], 2, 2**63 - 1, 0, 0))


# The mutating ops return nothing (`-> ()`): AOTAutograd cannot functionalise custom ops that
# return an alias of a mutated argument, so torch.compile would reject them.
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_opcheck_sample_prior(device, dtype):
    for out in (torch.empty(6, 37, device=device, dtype=dtype), torch.empty(0, 5, device=device, dtype=dtype)):
        torch.library.opcheck(ops.sample_prior_.default, (out, 3, 4))


def _grid(device, dtype=torch.float32):
    anchors, _ = _inputs(device, dtype)
    dims = torch.tensor([3, 0, 39], device=device)
    values = torch.randn(4, 3, 5).to(device=device, dtype=dtype)
    return anchors, dims, values


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_opcheck_traversal_codes(device, dtype):
    anchors, dims, values = _grid(device, dtype)
    torch.library.opcheck(ops.traversal_codes.default, (anchors, dims, values, 0, None))
    torch.library.opcheck(ops.traversal_codes.default, (anchors, dims, values, 7, 20))
    # Broadcast values (zero strides), as the Python layer passes them.
    torch.library.opcheck(ops.traversal_codes.default, (anchors, dims, values[:1, :, :].expand(4, 3, 5), 2, None))
    out = torch.empty(20, 40, device=device, dtype=dtype)
    torch.library.opcheck(ops.traversal_codes_into.default, (anchors, dims, values, 7, 20, out))
    rest = torch.empty(4 * 3 * 5 - 40, 40, device=device, dtype=dtype)  # count=None: to the end
    torch.library.opcheck(ops.traversal_codes_into.default, (anchors, dims, values, 40, None, rest))
    # Values [S] and [K, S] broadcast inside the op.
    torch.library.opcheck(ops.traversal_codes.default, (anchors, dims, values[0, 0], 3, 9))
    torch.library.opcheck(ops.traversal_codes.default, (anchors, dims, values[0], 0, None))


def test_fake_kernels_give_shapes_without_data():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        mu = torch.empty(5, 33)
        assert ops.sample(mu, mu, 4, 0, 0, 0).shape == (5, 4, 33)
        assert ops.sample(mu.half(), mu.half(), 4, 0, 0, 0).dtype == torch.float16
        anchors = torch.empty(3, 8)
        codes = ops.traversal_codes(anchors, torch.empty(2, dtype=torch.int64), torch.empty(3, 2, 4), 5, None)
        assert codes.shape == (3 * 2 * 4 - 5, 8)
        codes = ops.traversal_codes(anchors, torch.empty(2, dtype=torch.int64), torch.empty(3, 2, 4), 5, 6)
        assert codes.shape == (6, 8)
        out = torch.empty(7, 3)
        assert ops.sample_prior_(out, 0, 0) is None
        assert ops.traversal_codes_into(anchors, torch.empty(2, dtype=torch.int64), torch.empty(3, 2, 4), 0, 7, out[:, :0].new_empty(7, 8)) is None
        prior = ops.sample_prior(6, 5, 0, 0, dtype=torch.float16, device="cpu")
        assert prior.shape == (6, 5) and prior.dtype == torch.float16 and prior.device.type == "cpu"


def test_meta_tensors_give_shapes_without_data():
    """The same Meta kernels serve plain meta tensors (no FakeTensorMode)."""
    mu = torch.empty(5, 33, device="meta")
    z = ops.sample(mu, mu, 4, 0, 0, 0)
    assert z.shape == (5, 4, 33) and z.device.type == "meta"
    assert ops.sample_prior(3, 2, 0, 0, device="meta").shape == (3, 2)
    anchors, dims, values = torch.empty(3, 8, device="meta"), torch.empty(2, dtype=torch.int64, device="meta"), torch.empty(4, device="meta")
    assert ops.traversal_codes(anchors, dims, values, 5, None).shape == (3 * 2 * 4 - 5, 8)
    assert ops.direction_codes(anchors, torch.empty(2, 8, device="meta"), values, 0, 6).shape == (6, 8)
    with pytest.raises(ValueError, match=r"latentsweep.traversal_codes: out must be \[7, 8\] torch.float32 on meta, got \[7, 9\]"):
        ops.traversal_codes_into(anchors, dims, values, 0, 7, torch.empty(7, 9, device="meta"))


def test_ops_compile_after_only_loading_the_library():
    """Issue 10 item 2: torch.compile(fullgraph=True), static and dynamic=True, traces every
    op in a process that never imports latentsweep, only loads its library (the fake kernels
    are C++ Meta kernels, registered with the ops), and gives what eager gives."""
    import latentsweep._extension as extension

    worker = os.path.join(os.path.dirname(__file__), "library_only_worker.py")
    done = subprocess.run([sys.executable, worker, extension._C.__file__], capture_output=True, text=True, timeout=600)
    if done.returncode == 3:
        pytest.skip(done.stdout.strip()[-300:])
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), (done.stdout[-2000:], done.stderr[-4000:])


def test_checks_hold_for_symbolic_sizes():
    """Under dynamic shapes the Meta kernel checks symbolic sizes (a guard, as torch._check):
    the same ValueError, its sizes named by their symbols."""
    compiled = torch.compile(lambda mu, logvar: ops.sample(mu, logvar, 3, 0, 0, 0), backend="aot_eager", fullgraph=True, dynamic=True)
    with pytest.raises(Exception) as info:
        compiled(torch.zeros(3, 4), torch.zeros(2, 4))
    cause = info.value
    while cause is not None and not isinstance(cause, ValueError):
        cause = cause.__cause__ or cause.__context__
    assert cause is not None, info.value
    assert re.fullmatch(r"latentsweep.sample: logvar must have mu's shape \[s\d+, s\d+\], got \[s\d+, s\d+\]", str(cause)), str(cause)


def _compile_or_skip(fn):
    try:
        compiled = torch.compile(fn, fullgraph=True)
        return compiled
    except Exception as error:  # pragma: no cover - machine without a working compiler
        pytest.skip(f"torch.compile unavailable: {error}")


def _run_compiled(compiled, *args):
    try:
        return compiled(*args)
    except Exception as error:
        message = str(error)
        if any(s in message for s in ("InvalidCxxCompiler", "No working C++ compiler", "CppCompileError")):
            pytest.skip(f"torch.compile backend cannot run here: {message[:200]}")
        raise


def test_torch_compile_fullgraph_calls_the_ops(device):
    mu, logvar = _inputs(device)
    dims = torch.tensor([1, 5], device=device)

    def pipeline(mu, logvar, dims):
        z = ops.sample(mu, logvar, 3, 11, 0, 0)  # [4, 3, 40]
        values = z[:, 1:, :2].transpose(1, 2).contiguous()  # [A=4, K=2, S=2]
        codes = ops.traversal_codes(z[:, 0], dims, values, 1, 10)
        return z * 2, codes + 1

    compiled = _compile_or_skip(pipeline)
    got = _run_compiled(compiled, mu, logvar, dims)
    z = latentsweep.sample(mu, logvar, 3, seed=11)
    assert torch.equal(got[0], z * 2)
    values = z[:, 1:, :2].transpose(1, 2)
    assert torch.equal(got[1], latentsweep.traversal_codes(z[:, 0], [1, 5], values, start=1, count=10) + 1)
    # Dynamic shapes: a second size reuses or recompiles the graph, with the right result.
    mu2, logvar2 = mu[:3, :33].contiguous(), logvar[:3, :33].contiguous()
    got2 = _run_compiled(compiled, mu2, logvar2, dims)
    assert torch.equal(got2[0], latentsweep.sample(mu2, logvar2, 3, seed=11) * 2)


def test_torch_compile_fullgraph_sample_prior_(device):
    def draw(out):
        ops.sample_prior_(out, 11, 3)
        return out * 1.0

    compiled = _compile_or_skip(draw)
    got = _run_compiled(compiled, torch.empty(2, 40, device=device))
    assert torch.equal(got, latentsweep.sample_prior(2, 40, seed=11, offset=3, device=device))


def test_torch_compile_traversal_codes_into(device):
    anchors, _ = _inputs(device)
    dims = torch.tensor([2], device=device)
    values = torch.linspace(-1, 1, 5, device=device).expand(4, 1, 5)
    out = torch.empty(6, 40, device=device)

    def fill(anchors, dims, values, out):
        ops.traversal_codes_into(anchors, dims, values, 3, 6, out)
        return out + 0

    compiled = _compile_or_skip(fill)
    got = _run_compiled(compiled, anchors, dims, values, out)
    assert torch.equal(got, out)
    assert torch.equal(out, latentsweep.traversal_codes(anchors, [2], values, start=3, count=6))


def test_build_info():
    info = latentsweep.build_info()
    assert info["torch"] == torch.__version__
    assert isinstance(info["cuda"], bool)
    assert isinstance(info["cpu_threads"], int) and info["cpu_threads"] >= 1
    assert info["cpu_threads"] == torch.get_num_threads()
    assert info["version"] == latentsweep.__version__
    assert "cuda_version" in info
    if info["cuda"]:
        assert isinstance(info["cuda_version"], str) and info["cuda_version"]
    else:
        assert info["cuda_version"] is None
    if torch.cuda.is_available():
        assert info["cuda"], "torch has CUDA but latentsweep was built without it"
    assert isinstance(info["cpu_avx2"], bool) and isinstance(info["avx2_kernels"], bool)
    assert info["cpu_capability"] in ("default", "avx2")
    # A fresh dict each call: callers may modify it.
    info["torch"] = "x"
    assert latentsweep.build_info()["torch"] == torch.__version__


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps and the ELF header")
def test_extension_shares_torchs_cpp_runtime():
    """A private libstdc++ inside the extension (a toolchain that links it statically, as one on
    a GPU machine did) breaks every stream that crosses into libc10: messages that print torch's
    sizes were cut short here and segfaulted there. The extension must load torch's own."""
    from latentsweep._extension import _C

    with pytest.raises(ValueError, match=r"mu must be 2-D \[N, D\], got shape \[2, 3, 4\]$"):
        latentsweep.sample(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), 2)
    runtimes = {line.split()[-1] for line in open("/proc/self/maps") if "libstdc++.so" in line}
    assert len(runtimes) <= 1, f"two C++ runtimes in one process: {runtimes}"
    readelf = shutil.which("readelf")
    if runtimes and readelf:
        needed = subprocess.run([readelf, "-d", _C.__file__], capture_output=True, text=True, check=True).stdout
        assert "libstdc++" in needed, f"{_C.__file__} does not load libstdc++: it carries its own copy"


def test_build_info_reports_current_thread_count():
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert latentsweep.build_info()["cpu_threads"] == 1
    finally:
        torch.set_num_threads(previous)
    assert latentsweep.build_info()["cpu_threads"] == previous
