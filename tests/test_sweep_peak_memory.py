"""A sweep's peak memory is what it needs: its outputs when kept in memory, one batch of the
decoder's temporaries (measured: the decoder alone at that batch), the previous chunk's outputs
(kept alive while the next decodes, executor.cpp), the statistics' float64 sums [K, F] (in C++
and in the merge) and, at a unit's end, that unit's sums. Measured in a fresh process
(tests/peak_memory.py)."""

from __future__ import annotations

from peak_memory import linux_only, peak_bytes_of_each

FEATURES = 1 << 18  # 1 MiB of float32 outputs per grid point
BATCH = 64
SLACK = 40 << 20  # the interpreter's and zarr's own noise (seen up to +-25 MiB, test_sweep_memory.py)

SETUP = f"""
import os, tempfile, torch, latentsweep as ls
torch.set_num_threads(1)
ramp = torch.linspace(0, 1, {FEATURES})

def decoder(codes):  # temporaries of [B, F] besides its output, as an image decoder's
    base = codes.sum(dim=1, keepdim=True) + ramp
    return base * base / (1.0 + base * base)

anchors = torch.randn(1, {{latents}}, generator=torch.Generator().manual_seed(0))
codes = anchors.expand({{batch}}, {{latents}}).clone()
scratch = tempfile.TemporaryDirectory()  # removed when the process exits (its stores take 263 MB)
folder = scratch.name
# (one-time costs first: imports, zarr's)
ls.traverse(decoder, anchors, dims=[0], steps=2, batch_size=2, out=os.path.join(folder, "warm.zarr"), progress=False)
"""


@linux_only
def test_a_sweep_keeping_its_outputs_peaks_at_them_and_one_batch_of_the_decoder():
    # 2 x 58 = 116 rows in one unit: chunks of 64 and 52 rows. The 52-row chunk decoded in fresh
    # buffers beside the 64-row chunk's idle ones (+160 MiB here).
    setup = SETUP.format(latents=4, batch=BATCH)
    steps = 58
    outputs = 2 * steps * FEATURES * 4
    decoder_alone, sweep = peak_bytes_of_each(setup, [
        "decoder(codes)",
        f"ls.traverse(decoder, anchors, dims=[0, 1], steps={steps}, batch_size={BATCH}, progress=False)"])
    previous_chunk = BATCH * FEATURES * 4
    statistics = 2 * 2 * FEATURES * 8
    assert sweep <= outputs + decoder_alone + previous_chunk + statistics + SLACK, (
        sweep / 2**20, outputs / 2**20, decoder_alone / 2**20)


@linux_only
def test_a_stores_sweep_peaks_at_one_batch_of_the_decoder_and_its_statistics():
    # 64 latents x 2 steps: one unit of 128 rows whose sums [64, F] take 128 MiB. Its record was
    # built as one bytes object (two copies of them alive at once), and the merge copied them
    # too: +384 MiB.
    latents, batch = 64, 32
    setup = SETUP.format(latents=latents, batch=batch)
    decoder_alone, sweep = peak_bytes_of_each(setup, [
        "decoder(codes)",
        f"ls.traverse(decoder, anchors, steps=2, batch_size={batch}, out=os.path.join(folder, 'sweep.zarr'), "
        "progress=False)"])
    previous_chunk = batch * FEATURES * 4
    statistics = 2 * latents * FEATURES * 8
    unit_sums = latents * FEATURES * 8
    assert sweep <= decoder_alone + previous_chunk + statistics + unit_sums + SLACK, (
        sweep / 2**20, decoder_alone / 2**20)


@linux_only
def test_a_sweeps_running_sums_hold_the_latents_of_a_unit_not_of_the_grid():
    # 64 latents x 2 steps in units of 8 traversals (batch 4): the C++ statistics' sums are
    # [8, F] (16 MiB), not [64, F] (128 MiB, what they were); the merge's [K, F] float64 sums and
    # the float32 sensitivity they give stay.
    latents, batch, unit_latents = 64, 4, 8
    setup = SETUP.format(latents=latents, batch=batch)
    decoder_alone, sweep = peak_bytes_of_each(setup, [
        "decoder(codes)",
        f"ls.traverse(decoder, anchors, steps=2, batch_size={batch}, keep_outputs=False, progress=False)"])
    previous_chunk = batch * FEATURES * 4
    merged = latents * FEATURES * 8 + latents * FEATURES * 4
    unit_sums = 3 * unit_latents * FEATURES * 8  # the running ones, a finished unit's copy, one more in flight
    assert sweep <= decoder_alone + previous_chunk + merged + unit_sums + SLACK, (
        sweep / 2**20, decoder_alone / 2**20)
