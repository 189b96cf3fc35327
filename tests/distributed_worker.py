"""A sweep run under torchrun by tests/test_sweep_distributed.py (CPU, gloo).

Every rank writes what traverse returned to OUT/<name>-rank<r>.npz, so the test can compare
them bit for bit across process counts.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
import latentsweep as ls  # noqa: E402
from sweep_models import cpu_probe_calls, mlp_decoder  # noqa: E402

ANCHORS = torch.randn(12, 5, generator=torch.Generator().manual_seed(11))
STEPS, BATCH = 7, 8
DIRECTIONS = torch.randn(3, 5, generator=torch.Generator().manual_seed(12))  # not unit: traverse scales them
# The decoder calls of the anchors' probe, before a sweep's own (the failing decoders count them).
PROBE_CALLS = cpu_probe_calls(len(ANCHORS))


def killing_decoder(victim: int, at: int) -> torch.nn.Module:
    """The MLP decoder (same weights, same identity); on rank `victim` its call `at` (after the
    anchors' probe: calls 1 to PROBE_CALLS) SIGKILLs its own process (mid-unit: that unit is
    half-written)."""
    decoder, calls = mlp_decoder(5, 20), [0]

    def hook(module, inputs):
        calls[0] += 1
        if int(os.environ.get("RANK", "0")) == victim and calls[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)

    decoder.register_forward_pre_hook(hook)
    return decoder


def failing_decoder(victim: int, at: int, exit_quietly: bool = False) -> torch.nn.Module:
    """The MLP decoder; on rank `victim` its call `at` (the anchors' probe: calls 1 to
    PROBE_CALLS) raises, or, with `exit_quietly`, ends its process with status 0 (torchrun then
    leaves the others be)."""
    decoder, calls = mlp_decoder(5, 20), [0]

    def hook(module, inputs):
        calls[0] += 1
        if int(os.environ.get("RANK", "0")) == victim and calls[0] == at:
            if exit_quietly:
                os._exit(0)
            raise RuntimeError(f"decoder failed on rank {victim}")

    decoder.register_forward_pre_hook(hook)
    return decoder


def attempt(call) -> str:
    try:
        call()
    except (ValueError, RuntimeError) as error:
        return f"{type(error).__name__}: {error}"
    return "ok"


class ClockedDecoder:
    """The MLP decoder on a fake clock (latentsweep's batch trials time with it): a call of n
    codes costs n * seconds_per_code(n), fastest at 64, so the trials are the same on every run
    and every rank. Counts the codes it decodes (the anchors' included)."""

    def __init__(self, decoder):
        self.decoder, self.now, self.codes = decoder, 0.0, 0
        ls._batching._clock = lambda: self.now

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        size = codes.shape[0]
        self.now += size * 1e-4 * (1 + abs(np.log(size / 64) / np.log(4)))
        self.codes += size
        return self.decoder(codes)


# 100,100 rows: rank 0's trials at 64 fit in their budget under 3 processes too (1% of the sweep)
AUTO_ANCHORS = torch.randn(2860, 5, generator=torch.Generator().manual_seed(14))


def save(result, out: Path, name: str, **extra) -> None:
    rank = dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))
    arrays = {"effect": result.effect.cpu().numpy(), "dim_effect": result.dim_effect.cpu().numpy(),
              "sensitivity": result.sensitivity.cpu().numpy(), **extra}
    if result.outputs is not None:
        arrays["outputs"] = np.asarray(result.outputs)
    np.savez(out / f"{name}-rank{rank}.npz", **arrays)


def on_a_smaller_machine(smaller: bool, call):
    """call() where, if ``smaller``, keeping a sweep in memory is refused (a node with
    less memory than the others)."""
    import latentsweep.sweep as engine

    if not smaller:
        return call()
    checked = engine._check_fits_in_memory

    def refuse(fn, geometry, keep_outputs):
        raise ValueError(f"{fn}: keeping the sweep in memory needs more than this machine has")

    engine._check_fits_in_memory = refuse
    try:
        return call()
    finally:
        engine._check_fits_in_memory = checked


def sweep(decoder, **kwargs):
    return ls.traverse(decoder, ANCHORS, **{"steps": STEPS, "batch_size": BATCH, "progress": False, **kwargs})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["sweep", "caller-group", "kill", "resume", "directions", "cuda", "explain",
                                                 "failures", "elsewhere", "failed-early", "alone", "slow-share",
                                                 "hung-share", "different-transforms"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    decoder = mlp_decoder(5, 20)
    world = int(os.environ["WORLD_SIZE"])
    if args.scenario == "sweep":  # traverse creates the process group from the environment
        save(sweep(decoder, out=args.out / f"sweep{world}.zarr"), args.out, f"store{world}")
        assert dist.is_initialized() == (world > 1)  # created by traverse, kept for later sweeps, destroyed at exit
        save(sweep(decoder, keep_outputs=False), args.out, f"memory{world}")
        # batch_size="auto": rank 0's batch trials become the first units, the others share the rest
        clocked = ClockedDecoder(decoder)
        auto = ls.traverse(clocked, AUTO_ANCHORS, steps=STEPS, keep_outputs=False, progress=False)
        save(auto, args.out, f"auto-memory{world}", decoded=np.array([clocked.codes - len(AUTO_ANCHORS)]),
             batch_size=np.array([auto.batch_size]))
        if world > 1:  # the group traverse created, destroyed by its caller: not created again
            dist.destroy_process_group()
            outcome = attempt(lambda: sweep(decoder, keep_outputs=False))
            (args.out / f"destroyed{world}-rank{os.environ['RANK']}.txt").write_text(outcome)
    elif args.scenario == "caller-group":
        dist.init_process_group("gloo")
        save(sweep(decoder, out=args.out / f"caller{world}.zarr"), args.out, f"caller{world}")
        for kwargs, message in [({"shard": (0, 2), "out": args.out / "x.zarr"}, "shard= is for independent processes"),
                                ({}, "out=")]:
            try:
                sweep(decoder, **kwargs)
            except ValueError as error:
                assert message in str(error), error
            else:
                raise AssertionError(f"{kwargs} was accepted under a process group")
        total = torch.ones(1)
        dist.all_reduce(total)  # the caller's group still works
        assert dist.is_initialized() and int(total) == world
        dist.destroy_process_group()
    elif args.scenario == "directions":  # a sweep along directions, into a store and in memory
        save(sweep(decoder, directions=DIRECTIONS, out=args.out / f"directions{world}.zarr"), args.out,
             f"directions{world}")
        save(sweep(decoder, directions=DIRECTIONS, keep_outputs=False), args.out, f"directions-memory{world}")
    elif args.scenario == "cuda":
        if torch.cuda.device_count() >= world:  # traverse creates an nccl group; each rank on LOCAL_RANK's GPU
            device = torch.device("cuda")
            decoder.to(torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))))
        else:  # one GPU for all ranks: nccl refuses two ranks on one GPU, so the caller's gloo group
            if world > 1:
                dist.init_process_group("gloo")
            device = torch.device("cuda", 0)
            decoder.to(device)
        save(sweep(decoder, device=device, out=args.out / f"cuda{world}.zarr"), args.out, f"cuda{world}")
        save(sweep(decoder, device=device, keep_outputs=False), args.out, f"cuda-memory{world}")
    elif args.scenario == "explain":  # rank 0 writes the one report; a failure on rank 0 reaches every rank
        if world > 1:
            dist.init_process_group("gloo")
        rank = dist.get_rank() if dist.is_initialized() else 0
        codes = ls.Posterior(torch.randn(30, 5, generator=torch.Generator().manual_seed(13)))
        options = dict(posterior=codes, anchors=2, steps=5, gifs=False, dpi=30, progress=False)
        path = ls.explain(None, decoder, None, out=args.out / "report", **options)
        outcome = [str(path)]
        try:
            ls.explain(None, lambda z: decoder(z) * float("nan"), None, out=args.out / "failed", **options)
        except (ValueError, RuntimeError) as error:
            outcome.append(f"{type(error).__name__}: {error}")
        if world > 1:  # rank 0 alone (`if rank == 0:` in a training job): said, instead of a wait at the end
            ls.distributed.ARRIVAL_WARNING_SECONDS = 1.0
            if rank == 0:  # (rank 1 meanwhile waits in the barrier below, at the group's usual timeout)
                dist.group.WORLD.set_timeout(datetime.timedelta(seconds=3))
                with warnings.catch_warnings(record=True) as warned:
                    warnings.simplefilter("always")
                    try:
                        ls.explain(None, decoder, None, out=args.out / "alone-default", **options)
                    except RuntimeError as error:
                        outcome.append(f"{type(error).__name__}: {error}")
                outcome += [str(w.message) for w in warned if "waited" in str(w.message)]
                outcome.append(str(ls.explain(None, decoder, None, out=args.out / "alone", distributed=False,
                                              **options)))
            dist.barrier()
            dist.group.WORLD.set_timeout(datetime.timedelta(minutes=5))
            outcome.append(str(ls.explain(None, decoder, None, out=args.out / "after", **options)))  # (in step)
        (args.out / f"explain-rank{rank}.txt").write_text("\n".join(outcome))
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    elif args.scenario == "failures":  # each rank catches each failure and goes on, as a notebook would
        rank = int(os.environ["RANK"])
        outcomes = [
            # an argument check failing on rank 1 alone, in the first sweep (no group yet) and a later one
            attempt(lambda: sweep(decoder, keep_outputs=False, steps=0 if rank else STEPS)),
            attempt(lambda: sweep(decoder, keep_outputs=False, batch_size=0 if rank else BATCH)),
            attempt(lambda: on_a_smaller_machine(rank == 1, lambda: sweep(decoder, keep_outputs=False))),
            attempt(lambda: sweep(failing_decoder(victim=1, at=1), out=args.out / "probe.zarr")),
            attempt(lambda: sweep(decoder, out=args.out / "steps.zarr", steps=STEPS + 2 * rank)),
            attempt(lambda: sweep(decoder, keep_outputs=False, span=2.0 + rank)),
            attempt(lambda: sweep(decoder, out=args.out / f"rank{rank}.zarr")),
            attempt(lambda: sweep(mlp_decoder(5, 20, seed=rank), keep_outputs=False)),  # initialised, not loaded
        ]
        save(sweep(decoder, keep_outputs=False), args.out, "after-failures")  # the ranks are still in step
        (args.out / f"failures-rank{rank}.txt").write_text("\n".join(outcomes))
        # rank 1 ends in the middle of its units: rank 0 learns it at the end of its own
        outcomes = [attempt(lambda: sweep(failing_decoder(victim=1, at=PROBE_CALLS + 3, exit_quietly=True),
                                          out=args.out / "lost.zarr"))]
        (args.out / f"lost-rank{rank}.txt").write_text("\n".join(outcomes))
    elif args.scenario == "elsewhere":  # out= relative, each rank in its own working folder: two stores
        # (a rank left waiting for a collective gives up in 30 s, not the default 30 minutes)
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=30))
        sys.modules["latentsweep.stores"].WRITTEN_ELSEWHERE_VISIBLE_SECONDS = 1.0  # (it waits for NFS to show the store)
        rank = dist.get_rank()
        folder = args.out / f"cwd{rank}"
        folder.mkdir()
        os.chdir(folder)
        outcomes = [attempt(lambda: sweep(decoder, out="s.zarr"))]  # nothing there on rank 1
        if rank == 1:  # there, a copy of the same sweep, complete: rank 0 cannot read rank 1's new units
            sweep(decoder, out="s.zarr", distributed=False)
        outcomes.append(attempt(lambda: sweep(decoder, out="s.zarr", overwrite=True)))
        save(sweep(decoder, keep_outputs=False), args.out, "after-elsewhere")  # the ranks are still in step
        (args.out / f"elsewhere-rank{rank}.txt").write_text("\n".join(outcomes))
        dist.destroy_process_group()
    elif args.scenario == "failed-early":  # rank 1 fails at once, rank 0's share lasts past the group's timeout
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=20))
        rank = dist.get_rank()
        slow = failing_decoder(victim=1, at=PROBE_CALLS + 2)
        if rank == 0:  # 1 s a batch after the anchors' probe: about 27 s for its 27 batches
            slow.register_forward_pre_hook(lambda module, inputs: time.sleep(1.0) if inputs[0].shape[0] == BATCH
                                           else None)
        outcomes = [attempt(lambda: sweep(slow, out=args.out / "early.zarr"))]
        save(sweep(decoder, keep_outputs=False), args.out, "after-early")  # the ranks are still in step
        (args.out / f"early-rank{rank}.txt").write_text("\n".join(outcomes))
        dist.destroy_process_group()
    elif args.scenario == "slow-share":  # rank 1's share lasts past the group's timeout; nothing fails
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=4))
        slow = mlp_decoder(5, 20)
        if dist.get_rank() == 1:  # 0.4 s a full batch: its ~26 batches take ~10 s, rank 0's a fraction of one
            slow.register_forward_pre_hook(lambda module, inputs: time.sleep(0.4) if inputs[0].shape[0] == BATCH
                                           else None)
        save(sweep(slow, out=args.out / "slow.zarr"), args.out, "slow")
        dist.destroy_process_group()
    elif args.scenario == "hung-share":  # rank 1 decodes nothing for far longer than the group's timeout
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=4))
        rank = dist.get_rank()
        stuck, calls = mlp_decoder(5, 20), [0]

        def hang_once(module, inputs):
            calls[0] += 1
            if rank == 1 and calls[0] == PROBE_CALLS + 2:  # (a batch of its units: its interpreter stays free)
                time.sleep(20.0)

        stuck.register_forward_pre_hook(hang_once)
        started = time.monotonic()
        outcome = attempt(lambda: sweep(stuck, out=args.out / "hung.zarr"))
        (args.out / f"hung-rank{rank}.txt").write_text(f"{outcome}\n{time.monotonic() - started:.1f}")
    elif args.scenario == "different-transforms":  # the ranks' calls differ in an option the store does not record
        dist.init_process_group("gloo")
        rank = dist.get_rank()
        scale = 2.0 + rank
        outcomes = [attempt(lambda: sweep(decoder, out=args.out / "transforms.zarr", output_transform=lambda y: y * scale)),
                    attempt(lambda: sweep(decoder, keep_outputs=False, output_transform=lambda y: y * scale))]
        permuted = mlp_decoder(5, 20)
        if rank == 1:  # other weights whose outputs at the anchors sum to the same (two features swapped)
            with torch.no_grad():
                last = [m for m in permuted.modules() if isinstance(m, torch.nn.Linear)][-1]
                last.weight[[0, 1]] = last.weight[[1, 0]].clone()
                last.bias[[0, 1]] = last.bias[[1, 0]].clone()
        outcomes.append(attempt(lambda: sweep(permuted, keep_outputs=False)))
        (args.out / f"transforms-rank{rank}.txt").write_text("\n".join(outcomes))
        dist.destroy_process_group()
    elif args.scenario == "alone":  # rank 1 calls late, then not at all (`if rank == 0: traverse(...)`)
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=8))
        ls.distributed.ARRIVAL_WARNING_SECONDS = 1.0
        rank = dist.get_rank()
        if rank == 1:
            time.sleep(3.0)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            save(sweep(decoder, keep_outputs=False), args.out, "late")
            outcomes = [attempt(lambda: sweep(decoder, keep_outputs=False)) if rank == 0 else "not called"]
        outcomes += [str(w.message) for w in said]
        if rank == 1:  # (alive, in no collective, until rank 0 has given up)
            time.sleep(12.0)
        with warnings.catch_warnings():  # then both call again (rank 0 waits for rank 1 a few seconds)
            warnings.simplefilter("ignore")
            outcomes.append(attempt(lambda: save(sweep(decoder, keep_outputs=False), args.out, "together")))
        (args.out / f"alone-rank{rank}.txt").write_text("\n".join(outcomes))
        dist.destroy_process_group()
    elif args.scenario == "kill":
        sweep(killing_decoder(victim=1, at=PROBE_CALLS + 11), out=args.out / "killed.zarr")
    else:
        save(sweep(decoder, out=args.out / "killed.zarr", resume=True), args.out, f"resumed{world}")


if __name__ == "__main__":
    main()
