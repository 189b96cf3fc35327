"""Sweeps on subgroups (group=) and the ranks' meeting under several processes, as a demanding
user would break them (each test's docstring says what was wrong, or what was checked)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from latentsweep import distributed as _distributed
from torchrun_workers import run_worker, said

WORKER = Path(__file__).parent / "subgroups_adversarial_worker.py"

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")


@pytest.fixture(scope="module")
def four_ranks(tmp_path_factory) -> Path:
    """tests/subgroups_adversarial_worker.py under torchrun, 4 processes (see its docstring)."""
    return run_worker(WORKER, 4, tmp_path_factory.mktemp("subgroups"))


def test_subgroups_sweep_at_once_fail_alone_and_resume_on_others_bitwise(four_ranks):
    """Checked and found right (kept so it stays so): [0, 1] and [2, 3] sweep at the same time,
    [0, 1] failing on rank 1 (both say rank 1's failure) while [2, 3] finish, unaffected; the
    failed store resumed by [2, 1] (whose rank 0, the leader, is global rank 2) and a sweep where
    ranks pass group=WORLD or None alike give one process's results, bit for bit."""
    assert said(four_ranks, 0)[0] == (
        "RuntimeError: latentsweep.traverse: rank 1 failed (RuntimeError: decoder failed on rank 1); the units "
        f"finished are kept in {four_ranks / 'first.zarr'} (traverse(..., resume=True) continues, at any number of "
        "processes)")
    assert said(four_ranks, 0)[1] == "ok"
    assert said(four_ranks, 1)[:3] == ["RuntimeError: decoder failed on rank 1", "ok", "ok"]
    assert said(four_ranks, 2)[:3] == ["ok", "ok", "ok"] and said(four_ranks, 3)[:2] == ["ok", "ok"]  # (no warning)
    expected = dict(np.load(four_ranks / "alone-rank3.npz"))
    for name, ranks in [("second", (2, 3)), ("first-resumed", (1, 2)), ("world", (0, 1, 2, 3))]:
        for rank in ranks:
            got = dict(np.load(four_ranks / f"{name}-rank{rank}.npz"))
            assert sorted(got) == sorted(expected), name
            for key in set(expected) - {"points"}:
                assert got[key].tobytes() == expected[key].tobytes(), (name, rank, key)
    resumed = int(np.load(four_ranks / "first-resumed-rank1.npz")["points"][0])
    assert 0 < resumed <= int(expected["points"][0]) - 14  # ([0, 1] had finished units: rank 1 two of 7 rows)


def test_a_group_timeout_shorter_than_the_arrival_warning_is_the_wait(monkeypatch):
    """A subgroup made with new_group(..., timeout=10 s): the meeting first waited the 30 s of
    ARRIVAL_WARNING_SECONDS, warned "has waited 30 s", then raised saying it had waited 10 s,
    "the process group's timeout". It waits the group's timeout, and raises without a warning
    (the error names the absent ranks and gives the same advice)."""
    store = torch.distributed.HashStore()  # (its own timeout, 300 s, is longer)
    monkeypatch.setattr(_distributed, "_group_store", lambda: store)
    monkeypatch.setattr(_distributed, "_rank_and_world", lambda group: (0, 2))
    monkeypatch.setattr(_distributed, "_group_timeout_seconds", lambda group: 0.3)
    monkeypatch.setattr(_distributed, "ARRIVAL_WARNING_SECONDS", 1.0)  # (30 s, shortened)
    monkeypatch.setattr(_distributed, "_calls_met", {})
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match=r"^latentsweep\.traverse: rank 1 did not make the same call as rank 0 "
                                               r"\(waited 0\.3 s, the process group's timeout\); every rank"):
            _distributed._meet_the_other_ranks("latentsweep.traverse")  # rank 1 never comes
    assert [str(w.message) for w in warned] == []


def test_a_subgroups_own_short_timeout_is_the_wait_in_real_processes(four_ranks):
    """As above, under torchrun: rank 0 alone on a subgroup made with timeout=1.5 s waited 30 s
    and warned before raising "waited 1.5 s"."""
    assert said(four_ranks, 0)[2:] == [
        "RuntimeError: latentsweep.traverse: rank 1 did not make the same call as rank 0 (waited 1.5 s, the process "
        "group's timeout); every rank of the process group must make the same call (traverse splits its work among "
        "them); to run it in one process alone (rank 0 of a training job while the others train), pass "
        "distributed=False; on some ranks alone, pass group= (torch.distributed.new_group)"]


def test_a_rank_alone_in_its_subgroup_takes_its_own_gpu(monkeypatch):
    """device='cuda' under torchrun means each rank's LOCAL_RANK GPU, and so it did on a subgroup
    of two ranks; a rank alone in its subgroup (new_group([1]), new_subgroups(group_size=1))
    is not "grouped" and took the current device: cuda:0, another rank's GPU, unless its caller
    had set one. Without LOCAL_RANK (or SLURM_LOCALID) it is refused as in a group of several."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: 2)  # (the default group's)
    monkeypatch.delenv("SLURM_LOCALID", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    alone = _distributed.Workers(rank=0, world=1, group=object(), fn="latentsweep.traverse")  # (its subgroup)
    assert _distributed.local_device(torch.device("cuda"), alone) == torch.device("cuda", 1)
    assert _distributed.local_device(torch.device("cuda", 0), alone) == torch.device("cuda", 0)  # (the caller's)
    monkeypatch.delenv("LOCAL_RANK")
    with pytest.raises(ValueError, match=r"under a process group of 2 ranks, CUDA means each rank's GPU "
                                         r"cuda:LOCAL_RANK, but neither LOCAL_RANK nor SLURM_LOCALID is set"):
        _distributed.local_device(torch.device("cuda"), alone)


def test_messages_in_a_subgroup_name_ranks_as_the_jobs_logs_do(four_ranks):
    """In [2, 3] and [2, 1] the messages named the group's ranks ("rank 1's call differs from
    rank 0's", "reported by rank 0") while torchrun's logs say [rank3]: they name the job's."""
    differs = ("ValueError: latentsweep.traverse: the ranks were called with different arguments (rank 3's call "
               "differs from rank 2's in: batch_size); every rank must make the same traverse call (the same "
               "decoder, anchors, options and out=)")
    missing = f"ValueError: latentsweep.traverse: resume=True but there is no sweep at {four_ranks / 'missing.zarr'}"
    assert said(four_ranks, 2)[3:] == [differs, missing]
    assert said(four_ranks, 1)[3:] == [missing + " (reported by rank 2)"]
    assert said(four_ranks, 3)[2:] == [differs, (
        "RuntimeError: latentsweep.traverse: rank 2 did not make the same call as rank 3 (waited 1.5 s, the process "
        "group's timeout); every rank of the process group must make the same call (traverse splits its work among "
        "them); to run it in one process alone (rank 0 of a training job while the others train), pass "
        "distributed=False; on some ranks alone, pass group= (torch.distributed.new_group)")]
