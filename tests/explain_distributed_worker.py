"""explain under torchrun as a demanding user calls it, run with 3 processes by
tests/test_explain_distributed.py (CPU, gloo, a group made by the worker).

Each on a group of every rank with a short timeout (one that a collective outlasted is broken
for good): rank 0's report taking longer than the group's timeout; an out= that only one rank
cannot write (ranks in other working folders: other nodes' disks); rank 0 in explain while the
others traverse. Then on the default group explain, traverse, explain on every rank; then on
the subgroup [1, 2], whose leader is global rank 1, while rank 0 explains alone meanwhile. Then
on every rank: rank 1 called with another out= and title; a bad argument on rank 2 alone. Every
rank writes what each call returned or raised to OUT/said-rank<r>.txt, one line each. On the
subgroup [1, 2], rank 1 explains while rank 2 traverses; a sweep whose rank 0 opens and reads
its store for the others for longer than the group's timeout. Last, rank
0's process ends without an error (os._exit(0)) while it works for the others: they append what
they raised, and the launch must end.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
import latentsweep as ls  # noqa: E402
from latentsweep import distributed as _distributed  # noqa: E402
from latentsweep import sweep as ls_sweep  # noqa: E402
from latentsweep.stores import SweepStore  # noqa: E402
from sweep_models import mlp_decoder  # noqa: E402

CODES = ls.Posterior(torch.randn(30, 5, generator=torch.Generator().manual_seed(13)))
OPTIONS = dict(anchors=2, steps=5, gifs=False, dpi=30, progress=False)
SHORT = datetime.timedelta(seconds=3)  # a group's timeout, where a wait must not be bounded by it


def outcome(call) -> str:
    try:
        return str(call())
    except Exception as error:  # noqa: BLE001 - what each call raised is what the test reads
        return f"{type(error).__name__}: {error}"


def explain(decoder, **kwargs):
    return ls.explain(None, decoder, None, **{"posterior": CODES, **OPTIONS, **kwargs})


def explain_here_traverse_elsewhere(decoder, explaining: bool, out: Path, group) -> str:
    """What this rank says of explain (``explaining``) or of a traverse on ``group``: ranks of one
    group in different calls."""
    if explaining:
        return outcome(lambda: explain(decoder, out=out, group=group))
    return outcome(lambda: ls.traverse(decoder, CODES.mu[:3], steps=5, keep_outputs=False, progress=False,
                                       group=group))


class SlowOn:
    """``decoder``, sleeping ``seconds`` before each call on rank ``rank`` (explain's few
    decoder calls then outlast the group's timeout there)."""

    def __init__(self, decoder, rank: int, seconds: float):
        self.decoder, self.rank, self.seconds = decoder, rank, seconds

    def __call__(self, codes):
        if dist.get_rank() == self.rank:
            time.sleep(self.seconds)
        return self.decoder(codes)


@contextlib.contextmanager
def slowed_on_rank_0(owner, name: str, seconds: float = 4.0):
    """``owner.name`` sleeping ``seconds`` (more than SHORT) before it runs, on rank 0 alone."""
    original = getattr(owner, name)

    def slowed(*args, **kwargs):
        time.sleep(seconds)
        return original(*args, **kwargs)

    if dist.get_rank() == 0:
        setattr(owner, name, slowed)
    try:
        yield
    finally:
        setattr(owner, name, original)


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, said = dist.get_rank(), []
    decoder = mlp_decoder(5, 20)
    # How long the others wait for a rank 0 that does not say it is alive: short here (the slow
    # report below outlasts it; rank 0 says it is alive as it works).
    _distributed.LEADER_BEAT_SECONDS, _distributed.LEADER_SILENT_SECONDS = 0.1, 2.0

    def every_rank():
        group = dist.new_group([0, 1, 2], timeout=SHORT)
        dist.barrier()  # (on the default group, whose timeout is long: the ranks start together)
        return group

    # Rank 0's report outlasts the group's timeout: the others waited in a broadcast, gave up
    # "lost contact" (and rank 0 raised the same after writing it).
    said.append(outcome(lambda: explain(SlowOn(decoder, 0, 1.5), out=out / "slow", group=every_rank())))
    dist.barrier()

    # The same relative out= in each rank's working folder: a file is in its way on rank 1 alone,
    # which does not write the report; then on rank 0 alone, which does.
    for blocked in (1, 0):
        group = every_rank()
        folder = out / f"blocked-on-{blocked}" / f"rank{rank}"  # (a node with its own disk)
        folder.mkdir(parents=True)
        with contextlib.chdir(folder):
            if rank == blocked:
                Path("sub").write_text("a file where the report's folder goes")
            said.append(outcome(lambda: explain(decoder, out=Path("sub") / "report", group=group)))
        dist.barrier()

    # Rank 0 explains (`if rank == 0:`) while the others traverse on every rank: they met, then
    # paired explain's broadcast with traverse's gather until the group's timeout.
    said.append(explain_here_traverse_elsewhere(decoder, rank == 0, out / "mismatched", every_rank()))
    dist.barrier()

    # Every rank: explain, traverse, explain (the calls stay in step after the failures above).
    said.append(outcome(lambda: explain(decoder, out=out / "first")))
    said.append(outcome(lambda: type(ls.traverse(decoder, CODES.mu[:3], steps=5, keep_outputs=False,
                                                 progress=False)).__name__))
    said.append(outcome(lambda: explain(decoder, out=out / "second")))

    # The subgroup [1, 2] (its leader: global rank 1) explains from data, with a progress bar
    # and a warning (logits-like outputs for inputs in [0, 1]), while rank 0 explains alone.
    pair = dist.new_group([1, 2])
    encoder = torch.nn.Linear(20, 5)
    data = torch.rand(30, 20, generator=torch.Generator().manual_seed(14))
    decoded_here = []

    def logits(codes):
        decoded_here.append(len(codes))
        return decoder(codes) * 10 - 5

    options = {**OPTIONS, "progress": True}
    with warnings.catch_warnings(record=True) as warned, contextlib.redirect_stderr(io.StringIO()) as bars:
        warnings.simplefilter("always")
        if rank == 0:
            said.append(outcome(lambda: ls.explain(encoder, decoder, data, out=out / "alone", distributed=False,
                                                   **options)))
        else:
            said.append(outcome(lambda: ls.explain(encoder, logits, data, out=out / "pair", group=pair, **options)))
    said.append(f"decoded: {bool(decoded_here)}; bars: {'encode' in bars.getvalue()}; warned: "
                f"{sum('logits' in str(w.message) for w in warned)}")
    dist.barrier()

    # Rank 1 asks for another report (out=, title=) than rank 0: it returned a path where no
    # report was, its title silently rank 0's.
    group = every_rank()
    said.append(outcome(lambda: explain(decoder, out=out / ("other" if rank == 1 else "differing"),
                                        title="mine" if rank == 1 else "latentsweep report", group=group)))
    dist.barrier()
    # A bad argument on rank 2 alone: it raised before the meeting, where the others waited for it.
    group = every_rank()
    said.append(outcome(lambda: explain(decoder, out=out / "bad-on-2", anchors=0 if rank == 2 else 2, group=group)))
    dist.barrier()
    # On the subgroup [1, 2], its leader (global rank 1) in explain while rank 2 traverses: the
    # advice said that "rank 0 writes explain's report", a rank of the job not in the group.
    group = dist.new_group([1, 2], timeout=SHORT)  # (made by every rank: torch's rule for new_group)
    said.append("-" if rank == 0 else explain_here_traverse_elsewhere(decoder, rank == 1, out / "pair-mismatched",
                                                                      group))
    dist.barrier()
    # A sweep into a store whose rank 0 takes longer than the group's timeout to open it for the
    # others and to read their units at the end (a large store's check on a slow disk, slowed
    # here): the others waited in a broadcast and gave up at the timeout, "lost contact".
    group = every_rank()
    with slowed_on_rank_0(ls_sweep, "leader_store"), slowed_on_rank_0(SweepStore, "merged"):
        said.append(outcome(lambda: float(ls.traverse(decoder, CODES.mu[:3], steps=5, keep_outputs=False,
                                                      progress=False, out=out / "slow-store.zarr",
                                                      group=group).dim_effect.sum())))
    dist.barrier()
    (out / f"said-rank{rank}.txt").write_text("\n".join(said))

    # Rank 0's process ends without raising while it works (torchrun's agent keeps the store and
    # the others): they waited for its report for ever.
    def vanishing(codes):
        if dist.get_rank() == 0:
            os._exit(0)
        return decoder(codes)

    said.append(outcome(lambda: explain(vanishing, out=out / "vanished")))
    (out / f"said-rank{rank}.txt").write_text("\n".join(said))  # (rank 0 is gone: no barrier, no destroying)


if __name__ == "__main__":
    main()
