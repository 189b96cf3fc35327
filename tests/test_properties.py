"""Hypothesis property tests over shapes, dtypes, offsets, seeds and chunkings."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import latentsweep
import reference as R
from conftest import FLOAT_DTYPES, cpu_has_avx2_kernels, run_with_capability

TOL = {
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float32: dict(rtol=2e-6, atol=1e-6),
    torch.float16: dict(rtol=2e-3, atol=1e-3),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2),
}

dtypes = st.sampled_from(FLOAT_DTYPES)
seeds = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1]))
# Dims around the layout's boundaries (8 per word run, 32 per block group) are the interesting ones.
latent_dims = st.one_of(st.integers(0, 70), st.sampled_from([1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 96]))


def _tensor(shape, dtype, seed, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype)


def _precision(dtype):
    return "float64" if dtype == torch.float64 else "float32"


def _split_points(draw, total, max_pieces=5):
    cuts = sorted(draw(st.lists(st.integers(0, total), max_size=max_pieces)))
    return list(zip([0] + cuts, cuts + [total]))


@given(
    rows=st.integers(0, 6),
    dim=latent_dims,
    n=st.integers(0, 6),
    dtype=dtypes,
    seed=seeds,
    row_offset=st.one_of(st.integers(0, 1000), st.integers(0, 2**48 - 6)),
    sample_offset=st.one_of(st.integers(0, 1000), st.integers(0, 2**47 - 6)),
    data_seed=st.integers(0, 2**31),
    one_row=st.booleans(),
)
def test_sample_matches_reference(rows, dim, n, dtype, seed, row_offset, sample_offset, data_seed, one_row):
    shape = (dim,) if one_row else (rows, dim)  # a 1-D mu is one row
    mu = _tensor(shape, dtype, data_seed, scale=2.0)
    logvar = _tensor(shape, dtype, data_seed + 1, scale=1.5, shift=-1.0)
    kwargs = dict(seed=seed, row_offset=row_offset, sample_offset=sample_offset)
    z = latentsweep.sample(mu, logvar, n, **kwargs)
    expected_shape = (n, mu.shape[-1]) if mu.dim() == 1 else (rows, n, dim)
    assert z.shape == expected_shape and z.dtype == dtype
    ref = R.reference_sample(mu, logvar, n, precision=_precision(dtype), **kwargs)
    torch.testing.assert_close(z.double(), ref, **TOL[dtype])
    if dtype in (torch.float16, torch.bfloat16):
        assert torch.equal(z, latentsweep.sample(mu.float(), logvar.float(), n, **kwargs).to(dtype))


@st.composite
def sample_slices(draw):
    rows, n = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    i0 = draw(st.integers(0, rows - 1))
    i1 = draw(st.integers(i0, rows))
    j0 = draw(st.integers(0, n - 1))
    j1 = draw(st.integers(j0, n))
    return rows, n, (i0, i1, j0, j1)


@given(
    shape=sample_slices(),
    dim=latent_dims,
    dtype=dtypes,
    seed=seeds,
    row_offset=st.integers(0, 2**40),
    sample_offset=st.integers(0, 2**40),
)
def test_sample_slices_match_full_draw(shape, dim, dtype, seed, row_offset, sample_offset):
    rows, n, (i0, i1, j0, j1) = shape
    mu = _tensor((rows, dim), dtype, 1)
    logvar = _tensor((rows, dim), dtype, 2, shift=-1.0)
    full = latentsweep.sample(mu, logvar, n, seed=seed, row_offset=row_offset, sample_offset=sample_offset)
    part = latentsweep.sample(
        mu[i0:i1], logvar[i0:i1], j1 - j0, seed=seed, row_offset=row_offset + i0, sample_offset=sample_offset + j0
    )
    assert torch.equal(part, full[i0:i1, j0:j1])


def test_sample_avx2_matches_portable_kernel():
    """Random shapes, seeds and offsets (drawn once, fixed seed) computed by this process's
    kernels and by a process forced to the portable ones (the choice is per process, so one
    subprocess runs every case)."""
    if not cpu_has_avx2_kernels():
        pytest.skip("this build or CPU has no AVX2 kernels")
    rng = random.Random(20261125)
    calls = []
    for case in range(60):
        rows, n = rng.randint(1, 6), rng.randint(1, 6)
        dim = rng.choice([rng.randint(1, 130), 32, 64, 96, 128])
        kwargs = dict(seed=rng.randrange(2**64), row_offset=rng.randrange(2**48 - 7), sample_offset=rng.randrange(2**47 - 7))
        mu, logvar = _tensor((rows, dim), torch.float32, 3 + case), _tensor((rows, dim), torch.float32, 400 + case)
        calls.append(("sample", (mu, logvar, n), kwargs))
    results, _ = run_with_capability("default", calls)
    for (_, args, kwargs), slow in zip(calls, results):
        assert torch.equal(latentsweep.sample(*args, **kwargs), slow), kwargs


@given(data=st.data(), n=st.integers(0, 40), dim=latent_dims, dtype=dtypes, seed=seeds, offset=st.integers(0, 2**48 - 41))
def test_sample_prior_chunks_match_reference(data, n, dim, dtype, seed, offset):
    full = latentsweep.sample_prior(n, dim, seed=seed, offset=offset, dtype=dtype)
    assert full.shape == (n, dim) and full.dtype == dtype
    ref = R.reference_sample_prior(n, dim, seed=seed, offset=offset, precision=_precision(dtype))
    torch.testing.assert_close(full.double(), ref, **TOL[dtype])
    pieces = [
        latentsweep.sample_prior(b - a, dim, seed=seed, offset=offset + a, dtype=dtype)
        for a, b in _split_points(data.draw, n)
    ]
    assert torch.equal(torch.cat(pieces), full)


@st.composite
def grids(draw):
    num_anchors = draw(st.integers(1, 5))
    latent = draw(st.integers(1, 40))
    num_dims = draw(st.integers(1, 6))
    dims = draw(st.lists(st.integers(0, latent - 1), min_size=num_dims, max_size=num_dims))
    steps = draw(st.integers(1, 6))
    values_ndim = draw(st.sampled_from([1, 2, 3]))
    dtype = draw(dtypes)
    anchors = _tensor((num_anchors, latent), dtype, draw(st.integers(0, 1000)), scale=3.0)
    shape = {1: (steps,), 2: (num_dims, steps), 3: (num_anchors, num_dims, steps)}[values_ndim]
    values_dtype = draw(st.sampled_from([dtype, torch.float64]))
    values = _tensor(shape, values_dtype, draw(st.integers(0, 1000)), scale=5.0)
    if draw(st.booleans()):
        anchors = anchors[0]  # one anchor, 1-D
        if values_ndim == 3:
            values = values[:1]
    dims_as = draw(st.sampled_from(["list", "tensor", "int32"]))
    dims_arg = {"list": dims, "tensor": torch.tensor(dims), "int32": torch.tensor(dims, dtype=torch.int32)}[dims_as]
    return anchors, dims, dims_arg, values


@given(grid=grids(), data=st.data())
def test_traversal_codes_chunks_match_reference(grid, data):
    anchors, dims, dims_arg, values = grid
    full = latentsweep.traversal_codes(anchors, dims_arg, values)
    expected = R.reference_traversal_codes(anchors, dims, values)
    assert torch.equal(full, expected)
    total = full.shape[0]
    chunks = _split_points(data.draw, total)
    pieces = [latentsweep.traversal_codes(anchors, dims_arg, values, start=a, count=b - a) for a, b in chunks]
    assert torch.equal(torch.cat(pieces), full)
    # The same chunks written into one reused buffer with out=.
    width = max((b - a for a, b in chunks), default=0)
    buffer = torch.full((width, full.shape[1]), float("nan"), dtype=full.dtype)
    for a, b in chunks:
        out = buffer[: b - a]
        result = latentsweep.traversal_codes(anchors, dims_arg, values, start=a, count=b - a, out=out)
        assert result.data_ptr() == out.data_ptr() or b == a
        assert torch.equal(out, full[a:b])


@given(
    mode=st.sampled_from(latentsweep.MODES),
    num_anchors=st.integers(1, 4),
    latent=st.integers(1, 8),
    span=st.floats(0.01, 6.0),
    steps=st.integers(1, 15),
    prior_std=st.floats(0.05, 5.0),
    data=st.data(),
)
def test_traversal_values_match_reference(mode, num_anchors, latent, span, steps, prior_std, data):
    anchors = _tensor((num_anchors, latent), torch.float64, 5, scale=2.0)
    logvar = _tensor((num_anchors, latent), torch.float64, 6, shift=-2.0)
    reference = _tensor((data.draw(st.integers(1, 50)), latent), torch.float64, 7, scale=3.0)
    dims = data.draw(st.one_of(st.none(), st.lists(st.integers(0, latent - 1), min_size=1, max_size=5)))
    kwargs = dict(mode=mode, span=span, steps=steps, dims=dims, prior_std=prior_std)
    got = latentsweep.traversal_values(anchors, logvar=logvar, reference=reference, **kwargs)
    expected = R.reference_traversal_values(anchors, logvar=logvar, reference=reference, **kwargs)
    num_dims = latent if dims is None else len(dims)
    assert got.shape == (num_anchors, num_dims, steps)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
