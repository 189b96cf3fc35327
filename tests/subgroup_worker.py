"""Sweeps on a subgroup, run under torchrun with 3 processes by tests/test_distributed_subgroups.py
(CPU, gloo, a group made with store=: a FileStore).

Ranks 0 and 1 sweep on their subgroup while rank 2 sweeps alone (its results are the single
process's, to compare with) and then calls a sweep of the default group that the others never
make. Every rank writes what each call raised to OUT/said-rank<r>.txt, one line each, and its
results to OUT/<name>-rank<r>.npz.
"""

from __future__ import annotations

import datetime
import os
import sys
import warnings
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
import latentsweep as ls  # noqa: E402
from distributed_worker import BATCH, save, sweep  # noqa: E402
from sweep_models import mlp_decoder  # noqa: E402

START = torch.randn(3, 5, generator=torch.Generator().manual_seed(21))
END = torch.randn(3, 5, generator=torch.Generator().manual_seed(22))


def outcome(call) -> str:
    try:
        call()
    except Exception as error:  # noqa: BLE001 - what each call raised is what the test reads
        return f"{type(error).__name__}: {error}"
    return "ok"


class OutOfMemoryAbove:
    """``decoder``, raising the CPU allocator's out-of-memory error above ``limit`` codes."""

    def __init__(self, decoder, limit: int):
        self.decoder, self.limit = decoder, limit

    def __call__(self, codes):
        if len(codes) > self.limit:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")
        return self.decoder(codes)


def interpolate(decoder, **kwargs):
    return ls.interpolate(decoder, START, END, steps=5, batch_size=BATCH, keep_outputs=False, progress=False,
                          **kwargs)


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    minute = datetime.timedelta(seconds=60)
    store = dist.FileStore(str(out / "group-store"), world)
    store.set_timeout(minute)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=minute)
    pair = dist.new_group([0, 1])  # (every rank makes it; rank 2 gets torch's "not a member" marker)
    decoder, said = mlp_decoder(5, 20), []
    if rank == 2:  # a failure told by a sweep of the default group: the pair's sweeps must not read it
        ls.distributed._group_store().set(ls.distributed._failed_key(ls.distributed._DEFAULT_NAMESPACE), "2")
    dist.barrier()
    if rank < 2:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            # rank 1 asks for another batch size and memory budget: refused on both, still in step
            said.append(outcome(lambda: sweep(decoder, keep_outputs=False, group=pair,
                                              batch_size=BATCH if rank == 0 else "auto",
                                              memory_budget=None if rank == 0 else 2 ** 24)))
            save(sweep(decoder, out=out / "pair.zarr", group=pair), out, "pair-store")
            save(sweep(decoder, keep_outputs=False, group=pair), out, "pair-memory")
            save(interpolate(decoder, group=pair).sweep, out, "pair-path")
        said += [str(w.message) for w in warned]  # (none: a 30 s wait for rank 2 warned)
        with warnings.catch_warnings():  # rank 1 alone runs out of memory above 4 codes: halved there only
            warnings.simplefilter("ignore")
            halved = sweep(OutOfMemoryAbove(decoder, 4 if rank == 1 else BATCH), keep_outputs=False, group=pair)
        save(halved, out, "pair-halved", batch_size=[halved.batch_size])
        codes = ls.Posterior(torch.randn(30, 5, generator=torch.Generator().manual_seed(13)))
        report = ls.explain(None, decoder, None, posterior=codes, out=out / "pair-report", group=pair, anchors=2,
                            steps=5, gifs=False, dpi=30, progress=False)  # (rank 0 writes it, rank 1 waits)
        (out / f"explained-rank{rank}.txt").write_text(str(report))
        said.append(outcome(lambda: sweep(decoder, keep_outputs=False, group="pair")))
        said.append(outcome(lambda: sweep(decoder, out=out / "shard.zarr", group=pair, shard=(0, 2))))
        said.append(outcome(lambda: sweep(decoder, keep_outputs=False, group=pair, distributed=False)))
    else:
        save(sweep(decoder, out=out / "alone.zarr", distributed=False), out, "alone-store")
        save(sweep(decoder, keep_outputs=False, distributed=False), out, "alone-memory")
        save(interpolate(decoder, distributed=False).sweep, out, "alone-path")
        said.append(outcome(lambda: sweep(decoder, keep_outputs=False, group=pair)))
    dist.barrier()  # the pair's meetings are in the store: rank 2 must not take them for its own call's
    if rank == 2:  # a call of the default group, which ranks 0 and 1 never make (they wait below)
        ls.distributed.ARRIVAL_WARNING_SECONDS = 0.5
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dist.group.WORLD.set_timeout(datetime.timedelta(seconds=2))  # shorter than its store's
            said.append(outcome(lambda: sweep(decoder, keep_outputs=False)))
            dist.group.WORLD.set_timeout(minute)
            store.set_timeout(datetime.timedelta(seconds=1.5))  # the store's shorter than the group's
            said.append(outcome(lambda: sweep(decoder, keep_outputs=False)))
            store.set_timeout(minute)
    dist.barrier()
    if rank < 2:  # the subgroup destroyed, then the default group too
        dist.destroy_process_group(pair)
        said.append(outcome(lambda: sweep(decoder, keep_outputs=False, group=pair)))
    dist.destroy_process_group()
    if rank < 2:
        said.append(outcome(lambda: sweep(decoder, keep_outputs=False, group=pair)))
    (out / f"said-rank{rank}.txt").write_text("\n".join(said))


if __name__ == "__main__":
    main()
