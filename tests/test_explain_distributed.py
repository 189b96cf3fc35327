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
    ends rank 0 before its report is written). They now wait as long as the report takes."""
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
    assert said(explain_run, 0)[7:] == [str(explain_run / "alone" / "report.html"),
                                        "decoded: False; bars: True; warned: 0"]
    assert said(explain_run, 1)[7:] == [str(explain_run / "pair" / "report.html"),
                                        "decoded: True; bars: True; warned: 1"]
    assert said(explain_run, 2)[7:] == [str(explain_run / "pair" / "report.html"),
                                        "decoded: False; bars: False; warned: 0"]


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
