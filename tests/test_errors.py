"""Bad input raises ValueError/TypeError naming the argument (issue 2 item 6), and the raw ops'
C++ checks stop what slips past Python with a RuntimeError, never a crash."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import latentsweep

nan, inf = float("nan"), float("inf")
ops = torch.ops.latentsweep


def z(*shape, dtype=torch.float32, device="cpu"):
    return torch.zeros(*shape, dtype=dtype, device=device)


def with_value(t, index, value):
    t = t.clone()
    t[index] = value
    return t


MU = z(3, 4)

# --------------------------------------------------------------------------- one table, both entry points
#
# The ops check what they receive (cpp/ops/checks.h); the public wrappers only coerce (lists,
# 1-D anchors, Python integers) and scan the data. So for every case below the wrapper, the
# raw op and (for shape-only cases) the op's fake kernel raise the same exception with the
# same text.


def _sparse(t):
    return t.to_sparse()


def sample_entry(mu, logvar, n, seed=0, row_offset=0, sample_offset=0):
    return (
        lambda: latentsweep.sample(mu, logvar, n, seed=seed, row_offset=row_offset, sample_offset=sample_offset),
        lambda: ops.sample(mu, logvar, n, seed, row_offset, sample_offset),
        (mu, logvar, n, seed, row_offset, sample_offset),
    )


def prior_entry(n, latent_size, seed=0, offset=0, dtype=None, device=None):
    return (
        lambda: latentsweep.sample_prior(n, latent_size, seed=seed, offset=offset, dtype=dtype, device=device),
        lambda: ops.sample_prior(n, latent_size, seed, offset, dtype=dtype, device=device),
        None,
    )


def codes_entry(anchors, dims, values, start=0, count=None, out=None):
    def raw():
        if out is None:
            return ops.traversal_codes(anchors, dims, values, start, count)
        return ops.traversal_codes_into(anchors, dims, values, start, count, out)

    return (
        lambda: latentsweep.traversal_codes(anchors, dims, values, start=start, count=count, out=out),
        raw,
        (anchors, dims, values, start, count, out),
    )


class DirectionArguments(tuple):
    """The tensors of a direction_codes case (the fake-kernel test calls that op with them)."""


def directions_entry(anchors, directions, values, start=0, count=None, out=None):
    def raw():
        if out is None:
            return ops.direction_codes(anchors, directions, values, start, count)
        return ops.direction_codes_into(anchors, directions, values, start, count, out)

    return (
        lambda: latentsweep.direction_codes(anchors, directions, values, start=start, count=count, out=out),
        raw,
        DirectionArguments((anchors, directions, values, start, count, out)),
    )


class PathArguments(tuple):
    """The tensors of a _path_codes_into_trusted case (the fake-kernel test calls that op with them)."""


def path_entry(first, count, out):
    """The interpolation's path rows: its writer (a line's, which hands first and count to the
    op as they come) and the internal op with the tensors the writer builds."""
    from latentsweep.interpolation import PathWriter
    from latentsweep.paths import path_weights

    writer = PathWriter(PS, PS + 1, 4, "linear")
    args = PathArguments((PS.double(), PS.double() + 1, *path_weights(2, 4, device=PS.device), first, count, out))
    return (lambda: writer(first, count, out), lambda: ops._path_codes_into_trusted(*args), args)


PS = z(2, 3)  # the starts of 2 paths of D = 3; with 4 steps, 8 rows
MU = z(3, 4)
A = z(2, 5)
U = torch.eye(5)[[0, 4]]  # [K=2, D=5] unit directions
UBUF = torch.cat([z(20, 5), U, z(18, 5)])  # unit directions at rows 20-21 of a larger buffer
V = z(2, 3)  # [K=2, S=3]
D0 = torch.tensor([0, 4])
BUF = z(40, 5)
BIG = z(1, 1)

# (entry, exception, message fragment, fake): fake = the fake kernel checks it too (shape-only).
SHARED_CASES = [
    (sample_entry(z(3, 4, dtype=torch.int64), z(3, 4, dtype=torch.int64), 2), TypeError, "mu must be float16, bfloat16, float32 or float64, got torch.int64", True),
    (sample_entry(MU, z(3, 4, dtype=torch.int32), 2), TypeError, "logvar must be float16.*got torch.int32", True),
    (sample_entry(z(3, 4, dtype=torch.complex64), z(3, 4, dtype=torch.complex64), 2), TypeError, "mu must be float16", True),
    (sample_entry(z(3, 4, dtype=torch.bool), MU, 2), TypeError, "mu must be float16", True),
    (sample_entry(z(2, 3, 4), z(2, 3, 4), 2), ValueError, r"mu must be 2-D \[N, D\], got shape \[2, 3, 4\]", True),
    (sample_entry(torch.tensor(0.0), torch.tensor(0.0), 2), ValueError, "mu must be 2-D", True),
    (sample_entry(MU, z(2, 4), 2), ValueError, r"logvar must have mu's shape \[3, 4\], got \[2, 4\]", True),
    (sample_entry(MU, z(4), 2), ValueError, r"logvar must have mu's shape \[3, 4\], got \[4\]", True),
    (sample_entry(MU, z(3, 4, dtype=torch.float64), 2), TypeError, "mu is torch.float32 but logvar is torch.float64; use one dtype", True),
    (sample_entry(MU, MU, -1), ValueError, "n must be >= 0, got -1", True),
    (sample_entry(MU, MU, 2**47 + 1), ValueError, r"n must be <= 140737488355328 \(2\*\*47\)", True),
    (sample_entry(MU, MU, 2, row_offset=-1), ValueError, "row_offset must be >= 0", True),
    (sample_entry(MU, MU, 2, row_offset=2**48 - 2), ValueError, r"row_offset must be <= 281474976710653 \(2\*\*48 - N\), got", True),
    (sample_entry(MU, MU, 2, sample_offset=-3), ValueError, "sample_offset must be >= 0", True),
    (sample_entry(MU, MU, 2, sample_offset=2**47 - 1), ValueError, r"sample_offset must be <= .* \(2\*\*47 - n\)", True),
    # Zero-stride views: nothing is allocated or read.
    (sample_entry(BIG.expand(2**40, 2**20), BIG.expand(2**40, 2**20), 2**10), ValueError, r"N \* n \* D = .* size in bytes overflows int64", True),
    (sample_entry(BIG.expand(3, 2**34 + 1), BIG.expand(3, 2**34 + 1), 1), ValueError, r"D must be <= 2\*\*34", True),
    (sample_entry(BIG.expand(1, 2**20), BIG.expand(1, 2**20), 2**42), ValueError, "size in bytes overflows int64", True),
    (prior_entry(-1, 4), ValueError, "n must be >= 0", True),
    (prior_entry(4, -1), ValueError, "latent_size must be >= 0", True),
    (prior_entry(2**48 + 1, 4), ValueError, r"n must be <= 281474976710656 \(2\*\*48\)", True),
    (prior_entry(4, 2**34 + 1), ValueError, r"D must be <= 2\*\*34", True),
    (prior_entry(4, 4, offset=-1), ValueError, "offset must be >= 0", True),
    (prior_entry(4, 4, offset=2**48 - 3), ValueError, r"offset must be <= .* \(2\*\*48 - n\)", True),
    (prior_entry(4, 4, dtype=torch.int64), TypeError, "dtype must be float16, bfloat16, float32 or float64, got torch.int64", True),
    (prior_entry(4, 4, dtype=torch.complex64), TypeError, "dtype must be float16", True),
    (prior_entry(2**40, 2**30), ValueError, r"n \* D = .* overflows int64", True),
    (prior_entry(2**47, 2**15, dtype=torch.float64), ValueError, r"n \* D = .* size in bytes overflows int64", True),
    (prior_entry(4, 4, device="cuda") if not torch.cuda.is_available() else prior_entry(4, 4, device="mps"), ValueError, "device .*(CUDA kernels|not available|must be cpu or cuda)", False),
    (codes_entry(z(2, 5, dtype=torch.int64), D0, V.long()), TypeError, "anchors must be float16", True),
    (codes_entry(z(2, 2, 5), D0, V), ValueError, r"anchors must be 2-D \[A, D\], got shape \[2, 2, 5\]", True),
    (codes_entry(A, torch.tensor([0, 5]), V), ValueError, r"dims must lie in \[0, 5\) for D=5, got values in \[0, 5\]", False),
    (codes_entry(A, torch.tensor([-1, 2]), V), ValueError, r"dims must lie in \[0, 5\)", False),
    (codes_entry(A, torch.tensor([0.0, 4.0]), V), TypeError, "dims must hold int64 integers, got torch.float32", True),
    (codes_entry(A, torch.tensor([True, False]), V), TypeError, "dims must hold int64 integers, got torch.bool", True),
    (codes_entry(A, torch.tensor([[0, 4]]), V), ValueError, r"dims must be 1-D \[K\], got shape \[1, 2\]", True),
    (codes_entry(A, D0, z(3, 3)), ValueError, r"values must be \[S\], \[K, S\] or \[A, K, S\] with A = 2 anchors and K = 2 dims, got shape \[3, 3\]", True),
    (codes_entry(A, D0, z(3, 2, 3)), ValueError, r"values must be .* got shape \[3, 2, 3\]", True),
    (codes_entry(A, D0, z(1, 2, 2, 3)), ValueError, r"values must be \[S\], \[K, S\] or \[A, K, S\]", True),
    (codes_entry(A, D0, torch.tensor(1.0)), ValueError, r"values must be \[S\], \[K, S\] or \[A, K, S\]", True),
    (codes_entry(A, D0, z(3, dtype=torch.bool)), TypeError, "values must have the anchors' dtype torch.float32, got torch.bool", True),
    (codes_entry(A, D0.to("meta"), V), ValueError, "all tensors must be on one device, got anchors on cpu, dims on meta, values on cpu", True),
    (codes_entry(A, D0, V, start=-1), ValueError, "start must be >= 0, got -1", True),
    (codes_entry(A, D0, V, start=13), ValueError, "start must be <= 12, got 13", True),
    (codes_entry(A, D0, V, count=13), ValueError, "count must be <= 12, got 13", True),
    (codes_entry(A, D0, V, start=5, count=8), ValueError, "count must be <= 7", True),
    (codes_entry(A, D0, V, count=-1), ValueError, "count must be >= 0", True),
    (codes_entry(A, D0, V, count=12, out=z(11, 5)), ValueError, r"out must be \[12, 5\] torch.float32 on cpu, got \[11, 5\] torch.float32 on cpu", True),
    (codes_entry(A, D0, V, out=z(11, 5)), ValueError, r"out must be \[12, 5\]", True),  # count=None: to the end
    (codes_entry(A, D0, V, start=4, out=z(9, 5)), ValueError, r"out must be \[8, 5\]", True),
    (codes_entry(A, D0, V, count=12, out=z(12, 4)), ValueError, r"out must be \[12, 5\]", True),
    (codes_entry(A, D0, V, count=12, out=z(12, 5, 1)), ValueError, r"out must be \[12, 5\]", True),
    (codes_entry(A, D0, V, count=12, out=z(12, 5, dtype=torch.float64)), ValueError, r"got \[12, 5\] torch.float64 on cpu", True),
    (codes_entry(A, D0, V, count=12, out=z(12, 5, device="meta")), ValueError, r"out must be .* on cpu, got \[12, 5\] torch.float32 on meta", True),
    (codes_entry(A, D0, V, count=12, out=z(5, 12).T), ValueError, "out must be contiguous", True),
    (codes_entry(A, D0, V, count=12, out=z(12, 10)[:, ::2]), ValueError, "out must be contiguous", True),
    # out= overlapping what the op reads (issue 12 item 4): refused, as torch's own out= ops do.
    (codes_entry(BUF[:2], D0, V, count=12, out=BUF[1:13]), ValueError, "out shares memory with anchors; pass a separate buffer", False),
    (codes_entry(BUF[30:32], D0, BUF[5:7, :3], count=12, out=BUF[2:14]), ValueError, "out shares memory with values", False),
    (codes_entry(BUF[:2], D0, V, count=12, out=BUF[:12]), ValueError, "out shares memory with anchors", False),
    # A * K * S overflows int64: 2^21 anchors (zero stride), 2^21 dims, 2^22 steps (zero stride).
    (codes_entry(BIG.expand(2**21, 1), torch.zeros(2**21, dtype=torch.int64), z(1).expand(2**22)), ValueError, r"A \* K \* S = 2097152 \* 2097152 \* 4194304 rows, which overflows int64", True),
    # count * D overflows: 2^42 rows of 2^22 values.
    (codes_entry(BIG.expand(1, 2**22), torch.zeros(2**21, dtype=torch.int64), z(1).expand(2**21)), ValueError, r"count \* D = .* overflows int64", True),
    (directions_entry(z(2, 5, dtype=torch.int64), U.long(), V.long()), TypeError, "direction_codes: anchors must be float16", True),
    (directions_entry(z(2, 2, 5), U, V), ValueError, r"anchors must be 2-D \[A, D\], got shape \[2, 2, 5\]", True),
    (directions_entry(A, U.bool(), V), TypeError, "directions must have the anchors' dtype torch.float32, got torch.bool", True),
    (directions_entry(A, z(2, 4) + 0.5, V), ValueError, r"directions must be 2-D \[K, D\] with D = 5, got shape \[2, 4\]", True),
    (directions_entry(A, z(2, 1, 5), V), ValueError, r"directions must be 2-D \[K, D\] with D = 5, got shape \[2, 1, 5\]", True),
    (directions_entry(A, U, z(3, 3)), ValueError, r"values must be \[S\], \[K, S\] or \[A, K, S\] with A = 2 anchors and K = 2 directions, got shape \[3, 3\]", True),
    (directions_entry(A, U, z(3, 2, 3)), ValueError, r"values must be .* got shape \[3, 2, 3\]", True),
    (directions_entry(A, U, torch.tensor(1.0)), ValueError, r"values must be \[S\], \[K, S\] or \[A, K, S\]", True),
    (directions_entry(A, U, z(3, dtype=torch.bool)), TypeError, "values must have the anchors' dtype torch.float32, got torch.bool", True),
    (directions_entry(A, U * 2, V), ValueError, r"directions must have unit length \(use latentsweep.unit_directions\); direction 0 has norm 2", False),
    (directions_entry(A, torch.stack([U[0], z(5)]), V), ValueError, "direction 1 has norm 0", False),
    (directions_entry(A, U, V, start=-1), ValueError, "start must be >= 0, got -1", True),
    (directions_entry(A, U, V, start=13), ValueError, "start must be <= 12, got 13", True),
    (directions_entry(A, U, V, start=5, count=8), ValueError, "count must be <= 7", True),
    (directions_entry(A, U, V, count=-1), ValueError, "count must be >= 0", True),
    (directions_entry(A, U, V, out=z(11, 5)), ValueError, r"out must be \[12, 5\] torch.float32 on cpu, got \[11, 5\]", True),
    (directions_entry(A, U, V, start=2, out=z(12, 5)), ValueError, r"out must be \[10, 5\]", True),
    (directions_entry(A, U, V, count=12, out=z(11, 5)), ValueError, r"out must be \[12, 5\] torch.float32 on cpu, got \[11, 5\] torch.float32 on cpu", True),
    (directions_entry(A, U, V, count=12, out=z(12, 5, dtype=torch.float64)), ValueError, r"got \[12, 5\] torch.float64 on cpu", True),
    (directions_entry(A, U, V, count=12, out=z(5, 12).T), ValueError, "out must be contiguous", True),
    (directions_entry(BUF[:2], U, V, count=12, out=BUF[1:13]), ValueError, "out shares memory with anchors; pass a separate buffer", False),
    (directions_entry(A, UBUF[20:22], V, count=12, out=UBUF[10:22]), ValueError, "out shares memory with directions", False),
    (path_entry(-1, 1, z(1, 3)), ValueError, "latentsweep.interpolate: first must be >= 0, got -1", True),
    (path_entry(9, 0, z(0, 3)), ValueError, r"first must be <= 8 \(P \* S\), got 9", True),
    (path_entry(5, 4, z(4, 3)), ValueError, r"count must be <= 3 \(P \* S - first\), got 4", True),
    (path_entry(0, -1, z(0, 3)), ValueError, "count must be >= 0, got -1", True),
    (path_entry(0, 8, z(7, 3)), ValueError, r"out must be \[8, 3\] on cpu, got \[7, 3\] on cpu", True),
    (path_entry(0, 8, z(8, 3, dtype=torch.int64)), TypeError, "out must be float16, bfloat16, float32 or float64, got torch.int64", True),
    (path_entry(0, 8, z(3, 8).T), ValueError, "out must be contiguous", True),
    (directions_entry(BIG.expand(2**21, 1), BIG.expand(2**21, 1), z(1).expand(2**22)), ValueError, r"A \* K \* S = 2097152 \* 2097152 \* 4194304 rows, which overflows int64", True),
    (directions_entry(BIG.expand(1, 2**22), z(1, 1).expand(2**21, 2**22), z(1).expand(2**21)), ValueError, r"count \* D = .* overflows int64", True),
]


def _case_id(case):
    return case[2][:60]


@pytest.mark.parametrize("entry, error, match, fake", SHARED_CASES, ids=[_case_id(c) for c in SHARED_CASES])
def test_both_entry_points_raise_the_same_error(entry, error, match, fake):
    wrapper, raw, _ = entry
    with pytest.raises(error, match=match) as from_wrapper:
        wrapper()
    with pytest.raises(error, match=match) as from_op:
        raw()
    assert type(from_wrapper.value) is type(from_op.value)
    assert str(from_wrapper.value) == str(from_op.value)
    assert str(from_op.value).startswith("latentsweep.")
    assert "\n" not in str(from_op.value)  # one line: no C++ stack trace


@pytest.mark.parametrize(
    "entry, error, match", [c[:3] for c in SHARED_CASES if c[3]], ids=[_case_id(c) for c in SHARED_CASES if c[3]]
)
def test_fake_kernels_raise_the_same_error(entry, error, match):
    """Under FakeTensorMode (what torch.compile traces with) the op's fake kernel runs instead
    of the C++ checks: same exception, same text."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    wrapper, raw, tensors = entry
    with pytest.raises(error) as real:
        raw()
    mode = FakeTensorMode(allow_non_fake_inputs=False)
    if tensors is None:  # sample_prior: no tensor inputs
        with mode, pytest.raises(error) as faked:
            raw()
    else:
        fakes = [mode.from_tensor(t) if isinstance(t, torch.Tensor) else t for t in tensors]
        op = ops.sample if len(tensors) == 6 and not isinstance(tensors[2], torch.Tensor) else None
        with mode, pytest.raises(error) as faked:
            if op is not None:
                ops.sample(*fakes)
            elif isinstance(tensors, PathArguments):
                ops._path_codes_into_trusted(*fakes)
            elif isinstance(tensors, DirectionArguments):
                if fakes[5] is None:
                    ops.direction_codes(*fakes[:5])
                else:
                    ops.direction_codes_into(*fakes)
            elif fakes[5] is None:
                ops.traversal_codes(*fakes[:5])
            else:
                ops.traversal_codes_into(*fakes)
    assert str(faked.value) == str(real.value)


# Coercion and data scans: the wrappers' own errors.
SAMPLE_CASES = [
    # (args, kwargs, exception, message fragment)
    (([[0.0]], MU, 2), {}, TypeError, "mu must be a torch.Tensor"),
    ((np.zeros((3, 4)), MU, 2), {}, TypeError, r"mu must be a torch.Tensor.*as_tensor"),
    ((MU, None, 2), {}, TypeError, "logvar must be a torch.Tensor"),
    ((MU, MU, 2.0), {}, TypeError, "n must be an int"),
    ((MU, MU, True), {}, TypeError, "n must be an int"),
    ((MU, MU, None), {}, TypeError, "n must be an int"),
    ((MU, MU, "2"), {}, TypeError, "n must be an int"),
    ((MU, MU, 2**63), {}, ValueError, "n must be <= 9223372036854775807"),
    ((MU, MU, 2), {"seed": -1}, ValueError, "seed must be >= 0"),
    ((MU, MU, 2), {"seed": 2**64}, ValueError, "seed must be <="),
    ((MU, MU, 2), {"seed": 1.0}, TypeError, "seed must be an int"),
    ((MU, MU, 2), {"seed": None}, TypeError, "seed must be an int"),
    ((MU, MU, 2), {"row_offset": 0.5}, TypeError, "row_offset must be an int"),
    ((MU, MU, 2), {"row_offset": 2**64}, ValueError, "row_offset must be <= 9223372036854775807"),
    ((MU, MU, 2), {"sample_offset": -(2**70)}, ValueError, "sample_offset must be >= -9223372036854775808"),
    ((with_value(MU, (1, 2), nan), MU, 2), {}, ValueError, r"mu has 1 non-finite value.*index \(1, 2\)"),
    ((with_value(MU, (0, 0), -inf), MU, 2), {}, ValueError, "mu has 1 non-finite"),
    ((MU, with_value(MU, (2, 3), inf), 2), {}, ValueError, r"logvar has 1 non-finite.*\(2, 3\)"),
    ((MU, with_value(MU, (2, 3), nan), 2), {}, ValueError, "logvar has 1 non-finite"),
    ((MU, with_value(MU, (0, 1), 200.0), 2), {}, ValueError, r"at row 0, latent 1 .*logvar there must be <= 173.65, got 200"),
    ((MU, z(3, 4, device="meta"), 2), {}, ValueError, "logvar is on the meta device"),
    ((z(3, 4, device="meta"), z(3, 4, device="meta"), 2), {}, ValueError, "mu is on the meta device"),
    ((MU, MU, torch.tensor(True)), {}, TypeError, "n must be an int"),
    ((MU, MU, torch.tensor(2 + 0j)), {}, TypeError, "n must be an int"),
    ((MU, MU, torch.tensor(2, device="meta")), {}, TypeError, "n must be an int"),
    ((MU, MU, torch.tensor([2])), {}, TypeError, "n must be an int"),
    # Sparse tensors (issue 12 item 10); the raw ops have no sparse kernels (the dispatcher
    # refuses them before any check runs).
    ((_sparse(MU), MU, 2), {}, TypeError, r"mu must be a dense \(torch.strided\) tensor, got layout torch.sparse_coo"),
    ((MU, MU.to_sparse_csr(), 2), {}, TypeError, r"logvar must be a dense \(torch.strided\) tensor, got layout torch.sparse_csr"),
]


@pytest.mark.parametrize("args, kwargs, error, match", SAMPLE_CASES)
def test_sample_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.sample(*args, **kwargs)
    assert str(info.value).startswith("latentsweep.sample:")


def test_sample_logvar_limit_depends_on_dtype():
    """The limit is the output dtype's, with room for the largest |eps| (6.661): a float16
    draw with logvar 25 (sd 2.7e5) was mostly inf under float32's limit of 177."""
    big = with_value(z(2, 2, dtype=torch.float64), (0, 0), 200.0)
    latentsweep.sample(big, big, 1)  # exp(100) is finite in float64
    with pytest.raises(ValueError, match=r"largest torch.float32 .*logvar there must be <= 173.65, got 200; pass float64"):
        latentsweep.sample(big.float(), big.float(), 1)
    high = with_value(z(2, 2, dtype=torch.float16), (1, 0), 25.0)
    with pytest.raises(ValueError, match=r"largest torch.float16 .*row 1, latent 0 .*logvar there must be <= 18.38, got 25"):
        latentsweep.sample(high, high, 1)
    # At the largest float16, draws within half an ulp (16) still round to it: a tiny sd is fine.
    edge = with_value(z(1, 1, dtype=torch.float16), (0, 0), -65504.0)
    assert torch.isfinite(latentsweep.sample(edge, torch.full((1, 1), -30.0, dtype=torch.float16), 50)).all()
    with pytest.raises(ValueError, match=r"logvar there must be <= 1.75, got 10"):
        latentsweep.sample(edge, torch.full((1, 1), 10.0, dtype=torch.float16), 1)
    # The limit is printed rounded down: a logvar just above it is not said to be "<= " itself.
    with pytest.raises(ValueError, match=r"must be <= 18.38, got 18.3906"):
        latentsweep.sample(z(1, 1, dtype=torch.float16), torch.full((1, 1), 18.39, dtype=torch.float16), 1)
    latentsweep.sample(z(1, 1, dtype=torch.float16), torch.full((1, 1), 1e4, dtype=torch.float16), 0)  # no draws


@pytest.mark.parametrize("dtype, logvar", [(torch.float16, 18.3), (torch.float32, 173.6), (torch.float64, 1415.7)])
def test_sample_at_the_logvar_limit_is_finite(dtype, logvar):
    """Just inside the limit, 200,000 draws (their largest |eps| near 4.9) stay finite."""
    mu = torch.zeros(1000, 2, dtype=dtype)
    draws = latentsweep.sample(mu, torch.full_like(mu, logvar), 100, seed=3)
    assert torch.isfinite(draws).all()


PRIOR_CASES = [
    ((4.0, 4), {}, TypeError, "n must be an int"),
    ((4, None), {}, TypeError, "latent_size must be an int"),
    ((4, 4), {"seed": -5}, ValueError, "seed must be >= 0"),
    ((4, 4), {"seed": "0"}, TypeError, "seed must be an int"),
    ((4, 4), {"dtype": "float32"}, TypeError, "dtype must be a torch.dtype"),
    ((4, 4), {"device": "nonsense"}, ValueError, "device must be"),
    ((4, 4), {"device": 1.5}, TypeError, "device must be"),
    ((2**63, 4), {}, ValueError, "n must be <= 9223372036854775807"),
    ((torch.tensor(3.0), 4), {}, TypeError, "n must be an int"),
]


@pytest.mark.parametrize("args, kwargs, error, match", PRIOR_CASES)
def test_sample_prior_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.sample_prior(*args, **kwargs)
    assert str(info.value).startswith("latentsweep.sample_prior:")


def test_sample_prior_on_a_device_without_kernels_names_the_problem():
    """Issue 12 item 10: not torch's 'Torch not compiled with CUDA enabled' from deep inside."""
    if torch.cuda.is_available() and latentsweep.build_info()["cuda"]:
        pytest.skip("this machine can sample on CUDA")
    with pytest.raises(ValueError, match=r"latentsweep.sample_prior: device cuda(:0)? (needs latentsweep's CUDA kernels|is not available)"):
        latentsweep.sample_prior(4, 4, device="cuda")


CODES_CASES = [
    (("anchors", D0, V), {}, TypeError, "anchors must be a torch.Tensor"),
    ((torch.tensor(1.0), D0, V), {}, ValueError, r"anchors must be 2-D \[A, D\], got shape \[\]"),
    ((with_value(A, (1, 3), nan), D0, V), {}, ValueError, r"anchors has 1 non-finite.*\(1, 3\)"),
    ((with_value(A, (0, 0), inf), D0, V), {}, ValueError, "anchors has 1 non-finite"),
    ((A, [0, 5], V), {}, ValueError, r"dims must lie in \[0, 5\).*\[0, 5\]"),
    ((A, 7, V[:1]), {}, ValueError, "dims must lie in"),
    ((A, [0, 1.5], V), {}, TypeError, r"dims\[...\] must be an int"),
    ((A, [0, 2**63], V), {}, ValueError, r"dims\[...\] must be <= 9223372036854775807"),
    ((A, "04", V), {}, TypeError, "dims must be an int, a list of ints"),
    ((A, None, V), {}, TypeError, "dims must be an int, a list of ints"),
    ((A, 2.0, V), {}, TypeError, "dims must be an int, a list of ints"),
    ((A, _sparse(D0), V), {}, TypeError, r"dims must be a dense \(torch.strided\) tensor"),
    ((_sparse(A), D0, V), {}, TypeError, r"anchors must be a dense \(torch.strided\) tensor"),
    ((A, D0, V), {"count": 12, "out": _sparse(z(12, 5))}, TypeError, r"out must be a dense \(torch.strided\) tensor"),
    ((A, [0, 4], [0.0, 1.0]), {}, TypeError, "values must be a torch.Tensor"),
    ((A, [0, 4], with_value(V, (1, 2), nan)), {}, ValueError, r"values has 1 non-finite.*\(1, 2\)"),
    ((A, [0, 4], with_value(V, (0, 0), -inf)), {}, ValueError, "values has 1 non-finite"),
    ((A, [0, 4], torch.full((2, 3), 1e300, dtype=torch.float64)), {}, ValueError, r"values reaches 1e\+300, beyond the largest torch.float32"),  # inf once cast to float32
    ((A, [0, 4], V.to("meta")), {}, ValueError, "values is on the meta device"),
    ((A.to("meta"), D0, V), {}, ValueError, "anchors is on the meta device"),
    ((A, [0, 4], V), {"start": 1.0}, TypeError, "start must be an int"),
    ((A, [0, 4], V), {"count": "3"}, TypeError, "count must be an int"),
    ((A, [0, 4], V), {"start": 2**63}, ValueError, "start must be <= 9223372036854775807"),
    ((A, [0, 4], V), {"out": [[0.0] * 5] * 12}, TypeError, "out must be a torch.Tensor"),
]


@pytest.mark.parametrize("args, kwargs, error, match", CODES_CASES)
def test_traversal_codes_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.traversal_codes(*args, **kwargs)
    assert str(info.value).startswith("latentsweep.traversal_codes:")


def test_traversal_codes_out_overlap_would_have_written_wrong_rows():
    """Issue 12 item 4: before the check, out overlapping the anchors silently gave rows built
    from anchors it had already overwritten."""
    buf = torch.arange(40 * 5, dtype=torch.float32).reshape(40, 5)
    anchors = buf[:2].clone()
    expected = latentsweep.traversal_codes(anchors, [0, 4], torch.ones(3))
    with pytest.raises(ValueError, match="out shares memory with anchors"):
        latentsweep.traversal_codes(buf[:2], [0, 4], torch.ones(3), out=buf[1:13])
    fine = torch.empty(12, 5)  # a separate buffer works
    latentsweep.traversal_codes(buf[:2], [0, 4], torch.ones(3), out=fine)
    assert torch.equal(fine, expected)
    # Neighbouring, non-overlapping views of one buffer are fine too.
    latentsweep.traversal_codes(buf[:2], [0, 4], torch.ones(3), out=buf[2:14])
    assert torch.equal(buf[2:14], expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second real device")
def test_devices_mismatch_on_cuda():
    """(The meta-device cases above cover CPU-only machines where the check runs before any
    data is read; anchors on meta cannot be checked for NaN, so the real pair is used here.)"""
    with pytest.raises(ValueError, match="all tensors must be on one device"):
        latentsweep.traversal_codes(A.cuda(), D0, V)
    with pytest.raises(ValueError, match="all tensors must be on one device"):
        latentsweep.sample(MU.cuda(), MU, 2)
    with pytest.raises(ValueError, match="all tensors must be on one device"):
        latentsweep.traversal_values(A.cuda(), mode="posterior", logvar=LV)
    with pytest.raises(ValueError, match="all tensors must be on one device"):
        latentsweep.traversal_values(A.cuda(), mode="empirical", reference=REF)
    with pytest.raises(ValueError, match="out must be"):
        latentsweep.traversal_codes(A, D0, V, out=z(12, 5, device="cuda"))
    # The first tensor on the CPU, a later one on CUDA: the dispatcher picks the CUDA kernel,
    # whose device guard of the CPU tensor raised a RuntimeError ("CUDAGuardImpl initialized
    # with non-CUDA DeviceType: cpu") before the checks (seen on an H200).
    with pytest.raises(ValueError, match="all tensors must be on one device"):
        latentsweep.sample(MU, MU.cuda(), 2)
    with pytest.raises(ValueError, match="all tensors must be on one device"):
        torch.ops.latentsweep.sample(MU, MU.cuda(), 2)
    with pytest.raises(ValueError, match="out must be"):
        torch.ops.latentsweep.direction_codes_into(A, torch.eye(5)[:2], V, 0, 12, z(12, 5, device="cuda"))


# --------------------------------------------------------------------------- traversal_values

LV = z(2, 5)
REF = torch.randn(10, 5)

VALUES_CASES = [
    (({"mode": "sideways"}), ValueError, "mode must be one of 'prior', 'absolute'"),
    (({"mode": None}), TypeError, "mode must be a str"),
    (({"mode": np.array("prior")}), TypeError, "mode must be a str, one of 'prior'.*got ndarray"),  # issue 12 item 10
    (({"span": 0.0}), ValueError, "span must be a finite number > 0"),
    (({"span": -1.0}), ValueError, "span must be a finite number > 0"),
    (({"span": nan}), ValueError, "span must be a finite number > 0"),
    (({"span": inf}), ValueError, "span must be a finite number > 0"),
    (({"span": "2"}), TypeError, "span must be a number"),
    (({"span": None}), TypeError, "span must be a number"),
    (({"steps": 0}), ValueError, "steps must be >= 1"),
    (({"steps": -4}), ValueError, "steps must be >= 1"),
    (({"steps": 2.5}), TypeError, "steps must be an int"),
    (({"prior_std": 0.0}), ValueError, "prior_std must be a finite number > 0"),
    (({"prior_std": inf}), ValueError, "prior_std must be a finite number > 0"),
    (({"dims": [5]}), ValueError, r"dims must lie in \[0, 5\)"),
    (({"dims": []}), ValueError, "dims must not be empty"),
    (({"dims": "all"}), TypeError, "dims must be an int, a list of ints"),
    (({"span": 1e308}), ValueError, "span \\* prior_std must be <="),
    (({"span": 1e30, "prior_std": 1e30}), ValueError, "span \\* prior_std must be <="),
    (({"steps": 2**63 - 1}), ValueError, "A \\* K \\* steps = .* overflows int64"),
    (({"steps": torch.tensor(3 + 0j)}), TypeError, "steps must be an int"),
    (({"mode": "posterior"}), ValueError, "mode='posterior' needs logvar"),
    (({"mode": "posterior", "logvar": z(3, 5)}), ValueError, r"logvar must have the anchors' shape \(2, 5\)"),
    (({"mode": "posterior", "logvar": z(2, 4)}), ValueError, "logvar must have the anchors' shape"),
    (({"mode": "posterior", "logvar": z(2, 5, 1)}), ValueError, "logvar must be 1-D or 2-D"),
    (({"mode": "posterior", "logvar": z(2, 5, dtype=torch.int64)}), TypeError, "logvar must be float16"),
    (({"mode": "posterior", "logvar": LV.numpy()}), TypeError, "logvar must be a torch.Tensor"),
    (({"mode": "posterior", "logvar": with_value(LV, (1, 1), nan)}), ValueError, "logvar has 1 non-finite"),
    (({"mode": "posterior", "logvar": z(2, 5, device="meta")}), ValueError, "logvar on meta"),
    (({"mode": "empirical"}), ValueError, "mode='empirical' needs reference"),
    (({"mode": "empirical", "reference": z(10, 4)}), ValueError, r"reference must be \[M, 5\] with M >= 1"),
    (({"mode": "empirical", "reference": z(0, 5)}), ValueError, r"reference must be \[M, 5\] with M >= 1"),
    (({"mode": "empirical", "reference": z(5)}), ValueError, "reference must be 2-D"),
    (({"mode": "empirical", "reference": z(10, 5, dtype=torch.int32)}), TypeError, "reference must be float16"),
    (({"mode": "empirical", "reference": with_value(REF, (3, 4), inf)}), ValueError, r"reference has 1 non-finite.*\(3, 4\)"),
    (({"mode": "empirical", "reference": REF.to("meta")}), ValueError, "reference on meta"),
]


@pytest.mark.parametrize("kwargs, error, match", VALUES_CASES)
def test_traversal_values_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.traversal_values(A, **kwargs)
    assert str(info.value).startswith("latentsweep.traversal_values:")


@pytest.mark.parametrize("kwargs, error, match", VALUES_CASES)
def test_traverse_names_itself_for_the_values_errors(kwargs, error, match):
    """The same checks reached through traverse name traverse (they said traversal_values)."""
    with pytest.raises(error, match=match) as info:
        latentsweep.traverse(lambda codes: codes, A, progress=False, **kwargs)
    assert str(info.value).startswith("latentsweep.traverse:")


def test_a_one_dimensional_logvar_of_the_wrong_size_is_reported_as_given():
    """A [D] logvar was reported as "(1, D)" (its shape after the check's own unsqueeze)."""
    with pytest.raises(ValueError, match=r"logvar must have the anchors' shape \(2, 5\), got \(4,\)$"):
        latentsweep.traversal_values(A, mode="posterior", logvar=z(4))
    with pytest.raises(ValueError, match=r"shape \(1, 5\) or \(5,\), got \(4,\)$"):
        latentsweep.traversal_values(z(5), mode="posterior", logvar=z(4))
    with pytest.raises(ValueError, match=r"got \(4,\)$"):  # along directions: the same rule
        latentsweep.traversal_values(A, mode="posterior", logvar=z(4), directions=torch.eye(5)[:2])
    assert latentsweep.traversal_values(z(5), mode="posterior", logvar=z(5)).shape == (1, 5, 11)


@pytest.mark.parametrize(
    "anchors, error, match",
    [
        (with_value(A, (0, 2), nan), ValueError, r"anchors has 1 non-finite.*\(0, 2\)"),
        (z(2, 5, dtype=torch.int64), TypeError, "anchors must be float16"),
        (torch.tensor(1.0), ValueError, r"anchors must be \[A, \*latent_shape\] \(or \[D\] for one code\), got a 0-D"),
        ([0.0, 1.0], TypeError, "anchors must be a torch.Tensor"),
        (z(2, 5).to_sparse(), TypeError, r"anchors must be a dense \(torch.strided\) tensor, got layout torch.sparse_coo"),
    ],
)
def test_traversal_values_bad_anchors(anchors, error, match):
    with pytest.raises(error, match=match):
        latentsweep.traversal_values(anchors)


def test_traversal_values_span_must_be_finite_in_the_anchors_dtype():
    half = z(2, 5, dtype=torch.float16)
    assert torch.isfinite(latentsweep.traversal_values(half, mode="absolute", span=6e4)).all()
    with pytest.raises(ValueError, match=r"span \* prior_std must be <= 6.55e\+04 \(the largest torch.float16\)"):
        latentsweep.traversal_values(half, mode="absolute", span=7e4)
    with pytest.raises(ValueError, match="span \\* prior_std must be <="):
        latentsweep.traversal_values(half, mode="absolute", span=1e3, prior_std=100.0)
    # prior_std plays no part in the empirical and posterior modes.
    latentsweep.traversal_values(half, mode="empirical", span=2.0, prior_std=1e30, reference=half)
    with pytest.raises(ValueError, match=r"span must be <= 6.55e\+04"):
        latentsweep.traversal_values(half, mode="posterior", span=1e5, logvar=half)


def test_posterior_rejects_bad_input():
    with pytest.raises(ValueError, match="logvar must have mu's shape"):
        latentsweep.Posterior(z(3, 4), z(3, 5))
    with pytest.raises(TypeError, match="mu must be a torch.Tensor"):
        latentsweep.Posterior([1.0])
    with pytest.raises(ValueError, match="no logvar"):
        latentsweep.Posterior(z(3, 4)).sample(2)


# --------------------------------------------------------------------------- integers beyond int64 (issue 12 item 10)


@pytest.mark.parametrize("big", [2**63, 2**64 + 5, -(2**63) - 1])
def test_integers_beyond_int64_name_the_argument(big):
    """Were OverflowError / 'value cannot be converted to type int64' from deep inside torch."""
    decoder = torch.nn.Linear(5, 3)
    with pytest.raises(ValueError, match=r"latentsweep.traverse: batch_size must be (<=|>=)"):
        latentsweep.traverse(decoder, A, batch_size=big, progress=False)
    with pytest.raises(ValueError, match=r"latentsweep.traversal_values: dims\[...\] must be (<=|>=)"):
        latentsweep.traversal_values(A, dims=[0, big])
    with pytest.raises(ValueError, match=r"latentsweep.traversal_codes: dims must be (<=|>=)"):
        latentsweep.traversal_codes(A, big, V[:1])
    with pytest.raises(ValueError, match=r"latentsweep.encode: batch_size must be (<=|>=)"):
        latentsweep.encode(lambda x: (x, x), torch.zeros(4, 2), batch_size=big, progress=False)
    with pytest.raises(ValueError, match=r"latentsweep.traversal_values: steps must be (<=|>=)"):
        latentsweep.traversal_values(A, steps=big)


def test_sparse_tensors_get_a_type_error_everywhere():
    """Issue 12 item 10: sparse inputs were read as if dense (or failed inside torch)."""
    sparse = z(6, 5).to_sparse()
    with pytest.raises(TypeError, match=r"latentsweep.traverse: anchors must be a dense \(torch.strided\) tensor"):
        latentsweep.traverse(lambda codes: codes, sparse, progress=False)
    with pytest.raises(TypeError, match=r"must be a dense \(torch.strided\) tensor"):
        latentsweep.Posterior(sparse, z(6, 5))


# Allocations beyond half the RAM are refused before they are made: an overcommitted
# allocation succeeds and the kernel kills the process once the rows are written. Each is
# 1 TiB or more, beyond half of any machine's memory that runs these tests (a 32 GiB case
# fitted the 128 GiB of a GPU machine, which then computed it).
HUGE_ALLOCATIONS = [
    (lambda: latentsweep.traversal_codes(torch.zeros(1, 1024).expand(2**20, 1024), [0], torch.linspace(-1, 1, 1000)),
     r"traversal_codes: the codes \[1048576000, D=1024\] needs [0-9,.]+ GiB.*start= and count="),
    (lambda: latentsweep.direction_codes(torch.zeros(1, 1024).expand(2**20, 1024), torch.eye(1, 1024), torch.zeros(1000)),
     r"direction_codes: the codes \[1048576000, D=1024\] needs"),
    (lambda: latentsweep.traversal_values(torch.zeros(1, 2**17).expand(2**20, 2**17), directions=torch.ones(3, 2**17)),
     r"traversal_values: the anchors in float64 \[A=1048576, D=131072\].* needs"),
    (lambda: latentsweep.traversal_values(torch.zeros(1, 4), mode="empirical", reference=torch.zeros(1, 4).expand(2**40, 4)),
     r"traversal_values: the quantiles' sorted copy of reference \[M=1099511627776, K=4\] needs"),
    (lambda: latentsweep.sample(torch.zeros(1, 4096).expand(2**20, 4096), torch.zeros(1, 4096).expand(2**20, 4096), 1000),
     r"sample: the samples \[N=1048576, n=1000, D=4096\] needs .*sample_offset="),
    (lambda: latentsweep.sample_prior(2**36, 2**10), r"sample_prior: the samples \[n=68719476736, D=1024\] needs"),
]


@pytest.mark.parametrize("call, match", HUGE_ALLOCATIONS)
def test_huge_allocations_are_refused_before_they_are_made(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_int64_overflow_names_the_factors():
    """sample_prior's n * D had sample's three factors ("n * D = 2147483648 * 1 * ...")."""
    with pytest.raises(ValueError, match=r"sample_prior: n \* D = 281474976710656 \* 17179869184 values"):
        torch.ops.latentsweep.sample_prior(2**48, 2**34, 0, 0)


def test_data_errors_come_before_the_memory_check():
    """A grid too big for memory with a dim out of range, or directions not of unit length,
    is told about those first (chunking it would only meet them later)."""
    values = torch.linspace(-1, 1, 10**7)
    with pytest.raises(ValueError, match=r"traversal_codes: dims must lie in \[0, 1000\)"):
        latentsweep.traversal_codes(torch.zeros(1, 1000).expand(2**10, 1000), [5000], values)
    with pytest.raises(ValueError, match=r"direction_codes: directions must have unit length"):
        latentsweep.direction_codes(torch.zeros(1, 1000).expand(2**10, 1000), torch.ones(1, 1000), values)


def test_integer_values_are_converted_to_the_anchors_dtype():
    codes = latentsweep.traversal_codes(torch.zeros(1, 2, dtype=torch.float64), [0], torch.tensor([1, 2]))
    assert codes.dtype == torch.float64 and codes[:, 0].tolist() == [1.0, 2.0]
    along = latentsweep.direction_codes(torch.zeros(1, 3), torch.tensor([0, 1, 0]), torch.tensor([3]))
    assert along.tolist() == [[0.0, 3.0, 0.0]]
    with pytest.raises(ValueError, match=r"values reaches 1.1e\+12, beyond the largest torch.float16"):
        latentsweep.traversal_codes(torch.zeros(1, 2, dtype=torch.float16), [0], torch.tensor([1, 2**40]))


@pytest.mark.parametrize("call", [lambda: latentsweep.traversal_values(torch.zeros(1, 2), span=10**400),
                                  lambda: latentsweep.traversal_values(torch.zeros(1, 2), prior_std=-(10**400))])
def test_integers_beyond_float64_are_value_errors(call):
    with pytest.raises(ValueError, match=r"traversal_values: (span|prior_std) must be a finite number, got an integer of 401 digits"):
        call()


def test_a_file_name_too_long_for_the_file_system_is_named(tmp_path):
    """Path.is_dir raised OSError (ENAMETOOLONG) from the output-file check of every caller."""
    from latentsweep import _checks

    with pytest.raises(ValueError, match=r"latentsweep.explain: cannot write out=.*File name too long"):
        _checks.output_file("latentsweep.explain", "out", tmp_path / ("a" * 300 + ".html"))


def test_no_stderr_means_no_progress_bar(monkeypatch):
    """progress=None asked None whether it is a tty (pythonw, or a closed stderr) and raised
    AttributeError from encode and traverse."""
    monkeypatch.setattr(sys, "stderr", None)
    posterior = latentsweep.encode(torch.nn.Linear(4, 2), torch.randn(3, 4))
    assert posterior.mu.shape == (3, 2)
    assert latentsweep.traverse(lambda codes: codes, posterior.mu, steps=3).effect.shape == (3, 2, 3)
