"""interpolation_codes: linear paths and slerp (White 2016): endpoints, norms, angles."""

from __future__ import annotations

import math
import sys
import warnings

import pytest
import torch

import latentsweep
import latentsweep.paths


def test_linear_path_endpoints_and_even_steps():
    start, end = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, 2.0, -0.5])
    codes = latentsweep.interpolation_codes(start, end, steps=5)
    assert codes.shape == (1, 5, 3) and codes.dtype == torch.float32
    assert torch.equal(codes[0, 0], start) and torch.equal(codes[0, -1], end)
    assert torch.allclose(codes[0, 2], (start + end) / 2)
    assert torch.allclose(codes[0, 1:] - codes[0, :-1], ((end - start) / 4).expand(4, 3))


def test_slerp_keeps_the_norm_and_moves_at_constant_angular_speed():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(4, 16, generator=g, dtype=torch.float64)
    end = torch.randn(4, 16, generator=g, dtype=torch.float64)
    end = end / end.norm(dim=1, keepdim=True) * start.norm(dim=1, keepdim=True)  # equal norms
    codes = latentsweep.interpolation_codes(start, end, steps=9, path="slerp")
    assert torch.equal(codes[:, 0], start) and torch.equal(codes[:, -1], end)
    norms = codes.norm(dim=2)
    assert torch.allclose(norms, start.norm(dim=1, keepdim=True).expand(4, 9), rtol=1e-12)
    # Equal angles between consecutive codes, summing to the angle between the endpoints.
    cosine = lambda a, b: (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))  # noqa: E731
    steps = torch.arccos(cosine(codes[:, 1:], codes[:, :-1]).clamp(-1, 1))
    total = torch.arccos(cosine(start, end))
    assert torch.allclose(steps, (total / 8)[:, None].expand(4, 8), atol=1e-7)
    # The definition, at t = 0.25 for the first path.
    theta = total[0]
    expected = (torch.sin(0.75 * theta) * start[0] + torch.sin(0.25 * theta) * end[0]) / torch.sin(theta)
    assert torch.allclose(codes[0, 2], expected, atol=1e-12)


def test_slerp_with_unequal_norms_interpolates_between_them_and_avoids_the_origin():
    start, end = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 1.0])
    codes = latentsweep.interpolation_codes(start, end, steps=3, path="slerp").double()
    linear = latentsweep.interpolation_codes(start, end, steps=3).double()
    assert codes[0, 1].norm() > linear[0, 1].norm()
    assert torch.allclose(codes[0, 1], (math.sin(math.pi / 4) * torch.tensor([3.0, 1.0]).double()) / 1.0)


def test_slerp_falls_back_to_linear_for_parallel_or_zero_endpoints():
    for start, end in [([1.0, 2.0], [2.0, 4.0]), ([1.0, 2.0], [-1.0, -2.0]), ([0.0, 0.0], [1.0, 1.0])]:
        start, end = torch.tensor(start, dtype=torch.float64), torch.tensor(end, dtype=torch.float64)
        opposite = float(start @ end) < 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            slerp = latentsweep.interpolation_codes(start, end, steps=7, path="slerp")
        assert [str(w.message).count("opposite endpoints") for w in caught] == ([1] if opposite else [])
        assert torch.allclose(slerp, latentsweep.interpolation_codes(start, end, steps=7), atol=1e-12)
        assert torch.isfinite(slerp).all()


@pytest.mark.parametrize("scale", [1e-300, 1e-170, 1e200, 1e300])
def test_slerp_works_at_any_finite_magnitude(scale):
    """The squares in the endpoints' norms under/overflowed: endpoints of norm 1e-170 or 1e200
    got the straight line, and opposite ones went unnamed."""
    start, end = torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor([-1.0, 1.0], dtype=torch.float64)
    unit = latentsweep.interpolation_codes(start, end, steps=5, path="slerp")
    scaled = latentsweep.interpolation_codes(start * scale, end * scale, steps=5, path="slerp")
    torch.testing.assert_close(scaled / scale, unit, rtol=1e-14, atol=0)
    torch.testing.assert_close(scaled[0, 2], torch.tensor([0.0, math.sqrt(2) * scale], dtype=torch.float64),
                               rtol=1e-14, atol=1e-16 * scale)
    with pytest.warns(UserWarning, match="opposite endpoints"):
        latentsweep.interpolation_codes(start * scale, -start * scale, path="slerp")


def test_codes_that_do_not_fit_in_memory_are_refused_before_allocating():
    """steps=10**9 tried to allocate the float64 path grid, and failed deep in torch (or the
    kernel killed the process)."""
    with pytest.raises(ValueError, match=r"latentsweep.interpolation_codes: computing the codes "
                                         r"\[P=2, steps=1000000000000, D=4\] needs .* GiB.*pass fewer steps or paths"):
        latentsweep.interpolation_codes(torch.zeros(2, 4), torch.ones(2, 4), steps=10**12)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((torch.zeros(3), torch.zeros(4)), {}, ValueError, "same shape"),
        ((torch.zeros(3), torch.zeros(3)), {"steps": 1}, ValueError, "steps must be >= 2"),
        ((torch.zeros(3), torch.zeros(3)), {"steps": 2**62}, ValueError, "overflows int64"),
        ((torch.zeros(3), torch.zeros(3)), {"path": "spline"}, ValueError, "path must be one of"),
        ((torch.zeros(3), torch.tensor([0.0, float("nan"), 0.0])), {}, ValueError, "end has 1 non-finite"),
        (([0.0], torch.zeros(1)), {}, TypeError, "start must be a torch.Tensor"),
        ((torch.zeros(2, 2, 2), torch.zeros(2, 2, 2)), {}, ValueError, "1-D or 2-D"),
    ],
)
def test_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.interpolation_codes(*args, **kwargs)
    assert str(info.value).startswith("latentsweep.interpolation_codes:")


@pytest.mark.parametrize("gap", [1.01e-6, 1e-5, 1e-3])
def test_slerp_between_nearly_opposite_endpoints_keeps_the_sphere(gap):
    """The angle from atan2, not arccos (which lost half the digits near pi: a midpoint of
    norm 1.00034 between unit endpoints at pi - 1.01e-6)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, dtype=torch.float64, generator=g)
    a /= a.norm()
    p = torch.randn(16, dtype=torch.float64, generator=g)
    p -= (p @ a) * a
    p /= p.norm()
    theta = math.pi - gap
    b = math.cos(theta) * a + math.sin(theta) * p
    codes = latentsweep.interpolation_codes(a, b, steps=5, path="slerp")[0]
    torch.testing.assert_close(codes.norm(dim=1), torch.ones(5, dtype=torch.float64), rtol=0, atol=1e-9)
    expected = torch.stack([math.cos(t * theta) * a + math.sin(t * theta) * p for t in (0, 0.25, 0.5, 0.75, 1)])
    torch.testing.assert_close(codes, expected, rtol=0, atol=1e-9)


PATHS_GEN = torch.Generator().manual_seed(27)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_interpolation_codes_are_written_by_the_path_writer(monkeypatch, dtype, path):
    """The public function computed its paths with torch's ops (four float64 [P, S, D]
    temporaries, 3-13 times slower) beside the compiled writer of interpolate's rows: the same
    bits by a second copy of the rule. Now the writer; torch's ops only where a graph is asked
    for (endpoints that require grad), with the same bits."""
    start = torch.randn(30, 6, generator=PATHS_GEN).to(dtype)
    end = torch.randn(30, 6, generator=PATHS_GEN).to(dtype)
    expected = latentsweep.paths.path_codes(start, end, 7, path).to(dtype)

    def refused(*args):
        raise AssertionError("torch's ops computed the paths")

    monkeypatch.setattr(sys.modules["latentsweep.paths"], "path_codes", refused)
    codes = latentsweep.interpolation_codes(start, end, steps=7, path=path)
    assert codes.shape == (30, 7, 6) and codes.dtype == dtype and codes.is_contiguous()
    assert torch.equal(codes.view(-1).view(torch.int16 if dtype.itemsize == 2 else
                                           torch.int32 if dtype.itemsize == 4 else torch.int64),
                       expected.view(-1).view(torch.int16 if dtype.itemsize == 2 else
                                              torch.int32 if dtype.itemsize == 4 else torch.int64))
    monkeypatch.undo()
    graph = latentsweep.interpolation_codes(start.clone().requires_grad_(), end, steps=7, path=path)
    assert graph.grad_fn is not None and torch.equal(graph.detach(), codes)


def test_interpolation_codes_of_mixed_dtypes_are_interpolates_rows():
    """float16 start and float32 end: both promoted to float32 (exactly), as interpolate does."""
    start, end = torch.randn(4, 3, generator=PATHS_GEN).half(), torch.randn(4, 3, generator=PATHS_GEN)
    codes = latentsweep.interpolation_codes(start, end, steps=5, path="slerp")
    assert codes.dtype == torch.float32
    assert torch.equal(codes, latentsweep.paths.path_codes(start, end, 5, "slerp").float())
    decoded = latentsweep.interpolate(lambda z: z * 1.0, start, end, steps=5, path="slerp", progress=False)
    assert torch.equal(decoded.outputs, codes)
