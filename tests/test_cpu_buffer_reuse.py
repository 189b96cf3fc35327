"""The reusing CPU allocator that CPU sweeps run under (cpp/engine/cpu/reusing_allocator.h):
blocks are reused, memory is whole and correct, torch's allocator comes back, and blocks may
cross the scope's boundary in either direction."""

from __future__ import annotations

import sys
import threading

import pytest
import torch
from sweep_models import mlp_decoder

import latentsweep as ls
from latentsweep._extension import _C

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only (a no-op elsewhere)")

BIG = 1 << 18  # float32 elements: 1 MiB, well above the 64 KiB the allocator starts at


def counters() -> dict:
    return _C._reuse_counters()


def test_freed_blocks_are_reused_inside_the_scope_and_released_after():
    assert not counters()["active"]
    with _C.reuse_cpu_buffers():
        assert counters()["active"]
        first = torch.empty(BIG)
        address = first.data_ptr()
        del first
        assert counters()["kept_bytes"] >= BIG * 4
        before = counters()["reused"]
        second = torch.full((BIG,), 3.0)
        assert counters()["reused"] == before + 1
        assert second.data_ptr() == address
        assert bool((second == 3.0).all())
    assert (counters()["active"], counters()["kept_bytes"]) == (False, 0)
    del second  # allocated inside, freed after: goes back to malloc
    assert counters()["kept_bytes"] == 0


def test_small_and_much_smaller_requests_are_not_served_from_big_blocks():
    with _C.reuse_cpu_buffers():
        del_me = torch.empty(BIG)
        del del_me
        before = counters()["reused"]
        small = torch.empty(1000)  # below the threshold
        half = torch.empty(BIG // 2)  # a kept block must be at most 1/8 larger than the request
        assert counters()["reused"] == before
        assert small.numel() == 1000 and half.numel() == BIG // 2


def test_blocks_allocated_before_the_scope_can_be_freed_and_reused_inside():
    outside = torch.arange(BIG, dtype=torch.float32)
    expected = outside.clone()
    with _C.reuse_cpu_buffers():
        assert torch.equal(outside, expected)
        del outside  # its deleter is torch's own: back to malloc
        inside = torch.empty(BIG)
        inside.copy_(expected)
        assert torch.equal(inside, expected)


def test_nested_scopes_keep_the_allocator_until_the_outermost_ends():
    with _C.reuse_cpu_buffers():
        with _C.reuse_cpu_buffers():
            assert counters()["active"]
        assert counters()["active"]
        kept = torch.empty(BIG)
        del kept
        assert counters()["kept_bytes"] > 0
    assert not counters()["active"] and counters()["kept_bytes"] == 0


def test_exceptions_leave_the_scope():
    with pytest.raises(RuntimeError, match="boom"), _C.reuse_cpu_buffers():
        raise RuntimeError("boom")
    assert not counters()["active"]


def test_threads_allocating_at_once_get_whole_distinct_blocks():
    errors = []

    def work(value: float) -> None:
        try:
            for _ in range(50):
                block = torch.full((BIG,), value)
                if not bool((block == value).all()):
                    errors.append(value)
                del block
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    with _C.reuse_cpu_buffers():
        threads = [threading.Thread(target=work, args=(float(i),)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []


def test_cpu_sweeps_run_their_decoder_under_the_reusing_allocator():
    decoder = mlp_decoder(latent_dim=4, features=3000)  # 3000 floats x batch: above the threshold
    seen = []

    def watched(codes):
        seen.append(counters()["active"])
        return decoder(codes)

    before = counters()["reused"]
    result = ls.traverse(watched, torch.randn(5, 4), steps=7, batch_size=16, keep_outputs=False, progress=False)
    assert all(seen) and len(seen) > 3  # the anchors' probe (it measures the decoder's memory) and the sweep
    assert counters()["reused"] > before  # the chunks' activations were reused
    assert not counters()["active"] and counters()["kept_bytes"] == 0
    with torch.inference_mode():
        codes = ls.traversal_codes(result.anchors, result.dims, result.values)
        outputs = decoder(codes).view(5, 4, 7, -1)
        expected = (outputs - decoder(result.anchors)[:, None, None]).abs().mean(-1)
    torch.testing.assert_close(result.effect, expected)


def test_the_units_of_a_sweep_share_one_scope():
    """A sweep of 9 work units allocates its chunks' activations once: when the scope ended
    with each unit, every unit allocated (and page-faulted) them again (18 allocations here;
    5 with one scope: a unit's short last batch, 15 of 16 rows, takes one block more)."""
    from latentsweep.plan import make_plan

    decoder = mlp_decoder(latent_dim=4, features=3000)
    assert make_plan(20 * 4 * 7, 7, 16, padded=False).num_units == 9
    allocated = []

    def watched(codes):  # the count before each call: the sweep's from the first call after the probe's two
        allocated.append(counters()["allocated"])
        return decoder(codes)

    ls.traverse(watched, torch.randn(20, 4), steps=7, batch_size=16, keep_outputs=False, progress=False)
    assert counters()["allocated"] - allocated[2] <= 6


def test_each_chunk_decodes_into_another_buffer_than_the_last():
    """The previous chunk's outputs stay alive during the next decode, so consecutive chunks'
    outputs never share memory (written into the buffer the statistics threads had just read,
    the MLP's last layer ran 1.7x slower)."""
    decoder = mlp_decoder(latent_dim=4, features=3000)
    pointers = []

    def watched(codes):
        out = decoder(codes)
        pointers.append(out.data_ptr())
        return out

    ls.traverse(watched, torch.randn(5, 4), steps=7, batch_size=16, keep_outputs=False, progress=False)
    # units of 63 rows (9 traversals): chunks of 16, 16, 16, 15 rows; pointers[:2] are the
    # anchors' own decode (one anchor, then four)
    units = [pointers[2:6], pointers[6:10]]
    for chunks in units:
        assert all(a != b for a, b in zip(chunks, chunks[1:])), chunks


def test_a_units_short_last_chunk_decodes_in_the_blocks_of_its_full_ones():
    """Units of 55 rows decode in chunks of 16, 16, 16 and 7 rows. The 7-row chunk's buffers
    (84 KB, less than 8/9 of the 16-row ones) were allocated beside the full chunks' idle
    blocks, then kept idle through every full chunk after (+0.6 GiB at the peak of a sweep
    keeping 1 GiB of 3 x 512 x 512 outputs at batch 64). They take the full chunks' blocks now:
    no more allocations than a sweep of full chunks only."""
    from latentsweep.plan import make_plan

    decoder = mlp_decoder(latent_dim=4, features=3000)
    assert make_plan(20 * 4 * 11, 11, 16, padded=False).unit_rows == 55
    assert make_plan(20 * 4 * 8, 8, 16, padded=False).unit_rows == 64  # chunks of 16 rows only

    def allocations(steps: int) -> int:
        before = counters()["allocated"]
        ls.traverse(decoder, torch.randn(20, 4), steps=steps, batch_size=16, progress=False)
        return counters()["allocated"] - before

    assert allocations(11) == allocations(8)
