"""The analysis functions' memory checks count what the functions hold: their peak, measured in
a fresh process as the resident high-water mark above the inputs (VmHWM, reset just before the
call), stays within what the check counts (clusters: KMEANS_COPIES of the codes and ROW_BYTES a
row; elsewhere the codes' own size) plus PASS_BLOCKS float64 blocks of rows, which are bounded
whatever N; and above half of it, so neither count is absurd. clusters(k=...) held 2 copies of
the codes in KMeans and ~60 bytes a row while its check counted the codes once; clusters(labels)
~41 bytes a row, uncounted.

Sizes: float64 copies of the codes > 64 MB. The measuring process maps every allocation of 1 MiB
or more (a fixed M_MMAP_THRESHOLD), so the resident set is what is live: glibc otherwise raises
its threshold to each mapped block it frees (up to 32 MiB) and keeps freed temporaries below it
resident in its heap: the same call measured 1.7 to 3.7 blocks of rows (3.0 to 5.3 when each
block was a new tensor)."""

from __future__ import annotations

import math

import pytest
import torch

import latentsweep as ls
from latentsweep import _checks, directions
from latentsweep.alignment import axis_alignment
from latentsweep.clusters import KMEANS_COPIES, ROW_BYTES
from latentsweep.principal import PASS_BLOCKS

from peak_memory import linux_only, peak_bytes

BLOCK_BYTES = directions.CHUNK_VALUES * 8

SETUP = """
import ctypes
ctypes.CDLL(None).mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD, fixed (see the module's docstring)
import torch, latentsweep
from latentsweep.alignment import axis_alignment
n, d, dtype, what = {n}, {d}, torch.{dtype}, "{what}"
torch.manual_seed(0)
codes = torch.randn(n, d, dtype=dtype)
codes[: n // 2, 0] += 6.0  # two clusters
labels = torch.arange(n) % 4
if what == "projected":  # latents 1e-6 to 1e6: eigh resolves the top ones, the rest are projected
    codes *= torch.logspace(-6, 6, d, dtype=dtype)
calls = dict(
    kmeans=lambda c, l: latentsweep.clusters(c, k=2),
    labels=lambda c, l: latentsweep.clusters(c, l),
    exact=lambda c, l: latentsweep.principal_directions(c),
    projected=lambda c, l: latentsweep.principal_directions(c),
    randomized=lambda c, l: latentsweep.principal_directions(c, min(c.shape) - 1, method="randomized"),
    alignment=lambda c, l: axis_alignment(c),
)
call = calls[what]
call(codes[:100], labels[:100])  # (imports and one-time allocations before the baseline)
"""
CALL = """
result = call(codes, labels)
if what == "kmeans":
    result.directions(0, 1)  # ([C, D] only)
"""


def peak_of(what: str, n: int, d: int, dtype: str) -> int:
    return peak_bytes(SETUP.format(what=what, n=n, d=d, dtype=dtype), CALL)


def counted_bytes(what: str, n: int, d: int, dtype: torch.dtype) -> int:
    """What clusters' check counts (principal_directions' and axis_alignment's: nothing beyond
    the blocks, which they hold whatever N)."""
    if what not in ("kmeans", "labels"):
        return 0
    result = torch.float64 if dtype == torch.float64 else torch.float32
    per_value = KMEANS_COPIES * result.itemsize if what == "kmeans" else dtype.itemsize
    return n * d * (per_value + math.ceil(ROW_BYTES / d))


@linux_only
@pytest.mark.parametrize("what, n, d, dtype", [
    ("kmeans", 400_000, 32, "float64"),  # KMeans' 2 copies of the codes
    ("kmeans", 400_000, 32, "float32"),
    ("kmeans", 10_000_000, 1, "float64"),  # its arrays of one value a row, and the labels'
    ("labels", 10_000_000, 1, "float32"),  # numpy's unique of the labels
])
def test_clusters_peak_is_within_what_its_check_counts(what, n, d, dtype):
    peak = peak_of(what, n, d, dtype)
    counted = counted_bytes(what, n, d, getattr(torch, dtype))
    copies = f"{peak / (n * d * 8):.2f} float64 copies of the codes, counted {counted / (n * d * 8):.2f}"
    assert peak <= counted + PASS_BLOCKS * BLOCK_BYTES, copies
    assert peak > counted / 2, copies


@linux_only
@pytest.mark.parametrize("what, n, dtype", [
    ("exact", 400_000, "float64"),
    ("exact", 1_600_000, "float32"),  # (not more at 4x the rows)
    ("randomized", 400_000, "float32"),  # the most: the buffer and its product with the D x 32 basis
    ("projected", 1_600_000, "float32"),  # the buffer and a block's projection
    ("alignment", 400_000, "float64"),
    ("labels", 400_000, "float32"),  # clusters' passes
])
def test_passes_over_the_codes_hold_a_bounded_number_of_blocks(what, n, dtype):
    """principal_directions and axis_alignment hold float64 blocks of rows, not copies of the
    codes: their checks count only the codes themselves (a broadcast view's values)."""
    d = 32
    rows = n * ROW_BYTES if what == "labels" else 0  # (clusters' labels as 0 .. C-1)
    blocks = (peak_of(what, n, d, dtype) - rows) / BLOCK_BYTES
    assert blocks <= PASS_BLOCKS, blocks
    if what == "randomized":
        assert blocks > PASS_BLOCKS / 2, blocks


@linux_only
@pytest.mark.parametrize("what, dtype", [("exact", "float64"), ("alignment", "float32"), ("labels", "float64")])
def test_codes_of_one_block_are_converted_once(what, dtype):
    """Codes of one block (here 3.2e6 values, 26 MB in float64) are converted to float64 once
    for every pass, and each pass holds one more copy (centred, then squared in place): 2 copies
    (3 to 5 when each step allocated its own). Within UNCHECKED_BYTES: never checked."""
    n, d = 100_000, 32
    copies = peak_of(what, n, d, dtype) / (n * d * 8)
    assert copies <= 2.25, copies


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_a_pass_converts_its_blocks_of_rows_into_one_buffer(monkeypatch, dtype):
    """Each block of a pass is copied into the same float64 tensor: a new one per block was
    mapped and its pages faulted in each time, a third of diagnose's time at N = 50,000,
    D = 4,096. Float64 codes are copied too (their blocks are scaled in place, never the codes)."""
    monkeypatch.setattr(directions, "CHUNK_VALUES", 3 * 4)  # blocks of 3 rows: 3, 3, 3 and 1
    codes = torch.randn(10, 4, generator=torch.Generator().manual_seed(0)).to(dtype)
    addresses, blocks = set(), []
    for block, rows in directions.row_blocks(codes, torch.arange(10)):
        addresses.add(block.data_ptr())
        blocks.append(block.clone())
        assert torch.equal(block, codes[rows].double())
    assert len(addresses) == 1 and addresses != {codes.data_ptr()}
    assert torch.equal(torch.cat(blocks), codes.double())


# --- too-large inputs are refused before the work, with the function's name ---------------------

MIB = 2**20


@pytest.mark.parametrize("call, codes, memory, name", [
    # float32 [1e6, 8] (32 MB, under UNCHECKED_BYTES: never checked): KMeans' copies need 168 MB
    (lambda c: ls.clusters(c, k=2), torch.zeros(1_000_000, 8), 128 * MIB, "clusters"),
    # float32 [2e6, 1] (8 MB): the labels as 0 .. C-1 need 136 MB
    (lambda c: ls.clusters(c, torch.zeros(c.shape[0], dtype=torch.int64)), torch.zeros(2_000_000, 1), 100 * MIB,
     "clusters"),
    (lambda c: ls.principal_directions(c), torch.zeros(3_000_000, 8), 64 * MIB, "principal_directions"),
    (lambda c: axis_alignment(c), torch.zeros(3_000_000, 8), 64 * MIB, "axis_alignment"),
], ids=["kmeans", "labels", "principal_directions", "axis_alignment"])
def test_an_input_beyond_the_memory_is_refused_before_the_work(monkeypatch, request, call, codes, memory, name):
    work = r"clustering with KMeans \(its copies of\)" if request.node.callspec.id == "kmeans" else "reading"
    monkeypatch.setattr(_checks, "physical_memory", lambda: memory)
    with pytest.raises(ValueError, match=rf"latentsweep\.(alignment\.)?{name}: {work} the codes \[N={codes.shape[0]}, "
                                         rf"D={codes.shape[1]}\] needs .* GiB, more than this CPU's"):
        call(codes)



# --- the temporaries reused in place are the functions' own, never the codes ---------------------


@pytest.mark.parametrize("n", [1000, 140_000], ids=["one-block", "blocks"])
@pytest.mark.parametrize("call, scale", [
    (lambda c: ls.principal_directions(c, 2), 1.0),
    (lambda c: ls.principal_directions(c, 2, method="randomized", iterations=1), 1.0),
    (lambda c: axis_alignment(c), 1.0),
    (lambda c: ls.clusters(c, torch.arange(c.shape[0]) % 3), 1.0),
    (lambda c: ls.clusters(c, k=2), 1e13),  # (scaled for KMeans)
], ids=["exact", "randomized", "alignment", "labels", "kmeans"])
def test_float64_codes_are_not_written(call, scale, n):
    """float64 codes' rows are the codes themselves (double() is a no-op): the blocks are scaled
    and centred in place only when they are a copy."""
    codes = (torch.randn(n, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) + 0.5) * scale
    kept = codes.clone()
    call(codes)
    assert torch.equal(codes, kept)
