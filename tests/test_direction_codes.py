"""latentsweep.direction_codes and unit_directions against the definition
anchors[a] + (values[a, k, s] - <anchors[a], u_k>) u_k, computed in float64 by plain torch."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import latentsweep
import reference as R
from conftest import FLOAT_DTYPES, num_threads

ops = torch.ops.latentsweep


def make_grid(num_anchors, latent, num_dims, steps, dtype=torch.float32, device="cpu", seed=0, values_ndim=3):
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randn(num_anchors, latent, generator=g, dtype=torch.float64)
    directions = torch.nn.functional.normalize(torch.randn(num_dims, latent, generator=g, dtype=torch.float64), dim=1)
    shape = {1: (steps,), 2: (num_dims, steps), 3: (num_anchors, num_dims, steps)}[values_ndim]
    values = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    return (anchors.to(dtype=dtype, device=device), directions.to(dtype=dtype, device=device),
            values.to(dtype=dtype, device=device))


def assert_close_to_definition(got, anchors, directions, values, *, start=0, count=None):
    """Within a few roundings of the largest term: |x_d| + |p u_d| + |v u_d| (p summed over D)."""
    expected = R.reference_direction_codes(anchors.cpu(), directions.cpu(), values.cpu(), start=start, count=count)
    a = anchors[None] if anchors.dim() == 1 else anchors
    u = directions[None] if directions.dim() == 1 else directions
    scale = float(a.double().abs().max() + (a.double() @ u.double().T).abs().max() + values.double().abs().max())
    latent = a.shape[1]
    tolerance = (4 + latent) * torch.finfo(got.dtype).eps * scale
    assert got.dtype == anchors.dtype and got.shape == expected.shape
    error = (got.cpu().double() - expected).abs().max().item() if got.numel() else 0.0
    assert error <= tolerance, f"max error {error:.3g} > {tolerance:.3g}"


# --------------------------------------------------------------------------- the definition


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("values_ndim", [1, 2, 3])
@pytest.mark.parametrize("num_anchors, latent, num_dims, steps", [(3, 5, 2, 4), (1, 1, 1, 1), (4, 64, 64, 3), (2, 33, 7, 11)])
def test_direction_codes_match_definition(device, dtype, values_ndim, num_anchors, latent, num_dims, steps):
    anchors, directions, values = make_grid(num_anchors, latent, num_dims, steps, dtype, device, values_ndim=values_ndim)
    got = latentsweep.direction_codes(anchors, directions, values)
    assert got.device == anchors.device
    assert_close_to_definition(got, anchors, directions, values)


def test_rows_have_the_requested_coordinate_and_keep_the_orthogonal_part():
    anchors, directions, values = make_grid(5, 12, 4, 6, torch.float64)
    codes = latentsweep.direction_codes(anchors, directions, values).view(5, 4, 6, 12)
    along = torch.einsum("aksd,kd->aks", codes, directions)
    assert torch.allclose(along, values, atol=1e-12)
    # Orthogonal to u_k, the row is the anchor: codes - anchors lies along u_k.
    moved = codes - anchors[:, None, None, :]
    residual = moved - torch.einsum("aks,kd->aksd", torch.einsum("aksd,kd->aks", moved, directions), directions)
    assert residual.abs().max() < 1e-12


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("values_ndim", [1, 2, 3])
def test_one_hot_directions_are_exactly_traversal_codes(device, dtype, values_ndim):
    anchors, _, values = make_grid(6, 40, 5, 7, dtype, device, values_ndim=values_ndim)
    dims = [3, 0, 39, 17, 3]
    one_hot = torch.eye(40, dtype=dtype, device=device)[dims]
    expected = latentsweep.traversal_codes(anchors, dims, values)
    assert torch.equal(latentsweep.direction_codes(anchors, one_hot, values), expected)
    assert torch.equal(latentsweep.direction_codes(anchors, one_hot, values, start=31, count=50), expected[31:81])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_chunks_concatenate_to_the_full_grid(device, dtype):
    anchors, directions, values = make_grid(7, 40, 3, 9, dtype, device)
    full = latentsweep.direction_codes(anchors, directions, values)
    total = full.shape[0]
    for chunk in (1, 5, 9, 27, 64, total):
        pieces = [latentsweep.direction_codes(anchors, directions, values, start=s, count=min(chunk, total - s))
                  for s in range(0, total, chunk)]
        assert torch.equal(torch.cat(pieces), full)
    assert torch.equal(latentsweep.direction_codes(anchors, directions, values, start=100), full[100:])
    assert latentsweep.direction_codes(anchors, directions, values, start=total).shape == (0, 40)
    assert latentsweep.direction_codes(anchors, directions, values, start=3, count=0).shape == (0, 40)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_out_reuses_the_buffer(device, dtype):
    anchors, directions, values = make_grid(4, 24, 3, 5, dtype, device)
    full = latentsweep.direction_codes(anchors, directions, values)
    buffer = torch.full((16, 24), float("nan"), dtype=dtype, device=device)
    for start in range(0, full.shape[0], 16):
        count = min(16, full.shape[0] - start)
        out = buffer[:count]
        result = latentsweep.direction_codes(anchors, directions, values, start=start, count=count, out=out)
        assert result.data_ptr() == out.data_ptr()
        assert torch.equal(out, full[start : start + count])


def test_independent_of_thread_count():
    anchors, directions, values = make_grid(50, 64, 10, 21, torch.float32)
    results = []
    for threads in (1, 2, 3):
        with num_threads(threads):
            results.append(latentsweep.direction_codes(anchors, directions, values, start=17, count=9000))
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])
    assert_close_to_definition(results[0], anchors, directions, values, start=17, count=9000)


def test_non_contiguous_and_broadcast_inputs():
    anchors, directions, values = make_grid(6, 10, 3, 4, torch.float64)
    anchors_nc = torch.stack([anchors, anchors], 2)[..., 0]
    directions_nc = directions.T.contiguous().T
    values_nc = values.transpose(0, 2).contiguous().transpose(0, 2)
    assert not anchors_nc.is_contiguous() and not directions_nc.is_contiguous() and not values_nc.is_contiguous()
    expected = latentsweep.direction_codes(anchors, directions, values)
    assert torch.equal(latentsweep.direction_codes(anchors_nc, directions_nc, values_nc), expected)
    # [S] and [K, S] values broadcast over anchors (zero strides reach the kernel).
    assert torch.equal(latentsweep.direction_codes(anchors, directions, values[0, 0]),
                       latentsweep.direction_codes(anchors, directions, values[0, 0].expand(6, 3, 4).contiguous()))
    assert torch.equal(latentsweep.direction_codes(anchors, directions, values[0]),
                       latentsweep.direction_codes(anchors, directions, values[0].expand(6, 3, 4).contiguous()))


def test_one_anchor_and_one_direction_as_vectors():
    anchors, directions, values = make_grid(1, 8, 1, 5, torch.float32)
    expected = latentsweep.direction_codes(anchors, directions, values)
    assert torch.equal(latentsweep.direction_codes(anchors[0], directions[0], values[0, 0]), expected)


def test_values_and_directions_of_another_dtype_are_cast():
    anchors, directions, values = make_grid(3, 8, 2, 5, torch.float32)
    got = latentsweep.direction_codes(anchors, directions.double(), values.double())
    assert got.dtype == torch.float32
    assert torch.equal(got, latentsweep.direction_codes(anchors, directions, values))


def test_inputs_are_left_alone():
    anchors, directions, values = make_grid(3, 8, 2, 5, torch.float16)
    copies = [t.clone() for t in (anchors, directions, values)]
    latentsweep.direction_codes(anchors, directions, values, start=4, count=20)
    assert all(torch.equal(t, c) for t, c in zip((anchors, directions, values), copies))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_is_computed_in_float32_and_rounded_once(dtype):
    anchors, directions, values = make_grid(9, 16, 3, 5, dtype)
    got = latentsweep.direction_codes(anchors, directions, values, start=37, count=61)
    in_float = latentsweep.direction_codes(anchors.float(), directions.float(), values.float(), start=37, count=61)
    assert torch.equal(got, in_float.to(dtype))


def test_anchors_near_the_largest_float32_stay_finite(device):
    """The projection of such anchors exceeds float32 (3e38 in every column, along the
    diagonal: 6.7e38) though no code does: it stays in double until the orthogonal part."""
    anchors = torch.full((1, 5), 3e38, device=device)
    directions = latentsweep.unit_directions(torch.ones(1, 5, device=device))
    values = torch.tensor([-1e38, 0.0, 1e38], device=device)
    codes = latentsweep.direction_codes(anchors, directions, values)
    assert torch.isfinite(codes).all()
    expected = R.reference_direction_codes(anchors, directions, values)
    torch.testing.assert_close(codes.double(), expected, rtol=0, atol=3e38 * 2**-22)


def test_codes_beyond_the_dtype_are_refused(device):
    """(-3e38, 3e38, ...) moved along the diagonal reaches -4.8e38 in column 0: not a float32."""
    anchors = torch.full((1, 5), 3e38, device=device)
    anchors[0, 0] = -3e38
    directions = latentsweep.unit_directions(torch.ones(1, 5, device=device))
    with pytest.raises(ValueError, match=r"direction_codes: the codes exceed the largest torch.float32 .* float64 anchors"):
        latentsweep.direction_codes(anchors, directions, torch.tensor([0.0], device=device))
    codes = latentsweep.direction_codes(anchors.double(), directions.double(), torch.tensor([0.0], device=device))
    assert torch.isfinite(codes).all()


# --------------------------------------------------------------------------- unit_directions


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_unit_directions_normalise_each_row(dtype):
    raw = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, -2.0], [1e-30, 0.0, 0.0]], dtype=torch.float64)
    raw = raw[:2] if dtype in (torch.float16, torch.bfloat16) else raw  # 1e-30 underflows there
    unit = latentsweep.unit_directions(raw.to(dtype))
    expected = raw / raw.norm(dim=1, keepdim=True)
    assert unit.dtype == dtype
    assert torch.allclose(unit.double(), expected, atol=torch.finfo(dtype).eps)
    assert latentsweep.unit_directions(raw[0].to(dtype)).shape == (1, 3)


def test_unit_directions_of_extreme_magnitudes():
    huge = torch.tensor([[3e200, 4e200], [3e-200, -4e-200], [5e-324, 0.0]], dtype=torch.float64)
    unit = latentsweep.unit_directions(huge)
    assert torch.allclose(unit, torch.tensor([[0.6, 0.8], [0.6, -0.8], [1.0, 0.0]], dtype=torch.float64), atol=1e-15)


@pytest.mark.parametrize(
    "directions, error, match",
    [
        (torch.tensor([[1.0, 0.0], [0.0, 0.0]]), ValueError, r"direction\(s\) \[1\] are zero"),
        (torch.tensor([[1.0, float("nan")]]), ValueError, "non-finite"),
        (torch.tensor([[1.0, float("inf")]]), ValueError, "non-finite"),
        (torch.empty(0, 3), ValueError, "K >= 1"),
        (torch.empty(2, 0), ValueError, "D >= 1"),
        (torch.ones(2, 2, 2), ValueError, "1-D or 2-D"),
        (torch.ones(2, 2, dtype=torch.int64), TypeError, "float16, bfloat16"),
        ([[1.0, 0.0]], TypeError, "must be a torch.Tensor"),
    ],
)
def test_unit_directions_bad_input(directions, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.unit_directions(directions)
    assert str(info.value).startswith("latentsweep.unit_directions:")


# --------------------------------------------------------------------------- bad input

A = torch.zeros(2, 5)
U = torch.eye(5)[[0, 2]]
V = torch.zeros(2, 2, 3)


# The shape, dtype, device, range and unit-length checks are the op's: tests/test_errors.py
# runs them through the wrapper, the raw op and the fake kernel. Here: what only the wrapper
# does (coercion and the scans for NaN/Inf).
@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((A, "u", V), {}, TypeError, "directions must be a torch.Tensor"),
        (([[0.0] * 5] * 2, U, V), {}, TypeError, "anchors must be a torch.Tensor"),
        ((A, U, V.tolist()), {}, TypeError, "values must be a torch.Tensor"),
        ((A, U, V), {"out": "buffer"}, TypeError, "out must be a torch.Tensor"),
        ((A, U.to_sparse(), V), {}, TypeError, "directions must be a dense"),
        ((A, torch.tensor([[float("nan")] * 5]), V[:, :1]), {}, ValueError, "directions has 5 non-finite"),
        ((A + float("inf"), U, V), {}, ValueError, "anchors has 10 non-finite"),
        ((A, U, V + float("nan")), {}, ValueError, "values has 12 non-finite"),
        ((A, U, V), {"count": 1.5}, TypeError, "count must be an int"),
        ((A, U, V), {"start": 2**64}, ValueError, "start must be <="),
        ((A, U.to("meta"), V), {}, ValueError, "directions is on the meta device, which holds no values"),
    ],
)
def test_direction_codes_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        latentsweep.direction_codes(*args, **kwargs)
    assert str(info.value).startswith("latentsweep.direction_codes:")


def test_the_op_refuses_tensors_on_two_devices():
    with pytest.raises(ValueError, match="latentsweep.direction_codes: all tensors must be on one device, got anchors on cpu, directions on meta"):
        ops.direction_codes(A, U.to("meta"), V)


def test_unit_length_tolerance_follows_the_dtype():
    """sqrt(eps) of the anchors' dtype: a float32-normalised direction passes in every dtype,
    a 1% error passes in float16 and bfloat16 (tolerance 3% and 9%) only."""
    raw = torch.randn(3, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    unit = raw / raw.norm(dim=1, keepdim=True)
    for dtype in FLOAT_DTYPES:
        latentsweep.direction_codes(torch.zeros(1, 9, dtype=dtype), unit.to(dtype), torch.zeros(3))
    for dtype in (torch.float16, torch.bfloat16):
        latentsweep.direction_codes(torch.zeros(1, 9, dtype=dtype), unit * 1.01, torch.zeros(3))
    for dtype in (torch.float32, torch.float64):
        with pytest.raises(ValueError, match="direction 0 has norm 1.01"):
            latentsweep.direction_codes(torch.zeros(1, 9, dtype=dtype), unit * 1.01, torch.zeros(3))


def test_a_norm_just_off_1_is_said_with_its_digits_and_the_tolerance():
    """A Directions row of norm 1 + 1e-6 (accepted: Directions allows float32's roundings) was
    refused by the float64 op as "direction 0 has norm 1": the length it called wrong."""
    vectors = torch.zeros(1, 5, dtype=torch.float64)
    vectors[0, 0] = 1 + 1e-6
    directions = latentsweep.Directions(vectors, ("u",))
    with pytest.raises(ValueError, match=r"direction 0 has norm 1\.00000099999\d*, further from 1 than "
                                         r"1\.49012e-08 \(sqrt\(eps\) of torch.float64\)"):
        latentsweep.direction_codes(torch.zeros(1, 5, dtype=torch.float64), directions.vectors, torch.zeros(3))
    with pytest.raises(ValueError, match=r"have norm\(s\) \[1\.1000011\d*\], further from 1 than 1e-05"):
        latentsweep.Directions(vectors * 1.1, ("u",))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_cuda_is_bitwise_equal_to_cpu(dtype):
    """The same projection order and no FMA contraction on both: the same bits."""
    anchors, directions, values = make_grid(9, 67, 5, 7, dtype)
    cpu = latentsweep.direction_codes(anchors, directions, values, start=11, count=250)
    cuda = latentsweep.direction_codes(anchors.cuda(), directions.cuda(), values.cuda(), start=11, count=250)
    assert torch.equal(cuda.cpu(), cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_devices_are_refused():
    with pytest.raises(ValueError, match="one device"):
        latentsweep.direction_codes(A.cuda(), U, V)
    with pytest.raises(ValueError, match="out must be"):
        latentsweep.direction_codes(A, U, V, out=torch.zeros(12, 5, device="cuda"))


# --------------------------------------------------------------------------- op registration


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_opcheck(device, dtype):
    anchors, directions, values = make_grid(4, 40, 3, 5, dtype, device)
    torch.library.opcheck(ops.direction_codes.default, (anchors, directions, values, 0, None))
    torch.library.opcheck(ops.direction_codes.default, (anchors, directions, values, 7, 20))
    torch.library.opcheck(ops.direction_codes.default, (anchors, directions, values[:1].expand(4, 3, 5), 2, None))
    out = torch.empty(20, 40, device=device, dtype=dtype)
    torch.library.opcheck(ops.direction_codes_into.default, (anchors, directions, values, 7, 20, out))


def test_fake_kernels_give_shapes_without_data():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        anchors = torch.empty(3, 8)
        assert ops.direction_codes(anchors, torch.empty(2, 8), torch.empty(3, 2, 4), 5, None).shape == (19, 8)
        assert ops.direction_codes(anchors.half(), torch.empty(2, 8).half(), torch.empty(3, 2, 4).half(), 5, 6).shape == (6, 8)
        assert ops.direction_codes_into(anchors, torch.empty(2, 8), torch.empty(3, 2, 4), 0, 7, torch.empty(7, 8)) is None


def test_torch_compile_fullgraph(device):
    from test_ops import _compile_or_skip, _run_compiled

    anchors, directions, values = make_grid(4, 16, 3, 5, torch.float32, device)

    def pipeline(anchors, directions, values):
        codes = ops.direction_codes(anchors, directions, values, 3, 20)
        out = torch.empty(6, 16, device=anchors.device)
        ops.direction_codes_into(anchors, directions, values, 1, 6, out)
        return codes * 2, out + 0

    got = _run_compiled(_compile_or_skip(pipeline), anchors, directions, values)
    full = latentsweep.direction_codes(anchors, directions, values)
    assert torch.equal(got[0], full[3:23] * 2)
    assert torch.equal(got[1], full[1:7])


# --------------------------------------------------------------------------- properties


@st.composite
def grids(draw):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    num_anchors, latent = draw(st.integers(1, 6)), draw(st.integers(1, 40))
    num_dims, steps = draw(st.integers(1, 5)), draw(st.integers(1, 9))
    seed = draw(st.integers(0, 1000))
    values_ndim = draw(st.sampled_from([1, 2, 3]))
    anchors, directions, values = make_grid(num_anchors, latent, num_dims, steps, dtype, seed=seed, values_ndim=values_ndim)
    anchors = anchors * draw(st.sampled_from([1.0, 1e-3, 50.0]))
    return anchors, directions, values


@given(grid=grids(), data=st.data())
def test_property_chunks_match_definition_and_full_grid(grid, data):
    anchors, directions, values = grid
    full = latentsweep.direction_codes(anchors, directions, values)
    assert_close_to_definition(full, anchors, directions, values)
    total = full.shape[0]
    cuts = sorted(data.draw(st.lists(st.integers(0, total), max_size=5)))
    chunks = list(zip([0] + cuts, cuts + [total]))
    pieces = [latentsweep.direction_codes(anchors, directions, values, start=a, count=b - a) for a, b in chunks]
    assert torch.equal(torch.cat(pieces), full)
    width = max(b - a for a, b in chunks)
    buffer = torch.full((width, full.shape[1]), float("nan"), dtype=full.dtype)
    for a, b in chunks:
        latentsweep.direction_codes(anchors, directions, values, start=a, count=b - a, out=buffer[: b - a])
        assert torch.equal(buffer[: b - a], full[a:b])


@given(grid=grids(), picks=st.lists(st.integers(0, 39), min_size=1, max_size=5))
def test_property_one_hot_is_traversal_codes(grid, picks):
    anchors, _, values = grid
    dims = [p % anchors.shape[1] for p in picks][: values.shape[-2] if values.dim() > 1 else None]
    if values.dim() > 1 and len(dims) != values.shape[-2]:
        values = values[..., :1, :].expand(*values.shape[:-2], len(dims), values.shape[-1])
    one_hot = torch.eye(anchors.shape[1], dtype=anchors.dtype)[dims]
    assert torch.equal(latentsweep.direction_codes(anchors, one_hot, values),
                       latentsweep.traversal_codes(anchors, dims, values))
