"""latentsweep.sample and latentsweep.sample_prior against the pure-PyTorch reference, and
their exactness properties: slices, thread counts, AVX2 vs portable kernels (the kernel choice
is per process, so the portable path runs in a subprocess), devices."""

from __future__ import annotations

import pytest
import torch

import os
import subprocess
import sys

import latentsweep
import reference as R
from conftest import FLOAT_DTYPES, cpu_has_avx2_kernels, num_threads, run_with_capability

# (N, D): D below 8, not a multiple of 8 or 32, exactly 32, several groups plus a tail.
SHAPES = [(1, 1), (3, 5), (2, 7), (4, 8), (3, 31), (5, 32), (2, 37), (3, 64), (2, 100), (1, 129)]

F64_TOL = dict(rtol=1e-12, atol=1e-12)
F32_TOL = dict(rtol=2e-6, atol=1e-6)  # polynomial log/sin/cos of the float32 kernel (~1 ulp)
LOW_TOL = {torch.float16: dict(rtol=2e-3, atol=1e-3), torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2)}


def make_inputs(rows, dim, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    logvar = torch.rand(rows, dim, generator=g, dtype=torch.float64) * 4 - 3  # sd in [0.22, 1.65]
    return mu.to(dtype=dtype, device=device), logvar.to(dtype=dtype, device=device)


# --------------------------------------------------------------------------- against the reference


@pytest.mark.parametrize("rows, dim", SHAPES)
def test_sample_float64_matches_reference(device, rows, dim):
    mu, logvar = make_inputs(rows, dim, torch.float64, device)
    kwargs = dict(seed=123456789, row_offset=11, sample_offset=3)
    z = latentsweep.sample(mu, logvar, 6, **kwargs)
    assert z.shape == (rows, 6, dim) and z.dtype == torch.float64 and z.device.type == device
    torch.testing.assert_close(z.cpu(), R.reference_sample(mu, logvar, 6, **kwargs), **F64_TOL)


F32_KWARGS = dict(seed=2**63 + 12345, row_offset=5, sample_offset=2**40)


@pytest.mark.parametrize("rows, dim", SHAPES)
def test_sample_float32_matches_reference(device, rows, dim):
    mu, logvar = make_inputs(rows, dim, torch.float32, device)
    z = latentsweep.sample(mu, logvar, 7, **F32_KWARGS)
    assert z.shape == (rows, 7, dim) and z.dtype == torch.float32
    ref = R.reference_sample(mu, logvar, 7, precision="float32", **F32_KWARGS)
    torch.testing.assert_close(z.cpu().double(), ref, **F32_TOL)


def test_portable_kernels_match_reference():
    """The same cases with LATENTSWEEP_CPU_CAPABILITY=default (the kernels every CPU runs)."""
    cases = [make_inputs(rows, dim) for rows, dim in SHAPES]
    calls = [("sample", (mu, logvar, 7), F32_KWARGS) for mu, logvar in cases]
    calls += [("sample_prior", (n, dim), dict(seed=2**64 - 2, offset=2**44, dtype=torch.float32)) for n, dim in PRIOR_SHAPES]
    results, info = run_with_capability("default", calls)
    assert info["cpu_capability"] == "default"
    for (mu, logvar), z in zip(cases, results):
        ref = R.reference_sample(mu, logvar, 7, precision="float32", **F32_KWARGS)
        torch.testing.assert_close(z.double(), ref, **F32_TOL)
    for (n, dim), z in zip(PRIOR_SHAPES, results[len(cases):]):
        ref = R.reference_sample_prior(n, dim, seed=2**64 - 2, offset=2**44, precision="float32")
        torch.testing.assert_close(z.double(), ref, **F32_TOL)


def test_sample_float32_matches_reference_on_many_draws():
    """Half a million draws: covers the polynomial approximations' whole input range."""
    mu, logvar = torch.zeros(512, 64), torch.zeros(512, 64)
    z = latentsweep.sample(mu, logvar, 16, seed=99)
    ref = R.reference_sample(mu, logvar, 16, seed=99, precision="float32")
    torch.testing.assert_close(z.double(), ref, **F32_TOL)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("rows, dim", [(3, 5), (4, 64), (2, 100)])
def test_sample_low_precision_is_float32_rounded_once(device, dtype, rows, dim):
    mu, logvar = make_inputs(rows, dim, dtype, device)
    z = latentsweep.sample(mu, logvar, 5, seed=7, row_offset=2)
    assert z.dtype == dtype and z.shape == (rows, 5, dim)
    z32 = latentsweep.sample(mu.float(), logvar.float(), 5, seed=7, row_offset=2)
    assert torch.equal(z, z32.to(dtype))
    ref = R.reference_sample(mu, logvar, 5, seed=7, row_offset=2, precision="float32")
    torch.testing.assert_close(z.cpu().double(), ref, **LOW_TOL[dtype])


@pytest.mark.parametrize("seed", [0, 1, 2**32, 2**32 + 1, 2**63, 2**64 - 1])
def test_sample_seeds_use_all_64_bits(seed):
    mu, logvar = make_inputs(2, 40, torch.float64)
    z = latentsweep.sample(mu, logvar, 3, seed=seed)
    torch.testing.assert_close(z, R.reference_sample(mu, logvar, 3, seed=seed), **F64_TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_counters_at_their_limits(dtype):
    """High counter words (row >= 2^32, sample >= 2^32) and the largest allowed offsets."""
    mu, logvar = make_inputs(3, 40, dtype)
    for row_offset, sample_offset in [(2**32 - 1, 2**32 - 2), (2**48 - 3, 2**47 - 4), (2**40 + 7, 0)]:
        kwargs = dict(seed=5, row_offset=row_offset, sample_offset=sample_offset)
        z = latentsweep.sample(mu, logvar, 4, **kwargs)
        precision = "float64" if dtype == torch.float64 else "float32"
        ref = R.reference_sample(mu, logvar, 4, precision=precision, **kwargs)
        torch.testing.assert_close(z.double(), ref, **(F64_TOL if dtype == torch.float64 else F32_TOL))


def test_sample_high_counter_bits_give_new_draws():
    mu, logvar = torch.zeros(2, 40, dtype=torch.float64), torch.zeros(2, 40, dtype=torch.float64)
    base = latentsweep.sample(mu, logvar, 2, seed=1)
    for kwargs in (
        dict(seed=1, row_offset=2**32),
        dict(seed=1, sample_offset=2**32),
        dict(seed=1 + 2**32),
        dict(seed=1, row_offset=2**47),
        dict(seed=1, sample_offset=2**46),
    ):
        other = latentsweep.sample(mu, logvar, 2, **kwargs)
        assert not torch.isclose(base, other).any(), kwargs


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sample_one_dimensional_input_is_one_row(device, dtype):
    mu, logvar = make_inputs(1, 37, dtype, device)
    z = latentsweep.sample(mu[0], logvar[0], 4, seed=3, row_offset=9, sample_offset=2)
    assert z.shape == (4, 37) and z.dtype == dtype
    assert torch.equal(z, latentsweep.sample(mu, logvar, 4, seed=3, row_offset=9, sample_offset=2)[0])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sample_empty_shapes(device, dtype):
    mu, logvar = make_inputs(3, 10, dtype, device)
    assert latentsweep.sample(mu, logvar, 0).shape == (3, 0, 10)
    assert latentsweep.sample(mu[0], logvar[0], 0).shape == (0, 10)
    assert latentsweep.sample(mu[:0], logvar[:0], 4).shape == (0, 4, 10)
    z = latentsweep.sample(mu[:, :0], logvar[:, :0], 4)
    assert z.shape == (3, 4, 0) and z.dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_non_contiguous_inputs(dtype):
    mu, logvar = make_inputs(40, 6, dtype)
    mu_t, logvar_t = mu.T.contiguous().T, logvar.T.contiguous().T
    assert not mu_t.is_contiguous()
    assert torch.equal(latentsweep.sample(mu_t, logvar_t, 3, seed=4), latentsweep.sample(mu, logvar, 3, seed=4))
    strided_mu, strided_lv = make_inputs(40, 12, dtype)
    got = latentsweep.sample(strided_mu[::2, ::2], strided_lv[::2, ::2], 3, seed=4)
    expected = latentsweep.sample(strided_mu[::2, ::2].contiguous(), strided_lv[::2, ::2].contiguous(), 3, seed=4)
    assert torch.equal(got, expected)


def test_sample_does_not_modify_inputs():
    mu, logvar = make_inputs(4, 33)
    before = mu.clone(), logvar.clone()
    latentsweep.sample(mu, logvar, 3)
    assert torch.equal(mu, before[0]) and torch.equal(logvar, before[1])


def test_sample_is_mu_plus_sd_times_shared_eps():
    """The same eps for every (mu, logvar): z - mu scales with sd exactly as the formula says."""
    mu, logvar = make_inputs(3, 50, torch.float64)
    eps = latentsweep.sample(torch.zeros_like(mu), torch.zeros_like(logvar), 4, seed=8)
    z = latentsweep.sample(mu, logvar, 4, seed=8)
    torch.testing.assert_close(z, mu[:, None] + torch.exp(0.5 * logvar)[:, None] * eps, rtol=1e-14, atol=1e-14)


def test_posterior_sample_is_sample():
    mu, logvar = make_inputs(3, 9, torch.float64)
    post = latentsweep.Posterior(mu, logvar)
    assert torch.equal(post.sample(4, seed=2), latentsweep.sample(mu, logvar, 4, seed=2))


# --------------------------------------------------------------------------- exactness properties


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sample_slices_are_bitwise_equal(device, dtype):
    mu, logvar = make_inputs(9, 70, dtype, device)
    full = latentsweep.sample(mu, logvar, 12, seed=77, row_offset=100, sample_offset=1000)
    for i0, i1, j0, j1 in [(0, 9, 0, 12), (2, 5, 3, 4), (8, 9, 11, 12), (0, 1, 0, 12), (4, 9, 5, 12)]:
        part = latentsweep.sample(
            mu[i0:i1], logvar[i0:i1], j1 - j0, seed=77, row_offset=100 + i0, sample_offset=1000 + j0
        )
        assert torch.equal(part, full[i0:i1, j0:j1]), (i0, i1, j0, j1)


@pytest.mark.parametrize("capability", ["default", "avx2"])
def test_sample_kernels_of_every_capability_agree_bitwise(capability):
    """Whatever this process runs (the best the CPU has) equals, bit for bit, what a process
    forced to the portable (or AVX2) kernels computes."""
    if capability == "avx2" and not cpu_has_avx2_kernels():
        pytest.skip("this build or CPU has no AVX2 kernels")
    shapes = [(5, 3, 32), (3, 2, 96), (7, 5, 100), (2, 3, 37), (4, 9, 8), (6, 1, 3), (1, 1, 33)]
    kwargs = dict(seed=31, row_offset=4, sample_offset=2**33)
    calls = []
    for rows, n, dim in shapes:
        mu, logvar = make_inputs(rows, dim)
        calls.append(("sample", (mu, logvar, n), kwargs))
        calls.append(("sample_prior", (rows * n, dim), dict(seed=31, offset=2**33, dtype=torch.float32)))
    results, info = run_with_capability(capability, calls)
    assert info["cpu_capability"] == capability
    for (name, args, call_kwargs), theirs in zip(calls, results):
        assert torch.equal(getattr(latentsweep, name)(*args, **call_kwargs), theirs), (name, args[-1])


def _build_info_with(capability: str) -> tuple[dict, str]:
    code = "import json, latentsweep; print(json.dumps(latentsweep.build_info()))"
    env = {**os.environ, "LATENTSWEEP_CPU_CAPABILITY": capability}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    import json

    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_cpu_capability_is_chosen_from_the_environment():
    best = "avx2" if cpu_has_avx2_kernels() else "default"
    assert latentsweep.build_info()["cpu_capability"] == os.environ.get("LATENTSWEEP_CPU_CAPABILITY", best)
    info, _ = _build_info_with("default")
    assert info["cpu_capability"] == "default"
    info, stderr = _build_info_with("avx2")
    assert info["cpu_capability"] == best
    assert ("using the default kernels" in stderr) == (best != "avx2")
    # An unknown value falls back to the best supported kernels and says so (as ATen does).
    info, stderr = _build_info_with("avx512-please")
    assert info["cpu_capability"] == best
    assert "ignoring LATENTSWEEP_CPU_CAPABILITY=avx512-please" in stderr


@pytest.mark.slow
def test_sample_avx2_streaming_stores_agree_with_portable_kernel():
    """Outputs over 32 MB take the AVX2 streaming-store path."""
    if not cpu_has_avx2_kernels():
        pytest.skip("this build or CPU has no AVX2 kernels")
    mu, logvar = make_inputs(4200, 64)  # 4200 * 32 * 64 * 4 bytes = 34 MB
    fast = latentsweep.sample(mu, logvar, 32, seed=12)
    (slow,), _ = run_with_capability("default", [("sample", (mu, logvar, 32), dict(seed=12))])
    assert torch.equal(fast, slow)
    ref = R.reference_sample(mu[-3:], logvar[-3:], 32, seed=12, row_offset=4197, precision="float32")
    torch.testing.assert_close(fast[-3:].double(), ref, **F32_TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_sample_independent_of_thread_count(dtype):
    mu, logvar = make_inputs(64, 72, dtype)
    results = []
    for threads in (1, 2, 3, 4):
        with num_threads(threads):
            results.append(
                (
                    latentsweep.sample(mu, logvar, 40, seed=2024, row_offset=1),
                    latentsweep.sample_prior(3000, 72, seed=2024, offset=5, dtype=dtype),
                )
            )
    for z, prior in results[1:]:
        assert torch.equal(z, results[0][0])
        assert torch.equal(prior, results[0][1])


# --------------------------------------------------------------------------- sample_prior


@pytest.mark.parametrize("n, dim", [(1, 1), (5, 7), (6, 32), (3, 100), (40, 64)])
def test_sample_prior_float64_matches_reference(device, n, dim):
    z = latentsweep.sample_prior(n, dim, seed=42, offset=17, dtype=torch.float64, device=device)
    assert z.shape == (n, dim) and z.dtype == torch.float64 and z.device.type == device
    torch.testing.assert_close(z.cpu(), R.reference_sample_prior(n, dim, seed=42, offset=17), **F64_TOL)


PRIOR_SHAPES = [(1, 1), (5, 7), (6, 32), (3, 100), (40, 64)]


@pytest.mark.parametrize("n, dim", PRIOR_SHAPES)
def test_sample_prior_float32_matches_reference(device, n, dim):
    z = latentsweep.sample_prior(n, dim, seed=2**64 - 2, offset=2**44, dtype=torch.float32, device=device)
    ref = R.reference_sample_prior(n, dim, seed=2**64 - 2, offset=2**44, precision="float32")
    torch.testing.assert_close(z.cpu().double(), ref, **F32_TOL)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sample_prior_offset_slices(device, dtype):
    full = latentsweep.sample_prior(50, 45, seed=3, offset=1000, dtype=dtype, device=device)
    for k, m in [(0, 50), (0, 1), (13, 20), (49, 1), (20, 0)]:
        part = latentsweep.sample_prior(m, 45, seed=3, offset=1000 + k, dtype=dtype, device=device)
        assert torch.equal(part, full[k : k + m])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sample_prior_low_precision_is_float32_rounded(device, dtype):
    z = latentsweep.sample_prior(20, 40, seed=6, dtype=dtype, device=device)
    assert z.dtype == dtype
    assert torch.equal(z, latentsweep.sample_prior(20, 40, seed=6, dtype=torch.float32, device=device).to(dtype))


def test_sample_prior_defaults():
    z = latentsweep.sample_prior(3, 4)
    assert z.dtype == torch.get_default_dtype() and z.device.type == "cpu" and z.shape == (3, 4)
    assert torch.equal(z, latentsweep.sample_prior(3, 4, seed=0, offset=0))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert latentsweep.sample_prior(3, 4).dtype == torch.float64
    finally:
        torch.set_default_dtype(previous)
    assert latentsweep.sample_prior(0, 4).shape == (0, 4)
    assert latentsweep.sample_prior(4, 0).shape == (4, 0)


def test_sample_prior_is_a_separate_stream_from_sample():
    """Prior row i is not posterior row i, sample 0 (only the stream bit differs)."""
    prior = latentsweep.sample_prior(8, 64, seed=9, dtype=torch.float64)
    posterior = latentsweep.sample(torch.zeros(8, 64, dtype=torch.float64), torch.zeros(8, 64, dtype=torch.float64), 1, seed=9)[:, 0]
    assert not torch.isclose(prior, posterior).any()
    torch.testing.assert_close(
        posterior, R.reference_eps(9, torch.arange(8), torch.zeros(1), torch.arange(64), R.POSTERIOR_STREAM)[:, 0], **F64_TOL
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_raw_sample_prior_fills_non_contiguous_outputs(dtype):
    out = torch.full((40, 10), float("nan"), dtype=dtype).T  # [10, 40], non-contiguous
    assert torch.ops.latentsweep.sample_prior_(out, 5, 2) is None
    assert torch.equal(out, latentsweep.sample_prior(10, 40, seed=5, offset=2, dtype=dtype))


# --------------------------------------------------------------------------- CUDA vs CPU


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_cuda_agrees_with_cpu(device, dtype):
    if device != "cuda":
        pytest.skip("compares CUDA with the CPU")
    mu, logvar = make_inputs(33, 100, dtype)
    cpu = latentsweep.sample(mu, logvar, 9, seed=11, row_offset=3, sample_offset=2**35)
    gpu = latentsweep.sample(mu.cuda(), logvar.cuda(), 9, seed=11, row_offset=3, sample_offset=2**35)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype in (torch.float32, torch.float64) else LOW_TOL[dtype]
    torch.testing.assert_close(gpu.cpu(), cpu, **tol)
    prior_cpu = latentsweep.sample_prior(50, 70, seed=11, offset=9, dtype=dtype)
    prior_gpu = latentsweep.sample_prior(50, 70, seed=11, offset=9, dtype=dtype, device="cuda")
    torch.testing.assert_close(prior_gpu.cpu(), prior_cpu, **tol)
