"""traversal_codes and direction_codes are differentiable: gradients reach the anchors, the
values and (for directions) the directions, equal to those of the plain-torch construction
(tests/reference.py) for every chunk, broadcast of values and dtype. The out= forms record no
graph and say so instead of leaving every gradient None."""

from __future__ import annotations

import pytest
import torch

import latentsweep
from conftest import FLOAT_DTYPES
from reference import reference_direction_codes, reference_traversal_codes

ops = torch.ops.latentsweep
A, D, K, S = 3, 6, 2, 4
DIMS = [4, 1]
# values as [S], [K, S], [A, K, S] and a [1, K, S] expanded to [A, K, S] (zero strides): each
# gets the sum over the grid entries it stands for.
VALUE_SHAPES = [(S,), (K, S), (A, K, S), (1, K, S)]
# (start, count): the whole grid, a chunk across anchors, one row, none.
CHUNKS = [(0, None), (5, 13), (A * K * S - 1, 1), (7, 0)]


def _leaf(shape, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype).requires_grad_()


def _units(device="cpu", dtype=torch.float64):
    g = torch.Generator().manual_seed(7)
    return latentsweep.unit_directions(torch.randn(K, D, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype)


def _as_grid(values):
    return values.expand(A, K, S) if values.shape == (1, K, S) else values


def _gradients(make, inputs, weights):
    for x in inputs:
        x.grad = None
    (make(*inputs).double() * weights).sum().backward()
    return [x.grad for x in inputs]


@pytest.mark.parametrize("value_shape", VALUE_SHAPES)
@pytest.mark.parametrize("start, count", CHUNKS)
def test_traversal_gradients_match_the_torch_construction(device, value_shape, start, count):
    anchors, values = _leaf((A, D), device=device), _leaf(value_shape, device=device, seed=1)
    rows = A * K * S - start if count is None else count
    weights = torch.randn(rows, D, dtype=torch.float64, device=device)
    ours = _gradients(lambda a, v: latentsweep.traversal_codes(a, DIMS, _as_grid(v), start=start, count=count), (anchors, values), weights)
    torch_ = _gradients(lambda a, v: reference_traversal_codes(a, DIMS, _as_grid(v), start=start, count=count), (anchors, values), weights)
    for mine, theirs in zip(ours, torch_):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)  # the same terms, summed in another order


@pytest.mark.parametrize("value_shape", VALUE_SHAPES)
@pytest.mark.parametrize("start, count", CHUNKS)
def test_direction_gradients_match_the_torch_construction(device, value_shape, start, count):
    anchors, values = _leaf((A, D), device=device), _leaf(value_shape, device=device, seed=1)
    directions = _units(device).requires_grad_()
    rows = A * K * S - start if count is None else count
    weights = torch.randn(rows, D, dtype=torch.float64, device=device)
    inputs = (anchors, directions, values)
    ours = _gradients(lambda a, u, v: latentsweep.direction_codes(a, u, _as_grid(v), start=start, count=count), inputs, weights)
    torch_ = _gradients(lambda a, u, v: reference_direction_codes(a, u, _as_grid(v), start=start, count=count), inputs, weights)
    for mine, theirs in zip(ours, torch_):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)


def test_gradcheck_and_gradgradcheck(device):
    """Finite differences of the public functions (directions held fixed: a perturbed direction
    is no longer a unit vector, which the op refuses)."""
    anchors, values = _leaf((A, D), device=device), _leaf((K, S), device=device, seed=1)
    directions = _units(device)
    traversal = lambda a, v: latentsweep.traversal_codes(a, DIMS, v, start=2, count=15)  # noqa: E731
    along = lambda a, v: latentsweep.direction_codes(a, directions, v, start=2, count=15)  # noqa: E731
    for fn in (traversal, along):
        assert torch.autograd.gradcheck(fn, (anchors, values))
        assert torch.autograd.gradgradcheck(fn, (anchors, values))


def test_chunked_gradients_add_up_to_the_whole_grid():
    """The gradient is linear in the rows: chunks written separately give the whole grid's."""
    anchors, values = _leaf((A, D)), _leaf((A, K, S), seed=1)
    directions = _units().requires_grad_()
    weights = torch.randn(A * K * S, D, dtype=torch.float64)
    for make in (lambda s, c: latentsweep.traversal_codes(anchors, DIMS, values, start=s, count=c),
                 lambda s, c: latentsweep.direction_codes(anchors, directions, values, start=s, count=c)):
        make(0, None).mul(weights).sum().backward()
        whole = [x.grad.clone() for x in (anchors, directions, values) if x.grad is not None]
        for x in (anchors, directions, values):
            x.grad = None
        for s in range(0, A * K * S, 5):
            c = min(5, A * K * S - s)
            make(s, c).mul(weights[s : s + c]).sum().backward()
        parts = [x.grad for x in (anchors, directions, values) if x.grad is not None]
        for a, b in zip(whole, parts):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        for x in (anchors, directions, values):
            x.grad = None


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_gradients_in_every_dtype(device, dtype):
    """Low precision accumulates in float32 and returns gradients in the inputs' dtype."""
    anchors, values = _leaf((A, D), dtype, device), _leaf((S,), dtype, device, seed=1)
    directions = _units(device, dtype).requires_grad_()
    weights = torch.randn(A * K * S, D, dtype=torch.float64, device=device)
    tol = {torch.float16: 1e-2, torch.bfloat16: 5e-2}.get(dtype, 1e-5)
    for make, reference, inputs in (
        (lambda a, v: latentsweep.traversal_codes(a, DIMS, v), lambda a, v: reference_traversal_codes(a, DIMS, v), (anchors, values)),
        (latentsweep.direction_codes, reference_direction_codes, (anchors, directions, values)),
    ):
        ours = _gradients(make, inputs, weights)
        assert [g.dtype for g in ours] == [dtype] * len(inputs)
        exact = [x.detach().double().requires_grad_() for x in inputs]
        for mine, theirs in zip(ours, _gradients(reference, exact, weights)):
            torch.testing.assert_close(mine.double(), theirs, rtol=tol, atol=tol * 4)


def test_only_inputs_that_require_grad_get_one():
    anchors = _leaf((A, D))
    values = torch.zeros(S, dtype=torch.float64)
    latentsweep.traversal_codes(anchors, DIMS, values).sum().backward()
    assert anchors.grad is not None and values.grad is None
    assert latentsweep.traversal_codes(anchors.detach(), DIMS, values).grad_fn is None
    assert latentsweep.direction_codes(anchors.detach(), _units(), values).grad_fn is None


def test_out_forms_refuse_inputs_that_require_grad(device):
    anchors = _leaf((A, D), device=device)
    values = torch.zeros(S, dtype=torch.float64, device=device)
    out = torch.empty(A * K * S, D, dtype=torch.float64, device=device)
    with pytest.raises(ValueError, match=r"traversal_codes: out= records no gradients, and anchors requires grad"):
        latentsweep.traversal_codes(anchors, DIMS, values, out=out)
    with pytest.raises(ValueError, match=r"direction_codes: out= records no gradients, and directions requires grad"):
        latentsweep.direction_codes(anchors.detach(), _units(device).requires_grad_(), values, out=out)
    with pytest.raises(ValueError, match=r"out requires grad"):
        ops.traversal_codes_into(anchors.detach(), torch.tensor(DIMS, device=device), values, 0, None, out.requires_grad_())
    with torch.no_grad():  # as torch's out= functions: fine without a graph
        latentsweep.traversal_codes(anchors, DIMS, values, out=out.detach())


def test_out_forms_bump_the_version_a_saved_graph_checks():
    out = torch.empty(A * K * S, D, dtype=torch.float64)
    version = out._version
    latentsweep.traversal_codes(torch.zeros(A, D, dtype=torch.float64), DIMS, torch.zeros(S, dtype=torch.float64), out=out)
    assert out._version > version


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_opcheck_with_inputs_that_require_grad(device, dtype):
    anchors, values = _leaf((A, D), dtype, device), _leaf((A, K, S), dtype, device, seed=1)
    dims = torch.tensor(DIMS, device=device)
    torch.library.opcheck(ops.traversal_codes.default, (anchors, dims, values, 5, 13))
    torch.library.opcheck(ops.direction_codes.default, (anchors, _units(device, dtype).requires_grad_(), values, 5, 13))
