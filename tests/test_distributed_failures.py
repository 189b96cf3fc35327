"""Failures of one rank while the others wait, found by an adversarial pass over the sweeps'
process groups and the command line under torchrun: every rank learns what failed at once (none
waits for the process group's timeout), in words that say what to do, and the ranks stay in step."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from cli_models import tiny_data, tiny_vae_source
import latentsweep as ls
from latentsweep import cli, stores
from latentsweep import distributed as _distributed
from latentsweep.cli import commands

sweep_module = sys.modules["latentsweep.sweep"]
from test_cli_torchrun_errors import rank_1_of_2  # noqa: F401  (the fixture: this process as rank 1 of 2)
from test_sweep_distributed import torchrun

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")


def test_a_rank_that_reaches_another_store_at_out_is_named_and_nobody_waits(tmp_path):
    """out='s.zarr' from each rank's own working folder (as a disk of each machine's own): rank 1
    found nothing where rank 0 had created the store, and said "s.zarr exists and is not a
    latentsweep sweep store". With a complete copy of the same sweep there, rank 1 computed into
    it and rank 0's merge found its units missing: rank 0 raised alone and rank 1 waited for rank
    0's merged result until the group's timeout (30 minutes by default; 30 s here), then its next
    sweep lost its collectives too."""
    torchrun(2, "elsewhere", tmp_path)
    (nothing_0, other_copy_0), (nothing_1, other_copy_1) = (
        (tmp_path / f"elsewhere-rank{r}.txt").read_text().splitlines() for r in range(2))
    said = ("latentsweep.traverse: rank 1 finds nothing at s.zarr, where rank 0 opened the sweep's store; every rank "
            "must write into the same store: pass an out= on a filesystem that all ranks share")
    assert nothing_1.startswith(f"ValueError: {said}"), nothing_1
    assert nothing_0.startswith(f"RuntimeError: latentsweep.traverse: rank 1 failed (ValueError: {said}"), nothing_0
    damaged = ("latentsweep.traverse: the sweep store s.zarr is damaged: the record of unit 1 is unreadable "
               "(ValueError: u000000001.rec is missing)")
    assert other_copy_0.startswith(f"StoreDamaged: {damaged}"), other_copy_0
    assert other_copy_1.startswith(f"ValueError: {damaged}") and other_copy_1.endswith("(reported by rank 0)"), \
        other_copy_1
    after = [dict(np.load(tmp_path / f"after-elsewhere-rank{r}.npz")) for r in range(2)]
    for key in ("effect", "dim_effect", "sensitivity"):
        assert after[0][key].tobytes() == after[1][key].tobytes(), key


def test_a_call_on_one_rank_alone_is_said_not_paired_with_other_collectives(tmp_path):
    """`if rank == 0: traverse(...)` in a training job: rank 0 waited in its first collective for
    the group's timeout (30 minutes by default), silently, or paired it with the training's own.
    The ranks meet in the group's store first: rank 0 warns after ARRIVAL_WARNING_SECONDS (1 s
    here) naming the rank it waits for, sweeps when it comes, and raises at the group's timeout
    (8 s here) if it never does, advising distributed=False. The call it gave up on is called
    off: the ranks' next calls meet (rank 1's next call met rank 0's call given up on, rank 0's
    waited for rank 1's call after it: both failed, and so did every later call)."""
    torchrun(2, "alone", tmp_path)
    said_0, said_1 = ((tmp_path / f"alone-rank{r}.txt").read_text().splitlines() for r in range(2))
    assert said_0[-1] == said_1[-1] == "ok", (said_0, said_1)  # both called again
    said_0, said_1 = said_0[:-1], said_1[:-1]
    advice = ("every rank of the process group must make the same call (traverse splits its work among them); to "
              "run it in one process alone (rank 0 of a training job while the others train), pass "
              "distributed=False; on some ranks alone, pass group= (torch.distributed.new_group)")
    assert said_0[0].startswith("RuntimeError: latentsweep.traverse: rank 1 did not make the same call as rank 0 ("), \
        said_0
    assert said_0[0].endswith(advice), said_0
    waited = f"latentsweep.traverse: rank 0 has waited 1 s for rank 1 to make the same call; {advice}"
    assert said_0[1:] == [waited, waited], said_0  # (the late call, then the one rank 1 never made)
    assert said_1 == ["not called"], said_1
    for name in ("late", "together"):
        swept = [dict(np.load(tmp_path / f"{name}-rank{r}.npz")) for r in range(2)]
        for key in ("effect", "dim_effect", "sensitivity"):
            assert swept[0][key].tobytes() == swept[1][key].tobytes(), (name, key)


def test_a_rank_that_fails_early_does_not_wait_for_the_others_share(tmp_path):
    """Rank 1's decoder fails in its second batch; rank 0's share takes about 25 s, past the
    group's timeout (20 s here, 30 minutes by default). Rank 1 waited, idle, for rank 0 to finish
    its share, and gave up at the timeout: rank 0 learnt only "lost contact", and the next sweep
    of both failed too. Now rank 0 stops at its next batch and both raise rank 1's failure."""
    torchrun(2, "failed-early", tmp_path)
    early_0, early_1 = ((tmp_path / f"early-rank{r}.txt").read_text() for r in range(2))
    assert early_1 == "RuntimeError: decoder failed on rank 1", early_1
    assert early_0.startswith("RuntimeError: latentsweep.traverse: rank 1 failed (RuntimeError: decoder failed on "
                              "rank 1); the units finished are kept in"), early_0
    after = [dict(np.load(tmp_path / f"after-early-rank{r}.npz")) for r in range(2)]
    for key in ("effect", "dim_effect", "sensitivity"):
        assert after[0][key].tobytes() == after[1][key].tobytes(), key


# TinyVAE whose factory moves rank 1 into another working folder: there --store's relative path
# reaches another place, as a disk of each machine's own does.
MOVING_SOURCE = tiny_vae_source(
    """
    import os

    def moving():
        import sys
        sys.modules["latentsweep.stores"].WRITTEN_ELSEWHERE_VISIBLE_SECONDS = 1.0  # (it waits for NFS to show the store)
        if os.environ["RANK"] == "1":
            os.makedirs("elsewhere", exist_ok=True)
            os.chdir("elsewhere")
        return make()
    """
)


def test_the_command_line_says_once_which_rank_reaches_another_store(tmp_path):
    (tmp_path / "moving_models.py").write_text(MOVING_SOURCE)
    np.save(tmp_path / "data.npy", tiny_data())
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "latentsweep",
         "traverse", "--model", "moving_models:moving", "--data", str(tmp_path / "data.npy"), "--anchors", "2",
         "--steps", "3", "--no-progress", "--store", "s.zarr", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, timeout=170, env={**os.environ, "OMP_NUM_THREADS": "1"})
    output = completed.stdout + completed.stderr
    errors = [line for line in output.splitlines() if line.startswith("latentsweep: error:")]
    assert completed.returncode != 0 and errors == [
        "latentsweep: error: traverse: rank 1 finds nothing at s.zarr, where rank 0 opened the sweep's store; every "
        "rank must write into the same store: pass a --store on a filesystem that all ranks share (not a disk of each "
        "machine's own), and an absolute one if their working folders differ (rank 1 of 2)"], output[-4000:]


def test_a_store_that_shows_late_is_joined(tmp_path, monkeypatch):
    """On NFS another machine may see a store rank 0 has just made only after its cache of the
    name's absence ends (up to 60 s): the joining rank looks again until
    WRITTEN_ELSEWHERE_VISIBLE_SECONDS (it said "finds nothing" at once)."""
    import threading

    import latentsweep as ls

    made, path = tmp_path / "made.zarr", tmp_path / "s.zarr"
    ls.traverse(torch.nn.Linear(2, 3), torch.zeros(1, 2), steps=3, out=made, keep_outputs=False, progress=False)
    shown = threading.Timer(0.3, os.rename, (made, path))  # (whole at once, as a cache that ends)
    shown.start()
    try:
        store = sweep_module._store_rank_0_made(path)
    finally:
        shown.join()
    assert store is not None and store.path == path
    store.close()
    monkeypatch.setattr(stores, "WRITTEN_ELSEWHERE_VISIBLE_SECONDS", 0.2)
    assert sweep_module._store_rank_0_made(tmp_path / "never.zarr") is None


def test_a_unit_record_that_shows_late_is_merged(tmp_path, monkeypatch):
    """Rank 0 looked for every unit's record when it opened the store (NFS then keeps their
    absence up to 60 s) and reads the other ranks' records at the end: one not yet visible was
    "the store is damaged: ... u000000001.rec is missing". It is given the same time to show."""
    import threading

    import latentsweep as ls

    path = tmp_path / "s.zarr"
    ls.traverse(torch.nn.Linear(2, 3), torch.zeros(4, 2), steps=3, batch_size=3, out=path, keep_outputs=False,
                progress=False)
    expected = stores.SweepStore(path, writable=False).merged()
    store = stores.SweepStore(path, writable=False)
    assert store.plan.num_units > 1
    record = store._record_path(1)
    hidden = record.with_name("hidden")
    record.rename(hidden)
    shown = threading.Timer(0.3, hidden.rename, (record,))
    shown.start()
    try:
        merged = store.merged()
    finally:
        shown.join()
    assert merged.next_unit == store.plan.num_units
    assert torch.equal(merged.dim_effect_sum, expected.dim_effect_sum)
    assert torch.equal(merged.sensitivity_sum, expected.sensitivity_sum)
    record.rename(hidden)  # never shown: said damaged once the time is up
    monkeypatch.setattr(stores, "WRITTEN_ELSEWHERE_VISIBLE_SECONDS", 0.2)
    with pytest.raises(stores.StoreDamaged, match="u000000001.rec is missing"):
        stores.SweepStore(path, writable=False).merged()


def test_a_missing_unit_record_is_said_missing(tmp_path):
    """A record that is not there read as "u1.rec is a folder, not a record"."""
    with pytest.raises(ValueError, match=r"^u1\.rec is missing$"):
        stores.read_record(tmp_path / "u1.rec", {"effect": (1,)})


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, where progress bars are drawn by default."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("rank, no_progress, drawn", [("0", False, True), ("0", True, False), ("1", False, False)])
def test_the_encoders_bar_is_rank_0s_and_off_with_no_progress(tmp_path, monkeypatch, rank, no_progress, drawn):
    """traverse drew the encoder's bar in a terminal despite --no-progress, and under torchrun
    on every rank (the README promises one progress bar, rank 0's)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    np.save(tmp_path / "data.npy", np.zeros((4, 3), dtype=np.float32))
    args = argparse.Namespace(data=str(tmp_path / "data.npy"), key=None, batch_size=2, device=None,
                              no_progress=no_progress)
    encoder = torch.nn.Linear(3, 2)
    posterior, _ = commands._encode(encoder, encoder, args)
    assert posterior.mu.shape == (4, 2)
    assert ("encode" in sys.stderr.getvalue()) == drawn, sys.stderr.getvalue()


@pytest.mark.parametrize("said_by, said", [
    (0, ""),  # torchrun passed Ctrl-C to every rank: rank 0 says it
    (1, "latentsweep: interrupted: traverse: the sweep stopped after 2 of this process's 3 work units (rank 1 of 2)\n"),
])
def test_ctrl_c_under_torchrun_is_said_once(rank_1_of_2, monkeypatch, capsys, said_by, said):
    """Ctrl-C reaches every rank under torchrun, and each printed "latentsweep: interrupted: ..."
    (the ranks agree on it as on any failure: the same on every rank, said by rank 0). A Ctrl-C
    of rank 1 alone is said by rank 1."""
    def interrupted(args):
        interrupt = KeyboardInterrupt()
        interrupt.add_note("latentsweep.traverse: the sweep stopped after 2 of this process's 3 work units")
        raise _distributed._said_by(interrupt, said_by)

    monkeypatch.setattr(commands, "run_traverse", interrupted)
    assert cli.main(["traverse", "--model", "models.py:make", "--data", "x.npy", "--store", "s.zarr"]) == 130
    assert capsys.readouterr().err == said
    assert rank_1_of_2 == (["waited for 0"] if said_by == 0 else ["told"])


def test_effect_rows_another_process_wrote_are_checked(tmp_path):
    """Rank 0 reads the effect rows of the units other ranks wrote since its open at the end: a
    chunk missing then (a sync, a cache not yet showing it) was read as zeros, unchecked (zarr
    stores no chunk of zeros). They are checked against the units' records."""
    import latentsweep as ls

    path = tmp_path / "s.zarr"
    decoder, anchors = torch.nn.Linear(2, 3), torch.randn(4, 2)
    sweep = dict(steps=3, batch_size=3, out=path, keep_outputs=False, progress=False)
    assert isinstance(ls.traverse(decoder, anchors, shard=(0, 2), **sweep), ls.StoreStatus)
    store = stores.SweepStore(path, writable=True)  # opened as rank 0 opens it: its units kept
    status = store.status(keep_for_merge=True)
    others = sorted(set(range(store.plan.num_units)) - status.done)
    ls.traverse(decoder, anchors, shard=(1, 2), **sweep)  # the other rank's units, written meanwhile
    store.merged()
    (store.meta_path / "effect" / "c" / str(others[0])).unlink()
    with pytest.raises(stores.StoreDamaged, match=rf"unit {others[0]}: its effect rows do not match"):
        store.effect()
    store.close()


def test_a_failure_told_but_by_none_is_forgotten_so_the_call_runs_again(monkeypatch):
    """Every rank stopped, told that another had failed, but none had: a rank killed before it
    forgot it (torchrun keeps the group's store for every attempt of a job: the restarted
    workers found it). The advice "run the call again" stopped the call again, and every call
    after it, in every later attempt."""
    store = torch.distributed.HashStore()
    monkeypatch.setattr(_distributed, "_group_store", lambda: store)
    store.set(_distributed._failed_key(_distributed._DEFAULT_NAMESPACE), "1")
    workers = _distributed.Workers(rank=0, world=2, grouped=True, fn="latentsweep.traverse")
    monkeypatch.setattr(workers, "all_gather", lambda report: [report, report])  # (every rank stopped alike)
    with pytest.raises(RuntimeError, match="but none did; run the call again"):
        workers.agree(_distributed.AnotherRankFailed("latentsweep.traverse: another rank failed"))
    workers.stop_if_another_rank_failed()  # the call run again decodes


def test_a_record_this_process_found_is_read_at_once(tmp_path, monkeypatch):
    """A process alone resuming a store reads the records of the units after one it computes
    again at the end (past KEEP_STATISTICS_BYTES of them, here 0): one deleted meanwhile was
    given WRITTEN_ELSEWHERE_VISIBLE_SECONDS (60 s) to show before StoreDamaged, as a record
    another machine wrote is. Only those are waited for."""
    import latentsweep as ls

    path = tmp_path / "s.zarr"
    decoder, anchors = torch.nn.Linear(2, 3), torch.randn(8, 2)
    sweep = dict(steps=3, batch_size=3, out=path, keep_outputs=False, progress=False)
    ls.traverse(decoder, anchors, **sweep)
    store = stores.SweepStore(path, writable=False)
    assert store.plan.num_units == 4
    records = [store._record_path(unit) for unit in range(4)]
    store.close()
    for record in records[:2]:  # units 0 and 1 computed again: units 2 and 3 wait for the merge's end
        record.unlink()

    def deleting(module, inputs) -> None:
        if records[0].exists() and records[3].exists():  # (unit 0 written): a record found done, gone
            records[3].unlink()

    decoder.register_forward_pre_hook(deleting)
    waited = []
    monkeypatch.setattr(stores, "KEEP_STATISTICS_BYTES", 0)
    monkeypatch.setattr(stores, "visible_by", lambda record, deadline: waited.append(record.name) or record.exists())
    with pytest.raises(stores.StoreDamaged, match=r"the record of unit 3 is unreadable .*u000000003\.rec is missing"):
        ls.traverse(decoder, anchors, resume=True, **sweep)
    assert waited == []


def test_effect_rows_read_by_a_rank_that_checked_none_are_checked(tmp_path):
    """A rank other than 0 keeps no rows from its open: its result's effect was every unit's rows
    read raw, a chunk missing read as zeros. Each unit's rows are checked against its record."""
    import latentsweep as ls

    path = tmp_path / "s.zarr"
    result = ls.traverse(torch.nn.Linear(2, 3), torch.randn(4, 2), steps=3, batch_size=3, out=path,
                         keep_outputs=False, progress=False)
    assert torch.equal(stores.SweepStore(path, writable=False).effect(), result.effect.flatten())
    (path / "effect" / "c" / "1").unlink()
    with pytest.raises(stores.StoreDamaged, match="unit 1: its effect rows do not match"):
        stores.SweepStore(path, writable=False).effect()


def test_a_failure_without_words_is_named_by_its_type(monkeypatch):
    """Ctrl-C on rank 1 read "rank 1 failed (KeyboardInterrupt: )" on rank 0: what rank 1 told."""
    workers = _distributed.Workers(rank=1, world=2, grouped=True, fn="latentsweep.traverse")
    monkeypatch.setattr(_distributed, "_tell_the_others_a_rank_failed", lambda namespace: False)
    told = []
    monkeypatch.setattr(workers, "all_gather", lambda report: told.append(report) or [(None, None, None), report])
    with pytest.raises(KeyboardInterrupt):
        workers.agree(KeyboardInterrupt())
    assert told[0][0] == "KeyboardInterrupt", told


class _NoBlockingWait:
    """A group's store whose wait would block in C++ (Ctrl-C then waited for the group's
    timeout): the meeting must look with check() instead."""

    def __init__(self, timeout_seconds: float):
        import datetime

        self.store = torch.distributed.HashStore()
        self.timeout = datetime.timedelta(seconds=timeout_seconds)

    def wait(self, *args):
        raise AssertionError("the meeting blocked in store.wait, where Ctrl-C is not seen")

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_the_meeting_looks_without_blocking_so_ctrl_c_is_seen(monkeypatch):
    import threading

    store = _NoBlockingWait(timeout_seconds=0.6)
    monkeypatch.setattr(_distributed, "_group_store", lambda: store)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 0)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(_distributed, "ARRIVAL_WARNING_SECONDS", 0.2)
    monkeypatch.setattr(_distributed, "_calls_met", {})
    comes = threading.Timer(0.05, store.set, ("latentsweep/call-0/rank-1", "latentsweep.traverse"))
    comes.start()
    _distributed._meet_the_other_ranks("latentsweep.traverse")  # rank 1 comes: met, no warning
    comes.join()
    with pytest.warns(RuntimeWarning, match="rank 0 has waited 0.2 s for rank 1"), \
            pytest.raises(RuntimeError, match=r"rank 1 did not make the same call as rank 0 \(waited 0.6 s"):
        _distributed._meet_the_other_ranks("latentsweep.traverse")  # rank 1 never comes


def test_a_rank_whose_share_lasts_past_the_groups_timeout_is_waited_for(tmp_path):
    """Rank 0 finished its share long before rank 1 (a slower GPU or node) and waited for it in
    the agreement's collective: at the group's timeout (4 s here, 30 minutes by default) both
    raised "lost contact", a healthy sweep failed on every rank. Now the ranks done first wait
    in the group's store, and both return the merged result."""
    torchrun(2, "slow-share", tmp_path)
    swept = [dict(np.load(tmp_path / f"slow-rank{r}.npz")) for r in range(2)]
    stored = ls.open_sweep(tmp_path / "slow.zarr")
    for key in ("effect", "dim_effect", "sensitivity"):
        assert swept[0][key].tobytes() == swept[1][key].tobytes() == getattr(stored, key).numpy().tobytes(), key


def test_ranks_whose_decoders_differ_at_the_anchors_are_refused_with_a_store_too(tmp_path):
    """With a store only the recorded parameters were compared, so ranks with other output
    transforms (or closures) merged a silently wrong result; without one the outputs at the
    anchors were compared by their sum alone, which two swapped output features keep."""
    torchrun(2, "different-transforms", tmp_path)
    for rank in range(2):
        outcomes = (tmp_path / f"transforms-rank{rank}.txt").read_text().splitlines()
        assert len(outcomes) == 3, outcomes
        for line in outcomes:
            assert line.startswith("ValueError: latentsweep.traverse: the decoder's outputs at the anchors differ "
                                   "between the ranks"), line


def test_a_rank_that_decodes_nothing_for_the_groups_timeout_is_given_up(tmp_path):
    """The ranks done first wait in the store for a slower one (test above), but not for ever: a
    rank whose progress stands still for the group's timeout (4 s here; its decoder sleeps 20 s in
    one call) is said to hang, as the collective said at that timeout, well before it returns."""
    torchrun(2, "hung-share", tmp_path)
    outcome, seconds = (tmp_path / "hung-rank0.txt").read_text().splitlines()
    assert outcome.startswith("LostContact: latentsweep.traverse: lost contact with another rank: rank 1 stopped "
                              "answering while it decoded its share of the units (it decoded nothing for 4 s, the "
                              "process group's timeout"), outcome
    assert "resume=True" in outcome, outcome
    assert float(seconds) < 20.0, seconds  # (given up while rank 1 still slept)

