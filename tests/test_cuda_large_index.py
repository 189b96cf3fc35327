"""The CUDA grid kernels past 2^31 elements and their device checks. A chunk of 2^31 values or
more takes the kernels' 64-bit index arithmetic (cpp/ops/cuda/chunk_position.cuh,
path_codes_kernel.cu), a chunk just under it the 32-bit one at its limit (grid-stride steps up to
2^31 + 1.3e8), and a grid of 2^30 steps or more the 64-bit one whatever the chunk: each must
write the rows that small chunks write (the 32-bit kernels, which the other test files compare
with the CPU kernels bit for bit). Needs a GPU with room for two copies of 8 GiB of codes;
skipped elsewhere (CI has no GPU)."""

from __future__ import annotations

import pytest
import torch

import latentsweep as ls
from latentsweep.interpolation import PathWriter

ops = torch.ops.latentsweep
LIMIT = 2**31  # elements: the 32-bit kernels' bound (chunk_fits_32_bits)
D = 64
SMALL_CHUNK = 2**20  # rows: 2^26 elements, the 32-bit kernels


def gpu_gib() -> float:
    return torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else 0.0


needs_big_gpu = pytest.mark.skipif(gpu_gib() < 40, reason="needs CUDA with >= 40 GiB (two 8 GiB grids)")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

# Rows of one chunk: far past the limit, just past it, just under it (the 32-bit kernel's edge).
CHUNKS = {"past": LIMIT // D + 12_345, "at": LIMIT // D, "under": LIMIT // D - 1}


def in_small_chunks(write, start: int, count: int, like: torch.Tensor) -> torch.Tensor:
    """The same rows written SMALL_CHUNK rows at a time, into one buffer of ``like``'s kind."""
    rows = torch.full_like(like, float("nan"))
    for first in range(0, count, SMALL_CHUNK):
        n = min(SMALL_CHUNK, count - first)
        write(start + first, n, rows[first : first + n])
    return rows


def assert_same_bits(got: torch.Tensor, expected: torch.Tensor) -> None:
    bits = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16}[got.dtype]
    same = got.view(bits) == expected.view(bits)
    if not bool(same.all()):
        row = int((~same).any(dim=1).nonzero()[0])
        raise AssertionError(f"row {row} of {len(got)} (element {row * got.shape[1]}) differs: "
                             f"{got[row].tolist()} != {expected[row].tolist()}")


def traversal_inputs(count: int, start: int, steps: int = 11, dtype=torch.float32):
    num_dims = D
    anchors_needed = -(-(start + count) // (num_dims * steps))
    g = torch.Generator(device="cuda").manual_seed(0)
    anchors = torch.randn(anchors_needed, D, device="cuda", dtype=dtype, generator=g)
    values = torch.linspace(-2, 2, steps, device="cuda", dtype=dtype)
    dims = torch.arange(num_dims, device="cuda")
    return anchors, dims, values


@needs_big_gpu
@pytest.mark.parametrize("where", list(CHUNKS))
def test_cuda_traversal_chunk_past_2_31_elements_is_the_small_chunks(where):
    count, start = CHUNKS[where], 7 * D * 11 + 5 * 11 + 3  # a start mid-traversal, mid-anchor
    anchors, dims, values = traversal_inputs(count, start)

    def write(first, n, out):
        ls.traversal_codes(anchors, dims, values, start=first, count=n, out=out)

    big = torch.full((count, D), float("nan"), device="cuda")
    write(start, count, big)
    small = in_small_chunks(write, start, count, big)
    assert_same_bits(big, small)
    # and the last row is its formula (anchor, dim and step unravelled from the grid index)
    last = start + count - 1
    a, k, s = last // (D * 11), (last // 11) % D, last % 11
    expected = anchors[a].clone()
    expected[dims[k]] = values[s]
    assert torch.equal(big[-1], expected)


@needs_big_gpu
@pytest.mark.parametrize("where", ["past", "under"])
def test_cuda_direction_chunk_past_2_31_elements_is_the_small_chunks(where):
    count, start = CHUNKS[where], 3 * 16 * 11 + 2 * 11 + 9
    anchors_needed = -(-(start + count) // (16 * 11))
    g = torch.Generator(device="cuda").manual_seed(1)
    anchors = torch.randn(anchors_needed, D, device="cuda", generator=g)
    directions = ls.unit_directions(torch.randn(16, D, device="cuda", generator=g))
    values = torch.linspace(-3, 3, 11, device="cuda")

    def write(first, n, out):
        ls.direction_codes(anchors, directions, values, start=first, count=n, out=out)

    big = torch.full((count, D), float("nan"), device="cuda")
    write(start, count, big)
    assert_same_bits(big, in_small_chunks(write, start, count, big))


@needs_big_gpu
@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_cuda_path_chunk_past_2_31_elements_is_the_small_chunks(path):
    steps = 11
    count = CHUNKS["past"]
    start_row = 5 * steps + 4  # mid-path
    paths = -(-(start_row + count) // steps)
    g = torch.Generator(device="cuda").manual_seed(2)
    begin = torch.randn(paths, D, device="cuda", generator=g)
    end = torch.randn(paths, D, device="cuda", generator=g)
    writer = PathWriter(begin, end, steps, path)
    big = torch.full((count, D), float("nan"), device="cuda")
    writer(start_row, count, big)
    assert_same_bits(big, in_small_chunks(writer, start_row, count, big))


@needs_big_gpu
def test_cuda_traversal_of_2_30_steps_takes_the_64_bit_kernel():
    """num_steps >= 2^30 (chunk_fits_32_bits' other bound): rows around a traversal's end, where
    the step wraps and the dim moves on, are the CPU kernel's."""
    steps = 2**30 + 7
    anchors = torch.randn(2, 5, device="cuda")
    values = torch.arange(steps, device="cuda", dtype=torch.float32) * 1e-3
    dims = torch.tensor([4, 1], device="cuda")
    start, count = steps - 500, 1000
    got = ls.traversal_codes(anchors, dims, values, start=start, count=count)
    expected = ls.traversal_codes(anchors.cpu(), dims.cpu(), values.cpu(), start=start, count=count)
    assert torch.equal(got.cpu(), expected)


@needs_cuda
@pytest.mark.parametrize("moved", ["start", "end", "weights", "divisors", "out"])
def test_cuda_path_op_on_two_devices_is_a_named_error(moved):
    """The compiled path op given one tensor on the other device: a ValueError naming the
    devices, not a kernel reading host memory (or the reverse)."""
    from latentsweep.paths import path_weights

    args = {"start": torch.randn(4, 3, dtype=torch.float64), "end": torch.randn(4, 3, dtype=torch.float64)}
    weights, divisors = path_weights(4, 5)
    args |= {"weights": weights.contiguous(), "divisors": divisors.contiguous(),
             "out": torch.empty(20, 3, dtype=torch.float32)}
    for device in ("cpu", "cuda"):
        other = "cuda" if device == "cpu" else "cpu"
        placed = {name: t.to(other if name == moved else device) for name, t in args.items()}
        with pytest.raises(ValueError, match="device"):
            ops._path_codes_into_trusted(placed["start"], placed["end"], placed["weights"], placed["divisors"], 0, 20,
                                         placed["out"])


@needs_cuda
@pytest.mark.parametrize("fn", ["traversal", "direction"])
def test_cuda_grid_ops_with_values_on_the_cpu_write_the_all_cuda_rows_or_name_the_device(fn):
    """values on the CPU beside anchors on CUDA (a user's linspace): the public ops either write
    the rows of the all-CUDA call or refuse with a ValueError that names the devices."""
    anchors = torch.randn(3, 6, device="cuda")
    values = torch.linspace(-2, 2, 5)
    if fn == "traversal":
        second = torch.tensor([0, 4], device="cuda")
        op = ls.traversal_codes
    else:
        second = ls.unit_directions(torch.randn(2, 6, device="cuda"))
        op = ls.direction_codes
    expected = op(anchors, second, values.cuda())
    try:
        got = op(anchors, second, values)
    except ValueError as error:
        assert "device" in str(error) and "values" in str(error), error
    else:
        assert got.device.type == "cuda" and torch.equal(got, expected)
