"""Sweeps on subgroups of 4 processes, run under torchrun by tests/test_subgroups_found_adversarially.py
(CPU, gloo): two subgroups at once ([0, 1] fails on rank 1, [2, 3] goes on), the failed store
resumed on a subgroup whose rank 0 is global rank 2 ([2, 1], ranks in that order), a sweep
where some ranks pass group=torch.distributed.group.WORLD and the others None, and a rank alone
on a subgroup whose own timeout is shorter than 30 s; messages inside subgroups whose ranks are
not 0..n-1. Every rank writes what each call raised or warned to OUT/said-rank<r>.txt and its
results to OUT/<name>-rank<r>.npz.
"""

from __future__ import annotations

import datetime
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from distributed_worker import PROBE_CALLS, failing_decoder, save, sweep  # noqa: E402
from sweep_models import mlp_decoder  # noqa: E402


def outcome(call) -> list[str]:
    """What call() raised ("ok" if nothing), then what it warned."""
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            call()
        except Exception as error:  # noqa: BLE001 - what each call raised is what the test reads
            said = f"{type(error).__name__}: {error}"
        else:
            said = "ok"
    return [said, *(f"warned: {w.message}" for w in warned)]


def saved(folder: Path, name: str, **kwargs) -> None:
    """sweep(decoder, **kwargs)'s results, and the points it computed, in OUT/<name>-rank<r>.npz."""
    result = sweep(mlp_decoder(5, 20), batch_size=2, **kwargs)
    save(result, folder, name, points=np.array([result.points_computed]))


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, said = dist.get_rank(), []
    first, second = dist.new_group([0, 1]), dist.new_group([2, 3])
    middle = dist.new_group([2, 1], sort_ranks=False)  # its rank 0 is global rank 2
    brief = dist.new_group([0, 1], timeout=datetime.timedelta(seconds=1.5))
    brief_pair = dist.new_group([2, 3], timeout=datetime.timedelta(seconds=1.5))
    decoder = mlp_decoder(5, 20)
    if rank == 3:  # what one process computes, to compare with
        saved(out, "alone", out=out / "alone.zarr", distributed=False)
    dist.barrier()
    if rank < 2:  # rank 1 fails on the first call of its 3rd unit (after the probe's calls and its 2 first
        # units, 4 calls each), while [2, 3] sweep
        said += outcome(lambda: sweep(failing_decoder(victim=1, at=PROBE_CALLS + 9), out=out / "first.zarr",
                                      group=first, batch_size=2))
    else:
        said += outcome(lambda: saved(out, "second", out=out / "second.zarr", group=second))
    dist.barrier()
    if rank in (1, 2):  # [0, 1]'s store finished by [2, 1]
        said += outcome(lambda: saved(out, "first-resumed", out=out / "first.zarr", group=middle, resume=True))
    dist.barrier()
    said += outcome(lambda: saved(out, "world", out=out / "world.zarr", group=dist.group.WORLD if rank % 2 else None))
    if rank == 0:  # rank 1 never comes: the subgroup's own timeout, 1.5 s, is the wait
        said += outcome(lambda: sweep(decoder, keep_outputs=False, group=brief))
    # Messages name ranks as torchrun's logs do (the job's): rank 3 (its group's rank 1) asks for
    # another batch size; [2, 1]'s leader, global rank 2, reports a missing store; rank 3 alone
    # on a group of [2, 3] with a short timeout.
    if rank in (2, 3):
        said += outcome(lambda: sweep(decoder, keep_outputs=False, group=second, batch_size=2 if rank == 2 else 4))
    if rank in (1, 2):
        said += outcome(lambda: sweep(decoder, out=out / "missing.zarr", resume=True, group=middle))
    if rank == 3:
        said += outcome(lambda: sweep(decoder, keep_outputs=False, group=brief_pair))
    (out / f"said-rank{rank}.txt").write_text("\n".join(said))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
