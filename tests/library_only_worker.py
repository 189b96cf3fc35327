"""Compiles every latentsweep op in a process that never imports latentsweep: it only loads the
compiled library (``torch.ops.load_library``), as a user of ``torch.ops.latentsweep.*`` may.
The ops' fake kernels are their C++ Meta kernels, so torch.compile(fullgraph=True) must trace
them, with static and dynamic shapes, and give what eager gives.

    python library_only_worker.py PATH/TO/_C.so

Prints "ok" at the end; exits 3 (after the aot_eager checks passed) when inductor has no
working C++ compiler here.
"""

from __future__ import annotations

import sys

import torch
from torch._dynamo.testing import CompileCounterWithBackend

ops = None  # torch.ops.latentsweep once the library is loaded


def grid(num_anchors, latent, num_dims, steps, seed):
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randn(num_anchors, latent, generator=g)
    dims = (torch.arange(num_dims) * 3) % latent
    values = torch.randn(num_anchors, num_dims, steps, generator=g)
    directions = torch.nn.functional.normalize(torch.randn(num_dims, latent, generator=g, dtype=torch.float64), dim=1)
    return anchors, dims, values, directions.float()


# Each case: a function of tensors only (sizes come from the tensors' shapes, so that they are
# symbols under dynamic=True) and its inputs for a grid shape (A, D, K, S).
def sample(mu, logvar, samples):
    return ops.sample(mu, logvar, samples.shape[0], 7, 1, 2) * 2


def sample_prior(like):
    return ops.sample_prior(like.shape[0], like.shape[1], 3, 4, dtype=torch.float64) + 1


def sample_prior_(like):
    out = torch.empty_like(like)
    ops.sample_prior_(out, 3, 4)
    return out


def traversal_codes(anchors, dims, values):
    return ops.traversal_codes(anchors, dims, values, 1, None) + 0


def traversal_codes_into(anchors, dims, values):
    rows = anchors.shape[0] * dims.shape[0] * values.shape[2] - 1
    out = anchors.new_empty(rows, anchors.shape[1])
    ops.traversal_codes_into(anchors, dims, values, 1, None, out)
    return out


def traversal_codes_into_trusted(anchors, dims, values):
    out = anchors.new_empty(4, anchors.shape[1])
    ops._traversal_codes_into_trusted(anchors, dims, values, 2, 4, out)
    return out


def direction_codes(anchors, directions, values):
    return ops.direction_codes(anchors, directions, values[0], 2, None) + 0


def direction_codes_into(anchors, directions, values):
    out = anchors.new_empty(3, anchors.shape[1])
    ops.direction_codes_into(anchors, directions, values, 2, 3, out)
    return out


def direction_codes_into_trusted(anchors, directions, values):
    out = anchors.new_empty(3, anchors.shape[1])
    ops._direction_codes_into_trusted(anchors, directions, values, 1, 3, out)
    return out


def path_codes_into_trusted(anchors, directions, values):
    """Rows 1 to 4 of the paths from the anchors to the anchors reversed (weights and divisors:
    any float64 of their shapes)."""
    start, end = anchors.double(), anchors.flip(0).double()
    weights = torch.stack((values[:, 0], values[:, -1]), dim=1).double()  # [A, 2, S]
    out = start.new_empty(4, start.shape[1])
    ops._path_codes_into_trusted(start, end, weights, anchors[:, 0].double().abs() + 1, 1, 4, out)
    return out


def sample_loss(mu, logvar, samples):
    """Differentiated: the backward (autograd's kernel in C++) traces through the Meta kernel."""
    z = ops.sample(mu, logvar, samples.shape[0], 5, 0, 0)
    return (z * z).sum()


def grid_loss(anchors, directions, values):
    """Differentiated: both grid ops' C++ autograd under tracing, for a chunk of the grid."""
    dims = (torch.arange(directions.shape[0]) * 3) % anchors.shape[1]
    along = ops.direction_codes(anchors, directions.detach(), values, 2, None)
    return (ops.traversal_codes(anchors, dims, values, 1, None) ** 2).sum() + (along**2).sum()


def inputs(case, num_anchors, latent, num_dims, steps):
    anchors, dims, values, directions = grid(num_anchors, latent, num_dims, steps, seed=latent)
    if case is sample:
        return anchors, anchors.flip(0) * 0.1, torch.empty(num_dims)  # mu, logvar, n = K
    if case is sample_loss:
        logvar = anchors.flip(0) * 0.1
        return anchors.requires_grad_(), logvar.requires_grad_(), torch.empty(num_dims)
    if case in (sample_prior, sample_prior_):
        return (anchors,)
    if case is grid_loss:
        return anchors.requires_grad_(), directions, values.requires_grad_()
    if case in (traversal_codes, traversal_codes_into, traversal_codes_into_trusted):
        return anchors, dims, values
    return anchors, directions, values


CASES = [
    sample, sample_prior, sample_prior_, traversal_codes, traversal_codes_into,
    traversal_codes_into_trusted, direction_codes, direction_codes_into,
    direction_codes_into_trusted, path_codes_into_trusted, sample_loss, grid_loss,
]
SHAPES = [(3, 6, 2, 4), (5, 7, 3, 5)]  # sizes >= 2: 0 and 1 are always specialised


def check(name, got, expected):
    got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype, (name, g.shape, e.shape)
        torch.testing.assert_close(g, e, rtol=0, atol=0, msg=name)


def compile_each_op() -> None:
    for case in CASES:
        for dynamic in (False, True):
            torch._dynamo.reset()
            counter = CompileCounterWithBackend("aot_eager")
            compiled = torch.compile(case, backend=counter, fullgraph=True, dynamic=dynamic)
            for shape in SHAPES:
                args = inputs(case, *shape)
                name = f"{case.__name__} dynamic={dynamic} {shape}"
                got, expected = compiled(*args), case(*args)
                check(name, got, expected)
                if got.requires_grad:
                    leaves = [a for a in args if a.requires_grad]
                    check(name, torch.autograd.grad(got, leaves), torch.autograd.grad(expected, leaves))
            if dynamic:  # one graph for both shapes: the Meta kernels kept the sizes symbolic
                assert counter.frame_count == 1, (case.__name__, counter.frame_count)


def all_ops(anchors, dims, values, directions, mu, logvar, samples):
    return (
        sample(mu, logvar, samples), sample_prior(anchors), sample_prior_(anchors),
        traversal_codes(anchors, dims, values), traversal_codes_into(anchors, dims, values),
        direction_codes(anchors, directions, values), direction_codes_into(anchors, directions, values),
    )


def compile_with_inductor() -> None:
    torch._dynamo.reset()
    compiled = torch.compile(all_ops, fullgraph=True, dynamic=True)
    for shape in SHAPES:
        anchors, dims, values, directions = grid(*shape, seed=shape[1])
        mu, logvar, samples = inputs(sample, *shape)
        args = (anchors, dims, values, directions, mu, logvar, samples)
        try:
            got = compiled(*args)
        except Exception as error:
            message = str(error)
            if any(s in message for s in ("InvalidCxxCompiler", "No working C++ compiler", "CppCompileError")):
                print(f"inductor unavailable: {message[:200]}")
                sys.exit(3)
            raise
        check(f"inductor {shape}", got, all_ops(*args))


def main(library: str) -> None:
    global ops
    torch.ops.load_library(library)
    ops = torch.ops.latentsweep
    compile_each_op()
    compile_with_inductor()
    assert not [m for m in sys.modules if m.startswith("latentsweep")], "latentsweep was imported"
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
