"""A decoder's own memory on the CPU: measured by the anchors' probe (the reusing allocator's
large blocks in use at their peak), whose first call decodes two anchors, and counted against
memory_budget by batch_size="auto". Before, a CPU decoder's activations counted for nothing: the
probe decoded 64 anchors in its first call and the batch trials tried up to 4,096 codes, so a
decoder taking 1.5 GB a code (a Stable-Diffusion VAE's at 512 x 512) asked for ~96 GB and the
kernel killed the process (nothing raised, nothing kept)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import latentsweep as ls
from latentsweep._extension import _C
from latentsweep.decoder_probe import CPU_FIRST_PROBE_ROWS, CPU_PROBE_OUTPUT_BYTES, probe_anchors, probe_growth
from peak_memory import linux_only, needs_reusing_allocator, peak_bytes_of_each
from sweep_models import mlp_decoder

MiB = 1 << 20


class Hungry:
    """A decoder that takes ``per_code`` bytes of temporaries a code (outputs: ``features``
    values) and records the batch of each call."""

    def __init__(self, per_code: int, features: int = 2):
        self.per_code, self.features, self.sizes = per_code, features, []

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        self.sizes.append(codes.shape[0])
        scratch = torch.ones(codes.shape[0], self.per_code // 4, device=codes.device)
        return codes[:, :1].expand(-1, self.features) * scratch[:, :1]


@needs_reusing_allocator
def test_the_allocator_counts_its_large_blocks_in_use_and_their_peak():
    with _C.reuse_cpu_buffers():
        before = _C._reset_reuse_peak()
        block = torch.ones(8 * MiB // 4)
        small = torch.ones(16)  # below kMinReusedBytes: malloc's, not counted
        counters = _C._reuse_counters()
        assert counters["in_use_bytes"] - before >= 8 * MiB
        del block, small
        assert _C._reuse_counters()["in_use_bytes"] == before
        assert _C._reuse_counters()["peak_bytes"] - before >= 8 * MiB
        assert _C._reset_reuse_peak() == before == _C._reuse_counters()["peak_bytes"]


@needs_reusing_allocator
def test_the_cpu_probe_measures_the_decoders_memory_per_code():
    spec = SimpleNamespace(anchors=torch.randn(40, 4))
    probe = probe_anchors("latentsweep.traverse", Hungry(4 * MiB), spec, growth=probe_growth(torch.device("cpu")))
    assert 4 * MiB <= probe.activation_bytes <= 4.5 * MiB
    # a small MLP's (32-256-784: 1 KiB of hidden and 3 KiB of outputs a code) is not inflated by
    # its weights or one-off costs: it is measured in the largest call
    small = probe_anchors("latentsweep.traverse", mlp_decoder(latent_dim=32, features=784),
                          SimpleNamespace(anchors=torch.randn(1000, 32)), growth=probe_growth(torch.device("cpu")))
    assert 0 < small.activation_bytes < 16 << 10


@needs_reusing_allocator
def test_the_cpu_probe_decodes_two_anchors_first_then_as_many_as_the_outputs_bound():
    """An image decoder of 16 MiB a code and 3 x 256 x 256 outputs: 64 anchors in the first call
    were 1 GiB; the later calls are bounded by the outputs' bytes (not by the memory measured,
    which a process's first call inflates with one-off allocations: the anchors' batches, and
    with them their outputs' last bits, would differ in a resume from the same process)."""
    decoder = Hungry(16 * MiB, features=3 * 256 * 256)
    ls.traverse(decoder, torch.randn(100, 4), steps=3, dims=[0], keep_outputs=False, progress=False, batch_size=7)
    assert decoder.sizes[0] == CPU_FIRST_PROBE_ROWS == 2
    later = 4  # 2, then doubled while within CPU_PROBE_OUTPUT_BYTES of outputs
    assert later * 3 * 256 * 256 * 4 <= CPU_PROBE_OUTPUT_BYTES < 2 * later * 3 * 256 * 256 * 4
    probe_calls = decoder.sizes[: 1 + -(-98 // later)]
    assert probe_calls[1:] == [later] * (98 // later) + [98 % later] and sum(probe_calls) == 100


@needs_reusing_allocator
@pytest.mark.parametrize("budget", [64 * MiB, 256 * MiB])
def test_auto_batch_on_the_cpu_keeps_the_decoders_memory_within_the_budget(budget):
    """Before: 64 and more codes of 4 MiB each whatever the budget (the trials tried 64 first)."""
    decoder = Hungry(4 * MiB)
    result = ls.traverse(decoder, torch.randn(64, 4), steps=9, dims=[0, 1], keep_outputs=False, progress=False,
                         memory_budget=budget)
    assert result.batch_size * 4 * MiB <= budget
    # the trials too (after the probe's two calls: 2 anchors, then 62)
    assert decoder.sizes[:2] == [2, 62] and max(decoder.sizes[2:]) * 4 * MiB <= budget


@linux_only
@needs_reusing_allocator
def test_a_sweep_of_a_memory_hungry_decoder_stays_within_the_default_budget():
    """24 MiB of temporaries a code and 3 x 256 x 256 outputs, 64 anchors: the probe's first call
    took 1.5 GiB, the batch trials 4.6 GiB (192 codes); the default budget on the CPU is 1 GiB."""
    setup = f"""
import torch, latentsweep as ls
class Hungry:
    def __call__(self, codes):
        scratch = torch.ones(codes.shape[0], {24 * MiB // 4})
        return codes[:, :1].expand(-1, 3 * 256 * 256) * scratch[:, :1]
anchors = torch.randn(64, 4)
ls.traverse(Hungry(), anchors[:2], steps=3, dims=[0], keep_outputs=False, progress=False, batch_size=2)
"""
    (peak,) = peak_bytes_of_each(setup, ["ls.traverse(Hungry(), anchors, steps=3, dims=[0], keep_outputs=False, "
                                         "progress=False)"])
    assert peak < 1.25 * (1 << 30), f"{peak / 2**30:.2f} GiB"


@needs_reusing_allocator
def test_an_explicit_cpu_batch_beyond_the_memory_is_refused_before_the_decoder_runs_it(monkeypatch):
    """64 MiB a code at 1,024 codes a call: 64 GiB, on a machine of 8 (the kernel's kill, before:
    nothing raised, nothing kept). The probe decoded the anchors 2 at a time (the outputs are 2
    values: its later call is the other 2)."""
    import latentsweep._checks as checks

    monkeypatch.setattr(checks, "physical_memory", lambda: 8 << 30)
    decoder = Hungry(64 * MiB)
    with pytest.raises(ValueError, match=r"batch_size=1024 \(the decoder took 64\.\d MiB a code at the anchors.*"
                                         r"needs 64\.\d GiB, more than this CPU's 8\.0 GiB; pass a smaller batch_size"
                       ) as refused:
        ls.traverse(decoder, torch.randn(4, 4), steps=300, keep_outputs=False, progress=False, batch_size=1024)
    assert decoder.sizes == [2, 2]
    # the command line's words (--sweep-batch-size; it has no memory_budget)
    from latentsweep.cli.errors import cli_words

    said = cli_words(str(refused.value))
    assert "--sweep-batch-size 1024 (the decoder took" in said and "batch_size" not in said.replace("-batch-size", "")
    assert "or leave it out (auto keeps the decoder within its memory budget)" in said
    ls.traverse(decoder, torch.randn(4, 4), steps=3, dims=[0], keep_outputs=False, progress=False, batch_size=64)  # 12 codes
    with pytest.raises(ValueError, match=r"batch_size=4096 \(1,200 codes a call: the whole grid; the decoder took "
                                         r"64\.\d MiB a code .* needs 75\.\d GiB") as refused:  # (what it decodes at once)
        ls.traverse(decoder, torch.randn(4, 4), steps=300, dims=[0], keep_outputs=False, progress=False,
                    batch_size=4096)
    assert "--sweep-batch-size 4096 (1,200 codes a call: the whole grid; the decoder" in cli_words(str(refused.value))


EXPLICIT_BATCH_SCRIPT = """
import os, sys, torch, latentsweep as ls, latentsweep._checks as checks
torch.manual_seed(0)  # (every rank the same anchors)
checks.physical_memory = lambda: 150 << 20
def hungry(codes):  # 1 MiB of temporaries a code: 100 MiB at batch_size=100
    scratch = torch.ones(codes.shape[0], 1 << 18)
    return codes[:, :2] * scratch[:, :1]
try:
    ls.traverse(hungry, torch.randn(4, 4), steps=300, keep_outputs=False, progress=False, batch_size=100)
    said = "ran"
except ValueError as error:
    said = f"refused: {error}"
with open(f"{sys.argv[1]}-rank{os.environ.get('RANK', 0)}.txt", "w") as file:  # (the ranks' prints interleave)
    file.write(said)
"""


@needs_reusing_allocator
def test_an_explicit_cpu_batch_must_fit_each_ranks_share_of_the_machine(tmp_path):
    """100 MiB a call fits a machine of 150 MiB alone, not twice: each of two ranks on it passed
    the check against the whole machine."""
    import os
    import subprocess
    import sys

    script = tmp_path / "explicit_batch.py"
    script.write_text(EXPLICIT_BATCH_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    alone = subprocess.run([sys.executable, str(script), str(tmp_path / "alone")], capture_output=True, text=True,
                           timeout=120, env=env)
    assert (tmp_path / "alone-rank0.txt").read_text() == "ran", alone.stderr[-3000:]
    ranks = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                            str(script), str(tmp_path / "two")], capture_output=True, text=True, timeout=170, env=env)
    said = [(tmp_path / f"two-rank{rank}.txt").read_text() for rank in range(2)
            if (tmp_path / f"two-rank{rank}.txt").exists()]
    assert len(said) == 2 and all(line.startswith("refused:") for line in said), said + [ranks.stderr[-3000:]]
    assert all("outputs included, on each of the 2 ranks on this machine) needs 0.1 GiB, more than 50% of this "
               "CPU's 0.1 GiB" in line for line in said), said
