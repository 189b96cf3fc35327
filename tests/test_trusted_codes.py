"""The sweep engine's code writers: the internal ops ``_traversal_codes_into_trusted`` and
``_direction_codes_into_trusted`` write exactly what the public ops write and check the same
shapes, but skip the scans of the data (the dims' range, the directions' unit length: a
reduction and a device sync each), which the engine does once per grid (grid_spec.py). The
executor writes every chunk of an axis grid with the trusted op."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.profiler import ProfilerActivity, profile

import latentsweep
from conftest import FLOAT_DTYPES
from test_direction_codes import make_grid
from test_errors import SHARED_CASES, DirectionArguments

ops = torch.ops.latentsweep


def op_calls(fn) -> Counter:
    """How many times each op ran inside fn() (torch.profiler on the CPU)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return Counter(event.name for event in prof.events())


@st.composite
def grids(draw):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    num_anchors, latent = draw(st.integers(1, 5)), draw(st.integers(1, 30))
    num_dims, steps = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    anchors, directions, values = make_grid(num_anchors, latent, num_dims, steps, dtype,
                                            seed=draw(st.integers(0, 1000)),
                                            values_ndim=draw(st.sampled_from([1, 2, 3])))
    dims = torch.tensor(draw(st.lists(st.integers(0, latent - 1), min_size=num_dims, max_size=num_dims)))
    total = num_anchors * num_dims * steps
    start = draw(st.integers(0, total))
    count = draw(st.integers(0, total - start))
    return anchors, dims, directions, values, start, count


@given(grid=grids())
def test_trusted_ops_write_what_the_public_ops_write(grid):
    anchors, dims, directions, values, start, count = grid
    for public, trusted, second in (
        (ops.traversal_codes_into, ops._traversal_codes_into_trusted, dims),
        (ops.direction_codes_into, ops._direction_codes_into_trusted, directions),
    ):
        expected = torch.full((count, anchors.shape[1]), float("nan"), dtype=anchors.dtype)
        got = expected.clone()
        public(anchors, second, values, start, count, expected)
        trusted(anchors, second, values, start, count, got)
        assert torch.equal(got, expected)


def test_trusted_ops_on_the_device(device):
    anchors, directions, values = make_grid(4, 40, 3, 5, torch.float32, device)
    dims = torch.tensor([3, 0, 39], device=device)
    for second, trusted, public in ((dims, ops._traversal_codes_into_trusted, latentsweep.traversal_codes),
                                    (directions, ops._direction_codes_into_trusted, latentsweep.direction_codes)):
        out = torch.empty(20, 40, device=device)
        trusted(anchors, second, values, 7, 20, out)
        assert torch.equal(out, public(anchors, second, values, start=7, count=20))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_opcheck(dtype):
    anchors, directions, values = make_grid(4, 40, 3, 5, dtype)
    out = torch.empty(20, 40, dtype=dtype)
    torch.library.opcheck(ops._traversal_codes_into_trusted.default, (anchors, torch.tensor([3, 0, 39]), values, 7, 20, out))
    torch.library.opcheck(ops._direction_codes_into_trusted.default, (anchors, directions, values, 7, 20, out))


# The error table's cases for the two grid ops, except those about the data (which only the
# public ops scan): the trusted op gives the same exception and text.
GRID_CASES = [
    (entry, error) for entry, error, match, fake in SHARED_CASES
    if len(entry[2] or ()) == 6 and isinstance(entry[2][2], torch.Tensor)
    and not any(s in match for s in ("dims must lie", "unit length", "has norm"))
]


@pytest.mark.parametrize("entry, error", GRID_CASES, ids=[str(i) for i in range(len(GRID_CASES))])
def test_trusted_ops_check_shapes_like_the_public_ops(entry, error):
    _, raw, arguments = entry
    anchors, second, values, start, count, out = arguments
    trusted = ops._direction_codes_into_trusted if isinstance(arguments, DirectionArguments) else ops._traversal_codes_into_trusted
    if out is None:  # the public case has no out=: its arguments fail before out is looked at
        out = torch.empty(0)
    with pytest.raises(error) as public_error:
        raw()
    with pytest.raises(error) as trusted_error:
        trusted(anchors, second, values, start, count, out)
    assert str(trusted_error.value) == str(public_error.value)


def test_public_ops_scan_the_data_and_trusted_ops_do_not():
    anchors, directions, values = make_grid(4, 40, 3, 5)
    dims = torch.tensor([3, 0, 39])
    out = torch.empty(20, 40)
    scans = {"traversal": "aten::aminmax", "direction": "aten::linalg_vector_norm"}
    for name, second in (("traversal", dims), ("direction", directions)):
        public = getattr(ops, f"{name}_codes_into")
        trusted = getattr(ops, f"_{name}_codes_into_trusted")
        assert op_calls(lambda: public(anchors, second, values, 7, 20, out))[scans[name]] == 1
        assert op_calls(lambda: trusted(anchors, second, values, 7, 20, out))[scans[name]] == 0
        # The functional form scans once, then writes with the trusted op.
        calls = op_calls(lambda: getattr(ops, f"{name}_codes")(anchors, second, values, 7, 20))
        assert calls[scans[name]] == 1 and calls[f"latentsweep::_{name}_codes_into_trusted"] == 1


def test_the_sweep_scans_dims_once_not_per_chunk():
    """The executor writes each chunk with the trusted op: the number of range scans
    (aminmax, each a sync on CUDA) does not grow with the number of chunks."""
    decoder = torch.nn.Linear(6, 5)
    anchors = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    results, calls = [], []
    for batch_size in (3, 120):  # 40 chunks, or 1
        def sweep():
            results.append(latentsweep.traverse(decoder, anchors, steps=5, batch_size=batch_size, progress=False))
        calls.append(op_calls(sweep))
    many, one = calls
    assert many["latentsweep::_traversal_codes_into_trusted"] >= 40
    assert many["latentsweep::traversal_codes_into"] == one["latentsweep::traversal_codes_into"] == 0
    assert many["aten::aminmax"] == one["aten::aminmax"]
    torch.testing.assert_close(results[0].dim_effect, results[1].dim_effect)


def test_a_direction_sweep_scans_its_directions_once_not_per_chunk():
    """A sweep along directions writes each chunk with the trusted op too (grid_spec checked the
    directions once): the norms (each a sync on CUDA) do not grow with the number of chunks."""
    decoder = torch.nn.Linear(6, 5)
    anchors = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    directions = torch.randn(2, 6, generator=torch.Generator().manual_seed(1))
    results, calls = [], []
    for batch_size in (3, 120):  # 14 chunks, or 1
        def sweep():
            results.append(latentsweep.traverse(decoder, anchors, directions=directions, steps=5,
                                                batch_size=batch_size, progress=False))
        calls.append(op_calls(sweep))
    many, one = calls
    assert many["latentsweep::_direction_codes_into_trusted"] >= 14
    assert many["latentsweep::direction_codes_into"] == one["latentsweep::direction_codes_into"] == 0
    assert many["aten::linalg_vector_norm"] == one["aten::linalg_vector_norm"]
    torch.testing.assert_close(results[0].dim_effect, results[1].dim_effect)
