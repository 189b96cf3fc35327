"""Bad input raises ValueError/TypeError naming the argument (issue 2 item 6), and the raw ops'
C++ checks stop what slips past Python with a RuntimeError, never a crash."""

from __future__ import annotations

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

# --------------------------------------------------------------------------- sample

SAMPLE_CASES = [
    # (args, kwargs, exception, message fragment)
    (([[0.0]], MU, 2), {}, TypeError, "mu must be a torch.Tensor"),
    ((np.zeros((3, 4)), MU, 2), {}, TypeError, r"mu must be a torch.Tensor.*as_tensor"),
    ((MU, None, 2), {}, TypeError, "logvar must be a torch.Tensor"),
    ((z(3, 4, dtype=torch.int64), z(3, 4, dtype=torch.int64), 2), {}, TypeError, "mu must be float16"),
    ((MU, z(3, 4, dtype=torch.int32), 2), {}, TypeError, "logvar must be float16"),
    ((z(3, 4, dtype=torch.complex64), z(3, 4, dtype=torch.complex64), 2), {}, TypeError, "mu must be float16"),
    ((z(3, 4, dtype=torch.bool), MU, 2), {}, TypeError, "mu must be float16"),
    ((z(2, 3, 4), z(2, 3, 4), 2), {}, ValueError, r"mu must be 1-D or 2-D, got shape \(2, 3, 4\)"),
    ((torch.tensor(0.0), torch.tensor(0.0), 2), {}, ValueError, "mu must be 1-D or 2-D"),
    ((MU, z(2, 4), 2), {}, ValueError, r"logvar must have mu's shape \(3, 4\), got \(2, 4\)"),
    ((MU, z(3, 5), 2), {}, ValueError, r"logvar must have mu's shape \(3, 4\), got \(3, 5\)"),
    ((MU, z(4), 2), {}, ValueError, "logvar must have mu's shape"),
    ((MU, z(3, 4, dtype=torch.float64), 2), {}, TypeError, "logvar is torch.float64"),
    ((MU, z(3, 4, device="meta"), 2), {}, ValueError, "logvar on meta"),
    ((MU, MU, -1), {}, ValueError, "n must be >= 0"),
    ((MU, MU, 2.0), {}, TypeError, "n must be an int"),
    ((MU, MU, True), {}, TypeError, "n must be an int"),
    ((MU, MU, None), {}, TypeError, "n must be an int"),
    ((MU, MU, "2"), {}, TypeError, "n must be an int"),
    ((MU, MU, 2**47 + 1), {}, ValueError, "n must be <="),
    ((MU, MU, 2), {"seed": -1}, ValueError, "seed must be >= 0"),
    ((MU, MU, 2), {"seed": 2**64}, ValueError, "seed must be <="),
    ((MU, MU, 2), {"seed": 1.0}, TypeError, "seed must be an int"),
    ((MU, MU, 2), {"seed": None}, TypeError, "seed must be an int"),
    ((MU, MU, 2), {"row_offset": -1}, ValueError, "row_offset must be >= 0"),
    ((MU, MU, 2), {"row_offset": 2**48 - 2}, ValueError, "row_offset must be <="),
    ((MU, MU, 2), {"row_offset": 0.5}, TypeError, "row_offset must be an int"),
    ((MU, MU, 2), {"sample_offset": -3}, ValueError, "sample_offset must be >= 0"),
    ((MU, MU, 2), {"sample_offset": 2**47 - 1}, ValueError, "sample_offset must be <="),
    ((with_value(MU, (1, 2), nan), MU, 2), {}, ValueError, r"mu has 1 non-finite value.*index \(1, 2\)"),
    ((with_value(MU, (0, 0), -inf), MU, 2), {}, ValueError, "mu has 1 non-finite"),
    ((MU, with_value(MU, (2, 3), inf), 2), {}, ValueError, r"logvar has 1 non-finite.*\(2, 3\)"),
    ((MU, with_value(MU, (2, 3), nan), 2), {}, ValueError, "logvar has 1 non-finite"),
    ((MU, with_value(MU, (0, 1), 200.0), 2), {}, ValueError, "logvar must be <="),
    # N * n * D overflows int64: zero-stride views, so nothing is allocated or read.
    ((z(1, 1).expand(2**40, 2**20), z(1, 1).expand(2**40, 2**20), 2**10), {}, ValueError, "overflows int64"),
    ((z(1, 1).expand(3, 2**34 + 1), z(1, 1).expand(3, 2**34 + 1), 1), {}, ValueError, "D must be <= 2"),
    # 2^62 values fit int64, their 2^64 bytes do not.
    ((z(1, 1).expand(1, 2**20), z(1, 1).expand(1, 2**20), 2**42), {}, ValueError, "size in bytes overflows int64"),
    ((z(3, 4, device="meta"), z(3, 4, device="meta"), 2), {}, ValueError, "mu is on the meta device"),
    ((MU, MU, torch.tensor(True)), {}, TypeError, "n must be an int"),
    ((MU, MU, torch.tensor(2 + 0j)), {}, TypeError, "n must be an int"),
    ((MU, MU, torch.tensor(2, device="meta")), {}, TypeError, "n must be an int"),
    ((MU, MU, torch.tensor([2])), {}, TypeError, "n must be an int"),
]


@pytest.mark.parametrize("args, kwargs, error, match", SAMPLE_CASES)
def test_sample_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.sample(*args, **kwargs)
    assert str(info.value).startswith("latentsweep.sample:")


def test_sample_logvar_limit_depends_on_dtype():
    big = with_value(z(2, 2, dtype=torch.float64), (0, 0), 200.0)
    latentsweep.sample(big, big, 1)  # exp(100) is finite in float64
    with pytest.raises(ValueError, match="logvar must be <="):
        latentsweep.sample(big.float(), big.float(), 1)
    with pytest.raises(ValueError, match="logvar must be <="):
        latentsweep.sample(big.half(), big.half(), 1)  # computed in float32: limit ~177


# --------------------------------------------------------------------------- sample_prior

PRIOR_CASES = [
    ((-1, 4), {}, ValueError, "n must be >= 0"),
    ((4, -1), {}, ValueError, "dim must be >= 0"),
    ((4.0, 4), {}, TypeError, "n must be an int"),
    ((4, None), {}, TypeError, "dim must be an int"),
    ((2**48 + 1, 4), {}, ValueError, "n must be <="),
    ((4, 2**34 + 1), {}, ValueError, "dim must be <="),
    ((4, 4), {"offset": -1}, ValueError, "offset must be >= 0"),
    ((4, 4), {"offset": 2**48 - 3}, ValueError, "offset must be <="),
    ((4, 4), {"seed": -5}, ValueError, "seed must be >= 0"),
    ((4, 4), {"seed": "0"}, TypeError, "seed must be an int"),
    ((4, 4), {"dtype": torch.int64}, TypeError, "dtype must be a floating-point dtype"),
    ((4, 4), {"dtype": torch.complex64}, TypeError, "dtype must be a floating-point dtype"),
    ((4, 4), {"dtype": "float32"}, TypeError, "dtype must be a floating-point dtype"),
    ((4, 4), {"device": "nonsense"}, ValueError, "device must be"),
    ((4, 4), {"device": 1.5}, TypeError, "device must be"),
    ((2**40, 2**30), {}, ValueError, "n \\* dim = .* overflows int64"),
    ((2**47, 2**15), {"dtype": torch.float64}, ValueError, "n \\* dim = .* size in bytes overflows int64"),
    ((torch.tensor(3.0), 4), {}, TypeError, "n must be an int"),
]


@pytest.mark.parametrize("args, kwargs, error, match", PRIOR_CASES)
def test_sample_prior_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.sample_prior(*args, **kwargs)
    assert str(info.value).startswith("latentsweep.sample_prior:")


# --------------------------------------------------------------------------- traversal_codes

A = z(2, 5)
V = z(2, 3)  # [K=2, S=3]
D0 = [0, 4]

CODES_CASES = [
    (("anchors", D0, V), {}, TypeError, "anchors must be a torch.Tensor"),
    ((z(2, 5, dtype=torch.int64), D0, V), {}, TypeError, "anchors must be float16"),
    ((z(2, 2, 5), D0, V), {}, ValueError, "anchors must be 1-D or 2-D"),
    ((torch.tensor(1.0), D0, V), {}, ValueError, "anchors must be 1-D or 2-D"),
    ((with_value(A, (1, 3), nan), D0, V), {}, ValueError, r"anchors has 1 non-finite.*\(1, 3\)"),
    ((with_value(A, (0, 0), inf), D0, V), {}, ValueError, "anchors has 1 non-finite"),
    ((A, [0, 5], V), {}, ValueError, r"dims must lie in \[0, 5\).*\[0, 5\]"),
    ((A, [-1, 2], V), {}, ValueError, r"dims must lie in \[0, 5\)"),
    ((A, torch.tensor([7]), V[:1]), {}, ValueError, "dims must lie in"),
    ((A, [], V), {}, ValueError, "dims must not be empty"),
    ((A, torch.zeros(0, dtype=torch.int64), V), {}, ValueError, "dims must not be empty"),
    ((A, torch.tensor([0.0, 4.0]), V), {}, TypeError, "dims must hold integers"),
    ((A, torch.tensor([True, False]), V), {}, TypeError, "dims must hold integers"),
    ((A, torch.tensor([[0, 4]]), V), {}, ValueError, "dims must be 1-D"),
    ((A, [0, 1.5], V), {}, TypeError, r"dims\[...\] must be an int"),
    ((A, "04", V), {}, TypeError, "dims must be a list of ints"),
    ((A, torch.tensor([0, 4], device="meta"), V), {}, ValueError, "dims is on the meta device"),
    ((A.to("meta"), D0, V), {}, ValueError, "anchors is on the meta device"),
    ((z(0, 1, device="meta"), D0, V), {}, ValueError, "anchors is on the meta device"),
    ((A, None, V), {}, TypeError, "dims must be a list of ints"),
    ((A, 2.0, V), {}, TypeError, "dims must be a list of ints"),
    ((A, D0, z(3, 3)), {}, ValueError, r"values must be .*\[K=2, S\], got shape \(3, 3\)"),
    ((A, D0, z(3, 2, 3)), {}, ValueError, r"values must be .*\[A=2, K=2, S\], got shape \(3, 2, 3\)"),
    ((A, D0, z(2, 1, 3)), {}, ValueError, r"values must be .*\[A=2, K=2, S\]"),
    ((A, D0, z(1, 2, 2, 3)), {}, ValueError, "values must be 1-D or 2-D or 3-D"),
    ((A, D0, torch.tensor(1.0)), {}, ValueError, "values must be 1-D or 2-D or 3-D"),
    ((A, D0, z(0)), {}, ValueError, "values must be .* S >= 1"),
    ((A, D0, z(2, 0)), {}, ValueError, "values must be .* S >= 1"),
    ((A, D0, z(3, dtype=torch.int64)), {}, TypeError, "values must be float16"),
    ((A, D0, [0.0, 1.0]), {}, TypeError, "values must be a torch.Tensor"),
    ((A, D0, with_value(V, (1, 2), nan)), {}, ValueError, r"values has 1 non-finite.*\(1, 2\)"),
    ((A, D0, with_value(V, (0, 0), -inf)), {}, ValueError, "values has 1 non-finite"),
    ((A, D0, z(2, 3, device="meta")), {}, ValueError, "values on meta"),
    ((A, D0, V), {"start": -1}, ValueError, "start must be >= 0"),
    ((A, D0, V), {"start": 13}, ValueError, "start must be <= 12"),
    ((A, D0, V), {"start": 1.0}, TypeError, "start must be an int"),
    ((A, D0, V), {"count": 13}, ValueError, "count must be <= 12"),
    ((A, D0, V), {"start": 5, "count": 8}, ValueError, "count must be <= 7"),
    ((A, D0, V), {"count": -1}, ValueError, "count must be >= 0"),
    ((A, D0, V), {"count": "3"}, TypeError, "count must be an int"),
    ((A, D0, V), {"out": z(11, 5)}, ValueError, r"out must be \[12, 5\]"),
    ((A, D0, V), {"out": z(12, 4)}, ValueError, r"out must be \[12, 5\]"),
    ((A, D0, V), {"out": z(12, 5, 1)}, ValueError, r"out must be \[12, 5\]"),
    ((A, D0, V), {"out": z(12, 5, dtype=torch.float64)}, ValueError, r"out must be \[12, 5\] torch.float32"),
    ((A, D0, V), {"out": z(12, 5, dtype=torch.int32)}, ValueError, r"out must be \[12, 5\] torch.float32"),
    ((A, D0, V), {"out": z(12, 5, device="meta")}, ValueError, "out must be .* on cpu"),
    ((A, D0, V), {"out": z(5, 12).T}, ValueError, "out must be contiguous"),
    ((A, D0, V), {"out": z(12, 10)[:, ::2]}, ValueError, "out must be contiguous"),
    ((A, D0, V), {"out": [[0.0] * 5] * 12}, TypeError, "out must be a torch.Tensor"),
    # A * K * S overflows int64: 2^21 anchors (zero stride), 2^21 dims, 2^22 steps (zero stride).
    (
        (z(1, 1).expand(2**21, 1), torch.zeros(2**21, dtype=torch.int64), z(1).expand(2**22)),
        {},
        ValueError,
        r"A \* K \* S = .* overflows int64",
    ),
    # count * D overflows: 2^42 rows of 2^22 values.
    (
        (z(1, 1).expand(1, 2**22), torch.zeros(2**21, dtype=torch.int64), z(1).expand(2**21)),
        {},
        ValueError,
        r"count \* D = .* overflows int64",
    ),
]


@pytest.mark.parametrize("args, kwargs, error, match", CODES_CASES)
def test_traversal_codes_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.traversal_codes(*args, **kwargs)
    assert str(info.value).startswith("latentsweep.traversal_codes:")


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


# --------------------------------------------------------------------------- traversal_values

LV = z(2, 5)
REF = torch.randn(10, 5)

VALUES_CASES = [
    (({"mode": "sideways"}), ValueError, "mode must be one of 'prior', 'absolute'"),
    (({"mode": None}), ValueError, "mode must be one of"),
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
    (({"dims": "all"}), TypeError, "dims must be a list of ints"),
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


@pytest.mark.parametrize(
    "anchors, error, match",
    [
        (with_value(A, (0, 2), nan), ValueError, r"anchors has 1 non-finite.*\(0, 2\)"),
        (z(2, 5, dtype=torch.int64), TypeError, "anchors must be float16"),
        (z(1, 2, 5), ValueError, "anchors must be 1-D or 2-D"),
        ([0.0, 1.0], TypeError, "anchors must be a torch.Tensor"),
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


# --------------------------------------------------------------------------- the raw ops' own checks

RAW_CASES = [
    (lambda: ops.sample(z(4), z(4), 2), "mu must be \\[N, D\\]"),
    (lambda: ops.sample(z(3, 4), z(3, 5), 2), "logvar must have mu's shape"),
    (lambda: ops.sample(z(3, 4), z(3, 4, dtype=torch.float64), 2), "but logvar is"),
    (lambda: ops.sample(z(3, 4, dtype=torch.int64), z(3, 4, dtype=torch.int64), 2), "mu must be a floating-point"),
    (lambda: ops.sample(z(3, 4), z(3, 4), -1), "n must be >= 0"),
    (lambda: ops.sample(z(3, 4), z(3, 4), 2, 0, -1), "rows offset"),
    (lambda: ops.sample(z(3, 4), z(3, 4), 2, 0, 2**48 - 2), "rows offset"),
    (lambda: ops.sample(z(3, 4), z(3, 4), 2, 0, 0, 2**47 - 1), "sample offset"),
    (lambda: ops.sample(z(1, 1).expand(1, 2**34 + 1), z(1, 1).expand(1, 2**34 + 1), 0), "dim must be below"),
    (lambda: ops.sample_prior_(z(4), 0, 0), "out must be \\[n, dim\\]"),
    (lambda: ops.sample_prior_(z(4, 4, dtype=torch.int32), 0, 0), "out must be a floating-point"),
    (lambda: ops.sample_prior_(z(4, 4), 0, -1), "rows offset"),
    (lambda: ops.traversal_codes(z(5), torch.tensor([0]), z(1, 1, 3)), "anchors must be \\[A, D\\]"),
    (lambda: ops.traversal_codes(z(2, 5), torch.tensor([0.0]), z(2, 1, 3)), "dims must be a 1-D int64"),
    (lambda: ops.traversal_codes(z(2, 5), torch.tensor([0]), z(1, 3)), "values must be \\[A, K, S\\]"),
    (lambda: ops.traversal_codes(z(2, 5), torch.tensor([0]), z(2, 1, 3, dtype=torch.float64)), "values must have the anchors' dtype"),
    (lambda: ops.traversal_codes(z(2, 5), torch.tensor([0]), z(3, 1, 3)), "values must be \\[2, 1, S\\]"),
    (lambda: ops.traversal_codes(z(2, 5), torch.tensor([5]), z(2, 1, 3)), "dims must lie in"),
    (lambda: ops.traversal_codes(z(2, 5), torch.tensor([-1]), z(2, 1, 3)), "dims must lie in"),
    (lambda: ops.traversal_codes(z(2, 5), torch.tensor([0]), z(2, 1, 3), 7), "start must be in"),
    (lambda: ops.traversal_codes(z(2, 5), torch.tensor([0]), z(2, 1, 3), -1), "start must be in"),
    (lambda: ops.traversal_codes(z(2, 5), torch.tensor([0]), z(2, 1, 3), 2, 5), "count must be in"),
    (lambda: ops.traversal_codes(z(2, 5), torch.tensor([0]), z(2, 1, 3), 0, -1), "count must be in"),
    (lambda: ops.traversal_codes_into(z(2, 5), torch.tensor([0]), z(2, 1, 3), 0, 6, z(5, 5)), "out must be \\[6, 5\\]"),
    (lambda: ops.traversal_codes_into(z(2, 5), torch.tensor([0]), z(2, 1, 3), 0, 6, z(6, 5, dtype=torch.float64)), "out must have the anchors' dtype"),
    (lambda: ops.traversal_codes_into(z(2, 5), torch.tensor([0]), z(2, 1, 3), 0, 6, z(5, 6).T), "out must be contiguous"),
    (
        lambda: ops.traversal_codes(z(1, 1).expand(1, 2**22), torch.zeros(2**21, dtype=torch.int64), z(1, 1, 1).expand(1, 2**21, 2**21)),
        "count \\* D overflows",
    ),
]


@pytest.mark.parametrize("call, match", RAW_CASES)
def test_raw_ops_check_their_arguments(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()
