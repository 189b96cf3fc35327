"""The interpolation's path rows written by the compiled ``_path_codes_into_trusted``
(cpp/ops/path_codes.cpp, cpp/latentsweep/path_grid.h) through ``PathWriter``: bit for bit the rows
of path_codes over all paths (arcs' revision 2), and at arcs' revision 1 the rows the Python
writer wrote before (path_codes over the chunk's paths, then ``out.copy_``), for every dtype,
chunk and degenerate path, so stores written before resume unchanged; and the op's argument
checks."""

from __future__ import annotations

import random

import pytest
import torch

import latentsweep as ls
from latentsweep import interpolation
from latentsweep.interpolation import PathWriter
from latentsweep.paths import _angle, _angle_of, _angle_terms, path_codes, path_weights

ops = torch.ops.latentsweep
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}


class PythonPathWriter(PathWriter):
    """The writer before the compiled op (the reference): path_codes over the paths the rows
    touch, rounded by out.copy_. The identity of arcs' revision 1 (per chunk), so a store it
    began resumes with PathWriter at that revision."""

    def __init__(self, start, end, steps, path, arcs_revision=1):  # (whatever a sweep asks)
        super().__init__(start, end, steps, path, arcs_revision=1)

    def __call__(self, first: int, count: int, out: torch.Tensor) -> None:
        start, end = self.start.to(out.device), self.end.to(out.device)
        low, high = first // self.steps, -(-(first + count) // self.steps)
        codes = path_codes(start[low:high], end[low:high], self.steps, self.path).flatten(0, 1)
        offset = first - low * self.steps
        out.copy_(codes[offset : offset + count])


def bits(t: torch.Tensor) -> torch.Tensor:
    """The bit patterns (torch.equal calls -0.0 and 0.0 equal, NaN and NaN not)."""
    return t.contiguous().view(BITS[t.dtype])


def endpoints(paths: int, latent: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random endpoints of mixed scales, with the degenerate paths first: equal, opposite, a zero
    start, a zero end, parallel (b = 3a), nearly parallel, nearly opposite, and (float64) norms of
    1e-170 and 1e200."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(paths, latent, generator=g, dtype=torch.float64)
    b = torch.randn(paths, latent, generator=g, dtype=torch.float64)
    scale = {torch.float64: 1e3, torch.float32: 1e3, torch.float16: 30.0, torch.bfloat16: 30.0}[dtype]
    a *= torch.exp(torch.empty(paths, 1, dtype=torch.float64).uniform_(-3, 3, generator=g)).clamp(max=scale)
    special = [lambda x: (x, x), lambda x: (x, -x), lambda x: (0 * x, x), lambda x: (x, 0 * x), lambda x: (x, 3 * x),
               lambda x: (x, x + 1e-9 * torch.roll(x, 1)), lambda x: (x, -x + 1e-9 * torch.roll(x, 1))]
    if dtype == torch.float64:
        special += [lambda x: (1e-170 * x, 1e-170 * torch.roll(x, 1)), lambda x: (1e200 * x, 1e200 * torch.roll(x, 1)),
                    lambda x: (1e-170 * x, 1e200 * torch.roll(x, 1))]
    for p, make in enumerate(special[:paths]):
        a[p], b[p] = make(a[p])
    return a.to(dtype), b.to(dtype)


def both_writers(start, end, steps, path, first, count):
    expected = torch.full((count, start.shape[1]), float("nan"), dtype=start.dtype)
    got = torch.full_like(expected, float("nan"))
    PythonPathWriter(start, end, steps, path)(first, count, expected)
    PathWriter(start, end, steps, path, arcs_revision=1)(first, count, got)
    return got, expected


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("path", ["linear", "slerp"])
@pytest.mark.parametrize("seed", range(6))
def test_rows_are_the_python_writers_bit_for_bit(dtype, path, seed):
    """Random grids and chunks, including chunks that start and end mid-path, one row, no rows,
    the first and last steps, and the whole grid."""
    rng = random.Random(seed)
    paths, steps, latent = rng.randint(1, 40), rng.randint(2, 12), rng.choice([1, 2, 3, 7, 8, 33, 64])
    start, end = endpoints(paths, latent, dtype, seed)
    rows = paths * steps
    chunks = [(0, rows), (0, 1), (rows - 1, 1), (rows, 0), (steps - 1, 2), (1, max(rows - 2, 0))]
    chunks += [(first, rng.randint(0, rows - first)) for first in (rng.randint(0, rows) for _ in range(12))]
    for first, count in chunks:
        got, expected = both_writers(start, end, steps, path, first, count)
        assert torch.equal(bits(got), bits(expected)), (first, count)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("path", ["linear", "slerp"])
@pytest.mark.parametrize("chunk", [1, 5, 21, 64, 1000, 4096])
def test_one_writer_over_a_chunked_grid_writes_the_python_writers_rows(dtype, path, chunk):
    """A sweep's writer at arcs' revision 1: one PathWriter (its per-device tensors computed once)
    over every chunk, against the Python writer over the same chunks. (An arc's theta computed
    once for all paths differs in the last bit from the chunks' for some paths: float64 rows show
    it.)"""
    start, end = endpoints(300, 16, dtype, 7)
    steps = 21
    mine = PathWriter(start, end, steps, path, arcs_revision=1)
    reference = PythonPathWriter(start, end, steps, path)
    for first in range(0, 300 * steps, chunk):
        count = min(chunk, 300 * steps - first)
        got, expected = torch.empty(count, 16, dtype=dtype), torch.empty(count, 16, dtype=dtype)
        mine(first, count, got)
        reference(first, count, expected)
        assert torch.equal(bits(got), bits(expected)), first


@pytest.mark.parametrize("paths, latent", [(1, 100_000), (3, 40_000), (5000, 16), (40_000, 3), (2, 1), (300, 333)])
def test_the_angle_terms_of_all_paths_are_those_of_any_slice(paths, latent):
    """What the writer computes once (the norms of _angle) has the bits of the same terms over any
    slice of paths, as path_codes computed them per chunk: a row-wise reduction, also where torch
    parallelises (many rows, or one long row). (theta itself is computed per chunk: torch's atan2
    rounds a tensor's last elements, its vectorised loop's tail, by another routine.)"""
    g = torch.Generator().manual_seed(paths)
    a = torch.randn(paths, 1, latent, generator=g, dtype=torch.float64) * 1e3
    b = torch.randn(paths, 1, latent, generator=g, dtype=torch.float64)
    b[0] = -a[0]
    whole = _angle_terms(a, b)
    rng = random.Random(latent)
    slices = [(0, 1), (0, paths), (paths - 1, paths)]
    slices += [sorted((rng.randint(0, paths), rng.randint(0, paths))) for _ in range(6)]
    for low, high in slices:
        for mine, theirs in zip(whole, _angle_terms(a[low:high], b[low:high])):
            assert torch.equal(mine[low:high], theirs), (low, high)
        # and theta over the slice, from those terms, is _angle's over the slice
        for mine, theirs in zip(_angle_of(*(term[low:high] for term in whole)), _angle(a[low:high], b[low:high])):
            assert torch.equal(bits(mine), bits(theirs)), (low, high)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rounding_into_out_is_torchs(dtype):
    """Values at and around the half-way points between neighbours of each dtype (for float16 and
    bfloat16 also float32's, which torch's double -> half rounds through), subnormals and values
    beyond the largest: the op's rounding is torch's double -> dtype copy. Step 1 of a 3-step path
    with weights (1, 0) and divisor 1 is start exactly, rounded once into out."""
    info = torch.finfo(dtype)
    g = torch.Generator().manual_seed(0)
    grid = torch.randn(500, generator=g, dtype=torch.float64).to(dtype).double()
    grid = torch.cat([grid, torch.tensor([info.tiny, info.tiny * info.eps, info.max, 1.0, 0.0], dtype=torch.float64)])
    up = torch.nextafter(grid.to(dtype), torch.tensor(float("inf"), dtype=dtype)).double()
    halfway = (grid + up) / 2
    f32_halfway = halfway.float().double()
    values = [halfway, torch.nextafter(halfway, grid), torch.nextafter(halfway, up), f32_halfway,
              torch.nextafter(f32_halfway, grid), torch.nextafter(f32_halfway, up), -halfway,
              torch.tensor([info.max * 1.5, -info.max * 1.5, 1e-300, -1e-300, 2.0**-1074, -0.0], dtype=torch.float64)]
    values = torch.cat([v.flatten() for v in values])[:, None]
    values = values[torch.isfinite(values[:, 0])]
    num = len(values)
    weights = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64).expand(num, 2, 3)
    out = torch.empty(num, 1, dtype=dtype)
    for row in range(num):  # (one row per path: step 1)
        ops._path_codes_into_trusted(values, torch.zeros_like(values), weights, torch.ones(num, dtype=torch.float64),
                                     3 * row + 1, 1, out[row : row + 1])
    zero = torch.zeros_like(values)
    assert torch.equal(bits(out), bits(((1.0 * values + 0.0 * zero) / 1.0).to(dtype)))  # (-0.0 + 0.0 is 0.0)


def test_the_line_is_the_torch_expression_and_the_ends_are_exact():
    """Linear rows are (1 - t) a + t b of torch (each product rounded, then the sum: no FMA), and
    steps 0 and S - 1 are the endpoints even where the formula would not give them."""
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(50, 9, generator=g, dtype=torch.float64), torch.randn(50, 9, generator=g, dtype=torch.float64)
    b[0] = 1e308
    a[0] = -1e308  # (1 - t) a + t b overflows nowhere; the ends are a and b
    out = torch.empty(50 * 7, 9, dtype=torch.float64)
    ops._path_codes_into_trusted(a, b, *path_weights(50, 7, device=torch.device("cpu")), 0, 350, out)
    t = torch.linspace(0, 1, 7, dtype=torch.float64)[None, :, None]
    expected = (1 - t) * a[:, None] + t * b[:, None]
    expected[:, 0], expected[:, -1] = a, b
    assert torch.equal(bits(out), bits(expected.flatten(0, 1)))


# ---------------------------------------------------------------- a store begun before resumes unchanged


class Decoder(torch.nn.Module):
    """A float64 MLP that takes codes of any dtype and keeps every batch it was given."""

    def __init__(self, latent: int):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(latent, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
        self.seen: list[torch.Tensor] = []

    def forward(self, z):
        self.seen.append(z.clone())
        return self.net(z.double())


@pytest.mark.parametrize("path", ["linear", "slerp"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_a_store_begun_by_the_python_writer_resumes_with_the_same_bits(tmp_path, monkeypatch, path, dtype):
    start, end = endpoints(9, 6, dtype, 11)
    kwargs = dict(steps=7, path=path, batch_size=5, progress=False)
    decoder = Decoder(6)
    store = tmp_path / "s.zarr"
    opposite = pytest.warns(UserWarning, match="opposite") if path == "slerp" else _nothing()
    with monkeypatch.context() as patched:
        patched.setattr(interpolation, "PathWriter", PythonPathWriter)
        with opposite:
            uninterrupted = ls.interpolate(decoder, start, end, **kwargs)
        python_codes = list(decoder.seen)  # every batch the decoder got
        decoder.seen.clear()

        def crash_on_the_fourth_batch(module, inputs, output):
            if len(module.seen) == 4:
                raise RuntimeError("crash")

        hook = decoder.register_forward_hook(crash_on_the_fourth_batch)
        with pytest.raises(RuntimeError, match="crash"), \
                (pytest.warns(UserWarning, match="opposite") if path == "slerp" else _nothing()):
            ls.interpolate(decoder, start, end, out=store, **kwargs)
        hook.remove()
    assert not ls.sweep_status(store).complete
    decoder.seen.clear()
    with pytest.warns(UserWarning, match="opposite") if path == "slerp" else _nothing():
        resumed = ls.interpolate(decoder, start, end, out=store, resume=True, **kwargs)
    assert decoder.seen  # the missing units, their rows written by the compiled writer
    decoder.seen.clear()
    with pytest.warns(UserWarning, match="opposite") if path == "slerp" else _nothing(), \
            monkeypatch.context() as patched:
        patched.setattr(interpolation, "ARCS_REVISION", 1)  # (the compiled writer as that store began)
        compiled = ls.interpolate(decoder, start, end, **kwargs)
    assert len(decoder.seen) == len(python_codes)
    for mine, theirs in zip(decoder.seen, python_codes):
        assert mine.dtype == theirs.dtype and torch.equal(bits(mine), bits(theirs))  # (widened exactly)
    for result in (resumed, ls.open_sweep(store), compiled):
        assert torch.equal(result.sweep.effect, uninterrupted.sweep.effect)
        assert torch.equal(result.change, uninterrupted.change)
        assert torch.equal(torch.as_tensor(result.outputs), uninterrupted.outputs)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------- the op's checks

F8 = dict(dtype=torch.float64)
P2 = torch.zeros(2, 3, **F8)  # [P=2, D=3]
W = torch.zeros(2, 2, 4, **F8)  # [P, 2, S=4]: 8 rows
DIV = torch.ones(2, **F8)
OUT = torch.zeros(8, 3)
BUF = torch.zeros(40, 3, **F8)

BAD = [
    ((P2.float(), P2, W, DIV, 0, 8, OUT), TypeError, r"interpolate: start must be torch.float64, got torch.float32"),
    ((P2, P2.half(), W, DIV, 0, 8, OUT), TypeError, r"end must be torch.float64, got torch.float16"),
    ((P2, P2, W.float(), DIV, 0, 8, OUT), TypeError, r"weights must be torch.float64"),
    ((P2, P2, W, DIV.long(), 0, 8, OUT), TypeError, r"divisors must be torch.float64, got torch.int64"),
    ((P2[0], P2[0], W, DIV, 0, 8, OUT), ValueError, r"start must be 2-D \[P, D\], got shape \[3\]"),
    ((P2, P2[:1], W, DIV, 0, 8, OUT), ValueError, r"end must have start's shape \[2, 3\], got \[1, 3\]"),
    ((P2, P2, W[:1], DIV, 0, 8, OUT), ValueError, r"weights must be \[P, 2, S\] with P = 2 and S >= 2, got shape \[1, 2, 4\]"),
    ((P2, P2, W[:, :1], DIV, 0, 8, OUT), ValueError, r"weights must be \[P, 2, S\].*\[2, 1, 4\]"),
    ((P2, P2, W[..., :1], DIV, 0, 2, OUT[:2]), ValueError, r"weights must be \[P, 2, S\].*\[2, 2, 1\]"),
    ((P2, P2, W[0], DIV, 0, 8, OUT), ValueError, r"weights must be \[P, 2, S\]"),
    ((P2, P2, W, DIV[:1], 0, 8, OUT), ValueError, r"divisors must be \[P\] with P = 2, got shape \[1\]"),
    ((P2, P2, W, DIV.to("meta"), 0, 8, OUT), ValueError, r"all tensors must be on one device, got start on cpu, end on cpu, weights on cpu, divisors on meta"),
    ((P2, P2, W, DIV, -1, 1, OUT[:1]), ValueError, r"first must be >= 0, got -1"),
    ((P2, P2, W, DIV, 9, 0, OUT[:0]), ValueError, r"first must be <= 8 \(P \* S\), got 9"),
    ((P2, P2, W, DIV, 2**62, 1, OUT[:1]), ValueError, r"first must be <= 8"),
    ((P2, P2, W, DIV, 0, -1, OUT[:0]), ValueError, r"count must be >= 0, got -1"),
    ((P2, P2, W, DIV, 5, 4, OUT[:4]), ValueError, r"count must be <= 3 \(P \* S - first\), got 4"),
    ((P2, P2, W, DIV, 0, 2**62, OUT), ValueError, r"count must be <= 8"),
    ((P2, P2, W, DIV, 0, 8, OUT[:7]), ValueError, r"out must be \[8, 3\] on cpu, got \[7, 3\] on cpu"),
    ((P2, P2, W, DIV, 0, 8, torch.zeros(8, 4)), ValueError, r"out must be \[8, 3\]"),
    ((P2, P2, W, DIV, 0, 8, torch.zeros(8, 3, 1)), ValueError, r"out must be \[8, 3\]"),
    ((P2, P2, W, DIV, 0, 8, torch.zeros(8, 3, device="meta")), ValueError, r"out must be \[8, 3\] on cpu, got \[8, 3\] on meta"),
    ((P2, P2, W, DIV, 0, 8, torch.zeros(8, 3, dtype=torch.int32)), TypeError, r"out must be float16, bfloat16, float32 or float64, got torch.int32"),
    ((P2, P2, W, DIV, 0, 8, torch.zeros(3, 8).T), ValueError, r"out must be contiguous"),
    ((BUF[:2], P2, W, DIV, 0, 8, BUF[1:9]), ValueError, r"out shares memory with start; pass a separate buffer"),
    ((P2, BUF[30:32], W, DIV, 0, 8, BUF[24:32]), ValueError, r"out shares memory with end"),
    # count * D values of 8 bytes (the 16-bit types' float64 buffer) overflow int64 (zero strides: nothing allocated).
    ((P2[:1, :1].expand(1, 2**62), P2[:1, :1].expand(1, 2**62), W[:1], DIV[:1], 0, 4, OUT[:0]), ValueError,
     r"count \* D = 4 \* 4611686018427387904 values, whose size in bytes overflows int64"),
]


@pytest.mark.parametrize("args, error, match", BAD, ids=[case[2][:50] for case in BAD])
def test_bad_arguments_raise_a_named_error_not_a_crash(args, error, match):
    guard = OUT.clone()
    with pytest.raises(error, match=match) as raised:
        ops._path_codes_into_trusted(*args)
    assert str(raised.value).startswith("latentsweep.interpolate: ") and "\n" not in str(raised.value)
    assert torch.equal(OUT, guard)  # nothing written


@pytest.mark.parametrize("path", ["linear", "slerp"])
@pytest.mark.parametrize("first, count", [(-8, 4), (-1, 1), (-3, 10), (9, 0), (12, 1), (5, 4), (0, -1), (0, 9)])
def test_a_writer_refuses_rows_outside_its_grid(path, first, count):
    """Rows outside the P * S rows are a ValueError from the op, never rows of other paths (the
    Python writer's slices start[low:high] read negative bounds from the end: rows -8 to -5 of
    2 paths of 4 steps were path 0's) nor a write out of bounds."""
    start, end = endpoints(2, 3, torch.float32, 1)
    out = torch.full((max(count, 0), 3), 7.0)
    with pytest.raises(ValueError, match=r"latentsweep.interpolate: (first|count) must be"):
        PathWriter(start, end, 4, path)(first, count, out)
    assert (out == 7).all()


@pytest.mark.parametrize("args, error, match", [c for c in BAD if "shares memory" not in c[2]],
                         ids=[case[2][:50] for case in BAD if "shares memory" not in case[2]])
def test_the_meta_kernel_raises_the_same_errors(args, error, match):
    """FakeTensorMode (torch.compile) runs the same checks: same exception, same text."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with pytest.raises(error) as real:
        ops._path_codes_into_trusted(*args)
    mode = FakeTensorMode(allow_non_fake_inputs=False)
    try:
        fakes = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
    except Exception:  # (a sparse tensor has no fake here: nothing to compare)
        pytest.skip("no fake tensor of this input")
    with mode, pytest.raises(error) as faked:
        ops._path_codes_into_trusted(*fakes)
    assert str(faked.value) == str(real.value)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_opcheck(dtype, path):
    """The schema (out mutated, nothing returned), the Meta kernel's shapes and fake tensors
    agree with the kernel (torch.library.opcheck)."""
    start, end = (x.double() for x in endpoints(6, 5, dtype, 4))
    terms = _angle_terms(start[:, None], end[:, None]) if path == "slerp" else ()
    weights = path_weights(6, 4, *terms, device=start.device)
    out = torch.empty(10, 5, dtype=dtype)
    torch.library.opcheck(ops._path_codes_into_trusted.default, (start, end, *weights, 3, 10, out))


def test_the_op_compiles_with_dynamic_shapes():
    """The Meta kernel lets torch.compile trace the op (fullgraph, dynamic sizes) with the eager rows."""
    start, end = endpoints(6, 5, torch.float64, 2)

    def rows(start, end, weights, divisors, out):
        ops._path_codes_into_trusted(start, end, weights, divisors, 3, out.shape[0], out)
        return out

    weights = path_weights(6, 4, *_angle_terms(start[:, None], end[:, None]))
    eager = rows(start, end, *weights, torch.empty(10, 5, dtype=torch.float64))
    compiled = torch.compile(rows, fullgraph=True, dynamic=True, backend="eager")
    assert torch.equal(compiled(start, end, *weights, torch.empty(10, 5, dtype=torch.float64)), eager)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_cuda_rows_are_the_python_writers_on_cuda(dtype, path):
    start, end = endpoints(37, 33, dtype, 5)
    start, end = start.cuda(), end.cuda()
    steps = 9
    mine, reference = PathWriter(start, end, steps, path, arcs_revision=1), PythonPathWriter(start, end, steps, path)
    for chunk in (1, 7, 64, 333):
        for first in range(0, 37 * steps, chunk):
            count = min(chunk, 37 * steps - first)
            got = torch.empty(count, 33, dtype=dtype, device="cuda")
            expected = torch.empty_like(got)
            mine(first, count, got)
            reference(first, count, expected)
            assert torch.equal(bits(got.cpu()), bits(expected.cpu())), (chunk, first)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_cuda_rows_at_revision_2_are_path_codes_on_cuda(dtype, path):
    """The sweep's default writer (arcs' revision 2) on CUDA: path_codes of all paths on CUDA,
    bit for bit, whatever the chunks."""
    start, end = endpoints(37, 33, dtype, 5)
    start, end = start.cuda(), end.cuda()
    steps = 9
    expected = torch.empty(37 * steps, 33, dtype=dtype, device="cuda")
    expected.copy_(path_codes(start, end, steps, path).flatten(0, 1))
    for chunk in (1, 7, 64, 333):
        written = torch.full_like(expected, float("nan"))
        writer = PathWriter(start, end, steps, path)
        for first in range(0, 37 * steps, chunk):
            count = min(chunk, 37 * steps - first)
            writer(first, count, written[first : first + count])
        assert torch.equal(bits(written.cpu()), bits(expected.cpu())), chunk


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_cuda_kernel_writes_the_cpu_kernels_rows(dtype, path):
    """The op alone, the same float64 inputs on both devices (weights computed on the CPU, so
    torch's own CUDA math is not in the comparison): the CUDA kernel's rows are the CPU kernel's
    bit for bit (both built without fused multiply-adds), for chunks that start and end
    mid-path, with a line's expanded (stride 0) weights and an arc's."""
    start, end = (x.double() for x in endpoints(41, 19, torch.float64, 3))
    steps = 7
    weights = path_weights(41, steps, *_angle_terms(start[:, None], end[:, None])) if path == "slerp" else \
        path_weights(41, steps)
    rows = 41 * steps
    for first, count in [(0, rows), (3, 1), (5, 40), (steps - 1, 2), (rows - 9, 9), (rows, 0)]:
        cpu = torch.full((count, 19), float("nan"), dtype=dtype)
        ops._path_codes_into_trusted(start, end, *weights, first, count, cpu)
        gpu = torch.full((count, 19), float("nan"), dtype=dtype, device="cuda")
        ops._path_codes_into_trusted(start.cuda(), end.cuda(), *(w.cuda() for w in weights), first, count, gpu)
        assert torch.equal(bits(gpu.cpu()), bits(cpu)), (first, count)


def chunk_by_chunk(writer: PathWriter, rows: int, latent: int, chunk: int, dtype=torch.float64) -> torch.Tensor:
    written = torch.empty(rows, latent, dtype=dtype)
    for first in range(0, rows, chunk):
        count = min(chunk, rows - first)
        writer(first, count, written[first : first + count])
    return written


@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_interpolation_codes_are_the_rows_written(path):
    """Interpolation.codes recomputes the paths over all P at once. At arcs' revision 1 the sweep
    computed an arc's theta chunk by chunk, and torch's atan2 rounds a vector loop's tail
    differently, so a float64 slerp's rows differed in the last bit; at revision 2 the weights
    of all paths are computed once, and the rows are the codes bit for bit."""
    g = torch.Generator().manual_seed(0)
    start, end = (torch.randn(1000, 8, generator=g, dtype=torch.float64) for _ in range(2))
    codes = ls.interpolation_codes(start, end, steps=11, path=path).reshape(-1, 8)
    written = chunk_by_chunk(PathWriter(start, end, 11, path), 1000 * 11, 8, 256)
    assert torch.equal(bits(codes), bits(written))
    per_chunk = chunk_by_chunk(PathWriter(start, end, 11, path, arcs_revision=1), 1000 * 11, 8, 256)
    if path == "linear":
        assert torch.equal(bits(codes), bits(per_chunk))
    else:
        assert not torch.equal(bits(codes), bits(per_chunk))  # (what revision 2 mends)
        torch.testing.assert_close(codes, per_chunk, rtol=4 * torch.finfo(torch.float64).eps, atol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("path", ["linear", "slerp"])
@pytest.mark.parametrize("chunk", [1, 5, 21, 64, 1000, 4096])
def test_rows_are_path_codes_over_all_paths_for_any_chunking(dtype, path, chunk):
    """Revision 2: whatever the chunks, the rows are path_codes of all paths at once, rounded
    by copy_ (degenerate paths included)."""
    start, end = endpoints(300, 16, dtype, 7)
    expected = torch.empty(300 * 21, 16, dtype=dtype)
    expected.copy_(path_codes(start, end, 21, path).flatten(0, 1))
    assert torch.equal(bits(chunk_by_chunk(PathWriter(start, end, 21, path), 300 * 21, 16, chunk, dtype)),
                       bits(expected))
