"""A sweep on some ranks of a process group (``group=``), what the ranks compare before they
sweep, which GPU a rank takes, how long the ranks' meeting waits, and Ctrl-C while the command
line loads its model under torchrun: real processes for what several processes do (torchrun,
CPU, gloo), the environment alone for the choice of a rank's GPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_models import tiny_data, tiny_vae_source
from latentsweep import distributed as _distributed
from torchrun_workers import run_worker, said

WORKER = Path(__file__).parent / "subgroup_worker.py"

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")


@pytest.fixture(scope="module")
def subgroup_run(tmp_path_factory) -> Path:
    """tests/subgroup_worker.py under torchrun, 3 processes (see its docstring)."""
    return run_worker(WORKER, 3, tmp_path_factory.mktemp("subgroups"))


def test_two_ranks_sweep_on_their_subgroup_as_one_process_does(subgroup_run):
    """Ranks 0 and 1 of 3 called traverse(..., group=pair): they met every rank of the default
    group first, so they waited for rank 2 (which never came), warned after 30 s and raised at
    the store's timeout. Now they sweep on their own, into a store, in memory and along paths,
    bitwise as rank 2 alone does meanwhile, without a warning; a failure a sweep of the default
    group told (rank 2 set it) does not stop theirs."""
    for pair, alone in [("pair-store", "alone-store"), ("pair-memory", "alone-memory"), ("pair-path", "alone-path")]:
        expected = dict(np.load(subgroup_run / f"{alone}-rank2.npz"))
        for rank in (0, 1):
            got = dict(np.load(subgroup_run / f"{pair}-rank{rank}.npz"))
            assert sorted(got) == sorted(expected), pair
            for key in expected:
                assert got[key].tobytes() == expected[key].tobytes(), (pair, rank, key)
    assert "outputs" in dict(np.load(subgroup_run / "pair-store-rank0.npz"))  # (the store's: compared above)
    for rank in (0, 1):
        assert len(said(subgroup_run, rank)) == 6, said(subgroup_run, rank)  # (no warning among them)


def test_every_rank_returns_the_batch_size_out_of_memory_halved_on_one(subgroup_run):
    """Rank 1 alone ran out of memory above 4 codes and halved its batch: its result said 4 and
    rank 0's 8, where every rank returns the same result (the statistics were the same)."""
    first, second = (dict(np.load(subgroup_run / f"pair-halved-rank{rank}.npz")) for rank in (0, 1))
    assert first.pop("batch_size").tolist() == second.pop("batch_size").tolist() == [4]
    assert sorted(first) == sorted(second) and all(first[k].tobytes() == second[k].tobytes() for k in first)


def test_explain_on_a_subgroup(subgroup_run):
    """explain(group=pair) on ranks 0 and 1 while rank 2 does something else: its rank 0 writes
    the report, both return its path (without group=, they waited for rank 2)."""
    report = subgroup_run / "pair-report" / "report.html"
    assert report.is_file()
    assert [(subgroup_run / f"explained-rank{rank}.txt").read_text() for rank in (0, 1)] == [str(report)] * 2


def test_ranks_called_with_another_batch_size_or_memory_budget_are_refused(subgroup_run):
    """Rank 1 asked for batch_size='auto' and a memory budget, rank 0 for batch_size=8: rank 0's
    plan was used silently, rank 1 decoding at a size its caller had not asked for."""
    for rank in (0, 1):
        assert said(subgroup_run, rank)[0] == (
            "ValueError: latentsweep.traverse: the ranks were called with different arguments (rank 1's call differs "
            "from rank 0's in: batch_size, memory_budget); every rank must make the same traverse call (the same "
            "decoder, anchors, options and out=)")


def test_group_is_checked(subgroup_run):
    fn = "latentsweep.traverse"
    for rank in (0, 1):
        assert said(subgroup_run, rank)[1:] == [
            f"TypeError: {fn}: group must be a torch.distributed.ProcessGroup (from torch.distributed.new_group) or "
            "None (the default group), got str",
            f"ValueError: {fn}: group= splits the sweep among that group's ranks, shard= among independent processes: "
            "pass one of them",
            f"ValueError: {fn}: group= sweeps on that group's ranks and distributed=False in this process alone: pass "
            "one of them",
            f"ValueError: {fn}: group= is not a process group of the initialised one (destroyed, or made before the "
            "default group was created again); pass a group from torch.distributed.new_group",
            f"ValueError: {fn}: group= is given but no process group is initialised (call "
            "torch.distributed.init_process_group, then new_group, before the sweep)",
        ]
    assert said(subgroup_run, 2)[0] == (  # new_group's marker on a process outside the group
        f"ValueError: {fn}: group= is what torch.distributed.new_group returns on a process outside the group: this "
        "process (rank 2) is not one of its ranks; call traverse with group= on the group's ranks only (or "
        "distributed=False to run in this process alone)")


def test_the_meeting_waits_for_the_group_or_its_store_whichever_is_shorter(subgroup_run):
    """Rank 2 calls a sweep of the default group that ranks 0 and 1 never make, after their own
    subgroup's meetings (which it must not take for its call's). The group (made with a
    FileStore) waits 2 s where its store would wait 60 s, then 60 s where its store waits 1.5 s:
    the meeting waited the store's timeout, naming it "the group store's" even when the group's
    was shorter."""
    advice = ("every rank of the process group must make the same call (traverse splits its work among them); to "
              "run it in one process alone (rank 0 of a training job while the others train), pass distributed=False"
              "; on some ranks alone, pass group= (torch.distributed.new_group)")
    missing = "RuntimeError: latentsweep.traverse: ranks 0, 1 did not make the same call as rank 2"
    assert said(subgroup_run, 2)[1:] == [
        f"{missing} (waited 2 s, the process group's timeout); {advice}",
        f"{missing} (waited 1.5 s, the timeout of the process group's store); {advice}",
    ]


# ---- which GPU a rank takes (the environment alone: no GPU needed) -------------------------
@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with two CUDA devices, as far as the choice can tell; no launcher's variables."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for name in ("LOCAL_RANK", "SLURM_LOCALID", "WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)


def ranks_gpu(world: int) -> torch.device:
    workers = _distributed.Workers(rank=1, world=world, grouped=world > 1, fn="latentsweep.traverse")
    return _distributed.local_device(torch.device("cuda"), workers)


def test_a_ranks_gpu_is_local_rank_else_slurm_localid(two_gpus, monkeypatch):
    """srun sets SLURM_LOCALID, not LOCAL_RANK: every rank it started took cuda:0."""
    monkeypatch.setenv("SLURM_LOCALID", "1")
    assert ranks_gpu(2) == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "0")  # torchrun's, inside a Slurm job step
    assert ranks_gpu(2) == torch.device("cuda", 0)
    monkeypatch.delenv("LOCAL_RANK")
    # A task bound to GPUs of its own (srun --gpus-per-task=2) sees those alone, while its
    # SLURM_LOCALID counts the node's tasks: the third task's two GPUs are its cuda:0 and cuda:1.
    monkeypatch.setenv("SLURM_LOCALID", "2")
    assert ranks_gpu(2) == torch.device("cuda", 0)
    monkeypatch.setenv("SLURM_LOCALID", "3")
    assert ranks_gpu(2) == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # --gpus-per-task=1: each task's own GPU (was refused)
    assert ranks_gpu(4) == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "3")  # (torchrun binds nothing: a LOCAL_RANK beyond the GPUs is a mistake)
    with pytest.raises(ValueError, match=r"CUDA means each rank's GPU cuda:LOCAL_RANK, but LOCAL_RANK=3 and "
                                         r"this machine has 1 CUDA device\(s\) \(0\.\.0\)"):
        ranks_gpu(4)


def test_a_group_whose_ranks_do_not_say_their_gpu_is_refused(two_gpus, monkeypatch):
    """Ranks started by hand with only RANK and WORLD_SIZE all took cuda:0, silently."""
    with pytest.raises(ValueError, match=r"^latentsweep\.traverse: under a process group of 2 ranks, CUDA means "
                                         r"each rank's GPU cuda:LOCAL_RANK, but neither LOCAL_RANK nor SLURM_LOCALID "
                                         r"is set .*set LOCAL_RANK .*\(torchrun does\), or pass each rank's "
                                         r"device='cuda:i'"):
        ranks_gpu(2)
    monkeypatch.setenv("WORLD_SIZE", "2")  # the group the environment asks for: refused before it is created
    monkeypatch.setenv("RANK", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("torch.cuda.set_device or init_process_group was called")

    monkeypatch.setattr(torch.cuda, "set_device", refuse)
    monkeypatch.setattr(torch.distributed, "init_process_group", refuse)
    with pytest.raises(ValueError, match="neither LOCAL_RANK nor SLURM_LOCALID is set"):
        _distributed.join("latentsweep.traverse", None, torch.device("cuda"))
    assert _distributed.local_device(torch.device("cuda", 1), _distributed.Workers(world=2, grouped=True)) == \
        torch.device("cuda", 1)  # the caller's own choice


# ---- Ctrl-C while the command line loads the model under torchrun ---------------------------
INTERRUPTING_SOURCE = tiny_vae_source(
    """
    import os
    import signal

    def interrupted():
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, which reaches every rank, while the model loads
        return make()
    """
)


def test_ctrl_c_while_the_model_loads_is_said_once(tmp_path):
    """Every rank printed "latentsweep: interrupted: stopped by Ctrl-C" (the sweep's Ctrl-C was
    said once; loading's was not agreed on). Each rank is given the time to say what it would."""
    (tmp_path / "interrupting_models.py").write_text(INTERRUPTING_SOURCE)
    np.save(tmp_path / "data.npy", tiny_data())
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--monitor-interval=3",
         "-m", "latentsweep", "traverse", "--model", "interrupting_models:interrupted", "--data", "data.npy",
         "--anchors", "2", "--steps", "3", "--no-progress", "--store", "s.zarr", "--out", "out"],
        capture_output=True, text=True, cwd=tmp_path, timeout=150, env={**os.environ, "OMP_NUM_THREADS": "1"})
    output = completed.stdout + completed.stderr
    said_lines = [line for line in output.splitlines() if line.startswith("latentsweep: ")]
    assert said_lines == ["latentsweep: interrupted: stopped by Ctrl-C"], output[-4000:]
    statuses = {int(rank): int(status) for rank, status in
                re.findall(r"rank\s*:\s*(\d+) \(local_rank: \d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)", output)}
    assert completed.returncode != 0 and 0 not in statuses.values(), output[-4000:]
    assert not (tmp_path / "out").exists()
