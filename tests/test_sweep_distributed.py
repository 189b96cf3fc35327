"""Sweeps split among processes: torchrun ranks (CPU, gloo) and shards give results bitwise
identical to one process, whatever the world size and after a rank is SIGKILLed and the sweep
resumed at another world size; a caller's process group is left intact; bad input is refused."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import torch

import latentsweep as ls
from sweep_models import mlp_decoder

WORKER = Path(__file__).parent / "distributed_worker.py"
sys.path.insert(0, str(WORKER.parent))
from distributed_worker import ANCHORS, AUTO_ANCHORS, BATCH, STEPS  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")


def torchrun(nproc: int, *args, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               str(WORKER), *map(str, args)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    if check:
        assert completed.returncode == 0, completed.stderr[:6000]
    return completed


def load(out: Path, name: str, ranks: int) -> list[dict]:
    return [dict(np.load(out / f"{name}-rank{r}.npz")) for r in range(ranks)]


def assert_identical(got: dict, expected: dict) -> None:
    for key in ("effect", "dim_effect", "sensitivity", "outputs"):
        if key in expected or key in got:
            assert np.array_equal(got[key], expected[key]), key
            assert got[key].tobytes() == expected[key].tobytes(), key  # bitwise, NaN-free


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """1, 2 (caller's group) and 3 (group from the environment) processes."""
    out = tmp_path_factory.mktemp("distributed")
    torchrun(1, "sweep", out)
    torchrun(2, "caller-group", out)
    torchrun(3, "sweep", out)
    return out


def test_one_two_and_three_processes_are_bitwise_identical(runs):
    (single,) = load(runs, "store1", 1)
    assert single["outputs"].shape == (12, 5, STEPS, 20)
    for name, ranks in [("caller2", 2), ("store3", 3)]:
        for result in load(runs, name, ranks):
            assert_identical(result, single)
    (memory,) = load(runs, "memory1", 1)
    for result in load(runs, "memory3", 3):  # statistics only, no store: ranks swap their units
        assert_identical(result, memory)
    assert_identical({k: memory[k] for k in memory}, {k: single[k] for k in memory})


def test_a_group_latentsweep_created_and_its_caller_destroyed_is_not_created_again(runs):
    """Created again, it waited in torchrun's rendezvous (which hosts one group per process) for
    30 minutes: each rank says why at once."""
    for rank in range(3):
        outcome = (runs / f"destroyed3-rank{rank}.txt").read_text()
        assert outcome.startswith("RuntimeError: latentsweep.traverse: the process group latentsweep created for "
                                  "WORLD_SIZE=3 was destroyed"), outcome
        assert "distributed=False" in outcome, outcome


def test_a_memory_sweeps_batch_trials_are_units_of_rank_0(runs):
    """batch_size="auto" on a fake clock: rank 0 times 64 on whole units, keeps them as the
    sweep's first units, and the ranks share the rest; every row is decoded once, and every rank
    returns the same result. (The trials' budget shrinks with the ranks waiting for them, so one
    process tried more sizes: the same numbers up to the decoder's rounding at another batch.)"""
    (single,) = load(runs, "auto-memory1", 1)
    ranks = load(runs, "auto-memory3", 3)
    rows = len(AUTO_ANCHORS) * 5 * STEPS
    assert int(single["batch_size"][0]) == 64 and int(single["decoded"][0]) == rows
    assert sum(int(r["decoded"][0]) for r in ranks) == rows
    shares = [int(r["decoded"][0]) for r in ranks]
    assert shares[0] > max(shares[1:])  # rank 0 also decoded the trial units
    for result in ranks[1:]:
        assert_identical(result, ranks[0])
    for key in ("effect", "dim_effect", "sensitivity"):
        np.testing.assert_allclose(ranks[0][key], single[key], rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_ranks_are_bitwise_identical_and_match_the_cpu(runs, tmp_path):
    """Ranks decoding on CUDA (nccl with a GPU per rank; the caller's gloo group when they share
    one GPU) agree bit for bit with one CUDA process, and with the CPU up to rounding."""
    torchrun(1, "cuda", tmp_path)
    torchrun(2, "cuda", tmp_path)
    (single,) = load(tmp_path, "cuda1", 1)
    (memory,) = load(tmp_path, "cuda-memory1", 1)
    for result in load(tmp_path, "cuda2", 2):
        assert_identical(result, single)
    for result in load(tmp_path, "cuda-memory2", 2):
        assert_identical(result, memory)
    (cpu,) = load(runs, "store1", 1)
    for key in ("effect", "dim_effect", "sensitivity", "outputs"):
        np.testing.assert_allclose(single[key], cpu[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_explain_under_torchrun_writes_one_report(tmp_path):
    """Every rank calls explain: rank 0 does the sweeps alone and writes the report, the others
    return its path; when rank 0 fails, the others raise too instead of waiting forever."""
    torchrun(2, "explain", tmp_path)
    outcomes = [(tmp_path / f"explain-rank{r}.txt").read_text().splitlines() for r in range(2)]
    assert outcomes[0][0] == outcomes[1][0] == str(tmp_path / "report" / "report.html")
    assert (tmp_path / "report" / "report.html").is_file()
    # the failed one wrote nothing
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["after", "alone", "report"]
    assert outcomes[0][1].startswith("ValueError: latentsweep.") and "NaN" in outcomes[0][1]
    # the same error on rank 1 (bad input stays a ValueError), saying where it happened
    assert outcomes[1][1] == outcomes[0][1] + " (reported by rank 0)"
    # Rank 0 alone (`if rank == 0: explain(...)`): it wrote the report, then waited at the end, in
    # a broadcast no other rank made, for the group's timeout (30 minutes; or paired it with the
    # training's collectives). It says so from the start, and distributed=False runs it alone.
    advice = ("every rank of the process group must make the same call (rank 0 writes explain's report while the "
              "others wait for it); to run it in one process alone (rank 0 of a training job while the others "
              "train), pass distributed=False; on some ranks alone, pass group= (torch.distributed.new_group)")
    assert outcomes[0][2:] == [
        f"RuntimeError: latentsweep.explain: rank 1 did not make the same call as rank 0 (waited 3 s, the process "
        f"group's timeout); {advice}",
        f"latentsweep.explain: rank 0 has waited 1 s for rank 1 to make the same call; {advice}",
        str(tmp_path / "alone" / "report.html"),
        str(tmp_path / "after" / "report.html"),
    ]
    assert outcomes[1][2:] == [str(tmp_path / "after" / "report.html")]  # (the next call met: in step)
    assert (tmp_path / "alone" / "report.html").is_file() and not (tmp_path / "alone-default").exists()


def test_in_process_single_run_matches_torchrun(runs):
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = ls.traverse(mlp_decoder(5, 20), ANCHORS, steps=STEPS, batch_size=BATCH, keep_outputs=False)
    finally:
        torch.set_num_threads(torch_threads)
    (memory,) = load(runs, "memory1", 1)
    assert np.array_equal(result.sensitivity.numpy(), memory["sensitivity"])


def test_three_shards_and_open_sweep_match(runs, tmp_path):
    path = tmp_path / "shards.zarr"
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        statuses = [ls.traverse(mlp_decoder(5, 20), ANCHORS, steps=STEPS, batch_size=BATCH, out=path,
                                shard=(i, 3)) for i in (2, 0)]
        assert all(isinstance(s, ls.StoreStatus) and not s.complete for s in statuses)
        with pytest.raises(ValueError, match="incomplete.*missing"):
            ls.open_sweep(path)
        last = ls.traverse(mlp_decoder(5, 20), ANCHORS, steps=STEPS, batch_size=BATCH, out=path, shard=(1, 3))
    finally:
        torch.set_num_threads(torch_threads)
    assert isinstance(last, ls.TraversalResult)
    (single,) = load(runs, "store1", 1)
    for result in (last, ls.open_sweep(path)):
        got = {"effect": result.effect.numpy(), "dim_effect": result.dim_effect.numpy(),
               "sensitivity": result.sensitivity.numpy(), "outputs": np.asarray(result.outputs)}
        assert_identical(got, single)


def test_sigkill_of_one_rank_then_resume_at_another_world_size(runs, tmp_path):
    killed = torchrun(3, "kill", tmp_path, check=False)
    assert killed.returncode != 0
    path = tmp_path / "killed.zarr"
    before = ls.sweep_status(path)
    # rank 1 finished its first unit, then died in the middle of its second: that one has no
    # record and is computed again
    assert 1 <= len(before.done) < before.num_units
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # one shard of two in this process, then the rest under torchrun with two ranks
        ls.traverse(mlp_decoder(5, 20), ANCHORS, steps=STEPS, batch_size=BATCH, out=path, shard=(0, 2))
    finally:
        torch.set_num_threads(torch_threads)
    torchrun(2, "resume", tmp_path)
    (single,) = load(runs, "store1", 1)
    for result in load(tmp_path, "resumed2", 2):
        assert_identical(result, single)


def test_bad_shards_are_refused(tmp_path):
    decoder = mlp_decoder(5, 20)
    for shard, error, match in [((3, 3), ValueError, r"shard index must lie in \[0, 3\)"),
                                ((0, 0), ValueError, "shard count must be >= 1"),
                                ((-1, 2), ValueError, "shard index must be >= 0"),
                                (3, TypeError, "pair")]:
        with pytest.raises(error, match=match):
            ls.traverse(decoder, ANCHORS, steps=STEPS, out=tmp_path / "s.zarr", shard=shard)
    with pytest.raises(ValueError, match="overwrite=True with shard="):
        ls.traverse(decoder, ANCHORS, steps=STEPS, out=tmp_path / "s.zarr", shard=(0, 2), overwrite=True)
    with pytest.raises(ValueError, match="shard= needs out="):
        ls.traverse(decoder, ANCHORS, steps=STEPS, shard=(0, 2))


@pytest.mark.parametrize("variable", ["WORLD_SIZE", "RANK"])
def test_a_launchers_variable_that_is_not_an_integer_is_refused(monkeypatch, variable):
    """WORLD_SIZE=abc was taken as 1: the process swept the whole grid alone, as if no launcher
    had asked for a group (and the CLI failed with int()'s own words)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv(variable, "abc")
    with pytest.raises(ValueError, match=f"{variable}='abc' in the environment is not an integer"):
        ls.traverse(mlp_decoder(5, 20), ANCHORS, steps=STEPS, progress=False)


class _Stop(Exception):
    pass


def _failing_after(calls: int):
    """The MLP decoder, failing at its `calls`-th call (counting the anchors' probe)."""
    decoder, count = mlp_decoder(5, 20), [0]

    def hook(module, inputs):
        count[0] += 1
        if count[0] == calls:
            raise _Stop("interrupted")

    decoder.register_forward_pre_hook(hook)
    return decoder


@functools.cache
def _uninterrupted():
    return ls.traverse(mlp_decoder(5, 20), ANCHORS, steps=STEPS, batch_size=BATCH, keep_outputs=False)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shards=st.integers(1, 4), order=st.randoms(use_true_random=False), stop_at=st.integers(2, 40))
def test_any_assignment_and_interruption_gives_the_same_bits(tmp_path_factory, shards, order, stop_at):
    """Shards run in any order, one of them interrupted at any decoder call and the rest
    finished by a resume: the merged statistics are those of one uninterrupted run."""
    path = tmp_path_factory.mktemp("prop") / "sweep.zarr"
    kwargs = dict(steps=STEPS, batch_size=BATCH, out=path, keep_outputs=False, progress=False)
    expected = _uninterrupted()
    indices = list(range(shards))
    order.shuffle(indices)
    for position, index in enumerate(indices):
        decoder = _failing_after(stop_at) if position == 0 else mlp_decoder(5, 20)
        try:
            ls.traverse(decoder, ANCHORS, shard=(index, shards), **kwargs)
        except _Stop:
            pass
    # (an interruption in the anchors' probe leaves no store: then this run creates it)
    result = ls.traverse(mlp_decoder(5, 20), ANCHORS, resume=path.exists(), **kwargs)
    for name in ("effect", "dim_effect", "sensitivity"):
        assert torch.equal(getattr(result, name), getattr(expected, name)), name


def test_a_failing_or_mismatched_rank_fails_every_rank_clearly(runs, tmp_path):
    """Every rank catches each failure and goes on (as in a notebook): an argument check that fails
    on rank 1 alone, a decoder that raises on rank 1 in the anchors' probe, ranks called with other steps (a store) or another span
    (statistics only), each rank with its own store, each rank with its own weights and no store
    (a model initialised in every process): every rank raises at once, saying which
    rank and what, and the ranks stay in step (the next sweep is right). A rank that ends in the
    middle of its units leaves the others a clear message, its finished units kept."""
    torchrun(2, "failures", tmp_path)
    outcomes = [(tmp_path / f"failures-rank{r}.txt").read_text().splitlines() for r in range(2)]
    first_checks, later_checks, memory, probe, steps, span, paths, weights = zip(*outcomes)
    # An argument check that fails on one rank: checked before the ranks joined, it left rank 0 in the
    # rendezvous (30 minutes) or pairing its collectives with rank 1's next call.
    for checks, message in [(first_checks, "steps must be >= 1"), (later_checks, "batch_size must be >= 1")]:
        assert checks[1] == f"ValueError: latentsweep.traverse: {message}, got 0", checks[1]
        assert checks[0].startswith(f"RuntimeError: latentsweep.traverse: rank 1 failed (ValueError: "
                                    f"latentsweep.traverse: {message}"), checks[0]
    assert memory[1] == "ValueError: latentsweep.traverse: keeping the sweep in memory needs more than this machine has"
    assert memory[0].startswith("RuntimeError: latentsweep.traverse: rank 1 failed (ValueError:"), memory[0]
    assert probe[1] == "RuntimeError: decoder failed on rank 1"
    assert probe[0].startswith("RuntimeError: latentsweep.traverse: rank 1 failed (RuntimeError: decoder failed "
                               "on rank 1)"), probe[0]
    for text, differing in [(steps, "grid"), (span, "values"), (paths, "out")]:
        for line in text:
            assert line.startswith("ValueError: latentsweep.traverse: the ranks were called with different "
                                   "arguments"), line
            assert differing in line and "every rank must make the same traverse call" in line, line
    for line in weights:  # no store: the weights are not hashed, the outputs at the anchors tell
        assert line.startswith("ValueError: latentsweep.traverse: the decoder's outputs at the anchors differ "
                               "between the ranks"), line
    (memory,) = load(runs, "memory1", 1)
    for result in load(tmp_path, "after-failures", 2):
        assert_identical(result, memory)
    lost = (tmp_path / "lost-rank0.txt").read_text()
    assert lost.startswith("LostContact: latentsweep.traverse: lost contact with another rank"), lost  # a RuntimeError
    assert "resume=True" in lost and str(tmp_path / "lost.zarr") in lost, lost
    assert not (tmp_path / "lost-rank1.txt").exists()
    assert len(ls.sweep_status(tmp_path / "lost.zarr").done) >= 1


def test_a_launcher_environment_without_its_rendezvous_is_named(tmp_path, monkeypatch):
    """WORLD_SIZE and RANK without MASTER_ADDR (not started by torchrun): the error is the
    library's (the command line does not blame the decoder for it) and says what to do."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    with pytest.raises(ValueError, match=r"^latentsweep\.traverse: WORLD_SIZE=2 and RANK=1 .*MASTER_ADDR.*torchrun"):
        ls.traverse(mlp_decoder(5, 20), ANCHORS, steps=STEPS, out=tmp_path / "s.zarr", progress=False)
    assert not torch.distributed.is_initialized()
