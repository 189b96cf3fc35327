"""Under torchrun the command line says a failure once: every rank raised it together (a failure
relayed by latentsweep.distributed, or bad input each rank refused, in the sweep or while the
command loads its inputs), and each printed the same line, rank 1's ending "(reported by rank
0)". The rank that failed first says it; the others wait until it has (torchrun ends every rank
once one exits failed) and stay silent; every rank still exits non-zero, and a failure only rank
1 hits is said by rank 1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_models import tiny_data, tiny_vae_source
from latentsweep import distributed as _distributed
from latentsweep.cli import errors as _errors

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")

# TinyVAE whose decoder fails on rank FAIL_ON_RANK and whose factory fails on FAIL_LOADING_ON_RANK.
MODEL_SOURCE = tiny_vae_source(
    """
    import os

    class RankedVAE(TinyVAE):
        def decoder(self, z):
            if os.environ.get("FAIL_ON_RANK") == os.environ["RANK"]:
                raise RuntimeError("the decoder broke on this rank")
            return super().decoder(z)

    def make():
        if os.environ.get("FAIL_LOADING_ON_RANK") == os.environ["RANK"]:
            raise FileNotFoundError("weights.bin is missing on this node")
        torch.manual_seed(0)
        return RankedVAE()
    """
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("torchrun_errors")
    (folder / "ranked_models.py").write_text(MODEL_SOURCE)
    np.save(folder / "data.npy", tiny_data())
    return folder


def torchrun_traverse(workspace: Path, *args: str, fail_on_rank: str = "", fail_loading_on_rank: str = "",
                      monitor_interval: float = 0.1, fails: bool = True) -> tuple[list[str], dict[int, int], str]:
    """Two ranks (gloo, CPU) run ``latentsweep traverse``: (the error lines on stderr, each
    failed rank's exit status as torchrun's summary lists it, the whole output). The decoder
    fails on rank ``fail_on_rank``, the model's factory on ``fail_loading_on_rank``; torchrun ends
    the other ranks at most ``monitor_interval`` seconds after one has failed (its default 0.1;
    longer: every rank has time to say what it would)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FAIL_ON_RANK": fail_on_rank,
           "FAIL_LOADING_ON_RANK": fail_loading_on_rank}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         f"--monitor-interval={monitor_interval}", "-m", "latentsweep", "traverse", "--model", "ranked_models:make",
         "--data", "data.npy", "--anchors", "4", "--steps", "3", "--sweep-batch-size", "4", "--no-progress", "--out",
         "out", *args],
        capture_output=True, text=True, cwd=workspace, timeout=170, env=env,
    )
    output = completed.stdout + completed.stderr
    assert (completed.returncode != 0) == fails, output[-4000:]
    errors = [line for line in output.splitlines() if line.startswith("latentsweep: error:")]
    statuses = {int(rank): int(status) for rank, status in
                re.findall(r"rank\s*:\s*(\d+) \(local_rank: \d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)", output)}
    return errors, statuses, output


def test_bad_input_every_rank_refuses_is_said_once(workspace):
    """--dims 7 of 3 latents: each rank refused it and printed the same line (a usage error now,
    said by rank 0)."""
    errors, statuses, output = torchrun_traverse(workspace, "--dims", "7", "--store", "dims.zarr")
    assert errors == ["latentsweep: error: traverse: --dims must lie in [0, 3) for D=3, got values in [7, 7] "
                      "(see 'latentsweep traverse --help')"], output[-4000:]
    assert set(statuses) == {0, 1} and 0 not in statuses.values(), output[-4000:]


def test_a_failure_rank_0_relays_is_said_once_without_reported_by(workspace):
    """A store of another sweep: rank 0 found it and the other ranks raised its message again,
    "(reported by rank 0)"; both were printed."""
    torchrun_traverse(workspace, "--store", "other.zarr", fails=False)
    errors, statuses, output = torchrun_traverse(workspace, "--store", "other.zarr", "--steps", "4")
    assert len(errors) == 1, output[-4000:]
    assert "holds a sweep made with other options" in errors[0] and "reported by rank" not in errors[0], errors
    assert set(statuses) == {0, 1} and 0 not in statuses.values(), output[-4000:]


def test_a_failure_only_rank_1_hits_is_said_by_rank_1(workspace):
    """The decoder fails on rank 1 alone: rank 1 says it (naming itself); rank 0, which only
    learnt that rank 1 failed, no longer prints "rank 1 failed (...)" too."""
    errors, statuses, output = torchrun_traverse(workspace, "--store", "rank1.zarr", "--overwrite", fail_on_rank="1")
    assert errors == ["latentsweep: error: the decoder, on codes of 3 latents, raised RuntimeError: the decoder broke "
                      "on this rank (rank 1 of 2)"], output[-4000:]
    assert set(statuses) == {0, 1} and 0 not in statuses.values(), output[-4000:]


def test_an_input_every_rank_fails_to_load_is_said_once(workspace):
    """A missing --data, found while the command loads its inputs, before the sweep joined the
    group: each rank printed the same line (given the time to: torchrun ended the other ranks
    0.1 s after the first failed, which often cut the second short)."""
    errors, statuses, output = torchrun_traverse(workspace, "--data", "missing.npy", "--store", "missing.zarr",
                                                 "--out", "missing", monitor_interval=3)
    assert errors == ["latentsweep: error: --data: no such file 'missing.npy'"], output[-4000:]
    assert set(statuses) == {0, 1} and 0 not in statuses.values(), output[-4000:]
    assert not (workspace / "missing").exists()  # (--out's folder, made for the work, removed again by a rank)


def test_a_loading_failure_only_rank_1_hits_is_said_by_rank_1(workspace):
    """The model fails to load on rank 1 alone (a file missing on one node): rank 1 says it,
    naming itself; rank 0, which loaded its model, learns it and stops too."""
    errors, statuses, output = torchrun_traverse(workspace, "--store", "loading.zarr", fail_loading_on_rank="1",
                                                 monitor_interval=3)
    assert errors == ["latentsweep: error: --model 'ranked_models:make': the factory raised FileNotFoundError: "
                      "weights.bin is missing on this node (rank 1 of 2)"], output[-4000:]
    assert set(statuses) == {0, 1} and 0 not in statuses.values(), output[-4000:]


def test_a_usage_error_is_said_by_rank_0_before_torchrun_ends_it(workspace):
    """Rank 1 left a usage error to rank 0 and exited at once; torchrun then ended rank 0, often
    before it had printed anything (no error at all in 1 of 4 runs)."""
    errors, statuses, output = torchrun_traverse(workspace, "--steps", "0", "--store", "usage.zarr",
                                                 monitor_interval=0.01)
    assert len(errors) == 1 and "--steps" in errors[0], output[-4000:]


def test_a_usage_error_of_rank_1_alone_is_said_by_it(workspace, monkeypatch, capsys):
    """A bad option on rank 1 alone (its own environment or wrapper script): rank 1 left it to
    rank 0 and exited without a word, and torchrun then ended rank 0, which said nothing either."""
    from latentsweep.cli import main

    monkeypatch.setattr("latentsweep.cli.RANK_0_SPEAKS_SECONDS", 0.0)
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SystemExit) as exit_:
        main(["traverse", "--model", "ranked_models:make", "--data", "data.npy", "--steps", "-4", "--out", "alone"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("latentsweep: error: traverse: argument --steps") and \
        err.endswith("(rank 1's alone; see 'latentsweep traverse --help')\n"), err


def test_report_under_torchrun_is_a_usage_error_said_once(workspace):
    """`report` ran in full on every rank: each printed its loading errors, and rank 1 printed
    "wrote .../report.html" and exited 0 before rank 0 had written it. Only traverse splits its
    work across ranks: rank 0 says so, once, before any work; no rank writes or exits 0."""
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "latentsweep",
         "report", "--model", "ranked_models:make", "--data", "data.npy", "--steps", "2", "--anchors", "1",
         "--out", "ranked_report"],
        capture_output=True, text=True, cwd=workspace, timeout=170, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    output = completed.stdout + completed.stderr
    errors = [line for line in output.splitlines() if line.startswith("latentsweep: error:")]
    assert completed.returncode != 0 and errors == [
        "latentsweep: error: report: runs in one process; run it without torchrun (WORLD_SIZE=2: only traverse "
        "splits its work across ranks) (see 'latentsweep report --help')"], output[-4000:]
    assert "wrote" not in output and not (workspace / "ranked_report").exists(), output[-4000:]


def test_shard_under_torchrun_is_a_usage_error_said_by_rank_0(workspace, monkeypatch, capsys):
    """--shard under torchrun was refused by the library after every rank had loaded its inputs,
    and each rank said so; a usage error now, found first, said by rank 0 alone (exit 2)."""
    from latentsweep.cli import main

    monkeypatch.setattr("latentsweep.cli.RANK_0_SPEAKS_SECONDS", 0.0)  # (who says it, not when)

    monkeypatch.chdir(workspace)
    monkeypatch.setenv("WORLD_SIZE", "2")
    said = "latentsweep: error: traverse: --shard is for independent processes; under torchrun (2 processes) the " \
           "ranks split the sweep by themselves"
    for rank in ("1", "0"):  # (rank 1, not ended by a torchrun here after its wait, says it as its own)
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(SystemExit) as exit_:
            main(["traverse", "--model", "ranked_models:make", "--data", "data.npy", "--store", "shard.zarr",
                  "--shard", "0/2", "--out", "shard"])
        err = capsys.readouterr().err
        alone = "rank 1's alone; " if rank == "1" else ""
        assert exit_.value.code == 2 and err.startswith(said) and f"({alone}see 'latentsweep traverse --help')" in err, err
    assert not (workspace / "shard").exists()


# ---- which rank says a failure (no process group needed) ------------------------------------
def grouped_workers(rank: int, reports: list, monkeypatch) -> _distributed.Workers:
    """Rank ``rank`` of a group whose all_gather returns ``reports`` (what each rank sent)."""
    workers = _distributed.Workers(rank=rank, world=len(reports), grouped=True, fn="latentsweep.traverse")
    monkeypatch.setattr(workers, "all_gather", lambda value: reports)
    return workers


def test_agree_marks_who_says_a_failure(monkeypatch):
    same = ValueError("latentsweep.traverse: dims[...] must lie in [0, 3)")
    text = f"ValueError: {same}"
    # every rank refused the same input: the first says it; the others too, of the same message
    for rank in (0, 1):
        error = ValueError(str(same))
        with pytest.raises(ValueError) as raised:
            grouped_workers(rank, [(text, None, None), (text, None, None)], monkeypatch).agree(error)
        assert raised.value is error and _distributed.failure_said_by(raised.value) == 0
    # rank 1 alone failed: it says it; rank 0 only learnt it
    with pytest.raises(ValueError) as raised:
        grouped_workers(1, [(None, None, None), (text, None, None)], monkeypatch).agree(ValueError(str(same)))
    assert _distributed.failure_said_by(raised.value) == 1
    with pytest.raises(RuntimeError, match=r"rank 1 failed \(ValueError") as raised:
        grouped_workers(0, [(None, None, None), (text, None, None)], monkeypatch).agree()
    assert _distributed.failure_said_by(raised.value) == 1
    # different failures: each rank says its own
    with pytest.raises(RuntimeError) as raised:
        grouped_workers(1, [(text, None, None), ("RuntimeError: out of memory", None, None)],
                        monkeypatch).agree(RuntimeError("out of memory"))
    assert _distributed.failure_said_by(raised.value) == 1
    # calls that differ: every rank finds it, rank 0 says it
    with pytest.raises(ValueError, match="called with different arguments") as raised:
        grouped_workers(1, [(None, {"a": 1}, None), (None, {"a": 2}, None)], monkeypatch).agree(identity={"a": 2})
    assert _distributed.failure_said_by(raised.value) == 0
    # alone: nothing to agree on, nothing marked
    alone = ValueError("x")
    with pytest.raises(ValueError):
        _distributed.Workers().agree(alone)
    assert _distributed.failure_said_by(alone) is None


def test_rank_0s_relayed_failure_is_said_by_rank_0():
    failure = _distributed.leaders_failure(ValueError("latentsweep.traverse: bad store"))
    with pytest.raises(ValueError, match=r"bad store \(reported by rank 0\)") as raised:
        _distributed.raise_leaders_failure(failure)
    assert _distributed.failure_said_by(raised.value) == 0
    try:  # the command line's own error raised from it repeats it too
        raise _errors.CliError("the same, in other words") from raised.value
    except _errors.CliError as wrapped:
        assert _distributed.failure_said_by(wrapped) == 0


class Peers(list):
    """What this rank told the others and waited for; ``said``: whether the rank it waits for
    has said the failure."""

    said = True


@pytest.fixture
def rank_1_of_2(monkeypatch) -> Peers:
    """This process as rank 1 of 2, its exchanges with the others recorded (no group here)."""
    peers = Peers()
    monkeypatch.setattr(_distributed, "world_and_rank", lambda: (2, 1))
    monkeypatch.setattr(_distributed, "tell_failure_said", lambda: peers.append("told"))
    monkeypatch.setattr(_distributed, "wait_until_failure_said",
                        lambda rank: peers.append(f"waited for {rank}") or peers.said)
    return peers


def test_say_failure_once_per_group(rank_1_of_2, capsys):
    peers = rank_1_of_2
    relayed = _distributed._said_by(ValueError("latentsweep.traverse: rank 0's failure"), 0)
    _errors.say_failure(relayed)  # rank 0 said it: silent
    assert capsys.readouterr().err == "" and peers == ["waited for 0"]
    peers.said = False  # rank 0 did not say it within the wait (it died first): said here
    _errors.say_failure(relayed)
    assert capsys.readouterr().err == "latentsweep: error: traverse: rank 0's failure\n"
    peers.clear()
    own = _distributed._said_by(RuntimeError("latentsweep.traverse: out of memory"), 1)
    _errors.say_failure(own, "said so")  # its own, which the others wait for
    assert capsys.readouterr().err == "latentsweep: error: said so (rank 1 of 2)\n" and peers == ["told"]
    peers.clear()
    _errors.say_failure(ValueError("unmarked"))  # not relayed: said here, as before
    assert capsys.readouterr().err == "latentsweep: error: unmarked\n" and peers == []


def test_a_warning_about_one_ranks_own_run_is_said_by_it(rank_1_of_2, capsys):
    """Warnings the same on every rank are rank 0's to say; an out-of-memory retry on rank 1
    alone (a ProcessWarning) is rank 1's, naming it (it was dropped with the rest)."""
    import warnings

    from latentsweep import _checks

    with _errors.warnings_said():
        warnings.warn("the same on every rank", RuntimeWarning)
        warnings.warn("out of memory at batch_size=16; retrying with batch_size=8", _checks.ProcessWarning)
    assert capsys.readouterr().err == ("latentsweep: warning: out of memory at batch_size=16; retrying with "
                                       "batch_size=8 (rank 1 of 2)\n")


def test_waiting_for_a_rank_that_never_says_it_ends(tmp_path):
    """The wait is bounded, in a real group's store (one rank: rank 1 never says anything)."""
    script = textwrap.dedent(f"""
        import time, torch
        from latentsweep import distributed
        torch.distributed.init_process_group("gloo", init_method="file://{tmp_path / 'store'}", rank=0, world_size=1)
        started = time.perf_counter()
        assert distributed.wait_until_failure_said(1, seconds=0.5) is False
        assert time.perf_counter() - started < 10
        distributed.tell_failure_said()
        assert distributed.wait_until_failure_said(0, seconds=5) is True
        torch.distributed.destroy_process_group()
        assert distributed.wait_until_failure_said(0) is False  # no group: nothing to wait for
        print("ok")
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.stdout.strip() == "ok", completed.stderr[-3000:]
