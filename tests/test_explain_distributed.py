"""explain under torch.distributed as a demanding user would break it: real processes (torchrun,
CPU, gloo, tests/explain_distributed_worker.py) for what several ranks do, the meeting and the
messages in this process. Each test's docstring says what was wrong, or what was checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import latentsweep as ls
from latentsweep import distributed as _distributed
from torchrun_workers import run_worker, said

WORKER = Path(__file__).parent / "explain_distributed_worker.py"

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")

ADVICE = ("every rank of the process group must make the same call ({}); to run it in one process alone (rank 0 of a "
          "training job while the others train), pass distributed=False; on some ranks alone, pass group= "
          "(torch.distributed.new_group)")
EXPLAIN_ADVICE = ADVICE.format("rank 0 writes explain's report while the others wait for it")


@pytest.fixture(scope="module")
def explain_run(tmp_path_factory) -> Path:
    """tests/explain_distributed_worker.py under torchrun, 3 processes (see its docstring)."""
    return run_worker(WORKER, 3, tmp_path_factory.mktemp("explain"))


def test_rank_0s_report_may_outlast_the_groups_timeout(explain_run):
    """The other ranks waited for rank 0's report in a broadcast: at the group's timeout they
    raised "lost contact with another rank (it crashed, was killed...)" while rank 0 was working,
    and rank 0, done later, raised the same instead of returning (under torchrun a rank exiting so
    ends rank 0 before its report is written). They now wait as long as the report takes (longer
    than LEADER_SILENT_SECONDS too, 2 s in the worker: rank 0 says it is alive as it works)."""
    report = explain_run / "slow" / "report.html"
    assert report.is_file()
    assert [said(explain_run, rank)[0] for rank in range(3)] == [str(report)] * 3


def test_out_is_checked_by_the_rank_that_writes_the_report(explain_run):
    """Every rank checked out= on its own disk before the ranks met: rank 1, which does not write
    the report, refused a path it could not write on its node, and rank 0 waited for it until the
    group's timeout ("rank 1 did not make the same call"). Rank 0 checks it, before any work, and
    its refusal reaches the others at once (it raised before meeting them: they waited)."""
    assert (explain_run / "blocked-on-1" / "rank0" / "sub" / "report" / "report.html").is_file()
    assert [said(explain_run, rank)[1] for rank in range(3)] == [str(Path("sub", "report", "report.html"))] * 3
    refused = ("ValueError: latentsweep.explain: out='sub/report/report.html': the file 'sub' is in the way of its "
               "folder")
    assert [said(explain_run, rank)[2] for rank in range(3)] == [refused] + [f"{refused} (reported by rank 0)"] * 2


def test_ranks_in_different_calls_are_refused_where_they_meet(explain_run):
    """Rank 0 in explain (`if rank == 0:`) and the others in a traverse of every rank met, then
    paired explain's broadcast with traverse's gather: every rank said "lost contact" at the
    group's timeout (30 minutes by default)."""
    calls = "the ranks made different calls (rank 1 called latentsweep.traverse, rank 0 latentsweep.explain)"
    assert said(explain_run, 0)[3] == f"ValueError: latentsweep.explain: {calls}; {EXPLAIN_ADVICE}"
    for rank in (1, 2):
        assert said(explain_run, rank)[3] == (f"ValueError: latentsweep.traverse: {calls}; "
                                              + ADVICE.format("traverse splits its work among them"))
    assert not (explain_run / "mismatched").exists()


def test_explain_and_traverse_stay_in_step(explain_run):
    """Checked and found right: after the failures above, explain, traverse and explain again on
    every rank of the default group meet as they should."""
    for rank in range(3):
        assert said(explain_run, rank)[4:7] == [str(explain_run / "first" / "report.html"), "TraversalResult",
                                                str(explain_run / "second" / "report.html")]


def test_explain_on_a_subgroup_led_by_another_rank_than_0(explain_run):
    """Checked and found right: on the subgroup [1, 2] its rank 0, global rank 1, encodes (its
    progress bar alone), decodes, warns and writes the report, while global rank 0 explains alone
    meanwhile (distributed=False)."""
    assert said(explain_run, 0)[7:9] == [str(explain_run / "alone" / "report.html"),
                                         "decoded: False; bars: True; warned: 0"]
    assert said(explain_run, 1)[7:9] == [str(explain_run / "pair" / "report.html"),
                                         "decoded: True; bars: True; warned: 1"]
    assert said(explain_run, 2)[7:9] == [str(explain_run / "pair" / "report.html"),
                                         "decoded: False; bars: False; warned: 0"]


def test_ranks_called_with_other_arguments_are_refused_before_any_work(explain_run):
    """The other ranks' arguments were never compared with rank 0's: rank 1, called with another
    out=, returned a path where no report was, and its title was silently rank 0's. The ranks now
    compare their calls, as traverse's do, and every rank refuses a difference at once, naming it."""
    refused = ("ValueError: latentsweep.explain: the ranks were called with different arguments (rank 1's call "
               "differs from rank 0's in: out, title); every rank must make the same explain call (the same decoder, "
               "anchors, options and out=)")
    assert [said(explain_run, rank)[9] for rank in range(3)] == [refused] * 3
    assert not (explain_run / "differing").exists() and not (explain_run / "other").exists()


def test_a_bad_argument_on_one_rank_is_refused_on_every_rank_at_once(explain_run):
    """A rank whose own argument checks failed raised before the ranks met, and the others
    waited for it in the meeting until the group's timeout ("rank 2 did not make the same
    call"). The arguments are now checked after the meeting, and the failure reaches them."""
    refused = "ValueError: latentsweep.explain: anchors must be >= 1, got 0"
    assert [said(explain_run, rank)[10] for rank in range(3)] == [
        f"RuntimeError: latentsweep.explain: rank 2 failed ({refused})"] * 2 + [refused]
    assert not (explain_run / "bad-on-2").exists()


def test_the_advice_names_the_subgroups_leader(explain_run):
    """On the subgroup [1, 2] its leader, global rank 1, explained while rank 2 traversed: the
    refusal's advice said that "rank 0 writes explain's report", a rank of the job outside the
    group, where the rest of the messages name global ranks."""
    calls = "the ranks made different calls (rank 2 called latentsweep.traverse, rank 1 latentsweep.explain)"
    assert said(explain_run, 1)[11] == (f"ValueError: latentsweep.explain: {calls}; "
                                        + ADVICE.format("rank 1 writes explain's report while the others wait for it"))
    assert said(explain_run, 2)[11] == (f"ValueError: latentsweep.traverse: {calls}; "
                                        + ADVICE.format("traverse splits its work among them"))


def test_a_sweeps_rank_0_may_open_and_read_its_store_for_longer_than_the_groups_timeout(explain_run):
    """A sweep's rank 0 opens the store for the others (a resume checks every unit) and reads the
    units the others wrote at the end, while they waited in a broadcast: longer than the group's
    timeout, they said they had lost contact with rank 0. They now wait as explain's ranks do
    for its report (one relay for both)."""
    effects = [said(explain_run, rank)[12] for rank in range(3)]
    assert effects[0] == effects[1] == effects[2]
    assert float(effects[0]) > 0


def test_rank_0_ending_without_an_error_is_said_by_the_others(explain_run):
    """Rank 0's process ended without raising as it worked (os._exit(0) under torchrun, whose
    agent keeps the store and the other ranks alive): the others waited for its report for ever,
    and the launch never ended. Rank 0 now says it is alive while it works (a count in the group's
    store), and the others stop waiting once it has been silent for LEADER_SILENT_SECONDS (2 s in
    the worker, which the slow report above outlasts), naming it."""
    assert len(said(explain_run, 0)) == 13  # (it said nothing more)
    for rank in (1, 2):
        assert said(explain_run, rank)[13] == (
            "LostContact: latentsweep.explain: rank 0 stopped answering while it wrote the report for the others (no "
            "sign of life from it in the process group's store for 2 s: its process ended without an error, or "
            "hangs; its own output says why)")


def test_the_meeting_refuses_ranks_in_different_functions(monkeypatch):
    """As above, in this process: rank 1 arrived in traverse where rank 0 explains."""
    store = torch.distributed.HashStore()
    monkeypatch.setattr(_distributed, "_group_store", lambda: store)
    monkeypatch.setattr(_distributed, "_rank_and_world", lambda group: (0, 2))
    monkeypatch.setattr(_distributed, "_calls_met", {})
    store.set("latentsweep/call-0/rank-1", "latentsweep.traverse")
    with pytest.raises(ValueError, match=r"^latentsweep\.explain: the ranks made different calls \(rank 1 called "
                                         r"latentsweep\.traverse, rank 0 latentsweep\.explain\); every rank"):
        _distributed._meet_the_other_ranks("latentsweep.explain")
    store.set("latentsweep/call-1/rank-1", "latentsweep.explain")
    assert _distributed._meet_the_other_ranks("latentsweep.explain") == "latentsweep/call-1"  # (the next: in step)


def test_rank_0s_failure_without_words_is_named_by_its_type():
    """Ctrl-C on rank 0 reached the others as "KeyboardInterrupt:  (reported by rank 0)"."""
    with pytest.raises(RuntimeError) as raised:
        _distributed.raise_leaders_failure(_distributed.leaders_failure(KeyboardInterrupt()))
    assert str(raised.value) == "KeyboardInterrupt (reported by rank 0)"


def test_a_device_explain_cannot_use_is_refused_in_its_name(tmp_path):
    """device= was checked by the first step that used it: "latentsweep.traverse: device='cuda'
    but this torch has no CUDA device available" (or encode's) from a call of explain."""
    codes = ls.Posterior(torch.randn(10, 3, generator=torch.Generator().manual_seed(0)))
    for data, posterior in ((torch.rand(10, 3), None), (None, codes)):
        with pytest.raises(ValueError, match=r"^latentsweep\.explain: device='meta' holds no values; explain runs on"):
            ls.explain(torch.nn.Linear(3, 3), torch.nn.Linear(3, 4), data, posterior=posterior, out=tmp_path,
                       device="meta", progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def subgroup_of_one(tmp_path):
    """A real process group (gloo) of this process alone, and its subgroup new_group([0])."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield torch.distributed.new_group([0])
    finally:
        torch.distributed.destroy_process_group()


def test_cuda_on_a_groups_leader_is_its_own_gpu(subgroup_of_one, monkeypatch, tmp_path):
    """explain(..., device="cuda") on a group's leader encoded and decoded in its own process
    (distributed=False sweeps), where "cuda" is the current device, cuda:0 unless set, while
    traverse on the same rank takes the rank's own GPU, cuda:LOCAL_RANK: the report of the
    subgroup [2, 3] was made on rank 0's GPU. CUDA faked: the device explain passes on."""
    from latentsweep import explanation

    class Passed(Exception):
        pass

    def encode(encoder, data, *, device, **options):
        raise Passed(device)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("SLURM_LOCALID", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(explanation, "encode", encode)
    with pytest.raises(Passed) as passed:
        ls.explain(torch.nn.Linear(3, 2), torch.nn.Linear(2, 3), torch.rand(4, 3), out=tmp_path, device="cuda",
                   group=subgroup_of_one, progress=False)
    traversed = _distributed.local_device(torch.device("cuda"), _distributed.Workers(group=subgroup_of_one))
    assert passed.value.args == (traversed,) == (torch.device("cuda", 1),)


def test_what_the_ranks_compare_is_equal_for_equal_calls():
    """What the ranks compare (as traverse's do): a NaN option on every rank is the same call
    (refused by its own check then, not as "different arguments in: span"), dims as a tensor or
    a range as their numbers, a function by its type, your directions tensor not at all."""
    from latentsweep.explanation import _call_identity

    def identity(**options):
        return _call_identity(Path("report.html"), torch.eye(3) * options.pop("scale", 1), {"title": "t"}, **options)

    assert identity(span=float("nan"), dims=torch.tensor([0, 2]), output_transform=lambda x: x) == identity(
        span=float("nan"), dims=[0, 2], output_transform=lambda y: y, scale=2)
    assert identity(dims=range(2)) != identity(dims=range(3))


def test_rank_0s_own_failure_is_raised_when_a_waiting_rank_is_gone(monkeypatch):
    """Rank 0 failed (bad data) and a waiting rank was gone meanwhile (killed): the broadcast of
    its failure raised "lost contact", which replaced rank 0's own error (left as __context__)."""
    workers = _distributed.Workers(rank=0, world=2, grouped=True, fn="latentsweep.explain")
    monkeypatch.setattr(_distributed, "join", lambda *args, **kwargs: workers)
    monkeypatch.setattr(_distributed.Workers, "agree", lambda self, *args, **kwargs: None)

    def lost(self, value):
        raise _distributed.LostContact("latentsweep.explain: lost contact with rank 1")

    monkeypatch.setattr(_distributed.Workers, "broadcast", lost)
    with pytest.raises(ValueError, match=r"^bad data$"):
        with _distributed.leader_only("latentsweep.explain", dict):
            raise ValueError("bad data")
    with pytest.raises(_distributed.LostContact):  # (rank 0 done: a rank gone is still said)
        with _distributed.leader_only("latentsweep.explain", dict):
            pass
